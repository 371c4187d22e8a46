"""The byte-level alphabet of GPT-2 and every byte-level BPE after it: every byte is one printable character,
every token a string of them."""

from __future__ import annotations

from functools import lru_cache

from ivr.tokenizers.special import ENDOFTEXT

# GPT-2's values, for code that has not yet read them from its tokenizer (ivr.tokenizers.special does)
EOS_TOKEN = ENDOFTEXT
EOS_ID = 50256


@lru_cache(maxsize=1)
def byte_to_char() -> dict[int, str]:
    """GPT-2's ``bytes_to_unicode``: printable bytes map to themselves, the rest to chars from U+0100 up."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = keep[:]
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(keep, chars)}


@lru_cache(maxsize=1)
def char_to_byte() -> dict[str, int]:
    return {c: b for b, c in byte_to_char().items()}


@lru_cache(maxsize=1)
def _to_latin1() -> dict[int, int]:
    """``str.translate`` table from the alphabet to the Latin-1 character of each byte; a character below 256
    outside the alphabet (a space, a newline) goes to U+FFFF, which Latin-1 cannot encode, as any character above
    255 outside it stays."""
    table = {cp: 0xFFFF for cp in range(256)}
    table.update((ord(c), b) for b, c in byte_to_char().items())
    return table


def piece_to_bytes(piece: str) -> bytes:
    """The raw bytes a byte-level piece stands for; ``<|endoftext|>``, the document separator, has none (packed
    blocks count the bytes of their text only). A character outside the alphabet is a ``ValueError``."""
    if piece == ENDOFTEXT:
        return b""
    raw = _bytes_or_none(piece)
    if raw is None:
        bad = next(c for c in piece if c not in char_to_byte())
        raise ValueError(f"{piece!r} is not a byte-level piece: {bad!r} is outside the byte-level alphabet")
    return raw


def _bytes_or_none(piece: str) -> bytes | None:
    # translated and encoded in C: the selection converts every vocabulary piece many times over
    try:
        return piece.translate(_to_latin1()).encode("latin-1")
    except UnicodeEncodeError:
        return None


def utf8_or_none(raw: bytes) -> str | None:
    """``raw`` decoded as UTF-8; None where it is not whole UTF-8 characters (a piece may hold part of one)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def whole_text(piece: str) -> str | None:
    """The text of a byte-level piece; None where its bytes are not whole UTF-8 characters."""
    return utf8_or_none(piece_to_bytes(piece))


def bytes_to_piece(data: bytes) -> str:
    # each byte read as the Latin-1 character of its value, then mapped in C
    return data.decode("latin-1").translate(byte_to_char())


def text_to_piece(text: str) -> str:
    return bytes_to_piece(text.encode("utf-8"))


def readable(piece: str) -> str:
    """Human-readable form of a piece: its bytes decoded as UTF-8 with escapes for what does not decode; an added
    token that is no byte-level string (``<|endoftext|>``, ``<｜begin▁of▁sentence｜>``) as it is."""
    raw = None if piece == ENDOFTEXT else _bytes_or_none(piece)
    return piece if raw is None else raw.decode("utf-8", errors="backslashreplace")


def single_byte_pieces() -> set[str]:
    """The 256 one-byte pieces, which every byte-level vocabulary must keep."""
    return set(byte_to_char().values())


def run_length(piece: str, char: str) -> int | None:
    """How many times ``char`` (one character's byte-level piece) makes up ``piece``; None if it does not."""
    k = len(piece) // len(char)
    return k if piece == char * k else None
