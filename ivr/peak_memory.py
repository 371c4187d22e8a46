"""Peak resident memory of a stretch of work, as the operating system counts it.

The memory targets are about the whole process: the `tokenizers` library's Rust allocations included, which
Python's ``tracemalloc`` never sees (and tracing every Python allocation made the distillation fit 2.7x slower).
"""

from __future__ import annotations

import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _high_water_mark_kb() -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def process_peak_kb() -> int:
    """The process's peak resident set size in KiB (``resource.getrusage``): since it started, or since the
    last ``PeakRSS`` block began on Linux, whose reset restarts this count too."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


class PeakRSS:
    """``with PeakRSS() as peak: ...``; then ``peak.mb`` is the process's peak resident set size in MB.

    On Linux the kernel's high-water mark is reset on entry (``/proc/self/clear_refs``), so the figure covers the
    block alone (``peak.scope == "block"``). Elsewhere it is the process's peak since it started (``"process"``), an
    upper bound. The reset also restarts what ``resource.getrusage`` reports as ``ru_maxrss``; ``peak.before_mb``
    keeps the process's peak up to the block.
    """

    mb: float
    scope: str
    before_mb: float | None

    def __enter__(self) -> PeakRSS:
        kb = _high_water_mark_kb()
        self.before_mb = None if kb is None else round(kb / 1024, 1)
        try:
            _CLEAR_REFS.write_text("5")
            self.scope = "block" if _high_water_mark_kb() is not None else "process"
        except OSError:
            self.scope = "process"
        return self

    def __exit__(self, *exc) -> None:
        kb = _high_water_mark_kb() if self.scope == "block" else None
        if kb is None:
            kb = process_peak_kb()
        self.mb = round(kb / 1024, 1)
