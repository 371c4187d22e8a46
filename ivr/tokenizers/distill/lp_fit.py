"""Cutting planes over the merge weights: every word the current Unigram Viterbi gets wrong adds the row "BPE's
segmentation beats this one by a margin", and a linear program over all rows so far finds the smallest relative
change of the merge weights that meets them. Fitting merge weights rather than free piece scores keeps scores
merge-tree sums, which is what carries the fit to words it never saw."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from tqdm import tqdm

from ivr.tokenizers.distill.scores import merge_tree_matrix, merge_weights
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.unigram import NEVER_SCORE, read_back_stable, unigram_tokenizer

log = logging.getLogger(__name__)

# LP unknowns are in units of 1e-12 so that the solver's absolute tolerances sit far below the score gaps
LP_UNIT = 1e-12
# slack cost of a word that must not be given up: far above any change of merge weights the fit could need
STRICT_PENALTY = 1e8
MARGIN_RAISE, MAX_MARGIN_RAISES = 4.0, 3
# the most giving up a row may cost: HiGHS reads a cost of 1e20 or more as infinite and fails, and an infinite one
# is no input at all, yet a vocabulary piece listed at the word list's largest count (1e12) costs STRICT_PENALTY
# times that, and the slack penalty has no upper bound. Far above any change of merge weights: such a row is kept
MAX_SLACK_COST = 1e18


def _difference(gold: Sequence[int], other: Sequence[int]) -> dict[int, int]:
    d = Counter(gold)
    d.subtract(other)
    return {k: v for k, v in d.items() if v}


def solve_rows(
    s0: np.ndarray, trees: sp.csr_matrix, w0: np.ndarray, rows: list[dict[int, int]], row_weight: np.ndarray,
    merge_usage: np.ndarray, margin: np.ndarray | float, penalty: np.ndarray | float | None,
    relative_slack: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """The linear program of one cutting-plane round; returns (merge weight change, slack per row), in ``LP_UNIT``.

    The unknowns are changes ``dw`` of the merge weights (scores stay merge-tree sums ``s0 + trees @ dw``).
    Every row says "BPE's segmentation beats this competitor by ``margin`` times the smallest initial weight of
    the merges they use differently": ``d . s >= margin * w_min`` with a slack ``xi >= 0``. ``margin`` and
    ``penalty`` are one for all rows or one per row. With a ``penalty`` the objective is
    ``sum usage * |dw| / w0 + sum penalty * weight * xi``: relative changes, cheapest on merges few fit (and
    general) words use, and a word is only given up where keeping it would cost more (``relative_slack``: its
    slack counted in units of the row's ``w_min``, as the changes are relative; a row's slack cost at most
    ``MAX_SLACK_COST``). Weights never drop below
    half their initial value, so every piece keeps beating its own halves.
    With ``penalty=None`` only the weighted slack is minimised (a phase-one program: its optimum is above zero
    exactly when no merge weights within those bounds satisfy all rows at once).
    """
    from scipy.optimize import linprog

    m = len(rows)
    D = sp.csr_matrix(
        ([v for d in rows for v in d.values()], ([r for r, d in enumerate(rows) for _ in d], [k for d in rows for k in d])),
        shape=(m, trees.shape[0]),
    )
    in_merges = (D @ trees).tocsc()
    cols = np.flatnonzero(np.diff(in_merges.indptr))
    DM = in_merges[:, cols].tocsr()
    DM.eliminate_zeros()
    n = len(cols)
    w_min = np.full(m, w0.min())
    filled = np.diff(DM.indptr) > 0
    if filled.any():
        w_min[filled] = np.minimum.reduceat(w0[cols][DM.indices], DM.indptr[:-1][filled])
    # dw = p - q with p, q >= 0 (|dw| = p + q at the optimum): -(DM (p - q)) - xi <= d . s0 - margin * w_min
    A = sp.hstack([-DM, DM, -sp.identity(m)], format="csr")
    change_cost = merge_usage[cols] / w0[cols]
    if penalty is None:
        cost = np.concatenate([np.zeros(2 * n), row_weight])
    else:
        with np.errstate(over="ignore"):  # an infinite product is capped as a large one is
            slack_cost = penalty * row_weight / w_min if relative_slack else penalty * row_weight
        slack_cost = np.minimum(slack_cost, MAX_SLACK_COST)
        cost = np.concatenate([change_cost, change_cost, slack_cost])
    upper = np.concatenate([np.full(n, np.inf), 0.5 * w0[cols], np.full(m, np.inf)])
    res = linprog(cost, A_ub=A, b_ub=D @ s0 - margin * w_min, bounds=np.stack([np.zeros_like(upper), upper], axis=1),
                  method="highs")
    if res.status != 0:
        raise RuntimeError(f"score fitting: the linear program failed: {res.message}")
    dw = np.zeros(len(w0))
    dw[cols] = res.x[:n] - res.x[n : 2 * n]
    return dw, res.x[2 * n :]


def fit_scores(
    pieces: Sequence[str], words: list[str], weights: np.ndarray, gold: list[list[int]], settings: DistillSettings,
    general: Sequence[Sequence[int]] = (), strict: np.ndarray | None = None, *,
    merges: Sequence[tuple[str, str]], never: Sequence[int] = (), whole_pieces: bool = False,
) -> tuple[np.ndarray, dict, list[str]]:
    """Fit the scores of ``pieces`` (built by ``merges``) so that the Unigram Viterbi gives ``gold`` on ``words``;
    returns the scores (``NEVER_SCORE`` at the ids ``never``), fit statistics and the words proven unsatisfiable
    (most frequent first).

    Cutting planes: each round encodes all words with the real ``tokenizers`` Unigram; every wrong word adds
    the row "BPE's segmentation beats this competitor by ``margin``"; a linear program over all rows collected
    so far finds the cheapest change of the merge weights that meets them (``solve_rows``). Rounds stop
    when no new row appears, or after ``max_iterations`` rounds / ``max_seconds``; the round with the fewest
    weighted non-tie mismatches is kept. A last phase-one program over all rows tells which of the words still
    wrong are given up because their rows cannot hold together with the rest. ``general`` holds the BPE ids of
    words that only make the merges they use costlier to change (``settings.general_usage_words``); ``strict``
    marks the words that are never given up (``STRICT_PENALTY`` instead of ``settings.slack_penalty``).
    ``whole_pieces``: the source sets ``ignore_merges`` (``scores.piece_trees``).
    """
    start = time.perf_counter()
    trees = merge_tree_matrix(pieces, merges, whole_pieces)
    w0 = merge_weights(trees.shape[1], settings.init_exponent, settings.init_offset, settings.init_decay) / LP_UNIT
    s0 = trees @ w0
    usage = np.ones_like(s0)
    for ids in gold:
        usage[list(set(ids))] += 1
    for ids in general:
        usage[list(set(ids))] += 1
    merge_usage = trees.T @ usage
    penalty = settings.slack_penalty if strict is None else np.where(strict, STRICT_PENALTY, settings.slack_penalty)
    rows: list[dict[int, int]] = []
    row_word: list[int] = []
    seen: dict[tuple[int, tuple[int, ...]], int] = {}
    # a row the program meets but the float Viterbi still loses (rounding) gets its margin raised, a few times
    raised: list[int] = []
    slack = np.zeros(0)
    dw = np.zeros_like(w0)
    best = (math.inf, dw, 0, [])
    history: list[dict] = []
    bar = tqdm(range(settings.max_iterations), desc="fitting scores", unit="round", mininterval=2.0)
    for it in bar:
        # Viterbi on the scores as a saved file loads them, so float rounding cannot flip a word later
        pred = [e.ids for e in unigram_tokenizer(pieces, (s0 + trees @ dw) * LP_UNIT, never).encode_batch(words)]
        bad = [i for i, (p, g) in enumerate(zip(pred, gold)) if p != g and sorted(p) != sorted(g)]
        loss = float(weights[bad].sum())
        new = 0
        for i in bad:
            r = seen.get((i, tuple(pred[i])))
            if r is None:
                seen[(i, tuple(pred[i]))] = len(rows)
                rows.append(_difference(gold[i], pred[i]))
                row_word.append(i)
                raised.append(0)
                new += 1
            elif slack[r] <= 1e-9 and raised[r] < MAX_MARGIN_RAISES:
                raised[r] += 1
                new += 1
        if loss < best[0]:
            best = (loss, dw, it, bad)
        elapsed = time.perf_counter() - start
        history.append({"round": it, "mismatched_types": len(bad), "mismatched_occurrences": loss, "new_rows": new,
                        "seconds": round(elapsed, 2)})
        bar.set_postfix(mismatched=len(bad), new=new, rows=len(rows))
        # the round limit first: a fit that reached it stops there on any machine, however long its rounds took
        if not new or it == settings.max_iterations - 1:  # a program solved now would have no round left to read it
            break
        if elapsed > settings.max_seconds:
            if settings.max_seconds > 0:  # 0 is one round on any machine; otherwise the round depends on speed
                log.warning("distillation's score fit stopped at data.distill.max_seconds (%g s) after round %d "
                            "with %d new constraints left: another machine may stop at another round and write "
                            "another tokenizer; raise max_seconds for a result that does not depend on speed",
                            settings.max_seconds, it, new)
                history[-1]["stopped_by_max_seconds"] = True
            break
        try:
            row_penalty = penalty if strict is None else penalty[row_word]
            margin = settings.margin * MARGIN_RAISE ** np.array(raised, dtype=np.float64)
            dw, slack = solve_rows(s0, trees, w0, rows, weights[row_word], merge_usage, margin, row_penalty,
                                   settings.relative_slack)
        except RuntimeError as err:  # numerical trouble: keep the best round so far rather than lose the stage
            log.warning("%s; keeping round %d", err, best[2])
            history[-1]["linear_program_failed"] = str(err)
            break
    given_up: list[str] = []
    if best[3]:
        try:
            _, slack = solve_rows(s0, trees, w0, rows, weights[row_word], merge_usage, settings.margin, None)
        except RuntimeError as err:
            log.warning("%s; no proof of which words are unsatisfiable", err)
            slack = np.zeros(len(rows))
        unsatisfiable = {row_word[r] for r in np.flatnonzero(slack > 1e-6)}
        given_up = [words[i] for i in sorted(best[3], key=lambda i: (-weights[i], words[i])) if i in unsatisfiable]
    stats = {
        "rounds": len(history),
        "constraints": len(rows),
        "best_round": best[2],
        "history": history,
        "changed_merges": int((np.abs(best[1]) > 1e-6).sum()),
        "fit_mismatched_nontie_types_best_round": len(best[3]),
        "score_fit_seconds": round(time.perf_counter() - start, 2),
    }
    scores = read_back_stable((s0 + trees @ best[1]) * LP_UNIT)
    scores[list(never)] = NEVER_SCORE
    return scores, stats, given_up
