"""Initial scores: merge ``rank`` weighs ``((rank + offset) / offset) ** -exponent`` and a piece scores the sum of
the weights in its merge tree, so early merges dominate as they do in BPE and every piece beats its own halves."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp


def merge_tree_matrix(pieces: Sequence[str], merges: Sequence[tuple[str, str]]) -> sp.csr_matrix:
    """Pieces x merges: how often each merge occurs in the merge tree that builds each piece from bytes."""
    index = {p: i for i, p in enumerate(pieces)}
    trees: list[Counter] = [Counter() for _ in pieces]
    for rank, (a, b) in enumerate(merges):
        tree = trees[index[a]] + trees[index[b]]
        tree[rank] += 1
        trees[index[a + b]] = tree
    rows = [p for p, t in enumerate(trees) for _ in t]
    cols = [m for t in trees for m in t]
    vals = [c for t in trees for c in t.values()]
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(pieces), len(merges)), dtype=np.float64)


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
    return merge_tree_matrix(pieces, merges) @ merge_weights(len(merges), exponent, offset)
