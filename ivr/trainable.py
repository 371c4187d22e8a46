"""Which weights fine-tuning may change: all of them, only the embedding matrices, or only the reassigned rows.

Training only the reassigned rows keeps every other row of the token embedding (and of an untied output
layer) bit for bit: a gradient hook zeroes their gradient, and the masked matrices take no weight decay,
because AdamW's decay shrinks a row even when its gradient is zero. A tied output layer is the same parameter
as the token embedding, so one hook covers both uses of a row.
"""

from __future__ import annotations

from typing import Literal

import torch

TrainOnly = Literal["all", "embeddings", "reassigned_rows"]
TRAIN_ONLY: tuple[str, ...] = ("all", "embeddings", "reassigned_rows")


def embedding_matrices(model) -> list[torch.nn.Parameter]:
    """The token embedding and, when it is a parameter of its own (untied), the output layer's weight."""
    wte = model.get_input_embeddings().weight
    head = model.get_output_embeddings()
    return [wte] if head is None or head.weight is wte else [wte, head.weight]


def restrict_training(model, train_only: TrainOnly, reassigned_ids: torch.Tensor | None) -> list[torch.nn.Parameter]:
    """Freeze what ``train_only`` leaves out (``requires_grad`` off) and mask the gradient of frozen rows.

    Returns the parameters whose rows are masked (they must get no weight decay); empty unless
    ``train_only`` is ``reassigned_rows``, which needs ``reassigned_ids``."""
    if train_only not in TRAIN_ONLY:
        raise ValueError(f"model.train_only: {train_only!r} is not one of {', '.join(TRAIN_ONLY)}")
    if train_only == "all":
        return []
    matrices = embedding_matrices(model)
    for p in model.parameters():
        p.requires_grad_(any(p is m for m in matrices))
    if train_only == "embeddings":
        return []
    if reassigned_ids is None:
        raise ValueError(
            "model.train_only=reassigned_rows needs reassigned ids: train with data.tokenizer remapped "
            "(the align stage's rows and remap rules, linked as model.embedding_init)"
        )
    if not len(reassigned_ids):
        raise ValueError("model.train_only=reassigned_rows: the remap reassigned no ids, so nothing would train; "
                         "raise data.select.num_replacements or lower data.select.min_count")
    for matrix in matrices:
        keep = torch.zeros(matrix.shape[0], 1, dtype=matrix.dtype)
        keep[reassigned_ids] = 1
        matrix.register_hook(lambda grad, keep=keep: grad * keep.to(grad.device, grad.dtype))
    return matrices
