"""The prompts file of ``ivr predict``: one prompt per line, ``\\n`` inside a line standing for a newline."""

from __future__ import annotations

from pathlib import Path

from ivr.user_text import read_user_text


def read_prompts(path: str | Path | None) -> list[str]:
    """The prompts of ``path``; errors name the file and say what is expected."""
    if not path:
        raise ValueError("ivr predict needs --data.prompts_path: a text file with one prompt per line")
    lines = read_user_text(path, "data.prompts_path").splitlines()
    prompts = [line.replace("\\n", "\n") for line in lines if line.strip()]
    if not prompts:
        raise ValueError(f"{path} holds no prompts (one per line expected)")
    return prompts
