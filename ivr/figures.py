"""How a figure is written in a report: formatted, or "n/a" where a set had nothing to measure."""

from __future__ import annotations


def figure(value: float | None, spec: str = ".4%", unit: str = "") -> str:
    """``value`` formatted by ``spec`` with ``unit`` after it; "n/a" for None (an empty set's rate or share, never
    shown as 100% or 0% of nothing)."""
    return "n/a" if value is None else format(value, spec) + unit
