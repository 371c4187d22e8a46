"""The byte-level rewrite of a pre-tokenizer regex cuts the same pre-tokens as the regex over text."""

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Regex, normalizers, pre_tokenizers

from ivr.tokenizers.byte_level_regex import _members, byte_level_regex, engine_class

GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
# the constructs the split and word rules use: lookbehinds holding classes, a named group and its
# backreference, a nested class, possessive and lazy quantifiers, ``.``, ``\z``, a multi-byte literal
RULES = (r"(?<!\p{L}ab|\x{20}ab)(?<=ab)c(?!\p{L})|(?=[\x{20}\p{L}]\p{L})\x{20}?+(?<g>[lé])\k<g>(?=\p{L}|\z)"
         r"|(?=\x{20}?+[^\s\p{L}\p{N}]{3}) ?[^\s\p{L}\p{N}]*?(?=.(?<q>[\-─])\k<q>)(?!\k<q>)[\-─]|"
         r"[\x{2500}-\x{257F}][\x{2500}]{2,3}+|" + GPT2)

# ASCII, Latin letters and marks, digits of other scripts, Unicode white space, box drawing, CJK, emoji
ALPHABET = list("ab lé\n\t\r'sdm-=.,!0123456789") + ["\u00a0", "\u3000", "\u2028", "\u0085", "\u00bd", "\u0663",
                                                      "\u0301", "\u2500", "\u2502", "\u4e2d", "\U0001f600", "\u00ad",
                                                      "\x00", "\x7f", "\u200b", "ß", "Ж"]
texts = st.text(alphabet=st.sampled_from(ALPHABET), max_size=40)


def cut_text(pattern: str):
    split = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(pattern), behavior="isolated"),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return lambda text: [p for p, _ in split.pre_tokenize_str(text)]


def cut_bytes(pattern: str):
    split, norm = pre_tokenizers.Split(Regex(byte_level_regex(pattern)), behavior="isolated"), normalizers.ByteLevel()
    return lambda text: [p for p, _ in split.pre_tokenize_str(norm.normalize_str(text))]


@pytest.fixture(scope="module")
def cutters():
    return {name: (cut_text(p), cut_bytes(p)) for name, p in (("gpt2", GPT2), ("rules", RULES))}


@hsettings(max_examples=400, deadline=None)
@given(text=texts)
def test_the_rewrite_cuts_the_pre_tokens_of_the_text_regex(cutters, text):
    for plain, rewritten in cutters.values():
        assert rewritten(text) == plain(text)


def test_the_rewrite_of_gpt2s_regex_cuts_as_its_byte_level_pre_tokenizer():
    gpt2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    text = "Ünïcode wörds, 日本語 ½ and   spaces\u3000\u00a0x\n\n  def f(): return 1\r\n"
    assert cut_bytes(GPT2)(text) == [p for p, _ in gpt2.pre_tokenize_str(text)]


def test_the_classes_come_from_the_regex_engine():
    letters, digits, space = engine_class("L"), engine_class("N"), engine_class("s")

    def has(ranges, ch):
        return any(lo <= ord(ch) <= hi for lo, hi in ranges)

    assert all(has(letters, ch) for ch in "aZéßЖ中") and not any(has(letters, ch) for ch in "1-_ \u0301")
    assert all(has(digits, ch) for ch in "7½\u0663") and not has(digits, "a")
    assert all(has(space, ch) for ch in " \n\t\u00a0\u3000\u2028\u0085") and not has(space, "\u200b")


def test_a_character_is_read_as_in_or_out_of_a_class_on_its_own_and_between_others():
    # the classes are read as runs, then each run's first character alone: a lone character, one beside another of
    # its class and one between two of another class must each come out as the engine reads it
    letter, digit = pre_tokenizers.Split(Regex(r"\p{L}"), behavior="isolated"), pre_tokenizers.Digits(True)
    assert _members(letter, ["1"]) == [False] and _members(letter, ["x"]) == [True]
    assert _members(letter, ["x", "y", "!", "1", "é"]) == [True, True, False, False, True]
    assert _members(digit, ["1", "x", "2", "²", "!"]) == [True, False, True, True, False]


def test_a_long_class_is_written_once_and_called():
    # \p{L} is some 20,000 characters in byte-level form: a regex using it many times stays small
    rewritten = byte_level_regex("|".join([r"\p{L}x"] * 50))
    assert rewritten.count("(?<b0>") == 1 and rewritten.count(r"\g<b0>") == 50 and len(rewritten) < 30_000


def test_an_unsupported_construct_is_an_error_naming_its_place():
    with pytest.raises(ValueError, match=r"at 3: unsupported escape \\b"):
        byte_level_regex(r"ab\bc")
    with pytest.raises(ValueError, match="unclosed group"):
        byte_level_regex(r"(ab")
    with pytest.raises(ValueError, match="unsupported group"):
        byte_level_regex(r"(?<g>a)(?(<g>)b|c)")
    with pytest.raises(ValueError, match=r"unsupported escape \\1"):
        byte_level_regex(r"(a)\1")
    with pytest.raises(ValueError, match=r"at 4: unsupported class intersection"):
        byte_level_regex(r"[a-z&&[^b]]")


def test_code_points_keep_their_class_in_the_rewrite_of_gpt2s_regex():
    # each character next to a letter, a digit, punctuation and a space joins or leaves each one's pre-token as
    # its class says. Asked of every two-byte character, both ends of every range of the engine's classes and
    # both sides of every continuation byte's wrap (every 64th code point), where a wrong byte range would show
    edges = {c + d for lo, hi in engine_class("L") + engine_class("N") + engine_class("s")
             for c in (lo, hi) for d in (-1, 0, 1)}
    points = sorted(c for c in edges | set(range(0x800)) | {c + d for c in range(0, 0x110000, 64) for d in (-1, 0)}
                    if 0 <= c <= 0x10FFFF and not 0xD800 <= c <= 0xDFFF)
    text = "".join(f"a{chr(c)}1{chr(c)}-{chr(c)} {chr(c)}" for c in points)
    gpt2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert cut_bytes(GPT2)(text) == [p for p, _ in gpt2.pre_tokenize_str(text)]


@pytest.mark.parametrize("pattern, text", [
    pytest.param(r"[a-zc]+", "abcxyz-z", id="an item inside an earlier range"),
    pytest.param(r"[a-]+", "a-b--a", id="a dash before the closing bracket"),
    pytest.param(r"[[ab]c]+", "abcd[]c", id="a nested class"),
    pytest.param(r"\p{L}++a", "xa ya", id="a possessive run"),
    pytest.param(r"\x41+", "AAB", id="a two-digit hex escape"),
    pytest.param(r"\v+", "va\x0b\x0c", id="a vertical tab"),
    pytest.param(r"[a\x{80}]+", "a\x80b\xc2\x80", id="a class ending at U+0080"),
    pytest.param(r"\p{L}+?", "abc dé", id="a lazy run"),
    pytest.param(r"é+|─{2}", "ééa é───", id="a quantified multi-byte character"),
    # the line anchors see the text's newline, which the byte-level form writes as another character
    pytest.param(r"a$|\n$", "a\nba\ra\n\n", id="the end of a line"),
    pytest.param(r"^b|^\n", "a\nbb\rb\n\nb", id="the start of a line"),
    pytest.param(r"a\Z", "aa\n", id="the end before a final newline"),
    pytest.param(r"a\Z", "aa", id="the end without a final newline"),
    pytest.param(r"a{,2}b", "aaab", id="a count with no lower bound"),
    pytest.param(r"[^\s\S]+|a", "aab", id="a repeated empty class"),
])
def test_each_construct_cuts_as_the_text_regex(pattern, text):
    """The rules may use any of these; each must keep its meaning in byte-level form."""
    assert cut_bytes(pattern)(text) == cut_text(pattern)(text)


def test_a_pattern_that_is_cut_short_is_an_error_naming_it():
    """A stray ``)`` or an unclosed class is refused, not rewritten as part of the pattern."""
    with pytest.raises(ValueError, match=r"at 1: unbalanced parenthesis"):
        byte_level_regex(r"a)b")
    with pytest.raises(ValueError, match=r"unclosed character class"):
        byte_level_regex(r"x[ab")
