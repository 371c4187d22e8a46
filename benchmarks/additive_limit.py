"""Is the additive merge-tree score itself the limit of the distillation on unseen words, or float precision?

Every held-out word (GPT-2's pre-tokens of the held-out sets of ``multilingual_distill.py``) is segmented by
merge-tree scores alone, with no fitting and no rules: merge rank ``r`` weighs ``w(r)``, a piece scores the sum
of its merge tree's weights (``ivr/tokenizers/distill/scores.py``), and the segmentation with the highest total
is compared with GPT-2's BPE (its bare model). Designs (``--designs``, comma-separated):

* ``f64:pow:E``: ``w(r) = (r+1)^-E`` in float64 through the real ``tokenizers`` Unigram
  (``unigram_tokenizer``, the scores as a saved file loads them); at ``E`` = ``DistillSettings().init_exponent``
  (offset 1) it is the library's initialisation. Ties are broken as that Viterbi breaks them and count as right
  or wrong.
* ``f64:hybrid:A``: ``ln w(r) = -A ln(r+1) - B r`` in float64, ``B`` chosen so that the last merge weighs
  ``N^-E`` (``E`` = ``--budget-exponent``, the library's ``init_exponent`` by default): the same dynamic range as
  ``f64:pow:E``, spent differently.
* ``f64:offset:C``: ``w(r) = ((r+C)/C)^-A``, ``A`` chosen so that the last merge weighs ``N^-E`` of the first:
  the same dynamic range again, flat among the first ``C`` ranks and as steep as ``A`` beyond them.
* ``f64:bonus:R``: ``f64:pow:E`` with every piece's score raised by ``(R+1)^-E``, the weight of merge ``R`` (lowered
  for a negative ``R``): a bonus per piece, which favours segmentations with more pieces, as BPE's often are
  where merge-tree sums miss.
* ``exact:pow:E``, ``exact:hybrid:A`` and ``exact:offset:C``: the same weights in exact-enough arithmetic, through
  this script's own Viterbi over the vocabulary pieces (``source.pieces`` but the never-output ones): each weight is
  ``round(w(r) * 2^K)`` as a Python int, computed with ``decimal`` at enough digits for ``K``, and ``K`` is chosen
  so that the smallest weight has ``GUARD_BITS`` significant bits. Sums of ints are exact, so the only error is the
  rounding of each weight, at most half a unit: two totals compare as in real arithmetic unless they differ by less
  than a word's length in units, ``2^-GUARD_BITS`` of the smallest weight.
* ``exact:lex``: the limit of ``exact:pow:E`` as ``E`` grows: segmentations compared by their counts of each
  merge, earliest merge first (the one using merge ``r`` more often wins, whatever the later merges), as the
  ranks in descending tuples; the same as weights ``2^(k(N-r))`` with ``2^k`` above any merge count in a word.

In the exact designs a word whose BPE segmentation has the highest total but shares it with another is a tie,
counted apart; a word whose BPE segmentation has a lower total than the best is wrong.

Words are counted per set as GPT-2's pre-tokenizer cuts them (no split or word rules), every word, not only
those a fitted tokenizer gets wrong, so the library's ``f64:pow:E`` counts more than the "initialisation wrong
too" column of ``multilingual_distill.py`` (which counts it among a fit's mismatches only). Given that script's
``report.json`` (``--fit-report``), a second table takes the fitted tokenizer's wrong occurrences but ties and
counts those each design gets wrong too (the library's ``f64:pow:E`` is then that column). A table of the words
with a letter alone sets apart the punctuation (vocabulary pieces such as `` ...``, runs) that the fit and the
split rules correct.

    uv run python benchmarks/additive_limit.py
    uv run python benchmarks/additive_limit.py --designs f64:pow:3.3,exact:lex --languages de,pl
    uv run python benchmarks/multilingual_distill.py --fit code --out /tmp/multilingual
    uv run python benchmarks/additive_limit.py --fit-report /tmp/multilingual/code/report.json
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from common import (
    EXACT_TARGET, LANGUAGES, Stopwatch, add_heldout_every, encode_ids, held_out_sets, non_negative_int, parser,
    positive_float, positive_int,
)

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import readable, text_to_piece
from ivr.tokenizers.distill import DistillSettings
from ivr.tokenizers.distill.scores import initial_scores, merge_tree_matrix
from ivr.tokenizers.distill.source_bpe import SourceBPE, source_bpe
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.unigram import bare_model, unigram_tokenizer
from ivr.tokenizers.verify import read_report

INIT_EXPONENT = DistillSettings().init_exponent
DEFAULT_DESIGNS = (f"f64:pow:{INIT_EXPONENT:g},exact:pow:{INIT_EXPONENT:g},f64:pow:6,exact:pow:6,exact:pow:10,"
                   "exact:pow:14,exact:lex,f64:hybrid:2.5,f64:hybrid:2.0,f64:hybrid:1.5,f64:hybrid:1.0")
GUARD_BITS = 256
"""Significant bits of the smallest exact weight."""
RIGHT, TIE, WRONG = 0, 1, 2


@dataclass(frozen=True)
class Design:
    """One score design: ``arithmetic`` ``f64`` or ``exact``, ``form`` ``pow``, ``hybrid``, ``offset``, ``bonus``
    or ``lex``, and the form's parameter (the exponent for ``pow``, the log-rank coefficient ``A`` for ``hybrid``,
    the offset ``C`` for ``offset``, the rank ``R`` for ``bonus``)."""

    name: str
    arithmetic: str
    form: str
    param: str


def parse_design(name: str) -> Design:
    parts = name.split(":")
    ok = (len(parts) == 3 and parts[0] in ("f64", "exact") and parts[1] in ("pow", "hybrid", "offset")) \
        or (len(parts) == 3 and parts[:2] == ["f64", "bonus"]) or parts == ["exact", "lex"]
    if ok and len(parts) == 3:
        try:
            float(parts[2])
        except ValueError:
            ok = False
    if not ok:
        raise SystemExit(f"--designs: {name!r} is not f64:pow:E, f64:hybrid:A, f64:offset:C, f64:bonus:R, exact:pow:E, "
                         f"exact:hybrid:A, exact:offset:C or exact:lex")
    return Design(name, parts[0], parts[1], parts[2] if len(parts) == 3 else "")


def hybrid_rate(a: float, budget: float, n: int) -> float:
    """``B`` of ``ln w(r) = -a ln(r+1) - B r`` that makes the last merge weigh ``n^-budget``."""
    return (budget - a) * math.log(n) / (n - 1)


def offset_exponent(c: float, budget: float, n: int) -> float:
    """``A`` of ``w(r) = ((r+C)/C)^-A`` that makes the last merge weigh ``n^-budget`` of the first."""
    return budget * math.log(n) / math.log((n - 1 + c) / c)


def float_weights(design: Design, n: int, budget: float) -> np.ndarray:
    r = np.arange(n, dtype=np.float64)
    a = float(design.param)
    if design.form == "offset":
        return np.exp(-offset_exponent(a, budget, n) * np.log1p(r / a))
    b = hybrid_rate(a, budget, n) if design.form == "hybrid" else 0.0
    return np.exp(-a * np.log1p(r) - b * r)


def exact_weights(design: Design, n: int, budget: float) -> list[int]:
    """``round(w(r) * 2^K)`` for every rank, ``K`` giving the smallest weight ``GUARD_BITS`` significant bits."""
    a = Decimal(design.param)
    log2_range = (budget * math.log2(n) if design.form == "offset" else
                  float(a) * math.log2(n) + (hybrid_rate(float(a), budget, n) * (n - 1) / math.log(2)
                                             if design.form == "hybrid" else 0.0))
    k = GUARD_BITS + math.ceil(log2_range) + 1
    with localcontext() as ctx:
        ctx.prec = math.ceil(k * math.log10(2)) + 30
        scale = Decimal(2) ** k
        if design.form == "pow":
            return [int((Decimal(r + 1) ** -a * scale).to_integral_value()) for r in range(n)]
        if design.form == "offset":
            e = Decimal(offset_exponent(float(a), budget, n))
            return [int((((r + a) / a) ** -e * scale).to_integral_value()) for r in range(n)]
        b = (Decimal(budget) - a) * Decimal(n).ln() / (n - 1)
        return [int(((-a * Decimal(r + 1).ln() - b * r).exp() * scale).to_integral_value()) for r in range(n)]


def piece_trees(m: sp.csr_matrix) -> list[list[tuple[int, int]]]:
    """Each piece's merge tree (a row of ``merge_tree_matrix``) as (rank, count) pairs."""
    return [list(zip(m.indices[m.indptr[p]:m.indptr[p + 1]].tolist(),
                     m.data[m.indptr[p]:m.indptr[p + 1]].astype(int).tolist())) for p in range(m.shape[0])]


def merge_tuples(a: tuple, b: tuple) -> tuple:
    return tuple(sorted(a + b, reverse=True))


class ExactViterbi:
    """Highest-total segmentations over the vocabulary pieces, for several exact designs at once; a word's edges
    (the pieces at each position) are found once."""

    def __init__(self, source: SourceBPE, trees: sp.csr_matrix, designs: Sequence[Design], budget: float) -> None:
        self.vocab = {p: i for i, p in enumerate(source.pieces) if i not in source.never}
        self.prefixes = {p[:k] for p in self.vocab for k in range(1, len(p) + 1)}
        trees, n = piece_trees(trees), trees.shape[1]
        # per design: (score of each piece, addition, zero)
        self.designs: list[tuple[list, Callable, object]] = []
        for d in designs:
            if d.form == "lex":
                scores = [tuple(sorted((n - r for r, c in t for _ in range(c)), reverse=True)) for t in trees]
                self.designs.append((scores, merge_tuples, ()))
            else:
                w = exact_weights(d, n, budget)
                self.designs.append(([sum(w[r] * c for r, c in t) for t in trees], int.__add__, 0))

    def edges(self, word: str) -> list[list[tuple[int, int]]]:
        """(start, piece id) of every vocabulary piece ending at each position of ``word``."""
        ends: list[list[tuple[int, int]]] = [[] for _ in range(len(word) + 1)]
        for i in range(len(word)):
            for j in range(i + 1, len(word) + 1):
                sub = word[i:j]
                if sub not in self.prefixes:
                    break
                if sub in self.vocab:
                    ends[j].append((i, self.vocab[sub]))
        return ends

    def verdicts(self, word: str, label: Sequence[int]) -> list[tuple[int, list[int]]]:
        """Per design: (RIGHT, TIE or WRONG for BPE's segmentation ``label``, the best segmentation's ids)."""
        ends = self.edges(word)
        out = []
        for scores, add, zero in self.designs:
            best, count, back = [zero], [1], [None]
            for end in range(1, len(word) + 1):
                top, c, arg = None, 0, None
                for start, pid in ends[end]:
                    cand = add(best[start], scores[pid])
                    if top is None or cand > top:
                        top, c, arg = cand, count[start], (start, pid)
                    elif cand == top:
                        c = min(2, c + count[start])
                best.append(top)
                count.append(c)
                back.append(arg)
            target = zero
            for pid in label:
                target = add(target, scores[pid])
            if target > best[-1]:
                raise AssertionError(f"BPE's segmentation of {word!r} beats the Viterbi optimum")
            verdict = WRONG if target < best[-1] else TIE if count[-1] > 1 else RIGHT
            seg, pos = [], len(word)
            while verdict == WRONG and pos:
                start, pid = back[pos]
                seg.append(pid)
                pos = start
            out.append((verdict, seg[::-1]))
        return out


def shown(pieces: Sequence[str]) -> str:
    """Pieces as readable text joined by ``·``, control characters escaped (``\\n``)."""
    return json.dumps("·".join(readable(p) for p in pieces), ensure_ascii=False)[1:-1]


Results = dict[str, dict[str, tuple[int, list[int]]]]
"""Per design: word -> (RIGHT, TIE or WRONG, the design's segmentation's ids when wrong)."""


class Evaluator:
    """Every design's verdict on words against BPE's bare model."""

    def __init__(self, bpe, designs: Sequence[Design], budget: float) -> None:
        self.source = source = source_bpe(bpe)
        self.bpe, self.designs = bare_model(bpe), designs
        trees = merge_tree_matrix(source.pieces, source.merges, source.ignore_merges)
        n = trees.shape[1]
        self.tokenizers = {}
        for d in designs:
            if d.arithmetic == "f64":
                if d.form == "bonus":
                    rank = float(d.param)
                    bonus = np.sign(rank) * (abs(rank) + 1) ** -budget
                    scores = initial_scores(source.pieces, source.merges, budget,
                                            whole_pieces=source.ignore_merges) + bonus
                elif d.form == "pow":
                    scores = initial_scores(source.pieces, source.merges, float(d.param),
                                            whole_pieces=source.ignore_merges)
                else:
                    scores = trees @ float_weights(d, n, budget)
                self.tokenizers[d.name] = unigram_tokenizer(source.pieces, scores, source.never)
        self.exact = [d for d in designs if d.arithmetic == "exact"]
        self.viterbi = ExactViterbi(source, trees, self.exact, budget) if self.exact else None

    def run(self, words: list[str]) -> tuple[dict[str, list[int]], Results]:
        """(BPE's ids per word, every design's verdicts)."""
        labels = dict(zip(words, encode_ids(self.bpe, words)))
        results: Results = {}
        for name, tok in self.tokenizers.items():
            got = encode_ids(tok, words)
            results[name] = {w: (RIGHT, []) if g == labels[w] else (WRONG, g) for w, g in zip(words, got)}
        for d in self.exact:
            results[d.name] = {}
        for w in words:
            for d, v in zip(self.exact, self.viterbi.verdicts(w, labels[w]) if self.exact else ()):
                results[d.name][w] = v
        return labels, results


def occurrences_table(designs: Sequence[Design], counts: dict[str, Counter], results: Results, first: str,
                      totals: dict[str, int] | None = None) -> str:
    """Per set: the occurrences of its words in ``counts`` (column ``first``), 99.99%'s allowance of the set's
    word occurrences (``totals``, else those in ``counts``), and each design's wrong occurrences."""
    lines = [f"| held-out set | {first} | 99.99% allows | " + " | ".join(f"`{d.name}`" for d in designs) + " |",
             "|---|---:|---:|" + "---:|" * len(designs)]
    for set_name, c in counts.items():
        cells = []
        for d in designs:
            wrong = sum(k for w, k in c.items() if results[d.name][w][0] == WRONG)
            ties = sum(k for w, k in c.items() if results[d.name][w][0] == TIE)
            cells.append(f"{wrong} (+{ties})" if d.arithmetic == "exact" else str(wrong))
        total = (totals or {}).get(set_name, sum(c.values()))
        lines.append(f"| {set_name} | {sum(c.values())} | {total * (1 - EXACT_TARGET):.0f} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def rounding_table(designs: Sequence[Design], counts: dict[str, Counter], results: Results) -> str:
    """For each float64 design with an exact twin (``f64:pow:6`` and ``exact:pow:6``): the occurrences float64
    gets wrong where exact arithmetic gets them right (lost to rounding), has a tie (broken the wrong way), or
    gets them wrong too; empty without such a pair."""
    names = {d.name for d in designs}
    pairs = [(d.name, "exact" + d.name[3:]) for d in designs if d.arithmetic == "f64" and "exact" + d.name[3:] in names]
    if not pairs:
        return ""
    lines = ["| held-out set | " + " | ".join(f"`{f}`: rounding / tie / exact wrong too" for f, _ in pairs) + " |",
             "|---|" + "---:|" * len(pairs)]
    for set_name, c in counts.items():
        cells = []
        for f, e in pairs:
            by = Counter()
            for w, k in c.items():
                if results[f][w][0] == WRONG:
                    by[results[e][w][0]] += k
            cells.append(f"{by[RIGHT]} / {by[TIE]} / {by[WRONG]}")
        lines.append(f"| {set_name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def fit_mismatches(report: Path, set_names: Sequence[str]) -> tuple[dict[str, Counter], dict[str, int]]:
    """(per held-out set: the fitted tokenizer's wrong words that are not ties, as byte-level words with their
    occurrences; per set: all its word occurrences), from a verification ``report.json`` listing every mismatch
    (``multilingual_distill.py`` writes one)."""
    try:
        sets = read_report(report)["sets"]
    except OSError as err:
        raise SystemExit(f"{report}: {err.strerror}") from None
    except ValueError as err:
        raise SystemExit(str(err)) from None
    missing = [n for n in set_names if n not in sets]
    if missing:
        raise SystemExit(f"{report}: no held-out set {missing[0]!r} (sets there: {sorted(sets)})")
    words, totals = {}, {}
    for name in set_names:
        m = sets[name]["mismatches"]
        listed = sum(len(m[k]["examples"]) for k in ("conflict", "other"))
        if listed < sum(m[k]["types"] for k in ("conflict", "other")):
            raise SystemExit(f"{report}: set {name!r} lists only some of its mismatches (examples capped)")
        words[name] = Counter({text_to_piece(e["word"]): e["count"] for k in ("conflict", "other")
                               for e in m[k]["examples"]})
        totals[name] = sets[name]["word_occurrences"]
    return words, totals


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--designs", default=DEFAULT_DESIGNS, help="comma-separated designs (see above)")
    ap.add_argument("--budget-exponent", type=positive_float, default=INIT_EXPONENT,
                    help="E: the hybrids' last merge weighs N^-E, as at f64:pow:E (default: the library's "
                         "init_exponent, %(default)s)")
    ap.add_argument("--lang-chars", type=positive_int, default=2_000_000, help="cap on each language's messages")
    ap.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated locale names")
    ap.add_argument("--examples", type=non_negative_int, default=3,
                    help="most frequent wrong words listed per set and design")
    ap.add_argument("--fit-report", type=Path, default=None,
                    help="a report.json of multilingual_distill.py (e.g. /tmp/multilingual/code/report.json): "
                         "also count, of the fitted tokenizer's non-tie wrong occurrences, those each design gets "
                         "wrong too")
    add_heldout_every(ap)
    args = ap.parse_args()
    designs = [parse_design(d) for d in args.designs.split(",")]
    bpe = offline_gpt2_tokenizer()
    with Stopwatch() as t:
        evaluator = Evaluator(bpe, designs, args.budget_exponent)
    print(f"tokenizers, exact weights and piece scores: {t.seconds:.0f} s")
    _, sets = held_out_sets(args.heldout_every, args.lang_chars, tuple(args.languages.split(",")))
    counts = {name: pre_token_counts(bpe, texts, desc=name)[0] for name, texts in sets.items()}
    words = sorted(set().union(*counts.values()))
    with Stopwatch() as t:
        labels, results = evaluator.run(words)
    print(f"{len(words)} distinct words in {len(sets)} sets, every design: {t.seconds:.0f} s")
    print("\nwrong word occurrences per score design (no fitting, no rules; exact designs: wrong (+ ties))\n")
    print(occurrences_table(designs, counts, results, "word occurrences"))
    # what the fit and the split rules correct today is mostly punctuation (vocabulary pieces such as ` ...`, runs)
    lettered = {name: Counter({w: k for w, k in c.items() if any(ch.isalpha() for ch in readable(w))})
                for name, c in counts.items()}
    print("\nthe same, words with a letter only (the allowance from all word occurrences)\n")
    print(occurrences_table(designs, lettered, results, "occurrences with a letter",
                            {name: sum(c.values()) for name, c in counts.items()}))
    rounding = rounding_table(designs, counts, results)
    if rounding:
        print(f"\nfloat64's wrong occurrences against the same weights in exact arithmetic\n\n{rounding}")

    if args.fit_report:
        fit_words, totals = fit_mismatches(args.fit_report, list(sets))
        _, fit_results = evaluator.run(sorted(set().union(*fit_words.values())))
        print(f"\nof the fitted tokenizer's wrong occurrences but ties ({args.fit_report}): those each design gets "
              f"wrong too (the 99.99% allowance from each set's word occurrences, {sum(totals.values())} in all)\n")
        print(occurrences_table(designs, fit_words, fit_results, "fit's wrong (no ties)", totals))

    if args.examples:
        print("\nmost frequent wrong words (BPE / design) and ties (BPE's segmentation)")
        pieces = evaluator.source.pieces
        for d in designs:
            print(f"\n{d.name}")
            for set_name, c in counts.items():
                for kind, verdict in (("wrong", WRONG), ("ties", TIE)):
                    top = sorted(((k, w) for w, k in c.items() if results[d.name][w][0] == verdict), reverse=True)
                    listed = [f"`{shown([w])}` {k}× {shown([pieces[i] for i in labels[w]])}"
                              + (f" / {shown([pieces[i] for i in results[d.name][w][1]])}"
                                 if verdict == WRONG else "") for k, w in top[:args.examples]]
                    if listed:
                        print(f"- {set_name}, {kind}: " + "; ".join(listed))


if __name__ == "__main__":
    main()
