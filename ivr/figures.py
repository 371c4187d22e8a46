"""How a figure is written in a report: formatted, or "n/a" where a set had nothing to measure."""

from __future__ import annotations

import math


def figure(value: float | None, spec: str = ".4%", unit: str = "") -> str:
    """``value`` formatted by ``spec`` with ``unit`` after it; "n/a" for None (an empty set's rate or share, never
    shown as 100% or 0% of nothing); a value that rounds to zero reads as zero, never ``-0.00``."""
    if value is None:
        return "n/a"
    if math.isfinite(value) and math.copysign(1.0, value) < 0:
        unsigned = format(abs(value), spec)  # as a non-negative value formats: ``+0.00`` under a ``+`` spec
        if not any(c in "123456789" for c in unsigned):
            return unsigned + unit
    return format(value, spec) + unit


def exact_share(value: float | None, decimals: int = 4) -> str:
    """A share of exact matches as a percentage cut, not rounded, to ``decimals`` places, so that it reads 100%
    only when nothing differs and reaches a target only when the share does (1 wrong in 3 million is 99.9999%,
    not 100.0000%); "n/a" for None."""
    if value is None:
        return "n/a"
    scale = 10 ** (decimals + 2)
    # rounded far below the shown places first: 9999/10000 * 10**6 is 999899.99999... in floats
    return f"{math.floor(round(value * scale, 6)) / scale:.{decimals}%}"
