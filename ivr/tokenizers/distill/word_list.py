"""The format of ``data.distill.word_list``: one word per line, optionally ``word<TAB>count``; read when the
settings are (so a bad line stops the run before any stage) and again by the fit, which cuts the words."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path

from ivr.user_text import read_user_lines

SETTING = "data.distill.word_list"
# far above any corpus's count of a word; the fit's linear program multiplies counts by its penalties, and a count
# near the float range (1e308) would overflow there
MAX_COUNT = 1e12


def read_word_list_entries(path: str | Path) -> Counter:
    """Each listed word with its count (default 1; a word listed twice adds up); a malformed line raises an error
    naming the file, the line and the setting."""
    entries: Counter = Counter()
    for lineno, line in enumerate(read_user_lines(path, f"{SETTING}: UTF-8 text, one word per line"), 1):
        if not line.strip():
            continue
        fields = line.split("\t")
        word = fields[0].strip()
        if len(fields) > 2:  # a second tab: a mangled line or a different format, not a count to guess at
            raise ValueError(f"{path}:{lineno}: expected `word` or `word<TAB>count`, got {len(fields)} tab-separated "
                             f"fields: {line!r} ({SETTING})")
        if not word:
            raise ValueError(f"{path}:{lineno}: a count without a word: {line!r} ({SETTING})")
        if any(c.isspace() for c in word):
            raise ValueError(f"{path}:{lineno}: a word list entry holds white space: {word!r} ({SETTING})")
        try:
            count = float(fields[1]) if len(fields) > 1 else 1.0
        except ValueError:
            count = math.nan
        if not (math.isfinite(count) and count > 0):
            raise ValueError(f"{path}:{lineno}: the count after the tab must be a positive, finite number: {fields[1]!r} "
                             f"({SETTING})")
        if entries[word] + count > MAX_COUNT:
            what = "the count" if word not in entries else f"the counts of {word!r} on this and earlier lines"
            raise ValueError(f"{path}:{lineno}: {what} exceed(s) {MAX_COUNT:.0e}, more than any corpus holds "
                             f"({SETTING})")
        entries[word] += count
    return entries
