"""Peak resident memory of a stretch of work, as the operating system counts it.

The memory targets are about the whole process: the `tokenizers` library's Rust allocations included, which
Python's ``tracemalloc`` never sees (and tracing every Python allocation made the distillation fit 2.7x slower).
The kernel's own count is read, never reset: resetting it (``/proc/self/clear_refs``) would also lower the peak
that ``/usr/bin/time -v`` reports for the whole command.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

_STATUS = Path("/proc/self/status")
SAMPLE_SECONDS = 0.01


def _status_kb(field: str) -> int | None:
    """``VmHWM`` (the process's peak) or ``VmRSS`` (now) in KiB; None where /proc is not there."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


def process_peak_kb() -> int:
    """The process's peak resident set size in KiB since it started (``resource.getrusage``)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, KiB on Linux


class PeakRSS:
    """``with PeakRSS() as peak: ...``; then ``peak.mb`` is the peak resident set size of the whole process during
    the block, in MiB, and ``peak.before_mb`` the process's peak up to it.

    ``peak.scope`` says how it is known: ``"block"`` where the block raised the process's peak (the kernel's
    high-water mark then is the block's peak, exactly); ``"sampled"`` where it did not (the largest resident size
    read every ``SAMPLE_SECONDS`` during the block, which can miss a shorter spike); ``"process"`` without /proc
    (the process's peak since it started, an upper bound).
    """

    mb: float
    scope: str
    before_mb: float | None

    def __enter__(self) -> PeakRSS:
        self._start_kb = _status_kb("VmHWM")
        self.before_mb = None if self._start_kb is None else round(self._start_kb / 1024, 1)
        self._sampled_kb = _status_kb("VmRSS") or 0
        self._done = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="peak-rss", daemon=True)
        if self._start_kb is not None:
            self._sampler.start()
        return self

    def _sample(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self._sampled_kb = max(self._sampled_kb, _status_kb("VmRSS") or 0)

    def __exit__(self, *exc) -> None:
        self._done.set()
        if self._start_kb is None:
            self.scope, kb = "process", process_peak_kb()
        else:
            self._sampler.join()
            end_kb = _status_kb("VmHWM") or self._start_kb
            if end_kb > self._start_kb:
                self.scope, kb = "block", end_kb
            else:
                self.scope, kb = "sampled", max(self._sampled_kb, _status_kb("VmRSS") or 0)
        self.mb = round(kb / 1024, 1)
