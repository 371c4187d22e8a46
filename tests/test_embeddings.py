from __future__ import annotations

import json
import re

import pytest
import torch
from tests.remap_fixtures import REASSIGNED, build_tokenizers, make_rules, tiny_gpt2, write_rules

from ivr.embeddings import (
    INIT_STRATEGIES,
    AlignSettings,
    align_embeddings,
    aligned_wte,
    alignment_index,
    final_wte,
    install_embeddings,
    load_final_embeddings,
    original_wte,
)
from ivr.paths import ArtifactPaths
from ivr.stamps import file_sha256
from ivr.tokenizers.remap_rules import RemapRule, read_remap_rules

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


def test_rules_must_agree_with_tokenizers(tmp_path, workspace):
    paths, rules = workspace
    vocab = {"ne": 0, "w": 1, "c": 2, "old": 3}
    remapped = {"ne": 0, "w": 1, "c": 2, "new": 3}
    good = [{"id": 3, "old_token": "old", "new_token": "new", "gpt2_ids": [0, 1]}]
    assert alignment_index(vocab, remapped, read_remap_rules(write_rules(tmp_path / "g.yaml", good))).tolist() == [
        0,
        1,
        2,
        3,
    ]
    for key, value, message in [
        # a two-character token: a single-byte one could not be freed at all
        ("old_token", "xx", "old_token 'xx' but the original tokenizer has 'old'"),
        ("new_token", "x", "new_token 'x' but the remapped tokenizer has 'new'"),
        ("gpt2_ids", [0, 4], r"ids \[4\] outside the vocabulary \[0, 4\)"),
        ("id", 9, r"ids \[9\] outside"),
        # new_text edited by hand, the ids of the string it replaced kept: rows from another string's meaning
        ("gpt2_ids", [1, 0], r"gpt2_ids \[1, 0\] spell 'wne' in the original tokenizer, not new_token 'new'"),
    ]:
        bad = [{**good[0], key: value}]
        with pytest.raises(ValueError, match=message):
            alignment_index(vocab, remapped, read_remap_rules(write_rules(tmp_path / "b.yaml", bad)))
    with pytest.raises(ValueError, match="'new' at id 3, absent from the original vocabulary and from the rules"):
        alignment_index(vocab, remapped, [])


def test_a_remapped_vocabulary_of_other_ids_is_refused_saying_how():
    original = {"a": 0, "b": 1, "c": 2, "d": 3}
    with pytest.raises(ValueError, match="remapped vocabulary has 3 ids, the original 4"):
        alignment_index(original, {"a": 0, "b": 1, "c": 2}, [])
    # as many ids, one of them past the end: no row of the original to start id 3 from
    with pytest.raises(ValueError, match=r"remapped vocabulary ids are not exactly 0\.\.3"):
        alignment_index(original, {"a": 0, "b": 1, "c": 2, "d": 7}, [])


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


def test_a_rule_reading_a_padding_row_is_refused_naming_the_rule():
    """Padding rows were never trained: a row built from one would mean nothing."""
    original = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))  # ids 0-3, then two padding rows
    rules = [RemapRule(3, "o", "n", (1, 4), "", "rules.yaml rule 1")]
    with pytest.raises(ValueError, match=r"rules.yaml rule 1: ids \[4\] outside the vocabulary \[0, 4\)"):
        final_wte(original, original.clone(), rules, vocab_size=4)


def test_an_initialised_row_that_is_not_finite_names_its_rule():
    original = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    original[[4, 5], 0] = torch.finfo(torch.float32).max  # finite rows whose sum overflows
    rules = [RemapRule(0, "a", "x", (1, 2), "", "rule 1"), RemapRule(3, "b", "y", (4, 5), "", "rule 2")]
    with pytest.raises(ValueError, match="rule 2: initialised row is not finite"):
        final_wte(original, original.clone(), rules)


def test_final_rows_are_a_new_matrix_and_leave_the_aligned_one_as_it_was():
    original = torch.randn(6, 4, generator=torch.Generator().manual_seed(0))
    aligned = original.clone()
    out = final_wte(original, aligned, [RemapRule(3, "o", "n", (1, 2))])
    assert torch.equal(aligned, original) and not torch.equal(out[3], aligned[3])


@pytest.mark.parametrize("strategy", INIT_STRATEGIES)
def test_a_half_precision_matrix_gets_the_rows_of_its_float32_copy_in_its_own_dtype(strategy):
    """Models are often loaded in bfloat16: their new rows are computed in float32, as those of a float32 model,
    and stored in the model's dtype."""
    half = torch.randn(300, 8, generator=torch.Generator().manual_seed(0)).to(torch.bfloat16)
    rules = [RemapRule(250, "o", "n", (10, 11)), RemapRule(251, "p", "m", (12, 13, 14))]
    settings = AlignSettings(init_strategy=strategy)
    out = final_wte(half, half.clone(), rules, settings)
    assert out.dtype == torch.bfloat16
    assert torch.equal(out, final_wte(half.float(), half.float(), rules, settings).to(torch.bfloat16))


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
    summary = json.loads(paths.embedding_metadata("alignment").read_text())
    assert summary["init_strategy"] == "mean" and "rows_changed 0" in summary["why"]["aligned_wte"]
    wpe = torch.load(paths.embedding("original_wpe"), weights_only=True)
    assert torch.equal(wpe, model.transformer.wpe.weight)
    # a table of positions: its record names no token ids
    wpe_meta = json.loads(paths.embedding_metadata("original_wpe").read_text())
    assert wpe_meta["shape"] == list(wpe.shape) and not {"reassigned_ids", "vocab_size", "padding_rows"} & set(wpe_meta)

    final, head = load_final_embeddings(paths.embedding("final_wte"), paths.embedding("final_lm_head"))
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

    final, head = load_final_embeddings(paths.embedding("final_wte"), paths.embedding("final_lm_head"))
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
    assert load_final_embeddings(paths.embedding("final_wte"), paths.embedding("final_lm_head"))[1] is None


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


def test_an_output_bias_is_refused_and_optional_files_are_listed(workspace):
    from ivr.embeddings import align_outputs

    paths, _ = workspace
    align_embeddings(tiny_gpt2(tied=False), paths)
    assert {paths.embedding("final_lm_head"), paths.embedding("original_wpe")} <= set(align_outputs(paths))
    model = tiny_gpt2(tied=False)
    model.lm_head.bias = torch.nn.Parameter(torch.zeros(model.lm_head.weight.shape[0]))
    with pytest.raises(ValueError, match="bias in its output layer"):
        align_embeddings(model, paths)
    align_embeddings(tiny_gpt2(tied=True), paths)
    assert paths.embedding("final_lm_head") not in align_outputs(paths)


def test_rules_that_free_a_special_id_of_the_original_are_refused(workspace, tmp_path):
    """A hand-given rules file is checked against the original's roles, as remap checks its own rules."""
    import shutil

    paths, _ = workspace
    original = tmp_path / "original"
    shutil.copytree(paths.original_tokenizer_dir, original)
    config = json.loads((original / "tokenizer_config.json").read_text())
    pieces = {i: p for p, i in json.loads((original / "tokenizer.json").read_text())["model"]["vocab"].items()}
    config["pad_token"] = pieces[IDS[0]]  # the piece the first rule frees becomes the padding token
    (original / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=rf"id {IDS[0]}.*pad"):
        align_embeddings(tiny_gpt2(), paths, original_tokenizer_dir=original)


def test_rows_aligned_for_other_remap_rules_are_refused(tmp_path):
    import json

    from ivr.embeddings import check_aligned_for
    from ivr.stamps import file_sha256

    rules, final, meta = tmp_path / "remap_rules.yaml", tmp_path / "final_wte.pt", tmp_path / "final_wte.json"
    rules.write_text("rules: []\n", encoding="utf-8")
    check_aligned_for(final, meta, rules)  # no record of the rules: nothing to compare
    meta.write_text(json.dumps({"rules_sha256": file_sha256(rules)}), encoding="utf-8")
    check_aligned_for(final, meta, rules)
    rules.write_text("rules: []\n# remapped again\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"final_wte\.pt: aligned for other remap rules \(.*final_wte\.json.*run `ivr align`"):
        check_aligned_for(final, meta, rules)


def test_the_data_module_hands_the_model_the_metadata_of_the_rows_it_installs(tmp_path):
    from ivr.data import IVRDataModule

    data = IVRDataModule(artifacts_dir=str(tmp_path), tokenizer="remapped")
    init = data.embedding_init
    assert init.final_wte == str(data.paths.embedding("final_wte"))
    assert init.final_wte_metadata == str(data.paths.embedding_metadata("final_wte"))
    # the aligned rows mean the remapped tokenizer's strings: a fit on the original or distilled ids installs none,
    # even where an earlier remapped run left them on disk
    assert [IVRDataModule(artifacts_dir=str(tmp_path), tokenizer=kind).embedding_init
            for kind in ("original", "distilled")] == [None, None]


def test_saved_embedding_rows_are_the_same_bytes_in_every_run(tmp_path):
    """The file's sha256 is recorded beside it and compared by later stages: scratch names must not reach it."""
    from ivr.embeddings import save_embedding

    rows = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    written = []
    for run in ("a", "b"):
        paths = ArtifactPaths.from_config(tmp_path / run)
        paths.embedding("final_wte").parent.mkdir(parents=True)
        meta = save_embedding(rows, paths, "final_wte", rows, {})
        assert meta["sha256"] == file_sha256(paths.embedding("final_wte"))
        assert torch.equal(torch.load(paths.embedding("final_wte"), weights_only=True), rows)
        written.append(paths.embedding("final_wte").read_bytes())
    assert written[0] == written[1]


def test_an_untied_head_that_cannot_be_initialised_leaves_every_embedding_file_as_it_was(tmp_path):
    paths = ArtifactPaths.from_config(tmp_path / "artifacts")
    rules = make_rules()
    build_tokenizers(paths.original_tokenizer_dir, paths.remapped_tokenizer_dir, rules)
    write_rules(paths.remap_rules, rules)
    align_embeddings(tiny_gpt2(tied=False), paths, AlignSettings(init_strategy="mean"))
    before = {p.name: p.read_bytes() for p in paths.embedding("final_wte").parent.iterdir()}
    model = tiny_gpt2(tied=False)
    with torch.no_grad():
        model.transformer.wte.weight.mul_(2)  # other rows for every file of this run
        model.lm_head.weight[rules[0]["gpt2_ids"]] = float("nan")  # a head that cannot give a row
    with pytest.raises(ValueError, match="non-finite rows"):
        align_embeddings(model, paths, AlignSettings(init_strategy="mean"))
    assert {p.name: p.read_bytes() for p in paths.embedding("final_wte").parent.iterdir()} == before
