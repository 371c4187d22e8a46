"""How the reports show strings in Markdown: each string its own code span, every character visible, so that a
token of seven spaces, a leading space or a backtick reads as what it is in any renderer."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

LEGEND = "Strings are shown as code with ␠ for a space and JSON escapes for the rest (`\\n` a newline, `\\\\` a backslash)."


def code(text: str) -> str:
    """``text`` as a Markdown code span: spaces as ␠, control characters and backslashes as JSON escapes, ``|``
    escaped for table cells, and a fence longer than any backtick run inside."""
    shown = json.dumps(text, ensure_ascii=False)[1:-1].replace('\\"', '"').replace(" ", "␠").replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def pieces(texts: Iterable[str]) -> str:
    """A segmentation: each piece a code span, joined by ·."""
    return "·".join(code(t) for t in texts)
