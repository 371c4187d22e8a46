"""The cutting-plane fit: the linear program's margin and slack, general words, a failing program."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from tokenizers import Tokenizer

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from tests.standin import gpt2_merges
from ivr.tokenizers.distill import lp_fit
from ivr.tokenizers.distill.lp_fit import STRICT_PENALTY, solve_rows
from ivr.tokenizers.distill.stage import fit_distilled
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.verify import compare_texts
from tests.distill_fixtures import corpus, fast_settings


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return offline_gpt2_tokenizer()


def test_general_words_make_the_merges_they_use_costlier_to_change(bpe, monkeypatch):
    usages = []
    solve = lp_fit.solve_rows

    def spy(s0, trees, w0, rows, row_weight, merge_usage, *rest):
        usages.append(merge_usage.copy())
        return solve(s0, trees, w0, rows, row_weight, merge_usage, *rest)

    monkeypatch.setattr(lp_fit, "solve_rows", spy)
    counts, _ = pre_token_counts(bpe, corpus())
    fit_distilled(bpe, counts, fast_settings(split_rules=False))
    n = len(usages)
    fit_distilled(bpe, counts, fast_settings(split_rules=False, general_usage_words=2000))
    without, with_general = usages[0], usages[n]
    assert (with_general >= without).all()
    # " the" and "the" are general words: the merges building them gained (at least) those two users
    merges = gpt2_merges()
    the = merges.index(("Ġt", "he"))
    assert with_general[the] >= without[the] + 2 and (with_general > without).sum() > 1000


def test_a_failing_linear_program_keeps_the_best_round(bpe, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("score fitting: the linear program failed: test")

    counts, _ = pre_token_counts(bpe, corpus())
    monkeypatch.setattr(lp_fit, "solve_rows", fail)
    tok, fit = fit_distilled(bpe, counts, fast_settings())
    assert fit.stats["history"][0]["linear_program_failed"].endswith("test")
    assert fit.stats["rounds"] == 1 and fit.stats["changed_merges"] == 0
    # the merge-tree scores alone already get most words right; the fit did not crash the stage
    assert compare_texts(tok, bpe, corpus(), "corpus")["rates"]["word_occurrence"] > 0.99


def test_a_fit_stopped_by_its_time_limit_says_the_result_depends_on_speed(bpe, caplog):
    counts, _ = pre_token_counts(bpe, corpus())
    with caplog.at_level("WARNING"):
        _, fit = fit_distilled(bpe, counts, fast_settings(max_seconds=1e-9))  # stops after the first round
    assert fit.stats["history"][0].get("stopped_by_max_seconds")
    assert "another machine may stop at another round" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING"):
        _, fit = fit_distilled(bpe, counts, fast_settings(max_seconds=0))  # one round on any machine: no warning
    assert len(fit.stats["history"]) == 1 and "another machine" not in caplog.text


def test_every_round_program_solved_is_read_by_a_round(bpe, monkeypatch):
    calls = []
    solve = lp_fit.solve_rows

    def spy(*args):
        calls.append(args[-1] is None)  # the phase-one program after the rounds takes no penalty
        return solve(*args)

    monkeypatch.setattr(lp_fit, "solve_rows", spy)
    counts, _ = pre_token_counts(bpe, corpus())
    for rounds in (1, 2):
        calls.clear()
        _, fit = fit_distilled(bpe, counts, fast_settings(split_rules=False, word_rules=0, max_iterations=rounds))
        assert len(fit.stats["history"]) == rounds
        assert calls.count(False) == rounds - 1  # a program after the last round would be solved for nothing


def test_margin_is_relative_to_the_smallest_weight_at_stake():
    # merge 0 is heavy and in both segmentations, so it cancels; BPE's pieces (twice piece 0: merges 0 and 1)
    # tie with the competitor's (piece 1: merges 0, 0 and 2) until merge 1 or 2 moves
    trees = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
    w0 = np.array([1e6, 10.0, 20.0])
    s0 = trees @ w0
    row = {0: 2, 1: -1}
    dw, slack = solve_rows(s0, trees, w0, [row], np.ones(1), np.ones(3), 0.05, 1e8)
    gap = 2 * (s0[0] + (trees @ dw)[0]) - (s0[1] + (trees @ dw)[1])
    assert slack[0] == pytest.approx(0.0, abs=1e-9)
    assert gap == pytest.approx(0.05 * 10.0, rel=1e-6)  # 5% of merge 1's weight, not of merge 0's, nor 0.05
    assert dw[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("strict_row", [0, 1])
def test_a_strict_row_is_kept_and_the_other_given_up_when_they_contradict(strict_row):
    # row 0 wants piece 0 twice to beat piece 1, row 1 the opposite: no weights meet both
    trees = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
    w0 = np.array([1e6, 10.0, 20.0])
    rows = [{0: 2, 1: -1}, {0: -2, 1: 1}]
    penalty = np.where(np.arange(2) == strict_row, STRICT_PENALTY, 1.0)
    dw, slack = solve_rows(trees @ w0, trees, w0, rows, np.ones(2), np.ones(3), 0.05, penalty)
    d = np.array([[2.0, -1.0], [-2.0, 1.0]])[strict_row]
    s = trees @ (w0 + dw)
    assert slack[strict_row] == pytest.approx(0.0, abs=1e-9) and slack[1 - strict_row] > 0
    assert d @ s[:2] >= 0.05 * 10.0 * (1 - 1e-6)
