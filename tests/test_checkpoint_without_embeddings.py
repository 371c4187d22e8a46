"""A fit's checkpoint holds every weight: scoring, predicting and exporting it need no aligned rows on disk (the
artifacts copied to another machine without ``embeddings/``, or that folder deleted since the fit)."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from ivr.cli import main
from tests.conftest import tiny_cli_args


def test_a_checkpoint_is_scored_and_exported_without_the_aligned_rows(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    # the IVR pipeline at its cheapest: a smaller corpus, one round of the score fit, no rules, no general prior
    args = tiny_cli_args(
        tmp_path, "--data.tokenizer", "remapped", "--data.builtin_corpus_max_mb", "0.1",
        "--data.distill.max_iterations", "1", "--data.distill.split_rules", "false",
        "--data.distill.general_usage_words", "0", "--data.distill.word_rules", "0",
        "--data.verify.random_id_sequences", "10", "--data.select.num_replacements", "10",
        "--data.select.min_count", "5", "--data.select.general_prior_words", "0", "--data.select.general_code_mb", "0",
        "--data.select.max_general_longer_pct", "null",
        "--trainer.max_steps", "1", "--trainer.val_check_interval", "1", "--trainer.limit_val_batches", "1",
    )
    main(["fit", *args])
    art = tmp_path / "artifacts"
    shutil.rmtree(art / "embeddings")

    main(["export", *args, "--ckpt_path", "last"])
    export = art / "training" / "hf_export"
    assert json.loads((export / "ivr_export.json").read_text())["weights"] == "checkpoint"
    saved = torch.load(art / "training" / "checkpoints" / "last.ckpt", weights_only=True)
    exported = load_file(export / "model.safetensors")
    assert exported
    for name, tensor in exported.items():
        assert torch.equal(tensor, saved["state_dict"][f"model.{name}"]), name

    capsys.readouterr()
    main(["validate", *args])
    out = capsys.readouterr().out
    # the reassigned rows' drift is measured from the rows the fit started from, which the checkpoint carries
    assert "val/loss_reassigned" in out and "embeddings/reassigned_drift" in out
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("def f(x):\n", encoding="utf-8")
    main(["predict", *args, "--data.prompts_path", str(prompts), "--max_new_tokens", "1"])
    # no stage ran: the tokenizer the checkpoint was trained on is kept, the rows were not aligned again
    assert not (art / "embeddings").exists()

    # the configured model without fine-tuning is the base model with the aligned rows: those are needed
    with pytest.raises(FileNotFoundError, match=r"no embeddings at .*final_wte\.pt: run `ivr align`"):
        main(["export", *args, "--ckpt_path", "base"])
