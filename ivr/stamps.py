"""Stage stamps: which inputs produced a stage's outputs, so a rerun rebuilds only what changed."""

from __future__ import annotations

import json
from pathlib import Path

from ivr.atomic import write_json


def is_current(stamp_path: Path, key: dict, outputs: list[Path]) -> bool:
    """True when every output exists and the stamp records exactly ``key``."""
    if not stamp_path.is_file() or not all(Path(p).exists() for p in outputs):
        return False
    return json.loads(stamp_path.read_text(encoding="utf-8")).get("key") == key


def write_stamp(stamp_path: Path, key: dict, outputs: list[Path]) -> None:
    # written after the outputs: a crash in between only costs a rebuild, never trusts a partial result
    write_json(stamp_path, {"key": key, "outputs": [str(p) for p in outputs]})
