"""The fit words: corpus pre-tokens, digit strings, a word list with counts."""

from __future__ import annotations

from collections import Counter

import pytest
from tokenizers import Tokenizer

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.source_bpe import source_bpe
from ivr.tokenizers.distill.words import fit_words


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
    for text, where in [("a b\n", ":1:"), ("ok\nbad\t-1\n", ":2:"), ("ok\tmany\n", ":1:")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=f"words.txt{where}"):
            fit_words(pieces, Counter(), settings)
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(ValueError, match=r"words.txt: bytes at offset 3 \(0xe9 0a\) are not valid UTF-8 \(data.distill.word_list"):
        fit_words(pieces, Counter(), settings)


def test_vocabulary_variants_toggle_the_space_and_add_capitals():
    settings = DistillSettings(vocab_words=False, vocab_variants=True, number_words=0, general_languages="")
    words = fit_words(["Ġmeasurement", "ment", "Ġ(/"], Counter(), settings)
    assert set(words) == {lead + form for lead in ("", "Ġ") for form in
                          ("measurement", "Measurement", "MEASUREMENT", "ment", "Ment", "MENT")}
