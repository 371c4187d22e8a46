"""The prompts file of ``ivr predict``: one prompt per line, ``\\n`` inside a line standing for a newline."""

from __future__ import annotations

from pathlib import Path


def read_prompts(path: str | Path | None) -> list[str]:
    """The prompts of ``path``; errors name the file and say what is expected."""
    if not path:
        raise ValueError("ivr predict needs --data.prompts_path: a text file with one prompt per line")
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"cannot read prompts from {path}: {err}") from None
    prompts = [line.replace("\\n", "\n") for line in lines if line.strip()]
    if not prompts:
        raise ValueError(f"{path} holds no prompts (one per line expected)")
    return prompts
