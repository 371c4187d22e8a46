from __future__ import annotations

import numpy as np
import pytest

from ivr.analysis.general_use import GeneralText, code_reference, general_prior, general_text, lengthening, word_like
import ivr.analysis.select as select_module
from ivr.analysis.select import SelectSettings, select_replacements
from ivr.tokenizers.byte_level import text_to_piece


@pytest.mark.parametrize("text, judged", [
    (" procurement", True), ("addons", True), (" Procurement", True), ("é", True), ("a", True), ("A", True),
    ("-->", False), (" SOURCE", False), ("ENGTH", False), ("412", False), ("_.", False), (" macOS", False),
])
def test_only_words_the_word_list_could_hold_are_judged_by_it(text, judged):
    assert word_like(text_to_piece(text)) is judged


def test_word_like_ids_are_freed_before_markup_numbers_and_capitals(distilled, code_docs, tmp_path):
    # zero-count candidates are plentiful in a tiny code corpus, so every freed id can be word-like
    settings = SelectSettings(num_replacements=40, min_count=1, general_prior_words=2000, general_code_mb=0)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    freed = [r.freed_token for r in sel.replacements]
    assert freed and all(word_like(piece) for piece in freed), freed


def test_the_code_reference_samples_every_package_and_can_be_off():
    assert code_reference(0) == []
    texts = code_reference(0.3)
    size = sum(len(t.encode()) for t in texts)
    assert 0.1e6 < size < 0.6e6 and len(texts) > 10


def test_the_code_reference_leaves_out_the_domain_corpus_s_files():
    from ivr.builtin_corpora import python_stdlib_paths

    paths = python_stdlib_paths()
    texts = code_reference(1e6)  # every file
    assert len(texts) == len(paths)
    kept = code_reference(1e6, exclude=paths[::2])
    assert kept == texts[1::2]


def test_the_code_reference_leaves_out_a_domain_file_named_by_a_relative_path(monkeypatch):
    """The corpus manifest names a file as the raw folder was given, often relative to where ``ivr`` runs."""
    import os
    from ivr.builtin_corpora import python_stdlib_paths

    paths = python_stdlib_paths()
    monkeypatch.chdir(paths[0].parent)
    assert len(code_reference(1e6, exclude=[os.path.relpath(paths[0])])) == len(paths) - 1


def test_ids_the_code_reference_uses_are_freed_after_those_it_does_not(distilled, code_docs, tmp_path, monkeypatch):
    def select(code_mb):
        settings = SelectSettings(num_replacements=40, min_count=1, general_prior_words=0, general_code_mb=code_mb)
        return select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")

    first = [r for r in select(0.0).replacements[:5]]
    # the reference stands in for code that uses the first five freed tokens
    calls = []
    monkeypatch.setattr(select_module, "code_reference",
                        lambda mb, exclude=(): calls.append(mb) or ["x =" + "".join(r.freed_text for r in first) + "\n"] * 3)
    freed = {r.freed_id for r in select(0.5).replacements}
    assert calls == [0.5] and freed and not freed & {r.freed_id for r in first}


def test_each_word_stands_for_its_running_text_forms_lower_case_and_capitalised():
    """Sentences and lines start with capitals: `` The`` and ``The`` are uses of ``the`` that the prior must
    count, the forms' weights adding up to the word's frequency."""
    from ivr.general_english import most_frequent_english

    (word, freq), = most_frequent_english(1)
    general = general_text(1, [])
    title = word.capitalize()
    assert general.words == [f" {word}", word, f" {title}", title] and general.lines == []
    assert general.word_weights.sum() == pytest.approx(freq) and general.word_weights.argmax() == 0


def test_blank_lines_of_reference_texts_and_files_are_not_reference_lines(tmp_path):
    """A blank line never gets longer: counted as a reference line, it would dilute the share of lines a
    remapping lengthens and the rate of the ids the lines use."""
    ref = tmp_path / "ref.md"
    ref.write_text("# Title\n\n  \nsome words\n", encoding="utf-8")
    general = general_text(0, [str(ref)], ["x = 1\n\n\ty = 2\n \n"])
    assert general.lines == ["x = 1\n", "\ty = 2\n", "# Title\n", "some words\n"]


def test_the_prior_gives_a_word_s_weight_to_each_of_its_tokens_and_the_lines_rate_where_it_is_higher(distilled):
    """Uses per million tokens per id: every token of a word list's word counts its weight, and an id the
    reference lines use more often than the word list says takes the lines' rate (its share of their tokens)."""
    def ids(text):
        return distilled.encode(text, add_special_tokens=False).ids

    z, ebra = ids(" zebra")
    (the,) = ids(" the")
    lines = ["x = 1\n", "x = 1\n", "at the end\n"]
    general = GeneralText([" zebra", " the"], np.array([0.001, 0.5]), lines)
    prior = general_prior(distilled, general)
    line_tokens = sum(len(ids(line)) for line in lines)
    assert prior[z] == prior[ebra] == pytest.approx(1e3)  # the word list alone
    assert prior[ids("x")[0]] == pytest.approx(2 * 1e6 / line_tokens)  # the lines alone
    assert prior[the] == pytest.approx(0.5e6)  # the word list's rate, higher than the lines'
    assert (prior > 0).sum() == len({z, ebra, the, *ids("x = 1\n"), *ids("at the end\n")})


def test_the_code_reference_rounds_its_stride_up_and_takes_no_more_than_asked():
    """Asked for two thirds of the library's size, every second file is read (about half of it), not every file:
    a stride rounded down would read more than ``max_mb``."""
    from ivr.builtin_corpora import python_stdlib_paths

    paths = python_stdlib_paths()
    total = sum(p.stat().st_size for p in paths)
    assert len(code_reference(total / 1.5e6)) == len(paths[::2])


class _Encodings:
    """A tokenizer that encodes each unit as the table says."""

    def __init__(self, table):
        self.table = table

    def encode_batch(self, units, add_special_tokens=True):
        return [type("Encoding", (), {"ids": self.table[u]}) for u in units]


def test_lengthening_weighs_words_by_frequency_and_blames_the_freed_and_the_new_ids():
    """Only units that take more tokens count; a word counts by its weight, a line as one; the id blamed is the
    freed token of the old encoding or the new token of the remapped one, and only the former can be undone by
    giving the string another id."""
    before = _Encodings({"common": [1, 2], "rare": [3], "same": [5], "a line": [4], "another": [6]})
    after = _Encodings({"common": [1, 7, 8], "rare": [3, 9], "same": [5], "a line": [4, 9], "another": [6]})
    general = GeneralText(["common", "rare", "same"], np.array([6.0, 2.0, 2.0]), ["a line", "another"])
    got = lengthening(before, after, general, reassigned=[2, 7, 9])
    assert (got.word_share_pct, got.line_share_pct) == (pytest.approx(80.0), pytest.approx(50.0))
    assert got.blame == pytest.approx({2: 60.0, 7: 60.0, 9: 20.0 + 50.0})
    assert got.freed_blame == pytest.approx({2: 60.0})
    # without reference lines, none of them is longer
    assert lengthening(before, after, GeneralText(general.words, general.word_weights, []), [2, 7, 9]).line_share_pct == 0


def test_a_token_used_twice_in_a_word_counts_the_word_s_weight_twice(distilled):
    """The word list holds such words (``a.k.a``, ``0,000,000``): each use of a token is a use."""
    ids = distilled.encode(" a.k.a", add_special_tokens=False).ids
    assert len(set(ids)) < len(ids)
    prior = general_prior(distilled, GeneralText([" a.k.a"], np.array([0.001]), []))
    assert all(prior[i] == pytest.approx(1e3 * ids.count(i)) for i in ids)
