"""Training progress as plain log lines, readable in a log file (CI, nohup, a cluster job) as well as a terminal.

Lightning's progress bar redraws one line and, with output to a file, shows nothing until the epoch ends; this
callback writes a line every ``every_seconds`` (and after each validation) with the step, loss, learning rate,
throughput and the time left. The progress bar itself is Lightning's, without the epoch total it gets wrong for a
fit bounded by steps.
"""

from __future__ import annotations

import logging
import math
import time

from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.callbacks import ProgressBar, RichProgressBar
from lightning.pytorch.callbacks.progress.rich_progress import _RICH_AVAILABLE

log = logging.getLogger("ivr.progress")


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


class ProgressLog(Callback):
    def __init__(self, every_seconds: float = 30.0):
        """Log a line of training progress at most every ``every_seconds`` and after each validation.

        Args:
            every_seconds: Seconds between two progress lines (the first comes after the first step).
        """
        self.every_seconds = every_seconds
        self._started = self._last = 0.0
        self._tokens = self._first_step = 0

    def on_train_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        self._started = time.monotonic()
        self._last = -math.inf
        self._tokens = 0
        # a resumed fit starts at its checkpoint's step: the rate counts the steps this run took
        self._first_step = trainer.global_step

    def on_train_batch_end(self, trainer: Trainer, pl_module: LightningModule, outputs, batch, batch_idx: int) -> None:
        # one line per step for the whole job: rank 0 speaks for every rank, whose batches are the same size
        if not trainer.is_global_zero:
            return
        self._tokens += int(batch["input_ids"].numel()) * trainer.world_size
        now = time.monotonic()
        if now - self._last < self.every_seconds:
            return
        self._last = now
        elapsed = now - self._started
        # the model's count of the fit's steps covers a fit bounded by epochs too
        total = getattr(pl_module, "total_steps", None) or (trainer.max_steps if trainer.max_steps > 0 else None)
        step = trainer.global_step
        metrics = trainer.callback_metrics
        parts = [f"step {step}" + (f"/{total}" if total else "")]
        for name, label in (("train/loss", "loss"), ("train/bits_per_byte", "bits/byte"), ("train/lr", "lr")):
            if name in metrics:
                parts.append(f"{label} {float(metrics[name]):.4g}")
        parts.append(f"{self._tokens / max(elapsed, 1e-9):,.0f} tokens/s")
        parts.append(f"elapsed {_duration(elapsed)}")
        if total and step > self._first_step:
            parts.append(f"ETA {_duration(elapsed / (step - self._first_step) * (total - step))}")
        log.info("train: %s", ", ".join(parts))

    def on_validation_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        metrics = trainer.callback_metrics
        shown = [f"{name} {float(metrics[name]):.4f}" for name in ("val/loss", "val/bits_per_byte") if name in metrics]
        if not shown:
            return
        if trainer.state.fn == "fit":
            log.info("validation at step %d: %s", trainer.global_step, ", ".join(shown))
        else:  # `ivr validate` restores the weights, not the step: name what was scored
            log.info("validation of %s: %s", trainer.ckpt_path or "the configured model", ", ".join(shown))


class StepBoundedRichProgressBar(RichProgressBar):
    """Lightning's rich progress bar, whose training line reads ``Epoch 3/-2`` where no epoch limit is set
    (``max_epochs`` -1, as Lightning sets it for a fit bounded by ``max_steps``): this one reads ``Epoch 3``."""

    def _get_train_description(self, current_epoch: int) -> str:
        if self.trainer.max_epochs != -1:
            return super()._get_train_description(current_epoch)
        # padded as Lightning pads it, so that the line does not jump when validation's bar shows
        return f"Epoch {current_epoch}".ljust(len(self.validation_description))


def with_progress_bar(callbacks, enable_progress_bar: bool | None) -> list[Callback] | Callback | None:
    """A trainer's ``callbacks`` with :class:`StepBoundedRichProgressBar` where Lightning would add its own rich
    bar: the bar is on and no progress bar is given. Otherwise ``callbacks`` as they are."""
    given = [] if callbacks is None else [callbacks] if isinstance(callbacks, Callback) else list(callbacks)
    if enable_progress_bar is False or not _RICH_AVAILABLE or any(isinstance(c, ProgressBar) for c in given):
        return callbacks
    return [*given, StepBoundedRichProgressBar()]
