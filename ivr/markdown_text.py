"""How the reports show strings in Markdown: each string its own code span, every character visible, so that a
token of seven spaces, a leading space or a backtick reads as what it is in any renderer."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Iterable

LEGEND = ("Strings are shown as code with ␠ for a space and JSON escapes for the rest (`\\n` a newline, `\\\\` a "
          "backslash); a byte that is no UTF-8 text on its own (part of a character split across tokens) shows as "
          "`\\\\xe3`, as the text of a backslash, x, e and 3 does.")
# the space sign itself, and what a renderer shows as a blank, a line break or nothing: spaces other than " "
# (Zs), line and paragraph separators (Zl, Zp), controls json.dumps leaves as they are (DEL, NEL and the other C1
# controls), format characters (Cf: a zero-width space, a byte-order mark, a soft hyphen); written as escapes
_INVISIBLE = ("Zs", "Zl", "Zp", "Cc", "Cf")


def _visible(char: str) -> str:
    """``char`` as it shows in a code span: itself, or its JSON escape (two for one beyond the BMP)."""
    if char != "␠" and (char == " " or unicodedata.category(char) not in _INVISIBLE):
        return char
    return json.dumps(char)[1:-1]


def code(text: str, table: bool = False) -> str:
    """``text`` as a Markdown code span: spaces as ␠, backslashes and every character that shows as a blank, a
    line break or nothing (other spaces, separators, control and format characters) as JSON escapes, a fence
    longer than any backtick run inside; in a table cell (``table``) ``|`` escaped."""
    if not text:
        return "(empty)"
    shown = json.dumps(text, ensure_ascii=False)[1:-1].replace('\\"', '"')
    shown = "".join(_visible(c) for c in shown).replace(" ", "␠")
    if table:
        shown = shown.replace("|", "\\|")
    fence = "`" * (max((len(run) for run in re.findall("`+", shown)), default=0) + 1)
    pad = " " if shown.startswith("`") or shown.endswith("`") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def pieces(texts: Iterable[str], table: bool = False) -> str:
    """A segmentation: each piece a code span, joined by ·."""
    return "·".join(code(t, table) for t in texts)


def setting_text(value: object) -> str:
    """A setting or recorded value as a reader of the report expects it, in the config's own spelling: ``true`` /
    ``false``, ``none`` for an unset one, ``(empty)`` for an empty string or list, a whole float without ``.0``,
    a list comma-separated, its strings as code spans (a token's leading space shows), and so a string with white
    space at either end (``split_rule_chars``' leading space)."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(code(v) if isinstance(v, str) else setting_text(v) for v in value) if value else "(empty)"
    if isinstance(value, str) and value != value.strip():
        return code(value)
    return str(value) if str(value) else "(empty)"



def counted(n: int, noun: str) -> str:
    """``n`` and ``noun`` (an ``s`` added unless ``n`` is 1): "1 special token", "2 special tokens"."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def inputs_section(inputs: dict | None) -> list[str]:
    """A report's "Inputs" section (what it was made from, by hash), as lines; none without inputs. A list (the
    extra evaluation files, each with its hash) is one line per entry, written as the JSON records it: paths and
    hashes are no tokens, so a space stays a space."""
    if not inputs:
        return []
    lines = ["", "## Inputs", ""]
    for k, v in inputs.items():
        if isinstance(v, (list, tuple)) and v:
            lines += [f"- {k}:", *[f"  - {entry}" for entry in v]]
        else:
            lines.append(f"- {k}: {setting_text(v)}")
    return lines
