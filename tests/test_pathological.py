"""Pathological input goes through every stage: very long pre-tokens (a 100,000-character run, a base64 blob,
minified code on one line), a 20 MB single line; nothing recurses on a string's length and the regex stays
bounded."""

from __future__ import annotations

import base64
import json
import random

from tokenizers import Tokenizer

from ivr.cli import main
from ivr.cleaned_corpus import iter_documents
from ivr.corpus import CleaningOptions, clean_corpus
from ivr.tokenizers.distill.word_rules import MAX_WORD_CHARS, word_rule_pattern, word_segments
from tests.conftest import make_code_docs, tiny_cli_args


def pathological_texts(scale: int = 1) -> list[str]:
    """A run of one letter (``100_000 * scale // 5`` characters at scale 5), a base64 blob, minified code on one
    line, a long number, a run of spaces, a ruler, a repeated pair of letters."""
    rng = random.Random(0)
    n = 4_000 * scale
    blob = base64.b64encode(rng.randbytes(n)).decode()
    minified = "".join(f"function a{i}(b){{return b+{i}}};var c{i}=a{i}({i});" for i in range(n // 40))
    digits = "".join(rng.choice("0123456789") for _ in range(n))
    return ["x" * 5 * n, f"data = '{blob}'\n", minified, digits, " " * n + "y", "=" * 2 * n, "ab" * n]


def test_word_rules_are_built_for_short_words_only():
    long_word = ["xx"] * 40_000  # one BPE token per two characters of an 80,000-character run
    assert word_segments(long_word) is None
    assert word_segments(["x"] * (MAX_WORD_CHARS + 1)) is None
    assert word_segments(["x"] * MAX_WORD_CHARS) is not None
    assert word_rule_pattern([["0", "477"]])


def test_prepare_runs_every_stage_on_pathological_documents(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    # enough ordinary documents for both splits and the selection; the long ones in both splits by their ids
    texts = make_code_docs(30) + pathological_texts()
    (raw / "docs.jsonl").write_text("\n".join(json.dumps({"text": t}) for t in texts) + "\n", encoding="utf-8")
    main(["prepare", *tiny_cli_args(
        tmp_path, "--data.builtin_corpus", "null", "--data.raw_corpora_dir", str(raw), "--data.tokenizer", "remapped",
        "--data.heldout_fraction", "0.3", "--data.distill.max_iterations", "3", "--data.distill.split_rule_min_fixed", "1",
        "--data.verify.random_id_sequences", "50", "--data.select.num_replacements", "20", "--data.select.min_count", "2",
        "--data.distill.general_usage_words", "0",
    )])
    art = tmp_path / "artifacts"
    tok_dir = art / "tokenizers" / "distilled_unigram"
    meta = json.loads((tok_dir / "ivr_metadata.json").read_text())
    # the long runs are wrong fit words; none of them may make a word rule (which once recursed per character)
    assert all(len("".join(w)) <= 4 * MAX_WORD_CHARS for w in meta["word_rules"])
    assert (tok_dir / "tokenizer.json").stat().st_size < 4_000_000
    remapped = Tokenizer.from_file(str(art / "tokenizers" / "remapped" / "tokenizer.json"))
    for text in pathological_texts(scale=5):  # a 100,000-character run among them
        assert remapped.decode(remapped.encode(text).ids) == text
    assert list((art / "datasets").glob("remapped-*/train"))


def test_a_20_mb_line_is_cut_into_documents_that_join_back(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    line = ("var q=function(a){return a*2};" * 700_000)[:20_000_000]
    (raw / "bundle.min.txt").write_text(line, encoding="utf-8")
    options = CleaningOptions(max_document_chars=250_000)
    manifest = clean_corpus(raw, tmp_path / "cleaned", options)
    docs = list(iter_documents(tmp_path / "cleaned"))
    assert manifest["documents"] == len(docs) == 80
    assert max(len(d.text) for d in docs) <= 250_000
    assert "".join(d.text for d in docs) == line


def test_a_corpus_of_many_distinct_words_fits_on_a_bounded_sample_by_count():
    from collections import Counter

    from ivr.tokenizers.distill.words import corpus_sample

    counts = Counter({f"w{i}": 1 for i in range(1000)} | {"common": 50, "often": 50, "twice": 2})
    sample = corpus_sample(counts, limit=10)
    assert len(sample) == 10 and sample["common"] == sample["often"] == 50 and sample["twice"] == 2
    assert sorted(w for w in sample if sample[w] == 1) == sorted(f"w{i}" for i in range(1000))[:7]
    assert corpus_sample(Counter(reversed(list(counts.elements()))), limit=10) == sample  # not the reading order
    assert corpus_sample(counts, limit=5000) == counts


def test_corpus_words_the_fit_leaves_out_are_counted_and_reported(gpt2_bpe, monkeypatch, caplog):
    from collections import Counter

    from ivr.tokenizers.distill import words as fit_word_module
    from ivr.tokenizers.distill.stage import fit_distilled
    from tests.distill_fixtures import fast_settings

    monkeypatch.setattr(fit_word_module, "MAX_CORPUS_WORDS", 3)
    counts = Counter({"Ġthe": 9, "Ġof": 8, "Ġand": 7, "Ġzebra": 1, "Ġquokka": 1})
    with caplog.at_level("INFO"):
        _, fit = fit_distilled(gpt2_bpe, counts, fast_settings(split_rules=False, word_rules=0, max_iterations=1))
    assert fit.stats["corpus_word_types"] == 5 and fit.stats["corpus_word_types_left_out"] == 2
    assert "leaves out 2 of the corpus's 5 distinct pre-tokens" in caplog.text
