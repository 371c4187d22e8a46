"""Verification: mismatches classified, provable conflicts found, its settings and the fit's recorded."""

from __future__ import annotations

import json

from tokenizers import Tokenizer
from tokenizers.models import BPE

from ivr.tokenizers.verify import VerifySettings, classify, conflict_witness, verify_tokenizer


def test_conflict_witness_on_unsatisfiable_merges():
    vocab = {"a": 0, "b": 1, "aa": 2, "bb": 3, "bbaa": 4}
    bare = Tokenizer(BPE(vocab, [("a", "a"), ("b", "b"), ("bb", "aa")]))
    assert bare.encode("bbaa").tokens == ["bbaa"]
    assert bare.encode("bbbaa").tokens == ["bb", "b", "aa"]
    # any scores giving [bbaa] for "bbaa" give [b, bbaa] for "bbbaa"
    assert conflict_witness(bare, ["bb", "b", "aa"], ["b", "bbaa"]) == "bbaa"
    assert classify(bare, ["bb", "b", "aa"], ["b", "bbaa"]) == "conflict"
    assert conflict_witness(bare, ["bb", "aa"], ["b", "baa"]) is None


def test_the_report_records_the_fit_and_its_settings_ahead_of_its_own(distilled, gpt2_bpe, tmp_path):
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    settings = VerifySettings(random_id_sequences=5, examples=1, seed=3)
    summary = verify_tokenizer(distilled, gpt2_bpe, {"t": ["'''x''' ==== y\n"] * 2}, md, js, settings,
                               fit_info={"rounds": 2}, fit_settings={"strict": False, "max_run": 80})
    assert list(summary["settings"]) == ["strict", "max_run", "random_id_sequences", "examples", "seed"]
    assert summary["ids"]["random_sequences"] == 5 and summary["fit"] == {"rounds": 2}
    assert all(len(m["examples"]) <= 1 for m in summary["sets"]["t"]["mismatches"].values())
    assert json.loads(js.read_text(encoding="utf-8")) == summary
    text = md.read_text(encoding="utf-8")
    assert "- max_run: 80" in text and "- seed: 3" in text
