"""The pieces of GPT-2's pre-tokenizer regex that the split rules, the word rules and the assembled pattern share."""

from __future__ import annotations

import unicodedata

# GPT-2's character classes as its regex writes them (\p{L}+, \p{N}+, [^\s\p{L}\p{N}]+)
CLASS_RX = {"letter": r"\p{L}", "digit": r"\p{N}", "punct": r"[^\s\p{L}\p{N}]"}
CONTRACTION = "'(?:s|t|re|ve|m|ll|d)"
# Python's isspace() takes the information separators U+001C-U+001F for white space; the regex's \s does not
NOT_REGEX_SPACE = "\x1c\x1d\x1e\x1f"


def rx(text: str) -> str:
    """``text`` as a regex literal (every character escaped by code point)."""
    return "".join("\\x{%02X}" % ord(ch) for ch in text)


def gpt2_class(ch: str) -> str | None:
    """The class of GPT-2's pre-tokenizer regex that ``ch`` belongs to (None for white space)."""
    if ch.isspace() and ch not in NOT_REGEX_SPACE:
        return None
    category = unicodedata.category(ch)[0]  # Python's isdigit() differs from \p{N} beyond ASCII ("½")
    return "letter" if category == "L" else "digit" if category == "N" else "punct"
