"""The prompts file of ``ivr predict``: one prompt per line, ``\\n`` inside a line standing for a newline and
``\\\\`` for a backslash."""

from __future__ import annotations

import re
from pathlib import Path

from ivr.user_text import read_user_text


def read_prompts(path: str | Path | None) -> list[str]:
    """The prompts of ``path``; errors name the file and say what is expected."""
    if not path:
        raise ValueError("ivr predict needs --data.prompts_path: a text file with one prompt per line")
    # lines end at "\n" (and "\r\n") only: a form feed or U+2028 inside a prompt is text, as in source files
    lines = read_user_text(path, "data.prompts_path").replace("\r\n", "\n").split("\n")
    prompts = [_unescape(line) for line in lines if line.strip()]
    if not prompts:
        raise ValueError(f"{path} holds no prompts (one per line expected)")
    return prompts


def _unescape(line: str) -> str:
    r"""``\n`` a newline, ``\\`` a backslash; any other backslash stays as it is."""
    return re.sub(r"\\([n\\])", lambda m: "\n" if m.group(1) == "n" else "\\", line)
