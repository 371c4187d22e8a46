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
