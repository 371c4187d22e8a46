"""The prompts file of ``ivr predict``: one prompt per line (empty lines skipped, a line of spaces kept), ``\\n``
inside a line standing for a newline and ``\\\\`` for a backslash."""

from __future__ import annotations

import re
from pathlib import Path

from ivr.user_text import read_user_lines


def read_prompts(path: str | Path | None) -> list[str]:
    """The prompts of ``path``; errors name the file and say what is expected."""
    if not path:
        raise ValueError("ivr predict needs --data.prompts_path: a text file with one prompt per line")
    # an empty line is no prompt; one of spaces (an indentation to continue) is
    prompts = [_unescape(line) for line in read_user_lines(path, "data.prompts_path") if line]
    if not prompts:
        raise ValueError(f"{path} holds no prompts (one per line expected)")
    return prompts


def _unescape(line: str) -> str:
    r"""``\n`` a newline, ``\\`` a backslash; any other backslash stays as it is."""
    return re.sub(r"\\([n\\])", lambda m: "\n" if m.group(1) == "n" else "\\", line)
