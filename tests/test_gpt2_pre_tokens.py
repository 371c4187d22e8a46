"""GPT-2's pre-tokens cut by the ``regex`` package are exactly those the ``tokenizers`` pre-tokenizer cuts."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.gpt2_pre_tokens import GPT2_PATTERN, PreTokenCutter
from ivr.tokenizers.io import pre_tokens

# the characters where engines part: contractions, every kind of white space, letters and digits beyond ASCII
# (², ½, ٣, Ⅻ), combining marks (neither letters nor digits), CJK, emoji, control characters, and letters and
# digits of a Unicode version newer than the tokenizers engine's (U+0558, U+088F, U+11DE0)
TRICKY = "\u0558\u088f\U00011de0'sStTreRvVmMlLdD \t\n\r\x0b\x0c\x85\xa0\u1680\u2000\u2028\u2029\u202f\u3000aZéßΩжא٣²½Ⅻ\u0301\u0915\u093f中あ한😀\x00\x7f-=_.!?"
texts = st.one_of(st.text(), st.text(alphabet=TRICKY), st.text(alphabet=TRICKY + "abc123 "))


def split_then_byte_level() -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(GPT2_PATTERN), "isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return tok


def digits_then_byte_level(individual: bool = True) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=individual),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    return tok


GPT2 = offline_gpt2_tokenizer()
CUTTERS = [PreTokenCutter(GPT2), PreTokenCutter(split_then_byte_level())]
DIGITS = digits_then_byte_level()
DIGITS_CUTTER = PreTokenCutter(DIGITS)


def test_both_ways_of_writing_gpt2_pre_tokenizer_take_the_regex_package():
    assert all(cut.fast for cut in CUTTERS) and DIGITS_CUTTER.fast


@settings(max_examples=300, deadline=None)
@given(texts)
def test_the_pre_tokens_are_the_tokenizers_ones(text):
    want = pre_tokens(GPT2, text)
    for cut in CUTTERS:
        assert cut(text) == want
        assert cut.counts(text) == Counter(want)


@settings(max_examples=300, deadline=None)
@given(texts)
def test_isolated_digits_then_gpt2_are_the_tokenizers_pre_tokens(text):
    want = pre_tokens(DIGITS, text)
    assert DIGITS_CUTTER(text) == want and DIGITS_CUTTER.counts(text) == Counter(want)


def test_another_pipeline_is_cut_by_the_tokenizer_itself():
    digits = digits_then_byte_level(individual=False)
    lowered = offline_gpt2_tokenizer()
    lowered.normalizer = normalizers.Lowercase()
    text = "Version 2024 ships ＡＢＣ"
    for tok in (digits, lowered):
        cut = PreTokenCutter(tok)
        assert not cut.fast
        assert cut(text) == pre_tokens(tok, text) and cut.counts(text) == Counter(pre_tokens(tok, text))
    assert PreTokenCutter(lowered)(text) != CUTTERS[0](text)  # the normalizer took part


def with_pre_tokenizer(pre) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre
    return tok


def test_a_pipeline_that_only_resembles_gpt2s_is_cut_by_the_tokenizer_itself():
    """A prefix space, a split that removes its matches, or another regex cut other pre-tokens than
    GPT-2's regex: counting them through ``regex`` would count pre-tokens the tokenizer never sees."""
    def split(pattern=GPT2_PATTERN, behavior="isolated"):
        return pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])

    text = "Hello world's 42 ok\n"
    for pre in (pre_tokenizers.ByteLevel(add_prefix_space=True), split(behavior="removed"),
                split(pattern=r"\s+|[^\s]+")):
        tok = with_pre_tokenizer(pre)
        cut = PreTokenCutter(tok)
        assert not cut.fast
        assert cut(text) == pre_tokens(tok, text) != CUTTERS[0](text)


def test_a_piece_crosses_a_digit_only_beside_something_else():
    """Behind isolated digits BPE never outputs a digit joined to anything, part of a character included; a digit
    alone is a piece it does output."""
    from ivr.tokenizers.byte_level import text_to_piece
    from ivr.tokenizers.gpt2_pre_tokens import crosses_digit

    assert crosses_digit(text_to_piece("a1")) and crosses_digit(text_to_piece("٣٣"))
    assert crosses_digit(text_to_piece("7é")[:2])  # a digit and the first byte of é
    assert not crosses_digit(text_to_piece("7")) and not crosses_digit(text_to_piece("٣"))
    assert not crosses_digit(text_to_piece(" hello"))
