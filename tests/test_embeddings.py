from __future__ import annotations

import json
import re

import pytest
import torch
from tests.remap_fixtures import REASSIGNED, build_tokenizers, make_rules, tiny_gpt2, write_rules

from ivr.embeddings import (
    AlignSettings,
    RemapRule,
    align_embeddings,
    aligned_wte,
    alignment_index,
    final_wte,
    install_embeddings,
    load_final_embeddings,
    original_wte,
    read_remap_rules,
)
from ivr.paths import ArtifactPaths
from ivr.tokenizers.io import file_sha256

IDS = sorted(REASSIGNED)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Artifact tree with GPT-2's tokenizer, a remapped tokenizer and the rules file in place."""
    paths = ArtifactPaths.from_config(tmp_path_factory.mktemp("artifacts"))
    rules = make_rules()
    build_tokenizers(paths.original_tokenizer_dir, paths.remapped_tokenizer_dir, rules)
    write_rules(paths.remap_rules, rules)
    return paths, rules


def untouched(ids=IDS, size=50257):
    keep = torch.ones(size, dtype=torch.bool)
    keep[ids] = False
    return keep


def test_reader_accepts_list_and_mapping(tmp_path, workspace):
    _, rules = workspace
    a = read_remap_rules(write_rules(tmp_path / "a.yaml", rules))
    b = read_remap_rules(write_rules(tmp_path / "b.yaml", rules, wrapped=True))
    assert [(r.id, r.new_token, r.gpt2_ids) for r in a] == [(r.id, r.new_token, r.gpt2_ids) for r in b]
    assert [r.id for r in a] == IDS and all(len(r.gpt2_ids) > 1 for r in a)


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda r: r[1].update(gpt2_ids=[]), r"rule #1 \(id 40001\): gpt2_ids must be a non-empty list"),
        (lambda r: r[0].pop("new_token"), r"rule #0: missing \['new_token'\]"),
        (lambda r: r[2].update(id=r[0]["id"]), r"rule #2 \(id 40000\): id 40000 already reassigned"),
        (lambda r: r[0].update(id="7"), r"rule #0: id must be an int"),
        (lambda r: r[0].update(gpt2_ids=[1, True]), r"gpt2_ids must hold ints"),
    ],
)
def test_reader_rejects_bad_rules(tmp_path, workspace, edit, message):
    rules = json.loads(json.dumps(workspace[1]))
    edit(rules)
    path = write_rules(tmp_path / "bad.yaml", rules)
    with pytest.raises(ValueError, match=message) as err:
        read_remap_rules(path)
    assert str(path) in str(err.value)


def test_reader_rejects_non_list(tmp_path):
    path = tmp_path / "rules.yaml"
    path.write_text("rules: 3\n")
    with pytest.raises(ValueError, match="expected a list of rules"):
        read_remap_rules(path)


def test_rules_must_agree_with_tokenizers(tmp_path, workspace):
    paths, rules = workspace
    vocab = {"a": 0, "b": 1, "c": 2, "old": 3}
    remapped = {"a": 0, "b": 1, "c": 2, "new": 3}
    good = [{"id": 3, "old_token": "old", "new_token": "new", "gpt2_ids": [0, 1]}]
    assert alignment_index(vocab, remapped, read_remap_rules(write_rules(tmp_path / "g.yaml", good))).tolist() == [
        0,
        1,
        2,
        3,
    ]
    for key, value, message in [
        ("old_token", "x", "old_token 'x' but the original tokenizer has 'old'"),
        ("new_token", "x", "new_token 'x' but the remapped tokenizer has 'new'"),
        ("gpt2_ids", [0, 4], r"ids \[4\] outside the vocabulary \[0, 4\)"),
        ("id", 9, r"ids \[9\] outside"),
    ]:
        bad = [{**good[0], key: value}]
        with pytest.raises(ValueError, match=message):
            alignment_index(vocab, remapped, read_remap_rules(write_rules(tmp_path / "b.yaml", bad)))
    with pytest.raises(ValueError, match="'new' at id 3, absent from the original vocabulary and from the rules"):
        alignment_index(vocab, remapped, [])


def test_alignment_moves_rows_of_moved_pieces():
    original = torch.arange(12.0).reshape(4, 3)
    source = alignment_index({"a": 0, "b": 1, "c": 2, "d": 3}, {"a": 0, "c": 1, "b": 2, "d": 3}, [])
    aligned = aligned_wte(original, source)
    assert torch.equal(aligned[1], original[2]) and torch.equal(aligned[2], original[1])
    assert torch.equal(aligned[[0, 3]], original[[0, 3]])


@pytest.mark.parametrize("strategy", ["mean", "global_mean", "random", "zeros"])
def test_strategies(workspace, strategy):
    paths, _ = workspace
    rules = read_remap_rules(paths.remap_rules)
    wte = original_wte(tiny_gpt2())
    out = final_wte(wte, wte.clone(), rules, AlignSettings(init_strategy=strategy, seed=3))
    keep = untouched()
    assert torch.equal(out[keep], wte[keep])
    assert out.dtype == wte.dtype and torch.isfinite(out).all()
    new = out[IDS]
    if strategy == "mean":
        for row, rule in zip(new, rules, strict=True):
            assert torch.allclose(row, wte[list(rule.gpt2_ids)].mean(0))
            assert not torch.allclose(row, wte[rule.id])
    elif strategy == "global_mean":
        assert torch.allclose(new, wte.mean(0).expand_as(new))
    elif strategy == "random":
        again = final_wte(wte, wte.clone(), rules, AlignSettings(init_strategy="random", seed=3))
        other = final_wte(wte, wte.clone(), rules, AlignSettings(init_strategy="random", seed=4))
        assert torch.equal(out, again) and not torch.equal(new, other[IDS])
        assert not torch.allclose(new[0], new[1])
    else:
        assert torch.equal(new, torch.zeros_like(new))


def test_random_matches_original_statistics():
    original = torch.randn(5000, 4) * torch.tensor([1.0, 2.0, 0.5, 3.0]) + torch.tensor([0.0, 5.0, -1.0, 2.0])
    rules = [RemapRule(i, "a", "b", (0,), "", f"rule {i}") for i in range(4000)]
    rows = final_wte(original, original, rules, AlignSettings(init_strategy="random"))[:4000]
    assert torch.allclose(rows.mean(0), original.mean(0), atol=0.15)
    assert torch.allclose(rows.std(0), original.std(0), rtol=0.1)


def test_unknown_strategy_rejected():
    with pytest.raises(ValueError, match="unknown init_strategy 'median'"):
        AlignSettings(init_strategy="median")


def test_nonfinite_rows_rejected(workspace):
    rules = read_remap_rules(workspace[0].remap_rules)
    wte = original_wte(tiny_gpt2())
    wte[123, 5] = float("nan")
    with pytest.raises(ValueError, match=r"non-finite rows at ids \[123\]"):
        final_wte(wte, wte, rules)


def test_stage_writes_artifacts_and_install_keeps_tie(workspace):
    paths, _ = workspace
    model = tiny_gpt2(tied=True)
    before = original_wte(model)
    out = align_embeddings(model, paths, model_name="tiny")
    assert set(out) == {"original_wte", "original_wpe", "aligned_wte", "final_wte"}
    assert torch.equal(model.transformer.wte.weight, before), "the stage must only read the model"

    meta = json.loads(paths.embedding_metadata("final_wte").read_text())
    assert meta["model_name"] == "tiny" and meta["init_strategy"] == "mean"
    assert meta["rules_sha256"] == file_sha256(paths.remap_rules)
    assert meta["rows_changed"] == 3 and meta["changed_ids"] == IDS
    assert meta["sha256"] == file_sha256(paths.embedding("final_wte"))
    assert meta["row_norms"]["changed"]["mean"] > 0 and meta["row_norms"]["unchanged"]["max"] > 0
    assert json.loads(paths.embedding_metadata("aligned_wte").read_text())["rows_changed"] == 0
    wpe = torch.load(paths.embedding("original_wpe"), weights_only=True)
    assert torch.equal(wpe, model.transformer.wpe.weight)

    final, head = load_final_embeddings(paths)
    assert head is None
    install_embeddings(model, final)
    assert model.lm_head.weight is model.transformer.wte.weight
    assert torch.equal(model.lm_head.weight[untouched()], before[untouched()])
    assert torch.equal(model.lm_head.weight[IDS], final[IDS])
    logits = model(torch.tensor([[464, 40000, 40001]])).logits
    assert logits.shape == (1, 3, 50257) and torch.isfinite(logits).all()


def test_untied_model_gets_its_own_head_rows(workspace):
    paths, _ = workspace
    model = tiny_gpt2(tied=False)
    head_before = model.lm_head.weight.detach().clone()
    out = align_embeddings(model, paths, AlignSettings(init_strategy="mean"))
    assert "final_lm_head" in out and out["final_lm_head"]["changed_ids"] == IDS

    final, head = load_final_embeddings(paths)
    with pytest.raises(ValueError, match="untied lm_head: pass final_lm_head"):
        install_embeddings(model, final)
    install_embeddings(model, final, head)
    assert model.lm_head.weight is not model.transformer.wte.weight
    assert torch.equal(model.lm_head.weight[untouched()], head_before[untouched()])
    for rule in read_remap_rules(paths.remap_rules):
        assert torch.allclose(model.lm_head.weight[rule.id], head_before[list(rule.gpt2_ids)].mean(0))
    assert not torch.allclose(model.lm_head.weight[IDS], model.transformer.wte.weight[IDS])

    # a later tied run must not leave the untied head behind
    align_embeddings(tiny_gpt2(tied=True), paths)
    assert load_final_embeddings(paths)[1] is None


def test_stage_names_tokenizers_on_disagreement(tmp_path, workspace):
    paths, rules = workspace
    bad = write_rules(tmp_path / "rules.yaml", rules[:2])
    with pytest.raises(
        ValueError,
        match=r"absent from the original vocabulary and from the rules \(original tokenizer "
        + re.escape(str(paths.original_tokenizer_dir)),
    ):
        align_embeddings(tiny_gpt2(), paths, rules_path=bad)


def test_install_rejects_wrong_shapes():
    model = tiny_gpt2()
    with pytest.raises(ValueError, match="does not fit wte"):
        install_embeddings(model, torch.zeros(10, 32))
    with pytest.raises(ValueError, match="final_lm_head must not be given"):
        install_embeddings(model, original_wte(model), original_wte(model))
