import subprocess
import sys

import pytest

from ivr.peak_memory import PeakRSS, process_peak_kb

MB = 2**20


def test_peak_counts_memory_touched_inside_the_block():
    with PeakRSS() as idle:
        pass
    with PeakRSS() as busy:
        buf = b"\x01" * (200 * MB)  # written, so resident
        del buf
    assert busy.mb >= idle.mb + 150


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/proc/self/status is Linux's")
def test_a_block_below_the_earlier_peak_is_sampled_and_the_process_peak_is_kept():
    """Run in a fresh process: what the parent sees of its peak (``/usr/bin/time -v``) must not be reset."""
    script = f"""
import resource, time
from ivr.peak_memory import PeakRSS
buf = b"\\x01" * ({400 * MB}); del buf
with PeakRSS() as small:
    keep = bytearray({100 * MB}); time.sleep(0.1); del keep
print(small.scope, small.mb, small.before_mb)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    import resource

    scope, mb, before = result.stdout.split()
    assert scope == "sampled" and 100 <= float(mb) < float(before) and float(before) >= 400
    child_peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    assert child_peak_kb >= 400 * 1024  # the 400 MiB before the block, as wait4 reports it to the parent


def test_process_peak_covers_memory_touched_so_far():
    before = process_peak_kb() * 1024  # a test process is past 200 MiB already: the buffer must top its peak
    buf = b"\x01" * (before + 200 * MB)
    assert process_peak_kb() * 1024 >= before + 200 * MB
    del buf


@pytest.mark.parametrize("hwm_kb, rss_kb, scope, mb", [
    ((100 * 1024, 300 * 1024 + 512), (50 * 1024, 50 * 1024), "block", 300.5),  # the peak rose inside: the new peak
    ((100 * 1024, 100 * 1024), (60 * 1024, 80 * 1024), "sampled", 80.0),  # what is resident at the end counts
    ((100 * 1024, 100 * 1024), (80 * 1024, 60 * 1024), "sampled", 80.0),  # and what was resident at the start
], ids=["peak raised", "resident at the end", "resident at the start"])
def test_a_block_s_peak_is_read_from_the_kernel_s_counts_in_mib(monkeypatch, hwm_kb, rss_kb, scope, mb):
    from ivr import peak_memory

    counts = {"VmHWM": hwm_kb[0], "VmRSS": rss_kb[0]}
    monkeypatch.setattr(peak_memory, "_status_kb", counts.get)
    monkeypatch.setattr(peak_memory, "SAMPLE_SECONDS", 3600)  # no sample taken in between: the ends alone count
    with PeakRSS() as peak:
        counts.update(VmHWM=hwm_kb[1], VmRSS=rss_kb[1])
    assert (peak.scope, peak.mb, peak.before_mb) == (scope, mb, 100.0)


def test_without_proc_the_process_peak_is_reported(monkeypatch, tmp_path):
    """macOS and Windows have no /proc: the process's peak since it started is the bound given, the one before the
    block unknown."""
    from ivr import peak_memory

    monkeypatch.setattr(peak_memory, "_STATUS", tmp_path / "no-proc" / "status")
    monkeypatch.setattr(peak_memory, "process_peak_kb", lambda: 3 * 1024 + 512)
    with PeakRSS() as peak:
        pass
    assert (peak.scope, peak.mb, peak.before_mb) == ("process", 3.5, None)
