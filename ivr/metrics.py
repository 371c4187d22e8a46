"""Language-model loss and bits per byte, the metric that compares models across tokenizers.

Bits per byte is the summed negative log-likelihood of the predicted tokens, in bits, divided by the UTF-8
bytes those tokens stand for (``ivr.packing`` counts them). Per-token loss only compares runs that share a
tokenizer.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def token_nll(logits: torch.Tensor, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Next-token negative log-likelihood (nats) of every predicted token, and those tokens, flattened."""
    targets = input_ids[:, 1:].reshape(-1)
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.size(-1)).float(), targets, reduction="none"), targets


def bits_per_byte(nll_nats, n_bytes):
    """Summed negative log-likelihood in nats → bits per byte of ``n_bytes`` (at least 1, so that an empty
    set gives 0, not a division by zero). Floats or tensors."""
    n_bytes = n_bytes.clamp(min=1) if isinstance(n_bytes, torch.Tensor) else max(n_bytes, 1)
    return nll_nats / LN2 / n_bytes
