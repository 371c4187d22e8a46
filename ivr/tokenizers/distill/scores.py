"""Initial scores: merge ``rank`` weighs ``((rank + offset) / offset) ** -exponent`` and a piece scores the sum of
the weights in its merge tree, so early merges dominate as they do in BPE and every piece beats its own halves."""

from __future__ import annotations

import functools
import logging
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

log = logging.getLogger(__name__)
# the default 3.3 spans 2^-52 over GPT-2's 50,000 merges and 2^-56 over Llama-3's 128,000 pieces; far past 53 bits
# a fit cannot hold late merges apart from early ones
SPAN_WARNING = 2.0**-60


def piece_trees(
    merges: Sequence[tuple[str, str]], whole_pieces: bool = False,
) -> list[tuple[tuple[str, str], tuple[str, ...]]]:
    """For each piece a merge builds, in rank order of that merge: the merge its tree ends in and the parts it
    joins, the merge BPE applies last to the piece's own text and its two sides.

    Most BPEs have one merge per piece, and this is it. A vocabulary converted from tiktoken (Llama-3's) lists
    every split of a piece into two pieces (280,147 merges for 128,000 pieces), in an order that often puts a
    split BPE never takes first (`` sil`` as `` ``+``sil``, where BPE joins `` s``+``il``): a tree made of it would
    score the piece below the pieces BPE builds it from. A piece BPE does not give back whole from its own text
    keeps its first merge; with ``whole_pieces`` (``ignore_merges``: BPE gives a word in the vocabulary back as it
    is) its parts are the pieces BPE cuts its text into, which it then outscores by that merge's weight.
    """
    # a pair listed twice takes its last rank, as in the tokenizers BPE
    rank = {pair: r for r, pair in enumerate(merges)}
    chosen: dict[str, tuple[int, tuple[str, ...]]] = {}
    for a, b in merges:
        piece = a + b
        if piece not in chosen:
            symbols, last = _bpe(piece, rank)
            if len(symbols) == 1:
                chosen[piece] = (rank[last], last)
            else:
                chosen[piece] = (rank[(a, b)], tuple(symbols) if whole_pieces else (a, b))
    return [(merges[r], parts) for r, parts in sorted(chosen.values())]


def _bpe(text: str, rank: dict[tuple[str, str], int]) -> tuple[list[str], tuple[str, str] | None]:
    """BPE's pieces of ``text`` (a string of byte-level characters) on its own, and the last merge it applied."""
    symbols, last = list(text), None
    while len(symbols) > 1:
        ranked = [(rank.get(pair, -1), i) for i, pair in enumerate(zip(symbols, symbols[1:]))]
        best = min(((r, i) for r, i in ranked if r >= 0), default=None)
        if best is None:
            break
        i = best[1]
        last = (symbols[i], symbols[i + 1])
        symbols[i:i + 2] = [symbols[i] + symbols[i + 1]]
    return symbols, last


def merge_tree_matrix(
    pieces: Sequence[str], merges: Sequence[tuple[str, str]], whole_pieces: bool = False,
) -> sp.csr_matrix:
    """Pieces x the merges of ``piece_trees``: how often each occurs in the tree that builds each piece from
    bytes. A copy of one matrix per vocabulary and process: building it takes seconds (a BPE run per merge), and
    a process that distils one vocabulary under several settings (benchmarks, tests) needs it each time."""
    return _tree_matrix(tuple(pieces), tuple(map(tuple, merges)), whole_pieces).copy()


@functools.lru_cache(maxsize=2)
def _tree_matrix(pieces: tuple[str, ...], merges: tuple[tuple[str, str], ...], whole_pieces: bool) -> sp.csr_matrix:
    index = {p: i for i, p in enumerate(pieces)}
    built = piece_trees(merges, whole_pieces)
    trees: list[Counter] = [Counter() for _ in pieces]
    # parts are shorter than what they build, so going by length finishes every part's tree first
    for col in sorted(range(len(built)), key=lambda r: len(built[r][0][0]) + len(built[r][0][1])):
        (a, b), parts = built[col]
        tree = sum((trees[index[part]] for part in parts), Counter())
        tree[col] += 1
        trees[index[a + b]] = tree
    rows = [p for p, t in enumerate(trees) for _ in t]
    cols = [m for t in trees for m in t]
    vals = [c for t in trees for c in t.values()]
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(pieces), len(built)), dtype=np.float64)


def merge_weights(n_merges: int, exponent: float, offset: float = 1.0, decay: float = 0.0) -> np.ndarray:
    """Initial merge weights ``((rank + offset) / offset) ** -exponent * exp(-decay * rank)``: early merges
    dominate, as they do in BPE. The first merge weighs 1: a larger offset flattens the first ranks and lets a
    steeper exponent fit the same float range; a decay spends part of that range evenly over the ranks."""
    if not offset > 0:
        raise ValueError(f"init_offset must be positive, got {offset}")
    ranks = np.arange(n_merges, dtype=np.float64)
    weights = ((ranks + offset) / offset) ** -exponent * np.exp(-decay * ranks)  # exp(-0.0) is exactly 1
    named = f"data.distill.init_exponent {exponent} with init_offset {offset}" + (
        f" and init_decay {decay}" if decay else "")
    if n_merges and not weights[-1] > 0:  # the fit divides by them, and a merge of weight 0 would be no merge
        raise ValueError(f"{named}: the weight of the last of {n_merges} merges underflows to 0 in float64; lower "
                         f"{_to_lower(ranks[-1], exponent, offset, decay)}")
    if n_merges and weights[-1] < SPAN_WARNING:
        log.warning("%s: the last of %d merges weighs 2^%.0f of the first, but a float64 sum holds 53 bits: next to "
                    "early merges, late ones are lost and the fit may leave corpus words wrong; lower %s",
                    named, n_merges, np.log2(weights[-1]), _to_lower(ranks[-1], exponent, offset, decay))
    return weights


def _to_lower(rank: float, exponent: float, offset: float, decay: float) -> str:
    """The setting that takes the weight of ``rank`` too low: the decay alone underflows past rank 745 at decay 1,
    where no exponent helps."""
    if not decay:
        return "data.distill.init_exponent"
    if not np.exp(-decay * rank) > 0:
        return "data.distill.init_decay"
    if not ((rank + offset) / offset) ** -exponent > 0:
        return "data.distill.init_exponent"
    return "data.distill.init_exponent or data.distill.init_decay"


def initial_scores(pieces: Sequence[str], merges: Sequence[tuple[str, str]], exponent: float,
                   offset: float = 1.0, whole_pieces: bool = False, decay: float = 0.0) -> np.ndarray:
    """Merge-tree scores: a piece's score is the sum of the weights of the merges in its tree."""
    trees = merge_tree_matrix(pieces, merges, whole_pieces)
    return trees @ merge_weights(trees.shape[1], exponent, offset, decay)
