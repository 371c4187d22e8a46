"""The learning-rate schedule of a fit: its length in optimizer steps, and the rate at each step."""

from __future__ import annotations

import math


def schedule_steps(trainer) -> int:
    """Optimizer steps of the whole fit, for the learning-rate schedule. Lightning's ``estimated_stepping_batches``
    builds and starts the training loader to count an epoch, before a resumed fit has restored where its order
    stands, so an epoch is counted from the data module (``train_batches_per_epoch``) where it can be."""
    max_steps, max_epochs = trainer.max_steps, trainer.max_epochs
    if max_epochs is None and max_steps == -1:  # neither set: Lightning trains 1000 epochs
        max_epochs = 1000
    if max_epochs in (None, -1):
        if max_steps == -1:
            raise ValueError("the learning-rate schedule needs the fit's length: set trainer.max_steps, or a "
                             "trainer.max_epochs other than -1")
        return max_steps
    count = getattr(trainer.datamodule, "train_batches_per_epoch", None)
    if count is None:  # other data (loaders passed to fit): Lightning's own estimate
        return int(trainer.estimated_stepping_batches)
    batches, limit = count(), trainer.limit_train_batches
    batches = min(batches, limit) if isinstance(limit, int) else int(batches * limit)
    steps = math.ceil(batches / trainer.accumulate_grad_batches) * max(max_epochs, 1)
    return min(steps, max_steps) if max_steps != -1 else steps


def rate_factor(step: int, total: int, warmup_steps: int, min_lr_ratio: float) -> float:
    """The learning rate at optimizer step ``step`` of a fit of ``total`` steps, as a share of the peak rate: a
    linear warm-up over ``warmup_steps``, then a cosine down to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / (warmup_steps + 1)
    progress = min((step - warmup_steps) / max(total - warmup_steps, 1), 1.0)
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
