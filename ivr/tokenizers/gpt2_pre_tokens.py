"""GPT-2's pre-tokenizer: its regex, how a tokenizer's pipeline is recognised as it (alone, or after
``Digits(individual_digits=True)``), and the same pre-tokens cut by the ``regex`` package at a quarter of the CPU
time when counting them.

``pre_tokenize_str`` builds a Python tuple of a string and its offsets for every pre-token, which costs about as
much as encoding the text; ``regex.findall`` returns the strings alone: counting the pre-tokens of 27 MB of code
and translated messages took 0.16 CPU-seconds per MB this way against 0.42 (one run). The character classes
``\\p{L}``, ``\\p{N}`` and ``\\s`` are written out as the ``tokenizers`` engine reads them
(``byte_level_regex.engine_class``), and the isolated digits as ``Digits`` reads them, so the two engines
cannot disagree on a Unicode version; both are backtracking engines trying alternatives in order, and
``tests/test_gpt2_pre_tokens.py`` checks them against each other on arbitrary text.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from functools import lru_cache

import regex
from tokenizers import Tokenizer

from ivr.tokenizers.byte_level import piece_to_bytes, text_to_piece
from ivr.tokenizers.byte_level_regex import MAX_CODE_POINT, SURROGATES, engine_class, normalise_ranges
from ivr.tokenizers.byte_level_regex import isolated_digits as isolated_digits_ranges
from ivr.tokenizers.io import pre_tokens

GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"


def pre_tokenizer_steps(spec: dict) -> list[dict]:
    """A ``tokenizer.json``'s pre-tokenizer steps, a ``Sequence`` unpacked."""
    pre = spec.get("pre_tokenizer") or {}
    return pre.get("pretokenizers", []) if pre.get("type") == "Sequence" else [pre]


def is_gpt2_pre_tokenizer(steps: list[dict]) -> bool:
    """Whether the pre-tokenizer steps (``pre_tokenizer_steps``) cut by GPT-2's regex alone:
    ``ByteLevel(use_regex=True)``, or ``Split(GPT-2's regex, isolated)`` then ``ByteLevel(use_regex=False)``,
    without a prefix space."""
    def byte_level(step: dict, use_regex: bool) -> bool:
        return step.get("type") == "ByteLevel" and step.get("use_regex", True) == use_regex \
            and not step.get("add_prefix_space", False)

    if len(steps) == 1:
        return byte_level(steps[0], True)
    if len(steps) == 2:
        split = steps[0]
        return (split.get("type") == "Split" and split.get("pattern") == {"Regex": GPT2_PATTERN}
                and split.get("behavior") == "Isolated" and not split.get("invert") and byte_level(steps[1], False))
    return False


def is_digits_then_gpt2(steps: list[dict]) -> bool:
    """Whether the pre-tokenizer steps put every digit on its own (``Digits(individual_digits=True)``) and then cut
    the rest by GPT-2's regex (``is_gpt2_pre_tokenizer``), as SmolLM's and StarCoder's Hub tokenizers do."""
    return (len(steps) >= 2 and steps[0].get("type") == "Digits" and bool(steps[0].get("individual_digits"))
            and is_gpt2_pre_tokenizer(steps[1:]))


def crosses_digit(piece: str) -> bool:
    """Whether the byte-level ``piece`` holds a digit (a character ``Digits`` isolates, ``isolated_digits``) and
    anything else, a part of a character included: behind ``Digits(individual_digits=True)`` no pre-token does,
    so BPE never outputs such a piece."""
    text = piece_to_bytes(piece).decode("utf-8", errors="replace")
    return len(text) > 1 and any(ord(ch) in _isolated_digit_points() for ch in text)


@lru_cache(maxsize=1)
def _isolated_digit_points() -> frozenset[int]:
    return frozenset(_code_points(isolated_digits_ranges()))


def _code_points(ranges: Iterable[tuple[int, int]]) -> set[int]:
    return {c for lo, hi in ranges for c in range(lo, hi + 1)}


def _class_set(name: str, every: str) -> str:
    """``regex``'s own ``\\p{L}``, ``\\p{N}`` or ``\\s`` (a table lookup), made the ``tokenizers`` engine's class:
    the code points a newer Unicode version gave the ``regex`` package are taken out, any it lacks put in.
    ``every``: every code point but the surrogates, as one string."""
    own = {"L": r"\p{L}", "N": r"\p{N}", "s": r"\s"}[name]
    theirs = {ord(ch) for ch in regex.findall(own, every)}
    engine = _code_points(engine_class(name))

    def written(points: set[int]) -> str:
        return "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in normalise_ranges((c, c) for c in points))

    added, removed = written(engine - theirs), written(theirs - engine)
    return f"[{own}{added}" + (f"--[{removed}]]" if removed else "]")


# GPT-2's pattern behind Digits(individual_digits=True), as one pattern: D (the digits that step isolates) stands
# alone, no other class takes it, and white space before it ends as at the end of a text. A \p{N} character that
# step left alone would still be GPT-2's (none in tokenizers 0.23, but the two read different Unicode tables)
DIGITS_THEN_GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+|D| ?[\p{N}--D]+| ?[^\s\p{L}\p{N}D]+|\s+(?![^\sD])|\s+"


@lru_cache(maxsize=2)
def gpt2_regex(isolated_digits: bool = False) -> regex.Pattern:
    """GPT-2's pattern with the engine's classes (built once per process, about 3 s); with ``isolated_digits``,
    ``DIGITS_THEN_GPT2_PATTERN``, the pre-tokens of ``Digits(individual_digits=True)`` then GPT-2's regex."""
    lo, hi = SURROGATES
    every = "".join(chr(c) for c in range(MAX_CODE_POINT + 1) if not lo <= c <= hi)
    letter, digit, space = (_class_set(n, every) for n in ("L", "N", "s"))
    classes = {r"[^\s\p{L}\p{N}]": f"[^{space}{letter}{digit}]", r"\p{L}": letter, r"\p{N}": digit, r"\s": space,
               r"\S": f"[^{space}]"}
    if isolated_digits:  # read only here (about 1 s): GPT-2's own pattern has no D
        alone = "[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in isolated_digits_ranges()) + "]"
        letter = f"[{letter}--{alone}]"  # no other class may take a digit that step isolates, whatever the tables say
        classes |= {r"[^\s\p{L}\p{N}D]": f"[^{space}{letter}{digit}{alone}]", r"[\p{N}--D]": f"[{digit}--{alone}]",
                    r"[^\sD]": f"[^{space}{alone}]", r"\p{L}": letter, "D": alone}
    source = DIGITS_THEN_GPT2_PATTERN if isolated_digits else GPT2_PATTERN
    pattern = regex.sub("|".join(map(regex.escape, classes)), lambda m: classes[m.group()], source)
    return regex.compile(pattern, flags=regex.VERSION1)  # version 1: set difference in classes


class PreTokenCutter:
    """The byte-level pre-tokens ``tok`` cuts texts into (``ivr.tokenizers.io.pre_tokens``), through ``regex``
    where ``tok`` has no normalizer and GPT-2's pre-tokenizer regex (after isolated digits or not), through
    ``tok`` itself otherwise."""

    def __init__(self, tok: Tokenizer):
        spec = json.loads(tok.to_str())
        self.tok = tok
        steps = pre_tokenizer_steps(spec) if spec.get("normalizer") is None else []
        fast = is_gpt2_pre_tokenizer(steps) or is_digits_then_gpt2(steps)
        self._findall: Callable[[str], list[str]] | None = (
            gpt2_regex(is_digits_then_gpt2(steps)).findall if fast else None)

    @property
    def fast(self) -> bool:
        """Whether the ``regex`` package cuts the texts."""
        return self._findall is not None

    def __call__(self, text: str) -> list[str]:
        if self._findall is None:
            return pre_tokens(self.tok, text)
        return [text_to_piece(w) for w in self._findall(text)]

    def counts(self, text: str) -> Counter:
        """How often each byte-level pre-token occurs in ``text``."""
        if self._findall is None:
            return Counter(pre_tokens(self.tok, text))
        return Counter({text_to_piece(w): n for w, n in Counter(self._findall(text)).items()})
