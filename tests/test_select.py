from __future__ import annotations

import json
import random
from array import array
import string
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tests.conftest import make_code_docs

import ivr.analysis.select as select_module
from ivr.analysis.select import ForcedTokensError, SelectSettings, _Ranker, read_forced_tokens, select_replacements
import ivr.analysis.spans as spans_module
from ivr.analysis.spans import (
    Greedy, Occurrences, PretokenStats, Spans, best_collapse, count_pretokens, pretoken_stats, replay,
)
from ivr.tokenizers.byte_level import EOS_ID, bytes_to_piece, piece_to_bytes, readable, single_byte_pieces, text_to_piece
from ivr.tokenizers.candidates import read_candidates
from tokenizers import Tokenizer
from ivr.tokenizers.pieces import single_pretoken

FAST = {"min_count": 5, "general_prior_words": 2000, "general_code_mb": 0}


@pytest.fixture(autouse=True)
def no_code_reference(monkeypatch):
    """The built-in code reference (``general_code_mb``, tested in test_general_use.py) is off here: these tests
    give selection only the general text they name, and stay fast."""
    monkeypatch.setattr(select_module, "code_reference", lambda mb, exclude=(): [])


@pytest.fixture(scope="module")
def selection(distilled, code_docs, tmp_path_factory):
    out = tmp_path_factory.mktemp("sel")
    settings = SelectSettings(num_replacements=40, **FAST)
    return select_replacements(distilled, code_docs, settings, out / "c.csv", out / "log.md"), out


def test_best_collapse_takes_the_best_non_overlapping_spans():
    # (1, 4) saves 3 tokens and overlaps both others, which together save only 2 + 2 - overlap
    assert best_collapse(6, [(0, 2), (2, 4), (1, 4)]) == 3
    assert best_collapse(6, [(0, 1), (2, 3), (4, 5)]) == 3
    assert best_collapse(3, []) == 0


def _occurrences(places: dict[str, dict[int, list[tuple[int, int]]]]) -> Occurrences:
    return Occurrences({s: array("i", [x for t in sorted(by_t) for i, j in by_t[t] for x in (t, i, j)])
                        for s, by_t in places.items()})


def _most_saved(spans) -> int:
    """Every subset of non-overlapping spans, tried."""
    best = 0
    for mask in range(1 << len(spans)):
        chosen = [spans[b] for b in range(len(spans)) if mask >> b & 1]
        cells = [x for i, j in chosen for x in range(i, j + 1)]
        if len(cells) == len(set(cells)):
            best = max(best, sum(j - i for i, j in chosen))
    return best


@hsettings(max_examples=200, deadline=None)
@given(st.data())
def test_greedy_gains_are_the_best_non_overlapping_collapse(data):
    lengths = data.draw(st.lists(st.integers(2, 7), min_size=1, max_size=3))
    span = lambda k: st.tuples(st.integers(0, k - 2), st.integers(1, k - 1)).map(lambda s: (s[0], s[0] + s[1])).filter(
        lambda s: s[1] < k)
    occ = {f"s{n}": {t: data.draw(st.lists(span(k), min_size=1, max_size=2, unique=True))
                     for t, k in enumerate(lengths) if data.draw(st.booleans())} for n in range(5)}
    counts = data.draw(st.lists(st.integers(1, 5), min_size=len(lengths), max_size=len(lengths)))
    stats = PretokenStats([""] * len(lengths), counts, counts, [[0] * k for k in lengths], None, 0, 0, 0)
    greedy, chosen = Greedy(stats, _occurrences(occ)), {t: [] for t in range(len(lengths))}
    for s in data.draw(st.permutations(list(occ))):
        want = sum(counts[t] * (_most_saved(chosen[t] + spans) - _most_saved(chosen[t]))
                   for t, spans in occ[s].items())
        assert greedy.gain(s) == want
        greedy.add(s)
        for t, spans in occ[s].items():
            chosen[t] += spans


@pytest.mark.parametrize("occ, gains", [
    ({"a": [(5, 6)], "b": [(3, 4)], "c": [(0, 1)]}, [1, 1, 1]),
    ({"a": [(2, 4)], "b": [(4, 6)], "c": [(0, 1)]}, [2, 0, 1]),
])
def test_greedy_gains_after_picks_on_either_side(occ, gains):
    """Picks right of a later one (its cached saving of what follows) and overlapping ones (the best of what
    lies after a span), in one 7-token pre-token."""
    stats = PretokenStats([""], [1], [1], [[0] * 7], None, 0, 0, 0)
    greedy, got = Greedy(stats, _occurrences({s: {0: spans} for s, spans in occ.items()})), []
    for s in occ:
        got.append(greedy.gain(s))
        greedy.add(s)
    assert got == gains


def test_a_string_s_domain_count_is_every_place_it_lies_even_twice_in_one_pre_token():
    """The candidates file's domain count is the string's uses, not the pre-tokens holding it."""
    stats = PretokenStats(["", ""], [3, 2], [1, 1], [[0] * 6, [0] * 4], None, 0, 0, 0)
    greedy = Greedy(stats, _occurrences({"s": {0: [(0, 1), (3, 4)], 1: [(1, 2)]}}))
    assert greedy.used_count("s") == 3 * 2 + 2 * 1


def test_replayed_savings_count_each_string_beyond_the_strings_before_it():
    """The savings curve's points add these gains up: a string inside an earlier one adds only what that one left."""
    pieces = ["a", "b", "c"]
    stats = PretokenStats(["abc"], [2], [2], [[0, 1, 2]], None, 0, 0, 0)
    # "ab" saves one token per use and "abc" two; after "ab", "abc" saves one more, and after "abc", "ab" none
    assert replay(stats, pieces, ["ab", "abc"]) == [2, 2]
    assert replay(stats, pieces, ["abc", "ab"]) == [4, 0]


@hsettings(max_examples=100, deadline=None)
@given(text=st.text(st.sampled_from("ab é日😀"), min_size=1, max_size=8), max_chars=st.integers(1, 6))
def test_spans_start_and_end_on_character_boundaries_within_max_chars(text, max_chars):
    """Every span of two or more single-byte tokens that is whole characters and at most ``max_chars`` of them,
    and no other: a new token must be valid UTF-8 text."""
    raw = text.encode("utf-8")
    pieces = sorted(single_byte_pieces())
    ids = {p: i for i, p in enumerate(pieces)}
    seg = [ids[bytes_to_piece(bytes([b]))] for b in raw]
    stats = PretokenStats([""], [1], [1], [seg], None, 0, 0, 0)
    want = set()
    for i in range(len(raw)):
        for j in range(i + 1, len(raw)):
            try:
                chunk = raw[i:j + 1].decode("utf-8")
            except UnicodeDecodeError:
                continue
            if len(chunk) <= max_chars:
                want.add((i, j, bytes_to_piece(raw[i:j + 1])))
    got = set(Spans(stats, pieces).iter_spans(0, max_chars))
    assert got == want
    assert all(piece_to_bytes(s).decode("utf-8") for _, _, s in got)


@hsettings(max_examples=150, deadline=None)
@given(segs=st.lists(st.lists(st.integers(0, 3), min_size=2, max_size=9), min_size=1, max_size=25),
       uses=st.lists(st.integers(1, 6), min_size=25, max_size=25), limit=st.integers(2, 30))
def test_a_bounded_span_count_counts_every_string_used_more_often_than_its_floor_exactly(segs, uses, limit):
    stats = PretokenStats([""] * len(segs), uses[:len(segs)], [max(1, u // 2) for u in uses[:len(segs)]], segs,
                          None, 0, 0, 0)
    pieces = ["a", "b", "c", "d"]
    exact = Spans(stats, pieces).count(4)
    with mock.patch.object(spans_module, "MAX_COUNTED_SPANS", limit):
        bounded = Spans(stats, pieces).count(4)
    assert exact.floor == 0
    assert (bounded.floor > 0) == (len(exact.counts) > limit)
    # what is kept is exact, and nothing used more than the floor is lost
    assert {s: exact.counts[s] for s in bounded.counts} == bounded.counts
    assert {s: exact.bound[s] for s in bounded.bound} == bounded.bound
    assert {s for s, c in exact.counts.items() if c > bounded.floor} <= set(bounded.counts)
    # each cut takes at least its size from each of the more than limit // 2 strings it keeps or drops
    assert bounded.floor * (limit // 2 + 1) <= sum(exact.counts.values())


def test_a_bounded_span_count_keeps_no_more_strings_than_asked_when_counts_tie_at_the_cut():
    """Text of ever new strings has millions of strings used once: those at the cut must go, or the count's
    memory is not bounded."""
    counts = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 5}
    kept, cut = spans_module._shrink(counts, 2)
    assert cut == 1 and kept == {"d": 1, "e": 4}


def test_a_bounded_span_count_picks_what_the_exact_one_picks_until_a_string_near_its_floor(
        distilled, code_docs, tmp_path, monkeypatch):
    rng = random.Random(0)
    noise = [" ".join("".join(rng.choice(string.ascii_lowercase) for _ in range(rng.randint(4, 12)))
                      for _ in range(200)) for _ in range(10)]
    docs, settings = code_docs + noise, SelectSettings(num_replacements=40, **FAST)
    exact = select_replacements(distilled, docs, settings, tmp_path / "c.csv", tmp_path / "exact.md")
    monkeypatch.setattr(spans_module, "MAX_COUNTED_SPANS", 2000)
    bounded = select_replacements(distilled, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    floor = bounded.summary["span_count_floor"]
    assert exact.summary["span_count_floor"] == 0 and floor > 0
    assert f"used more than {floor} times is counted" in (tmp_path / "log.md").read_text()
    assert "at least" in (tmp_path / "log.md").read_text() and "at least" not in (tmp_path / "exact.md").read_text()
    near = next((k for k, r in enumerate(exact.replacements) if r.domain_count <= floor), len(exact.replacements))
    assert near >= 10
    assert [r.new_text for r in bounded.replacements[:near]] == [r.new_text for r in exact.replacements[:near]]


def test_selection_frees_only_rare_ids_and_adds_single_pretoken_strings(selection, distilled):
    sel, out = selection
    reps = sel.replacements
    assert 0 < len(reps) <= 40
    vocab = distilled.get_vocab()
    bytes_ = single_byte_pieces()
    assert len({r.freed_id for r in reps}) == len(reps)
    assert len({r.new_token for r in reps}) == len(reps)
    for r in reps:
        assert r.freed_id != EOS_ID and r.freed_token not in bytes_
        assert r.freed_domain_count < 5
        assert r.new_token not in vocab
        assert single_pretoken(distilled, r.new_text)
        assert len(r.gpt2_ids) >= 2 and r.estimated_saving > 0
        assert [t.id for t in distilled.model.tokenize(r.new_token)] == r.gpt2_ids
    assert read_candidates(out / "c.csv") == reps
    log = (out / "log.md").read_text(encoding="utf-8")
    assert "single-byte tokens" in log and "%** of tokens" in log
    assert f"ids reassigned: {len(reps)}" in log


def test_indentation_and_identifiers_are_found(selection):
    texts = {r.new_text for r in selection[0].replacements}
    # a line break and 8-space indent is one pre-token without its last space, which joins the next word
    assert "\n       " in texts
    assert " isinstance" in texts or "isinstance" in texts


def test_forced_tokens_come_first_and_bad_ones_name_the_line(distilled, code_docs, tmp_path):
    forced = tmp_path / "forced.txt"
    # a line is verbatim: only a "#" in its first column starts a comment (" #[" is a Rust attribute's start)
    # a term listed twice takes one id
    forced.write_text('# domain words\n zygomorphic\n"\\n        "\n #[\n\n zygomorphic\n', encoding="utf-8")
    settings = SelectSettings(num_replacements=5, forced_tokens_path=str(forced), **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    first = sel.replacements[:3]
    assert [r.new_text for r in first] == [" zygomorphic", "\n        ", " #["]
    assert all(r.reason == "forced" for r in first)
    assert len(sel.replacements) == 5 and [r.new_text for r in sel.replacements].count(" zygomorphic") == 1
    assert "`␠zygomorphic` is listed twice; kept once" in (tmp_path / "log.md").read_text(encoding="utf-8")

    forced.write_text(' fine\n"\\ud800"\n', encoding="utf-8")
    with pytest.raises(ForcedTokensError, match=r"forced.txt:2: .* lone surrogate"):
        select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")

    forced.write_text(" fine\nnot one pretoken\n", encoding="utf-8")
    with pytest.raises(ForcedTokensError, match=r"forced.txt:2: 'not one pretoken'"):
        select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")


def test_lines_of_blanks_in_the_forced_tokens_file_are_skipped_not_forced(distilled, tmp_path):
    """A line of spaces or a tab is blank, as documented, not a whitespace term; other lines are verbatim."""
    forced = tmp_path / "forced.txt"
    forced.write_text("# terms\n   \n\t\n zygomorphic\n #[\n", encoding="utf-8")
    assert read_forced_tokens(forced, distilled) == [text_to_piece(" zygomorphic"), text_to_piece(" #[")]


def _ranker(distilled, forced=(), **settings):
    """A ranker over three pre-tokens of hand-made segmentations into the pieces listed: `` the`` (a piece
    already) and `` zygom`` used five times, `` quix`` four."""
    pieces = ["Ġth", "e", "Ġthe", "Ġz", "yg", "om", "Ġqu", "ix"]
    segs = [["Ġth", "e"], ["Ġz", "yg", "om"], ["Ġqu", "ix"]]
    counts = [5, 5, 4]
    stats = PretokenStats(["".join(s) for s in segs], counts, counts, [[pieces.index(p) for p in s] for s in segs],
                          np.zeros(len(pieces), dtype=np.int64), 0, 0, 3)
    return _Ranker(distilled, stats, pieces, SelectSettings(min_count=5, **settings), list(forced))


def test_ranked_strings_are_used_min_count_times_and_new_and_the_log_counts_the_others(distilled):
    ranker = _ranker(distilled)
    assert ranker.ranked == {"Ġzyg", "ygom", "Ġzygom"}
    assert ranker.excluded == {"below_min_count": 1, "already_in_vocabulary": 1, "split_when_alone": 0}


def test_forced_strings_come_first_unless_refused_and_are_indexed_beyond_max_token_chars(distilled):
    """A forced term longer than ``max_token_chars`` still has its places, so its saving is estimated; a forced
    term that is also a candidate is not counted again among the strings that save nothing."""
    ranker = _ranker(distilled, forced=["Ġquix", "Ġzyg"], max_token_chars=4)
    assert ranker.ranked == {"Ġzyg", "ygom"}
    assert list(ranker.occ.places("Ġquix")) == [(2, [(0, 1)])]
    # "ygom" overlaps the forced "Ġzyg" in its one pre-token: it saves nothing
    assert ranker.pick(5) == [("Ġquix", "forced"), ("Ġzyg", "forced")] and ranker.saving_nothing == 1
    assert ranker.pick(5, refused={"Ġquix"}) == [("Ġzyg", "forced")]


def test_a_forced_term_that_is_a_token_already_keeps_its_id(selection, distilled, code_docs, tmp_path):
    first = selection[0].replacements[0]  # the id the selection frees first, forced as it stands
    forced = tmp_path / "forced.txt"
    forced.write_text(json.dumps(first.freed_text) + "\n", encoding="utf-8")
    settings = SelectSettings(num_replacements=40, forced_tokens_path=str(forced), **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert first.freed_id not in {r.freed_id for r in sel.replacements}
    log = (tmp_path / "log.md").read_text(encoding="utf-8")
    assert f"(id {first.freed_id}); nothing to add, and its id is never freed" in log
    assert "- 0 protected ids/tokens besides those" in log and "- 1 forced terms that already are tokens" in log


def test_protected_tokens_and_ids_are_never_freed(selection, distilled, code_docs, tmp_path):
    reps = selection[0].replacements
    by_text, by_piece, by_id = reps[0], reps[1], reps[2]
    settings = SelectSettings(
        num_replacements=40,
        protected_tokens=[by_text.freed_text, by_piece.freed_token],
        protected_ids=[by_id.freed_id],
        **FAST,
    )
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    freed = {r.freed_id for r in sel.replacements}
    assert not freed & {by_text.freed_id, by_piece.freed_id, by_id.freed_id}
    log = (tmp_path / "log.md").read_text(encoding="utf-8")
    assert "- 3 protected ids/tokens besides those" in log and "- 1 special token:" in log
    # an id the tokenizer's config names (a pad token that is an ordinary piece) counts as special, not as the
    # user's: the log's parameters show the settings as given
    sel = select_replacements(distilled, code_docs, SelectSettings(num_replacements=40, **FAST), tmp_path / "c.csv",
                              tmp_path / "log.md", special_ids=[by_id.freed_id])
    assert by_id.freed_id not in {r.freed_id for r in sel.replacements}
    log = (tmp_path / "log.md").read_text(encoding="utf-8")
    assert "- 2 special tokens" in log and "- 0 protected ids/tokens" in log and "- `protected_ids`: (empty)" in log
    # a typo would protect nothing: named instead
    for bad, message in (({"protected_tokens": [" zqxjvvq"]}, r"protected_tokens: ' zqxjvvq' is not a token"),
                         ({"protected_ids": [50257]}, r"protected_ids: \[50257\] outside")):
        with pytest.raises(ValueError, match=message):
            select_replacements(distilled, code_docs, SelectSettings(**bad, **FAST), tmp_path / "c.csv",
                                tmp_path / "log.md")


def test_general_reference_text_delays_freeing_its_tokens(selection, distilled, code_docs, tmp_path):
    first = selection[0].replacements[0]
    ref = tmp_path / "general.txt"
    ref.write_text((first.freed_text + " ") * 20, encoding="utf-8")
    settings = SelectSettings(num_replacements=40, general_reference_paths=[str(ref)], **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert first.freed_id not in {r.freed_id for r in sel.replacements}
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        select_replacements(
            distilled, code_docs, SelectSettings(general_reference_paths=[str(tmp_path / "missing.txt")], **FAST),
            tmp_path / "c.csv", tmp_path / "log.md",
        )


def test_rare_strings_are_not_selected(distilled, tmp_path):
    docs = make_code_docs(3) + [" antidisestablishmentarianism"]
    sel = select_replacements(distilled, docs, SelectSettings(num_replacements=50, **FAST), tmp_path / "c.csv", tmp_path / "l.md")
    assert " antidisestablishmentarianism" not in {r.new_text for r in sel.replacements}
    assert all(r.domain_count >= 5 for r in sel.replacements)
    assert all(readable(r.new_token) == r.new_text for r in sel.replacements)


def test_a_string_used_exactly_min_count_times_is_ranked_and_one_used_less_is_not(distilled, tmp_path):
    docs = [" zygomorphic\n"] * 5 + [" quixotically\n"] * 4
    settings = SelectSettings(num_replacements=5, validation_fraction=0, **FAST)
    sel = select_replacements(distilled, docs, settings, tmp_path / "c.csv", tmp_path / "l.md")
    texts = {r.new_text for r in sel.replacements}
    assert " zygomorphic" in texts and " quixotically" not in texts
    assert sel.summary["excluded"]["below_min_count"] >= 1


def test_strings_the_pre_tokenizer_cuts_alone_are_not_selected(distilled, tmp_path):
    """A string that is one pre-token only in context (the distilled run rules look ahead) must not be picked:
    remap would reject it."""
    from tokenizers import Regex, Tokenizer, pre_tokenizers

    tok = Tokenizer.from_str(distilled.to_str())
    # cut a trailing run of tildes only at the end of the text, as a context-dependent rule would
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Split(Regex(r"~+\z"), "isolated"), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    docs = ["a ~~~~~~~ b\n" * 50]
    assert not single_pretoken(tok, " ~~~~~~~")
    selection = select_replacements(tok, docs, SelectSettings(num_replacements=20, **FAST),
                                     tmp_path / "c.csv", tmp_path / "log.md")
    for r in selection.replacements:
        assert single_pretoken(tok, r.new_text), r.new_text
    assert selection.summary["excluded"]["split_when_alone"] >= 1


def test_the_savings_curve_adds_net_gains_in_rank_order_at_its_points():
    from ivr.analysis.savings_curve import SavingsCurve, curve_table, savings_curve

    curve = savings_curve([10, 5, 1], 100, [8, 2, 0], 50)
    assert curve == SavingsCurve([1, 2, 3], [10.0, 15.0, 16.0], [16.0, 20.0, 20.0])
    assert curve_table(curve)[4] == "| 3 | 16.00% | 20.00% | -4.00 |"
    curve = savings_curve([1] * 60, 600, [2] * 60, 600)
    assert curve.ids == [1, 2, 5, 10, 25, 50, 60] and curve.fitted_pct == [k / 6 for k in (1, 2, 5, 10, 25, 50)] + [10.0]
    assert curve.heldout_pct == [k / 3 for k in (1, 2, 5, 10, 25, 50)] + [20.0]
    assert savings_curve([], 0, [], 0) == SavingsCurve([], [], [])


def test_a_long_selection_s_curve_has_every_point_below_it_in_order_then_its_end():
    from ivr.analysis.savings_curve import POINTS, savings_curve

    n = POINTS[-1] + 1
    curve = savings_curve([1] * n, n, [1] * n, n)
    assert curve.ids == [*POINTS, n]
    assert curve.fitted_pct == [100.0 * k / n for k in curve.ids]


def test_the_gap_is_signed_both_ways():
    """The gap column is the ranked part's saving less the left-out part's: a reader sees at once whether
    the left-out part saved less (+) or more (-)."""
    from ivr.analysis.savings_curve import SavingsCurve, curve_table

    assert curve_table(SavingsCurve([3, 5], [16.0, 18.0], [12.0, 18.5]))[2:] == [
        "| 3 | 16.00% | 12.00% | +4.00 |", "| 5 | 18.00% | 18.50% | -0.50 |"]


def _plotted_axes(curve, path, monkeypatch):
    """The axes ``write_curve_plot`` drew ``curve`` on (a closed figure still answers what it holds)."""
    from matplotlib import pyplot as plt

    from ivr.analysis.savings_curve import write_curve_plot

    closed, close = [], plt.close
    monkeypatch.setattr(plt, "close", lambda fig: (closed.append(fig), close(fig)))
    write_curve_plot(curve, path)
    [fig] = closed
    [ax] = fig.axes
    return ax


def test_the_plot_draws_each_part_under_its_label_from_below_the_lowest_saving(tmp_path, monkeypatch):
    """The y axis starts at zero or at a left-out part that loses tokens, so neither curve is cut off."""
    from ivr.analysis.savings_curve import SavingsCurve

    curve = SavingsCurve([25, 40], [1.5, 2.0], [-0.5, -1.0])
    ax = _plotted_axes(curve, tmp_path / "curve.png", monkeypatch)
    assert (tmp_path / "curve.png").read_bytes()[:4] == b"\x89PNG"
    lines = {line.get_label(): (list(line.get_xdata()), list(line.get_ydata())) for line in ax.get_lines()}
    assert lines == {"ranked part (estimate)": (curve.ids, curve.fitted_pct),
                     "left-out part of the training split": (curve.ids, curve.heldout_pct)}
    assert ax.get_ylim()[0] <= -1.0 and ax.get_legend() is not None


def test_an_empty_curve_is_plotted_as_bare_axes_that_say_there_is_nothing_to_measure(tmp_path, monkeypatch):
    from ivr.analysis.savings_curve import SavingsCurve

    ax = _plotted_axes(SavingsCurve([], [], []), tmp_path / "curve.png", monkeypatch)
    assert [t.get_text() for t in ax.texts] == ["no selection to measure"]
    assert ax.get_legend() is None and list(ax.get_xticks()) == list(ax.get_yticks()) == []


def test_ids_are_freed_unreachable_first_then_unused_by_general_text_then_by_domain_and_general_use():
    from ivr.analysis.select import _free_order

    # ids 0-6: letter words, so the prior's use stands; id 7 is used min_count times and never freed
    pieces = ["Ġa", "Ġb", "Ġc", "Ġd", "Ġe", "Ġf", "Ġg", "Ġh"]
    domain = [0, 2, 0, 1, 1, 0, 3, 5]
    general = [1.0, 0.0, 5.0, 2.0, 3.0, 9.0, 0.0, 0.0]  # against the ids' order, the last tie-break
    stats = PretokenStats([], [], [], [], np.array(domain), 0, 0, 0)
    order = _free_order(stats, pieces, SelectSettings(min_count=5), never={6}, unreachable={5}, prior=general)
    # unreachable 5 (used by general text); unused by general text: 1; then by domain use, then general use
    assert order == [5, 1, 0, 2, 3, 4]


def test_savings_curve_and_held_out_saving_are_reported(distilled, code_docs, tmp_path):
    settings = SelectSettings(num_replacements=40, validation_fraction=0.3, **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md", tmp_path / "curve.png")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curve = sel.curve
    assert curve.ids[-1] == len(sel.replacements) and curve.ids == sorted(curve.ids)
    assert all(h > 0 for h in curve.heldout_pct)
    log = (tmp_path / "log.md").read_text(encoding="utf-8")
    assert "Savings curve" in log and "left-out part" in log and "curve.png" in log
    assert sel.summary["validation_gap_pct"] == pytest.approx(curve.fitted_pct[-1] - curve.heldout_pct[-1])


def test_the_savings_curve_ranks_without_the_left_out_part_and_measures_on_it(distilled, tmp_path):
    """The left-out documents (a stable hash of each text, as ``count_pretokens`` takes them) hold one string the
    others never use: the whole ranking takes it, the curve's ranking cannot, so the curve saves nothing there."""
    import zlib

    left_out = lambda text: zlib.crc32(text.encode("utf-8")) % 1000 < 500  # noqa: E731
    ranked = [d for d in (f"x{i} = zygomorphic(quixotically)\n" * 5 for i in range(200))
              if not left_out(d)][:40]
    held = [d for d in (f" Zyqxv{i} Zyqxv Zyqxv Zyqxv Zyqxv\n" for i in range(200)) if left_out(d)][:40]
    settings = SelectSettings(num_replacements=10, validation_fraction=0.5, **FAST)
    sel = select_replacements(distilled, ranked + held, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert sel.curve, sel.summary["no_curve_because"]
    assert " Zyqxv" in {r.new_text for r in sel.replacements}
    assert sel.curve.fitted_pct[-1] > 0 and all(h <= 0 for h in sel.curve.heldout_pct)


def test_unreachable_ids_are_freed_first_and_added_tokens_never(selection, distilled, code_docs, tmp_path):
    from tokenizers import AddedToken, Tokenizer

    reps = selection[0].replacements
    late = reps[-1].freed_id
    sel = select_replacements(distilled, code_docs, SelectSettings(num_replacements=40, **FAST), tmp_path / "c.csv",
                              tmp_path / "log.md", unreachable={late})
    assert sel.replacements[0].freed_id == late and sel.summary["unreachable_freed"] == 1
    # an added (special) token at an id of the model's vocabulary is never freed, whatever its count
    tok = Tokenizer.from_str(distilled.to_str())
    tok.add_special_tokens([AddedToken(reps[0].freed_token, special=True)])
    assert tok.get_vocab_size() == distilled.get_vocab_size()
    sel = select_replacements(tok, code_docs, SelectSettings(num_replacements=40, **FAST), tmp_path / "c.csv", tmp_path / "log.md")
    assert reps[0].freed_id not in {r.freed_id for r in sel.replacements}


def test_the_general_text_budget_refuses_replacements_that_lengthen_it(selection, distilled, code_docs, tmp_path):
    """Only ids that reference lines use are left to free (the rest protected): without a budget they are freed
    and the lines get longer; with a zero budget those replacements are refused and no line gets longer."""
    from ivr.tokenizers.remap import RemapSettings, remap_tokenizer

    reps = selection[0].replacements
    ref = tmp_path / "general.txt"
    ref.write_text("".join(f"a line with{r.freed_text} in it\n" for r in reps[:10]), encoding="utf-8")
    lines = ref.read_text(encoding="utf-8").splitlines(keepends=True)
    free = {r.freed_id for r in reps[:20]}
    protected = [i for i in range(distilled.get_vocab_size()) if i not in free]

    def run(budget):
        settings = SelectSettings(num_replacements=20, general_reference_paths=[str(ref)], protected_ids=protected,
                                  max_general_longer_pct=budget, min_count=5, general_prior_words=0)
        sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
        report = remap_tokenizer(distilled, RemapSettings(), tmp_path / "out", tmp_path / "out" / "rules.yaml",
                                 tmp_path / "r.md", tmp_path / "r.json", candidates_csv=tmp_path / "c.csv", general_texts=lines)
        return sel, report["made_longer"]["general"]["lines"]

    unchecked_sel, unchecked = run(None)
    assert unchecked["longer"] > 0
    sel, checked = run(0.0)
    assert checked["longer"] == 0 and sel.summary["refused_for_general_text"] > 0
    assert len(sel.replacements) < len(unchecked_sel.replacements)
    assert sel.summary["general_longer"][-1]["lines_pct"] == 0.0
    assert "| general | " in (tmp_path / "r.md").read_text(encoding="utf-8")
    # a budget of 40% of the lines: refusing the id two thirds of them use is enough, and only that one goes
    ref.write_text(f"a line with{reps[0].freed_text} in it\n" * 8
                   + "".join(f"a line with{r.freed_text} in it\n" for r in reps[1:5]), encoding="utf-8")
    lines = ref.read_text(encoding="utf-8").splitlines(keepends=True)
    sel, checked = run(40.0)
    assert sel.summary["refused_for_general_text"] == 1
    assert reps[0].freed_id not in {r.freed_id for r in sel.replacements}
    assert 0 < checked["longer_pct"] <= 40


def test_a_forced_term_whose_freed_id_general_text_uses_takes_the_next_id(selection, distilled, code_docs, tmp_path):
    """Forced terms are never refused: the budget refuses the ids they would take where the reference lines use
    the freed piece, and the terms move on to ids nobody uses; with every id used, they are left out, said so."""
    reps = selection[0].replacements
    free = [r.freed_id for r in reps[:6]]
    protected = [i for i in range(distilled.get_vocab_size()) if i not in free]
    forced = tmp_path / "forced.txt"
    forced.write_text(" zygomorphic\n quixotically\n", encoding="utf-8")
    ref = tmp_path / "general.txt"

    def run(used):
        ref.write_text("".join(f"a line with{r.freed_text} in it\n" for r in reps if r.freed_id in used),
                       encoding="utf-8")
        settings = SelectSettings(num_replacements=2, general_reference_paths=[str(ref)], protected_ids=protected,
                                  max_general_longer_pct=0.0, forced_tokens_path=str(forced), min_count=5,
                                  general_prior_words=0, validation_fraction=0)
        return select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")

    sel = run(set(free[1:]))  # one id nobody uses: the general prior frees it first
    assert [(r.new_text, r.reason, r.freed_id) for r in sel.replacements] == [(" zygomorphic", "forced", free[0])]
    # the other term tried each used id in turn, each refused
    assert sel.summary["general_budget_met"] and sel.summary["ids_refused_for_forced_terms"] == 5
    assert "`␠quixotically` left out: the budget refused every id it could take" in (tmp_path / "log.md").read_text(
        encoding="utf-8")
    sel = run(set(free))
    assert sel.replacements == [] and sel.summary["general_budget_met"]
    log = (tmp_path / "log.md").read_text(encoding="utf-8")
    assert "`␠zygomorphic` left out: the budget refused every id it could take" in log


def test_spread_strings_outrank_strings_piled_up_in_one_document(distilled, tmp_path):
    """With every use counted the estimates decrease down the ranking; with a per-document cap a string every
    document uses a few times ranks above one a single document repeats."""
    docs = [" zygomorphic" * 100] + [" quixotically" * 3 + "\n" for _ in range(20)]
    ranks = {}
    for cap in (None, 4):
        settings = SelectSettings(num_replacements=5, per_document_cap=cap, validation_fraction=0, **FAST)
        sel = select_replacements(distilled, docs, settings, tmp_path / "c.csv", tmp_path / "l.md")
        texts = [r.new_text for r in sel.replacements]
        ranks[cap] = (texts.index(" zygomorphic"), texts.index(" quixotically"))
        # the cap ranks; the estimate counts every use, less the freed tokens' uses
        zygo = sel.replacements[ranks[cap][0]]
        assert zygo.estimated_saving == 100 * (len(zygo.gpt2_ids) - 1) and zygo.domain_count == 100
        summary = sel.summary
        assert summary["expected_saving_pct"] == pytest.approx(100 * (
            summary["estimated_saving_tokens"] - summary["freed_tokens_domain_uses"]) / summary["train_tokens"])
        if cap is None:
            savings = [r.estimated_saving for r in sel.replacements]
            assert savings == sorted(savings, reverse=True)
    assert ranks[None][0] < ranks[None][1] and ranks[4][1] < ranks[4][0]


def test_strings_that_would_not_encode_to_their_own_id_give_their_place_to_the_next(tmp_path):
    """" HALF" and "HALF" both rank high, but with both new pieces " HALF" encodes as " ·HALF": selection leaves
    it out, fills its place and says so; every rule then encodes to its own id."""
    from ivr.tokenizers.remap import RemapSettings, remap_tokenizer
    from tests.remap_fixtures import tie_tokenizer

    tok = tie_tokenizer()
    docs = [f"x{i} = HALF\ny = (HALF, HALF)\nz =  HALF + HALF - HALF\n" for i in range(30)]
    settings = SelectSettings(num_replacements=3, min_count=5, general_prior_words=0, validation_fraction=0)
    sel = select_replacements(tok, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    texts = [r.new_text for r in sel.replacements]
    assert "HALF" in texts and " HALF" not in texts and len(texts) == 3
    assert sel.summary["not_encoding_to_own_id"] == [" HALF"]
    assert "- 1 strings that would not encode to their own id" in (tmp_path / "log.md").read_text(encoding="utf-8")
    report = remap_tokenizer(tok, RemapSettings(), tmp_path / "out", tmp_path / "out" / "rules.yaml",
                             tmp_path / "r.md", tmp_path / "r.json", candidates_csv=tmp_path / "c.csv")
    assert report["rules_not_encoding_to_own_id"] == []


def test_each_training_word_a_new_piece_cuts_longer_is_charged_every_token_it_adds():
    """With ``pars`` new, every word that held ``parser`` gets longer than selection estimated: each is charged
    its extra tokens times its count, summed over the words; a word that holds the freed token is not (its uses are
    counted apart), and a forced term is never charged. Where a word holds new strings selection did not place in
    it beside one it did, those others are charged."""
    from ivr.analysis.domain_words import words_made_longer
    from ivr.tokenizers.remap import RemapSettings, build_remapped
    from ivr.tokenizers.remap_rules import RemapRule
    from tests.remap_fixtures import near_tie_tokenizer

    tok = near_tie_tokenizer()
    segment = lambda s: [t.id for t in tok.model.tokenize(s)]  # noqa: E731
    freed = [tok.token_to_id(f"zq{k}") for k in range(2)]

    def charged(words: dict[str, int], places, strings, exempt=()):
        new = dict(zip(freed, strings))
        rules = [RemapRule(i, tok.id_to_token(i), s, tuple(segment(s))) for i, s in new.items()]
        remapped = build_remapped(tok, rules, RemapSettings.new_piece_bonus)
        stats = PretokenStats(list(words), list(words.values()), list(words.values()), [segment(w) for w in words],
                              None, 0, 0, 0)
        return words_made_longer(stats, _occurrences(places), remapped, new, exempt)

    words = {"parser": 3, "parserparser": 2, "zq0parser": 5, "pars": 7, "parsparser": 11}
    places = {"pars": {3: [(0, 1)], 4: [(0, 1)]}}  # where `p·ars` are whole distilled tokens
    # parser: 1 more token; parserparser: 2 more; parsparser: as long as before, one more than estimated
    assert charged(words, places, ["pars"]) == {"pars": 3 * 1 + 2 * 2 + 11 * 1}
    assert charged(words, places, ["pars"], exempt=["pars"]) == {}
    # `ers` placed on `er·s`, estimated to save one; `pars` then cuts `parser`: ers·pars·er is no shorter
    assert charged({"ersparser": 4}, {"ers": {0: [(0, 1)]}, "pars": {}}, ["pars", "ers"]) == {"pars": 4}


def test_a_string_whose_piece_would_cut_other_training_words_gives_its_place_to_the_next(tmp_path):
    """``pars`` saves a token in every ``pars``, but its piece would cut ``parser`` into ``pars·er`` (the distilled
    scores hold a near-tie smaller than the bonus): selection leaves it out, says what it would have cost, and the
    remapped tokenizer keeps ``parser`` whole."""
    from ivr.tokenizers.remap import RemapSettings, remap_tokenizer
    from tests.remap_fixtures import near_tie_tokenizer

    tok = near_tie_tokenizer()
    docs = [f"pars{i} = parser(pars, pars, er)\n" for i in range(30)]  # `er` used: its id is not freed
    settings = SelectSettings(num_replacements=2, min_count=5, general_prior_words=0, validation_fraction=0)
    sel = select_replacements(tok, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert sel.summary["lengthening_training_words"] == {"pars": 30}
    assert sel.replacements and "pars" not in [r.new_text for r in sel.replacements]
    assert "`pars` 30" in (tmp_path / "log.md").read_text(encoding="utf-8")
    assert len(sel.replacements) == 2 and sel.summary["unfilled_after_refills"] == 0  # its place is filled
    forced = tmp_path / "forced.txt"  # a forced term is never left out for the words it lengthens
    forced.write_text("pars\n", encoding="utf-8")
    kept = select_replacements(tok, docs, SelectSettings(num_replacements=2, min_count=5, general_prior_words=0,
                                                         validation_fraction=0, forced_tokens_path=str(forced)),
                               tmp_path / "c2.csv", tmp_path / "log2.md")
    assert [(r.new_text, r.reason) for r in kept.replacements][0] == ("pars", "forced")
    remap_tokenizer(tok, RemapSettings(), tmp_path / "out", tmp_path / "out" / "rules.yaml", tmp_path / "r.md",
                    tmp_path / "r.json", candidates_csv=tmp_path / "c.csv")
    remapped = Tokenizer.from_file(str(tmp_path / "out" / "tokenizer.json"))
    assert len(remapped.encode(" parser").ids) == len(tok.encode(" parser").ids)


def test_the_training_word_check_holds_when_every_round_also_has_a_string_off_its_own_id(tmp_path):
    """Four strings in turn fail to encode to their own id (the ``HALF`` ties), so the refill rounds run out while
    ``pars`` is still picked: it is checked after the last round too, and never cuts ``parser``."""
    from tokenizers.models import Unigram

    from ivr.tokenizers.byte_level import ENDOFTEXT, bytes_to_piece
    from ivr.tokenizers.io import byte_level_tokenizer

    pieces = [(bytes_to_piece(bytes([b])), -10.0) for b in range(256)]
    pieces += [("ars", -5.0), ("er", -5.0), ("parser", -20.0 + 4e-15), ("LF", -5.0)]
    pieces += [(p + "HAL", -25.0 + 5e-13) for p in ("Ġ", "x", "y", "z")] + [(f"zq{i}", -30.0) for i in range(8)]
    tok = byte_level_tokenizer(Unigram(pieces + [(ENDOFTEXT, -100.0)], unk_id=None, byte_fallback=False))
    docs = ["pars\nparser\ner\n" * 10 + "HALF\n" * 3 + " HALF\n" * 4 + "xHALF\n" * 4 + "yHALF\n" * 3 + "zHALF\n" * 3
            for _ in range(10)]
    settings = SelectSettings(num_replacements=3, min_count=5, general_prior_words=0, validation_fraction=0)
    sel = select_replacements(tok, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert "pars" not in [r.new_text for r in sel.replacements] and "pars" in sel.summary["lengthening_training_words"]


def _log_text(selection, settings=None, reps=None, notes=(), curve=None, **summary):
    """The selection log of the module's selection, with the ``summary`` entries given changed."""
    from ivr.analysis.selection_log import selection_log_text

    sel = selection[0]
    return selection_log_text(settings or SelectSettings(num_replacements=40, **FAST), {**sel.summary, **summary},
                              sel.replacements if reps is None else reps, list(notes), curve, None)


def test_the_selection_log_says_when_its_counts_dropped_rare_pre_tokens_or_span_strings(selection):
    """Only a count that hit its limit is said to have dropped anything, with the figure it dropped at."""
    plain = _log_text(selection, pretokens_dropped=0, span_count_floor=0)
    assert "dropped past" not in plain and "MAX_COUNTED_SPANS" not in plain and "- at least" not in plain
    bounded = _log_text(selection, pretokens_dropped=7, span_count_floor=3)
    assert "distinct pre-tokens: {} (the rarest dropped past the count's limit 7 times".format(
        selection[0].summary["distinct_pretokens"]) in bounded
    assert "each string used more than 3 times is counted" in bounded
    assert f"- at least {selection[0].summary['excluded']['below_min_count']} span strings used" in bounded


def test_the_selection_log_numbers_the_general_text_checks_and_says_what_the_budget_refused(selection):
    checks = [{"words_pct": 0.5, "lines_pct": None}, {"words_pct": 0.05, "lines_pct": 0.02}]
    met = _log_text(selection, general_longer=checks, general_budget_met=True, ids_refused_for_forced_terms=0,
                    refused_for_general_text=4)
    assert "- general text made longer, check 1: 0.500% of word occurrences, n/a of reference lines\n" in met
    assert "- general text made longer, check 2: 0.050% of word occurrences, 0.020% of reference lines\n" in met
    assert "- replacements refused for making general text longer: 4 (budget 0.1%)" in met
    assert "n/a (no general text" not in met and "under forced terms" not in met and "budget not met" not in met
    unmet = _log_text(selection, general_longer=checks, general_budget_met=False, ids_refused_for_forced_terms=2)
    assert "- freed ids refused under forced terms (each term then tries the next free id): 2\n" in unmet
    assert "- **budget not met**" in unmet
    # no budget: neither checks nor an "n/a" for them
    unbudgeted = _log_text(selection, SelectSettings(max_general_longer_pct=None), general_longer=[])
    assert "general text made longer" not in unbudgeted


def test_the_selection_log_gives_the_left_out_part_s_figures_or_no_section_without_a_left_out_part(selection):
    from ivr.analysis.savings_curve import SavingsCurve

    curve = SavingsCurve([1, 2], [1.0, 1.5], [1.0, 1.25])
    log = _log_text(selection, curve=curve, documents=40, validation_documents=10, validation_fitted_saving_pct=1.5,
                    validation_heldout_saving_pct=1.25, validation_gap_pct=0.25)
    assert "10 of the 40 training documents (25.0%; `validation_fraction` 0.2)" in log
    assert "- saving on the ranked part: 1.50%, on the left-out part: **1.25%**, gap 0.25 points" in log
    none = _log_text(selection, SelectSettings(validation_fraction=0), no_curve_because=None)
    assert "left-out" not in none and "n/a (None)" not in none


def test_the_selection_log_lists_the_first_50_new_tokens_of_all_and_every_forced_note(selection):
    from dataclasses import replace

    reps = selection[0].replacements
    many = [replace(r, rank=k) for k, r in enumerate(reps * (60 // len(reps) + 1), 1)][:60]
    log = _log_text(selection, reps=many, notes=["`a` left out", "`b` left out"])
    assert "The first 50 of 60 by rank" in log
    rows = [line for line in log.splitlines() if line.startswith("| ") and line.split(" | ")[0][2:].isdigit()]
    assert [int(line.split(" | ")[0][2:]) for line in rows] == list(range(1, 51))
    assert "- forced: `a` left out\n- forced: `b` left out\n" in log
    few = _log_text(selection, reps=reps[:3])
    assert "The first 3 of 3 by rank" in few


def test_the_selection_log_names_the_first_20_strings_left_out_by_each_check(selection):
    from ivr.markdown_text import code

    strings = [f"s{k:02}" for k in range(25)]
    log = _log_text(selection, not_encoding_to_own_id=strings,
                    lengthening_training_words={s: 25 - k for k, s in enumerate(strings)})
    assert "- 25 strings that would not encode to their own id after remapping" in log
    assert ": " + ", ".join(code(s) for s in strings[:20]) + "\n" in log
    assert ": " + ", ".join(f"{code(s)} {25 - k}" for k, s in enumerate(strings[:20])) + "\n" in log


def test_the_selection_log_says_n_a_for_what_has_nothing_to_measure(distilled, tmp_path):
    """No general text to measure the budget on, and a left-out part with no text (the empty document is the
    one left out): "n/a", never a 0% or 100% made up from nothing."""
    docs = make_code_docs(20)
    settings = SelectSettings(num_replacements=5, min_count=5, general_prior_words=0, max_general_longer_pct=0.1,
                              validation_fraction=0.0005)
    sel = select_replacements(distilled, docs + [""], settings, tmp_path / "c.csv", tmp_path / "log.md")
    log = (tmp_path / "log.md").read_text(encoding="utf-8")
    assert sel.replacements and sel.curve is None and sel.summary["general_longer"] == []
    assert "- general text made longer: n/a" in log
    assert "- saving on the left-out part: n/a (the left-out part has no tokens)" in log
    assert "0.000% of word occurrences" not in log and "on the left-out part: **" not in log


def test_the_checks_build_the_remapped_tokenizer_with_the_configured_bonus(selection, distilled, code_docs, tmp_path):
    # a negative bonus scores every new piece below the segmentation it replaces: none encodes to its own id
    assert selection[0].replacements
    settings = SelectSettings(num_replacements=40, **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md",
                              new_piece_bonus=-1.0)
    assert sel.replacements == []


def test_invalid_settings_name_the_key():
    with pytest.raises(ValueError, match=r"data\.select\.num_replacements must be >= 0, got -5; "
                                         r"data\.select\.validation_fraction must be in \[0, 1\), got 1"):
        SelectSettings(num_replacements=-5, validation_fraction=1.0)
    with pytest.raises(ValueError, match=r"data\.select\.per_document_cap must be >= 1 or null, got 0"):
        SelectSettings(per_document_cap=0)
    with pytest.raises(ValueError, match=r"data\.select\.protected_ids must be ids \(>= 0\), got \[3, -5\]"):
        SelectSettings(protected_ids=[3, -5])


@pytest.mark.parametrize("key, value, rule", [
    ("min_count", 0, ">= 1"), ("max_token_chars", 0, ">= 1"), ("general_prior_words", -1, ">= 0"),
    ("general_code_mb", -0.5, ">= 0"), ("validation_fraction", -0.1, r"in \[0, 1\)"),
    ("max_general_longer_pct", -1.0, r"in \[0, 100\] or null"), ("max_general_longer_pct", 100.5, r"in \[0, 100\] or null"),
])
def test_each_select_setting_out_of_range_is_named(key, value, rule):
    with pytest.raises(ValueError, match=rf"^data\.select\.{key} must be {rule}, got {value}$"):
        SelectSettings(**{key: value})


def test_select_settings_at_their_bounds_are_accepted():
    SelectSettings(num_replacements=0, min_count=1, max_token_chars=1, protected_ids=[0], per_document_cap=1,
                   validation_fraction=0, general_prior_words=0, general_code_mb=0, max_general_longer_pct=0)
    SelectSettings(max_general_longer_pct=100, per_document_cap=None)
    SelectSettings(max_general_longer_pct=None)


def test_the_defaults_the_method_page_gives_are_the_settings_defaults():
    """docs/ivr.md states the defaults its figures were measured with (``per_document_cap`` (4), ...)."""
    import re
    from tests.conftest import ROOT

    page = (ROOT / "docs" / "ivr.md").read_text(encoding="utf-8")
    stated = re.findall(r"`data\.select\.(\w+)` \(([0-9.]+)\)", page)
    assert len(stated) >= 5
    for key, value in stated:
        assert getattr(SelectSettings(), key) == float(value), key


def test_missing_forced_and_general_reference_files_are_named_when_the_settings_are_read(tmp_path):
    """A typo in a path fails at once, not after the corpus is counted."""
    given = tmp_path / "given.txt"
    given.write_text("text\n", encoding="utf-8")
    missing = str(tmp_path / "missing.txt")
    with pytest.raises(FileNotFoundError, match=r"missing\.txt.*\(data\.select\.forced_tokens_path\)"):
        SelectSettings(forced_tokens_path=missing)
    with pytest.raises(FileNotFoundError, match=r"missing\.txt.*\(data\.select\.general_reference_paths\)"):
        SelectSettings(general_reference_paths=[str(given), missing])


def test_nothing_to_select_gives_an_empty_selection_and_an_empty_curve(distilled, code_docs, tmp_path):
    settings = SelectSettings(num_replacements=0, **FAST)
    png = tmp_path / "curve.png"
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md", png)
    assert sel.replacements == [] and sel.curve is None
    assert "validation_heldout_saving_pct" not in sel.summary
    assert png.read_bytes().startswith(b"\x89PNG")


def test_more_forced_terms_than_replacements_is_an_error(distilled, code_docs, tmp_path):
    forced = tmp_path / "forced.txt"
    forced.write_text(" zygomorphic\n zygodactyl\n", encoding="utf-8")
    settings = SelectSettings(num_replacements=1, forced_tokens_path=str(forced), **FAST)
    with pytest.raises(ForcedTokensError, match=r"forced.txt: 2 new terms to force, more than "
                                                r"data.select.num_replacements \(1\)"):
        select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    # fewer ids that may be freed than forced terms: said, not silently dropped
    protected = [i for i in range(distilled.get_vocab_size()) if i != 20000]
    settings = SelectSettings(num_replacements=2, forced_tokens_path=str(forced), protected_ids=protected, **FAST)
    with pytest.raises(ForcedTokensError, match=r"forced.txt: 2 new terms to force, but only 1 ids may be freed"):
        select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")


def test_strings_inside_a_picked_one_save_nothing_and_the_log_says_why_fewer_ids_are_reassigned(distilled, tmp_path):
    docs = [" antidisestablishmentarianism\n" * 3 for _ in range(20)]
    sel = select_replacements(distilled, docs, SelectSettings(num_replacements=50, **FAST), tmp_path / "c.csv",
                              tmp_path / "log.md")
    assert [r.new_text for r in sel.replacements] == [" antidisestablishmentarianism"]
    # every other span of the word (" antidis", "establishment", ...) lies inside it
    assert sel.summary["saving_nothing"] == sel.summary["candidate_strings"] - 1 > 0
    assert f"{sel.summary['saving_nothing']} candidate strings save nothing" in (tmp_path / "log.md").read_text()


def test_the_budget_counts_the_word_list_s_occurrences(selection, distilled, code_docs, tmp_path):
    """With no reference lines, the word list alone is what the budget is measured on: only ids of common English
    words are left to free, so every replacement would lengthen listed words, and a zero budget refuses them all."""
    words = [" however", " because", " which", " people"]
    free = [distilled.encode(w).ids[0] for w in words]
    assert all(len(distilled.encode(w).ids) == 1 for w in words)
    protected = [i for i in range(distilled.get_vocab_size()) if i not in free]

    def run(budget):
        settings = SelectSettings(num_replacements=4, protected_ids=protected, max_general_longer_pct=budget,
                                  min_count=5, general_prior_words=2000, validation_fraction=0)
        return select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md")

    unchecked = run(None)
    assert {r.freed_id for r in unchecked.replacements} == set(free)
    sel = run(0.0)
    assert sel.replacements == [] and sel.summary["refused_for_general_text"] == 4
    first = sel.summary["general_longer"][0]
    assert first["words_pct"] > 0 and first["lines_pct"] is None  # no lines to measure: n/a, not 0%
    assert sel.summary["general_budget_met"]


def test_the_expected_saving_counts_the_uses_of_the_freed_tokens(code_docs, distilled, tmp_path):
    """A freed id the corpus still uses (fewer than ``min_count`` times) costs a token per use: the expected saving
    is the estimated one less those uses."""
    docs = code_docs + [" banana split\n"] * 3
    banana = distilled.encode(" banana").ids
    assert len(banana) == 1
    protected = [i for i in range(distilled.get_vocab_size()) if i != banana[0]]
    settings = SelectSettings(num_replacements=1, protected_ids=protected, min_count=5, general_prior_words=0,
                              validation_fraction=0, max_general_longer_pct=None)
    sel = select_replacements(distilled, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    [rep] = sel.replacements
    assert rep.freed_id == banana[0] and rep.freed_domain_count == 3
    summary = sel.summary
    assert summary["freed_tokens_domain_uses"] == 3
    assert summary["expected_saving_pct"] == pytest.approx(
        100.0 * (rep.estimated_saving - 3) / summary["train_tokens"])


def test_strings_still_failing_after_the_last_refill_round_leave_their_ids_unused(tmp_path, monkeypatch):
    """With no refill rounds left, ``pars`` (whose piece would cut ``parser``) is not replaced by the next
    candidate: its id keeps its old token, counted and said so in the log."""
    from tests.remap_fixtures import near_tie_tokenizer

    monkeypatch.setattr(select_module, "REFILL_ROUNDS", 0)
    tok = near_tie_tokenizer()
    docs = [f"pars{i} = parser(pars, pars, er)\n" for i in range(30)]
    settings = SelectSettings(num_replacements=2, min_count=5, general_prior_words=0, validation_fraction=0)
    sel = select_replacements(tok, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert sel.summary["unfilled_after_refills"] == 1 and len(sel.replacements) == 1
    assert "pars" not in [r.new_text for r in sel.replacements]
    assert "- 1 ids keep their old token" in (tmp_path / "log.md").read_text(encoding="utf-8")


def test_a_forced_term_whose_own_piece_lengthens_general_text_stays_and_the_budget_says_it_is_not_met(tmp_path):
    """``pars`` forced: its piece cuts the reference lines' ``parser`` into ``pars·er``. Forced terms are never
    refused and the id it takes is used by no general text, so nothing can be refused: one check, budget not met."""
    from tests.remap_fixtures import near_tie_tokenizer

    tok = near_tie_tokenizer()
    docs = [f"pars{i} = parser(pars, pars, er)\n" for i in range(30)]
    forced = tmp_path / "forced.txt"
    forced.write_text("pars\n", encoding="utf-8")
    ref = tmp_path / "general.txt"
    ref.write_text("parser\n" * 5, encoding="utf-8")
    settings = SelectSettings(num_replacements=1, min_count=5, general_prior_words=0, validation_fraction=0,
                              forced_tokens_path=str(forced), general_reference_paths=[str(ref)],
                              max_general_longer_pct=0.0)
    sel = select_replacements(tok, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert [(r.new_text, r.reason) for r in sel.replacements] == [("pars", "forced")]
    assert sel.summary["general_budget_met"] is False
    assert [c["lines_pct"] for c in sel.summary["general_longer"]] == [100.0]
    assert sel.summary["refused_for_general_text"] == 0 and sel.summary["ids_refused_for_forced_terms"] == 0


def test_a_long_run_of_multi_byte_letters_is_cut_for_selection_between_characters(distilled, tmp_path, monkeypatch):
    """A pre-token past ``MAX_SPAN_TOKENS`` is cut into chunks; a cut inside a character (a CJK letter takes up to
    three tokens) would make strings of part of one, which no token may hold."""
    rng = random.Random(1)
    word = "".join(chr(rng.randrange(0x4E00, 0x9FFF)) for _ in range(150))
    docs = [f"x = 1\n{word}\n" for _ in range(10)]
    for limit in (16, 17, 256):  # cuts that fall inside characters, for one width of chunk or another
        monkeypatch.setattr(spans_module, "MAX_SPAN_TOKENS", limit)
        picked = select_replacements(distilled, docs, SelectSettings(num_replacements=20, **FAST), tmp_path / "c.csv",
                                     tmp_path / "log.md").replacements
        assert picked and all(piece_to_bytes(r.new_token).decode("utf-8") for r in picked)


def test_added_tokens_outside_the_byte_level_alphabet_do_not_stop_a_selection(tmp_path):
    from tokenizers import AddedToken

    from tests.standin import standin_distilled_tokenizer

    tok = standin_distilled_tokenizer()
    tok.add_special_tokens([AddedToken("<｜begin▁of▁sentence｜>", special=True), AddedToken("<é s>", special=True)])
    tok.encode_special_tokens = True
    picked = select_replacements(tok, make_code_docs(), SelectSettings(num_replacements=10, **FAST),
                                 tmp_path / "c.csv", tmp_path / "log.md").replacements
    assert picked and not {r.freed_id for r in picked} & {tok.token_to_id("<é s>"), tok.token_to_id("<｜begin▁of▁sentence｜>")}


def test_the_log_counts_each_id_left_out_under_one_reason(distilled, code_docs, tmp_path):
    """Single-byte and special ids are never freed whatever their use: the count of ids used too often to free
    holds the others only, so that the reasons add up."""
    sel = select_replacements(distilled, code_docs, SelectSettings(num_replacements=5, validation_fraction=0, **FAST),
                              tmp_path / "c.csv", tmp_path / "log.md")
    excluded = sel.summary["excluded"]
    stats = pretoken_stats(distilled, count_pretokens(distilled, code_docs, cap=None, validation_fraction=0)[0])
    bytes_ = single_byte_pieces()
    pieces = [distilled.id_to_token(i) for i in range(distilled.get_vocab_size())]
    frequent = [i for i in np.flatnonzero(stats.id_counts >= FAST["min_count"])]
    assert any(pieces[i] in bytes_ for i in frequent)  # the overlap the count leaves out
    others = [i for i in frequent if pieces[i] not in bytes_ and i != EOS_ID]
    assert excluded["domain_count_at_least_min"] == len(others)
    assert f"- {len(others)} other tokens used ≥ 5 times" in (tmp_path / "log.md").read_text()
    assert "- 1 special token: " in (tmp_path / "log.md").read_text()


def test_a_single_byte_id_protected_or_forced_is_counted_once_as_a_single_byte(distilled, code_docs, tmp_path):
    """The 256 single-byte ids are counted as such; naming one in ``protected_tokens``, forcing it or giving it as
    a special id must not count it a second time under another reason."""
    forced = tmp_path / "forced.txt"
    forced.write_text("x\n", encoding="utf-8")
    settings = SelectSettings(num_replacements=5, validation_fraction=0, protected_tokens=[" "],
                              forced_tokens_path=str(forced), **FAST)
    sel = select_replacements(distilled, code_docs, settings, tmp_path / "c.csv", tmp_path / "log.md",
                              special_ids=[distilled.token_to_id("!")])
    excluded = sel.summary["excluded"]
    assert (excluded["single_byte"], excluded["special"], excluded["protected"], excluded["forced_kept"]) == (256, 1, 0, 0)
    log = (tmp_path / "log.md").read_text(encoding="utf-8")
    assert "- 0 protected ids/tokens besides those" in log and "- 0 forced terms that already are tokens" in log


def test_an_empty_forced_term_is_named_as_empty_not_as_split(distilled, tmp_path):
    """A JSON line ``""`` holds no text: the error says so, rather than that the pre-tokenizer splits it."""
    forced = tmp_path / "forced.txt"
    forced.write_text(' fine\n""\n', encoding="utf-8")
    with pytest.raises(ForcedTokensError, match=r"forced.txt:2: \"\" is an empty term"):
        read_forced_tokens(forced, distilled)


def test_the_log_counts_the_single_byte_ids_the_vocabulary_has(tmp_path):
    """A byte-level vocabulary without some byte pieces (bytes no UTF-8 text holds) counts only those it has."""
    from tokenizers.models import Unigram

    from ivr.tokenizers.byte_level import ENDOFTEXT, bytes_to_piece
    from ivr.tokenizers.io import byte_level_tokenizer

    pieces = [(bytes_to_piece(bytes([b])), -10.0) for b in range(256) if b not in (0xC0, 0xC1, 0xF5)]
    pieces += [("ab", -15.0), (bytes_to_piece(b"\xc3\xa9"), -15.0)] + [(f"zq{i}", -30.0) for i in range(4)]
    tok = byte_level_tokenizer(Unigram(pieces + [(ENDOFTEXT, -100.0)], unk_id=None, byte_fallback=False))
    settings = SelectSettings(num_replacements=2, min_count=5, general_prior_words=0, validation_fraction=0)
    sel = select_replacements(tok, ["abc abc é\n"] * 10, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert sel.summary["excluded"]["single_byte"] == 253
    assert "- 253 single-byte tokens" in (tmp_path / "log.md").read_text(encoding="utf-8")


def test_ids_left_unused_are_counted_for_the_final_round_only(tmp_path, monkeypatch):
    """A string failing after the last refill leaves its id unused in that round; when the general-text budget then
    refuses another replacement and the ranking runs again, the strings picked fill every place, and the log must
    not say an id keeps its old token."""
    from ivr.analysis.general_use import Lengthening
    from tests.remap_fixtures import near_tie_tokenizer

    monkeypatch.setattr(select_module, "REFILL_ROUNDS", 0)
    calls = []

    def fake_lengthening(distilled, remapped, general, reassigned):
        calls.append(list(reassigned))
        if len(calls) == 1:  # the first check: the one replacement left is over the budget
            return Lengthening(0.0, 50.0, {i: 50.0 for i in reassigned}, {})
        return Lengthening(0.0, 0.0, {}, {})

    monkeypatch.setattr(select_module, "lengthening", fake_lengthening)
    ref = tmp_path / "general.txt"
    ref.write_text("something general\n", encoding="utf-8")
    tok = near_tie_tokenizer()
    docs = [f"pars{i} = parser(pars, pars, er)\n" for i in range(30)]
    settings = SelectSettings(num_replacements=2, min_count=5, general_prior_words=0, validation_fraction=0,
                              general_reference_paths=[str(ref)])
    sel = select_replacements(tok, docs, settings, tmp_path / "c.csv", tmp_path / "log.md")
    assert len(calls) == 2 and sel.summary["refused_for_general_text"] == 1
    assert len(sel.replacements) == 2  # the final round fills both places
    assert sel.summary["unfilled_after_refills"] == 0
    assert "ids keep their old token" not in (tmp_path / "log.md").read_text(encoding="utf-8")
