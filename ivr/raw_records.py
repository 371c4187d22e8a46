"""One raw record's text as the cleaned corpus takes it: line ends and byte-order mark normalised, refused where it
looks binary or holds a lone surrogate, cut into documents of a bounded length; JSON records read with their errors
named by file, line or record. ``ivr.corpus`` decides which files are read and in which encoding."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

from ivr.cleaned_corpus import CorpusError, Document

LONE_SURROGATE = re.compile("[\ud800-\udfff]")
TOO_DEEP = "invalid JSON (nested deeper than Python's JSON reader can follow)"


def normalize(text: str) -> str:
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def invalid_json(path: Path, lineno: int | None, err: json.JSONDecodeError) -> CorpusError:
    """``lineno`` is the file's line of a JSONL record where ``err`` happened (None for a whole ``.json`` file,
    whose line is counted here); the column counts from that line's start."""
    if lineno is None:
        # json counts \n alone; a file's lines end at \r\n, \r or \n, as its other errors count them
        head = err.doc[:err.pos]
        lineno = head.count("\n") + head.count("\r") - head.count("\r\n") + 1
        colno = err.pos - max(head.rfind("\n"), head.rfind("\r"))
    else:  # a JSONL line holds no line break
        colno = err.colno
    # some of json's messages end in "at" ("Invalid control character at")
    message = f"{path}:{lineno}: invalid JSON ({err.msg.removesuffix(' at')} at column {colno})"
    if path.suffix.lower() == ".json" and _json_lines(err):
        message += (f": the file holds a JSON object per line, as JSON Lines does; rename it to {path.stem}.jsonl "
                    "(a .json file holds one list of records, or one record)")
    return CorpusError(message)


def _json_lines(err: json.JSONDecodeError) -> bool:
    """Whether a whole file's ``err`` is that of JSON Lines (what many exporters write under ``.json``): a JSON
    object, then more data from the start of a later line."""
    if err.msg != "Extra data":
        return False
    head = err.doc[:err.pos]
    gap = head[len(head.rstrip()):]  # json puts the extra data's position after the whitespace that precedes it
    return head.lstrip().startswith("{") and head.rstrip().endswith("}") and ("\n" in gap or "\r" in gap)


MIN_BINARY_CHECK = 256
"""Texts shorter than this are judged binary by a NUL only, not by their share of control characters."""


def check_text(text: str, where: str) -> str:
    """``text``, unless it looks binary: a NUL anywhere, or over 5% control characters in its first 64k characters
    (of texts of at least ``MIN_BINARY_CHECK`` characters);
    or unless it holds a lone surrogate (a JSON escape such as ``\\ud800``), which no UTF-8 file can hold."""
    head = text[:65536]
    controls = sum(1 for c in head if c < " " and c not in "\t\n\f\v")
    nul = text.find("\0")  # the whole text: one C scan, and a NUL past the head is as binary as one in it
    # a short text with a few controls is text (terminal colours in a log line: "\x1b[1mBold\x1b[0m")
    if nul >= 0 or controls > 0.05 * len(head) and len(head) >= MIN_BINARY_CHECK:
        # by line and column: the text's line ends are \n by now, so a character offset would not be the file's
        at = (f"a NUL at line {text.count(chr(10), 0, nul) + 1}, column {nul - text.rfind(chr(10), 0, nul)}"
              if nul >= 0 else "no NUL")
        raise CorpusError(f"{where}: looks binary ({controls} control characters in the first {len(head)}; {at}); "
                          "only text is read: remove it or convert it to text")
    if bad := LONE_SURROGATE.search(text):
        raise CorpusError(f"{where}: holds a lone surrogate {ascii(bad.group())} at character {bad.start()}, which "
                          "is not text and cannot be written as UTF-8; fix the escape in the source")
    return text


def split_long(text: str, max_chars: int) -> list[str]:
    """``text`` cut into pieces of at most ``max_chars`` characters: after the last paragraph break
    (a blank line) that fits, else after the last line break, else at ``max_chars``. The pieces join back
    to ``text``. A corpus of a few large documents then still has documents for both splits."""
    if max_chars < 1:  # no piece would take a character: the loop would append empty pieces forever
        raise ValueError(f"data.max_document_chars must be a positive number of characters, got {max_chars}")
    pieces, start = [], 0
    while len(text) - start > max_chars:  # by offsets: slicing off the rest each time is quadratic on one long line
        end = start + max_chars
        paragraph, line = text.rfind("\n\n", start, end), text.rfind("\n", start, end)
        cut = paragraph + 2 if paragraph > start else line + 1 if line >= start else end
        pieces.append(text[start:cut])
        start = cut
    return [*pieces, text[start:]] if start < len(text) else pieces


def documents(text: str, doc_id: str, where: str, max_chars: int) -> Iterator[Document]:
    """One cleaned source text as documents: whole, or cut by ``split_long`` with ``#k`` on the id."""
    text = check_text(normalize(text), where)
    if not text.strip():
        return
    pieces = split_long(text, max_chars)
    if len(pieces) == 1:
        yield Document(doc_id, text)
        return
    for k, piece in enumerate(pieces):
        if piece.strip():
            yield Document(f"{doc_id}#{k}", piece)


class _Repeated(dict):
    """A JSON object that names a key twice (json keeps the last value): which keys."""

    repeated: frozenset = frozenset()


def json_object(pairs: list[tuple[str, object]]) -> dict:
    """``json``'s ``object_pairs_hook``: a dict, marked where a key repeats."""
    record = dict(pairs)
    if len(record) == len(pairs):
        return record
    marked = _Repeated(record)
    marked.repeated = frozenset(k for k, n in Counter(k for k, _ in pairs).items() if n > 1)
    return marked


def record_text(record: object, key: str, where: str) -> str:
    if isinstance(record, _Repeated) and key in record.repeated:  # which of its texts is the document?
        raise CorpusError(f"{where}: the {key!r} field appears more than once in the record")
    if not isinstance(record, dict):
        raise CorpusError(f"{where}: expected a JSON object with a {key!r} field, got {type(record).__name__}")
    if key not in record:
        keys = ", ".join(sorted(map(str, record))[:8]).encode("utf-8", "backslashreplace").decode("utf-8") or "none"
        raise CorpusError(f"{where}: no {key!r} field (fields: {keys}); set --data.text_key (`ivr init --text-key`)")
    value = record[key]
    if not isinstance(value, str):
        raise CorpusError(f"{where}: field {key!r} is {type(value).__name__}, expected a string")
    return value
