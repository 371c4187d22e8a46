"""Language-model loss sums and bits per byte."""

from __future__ import annotations

import math

import pytest
import torch

from ivr.metrics import LN2, bits_per_byte, token_nll


def test_bits_per_byte_of_a_known_nll():
    # 8 bits of surprise spread over 4 bytes
    assert bits_per_byte(8 * math.log(2), 4) == pytest.approx(2.0)
    assert bits_per_byte(torch.tensor(8 * LN2), torch.tensor(4)).item() == pytest.approx(2.0)


def test_bits_per_byte_of_no_bytes_is_not_a_division_by_zero():
    assert bits_per_byte(0.0, 0) == 0.0
    assert bits_per_byte(torch.tensor(0.0), torch.tensor(0)).item() == 0.0


def test_token_nll_is_the_next_token_negative_log_likelihood():
    logits = torch.randn(2, 5, 11, generator=torch.Generator().manual_seed(0))
    ids = torch.randint(0, 11, (2, 5), generator=torch.Generator().manual_seed(1))
    nll, targets = token_nll(logits, ids)
    logp = torch.log_softmax(logits[:, :-1], -1)
    expected = -logp.gather(2, ids[:, 1:, None])[..., 0]
    assert torch.equal(targets, ids[:, 1:].reshape(-1))
    assert torch.allclose(nll, expected.reshape(-1), atol=1e-6)
    assert nll.sum().item() == pytest.approx(expected.sum().item(), rel=1e-6) and targets.numel() == 2 * 4


def test_bits_per_byte_of_one_byte_is_the_nll_in_bits():
    """Only an empty set is counted as one byte; a real byte count divides as it is."""
    nll = 3 * LN2
    assert bits_per_byte(nll, 1) == pytest.approx(3.0)
    assert bits_per_byte(torch.tensor(nll), torch.tensor(1)).item() == pytest.approx(3.0)


def test_token_nll_of_half_precision_logits_is_computed_in_float32():
    """Under bf16 training the logits are bfloat16: the loss sums need float32's precision, not bfloat16's
    three significant digits."""
    logits = torch.randn(2, 9, 50, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    ids = torch.randint(0, 50, (2, 9), generator=torch.Generator().manual_seed(1))
    nll, _ = token_nll(logits, ids)
    expected, _ = token_nll(logits.float(), ids)
    assert nll.dtype == torch.float32
    assert torch.allclose(nll, expected, rtol=1e-6, atol=0)
