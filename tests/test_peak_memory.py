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


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the high-water mark is reset on Linux only")
def test_peak_forgets_what_came_before_the_block():
    buf = b"\x01" * (300 * MB)
    del buf
    with PeakRSS() as after:
        pass
    if after.scope != "block":
        pytest.skip("this kernel does not let a process reset its peak")
    assert after.before_mb >= 300
    with PeakRSS() as again:
        buf = b"\x01" * (300 * MB)
        del buf
    assert again.mb >= after.mb + 250


def test_process_peak_covers_memory_touched_so_far():
    buf = b"\x01" * (200 * MB)
    assert process_peak_kb() * 1024 >= 200 * MB
    del buf
