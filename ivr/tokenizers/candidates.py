"""``replacement_candidates.csv``: the ids selection frees and the strings it gives them, one row each.

Selection (``ivr.analysis.select``) writes it and remap reads it, so it lives beside remap: the analysis
package depends on the tokenizers package, never the other way round.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import polars as pl

from ivr.atomic import atomic_file


@dataclass
class Replacement:
    """One reassignment: ``freed_id`` stops meaning ``freed_token`` and starts meaning ``new_token``.

    ``domain_count`` counts the new string where it lies on distilled token boundaries in the training
    texts; ``estimated_saving`` is the tokens it saves there beyond the replacements ranked above it, and
    ``estimated_saving_pct`` that as a share of all training tokens. ``gpt2_ids`` are the GPT-2 ids the
    new string is split into without it.
    """

    rank: int
    new_text: str
    new_token: str
    domain_count: int
    gpt2_ids: list[int]
    estimated_saving: int
    estimated_saving_pct: float
    freed_id: int
    freed_token: str
    freed_text: str
    freed_domain_count: int
    freed_general_per_million: float
    reason: str


class CandidatesError(ValueError):
    """A candidates file that cannot be read; the message names the file and the row."""


CSV_COLUMNS = [f.name for f in fields(Replacement)]
INT_COLUMNS = frozenset({"rank", "domain_count", "estimated_saving", "freed_id", "freed_domain_count"})
FLOAT_COLUMNS = frozenset({"estimated_saving_pct", "freed_general_per_million"})
# a rule needs these to name what it frees and what it adds
REQUIRED_TEXT = ("new_token", "freed_token")


def write_candidates(path: str | Path, replacements: Sequence[Replacement]) -> None:
    """Write the rows atomically; ``gpt2_ids`` as space-separated ids."""
    rows = [asdict(r) | {"gpt2_ids": " ".join(map(str, r.gpt2_ids))} for r in replacements]
    schema = {c: (pl.Int64 if c in INT_COLUMNS else pl.Float64 if c in FLOAT_COLUMNS else pl.Utf8) for c in CSV_COLUMNS}
    frame = pl.DataFrame(rows, schema=schema)
    with atomic_file(path) as tmp:
        frame.write_csv(tmp)


def read_candidates(path: str | Path) -> list[Replacement]:
    """The rows of a candidates file, checked: every column present, numbers parse, tokens non-empty."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: replacement candidates not found: run the selection stage first")
    try:
        frame = pl.read_csv(path, infer_schema=False)
    except (pl.exceptions.PolarsError, UnicodeDecodeError) as err:
        raise CandidatesError(f"{path}: not a readable CSV file: {err}") from None
    missing = [c for c in CSV_COLUMNS if c not in frame.columns]
    if missing:
        raise CandidatesError(f"{path}: missing columns {missing}")
    return [_replacement(row, f"{path}: row {n}") for n, row in enumerate(frame.iter_rows(named=True), 1)]


def _replacement(row: dict, where: str) -> Replacement:
    values: dict = {}
    for c in CSV_COLUMNS:
        v = row[c]
        if c == "gpt2_ids":
            values[c] = [_number(int, x, c, where) for x in (v or "").split()]
        elif c in INT_COLUMNS:
            values[c] = _number(int, v, c, where)
        elif c in FLOAT_COLUMNS:
            values[c] = _number(float, v, c, where)
        else:
            values[c] = v or ""
    for c in REQUIRED_TEXT:
        if not values[c]:
            raise CandidatesError(f"{where}: {c} is empty")
    return Replacement(**values)


def _number(kind: type, value: str | None, column: str, where: str) -> int | float:
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise CandidatesError(f"{where}: {column} {value!r} is not {'an int' if kind is int else 'a number'}") from None
