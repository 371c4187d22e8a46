"""The experiment script's evaluation agrees with the training module's own bits-per-byte metric."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def experiment():
    spec = importlib.util.spec_from_file_location("ivr_experiment", ROOT / "benchmarks" / "ivr_experiment.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_evaluate_matches_validation_bits_per_byte(experiment, gpt2_bpe):
    from ivr.model import GPT2Shape, IVRLanguageModel

    texts = ["def f(x):\n    return x + 1\n", "Hello world, this is general English text."] * 8
    blocks = experiment.pack(gpt2_bpe, texts, 16)
    assert blocks and all(b["input_ids"].shape == (16,) for b in blocks)
    expected_bytes = sum(len(t.encode()) for t in texts)
    assert sum(int(b["n_bytes"]) for b in blocks) <= expected_bytes

    module = IVRLanguageModel(model_name_or_path=None, from_config=GPT2Shape(n_embd=8, n_head=1, n_layer=1, n_positions=16))
    module.configure_model()
    got = experiment.evaluate(module.model, blocks, batch_size=3)
    batch = {k: torch.stack([b[k] for b in blocks]) for k in ("input_ids", "n_bytes")}
    module.eval()
    with torch.no_grad():
        module.validation_step(batch, 0)
    nll, nbytes = module.val_nll.compute(), module.val_bytes.compute()
    assert got["bits_per_byte"] == pytest.approx((nll / torch.log(torch.tensor(2.0)) / nbytes).item(), rel=1e-4)
    assert got["bytes"] == int(nbytes)
