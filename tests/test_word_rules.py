"""Word rules: whole pre-tokens cut at BPE's token boundaries, and nowhere else."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Tokenizer

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import bytes_to_piece, text_to_piece
from ivr.tokenizers.distill.pre_tokenizer import rules_pre_tokenizer, with_rules
from ivr.tokenizers.distill.rule_selection import select_word_rules
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.stage import fit_distilled
from ivr.tokenizers.distill.word_rules import MAX_WORD_CHARS, word_segments
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.unigram import bare_model, unigram_tokenizer
from ivr.tokenizers.verify import compare_texts
from tests.distill_fixtures import split_rule

# words the fitted scores got wrong on the standard library (provably, for most): digits, punctuation, letters,
# with and without a leading space, and a tie
WORDS = ["0477", " 2111", "111111110", " '(')", "')-", "=')'", "xDFFF", "DLLLIBRARY", "!).'''", " YYYYMMDD"]
NEIGHBOURS = ["", " ", "  ", "\n", "\t", "x", "Y", "1", "9", "'", "'s", "(", ")", "=", "-", ".", "!", "''", "é", "½",
              "==", "===", "11", "YY", "'" * 3, "s", "d", "ll"]


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return offline_gpt2_tokenizer()


@pytest.fixture(scope="module")
def word_pieces(bpe) -> list[list[str]]:
    bare = bare_model(bpe)
    return [bare.encode(text_to_piece(w)).tokens for w in WORDS]


@pytest.fixture(scope="module")
def cut_bpe(bpe, word_pieces) -> Tokenizer:
    # BPE's own model behind the cutting pre-tokenizer: a cut anywhere but at BPE's token boundaries of a whole
    # pre-token changes some ids. Split rules cut runs inside pre-tokens, so a listed word can follow a cut
    # without starting a pre-token ("=" + "=')'"); built as the fit builds them (once per process)
    bare = bare_model(bpe)
    rules = [split_rule(bare, c, 80) for c in "='1Y"]
    return with_rules(bare, rules, word_pieces)


def test_a_listed_word_is_cut_at_bpes_tokens_wherever_it_is_a_whole_pre_token(word_pieces):
    pre = rules_pre_tokenizer([], word_pieces)
    for word, pieces in zip(WORDS, word_pieces):
        assert [p for p, _ in pre.pre_tokenize_str(word)] == pieces
    assert [p for p, _ in pre.pre_tokenize_str("a=0477;x')-")] == ["a", "=", "0", "477", ";", "x", "')", "-"]


# the last three: a listed word's rest after its first token, where it starts a pre-token of its own
@pytest.mark.parametrize("text", ["10477", "04771", " 0477", "(')-", "')-)", " xDFFFF", "axDFFF", " '(')'", "!!).'''",
                                  "477", "LLLIBRARY", " YYYMMDD"])
def test_a_listed_word_inside_a_longer_pre_token_is_not_cut(word_pieces, text):
    plain = rules_pre_tokenizer([])
    assert rules_pre_tokenizer([], word_pieces).pre_tokenize_str(text) == plain.pre_tokenize_str(text)


@hsettings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(NEIGHBOURS), st.sampled_from(WORDS)), min_size=1, max_size=4),
       st.sampled_from(NEIGHBOURS))
def test_word_rules_never_change_bpes_ids(cut_bpe, bpe, parts, last):
    text = "".join(n + w for n, w in parts) + last
    assert cut_bpe.encode(text).ids == bpe.encode(text).ids


def test_characters_take_the_class_gpt2s_regex_gives_them():
    import regex

    from ivr.tokenizers.distill.gpt2_regex import gpt2_class

    for ch in "\x1c\x1f \t\x85\u3000a1½.":
        expected = (None if regex.fullmatch(r"\s", ch) else "letter" if regex.fullmatch(r"\p{L}", ch)
                    else "digit" if regex.fullmatch(r"\p{N}", ch) else "punct")
        assert gpt2_class(ch) == expected, repr(ch)
    assert gpt2_class("\x1c") == "punct"  # as GPT-2 cuts "a\x1c\x1c\x1cb": a, the run, b


def test_only_one_class_words_cut_at_whole_characters_can_have_rules():
    assert word_segments(["0", "477"]) == ("digit", ["0", "477"])
    assert word_segments(["Ġ'", "('", ")"]) == ("punct", [" '", "('", ")"])
    assert word_segments(["0477"]) is None  # one token: nothing to cut
    assert word_segments(["x", "12"]) is None  # two classes: never one pre-token
    assert word_segments(["ĠĠ", "x"]) is None
    assert word_segments([bytes_to_piece("─".encode()[:2]), bytes_to_piece("─".encode()[2:])]) is None  # inside a character


def test_the_fit_cuts_words_no_scores_or_split_rules_match(bpe):
    # " ('''" is provably unsatisfiable for any additive scores; without split rules only a word rule cuts it
    texts = ["a = ('''x''')\nb = \"'''\"\nc = \"('''\"\n" * 3]
    counts, _ = pre_token_counts(bpe, texts)
    settings = DistillSettings(vocab_words=False, vocab_variants=False, number_words=0, general_usage_words=0,
                               general_languages="", split_rules=False)
    tok, fit = fit_distilled(bpe, counts, settings)
    assert fit.stats["fit_mismatched_types"] == fit.stats["proven_unsatisfiable_types"] == 0
    assert fit.stats["word_rules"] == len(fit.word_rules) >= 1
    assert ["Ġ(", "''", "'"] in fit.word_rules
    assert compare_texts(tok, bpe, texts, "t")["mismatched_types"] == 0
    _, none = fit_distilled(bpe, counts, DistillSettings(**{**settings.__dict__, "word_rules": 0}))
    assert none.word_rules == [] and none.stats["fit_mismatched_types"] >= 1


def test_a_quote_run_before_a_contraction_letter_gets_a_word_rule(bpe):
    # GPT-2 keeps all three quotes in "('''" before "def"; the quote split rule will not cut there (its last quote
    # would start the contraction "'d"), so only a word rule gives BPE's ( · '' · ' in that context
    texts = ["exec('''def f(): pass''')\n" * 3, "x = ('''a''')\n"]
    counts, _ = pre_token_counts(bpe, texts)
    settings = DistillSettings(vocab_words=False, vocab_variants=False, number_words=0, general_usage_words=0,
                               general_languages="", split_rule_chars="'", split_rule_min_fixed=1, max_run=80)
    tok, fit = fit_distilled(bpe, counts, settings)
    assert "'" in {r["char"] for r in fit.split_rules}
    assert ["(", "''", "'"] in fit.word_rules
    assert compare_texts(tok, bpe, texts, "t")["mismatched_types"] == 0


def test_letter_words_get_a_word_rule_only_when_allowed(bpe):
    # every letter rule is tested at every word, so by default only corpus (and listed) letter words get one;
    # other classes' rules are cheap and always allowed
    bare = bare_model(bpe)
    words = [text_to_piece(w) for w in ("0477", "DLLLIBRARY", "xDFFF")]
    gold = [e.ids for e in bare.encode_batch(words)]
    wrong = [[] for _ in words]

    def chosen(letter_words):
        letter_ok = None if letter_words is None else letter_words.__contains__
        rules = select_word_rules(bare, [], words, np.ones(len(words)), gold, wrong, 10, letter_ok)
        return ["".join(pieces) for pieces in rules]

    assert chosen(None) == words
    assert chosen({"xDFFF"}) == ["0477", "xDFFF"]
    assert chosen(set()) == ["0477"]
    with pytest.raises(ValueError, match="letter_word_rules"):
        DistillSettings(letter_word_rules="some")


def test_the_most_frequent_wrong_words_get_the_rules_up_to_the_limit(bpe):
    bare = bare_model(bpe)
    words = [text_to_piece(w) for w in ("0477", " 2111", "111111110")]
    gold = [e.ids for e in bare.encode_batch(words)]

    def chosen(weights, limit):
        rules = select_word_rules(bare, [], words, np.array(weights), gold, [[] for _ in words], limit)
        return ["".join(pieces) for pieces in rules]

    assert chosen([1.0, 5.0, 3.0], 2) == [words[1], words[2]]
    assert chosen([2.0, 2.0, 2.0], 1) == [min(words)]  # ties by the word, whatever order the words came in


def test_a_word_rule_whose_tokens_the_model_splits_further_is_dropped():
    # the model gives "477" back as 47 · 7: cutting "0477" into 0 · 477 would fix nothing
    pieces = ["0", "4", "7", "47", "477"]
    model = unigram_tokenizer(pieces, [0.0, 0.0, 0.0, 1.0, -5.0])
    rules = select_word_rules(model, [], ["0477", "047"], np.ones(2), [[0, 4], [0, 3]], [[], []], 10)
    assert rules == [["0", "47"]]


def test_a_word_rule_is_built_for_words_of_up_to_the_longest_length_allowed():
    half = MAX_WORD_CHARS // 2
    assert word_segments(["x" * half, "x" * (MAX_WORD_CHARS - half)]) == ("letter", ["x" * half, "x" * (MAX_WORD_CHARS - half)])
    assert word_segments(["x" * half, "x" * (MAX_WORD_CHARS - half + 1)]) is None


def test_white_space_words_have_no_class_and_get_no_word_rule():
    # GPT-2's regex cuts white space by lookahead, not by a class a rule could be written for
    assert word_segments(["Ċ", "ĊĊ"]) is None
    assert word_segments(["ĠĠ", "Ġ"]) is None


def test_a_word_rule_that_fixes_nothing_leaves_its_place_under_the_limit_to_the_next_word():
    # "0477" is the more frequent, but its rule fixes nothing (the model splits 477 further): the one rule allowed
    # goes to "047", whose rule does
    pieces = ["0", "4", "7", "47", "477"]
    model = unigram_tokenizer(pieces, [0.0, 0.0, 0.0, 1.0, -5.0])
    rules = select_word_rules(model, [], ["0477", "047"], np.array([2.0, 1.0]), [[0, 4], [0, 3]], [[], []], 1)
    assert rules == [["0", "47"]]
