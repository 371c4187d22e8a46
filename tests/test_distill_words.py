"""The fit words: corpus pre-tokens, digit strings, a word list with counts."""

from __future__ import annotations

from collections import Counter

import pytest
from tokenizers import Tokenizer

from ivr.counting import most_frequent
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.source_bpe import source_bpe
from ivr.tokenizers.distill.words import corpus_sample, fit_words, read_word_list
from tests.distill_fixtures import fast_settings


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return offline_gpt2_tokenizer()


def test_fit_words_cover_numbers(bpe):
    pieces = source_bpe(bpe).outputs
    settings = DistillSettings(vocab_words=False, vocab_variants=False, number_words=2, general_languages="")
    words = fit_words(pieces, Counter({"x": 3}), settings)
    assert words["x"] == 3 and words["07"] == words["Ġ99"] == words["5"] == 1
    assert "123" not in words and len(words) == 1 + 2 * (10 + 100)


def test_word_list_counts_weigh_words(bpe, tmp_path):
    pieces = source_bpe(bpe).outputs
    path = tmp_path / "words.txt"
    path.write_text("héllo\t7.5\nworld\n\nx\t2\n", encoding="utf-8")
    settings = DistillSettings(vocab_words=False, vocab_variants=False, number_words=0, word_list=path,
                               general_languages="")
    words = fit_words(pieces, Counter({"x": 3, "world": 1}), settings)
    # each word with and without a leading space; the larger of the corpus count and the listed count
    assert words["hÃ©llo"] == words["ĠhÃ©llo"] == 7.5
    assert words["world"] == words["Ġworld"] == 1 and words["x"] == 3 and words["Ġx"] == 2
    path.write_bytes(b"ok\ncaf\xe9\n")
    with pytest.raises(ValueError, match=r"words.txt:2: bytes at offset 6 \(0xe9 0a\) are not valid UTF-8 \(data.distill.word_list"):
        fit_words(pieces, Counter(), settings)


@pytest.mark.parametrize("text, where, says", [
    ("a b\n", 1, "holds white space"),
    ("ok\nbad\t-1\n", 2, "positive, finite number"),
    ("ok\tmany\n", 1, "positive, finite number"),
    ("ok\n\t5\n", 2, "a count without a word"),
    ("ok\n   \t-1\n", 2, "a count without a word"),
    ("ok\n\tfoo\tbar\n", 2, "got 3 tab-separated fields"),
    # only "\n" ends a line: U+0085 and a form feed (white space around a count) are no line ends
    ("ok\r\nok\t2\x85\x0c\nbad\t-1\n", 3, "positive, finite number"),
    # finite, but the fit's linear program would overflow: one line, or a word's lines together
    (")))\t1e308\n", 1, "the count exceed"),
    ("ok\nw\t6e11\nw\t6e11\n", 3, "the counts of 'w' on this and earlier lines exceed"),
])
def test_a_malformed_word_list_line_is_named(tmp_path, text, where, says):
    path = tmp_path / "words.txt"
    path.write_text(text, encoding="utf-8", newline="")
    with pytest.raises(ValueError, match=f"words.txt:{where}: .*{says}"):
        read_word_list(path)


def test_listed_words_are_cut_as_text_is(bpe, tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("Xyzzyq's\t4\nXyzzyq\t2\n", encoding="utf-8")
    # as the fit sees them, so that the letter word rules of listed words find them too
    assert read_word_list(path, bpe) == {"Xyzzyq": 4, "ĠXyzzyq": 4, "'s": 4}
    assert read_word_list(path) == {"Xyzzyq's": 4, "ĠXyzzyq's": 4, "Xyzzyq": 2, "ĠXyzzyq": 2}


def test_vocabulary_variants_toggle_the_space_and_add_capitals():
    settings = DistillSettings(vocab_words=False, vocab_variants=True, number_words=0, general_languages="")
    words = fit_words(["Ġmeasurement", "ment", "Ġ(/"], Counter(), settings)
    assert set(words) == {lead + form for lead in ("", "Ġ") for form in
                          ("measurement", "Measurement", "MEASUREMENT", "ment", "Ment", "MENT")}


def test_a_corpus_word_that_is_also_a_vocabulary_piece_keeps_its_corpus_count():
    # only words met outside the corpus count once
    settings = fast_settings(vocab_words=True, vocab_variants=True, number_words=1)
    words = fit_words(["Ġthe", "7"], Counter({"Ġthe": 40, "Ġ7": 3}), settings)
    assert words["Ġthe"] == 40 and words["Ġ7"] == 3 and words["the"] == words["7"] == 1


def test_isolated_digits_add_the_ten_digits_only_where_number_words_are_asked_for():
    assert fit_words([], Counter(), fast_settings(number_words=0), isolated_digits=True) == Counter()
    assert set(fit_words([], Counter(), fast_settings(number_words=3), isolated_digits=True)) == set("0123456789")


def test_a_piece_that_is_part_of_a_character_is_fitted_behind_any_pre_tokenizer(bpe):
    """``Ã`` (the byte 0xc3 alone) is no text a pre-tokenizer could cut, but BPE outputs it for broken text."""
    settings = fast_settings(vocab_words=True, number_words=0)
    words = fit_words(["Ã", "Ġthe"], Counter(), settings, bpe, whole_pre_tokens=True)
    assert set(words) == {"Ã", "Ġthe"}


def test_a_corpus_sample_keeps_the_most_frequent_words_ties_by_the_word():
    counts = Counter({"b": 2, "a": 2, "c": 5, "d": 1})
    assert corpus_sample(counts, 2) == Counter({"c": 5, "a": 2})


def test_fit_words_leave_the_corpus_counts_they_were_given_as_they_were():
    """The distillation report counts the corpus's word types, and checks words against them, after the fit words
    are made: the vocabulary pieces these add must not land in the corpus's counts."""
    counts = Counter({"Ġthe": 3, "x": 2})
    words = fit_words(["Ġthe", "Ġcat"], counts, fast_settings(vocab_words=True))
    assert words == Counter({"Ġthe": 3, "x": 2, "Ġcat": 1}) and counts == Counter({"Ġthe": 3, "x": 2})


def test_a_count_one_over_its_limit_is_cut_to_the_limit():
    counts = Counter({"a": 3, "b": 2, "c": 1})
    assert most_frequent(counts, len(counts) - 1) == Counter({"a": 3, "b": 2})


def test_ties_at_the_limit_go_to_the_smallest_keys_whatever_the_order_they_were_counted_in():
    """A bounded count keeps the same words on every run, whichever file was read first: ties are broken by the
    key's own order, not by its length or its characters read backwards."""
    words = {"bb": 2, "a": 2, "ba": 2, "ab": 2, "c": 5}
    for order in (list(words), sorted(words), sorted(words, reverse=True)):
        assert most_frequent(Counter({w: words[w] for w in order}), 3) == Counter({"c": 5, "a": 2, "ab": 2})
