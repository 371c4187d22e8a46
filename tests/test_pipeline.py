"""End to end through the whole IVR pipeline on a tiny corpus: prepare, a short fit, and the export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from ivr.cli import main
from ivr.cleaned_corpus import SplitTexts
from ivr.packing import IDS_COLUMN, SPLIT_SOURCES, read_packed_splits
from ivr.tokenizers.byte_level import EOS_ID
from ivr.tokenizers.distill import stage
from ivr.stamps import file_sha256
from ivr.tokenizers.io import load_tokenizer
from tests.conftest import tiny_cli_args


@pytest.fixture(scope="module")
def ivr_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ivr")
    args = tiny_cli_args(
        root, "--data.tokenizer", "remapped", "--data.distill.max_iterations", "2",
        "--data.distill.vocab_words", "false", "--data.distill.vocab_variants", "false",
        "--data.distill.split_rules", "false", "--data.distill.number_words", "0",
        "--data.verify.random_id_sequences", "100",
        "--data.select.num_replacements", "50", "--data.select.min_count", "5",
    )
    fit_distilled = stage.fit_distilled

    def recording_fit(bpe, counts, *a, **k):
        FIT_WORDS.update(counts)
        return fit_distilled(bpe, counts, *a, **k)

    with pytest.MonkeyPatch.context() as patch:  # the remapped tokenizer's blocks come from the pre-token table
        patch.setattr("ivr.dataset_cache.encoded_batches", lambda *a, **k: pytest.fail("the datasets were encoded"))
        patch.setattr(stage, "fit_distilled", recording_fit)
        main(["prepare", *args])
    return root, args


FIT_WORDS = {}  # the corpus words the distillation was fitted on, with their counts


def _snapshot(root):
    return {str(p): p.stat().st_mtime_ns for p in sorted(root.rglob("*")) if p.is_file()}


def test_a_second_prepare_rebuilds_nothing(ivr_run):
    root, args = ivr_run
    kept = [root / "artifacts" / part for part in ("corpora", "tokenizers", "analysis", "embeddings", "datasets")]
    before = {part: _snapshot(part) for part in kept}
    assert all(before.values())
    main(["prepare", *args])
    for stage_command in ("distill-tokenizer", "select", "remap", "align"):
        main([stage_command, *args])
    assert {part: _snapshot(part) for part in kept} == before


def test_a_verification_setting_verifies_again_without_fitting_again(ivr_run, tmp_path, monkeypatch):
    import shutil

    root, args = ivr_run
    tree = tmp_path / "tree"
    shutil.copytree(root / "artifacts", tree, symlinks=True)
    tokenizer = _snapshot(tree / "tokenizers" / "distilled_unigram")
    report = tree / "analysis" / "reports" / "distillation_report.json"
    monkeypatch.setattr(stage, "fit_distilled", lambda *a, **k: pytest.fail("fitted again"))
    main(["distill-tokenizer", *args, "--data.artifacts_dir", str(tree), "--data.verify.examples", "1"])
    summary = json.loads(report.read_text())
    assert summary["settings"]["examples"] == 1 and summary["fit"]  # the fit's record kept in the new report
    assert all(len(m["examples"]) <= 1 for s in summary["sets"].values() for m in s["mismatches"].values())
    assert _snapshot(tree / "tokenizers" / "distilled_unigram") == tokenizer
    written = report.stat().st_mtime_ns
    main(["select", *args, "--data.artifacts_dir", str(tree), "--data.verify.examples", "1"])
    assert report.stat().st_mtime_ns == written  # current now: not verified again
    # a report deleted is verified again, and strict is checked on what verification found: neither refits
    report.unlink()
    main(["distill-tokenizer", *args, "--data.artifacts_dir", str(tree), "--data.verify.examples", "1"])
    assert json.loads(report.read_text())["sets"]["corpus"]
    wrong = json.loads(report.read_text())["sets"]["corpus"]["mismatched_occurrences"]
    strict = ["distill-tokenizer", *args, "--data.artifacts_dir", str(tree), "--data.verify.examples", "1",
              "--data.distill.strict", "true"]
    assert wrong == 0 and summary["ids"]["id_to_token_identical"]  # an exact tokenizer: strict passes, unfitted
    main(strict)
    assert _snapshot(tree / "tokenizers" / "distilled_unigram") == tokenizer


def test_a_moved_artifact_tree_rebuilds_nothing(ivr_run, tmp_path):
    import shutil

    root, args = ivr_run
    moved = tmp_path / "moved"
    shutil.copytree(root / "artifacts", moved, symlinks=True)  # sizes and modification times kept, as a move keeps them
    parts = [moved / part for part in ("corpora", "tokenizers", "analysis", "embeddings", "datasets")]
    before = {part: _snapshot(part) for part in parts}
    main(["prepare", *args, "--data.artifacts_dir", str(moved)])  # no stage keys on where the tree lies
    assert {part: _snapshot(part) for part in parts} == before


def test_held_out_documents_take_no_part_in_the_fit(ivr_run, gpt2_bpe):
    root, _ = ivr_run
    cleaned = root / "artifacts" / "corpora" / "cleaned"

    def words(split):
        return {w for text in SplitTexts(cleaned, split, 0.2) for w, _ in gpt2_bpe.pre_tokenizer.pre_tokenize_str(text)}

    held_out_only = words("heldout") - words("train")
    assert FIT_WORDS and len(held_out_only) > 20
    assert not held_out_only & set(FIT_WORDS), sorted(held_out_only & set(FIT_WORDS))[:10]


def test_prepare_writes_every_artifact_consistently(ivr_run):
    root, _ = ivr_run
    art = root / "artifacts"
    reports = art / "analysis" / "reports"
    for name in ("bpe_token_id_sequences.txt", "token_frequency.parquet", "distillation_report.md",
                 "distillation_report.json", "replacement_candidates.csv", "selection_log.md",
                 "remap_report.md", "remap_report.json"):
        assert (reports / name).is_file(), name
    rules = yaml.safe_load((art / "tokenizers" / "remapped" / "remap_rules.yaml").read_text())["rules"]
    assert 0 < len(rules) <= 50
    remap = json.loads((reports / "remap_report.json").read_text())
    assert remap["reassigned"] == len(rules)
    # verification recorded both splits' pre-tokens for this tokenizer and corpus; the remapped tokenizer's blocks
    # came from them, and are what encoding every document gives
    table = json.loads((art / "analysis" / "distilled_pretokens" / "manifest.json").read_text())
    assert table["recorded"] and min(table["documents"].values()) > 0 and table["pretokens"] > 0
    assert table["tokenizer_sha256"] == file_sha256(art / "tokenizers" / "distilled_unigram" / "tokenizer.json")
    (packed,) = (art / "datasets").glob("remapped-*")
    tok = load_tokenizer(art / "tokenizers" / "remapped")
    for name, split in SPLIT_SOURCES.items():
        saved = np.asarray(read_packed_splits(packed)[name][IDS_COLUMN]).reshape(-1)
        texts = list(SplitTexts(art / "corpora" / "cleaned", split, 0.2))
        stream = [i for e in tok.encode_batch(texts, add_special_tokens=False) for i in e.ids + [EOS_ID]]
        assert saved.size and saved.tolist() == stream[: saved.size]
    final = json.loads((art / "embeddings" / "final_wte.json").read_text())
    assert sorted(final["reassigned_ids"]) == sorted(r["id"] for r in rules)
    # the base model built from a config is recorded as that config, a JSON object (not its Python text)
    assert final["model_name"]["from_config"]["architecture"] == "gpt2"

    from tokenizers import Tokenizer

    remapped = Tokenizer.from_file(str(art / "tokenizers" / "remapped" / "tokenizer.json"))
    assert remapped.get_vocab_size() == 50257
    for rule in rules:
        assert remapped.id_to_token(rule["id"]) == rule["new_token"]


def test_fit_installs_aligned_rows_logs_ivr_metrics_and_exports(ivr_run, monkeypatch, capsys):
    root, args = ivr_run
    monkeypatch.chdir(root)
    main(["fit", *args, "--trainer.max_steps", "2", "--trainer.val_check_interval", "2",
          "--trainer.limit_val_batches", "2"])
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(root / "lightning_logs" / "version_0"))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("val/bits_per_byte", "val/loss_reassigned", "val/loss_other", "embeddings/reassigned_drift"):
        assert tag in tags, tag

    from transformers import AutoModelForCausalLM, AutoTokenizer

    export = root / "artifacts" / "training" / "hf_export"
    record = json.loads((export / "ivr_export.json").read_text())
    assert record["weights"] == "the fit's final weights (step 2)"
    assert record["base"] is None and record["base_shape"]["n_embd"] == 16 and record["base_shape"]["init_seed"] == 0
    model = AutoModelForCausalLM.from_pretrained(str(export))
    tok = AutoTokenizer.from_pretrained(str(export))
    rules = yaml.safe_load((export / "remap_rules.yaml").read_text())["rules"]
    text = "def f(x):\n        return x\n"
    assert tok.decode(tok(text).input_ids) == text
    assert model.config.vocab_size == len(tok) == 50257
    assert rules
    # the checkpoint (its hyperparameters name the aligned rows) loads where Lightning loads it weights-only
    main(["validate", *args, "--trainer.limit_val_batches", "1"])
    main(["fit", *args, "--trainer.max_steps", "3", "--trainer.limit_val_batches", "1", "--ckpt_path", "last"])
    import torch

    last = root / "artifacts" / "training" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3  # resumed at step 2, trained one more
    # scoring and predicting keep the tokenizer the checkpoint was trained on: a changed setting would rebuild the
    # remap (and then refuse the checkpoint), a corpus setting clean again from a raw folder no longer there
    kept = {part: _snapshot(root / "artifacts" / part) for part in ("tokenizers", "analysis", "embeddings")}
    main(["validate", *args, "--trainer.limit_val_batches", "1", "--data.select.num_replacements", "40"])
    prompts = root / "prompts.txt"
    prompts.write_text("def f(x):\n", encoding="utf-8")
    main(["predict", *args, "--data.prompts_path", str(prompts), "--max_new_tokens", "2",
          "--data.builtin_corpus", "null", "--data.raw_corpora_dir", str(root / "gone")])
    assert {part: _snapshot(root / "artifacts" / part) for part in kept} == kept
    # export runs no stage: rows aligned from the configured model's former weights are refused, not mixed in
    with pytest.raises(ValueError, match="aligned from another model's token rows"):
        main(["export", *args, "--ckpt_path", "base", "--model.from_config.init_seed", "1"])
    # a checkpoint holds every weight: scored, continued and exported without the aligned rows on disk (a tree
    # copied without embeddings/); the configured model without fine-tuning needs them
    away = root / "artifacts" / "embeddings-away"
    (root / "artifacts" / "embeddings").rename(away)
    try:
        capsys.readouterr()
        main(["validate", *args, "--trainer.limit_val_batches", "1"])
        # the drift is measured from the rows the fit started from, which the checkpoint carries
        out = capsys.readouterr().out
        assert "embeddings/reassigned_drift" in out and "val/loss_reassigned" in out
        main(["predict", *args, "--data.prompts_path", str(prompts), "--max_new_tokens", "1"])
        main(["export", *args, "--ckpt_path", "last"])
        from safetensors.torch import load_file

        exported = load_file(export / "model.safetensors")
        state = torch.load(last, weights_only=True)["state_dict"]
        assert exported and all(torch.equal(t, state[f"model.{name}"]) for name, t in exported.items())
        with pytest.raises(FileNotFoundError, match=r"no embeddings at .*final_wte\.pt: run `ivr align`"):
            main(["export", *args, "--ckpt_path", "base"])
        assert not (root / "artifacts" / "embeddings").exists()  # no stage aligned them again
    finally:
        away.rename(root / "artifacts" / "embeddings")


def test_the_remap_report_says_what_each_text_is(ivr_run):
    root, _ = ivr_run
    report = (root / "artifacts" / "analysis" / "reports" / "remap_report.md").read_text(encoding="utf-8")
    assert "- `heldout_domain`: the corpus's held-out documents (data.heldout_fraction 0.2)" in report
    assert "- `general`: general English: Python's help topics" in report
    # and which tokenizers and rules, by hash
    from ivr.stamps import file_sha256

    art = root / "artifacts"
    inputs = json.loads((art / "analysis" / "reports" / "remap_report.json").read_text())["inputs"]
    for kind, folder in (("original", "original"), ("distilled", "distilled_unigram")):
        assert file_sha256(art / "tokenizers" / folder / "tokenizer.json") in inputs[f"{kind} tokenizer"]
    assert file_sha256(art / "analysis" / "reports" / "replacement_candidates.csv") in inputs["rules"]
    assert inputs["data.remap.new_piece_bonus"] > 0 and "## Inputs" in report and inputs["rules"] in report
    # the selection log too: which distilled tokenizer and corpus the strings were picked on
    log_md = (art / "analysis" / "reports" / "selection_log.md").read_text(encoding="utf-8")
    assert log_md.index("## Inputs") < log_md.index("## Parameters")
    assert inputs["distilled tokenizer"] in log_md and inputs["corpus"] in log_md


def test_verify_tokenizer_command_reports_rates(ivr_run, capsys):
    root, args = ivr_run
    main(["verify-tokenizer", *args])
    out = capsys.readouterr().out
    assert "heldout:" in out and "% of word occurrences exact" in out
    report = json.loads((root / "artifacts" / "analysis" / "reports" / "distillation_report.json").read_text())
    assert set(report["sets"]) >= {"corpus", "heldout", "english_reference"}
    assert report["ids"]["id_to_token_identical"] and report["ids"]["single_id_decode_mismatches"] == 0
    # the fit's statistics and settings come from the tokenizer's own record, not from the command's config
    meta = json.loads((root / "artifacts" / "tokenizers" / "distilled_unigram" / "ivr_metadata.json").read_text())
    assert report["fit"] == meta["fit"] and report["settings"]["max_iterations"] == meta["settings"]["max_iterations"] == 2
    # the tokenizer records what was fitted: verification's settings and strict are the report's, set per run
    assert not {"seed", "examples", "random_id_sequences", "strict"} & set(meta["settings"])
    assert report["fit"]["history"] and "split_rules_considered" in report["fit"]  # the whole record, round table too
    # which tokenizer and which text, by hash: what produced the figures
    from ivr.cleaned_corpus import corpus_content
    from ivr.stamps import file_sha256

    art = root / "artifacts"
    inputs = report["inputs"]
    assert file_sha256(art / "tokenizers" / "original" / "tokenizer.json") in inputs["original tokenizer"]
    assert corpus_content(art / "corpora" / "cleaned") in inputs["corpus"] and inputs["data.heldout_fraction"] == 0.2
    md = (art / "analysis" / "reports" / "distillation_report.md").read_text()
    assert "## Inputs" in md and inputs["corpus"] in md
    # analyze's files name the same tokenizer and corpus (no split: analyze encodes every document)
    from ivr.analysis.frequency import frequency_inputs, id_sequences_inputs

    analyzed = {k: inputs[k] for k in ("original tokenizer", "corpus")}
    assert id_sequences_inputs(art / "analysis" / "reports" / "bpe_token_id_sequences.txt") == analyzed
    assert frequency_inputs(art / "analysis" / "reports" / "token_frequency.parquet") == analyzed


def test_align_shorthand_flags(ivr_run):
    import torch

    root, args = ivr_run
    out_dir = root / "zeros"
    main(["align", *args, "--init-strategy", "zeros", "--embeddings-output-dir", str(out_dir)])
    final = torch.load(out_dir / "final_wte.pt")
    original = torch.load(out_dir / "original_wte.pt")
    meta = json.loads((out_dir / "final_wte.json").read_text())
    ids = meta["reassigned_ids"]
    assert meta["init_strategy"] == "zeros" and ids
    assert torch.count_nonzero(final[ids]) == 0
    untouched = torch.ones(len(final), dtype=torch.bool)
    untouched[ids] = False
    assert torch.equal(final[untouched], original[untouched])


def test_align_rebuilds_when_a_local_checkpoint_is_saved_again(ivr_run, tmp_path):
    """The same checkpoint directory holding new weights must not reuse embeddings aligned from the old ones."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    root, args = ivr_run
    base, out_dir = tmp_path / "base", tmp_path / "emb"
    config = GPT2Config(n_layer=1, n_head=1, n_embd=16, n_positions=32)
    align = ["align", *args, "--model-name", str(base), "--embeddings-output-dir", str(out_dir)]
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = GPT2LMHeadModel(config)
        model.save_pretrained(base)
        main(align)
        assert torch.equal(torch.load(out_dir / "original_wte.pt"), model.transformer.wte.weight.detach())


def test_align_reads_a_model_without_sdpa_named_from_the_home_folder(ivr_run, tmp_path, monkeypatch):
    """GPT-Neo (GPT-2's vocabulary) refuses sdpa attention; align reads weights only, and ``~`` is a path."""
    import torch
    from transformers import GPTNeoConfig, GPTNeoForCausalLM

    from ivr.causal_lm import load_pretrained

    root, args = ivr_run
    monkeypatch.setenv("HOME", str(tmp_path))
    model = GPTNeoForCausalLM(GPTNeoConfig(num_layers=1, num_heads=1, hidden_size=16, max_position_embeddings=32,
                                           attention_types=[[["global"], 1]]))
    model.save_pretrained(tmp_path / "neo")
    with pytest.raises(ValueError, match="set model.attn_implementation: eager"):
        load_pretrained("~/neo")
    main(["align", *args, "--model-name", "~/neo", "--embeddings-output-dir", str(tmp_path / "emb")])
    assert torch.equal(torch.load(tmp_path / "emb" / "original_wte.pt"), model.transformer.wte.weight.detach())
    (tmp_path / "neo" / "ivr_export.json").write_text("{}")  # an export named from the home folder is one too
    with pytest.raises(ValueError, match="is an ivr export, whose reassigned rows are trained already"):
        main(["align", *args, "--model-name", "~/neo", "--embeddings-output-dir", str(tmp_path / "emb")])


def test_align_rebuilds_a_damaged_untied_head(ivr_run, tmp_path):
    """An untied model's final_lm_head.pt is signed by the align stamp like the files every run writes."""
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    root, args = ivr_run
    base, out_dir = tmp_path / "base", tmp_path / "emb"
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_head=1, n_embd=16, n_positions=32, tie_word_embeddings=False)
                    ).save_pretrained(base)
    align = ["align", *args, "--model-name", str(base), "--embeddings-output-dir", str(out_dir)]
    main(align)
    head = out_dir / "final_lm_head.pt"
    written = torch.load(head)
    head.write_bytes(head.read_bytes()[:100])
    main(align)
    assert torch.equal(torch.load(head), written)


def test_a_selection_without_a_validation_part_leaves_no_curve_of_an_earlier_one(ivr_run):
    """Last in this file: it changes the selection the other tests share."""
    root, args = ivr_run
    curve = root / "artifacts" / "analysis" / "reports" / "savings_curve.png"
    assert curve.is_file()
    main(["select", *args, "--data.select.validation_fraction", "0"])
    assert not curve.exists()


def test_hand_edited_rules_may_not_free_an_id_the_user_protected(ivr_run, tmp_path):
    import shutil

    from ivr.tokenizers.remap_rules import RemapRuleError

    root, args = ivr_run
    tree = tmp_path / "artifacts"
    shutil.copytree(root / "artifacts", tree, symlinks=True)
    rules = yaml.safe_load((tree / "tokenizers" / "remapped" / "remap_rules.yaml").read_text(encoding="utf-8"))["rules"]
    edited = tmp_path / "edited.yaml"
    edited.write_text(yaml.safe_dump([{"id": r["id"], "new_text": r["new_text"]} for r in rules[:3]]), encoding="utf-8")
    remap = ["remap", *args, "--data.artifacts_dir", str(tree), "--data.remap.remap_rules_path", str(edited)]
    with pytest.raises(RemapRuleError, match=rf"edited.yaml:\d+: rule 3 \(id {rules[2]['id']}\): the id is protected"):
        main([*remap, "--data.select.protected_tokens", json.dumps([rules[2]["old_text"]])])
    main(remap)
    assert len(yaml.safe_load((tree / "tokenizers" / "remapped" / "remap_rules.yaml").read_text())["rules"]) == 3


def test_align_refuses_an_ivr_export_as_its_base_model(tmp_path):
    """An export's ids already mean the new strings: aligning would overwrite the rows its fit trained."""
    from ivr import pipeline
    from ivr.export import EXPORT_METADATA_FILE
    from ivr.paths import ArtifactPaths
    from ivr.pipeline_config import BaseModel, PipelineConfig

    export = tmp_path / "hf_export"
    export.mkdir()
    (export / EXPORT_METADATA_FILE).write_text("{}", encoding="utf-8")
    rules = tmp_path / "rules.yaml"
    rules.write_text("[]\n", encoding="utf-8")
    config = PipelineConfig(paths=ArtifactPaths.from_config(tmp_path / "artifacts"),
                            base_model=BaseModel(name_or_path=str(export)))
    with pytest.raises(ValueError, match=r"hf_export is an ivr export, whose reassigned rows are trained already"):
        pipeline.align(config, tmp_path / "original", tmp_path / "remapped", rules)


def test_align_without_a_base_model_says_which_settings_name_one(tmp_path):
    from ivr import pipeline
    from ivr.paths import ArtifactPaths
    from ivr.pipeline_config import PipelineConfig

    rules = tmp_path / "rules.yaml"
    rules.write_text("[]\n", encoding="utf-8")
    config = PipelineConfig(paths=ArtifactPaths.from_config(tmp_path / "artifacts"))
    with pytest.raises(ValueError, match=r"^ivr align needs a base model: set model.model_name_or_path or "
                                         r"model.from_config$"):
        pipeline.align(config, tmp_path / "original", tmp_path / "remapped", rules)


def test_strict_distillation_is_no_part_of_what_the_fit_is_keyed_on(tmp_path, raw_dir):
    """``distill.strict`` decides only whether a verified mismatch fails the stage: switching it must not refit."""
    from dataclasses import replace

    from ivr import pipeline
    from tests.test_concurrency import config_for

    config = config_for(tmp_path, raw_dir)
    pipeline.run_stage(config, "init")
    keys = [pipeline.distill_key(replace(config, distill=replace(config.distill, strict=strict)))
            for strict in (False, True)]
    assert keys[0] == keys[1]


def test_each_extra_evaluation_file_is_a_text_set_of_its_own_and_its_contents_key_verification(tmp_path, raw_dir):
    """Each file of ``data.extra_eval_paths`` gets its own row in the reports; a file edited in place verifies
    again."""
    from dataclasses import replace

    from ivr import pipeline
    from tests.test_concurrency import config_for

    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("def first():\n    pass\n", encoding="utf-8")
    second.write_text("Second file.\n", encoding="utf-8")
    config = replace(config_for(tmp_path, raw_dir), extra_eval_paths=(str(first), str(second)))
    extra = pipeline.extra_eval_texts(config)
    assert list(extra) == ["english_reference", str(first), str(second)]
    assert extra[str(first)] == ["def first():\n    pass\n"] and extra[str(second)] == ["Second file.\n"]
    pipeline.run_stage(config, "init")
    before = pipeline._verification_key(config)
    second.write_text("Second file, edited.\n", encoding="utf-8")
    assert pipeline._verification_key(config) != before


def test_a_datasets_folder_the_tree_names_is_removed_once_its_tokenizer_file_changes(tmp_path):
    """Blocks packed with an earlier version of a tokenizer file (hundreds of MB at scale) are deleted by the next
    build: the folder the artifact tree names must be one that clean-up recognizes as that tokenizer's."""
    from ivr.packing import DATASET_RECORD_FILE, remove_superseded_datasets
    from ivr.paths import ArtifactPaths

    paths = ArtifactPaths.from_config(tmp_path / "artifacts")
    earlier = paths.dataset_dir("remapped", "0123456789abcdef")
    earlier.mkdir(parents=True)
    tokenizer_file = str(paths.tokenizer_file("remapped"))
    (earlier / DATASET_RECORD_FILE).write_text(json.dumps({"tokenizer_file": tokenizer_file, "tokenizer": "earlier"}))
    assert remove_superseded_datasets(paths.datasets_dir, "remapped", tokenizer_file, "now") == [earlier]
    assert not earlier.exists()


def test_preparation_runs_every_stage_up_to_the_one_that_makes_the_training_tokenizer():
    from ivr import pipeline

    assert pipeline.stages_needed("original") == ["init", "analyze"]
    assert pipeline.stages_needed("distilled") == ["init", "analyze", "distill-tokenizer"]
    assert pipeline.stages_needed("remapped") == ["init", "analyze", "distill-tokenizer", "select", "remap", "align"]
