"""Bounded counts: the most frequent keys of a counter, independent of the order it was filled in."""

from __future__ import annotations

import heapq
from collections import Counter


def most_frequent(counts: Counter, limit: int) -> Counter:
    """The ``limit`` most frequent of ``counts`` (all of them when there are no more), by count, then by the key
    itself, so the result does not depend on the order the counts were gathered in."""
    if len(counts) <= limit:
        return Counter(counts)
    return Counter(dict(heapq.nsmallest(limit, counts.items(), key=lambda item: (-item[1], item[0]))))
