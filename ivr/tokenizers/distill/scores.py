"""Initial scores: merge ``rank`` weighs ``((rank + offset) / offset) ** -exponent`` and a piece scores the sum of
the weights in its merge tree, so early merges dominate as they do in BPE and every piece beats its own halves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def tree_merges(merges: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """The merge that builds each piece in BPE's own derivation of the piece's text, in rank order: the merges a
    piece's tree is made of.

    Most BPEs have one merge per piece, and this is it. A vocabulary converted from tiktoken (Llama-3's) lists
    every split of a piece into two pieces (280,147 merges for 128,000 pieces), in an order that often puts a
    split BPE never takes first (`` sil`` as `` ``+``sil``, where BPE joins `` s``+``il``): a tree made of it would
    score the piece below the pieces BPE builds it from. A piece BPE does not give back whole keeps its first merge.
    """
    rank: dict[tuple[str, str], int] = {}
    for r, pair in enumerate(merges):
        rank.setdefault(pair, r)
    chosen: dict[str, int] = {}
    for a, b in merges:
        piece = a + b
        if piece not in chosen:
            last = _last_merge(piece, rank)
            chosen[piece] = rank[last] if last is not None and last[0] + last[1] == piece else rank[(a, b)]
    return [merges[r] for r in sorted(chosen.values())]


def _last_merge(text: str, rank: dict[tuple[str, str], int]) -> tuple[str, str] | None:
    """The last merge BPE applies to ``text`` (a string of byte-level characters) on its own."""
    symbols, last = list(text), None
    while len(symbols) > 1:
        ranked = [(rank.get(pair, -1), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        best = min(((r, i) for r, i in ranked if r >= 0), default=None)
        if best is None:
            break
        i = best[1]
        last = (symbols[i], symbols[i + 1])
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
    return last


def merge_tree_matrix(pieces: Sequence[str], merges: Sequence[tuple[str, str]]) -> sp.csr_matrix:
    """Pieces x ``tree_merges(merges)``: how often each of them occurs in the tree that builds each piece from
    bytes."""
    index = {p: i for i, p in enumerate(pieces)}
    firsts = tree_merges(merges)
    trees: list[Counter] = [Counter() for _ in pieces]
    # parts are shorter than what they build, so going by length finishes every part's tree first
    for rank in sorted(range(len(firsts)), key=lambda r: len(firsts[r][0]) + len(firsts[r][1])):
        a, b = firsts[rank]
        tree = trees[index[a]] + trees[index[b]]
        tree[rank] += 1
        trees[index[a + b]] = tree
    rows = [p for p, t in enumerate(trees) for _ in t]
    cols = [m for t in trees for m in t]
    vals = [c for t in trees for c in t.values()]
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(pieces), len(firsts)), dtype=np.float64)


def merge_weights(n_merges: int, exponent: float, offset: float = 1.0) -> np.ndarray:
    """Initial merge weights ``((rank + offset) / offset) ** -exponent``: early merges dominate, as they do in
    BPE. The first merge weighs 1 and the last ``((n_merges - 1 + offset) / offset) ** -exponent``: a larger
    offset flattens the first ranks and lets a steeper exponent fit the same float range."""
    if offset <= 0:
        raise ValueError(f"init_offset must be positive, got {offset}")
    return ((np.arange(n_merges, dtype=np.float64) + offset) / offset) ** -exponent


def initial_scores(pieces: Sequence[str], merges: Sequence[tuple[str, str]], exponent: float,
                   offset: float = 1.0) -> np.ndarray:
    """Merge-tree scores: a piece's score is the sum of the weights of the merges in its tree."""
    trees = merge_tree_matrix(pieces, merges)
    return trees @ merge_weights(trees.shape[1], exponent, offset)
