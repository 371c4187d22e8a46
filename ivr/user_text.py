"""Text files the user names in a setting (forced tokens, word lists, remap rules, references, prompts): read as
UTF-8, with one error that names the file, the setting and the first bad byte. ``~`` in a path is the home folder,
as a shell reads it (a config file passes it on as written)."""

from __future__ import annotations

from pathlib import Path

from ivr.cleaned_corpus import CorpusError
from ivr.raw_records import LONE_SURROGATE


def require_utf8_text(text: str, setting: str) -> None:
    """A byte that is not UTF-8 on the command line (a terminal in another encoding), or an escape such as
    ``\\ud800`` in a config, gives a lone surrogate, which has no bytes: named with its setting when the settings
    are read, not by the codec in the stage that reads the setting (after analyze)."""
    if LONE_SURROGATE.search(text):
        raise ValueError(f"{setting}: {ascii(text)} holds a lone surrogate (a byte that is not UTF-8, or an escape "
                         "such as \\ud800), which no text can; write it in UTF-8")


def require_utf8_path(path: str | Path, setting: str) -> None:
    """A path whose bytes are not UTF-8 (a name in another encoding, typed in a terminal that uses one) reaches
    Python as lone surrogates, which no report, stamp or record written as UTF-8 can hold: named with its setting
    when the settings are read, not by the codec when a stage writes its first report."""
    text = str(path)
    if LONE_SURROGATE.search(text):
        raise ValueError(f"{ascii(text)} ({setting}): the path is not valid UTF-8 (a name in another encoding), and "
                         "the reports that name it are UTF-8; rename it (or the folder holding it) to a UTF-8 name")


def require_file(path: str | Path, setting: str) -> None:
    """Checked when the settings are read, before any stage runs: a missing file is named with its setting."""
    if str(path) == "":  # which Path would read as the current folder
        raise FileNotFoundError(f"an empty path ({setting}): name a file, or drop the empty value")
    require_utf8_path(path, setting)
    path = Path(path).expanduser()
    if not path.is_file():
        # a pipe or a device exists but cannot be hashed for the stamps and read again by the stage
        state = ("is a directory, not a file" if path.is_dir() else
                 "is not a regular file (a pipe or a device cannot be read twice)" if path.exists() else "not found")
        raise FileNotFoundError(f"{path}: {state} ({setting})")


def read_user_text(path: str | Path, setting: str) -> str:
    """The UTF-8 text of ``path`` without a byte-order mark; a missing, unreadable or non-UTF-8 file raises an
    error naming ``setting``."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{path}: not found ({setting})") from None
    except OSError as err:
        raise ValueError(f"{path}: cannot be read ({setting}): {err.strerror or err}") from None
    try:
        return data.decode("utf-8").removeprefix("\ufeff")  # a byte-order mark (Windows editors) is no text
    except UnicodeDecodeError as err:
        bad = data[err.start : err.start + 4].hex(" ")
        line = data.count(b"\n", 0, err.start) + 1
        raise ValueError(f"{path}:{line}: bytes at offset {err.start} (0x{bad}) are not valid UTF-8 ({setting}); "
                         f"save the file as UTF-8") from None


def read_user_lines(path: str | Path, setting: str) -> list[str]:
    """The lines of ``read_user_text``, numbered from 1 by their index + 1: a line ends at ``\n`` (or ``\r\n``)
    only, since a form feed or U+2028 inside a line is text, as in source files, and would shift the line numbers
    that errors name."""
    return [line.removesuffix("\r") for line in read_user_text(path, setting).split("\n")]


def text_lines(text: str) -> list[str]:
    """The lines of ``text``, each with its ``\n``: a line ends at ``\n`` only, as in ``read_user_lines`` (a form
    feed, U+2028 or NEL inside a line is text, which ``str.splitlines`` would cut at)."""
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    return lines if lines[-1] else lines[:-1]


def read_text_files(paths: list[str]) -> list[str]:
    """UTF-8 text files given by the user for evaluation only (``data.extra_eval_paths``); errors name the file."""
    texts = []
    for p in paths:
        if Path(p).expanduser().is_dir():  # asked first: reading a directory fails with a bare errno (on Windows, "permission")
            raise CorpusError(f"data.extra_eval_paths: {p} is a directory; list UTF-8 text files, one path each")
        try:
            texts.append(read_user_text(p, "data.extra_eval_paths").replace("\r\n", "\n").replace("\r", "\n"))
        except (FileNotFoundError, ValueError) as err:
            raise CorpusError(str(err)) from None
    return texts
