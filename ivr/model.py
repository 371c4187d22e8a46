"""The LightningModule: GPT-2 (pretrained or built from a config), its optimiser and its metrics.

Bits per byte is the headline metric because it does not depend on the tokenizer: the summed
negative log-likelihood of the predicted tokens, in bits, divided by the UTF-8 bytes those tokens
stand for. Per-token loss and perplexity are logged too but only compare runs with one tokenizer.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from lightning.pytorch import LightningModule
from torchmetrics import SumMetric

LN2 = math.log(2.0)


@dataclass
class GPT2Shape:
    """A GPT-2 built from scratch (random weights) instead of loaded: for offline demos and tests."""

    n_layer: int = 2
    """Transformer blocks."""
    n_head: int = 2
    """Attention heads per block."""
    n_embd: int = 64
    """Width of the residual stream (and of each embedding row)."""
    n_positions: int = 1024
    """Longest sequence the position table covers; must be at least data.block_size."""
    vocab_size: int = 50257
    """Rows of the token embedding; GPT-2's vocabulary size, which IVR never changes."""


@dataclass
class GenerationSettings:
    max_new_tokens: int = 64
    temperature: float = 0.8
    top_k: int = 50


class PretrainedUnavailableError(RuntimeError):
    """Pretrained weights could not be found locally or downloaded."""


def load_gpt2(model_name_or_path: str, attn_implementation: str = "sdpa"):
    """GPT2LMHeadModel from a local directory, the Hugging Face cache, or the Hub, in that order."""
    from transformers import GPT2LMHeadModel

    try:
        return GPT2LMHeadModel.from_pretrained(
            model_name_or_path, local_files_only=True, attn_implementation=attn_implementation
        )
    except OSError:
        pass
    try:
        return GPT2LMHeadModel.from_pretrained(model_name_or_path, attn_implementation=attn_implementation)
    except OSError as err:
        raise PretrainedUnavailableError(
            f"cannot load pretrained weights {model_name_or_path!r}: not a local checkpoint, not in the Hugging "
            f"Face cache, and the Hub is unreachable ({type(err).__name__}). Either set model.model_name_or_path "
            f"to a local checkpoint directory (one written by save_pretrained), or run offline with "
            f"configs/demo.yaml, which builds a tiny GPT-2 from scratch."
        ) from None


def build_gpt2(shape: GPT2Shape, attn_implementation: str = "sdpa"):
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        **asdict(shape), bos_token_id=50256, eos_token_id=50256, attn_implementation=attn_implementation
    )
    return GPT2LMHeadModel(config)


def lm_sums(logits: torch.Tensor, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed next-token negative log-likelihood (nats) and the number of predicted tokens."""
    targets = input_ids[:, 1:]
    nll = F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets.reshape(-1), reduction="sum")
    return nll, torch.tensor(targets.numel(), device=nll.device)


class IVRLanguageModel(LightningModule):
    def __init__(
        self,
        model_name_or_path: str | None = "openai-community/gpt2",
        from_config: GPT2Shape | None = None,
        learning_rate: float = 5e-5,
        weight_decay: float = 0.01,
        betas: tuple[float, float] = (0.9, 0.95),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        attn_implementation: Literal["eager", "sdpa"] = "sdpa",
        compile: bool = False,
    ):
        """GPT-2 for causal language modelling.

        Args:
            model_name_or_path: Pretrained GPT-2 to fine-tune: a Hub name (``openai-community/gpt2``) or a local
                directory written by ``save_pretrained``. Looked up in the local cache before the network.
                Set to null together with ``from_config`` to build a model from scratch.
            from_config: Build a randomly initialised GPT-2 of this shape instead of loading weights.
            learning_rate: Peak AdamW learning rate, reached after ``warmup_steps``.
            weight_decay: AdamW weight decay on matrices (not on biases, LayerNorms or position embeddings).
            betas: AdamW betas.
            warmup_steps: Linear warm-up steps; the rate then follows a cosine down to ``min_lr_ratio`` times peak.
            min_lr_ratio: Final learning rate as a fraction of the peak.
            attn_implementation: ``sdpa`` uses PyTorch's fused scaled-dot-product attention; ``eager`` the reference.
            compile: Wrap the model in ``torch.compile``.
        """
        super().__init__()
        if model_name_or_path and from_config is not None:
            raise ValueError("set either model.model_name_or_path or model.from_config, not both")
        if not model_name_or_path and from_config is None:
            raise ValueError("set model.model_name_or_path (pretrained) or model.from_config (from scratch)")
        self.save_hyperparameters()
        # built in configure_model so that `ivr prepare` never loads weights
        self.model = None
        self.val_nll, self.val_tokens, self.val_bytes = SumMetric(), SumMetric(), SumMetric()
        self._step_started = 0.0
        # set by `ivr predict` (its own options, so a checkpoint's saved hyperparameters never override them)
        self.generation = GenerationSettings()

    def configure_model(self) -> None:
        if self.model is not None:
            return
        hp = self.hparams
        if hp.from_config is not None:
            shape = hp.from_config if isinstance(hp.from_config, GPT2Shape) else GPT2Shape(**hp.from_config)
            model = build_gpt2(shape, hp.attn_implementation)
        else:
            model = load_gpt2(hp.model_name_or_path, hp.attn_implementation)
        self.model = torch.compile(model) if hp.compile else model

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, use_cache=False).logits

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        nll, n = lm_sums(self(batch["input_ids"]), batch["input_ids"])
        loss = nll / n
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/bits_per_byte", nll / LN2 / batch["n_bytes"].sum().clamp(min=1))
        self.log("train/bytes_per_token", batch["n_bytes"].sum() / n)
        return loss

    def on_train_batch_start(self, batch: dict, batch_idx: int) -> None:
        self._step_started = time.perf_counter()

    def on_train_batch_end(self, outputs, batch: dict, batch_idx: int) -> None:
        elapsed = time.perf_counter() - self._step_started
        if elapsed > 0:
            self.log("train/tokens_per_sec", batch["input_ids"].numel() / elapsed)
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        nll, n = lm_sums(self(batch["input_ids"]), batch["input_ids"])
        self.val_nll.update(nll)
        self.val_tokens.update(n)
        self.val_bytes.update(batch["n_bytes"].sum())

    def on_validation_epoch_end(self) -> None:
        nll, tokens, nbytes = self.val_nll.compute(), self.val_tokens.compute(), self.val_bytes.compute()
        loss = nll / tokens.clamp(min=1)
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/perplexity", torch.exp(loss))
        self.log("val/bits_per_byte", nll / LN2 / nbytes.clamp(min=1), prog_bar=True)
        for metric in (self.val_nll, self.val_tokens, self.val_bytes):
            metric.reset()

    def predict_step(self, batch: dict, batch_idx: int) -> dict:
        gen = self.generation
        sample = gen.temperature > 0
        ids = batch["input_ids"][:, -(self.model.config.n_positions - 1) :]
        # the position table bounds prompt plus continuation
        budget = min(gen.max_new_tokens, self.model.config.n_positions - ids.size(1))
        out = self.model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=budget,
            do_sample=sample,
            temperature=gen.temperature if sample else None,
            top_k=gen.top_k if sample else None,
            pad_token_id=50256,
        )
        return {"prompt": batch["prompt"], "ids": out[0, ids.size(1) :].tolist()}

    def configure_optimizers(self):
        hp = self.hparams
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and "wpe" not in name else no_decay).append(p)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.learning_rate,
            betas=tuple(hp.betas),
        )
        total = max(int(self.trainer.estimated_stepping_batches), 1)

        def schedule(step: int) -> float:
            if step < hp.warmup_steps:
                return (step + 1) / (hp.warmup_steps + 1)
            progress = min((step - hp.warmup_steps) / max(total - hp.warmup_steps, 1), 1.0)
            return hp.min_lr_ratio + (1 - hp.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
