"""The benchmarks' KEY=VALUE settings: each value read as its field's type says."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from ivr.analysis.select import SelectSettings
from ivr.tokenizers.distill import DistillSettings
from ivr.tokenizers.remap import RemapSettings
from tests.conftest import ROOT, benchmark_module


@pytest.fixture(scope="module")
def common():
    return benchmark_module("common")


def test_values_take_their_fields_types(common, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for name in ("terms.txt", "a.txt", "b.txt"):
        (tmp_path / name).write_text("x\n")
    select = common.settings_from(["per_document_cap=null", "forced_tokens_path=terms.txt", "min_count=1e1",
                                   "general_reference_paths=a.txt,b.txt", "max_general_longer_pct=0.5"],
                                  SelectSettings, "--select", num_replacements=7, min_count=3)
    assert (select.per_document_cap, select.forced_tokens_path, select.general_reference_paths) == (
        None, "terms.txt", ["a.txt", "b.txt"])
    assert (select.min_count, select.max_general_longer_pct, select.num_replacements) == (10, 0.5, 7)  # pairs win
    assert common.settings_from(["new_piece_bonus=1e-6"], RemapSettings, "--remap").new_piece_bonus == 1e-6
    distill = common.settings_from(["max_seconds=120", "margin=5e-2", "vocab_words=false", "number_words=3",
                                    "letter_word_rules=all", "general_languages="])
    assert (distill.max_seconds, distill.margin, distill.vocab_words, distill.number_words) == (120.0, 0.05, False, 3)
    assert isinstance(distill.max_seconds, float) and distill.letter_word_rules == "all"
    assert distill.general_languages == "" and DistillSettings().word_list is None
    for bad, says in [("number_words=2.5", "not an integer"), ("vocab_words=maybe", "not a boolean"),
                      ("no_such=1", "no such setting")]:
        with pytest.raises(SystemExit, match=says):
            common.settings_from([bad])
    assert common.settings_from(["word_list=null"]).word_list is None
    assert common.settings_from(["word_list=terms.txt"]).word_list == Path("terms.txt")


def test_a_value_the_settings_refuse_is_one_line_naming_the_flag(common):
    with pytest.raises(SystemExit, match=r"--set margin=0: data\.distill\.margin must be positive"):
        common.settings_from(["margin=0"])


def test_comma_lists_are_checked_against_their_choices(common):
    parse = common.comma_choices(("mean", "omp"))
    assert parse("mean,omp") == ["mean", "omp"]
    with pytest.raises(argparse.ArgumentTypeError, match="zeroes: choose from mean, omp"):
        parse("mean,zeroes")
    with pytest.raises(argparse.ArgumentTypeError):
        parse(",")


def test_counts_and_fractions_are_refused_at_parsing_where_a_run_would_fail_later(common):
    assert common.positive_int("3") == 3 and common.fraction("0.1") == 0.1
    for parse, value, says in ((common.positive_int, "0", "must be at least 1"),
                               (common.positive_int, "2.5", "not an integer"),
                               (common.fraction, "0", "between 0 and 1"), (common.fraction, "1", "between 0 and 1"),
                               (common.fraction, "x", "not a number"),
                               (common.non_negative_int, "-1", "must be at least 0"),
                               (common.two_or_more, "1", "must be at least 2"),
                               (common.random_seed, "-1", "from 0 to"),
                               (common.random_seed, str(2**32), "from 0 to"),
                               (common.positive_float, "0", "above 0"), (common.positive_float, "inf", "finite"),
                               (common.positive_float, "nan", "above 0"),
                               (common.non_negative_float, "-0.5", "at least 0"),
                               (common.non_negative_float, "inf", "finite")):
        with pytest.raises(argparse.ArgumentTypeError, match=says):
            parse(value)
    assert (common.non_negative_int("0"), common.two_or_more("2")) == (0, 2)
    assert common.random_seed(str(2**32 - 1)) == 2**32 - 1
    assert (common.positive_float("1e-4"), common.non_negative_float("0")) == (1e-4, 0.0)


def test_the_ivr_benchmark_leaves_a_user_s_raw_corpus_alone(tmp_path, monkeypatch):
    from ivr.paths import ArtifactPaths

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))  # as `python benchmarks/NAME.py` has it: for `common`
    bench = benchmark_module("ivr_benchmark")
    paths = ArtifactPaths.from_config(tmp_path)
    mine = paths.raw_corpora_dir / "mine.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my own text\n", encoding="utf-8")
    cleaned = bench.cleaned_corpus("russian", 0.05, paths)
    assert mine.read_text(encoding="utf-8") == "my own text\n"
    assert "my own text" not in "".join(p.read_text(encoding="utf-8") for p in cleaned.glob("*.jsonl"))


def test_regex_characters_count_every_split_of_a_sequence(common):
    split = {"type": "Split", "pattern": {"Regex": "a|bc"}, "behavior": "Isolated"}
    assert common.regex_characters({"pre_tokenizer": split}) == 4
    digits_first = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True}, split, {"type": "Split", "pattern": {"String": " "}},
        {"type": "Split", "pattern": {"Regex": "d"}}]}
    assert common.regex_characters({"pre_tokenizer": digits_first}) == 5


def test_the_ivr_benchmark_refuses_a_corpus_too_small_for_both_splits(tmp_path, monkeypatch):
    # one document lands in one split: the other would be measured as empty, and its table row fail to print
    from ivr.corpus import CleaningOptions, clean_corpus
    from ivr.paths import ArtifactPaths

    monkeypatch.syspath_prepend(str(ROOT / "benchmarks"))
    bench = benchmark_module("ivr_benchmark")
    paths = ArtifactPaths.from_config(tmp_path)
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "only.txt").write_text("def f(x):\n    return x\n", encoding="utf-8")
    clean_corpus(raw, paths.cleaned_corpora_dir, CleaningOptions())
    with pytest.raises(SystemExit, match=r"--mb .*--heldout-fraction"):
        bench.domain_splits(paths.cleaned_corpora_dir, 0.5)
