"""The experiment script's own measurements: the loss split by reassigned ids, and the logit shift that keeps
predictions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tests.conftest import benchmark_module


@pytest.fixture(scope="module")
def experiment():
    return benchmark_module("ivr_experiment")


def test_evaluate_splits_loss_and_mass_by_reassigned_ids(experiment):
    from tests.remap_fixtures import tiny_gpt2

    model = tiny_gpt2(seed=1)
    ids = torch.randint(0, 50257, (5, 12), generator=torch.Generator().manual_seed(0))
    reassigned = sorted(set(ids[:, 1:].flatten().tolist()[::4]))
    blocks = [{"input_ids": row, "n_bytes": torch.tensor(20)} for row in ids]
    got = experiment.evaluate(model, blocks, batch_size=2, reassigned=reassigned)

    logits = model(ids).logits[:, :-1].reshape(-1, 50257)
    targets = ids[:, 1:].reshape(-1)
    logp = torch.log_softmax(logits, -1)
    nll = -logp.gather(1, targets[:, None])[:, 0]
    mask = torch.isin(targets, torch.tensor(reassigned))
    assert got["loss"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert got["loss_reassigned"] == pytest.approx(nll[mask].mean().item(), rel=1e-5)
    assert got["loss_other"] == pytest.approx(nll[~mask].mean().item(), rel=1e-5)
    assert got["reassigned_token_share"] == pytest.approx(mask.float().mean().item())
    assert got["mass_reassigned"] == pytest.approx(logp.exp()[:, reassigned].sum(-1).mean().item(), rel=1e-4)
    assert got["log_partition"] == pytest.approx(torch.logsumexp(logits, -1).mean().item(), rel=1e-5)


def test_shift_logits_keeps_predictions_and_affine_inits_but_not_zeros(experiment):
    from tests.remap_fixtures import tiny_gpt2

    from ivr.embeddings import AlignSettings, final_wte, install_embeddings, original_wte
    from ivr.tokenizers.remap_rules import RemapRule

    def model():
        m = tiny_gpt2(seed=2)
        with torch.no_grad():  # a trained final LayerNorm: weight and bias away from their initial 1 and 0
            m.transformer.ln_f.weight.uniform_(0.8, 1.2)
            m.transformer.ln_f.bias.uniform_(0.0, 0.2)
        return m

    with pytest.raises(ValueError, match="no direction"):
        experiment.shift_logits(tiny_gpt2(), 5.0)  # bias 0: every such shift is 0
    ids = torch.randint(0, 1000, (2, 10), generator=torch.Generator().manual_seed(1))
    before = model()(ids).logits
    shifted = experiment.shift_logits(model(), -20.0)
    after = shifted(ids).logits
    assert torch.allclose(after - before, torch.full_like(before, -20.0), atol=1e-3)
    assert torch.allclose(torch.log_softmax(after, -1), torch.log_softmax(before, -1), atol=1e-3)

    rules = [RemapRule(900 + i, "o", "n", (3 * i + 1, 3 * i + 2), "", f"rule {i}") for i in range(3)]
    new_ids = ids.clone()
    new_ids[:, ::3] = 900  # the reassigned ids as inputs too
    for strategy, moves in (("mean", False), ("global_mean", False), ("random", False), ("zeros", True)):
        logp = []
        for m in (model(), experiment.shift_logits(model(), -20.0)):
            wte = original_wte(m)
            install_embeddings(m, final_wte(wte, wte, rules, AlignSettings(init_strategy=strategy)))
            logp.append(torch.log_softmax(m(new_ids).logits, -1))
        assert torch.allclose(logp[0], logp[1], atol=1e-3) != moves, strategy


def test_results_are_replaced_whole_and_a_damaged_file_is_refused_in_one_line(experiment, tmp_path, monkeypatch):
    # --tables-only trusts <out>/results.json: a run stopped while writing it must leave the earlier file whole
    earlier = json.dumps({"args": {"steps": 3}}) + "\n"
    (tmp_path / "results.json").write_text(earlier, encoding="utf-8")

    def stopped(self, data, *args, **kwargs):  # the write cut short: half the text, then the process dies
        with open(self, "w", encoding="utf-8") as f:
            f.write(data[: len(data) // 2])
        raise KeyboardInterrupt

    monkeypatch.setattr(Path, "write_text", stopped)
    with pytest.raises(KeyboardInterrupt):
        experiment.save_results(tmp_path, {"args": {"steps": 200}, "runs": {}})
    monkeypatch.undo()
    assert (tmp_path / "results.json").read_text(encoding="utf-8") == earlier

    (tmp_path / "results.json").write_text(earlier[:10], encoding="utf-8")
    with pytest.raises(SystemExit, match="results.json"):
        experiment.main(["--out", str(tmp_path), "--tables-only"])
