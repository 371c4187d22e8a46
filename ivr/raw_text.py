"""Raw bytes → text: the configured encoding, byte-order marks, and a JSONL file's lines streamed one chunk at a
time, with errors that name the file, line and byte offset. ``ivr.corpus`` turns the text into documents."""

from __future__ import annotations

import codecs
import contextvars
import io
from collections.abc import Iterator
from pathlib import Path

from ivr.cleaned_corpus import CorpusError

UTF8_BOM = b"\xef\xbb\xbf"

# byte-order marks of the encodings they name; UTF-32's first, since UTF-16's little-endian mark begins it
BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


def damaged(where: str, offset: int, bad: bytes, encoding: str, reason: str) -> CorpusError:
    """``bad``, at ``offset`` of a file read as UTF-16 or UTF-32 (``encoding_conflict`` found no mark or text of
    another encoding) that are not valid there: the file is in that encoding and damaged there, and passing the
    encoding again would not help."""
    return CorpusError(f"{where}: bytes at offset {offset} (0x{bad[:4].hex(' ')}) are not valid {encoding} "
                       f"({reason}); the file is damaged there (cut short, or overwritten): fix it or copy it again")


def decode(data: bytes, path: Path, encoding: str, line: int | None = None, base_offset: int = 0) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as err:
        where = f"{path}:{line}" if line is not None else str(path)
        bad = data[err.start : err.start + 4].hex(" ")
        if is_wide(encoding):
            raise damaged(where, base_offset + err.start, data[err.start:], encoding, err.reason) from None
        marked = next((name for bom, name in BOMS if data.startswith(bom)), None) if line in (None, 1) else None
        hint = (f"the file starts with a {marked.upper()} byte-order mark: pass --data.encoding {marked}, or convert "
                "the file to UTF-8" if marked else
                "pass --data.encoding (`ivr init --encoding`) with the file's real encoding, e.g. latin-1 or cp1252")
        raise CorpusError(f"{where}: bytes at offset {base_offset + err.start} (0x{bad}) are not valid {encoding}; "
                          f"{hint}") from None


# stands for bytes a UTF-16 or UTF-32 file holds in error: a lone surrogate, which neither decoder ever gives
DAMAGE_MARK = "\udfff"
MARK_DAMAGE = "ivr-mark-damage"
_DAMAGE: contextvars.ContextVar[list[tuple[int, str]]] = contextvars.ContextVar("damage")


def _mark_damage(err: UnicodeDecodeError) -> tuple[str, int]:
    _DAMAGE.get().append((err.start, err.reason))
    return DAMAGE_MARK, err.end


codecs.register_error(MARK_DAMAGE, _mark_damage)


def is_wide(encoding: str) -> bool:
    """Whether ``encoding`` is UTF-16 or UTF-32 (any byte order), whose text holds NUL bytes."""
    return codecs.lookup(encoding).name.startswith(("utf-16", "utf-32"))


def jsonl_lines(path: Path, encoding: str) -> Iterator[tuple[int, str | CorpusError]]:
    """Each non-blank line of a JSONL file as (line number, its text or the error decoding it), read as the file
    is consumed. Where the encoding writes line breaks as the ASCII bytes (UTF-8, Latin-1, cp1252), lines are cut
    before decoding and the file is streamed; a UTF-16 or UTF-32 file is decoded whole, its bad bytes marked where
    they stand. Either way a bad byte costs only its line."""
    if "\n\r".encode(encoding) != b"\n\r":
        data = read_bytes(path)
        found = _DAMAGE.set([])
        try:
            decoded = data.decode(encoding, errors=MARK_DAMAGE).removeprefix("\ufeff")
            damage = iter(_DAMAGE.get())
        finally:
            _DAMAGE.reset(found)
        # newline="": \n, \r and \r\n end a line, as bytes.splitlines does; U+2028 inside a record does not
        text = io.StringIO(decoded, newline="")
        for lineno, line in enumerate(text, start=1):
            marks = line.count(DAMAGE_MARK)
            if marks:
                start, reason = next(damage)
                for _ in range(marks - 1):
                    next(damage)
                yield lineno, damaged(f"{path}:{lineno}", start, data[start:], encoding, reason)
            elif line.strip():  # the terminator is cut off: json counts a column after it as column 1 of the next line
                yield lineno, line.rstrip("\r\n")
        return
    offset, utf8 = 0, codecs.lookup(encoding).name == "utf-8"
    try:
        with open(path, "rb") as f:
            # newline=b"" is not a file option in binary mode: \r alone ends a line as in bytes.splitlines
            for lineno, raw_line in enumerate(binary_lines(f), start=1):
                line_offset, offset = offset, offset + len(raw_line)
                if lineno == 1 and utf8 and raw_line.startswith(UTF8_BOM):
                    raw_line, line_offset = raw_line[len(UTF8_BOM):], len(UTF8_BOM)  # a byte-order mark is no JSON
                if raw_line.strip():
                    try:
                        yield lineno, decode(raw_line.rstrip(b"\r\n"), path, encoding, lineno, line_offset)
                    except CorpusError as err:
                        yield lineno, err
    except OSError as err:
        raise unreadable(path, err) from None


def binary_lines(f, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The lines of a binary file as ``bytes.splitlines(keepends=True)`` cuts them (\n, \r\n and \r end a line),
    one chunk in memory at a time; a line longer than a chunk is joined once."""
    pending: list[bytes] = []  # the pieces of a line that may go on in the next chunk
    while chunk := f.read(chunk_size):
        if pending and pending[-1].endswith(b"\r"):  # a \r at a chunk's end: alone, or the first half of \r\n
            crlf = chunk.startswith(b"\n")
            yield b"".join(pending) + (b"\n" if crlf else b"")
            pending, chunk = [], chunk[crlf:]
        lines = chunk.splitlines(keepends=True)
        for i, line in enumerate(lines):
            if i == len(lines) - 1 and not line.endswith(b"\n"):
                pending.append(line)
            else:
                yield b"".join(pending) + line if pending else line
                pending = []
    if pending:
        yield b"".join(pending)


def read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as err:
        raise unreadable(path, err) from None


def unreadable(path: Path, err: OSError) -> CorpusError:
    """A raw file the system cannot read (a failing disk, a network folder gone): named, never skipped as a bad
    record, since the corpus would then depend on the state of the disk."""
    return UnreadableFile(f"{path}: cannot be read ({err.strerror or err}); fix the disk or move the file out of "
                          "data.raw_corpora_dir")


class UnreadableFile(CorpusError):
    """A raw file that cannot be read at all: ``data.on_bad_record: skip`` does not skip it."""


# each byte-order mark with the codec names (as codecs.lookup spells them) that read it as one; UTF-32's first
_MARKS = ((codecs.BOM_UTF32_LE, ("utf-32", "utf-32-le")), (codecs.BOM_UTF32_BE, ("utf-32", "utf-32-be")),
          (codecs.BOM_UTF16_LE, ("utf-16", "utf-16-le")), (codecs.BOM_UTF16_BE, ("utf-16", "utf-16-be")),
          (UTF8_BOM, ("utf-8", "utf-8-sig")))
_ASCII_TEXT = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def encoding_conflict(head: bytes, path: Path, encoding: str) -> CorpusError | None:
    """An error where a file's first bytes contradict ``encoding``: a byte-order mark of another encoding (a UTF-8
    mark read as cp1252 decodes without complaint, as ``ï»¿``), plain ASCII or other UTF-8 text read as UTF-16 or
    UTF-32, which decodes without complaint too, as CJK text, or UTF-16 or UTF-32 without a mark (``bomless_wide_encoding``)
    read otherwise: as an ASCII-compatible encoding, at another width, or in the other byte order (UTF-16-LE read
    as UTF-16-BE decodes without complaint, as CJK text). None where they agree."""
    name = codecs.lookup(encoding).name
    # the longest mark that matches (UTF-16's text would go on with the character U+0000 after UTF-32's)
    marks = next((names for bom, names in _MARKS if head.startswith(bom)), ())
    if marks and name not in marks:
        marked = marks[0]
        return CorpusError(f"{path}: starts with a {marked.upper()} byte-order mark but data.encoding is {encoding}; "
                           f"pass --data.encoding {marked}, or convert the file to {encoding}")
    wide = is_wide(name)
    if wide and not marks and len(head) >= 16 and set(head) <= _ASCII_TEXT:
        return CorpusError(f"{path}: starts with plain ASCII text (no NUL bytes) but data.encoding is {encoding}, "
                           "which would read it as other characters; pass --data.encoding utf-8 (or the file's "
                           "real encoding)")
    if wide and not marks and len(head) >= 16 and _utf8_beyond_ascii(head):
        return CorpusError(f"{path}: starts with UTF-8 text (characters beyond ASCII, no NUL bytes) but data.encoding "
                           f"is {encoding}, which would read it as other characters; pass --data.encoding utf-8")
    found = None if marks else bomless_wide_encoding(head)
    if found is None:
        return None
    what = "a NUL byte" if found.startswith("utf-16") else "three NUL bytes"
    looks = f"{path}: looks like {found[:6].upper()} without a byte-order mark ({what} beside every character)"
    if not wide:
        return CorpusError(f"{looks}; pass --data.encoding {found}, or convert the file to UTF-8")
    # a width or byte order the encoding does not read: compared by what each makes of the first characters, since
    # plain utf-16 and utf-32 read a file without a mark in the machine's byte order
    whole = head[: len(head) // 4 * 4]
    if whole.decode(encoding, errors="replace") != whole.decode(found, errors="replace"):
        return CorpusError(f"{looks}, which data.encoding {encoding} would read as other characters; pass "
                           f"--data.encoding {found}")
    return None


def _utf8_beyond_ascii(head: bytes) -> bool:
    """Whether a file's first bytes are UTF-8 text with a character beyond ASCII (the last one may be cut off): no
    NUL or other control byte, as UTF-16 or UTF-32 text of so many characters would have, and valid UTF-8, which
    UTF-16 text of other scripts is all but never."""
    if not any(b >= 0x80 for b in head) or any(b < 0x80 and b not in _ASCII_TEXT for b in head):
        return False
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
    except UnicodeDecodeError:
        return False
    return True


def bomless_wide_encoding(head: bytes) -> str | None:
    """The UTF-16 or UTF-32 codec (with its byte order) that a file's first bytes are in, where they carry no
    byte-order mark and their characters lie below U+0100 (UTF-16) or U+10000 (UTF-32): NUL bytes at the same
    places of every character. None where they are not."""
    for width, codec in ((4, "utf-32"), (2, "utf-16")):
        units = head[: len(head) // width * width]
        if len(units) < 8 or not any(units):
            continue
        half = width // 2  # the high half of each character's bytes: all NUL, after its low half in little-endian
        for order, nul in (("le", range(half, width)), ("be", range(half))):
            if not any(any(units[i::width]) for i in nul):
                return f"{codec}-{order}"
    return None
