"""The savings curve: the share of tokens saved against the number of reassigned ids, on the texts the
ranking was fitted on and on texts it never saw, as a Markdown table and a PNG plot. Where the held-out curve
flattens, more ids stop paying."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ivr.atomic import atomic_file

# the first ids save most (one string may save a fifth of the tokens): the start gets points of its own
POINTS = (1, 2, 5, 10, 25, 50, 100, 200, 300, 500, 750, 1000, 1500, 2000, 3000, 4000, 5000)


@dataclass
class SavingsCurve:
    """Cumulative saving (% of tokens) after the first ``n`` replacements, ``n`` in ``ids``."""

    ids: list[int]
    fitted_pct: list[float]
    heldout_pct: list[float]


def savings_curve(
    fit_gains: Sequence[int], fit_tokens: int, heldout_gains: Sequence[int], heldout_tokens: int
) -> SavingsCurve:
    """From each replacement's net saving (tokens saved minus uses of the freed token) on the fitted and the
    held-out texts, in rank order."""
    n = len(fit_gains)
    ids = sorted({p for p in POINTS if p < n} | ({n} if n else set()))
    return SavingsCurve(
        ids,
        [100.0 * sum(fit_gains[:k]) / max(fit_tokens, 1) for k in ids],
        [100.0 * sum(heldout_gains[:k]) / max(heldout_tokens, 1) for k in ids],
    )


def curve_table(curve: SavingsCurve) -> list[str]:
    lines = ["| ids reassigned | saving on the ranked part | saving on the left-out part | gap (points) |", "|---:|---:|---:|---:|"]
    for k, f, h in zip(curve.ids, curve.fitted_pct, curve.heldout_pct):
        lines.append(f"| {k} | {f:.2f}% | {h:.2f}% | {f - h:+.2f} |")
    return lines


def write_curve_plot(curve: SavingsCurve, path: str | Path) -> None:
    """The curve as a PNG (matplotlib without a display), written atomically; an empty curve (nothing selected,
    or a part without tokens) gives empty axes that say so."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(curve.ids, curve.fitted_pct, marker="o", label="ranked part (estimate)")
    ax.plot(curve.ids, curve.heldout_pct, marker="s", label="left-out part of the training split")
    ax.set_xlabel("ids reassigned")
    ax.set_ylabel("tokens saved (%)")
    # from zero (or below, where the left-out part loses): the gap between the curves at its true scale
    low, high = min([0.0, *curve.fitted_pct, *curve.heldout_pct]), max([0.0, *curve.fitted_pct, *curve.heldout_pct])
    ax.set_ylim(low, high + 0.1 * (high - low) or 1.0)  # headroom: the last markers and the legend stay apart
    ax.set_title("IVR savings curve")
    ax.grid(alpha=0.3)
    if curve.ids:
        ax.legend(loc="lower right")  # the curves rise to the right, above it
    else:
        ax.text(0.5, 0.5, "no selection to measure", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])  # matplotlib's default axes around no data would read as a range of ids
        ax.set_yticks([])
    fig.tight_layout()
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
