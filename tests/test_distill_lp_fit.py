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
from ivr.tokenizers.distill.word_list import MAX_COUNT
from ivr.tokenizers.distill.scores import initial_scores
from ivr.tokenizers.distill.stage import fit_distilled
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.unigram import NEVER_SCORE, unigram_tokenizer
from ivr.tokenizers.verify import compare_texts
from tests.distill_fixtures import corpus, fast_settings


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return offline_gpt2_tokenizer()


@pytest.fixture
def usages(monkeypatch) -> list[np.ndarray]:
    """The merge usages each linear program of a fit is given, in order."""
    seen = []
    solve = lp_fit.solve_rows

    def spy(s0, trees, w0, rows, row_weight, merge_usage, *rest):
        seen.append(merge_usage.copy())
        return solve(s0, trees, w0, rows, row_weight, merge_usage, *rest)

    monkeypatch.setattr(lp_fit, "solve_rows", spy)
    return seen


def test_general_words_make_the_merges_they_use_costlier_to_change(bpe, usages):
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
    caplog.clear()
    with caplog.at_level("WARNING"):  # its only round allowed: the time limit stopped nothing
        _, fit = fit_distilled(bpe, counts, fast_settings(max_seconds=1e-9, max_iterations=1))
    assert not fit.stats["history"][0].get("stopped_by_max_seconds") and "another machine" not in caplog.text


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


def contradicting_rows():
    """Two pieces' trees, their merge weights, and two rows no weights meet both of: row 0 wants piece 0 twice to
    beat piece 1, row 1 the opposite."""
    trees = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
    return trees, np.array([1e6, 10.0, 20.0]), [{0: 2, 1: -1}, {0: -2, 1: 1}]


@pytest.mark.parametrize("strict_row", [0, 1])
def test_a_strict_row_is_kept_and_the_other_given_up_when_they_contradict(strict_row):
    trees, w0, rows = contradicting_rows()
    penalty = np.where(np.arange(2) == strict_row, STRICT_PENALTY, 1.0)
    dw, slack = solve_rows(trees @ w0, trees, w0, rows, np.ones(2), np.ones(3), 0.05, penalty)
    d = np.array([[2.0, -1.0], [-2.0, 1.0]])[strict_row]
    s = trees @ (w0 + dw)
    assert slack[strict_row] == pytest.approx(0.0, abs=1e-9) and slack[1 - strict_row] > 0
    assert d @ s[:2] >= 0.05 * 10.0 * (1 - 1e-6)


# a vocabulary small enough to fit in a blink: single bytes and what two merges build from them
TINY_PIECES = ["a", "b", "c", "ab", "bc"]
TINY_MERGES = [("a", "b"), ("b", "c")]


def tiny_fit(words, weights, gold, **kw):
    settings = fast_settings(**kw)
    return lp_fit.fit_scores(TINY_PIECES, words, np.array(weights, dtype=np.float64), gold, settings,
                             merges=TINY_MERGES)


def test_a_merge_no_fit_word_uses_still_costs_something_to_change(usages):
    """Were it free, the program could move it at will and break words the fit never sees."""
    tiny_fit(["abc"], [3.0], [[0, 4]])  # no fit word's pieces use merge 0 (a + b)
    assert usages and usages[0][0] >= 1 and usages[0][1] > usages[0][0]


def test_a_linear_program_the_solver_gives_up_on_is_named(monkeypatch):
    """The fit keeps its best round on this error (rather than crash on a solution that is not there)."""
    import scipy.optimize

    failed = scipy.optimize.OptimizeResult(status=4, message="Numerical difficulties encountered.", x=None)
    monkeypatch.setattr(scipy.optimize, "linprog", lambda *args, **kwargs: failed)
    trees = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
    w0 = np.array([1e6, 10.0, 20.0])
    with pytest.raises(RuntimeError, match="^score fitting: the linear program failed: Numerical difficulties"):
        solve_rows(trees @ w0, trees, w0, [{0: 2, 1: -1}], np.ones(1), np.ones(3), 0.05, 1.0)


def test_a_row_asking_a_piece_to_lose_to_its_own_halves_is_given_up():
    """Merge weights stay above half their start, so a piece always beats its two halves: the fit gives such a
    word up rather than break every text that holds the piece."""
    trees = sp.csr_matrix(np.array([[0.0], [0.0], [1.0]]))  # a, b, and ab = a + b
    w0 = np.array([10.0])
    dw, slack = solve_rows(trees @ w0, trees, w0, [{0: 1, 1: 1, 2: -1}], np.ones(1), np.ones(1), 0.05, 1e8)
    assert slack[0] > 0 and w0[0] + dw[0] >= 0.5 * w0[0] * (1 - 1e-9)


def test_the_phase_one_program_meets_every_row_it_can_however_costly_the_change():
    # gold a · bc against BPE-like ab · c: merge 1 must come to outweigh merge 0, which some weights do
    trees = sp.csr_matrix(np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    w0 = np.array([10.0, 1.0])
    row = {0: 1, 4: 1, 3: -1, 2: -1}
    _, slack = solve_rows(trees @ w0, trees, w0, [row], np.ones(1), np.full(2, 1e9), 0.05, None)
    assert slack[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("relative", [False, True])
def test_relative_slack_gives_a_word_up_alike_at_any_scale_of_its_weights(relative):
    # gold a · bc against ab · c: keeping it costs about 4.55 in relative changes at any scale; giving it up costs
    # its shortfall, 9.05 weights of merge 1: absolute, a thousandth of that once every weight is a thousandth
    trees = sp.csr_matrix(np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]))
    row = {0: 1, 4: 1, 3: -1, 2: -1}
    given_up = []
    for scale in (1.0, 1e-3):
        w0 = np.array([10.0, 1.0]) * scale
        _, slack = solve_rows(trees @ w0, trees, w0, [row], np.ones(1), np.ones(2), 0.05, 1.0, relative)
        given_up.append(bool(slack[0] > 1e-9 * scale))
    assert given_up == [False, not relative]


def test_the_fit_gives_its_programs_the_setting_s_kind_of_slack(monkeypatch):
    seen = []
    solve = lp_fit.solve_rows

    def spy(*args):
        seen.append(args[8:])
        return solve(*args)

    monkeypatch.setattr(lp_fit, "solve_rows", spy)
    for relative in (False, True):
        seen.clear()
        tiny_fit(["abc"], [3.0], [[0, 4]], relative_slack=relative)
        rounds = [rest for rest in seen if rest]  # the phase-one program has no slack cost
        assert rounds and all(rest == (relative,) for rest in rounds)


@pytest.mark.parametrize("heavy", [0, 1])
def test_of_two_contradicting_words_the_more_frequent_one_is_kept(heavy):
    trees, w0, rows = contradicting_rows()
    weight = np.where(np.arange(2) == heavy, 5.0, 1.0)
    _, slack = solve_rows(trees @ w0, trees, w0, rows, weight, np.ones(3), 0.05, 300.0)
    assert slack[heavy] == pytest.approx(0.0, abs=1e-9) and slack[1 - heavy] > 0


def test_words_given_up_are_listed_most_frequent_first():
    # gold: each word cut into the halves of the piece it is, which no scores allow
    words, gold = ["ab", "bc"], [[0, 1], [1, 2]]
    _, _, given_up = tiny_fit(words, [1.0, 5.0], gold)
    assert given_up == ["bc", "ab"]
    _, _, given_up = tiny_fit(words, [5.0, 1.0], gold)
    assert given_up == ["ab", "bc"]


def test_a_word_left_wrong_only_for_want_of_rounds_is_not_called_unsatisfiable():
    # a · bc is reachable (merge 1 outweighing merge 0), but one round leaves no program to get there
    _, stats, given_up = tiny_fit(["abc"], [3.0], [[0, 4]], max_iterations=1)
    assert stats["fit_mismatched_nontie_types_best_round"] == 1 and given_up == []


def test_a_fit_ends_at_the_first_round_without_new_rows():
    scores, stats, given_up = tiny_fit(["abc"], [3.0], [[0, 4]])
    assert unigram_tokenizer(TINY_PIECES, scores).encode("abc").ids == [0, 4] and given_up == []
    # one round finds the row, the next finds it met, and nothing is left to solve
    assert stats["rounds"] == stats["best_round"] + 1 == 2 and stats["constraints"] == 1


def test_a_round_that_fixes_nothing_more_does_not_replace_the_earlier_one():
    """The scores of the first round with the fewest mismatches are kept: a later round as bad moved weights
    for nothing."""
    scores, stats, _ = tiny_fit(["ab"], [1.0], [[0, 1]])
    assert stats["rounds"] >= 2 and stats["best_round"] == 0 and stats["changed_merges"] == 0
    assert np.allclose(scores, initial_scores(TINY_PIECES, TINY_MERGES, 3.3), rtol=1e-12, atol=0)


def test_a_tie_is_left_to_the_rules_and_never_given_up():
    """BPE's pieces in another order (``aa · a`` against the Unigram's ``a · aa``) are no row of the program:
    only a split rule orders them, and the fit must not report them unsatisfiable."""
    pieces, merges = ["a", "aa"], [("a", "a")]
    assert unigram_tokenizer(pieces, initial_scores(pieces, merges, 3.3)).encode("aaa").ids == [0, 1]
    _, stats, given_up = lp_fit.fit_scores(pieces, ["aaa"], np.ones(1), [[1, 0]], fast_settings(), merges=merges)
    assert given_up == [] and stats["constraints"] == 0
    assert stats["history"][0]["mismatched_types"] == stats["fit_mismatched_nontie_types_best_round"] == 0


def test_ids_bpe_never_outputs_score_below_everything():
    scores, _, _ = lp_fit.fit_scores(TINY_PIECES, ["abc"], np.ones(1), [[3, 2]], fast_settings(),
                                     merges=TINY_MERGES, never=[4])
    assert scores[4] == NEVER_SCORE and unigram_tokenizer(TINY_PIECES, scores).encode("bc").ids == [1, 2]


@pytest.mark.parametrize("weight, strict, penalty", [(MAX_COUNT, True, 300.0), (1e6, False, 1e14), (1e12, False, 1e300)])
def test_a_word_weighing_what_the_settings_allow_leaves_the_programs_solvable(weight, strict, penalty):
    # a vocabulary piece listed at the word list's largest count is never given up (STRICT_PENALTY), and a slack
    # penalty has no upper bound: the solver reads a slack cost from 1e20 on as infinite and gives up, and an
    # infinite one is no input at all. "ab" cut a · b is unsatisfiable, "abc" as a · bc is not
    words, gold = ["abc", "ab"], [[0, 4], [0, 1]]
    scores, stats, given_up = lp_fit.fit_scores(
        TINY_PIECES, words, np.full(2, weight), gold, fast_settings(slack_penalty=penalty),
        strict=np.full(2, strict), merges=TINY_MERGES)
    assert not any("linear_program_failed" in h for h in stats["history"])
    assert unigram_tokenizer(TINY_PIECES, scores).encode("abc").ids == [0, 4] and given_up == ["ab"]
