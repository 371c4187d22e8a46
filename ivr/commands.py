"""What each ``ivr`` command does: LightningCLI's fit/validate/test/predict with the checks ivr adds, plus
``prepare``, ``init``, one command per stage, ``align``, ``verify-tokenizer`` and ``export``.

They are methods of :class:`IVRTrainer` because LightningCLI builds a subcommand's arguments from the method
signature of the trainer class; the model is instantiated for them too, which is cheap because the network
itself is only built in ``configure_model``. ``ivr.cli`` parses the command line and reports errors.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import sys
from dataclasses import asdict, replace
from pathlib import Path

from lightning.pytorch import LightningModule, Trainer

from ivr import pipeline
from ivr.atomic import write_text
from ivr.causal_lm import as_shape
from ivr.data import IVRDataModule, settings_as
from ivr.embeddings import AlignSettings, InitStrategy
from ivr.figures import exact_share
from ivr.model import LOGGED_METRICS, GenerationSettings, IVRLanguageModel
from ivr.progress import with_progress_bar
from ivr.prompts import read_prompts
from ivr.run_checkpoint import (
    LIGHTNING_CHECKPOINT_WORDS, best_checkpoint, check_local_checkpoint, check_resumable, home_expanded, run_checkpoint)

STAGE_COMMANDS = {
    "analyze": "Encode the cleaned corpus with the original BPE; write id sequences and token frequencies.",
    "distill-tokenizer": "Fit a Unigram tokenizer that reproduces the original BPE id for id, and verify it.",
    "select": "Choose rarely used ids to free and frequent domain strings to give them to.",
    "remap": "Write the remap rules and the remapped tokenizer.",
}
log = logging.getLogger(__name__)
# the stage commands take the whole config (one file serves every command) but read only its data section
DATA_ONLY = " Reads only the data.* options (the rest of the config is accepted and ignored)."
# a fit run again without --ckpt_path starts anew, and its first checkpoint replaces last.ckpt
INTERRUPTED_FIT = ("\nivr: interrupted; run the same command with `--ckpt_path last` to resume from the last "
                   "checkpoint (without it a new fit starts and replaces last.ckpt)")
INTERRUPTED_WITHOUT_LAST = ("\nivr: interrupted; checkpoint.save_last is off, so there is no last.ckpt: run the same "
                            "command with `--ckpt_path {path}` to resume from this fit's checkpoint")
INTERRUPTED_BEFORE_CHECKPOINT = ("\nivr: interrupted before this fit's first checkpoint (they come with validation, "
                                 "every trainer.val_check_interval batches); run the same command again to start "
                                 "over: `--ckpt_path last` would resume an earlier fit, not this one")


def check_training_settings(config) -> None:
    """Refuse settings of a fit (``config``: the command's trainer, model, data and checkpoint sections) that would
    fail only once training starts, after preparation: trainer values Lightning accepts, a rows-only fit without
    rows. Warn where validation is off and no checkpoint setting writes any before the fit's end."""
    tokenizer = config["data"]["tokenizer"]
    if config["model"]["train_only"] == "reassigned_rows" and tokenizer != "remapped":
        raise ValueError(f"model.train_only=reassigned_rows trains the rows the remap reassigned: set data.tokenizer "
                         f"to remapped (it is {tokenizer}), or model.train_only to embeddings or all")
    trainer = config["trainer"]
    # a fit of no steps would still export, replacing the export of the fit before it
    for key in ("max_steps", "max_epochs", "limit_train_batches"):
        if trainer.get(key) == 0 and not isinstance(trainer.get(key), bool):
            raise ValueError(f"trainer.{key} 0 trains nothing (and the fit would replace the last export); to score "
                             "or export a checkpoint use ivr validate or ivr export")
    if trainer.get("max_steps") == -1 and trainer.get("max_epochs") == -1:
        raise ValueError("the learning-rate schedule needs the fit's length: set trainer.max_steps, or a "
                         "trainer.max_epochs other than -1")
    if trainer.get("max_time") is not None and trainer.get("max_steps", -1) == -1 and trainer.get("max_epochs") is None:
        # Lightning then sets no epoch limit (max_epochs -1, not its 1000), and the schedule has no length
        raise ValueError("trainer.max_time alone gives the learning-rate schedule no length: set trainer.max_steps or "
                         "trainer.max_epochs too (the fit still stops at max_time if that comes first)")
    warmup, steps = config["model"].get("warmup_steps") or 0, trainer.get("max_steps")
    if isinstance(steps, int) and 0 < steps < warmup:
        log.warning("model.warmup_steps %d is more than trainer.max_steps %d: the learning rate never reaches "
                    "model.learning_rate", warmup, steps)
    checkpoint = config.get("checkpoint") or {}
    monitor = checkpoint.get("monitor")
    if monitor is not None and monitor not in (logged := fit_metrics(tokenizer)):
        raise ValueError(f"checkpoint.monitor {monitor!r} is no metric the fit logs; choose one of "
                         f"{', '.join(sorted(logged))}")
    accumulate = trainer.get("accumulate_grad_batches", 1)
    if isinstance(accumulate, int) and accumulate < 1:
        raise ValueError(f"trainer.accumulate_grad_batches must be at least 1 (got {accumulate})")
    interval = trainer.get("val_check_interval")
    # an int counts batches (a float is a share of an epoch, which Lightning checks itself)
    if isinstance(interval, int) and not isinstance(interval, bool) and interval < 1:
        raise ValueError(f"trainer.val_check_interval must be at least 1 batch (got {interval}); "
                         "to skip validation set trainer.limit_val_batches to 0")
    if trainer.get("limit_val_batches") == 0 and not checkpoint.get("every_n_train_steps") \
            and not checkpoint.get("train_time_interval"):
        # ModelCheckpoint saves after validation; without any, it saves at epoch ends only where validation would
        # run every epoch (trainer.check_val_every_n_epoch 1), and at the fit's end
        log.warning("trainer.limit_val_batches 0 turns validation off, and checkpoints come with it: this fit writes "
                    "one at its end (and at epoch ends with trainer.check_val_every_n_epoch 1), so an interrupted fit "
                    "has little or nothing to resume from; set checkpoint.every_n_train_steps or "
                    "checkpoint.train_time_interval to write them as it trains")


def fit_metrics(tokenizer: str) -> set[str]:
    """The metrics a fit on ``tokenizer`` logs, which ``checkpoint.monitor`` may name: ModelCheckpoint fails at the
    first validation on any other. ``test/`` figures come from ``ivr test`` only, and the reassigned ids' figures
    (``*_reassigned``, ``loss_other``, ``embeddings/``) from a fit on the remapped tokenizer only."""
    return {m for m in LOGGED_METRICS if not m.startswith("test/")
            and (tokenizer == "remapped" or not ("reassigned" in m or m.endswith("/loss_other")))}


def _print_artifacts(command: str, artifacts: list) -> None:
    print(f"ivr {command}: artifacts")
    for path in artifacts:
        print(f"  {path}")


class IVRTrainer(Trainer):
    """Lightning's Trainer options: how fit, validate, test and predict run (devices, precision, steps, logging)."""

    @functools.wraps(Trainer.__init__)
    def __init__(self, *args, **kwargs) -> None:
        kwargs["callbacks"] = with_progress_bar(kwargs.get("callbacks"), kwargs.get("enable_progress_bar"))
        super().__init__(*args, **kwargs)

    def prepare(self, model: LightningModule, datamodule: IVRDataModule) -> None:
        """Run the preparation stages data.tokenizer needs, no training, and print where each artifact went.

        Only the align stage reads model weights (the base model's embedding rows)."""
        _print_artifacts("prepare", datamodule.prepare_data())

    @functools.wraps(Trainer.fit)
    def fit(self, model, train_dataloaders=None, val_dataloaders=None, datamodule=None, ckpt_path=None, **kwargs):
        if ckpt_path == "base":
            raise ValueError("--ckpt_path base is for validate, test, predict and export (the configured model without "
                             "fine-tuning); a fit starts from the configured model when --ckpt_path is left out")
        if isinstance(datamodule, IVRDataModule) and ckpt_path is not None:
            ckpt_path = home_expanded(ckpt_path)
            last = datamodule.paths.last_checkpoint
            # Lightning would start a new fit with a warning, and replace last.ckpt: not what "resume" asked for
            if ckpt_path == "last" and not last.exists():  # a folder is a sharded checkpoint, Lightning's to read
                raise FileNotFoundError(f"nothing to resume: {last} does not exist (or links to a file that does not); "
                                        "leave out --ckpt_path to start a new fit")
            if ckpt_path == "best":  # Lightning knows a best checkpoint only in the process that trained
                ckpt_path = best_checkpoint(last)
            check_local_checkpoint(datamodule.paths, ckpt_path)
            if ckpt_path == "last":  # the file checked, not the newest of Lightning's last*.ckpt (a backup copy)
                ckpt_path = str(last)
            check_resumable(ckpt_path)
            datamodule.keep_checkpoint_tokenizer(ckpt_path, "fit")
        # the rest as Lightning's own signature has it (``weights_only`` since 2.6)
        try:
            with _weights_fit(ckpt_path, "resume with the model settings of the fit that wrote it, or leave out "
                                         "--ckpt_path to start a new fit"):
                return super().fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path, **kwargs)
        except SystemExit:
            if not self.interrupted:
                raise
            # Lightning stops on Ctrl-C with its own line and status 1: say how to go on, with main()'s status.
            # A new fit stopped before its first checkpoint has none to resume: last.ckpt is an earlier fit's
            callback = self.checkpoint_callback
            last = getattr(callback, "last_model_path", "")
            # without last.ckpt (checkpoint.save_last off) the checkpoint to name is the newest this fit wrote
            newest = ((getattr(callback, "_last_checkpoint_saved", "") or getattr(callback, "best_model_path", ""))
                      if callback is not None and not callback.save_last else "")
            if newest and Path(newest).is_file():
                print(INTERRUPTED_WITHOUT_LAST.format(path=newest), file=sys.stderr)
            else:
                saved = ckpt_path is not None or bool(last)
                print(INTERRUPTED_FIT if saved else INTERRUPTED_BEFORE_CHECKPOINT, file=sys.stderr)
            raise SystemExit(130) from None

    fit.__doc__ = """Prepare the data if needed, fine-tune the model and export it at the end.

        Args:
            ckpt_path: Lightning checkpoint to resume from: a file, ``last``
                (``<data.artifacts_dir>/training/checkpoints/last.ckpt``) or ``best`` (the best checkpoint that
                ``last.ckpt`` records); left out, a new fit starts from the configured model.
            weights_only: ``True`` loads only tensors and primitive types from ``ckpt_path`` (for a checkpoint from
                an untrusted source); default Lightning's.
        """

    def train(
        self,
        model: LightningModule,
        train_dataloaders=None,
        val_dataloaders=None,
        datamodule: IVRDataModule | None = None,
        ckpt_path: str | None = None,
        weights_only: bool | None = None,
    ) -> None:
        """Alias of fit: prepare the data if needed and fine-tune the model.

        Args:
            ckpt_path: Lightning checkpoint to resume from, as for fit: a file, ``last``
                (``<data.artifacts_dir>/training/checkpoints/last.ckpt``) or ``best``.
            weights_only: As for fit: ``True`` loads only tensors and primitive types from ``ckpt_path`` (for a
                checkpoint from an untrusted source); default Lightning's.
        """
        self.fit(model, train_dataloaders, val_dataloaders, datamodule, ckpt_path,
                 **_weights_only(weights_only))

    def validate(self, model=None, dataloaders=None, ckpt_path: str | None = None, verbose: bool = True, datamodule=None,
                 **kwargs):
        """Score the held-out split (bits per byte, loss, perplexity), by default with the last fit's checkpoint.

        Args:
            ckpt_path: Lightning checkpoint to score; default (or ``last``) the last fit's ``last.ckpt``; ``best``:
                the best checkpoint it records; ``base``: the configured model without fine-tuning (the base model
                with the aligned rows).
            verbose: Print the scores as a table too.
        """
        ckpt_path = self._checkpoint("validate", model, datamodule, ckpt_path)
        with _weights_fit(ckpt_path, SAME_MODEL), _ctrl_c(self):
            return super().validate(model, dataloaders, ckpt_path, verbose, datamodule, **kwargs)

    def test(self, model=None, dataloaders=None, ckpt_path: str | None = None, verbose: bool = True, datamodule=None,
             **kwargs):
        """The same as validate, logged as test metrics: the corpus has one held-out split, which both score.

        Args:
            ckpt_path: Checkpoint to score, as for validate: default ``last.ckpt``, ``best``, ``base`` without
                fine-tuning.
            verbose: Print the scores as a table too.
        """
        ckpt_path = self._checkpoint("test", model, datamodule, ckpt_path)
        with _weights_fit(ckpt_path, SAME_MODEL), _ctrl_c(self):
            return super().test(model, dataloaders, ckpt_path, verbose, datamodule, **kwargs)

    def _checkpoint(self, command: str, model, datamodule: IVRDataModule | None, ckpt_path: str | None) -> str | None:
        key = {"validate": "limit_val_batches", "test": "limit_test_batches", "predict": "limit_predict_batches"}[command]
        if getattr(self, key) == 0:  # Lightning would run nothing, print nothing and exit 0
            raise ValueError(f"trainer.{key} 0 leaves ivr {command} nothing to run; leave it out to run on everything")
        # a trainer that has trained in this process scores the weights it holds, as Lightning's does
        if ckpt_path is None and self.global_step > 0:
            return None
        ckpt_path = run_checkpoint(command, datamodule, ckpt_path)
        if isinstance(model, IVRLanguageModel):
            # a checkpoint replaces every weight, the aligned rows too; Lightning's own words (left to it without an
            # IVRDataModule) may resolve to no checkpoint, so the rows are installed for them
            model.weights_from_checkpoint = ckpt_path not in (None, *LIGHTNING_CHECKPOINT_WORDS)
        return ckpt_path

    def predict(
        self,
        model: LightningModule,
        dataloaders=None,
        datamodule: IVRDataModule | None = None,
        return_predictions: bool | None = None,
        ckpt_path: str | None = None,
        max_new_tokens: int = GenerationSettings.max_new_tokens,
        temperature: float = GenerationSettings.temperature,
        top_k: int = GenerationSettings.top_k,
        weights_only: bool | None = None,
    ):
        """Continue each prompt of --data.prompts_path; writes predictions.jsonl and prints the continuations.

        Without --ckpt_path the last fit's ``last.ckpt`` is used (and named); ``--ckpt_path base`` generates from
        the configured model without fine-tuning.

        Args:
            return_predictions: Ignored: the continuations are always collected, written and printed.
            ckpt_path: Lightning checkpoint to generate from; default (or ``last``) the last fit's ``last.ckpt``;
                ``best``: the best checkpoint it records; ``base``: the configured model without fine-tuning.
            max_new_tokens: Tokens generated per prompt (fewer if the model's position table runs out).
            temperature: Sampling temperature; 0 decodes greedily.
            top_k: Sample among the k most likely tokens; 0: among all.
            weights_only: As for fit: ``True`` loads only tensors and primitive types from ``ckpt_path`` (for a
                checkpoint from an untrusted source); default Lightning's.
        """
        GenerationSettings(max_new_tokens, temperature, top_k)  # checked before any file is read
        if self.world_size > 1:  # each process would write its own share of the prompts to the one file
            raise ValueError("ivr predict writes one predictions.jsonl from one process: run it on one device "
                             "(--trainer.devices 1)")
        if datamodule is not None:
            read_prompts(datamodule.hparams.prompts_path)  # the first thing to get right, so the first error named
        ckpt_path = self._checkpoint("predict", model, datamodule, ckpt_path)
        if isinstance(model, IVRLanguageModel):
            stops, pad = datamodule.generation_ids() if datamodule is not None else ((), None)
            model.generation = GenerationSettings(max_new_tokens, temperature, top_k, stops, pad)
        with _weights_fit(ckpt_path, SAME_MODEL), _ctrl_c(self):
            predictions = super().predict(model, dataloaders, datamodule, True, ckpt_path,
                                          **_weights_only(weights_only)) or []
        if datamodule is not None:
            tok = datamodule.tokenizer()
            records = [{"prompt": p["prompt"], "continuation": tok.decode(p["ids"])} for p in predictions]
            target = datamodule.paths.predictions
            write_text(target, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
            for r in records:
                print(f"--- {r['prompt']!r}\n{r['prompt']}{r['continuation']}")
            print(f"ivr predict: {len(records)} continuations written to {target}")
        return predictions

    def init(
        self,
        model: LightningModule,
        datamodule: IVRDataModule,
        force: bool | None = None,
        raw_corpora_dir: str | None = None,
        cleaned_corpora_dir: str | None = None,
        text_key: str | None = None,
        encoding: str | None = None,
        normalize_force: bool | None = None,
    ) -> None:
        """Fetch the original tokenizer and clean the raw corpus. Reads only the data.* options and these shorthands.

        The rest of the config is accepted and ignored. Cleaning writes UTF-8 documents.

        Args:
            force: Fetch the original tokenizer again (shorthand for --data.force; ``--force`` alone means true).
            raw_corpora_dir: Raw corpus directory (shorthand for --data.raw_corpora_dir; also --raw-corpora-dir).
            cleaned_corpora_dir: Cleaned corpus directory (shorthand for --data.cleaned_corpora_dir; also
                --cleaned-corpora-dir).
            text_key: JSON field with the text (shorthand for --data.text_key; also --text-key).
            encoding: Encoding of raw files (shorthand for --data.encoding).
            normalize_force: Clean again even if a cleaned copy exists (shorthand for --data.normalize_force;
                also --normalize-force; alone it means true).
        """
        overrides = {
            "force": force,
            "raw_corpora_dir": raw_corpora_dir,
            "cleaned_corpora_dir": cleaned_corpora_dir,
            "text_key": text_key,
            "encoding": encoding,
            "normalize_force": normalize_force,
        }
        datamodule.hparams.update({k: v for k, v in overrides.items() if v is not None})
        _print_artifacts("init", datamodule.run_stage("init"))


SAME_MODEL = "use the model settings of the fit that wrote it"


def _weights_only(weights_only: bool | None) -> dict:
    """Lightning's ``weights_only`` argument where given: Lightning before 2.6 has none."""
    return {} if weights_only is None else {"weights_only": weights_only}


@contextlib.contextmanager
def _ctrl_c(trainer: Trainer):
    """Ctrl-C in a command Lightning runs: Lightning ends it with its own status 1; the interrupt goes on to
    ``ivr.cli.main``, which gives every command the same line and status 130."""
    try:
        yield
    except SystemExit:
        if not trainer.interrupted:
            raise
        raise KeyboardInterrupt from None


@contextlib.contextmanager
def _weights_fit(ckpt_path: str | None, what_to_do: str):
    """A checkpoint whose weights do not fit the configured model: one error naming it, not torch's traceback."""
    try:
        yield
    except RuntimeError as err:
        # only the restore's own error: a shape bug in training code must keep its traceback
        if ckpt_path is None or "Error(s) in loading state_dict" not in str(err):
            raise
        from ivr.checkpoints import first_mismatch

        raise ValueError(f"{ckpt_path}: its weights do not fit the configured model ({first_mismatch(err)}); "
                         f"{what_to_do}") from None


def _align(
    self: IVRTrainer,
    model: LightningModule,
    datamodule: IVRDataModule,
    model_name: str | None = None,
    original_tokenizer_dir: str | None = None,
    remapped_tokenizer_dir: str | None = None,
    remap_rules_path: str | None = None,
    embeddings_output_dir: str | None = None,
    init_strategy: InitStrategy | None = None,
) -> None:
    """Write original, aligned and final embedding rows; reassigned rows start from their new strings' meaning.

    Args:
        model_name: Base model to read embeddings from (default: model.model_name_or_path; also --model-name).
        original_tokenizer_dir: Original tokenizer directory (default: under data.artifacts_dir;
            also --original-tokenizer-dir).
        remapped_tokenizer_dir: Remapped tokenizer directory (default: under data.artifacts_dir;
            also --remapped-tokenizer-dir).
        remap_rules_path: Rules to apply (default: the remap stage's remap_rules.yaml; also --remap-rules-path).
        embeddings_output_dir: Output directory (shorthand for --data.embeddings_output_dir; also
            --embeddings-output-dir).
        init_strategy: mean | global_mean | random | zeros | omp (shorthand for --data.align.init_strategy; also
            --init-strategy).
    """
    hp = datamodule.hparams
    if model_name is not None:
        hp.base_model_name_or_path, hp.base_model_config = model_name, None
    if embeddings_output_dir is not None:
        hp.embeddings_output_dir = embeddings_output_dir
    if init_strategy is not None:
        hp.align = replace(settings_as(AlignSettings, hp.align), init_strategy=init_strategy)
    overrides = {
        "original_tokenizer_dir": original_tokenizer_dir,
        "remapped_tokenizer_dir": remapped_tokenizer_dir,
        "rules_path": remap_rules_path,
    }
    _print_artifacts("align", datamodule.run_stage("align", **{k: v for k, v in overrides.items() if v}))


def _verify_tokenizer(self: IVRTrainer, model: LightningModule, datamodule: IVRDataModule) -> None:
    """Compare the distilled tokenizer with the original BPE on every verification text and on every id.

    The texts: the corpus, the held-out documents, the English reference (Python's help topics) and
    data.extra_eval_paths."""
    summary = pipeline.verify(datamodule.config)
    for name, stats in summary["sets"].items():
        print(f"{name}: {exact_share(stats['rates']['word_occurrence'])} of word occurrences exact "
              f"({stats['mismatched_occurrences']} of {stats['word_occurrences']} wrong)")
    _print_artifacts("verify-tokenizer", [datamodule.paths.distillation_report_md, datamodule.paths.distillation_report_json])


def _export(self: IVRTrainer, model: LightningModule, datamodule: IVRDataModule, ckpt_path: str | None = None,
            weights_only: bool | None = None) -> None:
    """Write a Hugging Face directory (config, safetensors weights, tokenizer) that transformers loads offline.

    Args:
        ckpt_path: Lightning checkpoint to export; default (or ``last``) the last fit's ``last.ckpt``; ``best``: the
            best checkpoint it records; ``base``: the model as configured, without fine-tuning (base plus aligned
            rows).
        weights_only: ``True`` loads only tensors and primitive types from ``ckpt_path`` (for a checkpoint from
            an untrusted source; one whose hyperparameters hold other objects is then refused); default: the whole
            checkpoint, which runs the code it pickles.
    """
    ckpt_path = run_checkpoint("export", datamodule, ckpt_path)
    base = "the configured model without fine-tuning (--ckpt_path base)"
    _print_artifacts("export", [export_model(model, datamodule, ckpt_path, base if ckpt_path is None else None,
                                             bool(weights_only))])


def export_model(model: IVRLanguageModel, datamodule: IVRDataModule, ckpt_path: str | None = None,
                 weights: str | None = None, weights_only: bool = False):
    """Export ``model``'s weights as they are, or those of the checkpoint ``ckpt_path`` (read with
    ``weights_only``); ``weights`` says which (recorded in ``ivr_export.json``; default: the checkpoint, or the
    fit's final weights)."""
    import torch

    from ivr.checkpoints import load_lightning_checkpoint
    from ivr.export import export_hf, export_step

    if model.model is None:
        model.weights_from_checkpoint = bool(ckpt_path)
        model.configure_model()
    step = 0 if weights else model.global_step
    if ckpt_path:
        data_state = type(datamodule).__qualname__  # where Lightning keeps the data module's state_dict()

        dtypes = set()

        def check(checkpoint: dict) -> None:
            nonlocal step
            datamodule.check_checkpoint(checkpoint.get(data_state, {}), ckpt_path)
            step = checkpoint.get("global_step")
            dtypes.update(v.dtype for v in checkpoint["state_dict"].values() if torch.is_floating_point(v))

        load_lightning_checkpoint(model.model, ckpt_path, check=check, weights_only=weights_only)
        if len(dtypes) == 1:  # a bf16-true fit's weights stay bfloat16, as the fit's own export writes them
            model.model.to(dtypes.pop())
    weights = weights or ("checkpoint" if ckpt_path else f"the fit's final weights (step {step})")
    shape = as_shape(model.hparams.from_config)
    # a model built from a shape has no name: its shape (seed included) says which weights it started from
    meta = {"weights": weights, "step": step, "checkpoint": ckpt_path, "tokenizer": datamodule.hparams.tokenizer,
            "base": model.hparams.model_name_or_path, "base_shape": asdict(shape) if shape is not None else None}
    # last.ckpt may lag the fit's final weights (checkpoints come with validation), which the fit exported
    before = export_step(datamodule.paths.export_dir)
    if before is not None and isinstance(step, int) and before > step:
        log.warning("replacing the export of step %d in %s with weights of step %d", before,
                    datamodule.paths.export_dir, step)
    tokenizer_dir = datamodule.paths.tokenizer_dir(datamodule.hparams.tokenizer)
    datamodule.check_vocabulary_unchanged()
    return export_hf(model.model, tokenizer_dir, datamodule.paths.export_dir, meta)


def _stage_command(name: str, description: str):
    def command(self: IVRTrainer, model: LightningModule, datamodule: IVRDataModule) -> None:
        _print_artifacts(name, datamodule.run_stage(name))

    command.__doc__ = description + DATA_ONLY
    command.__name__ = name.replace("-", "_")
    return command


for _name, _description in STAGE_COMMANDS.items():
    # hyphenated names are valid attributes via setattr, and LightningCLI looks subcommands up by name
    setattr(IVRTrainer, _name, _stage_command(_name, _description))
IVRTrainer.align = _align
_verify_tokenizer.__doc__ += DATA_ONLY
setattr(IVRTrainer, "verify-tokenizer", _verify_tokenizer)
IVRTrainer.export = _export


DATA_ONLY_COMMANDS = {*STAGE_COMMANDS, "verify-tokenizer", "init"}
