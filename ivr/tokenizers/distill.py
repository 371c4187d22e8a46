"""Distil GPT-2's BPE into a Unigram model with the same pieces at the same ids and the same segmentations.

Method, in four steps:

1. Words: the corpus's distinct byte-level pre-tokens (weighted by count), every vocabulary piece on its
   own and simple variants of it (leading space toggled, capitalised), digit strings of up to four digits,
   plus an optional word list file.
   Labels are BPE's own segmentations of each word.
2. Initial scores: merge ``rank`` weighs ``(rank + 1) ** -exponent`` and a piece scores the sum of the weights
   in its merge tree, so early merges dominate as they do in BPE and every piece beats its own halves.
3. Cutting planes over the merge weights: every word the current Unigram Viterbi (the ``tokenizers`` one, on
   the scores as they will be written) gets wrong adds the row "BPE's segmentation beats this one by a
   margin" (a fraction of the smallest weight at stake, since late merges weigh ~1e-13); a linear program over all rows so far finds the smallest relative change of the merge weights
   that meets them (cheap on merges few words use, wordfreq's most frequent English words counted as users
   too; a fit word is given up where keeping it would cost more than ``slack_penalty`` times its count, a
   vocabulary piece never). Fitting merge weights rather than free piece scores keeps scores merge-tree
   sums, which is what carries the fit to words it never saw. Rounds are bounded in number and time; the
   round with the fewest weighted mismatches is kept, and a last phase-one program proves which of the words
   still wrong cannot be matched together with the others.
4. Written scores: the merge-tree sums themselves (0 for a single byte, up to about 1.1; higher wins), not
   log-probabilities. Shifting them to look like ones (``score - c * len(piece)``, the same Viterbi in exact
   arithmetic) multiplies every sum's magnitude about tenfold, and the weights of late merges (~3e-16 at
   the default exponent) then drown in float rounding.

Ties (the same pieces in another order, mostly runs of one character) cannot be broken by any scores: HF
Unigram keeps the longest last piece while BPE puts its long chunks first. They are handled by split rules
derived from BPE's chunking of pure runs, spliced into GPT-2's own pre-tokenizer regex (one regex pass per
text, as for BPE), accepted per character only when they fix enough fit words and break none. The saved
tokenizer runs that regex rewritten for byte-level text behind the ``ByteLevel`` normalizer
(``byte_level_regex``), which cuts the same pre-tokens for fewer instructions than mapping each pre-token.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import math
import string
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import tokenizers
from tokenizers import Regex, Tokenizer, normalizers, pre_tokenizers
from tokenizers.models import Unigram
from tqdm import tqdm

from ivr.general_english import most_frequent_english
from ivr.peak_memory import PeakRSS
from ivr.tokenizers.bpe import gpt2_merges
from ivr.tokenizers.byte_level import (
    EOS_ID,
    EOS_TOKEN,
    GPT2_VOCAB_SIZE,
    bytes_to_piece,
    piece_to_bytes,
    readable,
    text_to_piece,
)
from ivr.tokenizers.byte_level_regex import byte_level_regex
from ivr.tokenizers.io import byte_level_tokenizer, load_tokenizer, save_tokenizer_dir
from ivr.tokenizers.word_rules import CLASS_RX, gpt2_class, rx, word_rule_pattern, word_segments

log = logging.getLogger(__name__)

# LP unknowns are in units of 1e-12 so that the solver's absolute tolerances sit far below the score gaps
LP_UNIT = 1e-12
EOS_SCORE = -1000.0
# slack cost of a word that must not be given up: far above any change of merge weights the fit could need
STRICT_PENALTY = 1e8
MARGIN_RAISE, MAX_MARGIN_RAISES = 4.0, 3


@dataclass
class DistillSettings:
    """Knobs of tokenizer distillation (``data.distill.*``)."""

    strict: bool = False
    """Fail when any corpus word occurrence (ties included) gets ids other than BPE's."""
    init_exponent: float = 3.3
    """Initial weight of merge ``rank`` is ``(rank + 1) ** -init_exponent``; a piece scores the sum over its tree.
    Steeper is closer to BPE's merge order; past about 3.3 late merges weigh less than float64 resolves."""
    max_iterations: int = 40
    """Most fitting rounds (each: one Viterbi pass over all words, then one linear program over the rows)."""
    max_seconds: float = 120.0
    """Stop starting fitting rounds after this many seconds of score fitting (the best round is kept)."""
    margin: float = 0.05
    """How much BPE's segmentation must beat each collected competitor, as a fraction of the smallest initial
    weight among the merges the two segmentations use differently (a fixed margin would outweigh late merges,
    whose weights are tiny, and force large changes on them)."""
    slack_penalty: float = 300.0
    """Cost of giving up one word occurrence by 1e-12 of score, against changing by 100% the weight of a
    merge that one fit word uses (changes cost more on merges many words use). Lower gives up more fit words
    to word rules and breaks fewer unseen ones. Vocabulary pieces are never given up (``STRICT_PENALTY``):
    a piece that does not encode to itself breaks every text that holds it."""
    vocab_words: bool = True
    """Fit on every vocabulary piece as a word of its own."""
    vocab_variants: bool = True
    """Also fit on each ASCII-alphabetic piece with its leading space toggled and with a capital first letter."""
    number_words: int = 4
    """Also fit on every digit string of up to this many digits, with and without a leading space (BPE's
    digit merges are erratic and numbers are everywhere; 5 digits adds provable conflicts, not accuracy)."""
    general_usage_words: int = 50000
    """How many of ``wordfreq``'s most frequent English words (with and without a leading space) count, in the
    fit's cost of changing a merge, as users of the merges their BPE pieces are built from: a merge that many
    general words use costs more to change, so a fit on code breaks fewer words of prose it never sees. They add
    no constraints (0: none)."""
    word_list: Path | None = None
    """Optional UTF-8 file with one word per line, optionally ``word<TAB>count``, for text beyond the corpus.
    Each word is fitted with and without a leading space, weighted by its count (1 when none is given)."""
    split_rules: bool = True
    """Splice rules into GPT-2's pre-tokenizer regex that cut runs of one character into BPE's chunks (ties)."""
    max_run: int = 128
    """Longest run of one character on which a candidate split rule must reproduce BPE exactly."""
    split_rule_min_fixed: float = 10.0
    """A split rule is kept only if it fixes at least this many weighted fit word occurrences (rules cost speed)."""
    split_rule_chars: str = "-=*#~_/^+.<>|\")]" + string.digits + string.ascii_letters + "─═…—–•·█░▬★"
    """Characters whose runs get a split rule whatever the fit corpus holds (if it breaks no fit word): rulers,
    underlines and markers (``-=*#~_/^+.<>|``), quotes and closing brackets (``\"""'``, ``")))``), placeholder
    or hex runs of letters and digits (``NNN``, ``ffff``, ``0000``), and the box drawings, dashes, dots and
    blocks of GPT-2's merges of a multi-byte character with itself (``────``, ``……``) are common in any
    text. Letter, digit and multi-byte rules take under 1 s each to build; ASCII punctuation up to 6 s."""
    word_rules: int = 1000
    """At most this many of the fit words that scores and split rules leave wrong (most frequent first) get a
    word rule: regex alternatives that cut exactly that whole pre-token at BPE's token boundaries (``0477``,
    `` '(')``; 0: none). Each costs a little encoding speed, on text starting with its characters only."""
    random_id_sequences: int = 2000
    """How many random id sequences verification decodes with both tokenizers."""
    examples: int = 20
    """How many of the most frequent mismatches the report lists per kind."""
    seed: int = 0
    """Seed for the random id sequences."""


@dataclass
class FitResult:
    """Scores for the 50257 pieces (GPT-2 ids) and what the fit saw."""

    scores: list[float]
    split_rules: list[dict]
    word_rules: list[list[str]] = field(default_factory=list)
    """BPE's pieces of each word cut by a word rule, most frequent first."""
    stats: dict = field(default_factory=dict)


def gpt2_pieces(bpe: Tokenizer) -> list[str]:
    """The pieces of ``bpe`` in id order; fails unless it has GPT-2's layout."""
    vocab = bpe.get_vocab(with_added_tokens=True)
    if len(vocab) != GPT2_VOCAB_SIZE or vocab.get(EOS_TOKEN) != EOS_ID:
        raise ValueError(f"expected GPT-2's {GPT2_VOCAB_SIZE} pieces with {EOS_TOKEN} at {EOS_ID}, got {len(vocab)}")
    pieces = [""] * len(vocab)
    for piece, i in vocab.items():
        pieces[i] = piece
    return pieces


def bare_model(tok: Tokenizer) -> Tokenizer:
    """``tok``'s model alone, fed byte-level strings (pre-tokens)."""
    spec = json.loads(tok.to_str())
    spec.update(normalizer=None, pre_tokenizer=None, post_processor=None, decoder=None, added_tokens=[])
    return Tokenizer.from_str(json.dumps(spec))


def pre_token_counts(pre_tokenizer: Tokenizer, texts: Iterable[str], desc: str = "pre-tokenizing") -> tuple[Counter, int]:
    """Count byte-level pre-tokens (words) of ``texts``; also returns the number of texts."""
    counts: Counter = Counter()
    n = 0
    for text in tqdm(texts, desc=desc, unit="doc", mininterval=2.0):
        counts.update(w for w, _ in pre_tokenizer.pre_tokenizer.pre_tokenize_str(text))
        n += 1
    return counts, n


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


def merge_weights(n_merges: int, exponent: float) -> np.ndarray:
    """Initial merge weights ``(rank + 1) ** -exponent``: early merges dominate, as they do in BPE."""
    return (np.arange(n_merges, dtype=np.float64) + 1.0) ** -exponent


def initial_scores(pieces: Sequence[str], merges: Sequence[tuple[str, str]], exponent: float) -> np.ndarray:
    """Merge-tree scores: a piece's score is the sum of the weights of the merges in its tree."""
    return merge_tree_matrix(pieces, merges) @ merge_weights(len(merges), exponent)


def fit_words(pieces: Sequence[str], corpus_counts: Counter, settings: DistillSettings) -> Counter:
    """The weighted words to fit on: corpus pre-tokens, vocabulary pieces and their variants, a word list."""
    words = Counter(corpus_counts)
    extra: Counter = Counter()
    if settings.vocab_words:
        extra.update(p for i, p in enumerate(pieces) if i != EOS_ID)
    if settings.vocab_variants:
        for i, p in enumerate(pieces):
            core = p[1:] if p.startswith("Ġ") else p
            if i == EOS_ID or not (core.isascii() and core.isalpha()):
                continue
            for variant in {core, "Ġ" + core, core[0].upper() + core[1:], "Ġ" + core[0].upper() + core[1:]}:
                extra[variant] += 1
    for k in range(1, settings.number_words + 1):
        extra.update(p + str(n).zfill(k) for n in range(10**k) for p in ("", "Ġ"))
    for w in extra:  # words met only outside the corpus count once: they must be right, not dominate
        words.setdefault(w, 1)
    if settings.word_list:  # a listed count weighs like a corpus count; the larger of the two is kept
        for w, n in _read_word_list(settings.word_list).items():
            words[w] = max(words.get(w, 0), n)
    return words


def _read_word_list(path: Path) -> Counter:
    """A word list's byte-level words, each with and without a leading space, with their counts (default 1)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read the word list (UTF-8 text, one word per line): {err}") from err
    out: Counter = Counter()
    for lineno, line in enumerate(lines, 1):
        fields = line.split("\t")
        word = fields[0].strip()
        if not word:
            continue
        if " " in word:
            raise ValueError(f"{path}:{lineno}: a word list entry holds a space: {word!r}")
        try:
            count = float(fields[1]) if len(fields) > 1 else 1.0
        except ValueError:
            count = math.nan
        if not (math.isfinite(count) and count > 0):
            raise ValueError(f"{path}:{lineno}: the count after the tab must be a positive number: {fields[1]!r}")
        out[text_to_piece(word)] += count
        out[text_to_piece(" " + word)] += count
    return out


def _read_back(values: np.ndarray) -> np.ndarray:
    """What ``tokenizers`` loads for each of ``values`` once they are written into a ``tokenizer.json``."""
    tok = Tokenizer(Unigram([(str(i), float(v)) for i, v in enumerate(values)], None, False))
    return np.array([v for _, v in json.loads(Tokenizer.from_str(tok.to_str()).to_str())["model"]["vocab"]])


def read_back_stable(scores: Sequence[float], max_ulps: int = 64) -> np.ndarray:
    """``scores``, each moved by the fewest units in the last place that make ``tokenizers`` load it as written.

    Its JSON reader rounds about one number in six off by a unit in the last place (8,249 of the 50,257 fitted
    scores), so a file written from the fitted floats would load other ones, and every load and save would move
    them again; late merges weigh about as little as that (``DistillSettings.init_exponent``).
    """
    want = np.asarray(scores, dtype=np.float64)
    out = want.copy()
    todo = np.flatnonzero(_read_back(out) != out) if len(out) else []
    for k in range(1, max_ulps + 1):
        for direction in (np.inf, -np.inf):
            if not len(todo):
                return out
            moved = want[todo]
            for _ in range(k):
                moved = np.nextafter(moved, direction)
            out[todo] = moved
            todo = todo[_read_back(moved) != moved]
    if len(todo):
        raise RuntimeError(f"{len(todo)} scores read back changed within {max_ulps} units in the last place")
    return out


def unigram_tokenizer(pieces: Sequence[str], scores: Sequence[float]) -> Tokenizer:
    """A bare Unigram tokenizer (no pre-tokenizer) over byte-level strings, for fitting, holding the scores as
    a saved ``tokenizer.json`` loads them (``read_back_stable``)."""
    stable = read_back_stable(scores)
    vocab = [(p, float(s)) for p, s in zip(pieces, stable)]
    vocab[EOS_ID] = (EOS_TOKEN, EOS_SCORE)
    return Tokenizer(Unigram(vocab, None, False))


def _difference(gold: Sequence[int], other: Sequence[int]) -> dict[int, int]:
    d = Counter(gold)
    d.subtract(other)
    return {k: v for k, v in d.items() if v}


def _solve_rows(
    s0: np.ndarray, trees: sp.csr_matrix, w0: np.ndarray, rows: list[dict[int, int]], row_weight: np.ndarray,
    merge_usage: np.ndarray, margin: np.ndarray | float, penalty: np.ndarray | float | None,
) -> tuple[np.ndarray, np.ndarray]:
    """The linear program of one cutting-plane round; returns (merge weight change, slack per row), in ``LP_UNIT``.

    The unknowns are changes ``dw`` of the merge weights (scores stay merge-tree sums ``s0 + trees @ dw``).
    Every row says "BPE's segmentation beats this competitor by ``margin`` times the smallest initial weight of
    the merges they use differently": ``d . s >= margin * w_min`` with a slack ``xi >= 0``. ``margin`` and
    ``penalty`` are one for all rows or one per row. With a ``penalty`` the objective is
    ``sum usage * |dw| / w0 + sum penalty * weight * xi``: relative changes, cheapest on merges few fit (and general) words use, and a word is only given up where
    keeping it would cost more. Weights never drop below half their initial value, so every piece keeps
    beating its own halves.
    With ``penalty=None`` only the weighted slack is minimised (a phase-one program: its optimum is above zero
    exactly when no merge weights satisfy all rows at once).
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
        cost = np.concatenate([change_cost, change_cost, penalty * row_weight])
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
    general: Sequence[Sequence[int]] = (), strict: np.ndarray | None = None,
) -> tuple[np.ndarray, dict, list[str]]:
    """Fit the 50257 scores so that the Unigram Viterbi gives ``gold`` on ``words``; returns the scores, fit
    statistics and the words proven unsatisfiable (most frequent first).

    Cutting planes: each round encodes all words with the real ``tokenizers`` Unigram; every wrong word adds
    the row "BPE's segmentation beats this competitor by ``margin``"; a linear program over all rows collected
    so far finds the cheapest change of the merge weights that meets them (``_solve_rows``). Rounds stop
    when no new row appears, or after ``max_iterations`` rounds / ``max_seconds``; the round with the fewest
    weighted non-tie mismatches is kept. A last phase-one program over all rows tells which of the words still
    wrong are given up because their rows cannot hold together with the rest. ``general`` holds the BPE ids of
    words that only make the merges they use costlier to change (``settings.general_usage_words``); ``strict``
    marks the words that are never given up (``STRICT_PENALTY`` instead of ``settings.slack_penalty``).
    """
    start = time.perf_counter()
    trees = merge_tree_matrix(pieces, gpt2_merges())
    w0 = merge_weights(trees.shape[1], settings.init_exponent) / LP_UNIT
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
        pred = [e.ids for e in unigram_tokenizer(pieces, (s0 + trees @ dw) * LP_UNIT).encode_batch(words)]
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
        if not new or elapsed > settings.max_seconds:
            break
        try:
            row_penalty = penalty if strict is None else penalty[row_word]
            margin = settings.margin * MARGIN_RAISE ** np.array(raised, dtype=np.float64)
            dw, slack = _solve_rows(s0, trees, w0, rows, weights[row_word], merge_usage, margin, row_penalty)
        except RuntimeError as err:  # numerical trouble: keep the best round so far rather than lose the stage
            log.warning("%s; keeping round %d", err, best[2])
            history[-1]["linear_program_failed"] = str(err)
            break
    given_up: list[str] = []
    if best[3]:
        try:
            _, slack = _solve_rows(s0, trees, w0, rows, weights[row_word], merge_usage, settings.margin, None)
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
    scores[EOS_ID] = EOS_SCORE
    return scores, stats, given_up


# --- split rules for runs of one character ---

# where the pre-token a run of letters, digits or newlines ends: GPT-2's class of the run's character no longer
# continues it (punctuation and quote runs end where BPE keeps them apart from what follows: ``_run_end``)
RUN_END = {
    "letter": r"(?!\p{L})",
    "digit": r"(?!\p{N})",
    # whitespace: ``\s+(?!\S)`` leaves the last white character of a run before a word to the word; the run
    # is also cut where more ASCII white space follows in its pre-token, or one white character ends the text
    # (nothing merges a newline with it)
    "newline": r"(?:[\x{09}-\x{0D}\x{20}](?=\S)|[\x{09}-\x{0D}\x{20}]?\z|(?=[\x{09}\x{0B}-\x{0D}\x{20}][\x{09}-\x{0D}\x{20}]))",
}


def _units(piece: str, char: str) -> int | None:
    """How many times ``char`` (one character's byte-level piece) makes up ``piece``; None if it does not."""
    k = len(piece) // len(char)
    return k if piece == char * k else None


def _run_chunks(bare_bpe: Tokenizer, char: str, max_run: int) -> list[list[int]] | None:
    """BPE's chunk lengths, in characters, for runs of ``char`` of length 0..max_run (index = run length);
    None when BPE cuts a multi-byte character apart somewhere (no regex can cut there)."""
    encs = bare_bpe.encode_batch([char * n for n in range(1, max_run + 1)])
    chunks = [[_units(t, char) for t in e.tokens] for e in encs]
    return None if any(None in ch for ch in chunks) else [[]] + chunks


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def _repeat(c: str, lo: int, hi: int) -> str:
    if hi == lo:
        return f"{c}{{{lo}}}" if lo != 1 else c
    return f"{c}{{{lo},{hi}}}"


def _char_class(raw: str) -> str | None:
    if raw == "\n":
        return "newline"
    if raw == "'":
        return "quote"
    return gpt2_class(raw)


CONTRACTION = "'(?:s|t|re|ve|m|ll|d)"
# how far from a cut what follows a run is still asked about: the neighbour's continuations up to SHORT_RUN,
# the neighbour itself up to MEDIUM_RUN (BPE pairs a run from its left end: beyond that the end cannot move a
# cut at its start; checked on random strings by benchmarks/split_rule_exactness.py)
SHORT_RUN = 4
MEDIUM_RUN = 16
ASCII_PUNCT = "".join(chr(i) for i in range(33, 127) if not chr(i).isalnum())


def _decoded(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _one_character(piece: str) -> bool:
    return len(_decoded(piece_to_bytes(piece)) or "") == 1


def _punctuation(piece: str) -> bool:
    """Whether the byte-level ``piece`` is non-empty ASCII punctuation (it can continue a punctuation pre-token);
    byte-level pieces write these bytes as themselves."""
    return bool(piece) and all(ch in ASCII_PUNCT for ch in piece)


def _raw(piece: str) -> str:
    """The text of an ASCII byte-level piece."""
    return piece_to_bytes(piece).decode("latin-1")


def _piece(raw: str) -> str:
    return bytes_to_piece(raw.encode("utf-8"))


def _run_end(c: str, merging: Sequence[str], blocked: str, quote: bool = False) -> str:
    """Lookahead for the end of a punctuation run: not before ``c`` itself, a neighbour or a neighbour with what
    follows it in ``merging``, a non-ASCII character in the class ``blocked`` or a contraction (for a run of
    quotes, the letters that would make its last quote one)."""
    longer = "".join(f"{''.join(rx(ch) for ch in m)}|" for m in merging if len(m) > 1)
    contraction = CONTRACTION[1:] if quote else CONTRACTION
    return (f"(?![{c}{''.join(rx(r) for r in merging if len(r) == 1)}]|{longer}"
            f"{f'[{blocked}]|' if blocked else ''}{contraction})")


def _classrx(code_points: Iterable[int]) -> str:
    """The body of a regex character class holding ``code_points``, as ranges."""
    spans = _ranges(list(set(code_points)))
    return "".join(rx(chr(lo)) if lo == hi else f"{rx(chr(lo))}-{rx(chr(hi))}" for lo, hi in spans)


def _utf8_prefix_range(prefix: bytes) -> tuple[int, int] | None:
    """The code points whose UTF-8 encoding starts with ``prefix`` (the first bytes of one character)."""
    lead = prefix[0]
    n = 2 if 0xC2 <= lead <= 0xDF else 3 if 0xE0 <= lead <= 0xEF else 4 if 0xF0 <= lead <= 0xF4 else 0
    if len(prefix) >= n:
        return None
    # the second byte's range is narrower after these leads (no overlong forms, surrogates, or beyond U+10FFFF)
    lo, hi = {0xE0: (0xA0, 0xBF), 0xED: (0x80, 0x9F), 0xF0: (0x90, 0xBF), 0xF4: (0x80, 0x8F)}.get(lead, (0x80, 0xBF))
    low, high = (bytes([lo]), bytes([hi])) if len(prefix) == 1 else (b"", b"")
    pad = n - len(prefix) - len(low)
    first, last = _decoded(prefix + low + b"\x80" * pad), _decoded(prefix + high + b"\xbf" * pad)
    return (ord(first), ord(last)) if first and last else None


def _merging_after(char: str, merges: Sequence[tuple[str, str]]) -> list[int]:
    """Non-ASCII code points that BPE may merge with the end of a run of ``char``: the first character of each
    merge's right part whose left part can end such a run (every code point its bytes start, for a partial one).
    Before any other character a cut is exact: no merge can join the run's last token to what follows."""
    out: list[int] = []
    for a, b in merges:
        if not (a.endswith(char) or char.endswith(a)) or (raw := piece_to_bytes(b))[0] < 0x80:
            continue
        first = next((t for k in range(1, 5) if (t := _decoded(raw[:k])) is not None), None)
        span = (ord(first), ord(first)) if first else _utf8_prefix_range(raw)
        if span:
            out.extend(range(span[0], span[1] + 1))
    return out


# non-ASCII punctuation that may stand right before a run in the same pre-token: table corners and joints
# (``┌──┬──┐``), arrows, bullets and dashes (blocks General Punctuation, Arrows, Box Drawing, Block
# Elements and Geometric Shapes)
NON_ASCII_NEIGHBOURS = [chr(i) for lo, hi in ((0x2010, 0x205E), (0x2190, 0x21FF), (0x2500, 0x25FF))
                        for i in range(lo, hi + 1) if unicodedata.category(chr(i))[0] not in "LNZC"]


def _unmerged_before(char: str, merges: Sequence[tuple[str, str]]) -> list[str]:
    """The ``NON_ASCII_NEIGHBOURS`` no merge can join to the start of a run of ``char`` (a cut there is exact)."""
    lefts = {a for a, b in merges if b.startswith(char) or char.startswith(b)}
    return [y for y in NON_ASCII_NEIGHBOURS
            if not any(a.endswith(p) or p.endswith(a) for p in [_piece(y)] for a in lefts)]


def _token_ends(bare_bpe: Tokenizer, texts: Iterable[str]) -> dict[str, set[int]]:
    """Where BPE's tokens of each byte-level text end. A token ends at ``i`` exactly when BPE segments the text
    as its first ``i`` characters and the rest apart: merges only join, so none joined across ``i``, and each
    side then merged as it would alone (in the same order, the lowest rank and leftmost first)."""
    ordered = sorted(set(texts))
    return {t: {end for _, end in e.offsets} for t, e in zip(ordered, bare_bpe.encode_batch(ordered))}


def _cuts_hold(bare_bpe: Tokenizer, cases: dict) -> dict:
    """For each key, whether BPE segments every ``(left, right)`` pair as ``left`` and ``right`` apart."""
    ends = _token_ends(bare_bpe, (a + b for pairs in cases.values() for a, b in pairs))
    return {key: all(len(a) in ends[a + b] for a, b in pairs) for key, pairs in cases.items()}


def _grouped(items: Sequence, key) -> list[tuple]:
    """``items`` grouped by ``key(item)``, as sorted ``(key, items)`` pairs."""
    groups: dict = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return sorted(groups.items())


def _merged_end_cuts(bare_bpe: Tokenizer, char: str, c: str, chunks: list[list[int]], right: Sequence[str],
                     conts: dict[str, list[str]], chunk_ok: dict, whole_ok: dict) -> list[str]:
    """Alternatives for runs whose end BPE merges with the character after them (13 dashes and ``+`` give
    ``------------`` ``-+``): cut off BPE's first chunk there when BPE agrees for the neighbour alone and every
    token-completing continuation in ``conts``. What follows the neighbour decides more often here (``((``
    ``'.`` but ``(`` ``('``), so BPE is also asked for each ASCII punctuation character after the neighbour, and
    those it disagrees on (more of the run among them: three double quotes and ``'`` give ``""`` ``"'``, but three and ``'"`` give
    the three and ``'"``) are excluded by a
    negative lookahead."""
    blocked = [(n, r) for n in range(2, len(chunks)) for r in right
               if not (whole_ok[(n, r, "")] if len(chunks[n]) == 1 else chunk_ok[("", chunks[n][0], n - chunks[n][0], r, "")])]
    after = [_piece(p) for p in ASCII_PUNCT]
    heads = {(n, r): e.tokens[0] for (n, r), e in zip(blocked, bare_bpe.encode_batch(
        [char * n + _piece(r) for n, r in blocked]))}
    cands = {key: a for key, h in heads.items() if (a := _units(h, char)) and a < key[0]}
    ends = _token_ends(bare_bpe, (char * n + _piece(r) + e for (n, r) in cands for e in [*conts[r], *after]))

    def holds(n: int, r: str, a: int, e: str) -> bool:
        return len(char) * a in ends[char * n + _piece(r) + e]

    cuts = []
    for (n, r), a in cands.items():
        if holds(n, r, a, ""):
            bad = tuple(_raw(e) for e in sorted({*after, *conts[r][1:]}) if not holds(n, r, a, e))
            cuts.append((a, n - a, bad, r))
    alts = []
    for (a, k, bad), group in _grouped(cuts, lambda cut: cut[:3]):
        rs = "".join(rx(r) for *_, r in group)
        singles = "".join(rx(p) for p in bad if len(p) == 1)
        longer = [''.join(rx(ch) for ch in p) for p in bad if len(p) > 1]
        not_after = f"(?!{'|'.join(([f'[{singles}]'] if singles else []) + longer)})" if bad else ""
        alts.append(f"{_repeat(c, a - 1, a - 1) if a > 1 else ''}(?={_repeat(c, k, k)}[{rs}]{not_after})")
    return alts


def split_rule_for(bare_bpe: Tokenizer, char: str, max_run: int) -> dict | None:
    """Regex alternatives cutting runs of ``char`` that start a pre-token into BPE's chunks, or None.

    BPE chunks a run of length n as [a(n)] + chunks(n - a(n)) (checked here, else no rule). The alternatives
    are spliced into GPT-2's pre-tokenizer regex ahead of the class the character belongs to, so they are only
    tried where a pre-token starts (one regex pass per text, no lookbehind): at the start of a run of n they
    match the first chunk ``c{a(n)}``; the rest of the run then starts the next pre-token and is cut the same
    way. A cut is only made where BPE does not merge across it: a punctuation run must end before a character
    that BPE, asked for each run length, keeps apart from the run (``-+`` merges after some lengths of ``-``
    and not others); letters, digits and quotes must end their pre-token. Punctuation runs later in a
    punctuation pre-token (``+----``) are reached by a ``prefix`` alternative that cuts off what comes before
    the run, for the run lengths at which BPE keeps the character before the run apart from it. Next to non-ASCII
    punctuation (``NON_ASCII_NEIGHBOURS`` before, anything after) the merge list decides instead, for all run
    lengths at once: a cut is made where no merge can join the two sides. A multi-byte character (``─``) gets
    a rule where BPE chunks its runs on character boundaries.
    A run after a space gets ``after_space`` alternatives: BPE's first chunk there is the space with ``a``
    characters of the run (``a`` may be 0), the rest is chunked like a pure run. Anything else (run lengths
    where BPE does not chunk this way, runs longer than ``max_run``) is left to GPT-2's own alternatives.
    """
    raw = _decoded(piece_to_bytes(char)) or ""
    kind = _char_class(raw) if len(raw) == 1 else None
    chunks = _run_chunks(bare_bpe, char, max_run) if kind else None
    if chunks is None:
        return None
    rests: dict[int, list[int]] = {}
    whole: list[int] = []
    for n, ch in enumerate(chunks):
        if len(ch) > 1:
            if ch[1:] != chunks[n - ch[0]]:
                return None
            rests.setdefault(ch[0], []).append(n - ch[0])
        elif n >= 2:
            whole.append(n)
    if not rests:
        return None
    # a run after a space: BPE's first chunk takes the space and ``a`` characters (``a`` may be 0; the chunk may
    # be more than one token, as " ─" is "ĠâĶ" "Ģ"), the rest of the run is chunked like a pure run; lengths where
    # that does not hold are left to GPT-2's alternatives
    led_rests: dict[int, list[int]] = {}
    for n, enc in enumerate(bare_bpe.encode_batch(["Ġ" + char * n for n in range(1, max_run + 1)]), 1):
        heads = ["".join(enc.tokens[: j + 1]) for j in range(len(enc.tokens))]
        j, a = next(((j, a) for j, h in enumerate(heads) if (a := _units(h[1:], char)) is not None), (0, None))
        if a is not None and a < n and enc.tokens[j + 1 :] == [char * k for k in chunks[n - a]]:
            led_rests.setdefault(a, []).append(n - a)
    c = rx(raw)
    merges = gpt2_merges()
    ascii_chars = lambda chars: sorted(  # noqa: E731
        {piece_to_bytes(ch).decode("latin-1") for ch in chars} & set(ASCII_PUNCT + " \t\n")
    )
    # which neighbours BPE never merges across a cut is asked of BPE itself, per run length
    # for a multi-byte character, also merges that take only its last bytes (or, on the left, its first bytes)
    ends = [char[k:] for k in range(len(char))]
    starts = [char[:k] for k in range(1, len(char) + 1)]
    right = ascii_chars({b[0] for a, b in merges if a.endswith(tuple(ends)) and not b.startswith(char)}) \
        if kind in ("punct", "quote") else []
    # what may follow a neighbour in a punctuation pre-token: more of the run, and the rest of every token that
    # starts with the neighbour (``=\\"`` after a run of ``=``; ``://`` keeps ``))`` whole before ``:``)
    punct_tokens = [t for t in bare_bpe.get_vocab() if _punctuation(t)] if right else []
    rp = {r: _piece(r) for r in right}
    conts = {r: ["", char, char * 2, char * 3] + sorted({t[len(p):] for t in punct_tokens if t.startswith(p) and t != p})
             for r, p in rp.items()}
    # BPE is asked about what follows a neighbour only where the neighbour alone keeps the cut
    cuts_in_runs = [(lead, a, k) for lead, by_a in (("", rests), ("Ġ", led_rests)) for a, ks in by_a.items() for k in ks]
    chunk_ok = _cuts_hold(bare_bpe, {(lead, a, k, r, ""): [(lead + char * a, char * k + rp[r])]
                                     for lead, a, k in cuts_in_runs for r in right})
    chunk_ok |= _cuts_hold(bare_bpe, {(lead, a, k, r, e): [(lead + char * a, char * k + rp[r] + e)]
                                      for lead, a, k in cuts_in_runs for r in right if chunk_ok[(lead, a, k, r, "")]
                                      for e in (conts[r][1:] if k <= SHORT_RUN else [])})
    whole_ok = _cuts_hold(bare_bpe, {(n, r, ""): [(char * n, rp[r])] for n in whole for r in right})
    whole_ok |= _cuts_hold(bare_bpe, {(n, r, e): [(char * n, rp[r] + e)] for n in whole for r in right
                                      if whole_ok[(n, r, "")] for e in conts[r][1:]})

    def merging(ok: dict, key: tuple) -> tuple[str, ...]:
        """What may not follow a run cut as ``key`` says: each neighbour BPE merges with the run's end, and for
        the other neighbours, each continuation after which BPE does."""
        out: list[str] = []
        for r in right:
            # continuations are only asked about after short rests: far from the cut they cannot move it
            out += [r] if not ok[(*key, r, "")] else [r + _raw(e) for e in conts[r][1:] if not ok.get((*key, r, e), True)]
        return tuple(out)

    blocked = _classrx(_merging_after(char, merges)) if kind in ("punct", "quote") else ""

    def end(not_after: Sequence[str]) -> str:
        return _run_end(c, not_after, blocked, kind == "quote") if kind in ("punct", "quote") else RUN_END[kind]

    def first_chunks(lead: str, firsts: dict[int, list[int]], skip: int) -> list[str]:
        """Alternatives matching a run's first chunk (``skip`` characters of it already matched)."""
        alts = []
        for a in sorted(firsts, reverse=True):
            for not_after, ks in _grouped(firsts[a], lambda k: merging(chunk_ok, (lead, a, k))):
                rest = "|".join(_repeat(c, lo, hi) for lo, hi in _ranges(ks))
                alts.append(f"{_repeat(c, a - skip, a - skip) if a > skip else ''}(?=(?:{rest}){end(not_after)})")
        return alts

    alts = first_chunks("", rests, 1)
    if kind in ("punct", "quote") and whole:  # a whole-chunk run followed by more punctuation is cut off as it is
        for not_after, ns in _grouped(whole, lambda n: merging(whole_ok, (n,))):
            alts.append(f"(?:{'|'.join(_repeat(c, lo - 1, hi - 1) for lo, hi in _ranges(ns))}){end(not_after)}")
    if kind in ("punct", "quote"):
        alts += _merged_end_cuts(bare_bpe, char, c, chunks, right, conts, chunk_ok, whole_ok)
    prefix = None
    if kind in ("punct", "quote"):
        left = ascii_chars({a[-1] for a, b in merges if b.startswith(tuple(starts)) and not a.endswith(char)})
        # what follows the run: nothing, a neighbour, or for short runs a neighbour that a longer token takes
        # (``.`` ``:`` ``://`` but ``.:`` ``://``); in a long run BPE settles the start before the end matters
        tails = [""] + [rp[r] for r in right]
        short_tails = tails + [rp[r] + e for r in right for e in conts[r][4:]]
        # what may stand before the neighbour: the start of every token a merge builds from it and the run (``":[``)
        joining = [a for a, b in merges if b.startswith(tuple(starts))]
        pres = {p: ["", "Ġ"] + sorted({a[:-1] for a in joining if a.endswith(q) and _punctuation(a[:-1].lstrip("Ġ"))}
                                      - {"", "Ġ"}) for p in left for q in [_piece(p)]}
        after_run = {n: short_tails if n <= SHORT_RUN else tails if n <= MEDIUM_RUN else [""]
                     for n in range(2, max_run + 1)}
        # BPE is asked about the rest only where the run cuts off after ``p`` alone and after a space and ``p``
        left_ok = _cuts_hold(bare_bpe, {(p, n, pre, ""): [(pre + _piece(p), char * n)]
                                        for p in left for n in after_run for pre in ("", "Ġ")})
        open_cuts = [(p, n) for p in left for n in after_run if left_ok[(p, n, "", "")] and left_ok[(p, n, "Ġ", "")]]
        left_ok |= _cuts_hold(bare_bpe, {(p, n, pre, t): [(pre + _piece(p), char * n + t)] for p, n in open_cuts
                                         for pre in pres[p] for t in after_run[n] if pre not in ("", "Ġ") or t})
        # a cut before the run after ``p`` is refused where what stands before ``p`` changes BPE's mind
        # (``'`` ``""`` ``"'`` but ``.'"`` ``""``), by a lookbehind
        not_before = {p: tuple(pre for pre in pres[p][2:] if not all(left_ok[(p, n, pre, t)] for q, n in open_cuts
                                                                     if q == p for t in after_run[n])) for p in left}

        def not_after(p: str, n: int) -> tuple[str, ...] | None:
            """What may not follow a run of ``n`` for a cut before it after ``p`` (None: no cut at all)."""
            if p not in left:
                return ()
            kept = [pre for pre in pres[p] if pre not in not_before[p]]
            if not all(left_ok[(p, n, pre, "")] for pre in kept):
                return None
            return tuple(_raw(t) for t in after_run[n][1:] if not all(left_ok[(p, n, pre, t)] for pre in kept))

        cuts = {p: {n: ex for n in after_run if (ex := not_after(p, n)) is not None} for p in ASCII_PUNCT if p != raw}
        cuts.update({y: dict.fromkeys(after_run, ()) for y in _unmerged_before(char, merges) if y != raw})

        def lookaround(p: str) -> tuple[str, str]:
            behind = "|".join("".join(rx(ch) for ch in _raw(pre)) for pre in not_before.get(p, ()))
            ahead = "|".join(f"(?:{'|'.join(_repeat(c, lo, hi) for lo, hi in _ranges([n for n, _ in ns]))}){end(ex)}"
                             for ex, ns in _grouped(list(cuts[p].items()), lambda item: item[1]))
            return f"(?<!{behind})" if behind else "", ahead

        groups = _grouped([p for p in cuts if cuts[p]], lookaround)
        prefix = "|".join(f"{behind}[{_classrx(ord(p) for p in ps)}](?={ahead})" for (behind, ahead), ps in groups) or None
    led = first_chunks("Ġ", led_rests, 0) if kind != "newline" else []  # GPT-2 keeps spaces with newlines
    return {"char": char, "class": kind, "pattern": f"{c}(?:{'|'.join(alts)})", "prefix": prefix,
            "after_space": f"(?:{'|'.join(led)})" if led else None}


def split_pattern(rules: Sequence[dict], word_rules: Sequence[Sequence[str]] = ()) -> str:
    """GPT-2's pre-tokenizer regex with the rules' alternatives ahead of the class each rule cuts.

    Every alternative of a rule's ``pattern`` and ``after_space`` starts with two of its characters (after a
    space for the latter), so each class's rules sit behind one lookahead for a doubled rule character: a
    position where no rule applies (nearly every word start) costs a character comparison or two, not one test
    per rule. Every alternative of a class, word rules included, needs two characters of the class after GPT-2's
    optional space (but a word rule's one-character final quote), so a pre-token of one character (most
    punctuation of code: ``(``, ``,``, ``.``) skips all of them with one failed test. The ``word_rules`` (BPE
    pieces of whole words, ``word_rules.word_rule_pattern``) come first in their class, behind a lookahead of
    their own: they only match inside their own word.
    """

    def chars(members: list[dict]) -> str:
        return "".join(rx(piece_to_bytes(r["char"]).decode("utf-8")) for r in members)

    def group(members: list[dict], words: tuple[str, str] | None) -> str:
        # the word rules come first since they only match inside their own word; their guards (a word's first
        # characters) and the split rules' (a doubled rule character, after a space or not) stay two lookaheads:
        # one lookahead on both took 1.7% more instructions to encode (benchmarks/encode_instructions.py)
        out = words[0] + "|" if words else ""
        plain = [r["pattern"] for r in members if r.get("pattern")]
        spaced = [r["after_space"] for r in members if r.get("after_space")]
        if plain or spaced:
            lead = r"\x{20}?+" if spaced else ""
            alts = plain + ([f"\\x{{20}}(?:{'|'.join(spaced)})"] if spaced else [])
            out += f"(?={lead}{doubled(members)})(?:{'|'.join(alts)})|"
        return out

    def doubled(members: list[dict]) -> str:
        # one character doubled is a literal (the newline rule: 0.4% fewer instructions); of several, a
        # backreference to the one just seen. Every capture group costs every regex search, so the digits, whose
        # few multi-digit pre-tokens may as well try their ten rules, take two of any rule digit (4.6M fewer
        # encode instructions; for letters and punctuation the wider test costs more than the group)
        if len({r["char"] for r in members}) == 1:
            return chars(members[:1]) * 2
        if members[0]["class"] == "digit":
            return f"[{chars(members)}]" * 2
        name = f"g{len(names)}"
        names.append(name)
        return f"(?<{name}>[{chars(members)}])\\k<{name}>"

    names: list[str] = []
    words = word_rule_pattern(word_rules)
    classes = {"letter": ("letter",), "digit": ("digit",), "punct": ("punct", "quote"), "space": ("newline",)}
    by = {k: group([r for r in rules if r["class"] in ks], words.get(k)) for k, ks in classes.items()}
    # a prefix alternative is one character and then a run of its rule's character: the same doubled-character
    # lookahead, one position on, keeps the lazy scan over a punctuation pre-token at one test per position, and
    # the scan is skipped for the one- and two-character punctuation of code (it needs three: p and a run). Inside
    # a run (p the run's character) no prefix alternative can match: one backreference skips them all
    with_prefix = [r for r in rules if r.get("prefix")]
    if with_prefix:
        by["punct"] += (r"(?=\x{20}?+[^\s\p{L}\p{N}]{3}) ?[^\s\p{L}\p{N}]*?"
                        + f"(?=.(?<q>[{chars(with_prefix)}])\\k<q>)(?!\\k<q>)(?:"
                        + "|".join(r["prefix"] for r in with_prefix) + ")|")
    # letters first: most pre-tokens are words, and no letter alternative can match where a contraction starts,
    # so trying them before the contractions changes no match (encoding measured about 1.5% faster). The rules of
    # punctuation cannot match there either, except a word rule's final quote, which must take precedence: cut off
    # from its word, it must not join the letters after it (a contraction in "!).'''s"). Digits, which no other
    # alternative matches, come after punctuation, four times as common in the benchmark's sample
    # a lookahead for two characters of the class (or a space and one) keeps the other classes (and white space:
    # indentation, newlines) and the class's one-character pre-tokens (87% of punctuation pre-tokens in the
    # benchmark's sample) from walking through each of its rules' lookaheads
    def behind(cls: str, alts: str) -> str:
        single = words[cls][1] if cls in words else ""
        test = rf"[\x{{20}}{CLASS_RX[cls]}]{CLASS_RX[cls]}" + (f"|{single}" if single else "")
        return f"(?={test})(?:{alts[:-1]})|" if alts else ""

    return (
        behind("letter", by["letter"]) + r" ?\p{L}+|" + behind("punct", by["punct"]) + CONTRACTION + "|"
        + r" ?[^\s\p{L}\p{N}]+|" + behind("digit", by["digit"]) + r" ?\p{N}+|" + by["space"] + r"\s+(?!\S)|\s+"
    )


def rules_pre_tokenizer(rules: Sequence[dict], word_rules: Sequence[Sequence[str]] = ()):
    """GPT-2's byte-level pre-tokenizer, with the split and word rules spliced into its regex when there are any.

    This form reads text, as the rules are written; the saved tokenizer runs the same regex in byte-level form
    (``with_rules``), which cuts the same pre-tokens for fewer instructions."""
    if not rules and not word_rules:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern(rules, word_rules)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def with_rules(model_tok: Tokenizer, rules: Sequence[dict], word_rules: Sequence[Sequence[str]] = ()) -> Tokenizer:
    """The full tokenizer: ``model_tok``'s model behind GPT-2's pre-tokenizer carrying the split and word rules.

    The ``ByteLevel`` normalizer maps the whole text to byte-level characters at once and one ``Split`` cuts it
    with ``split_pattern`` rewritten for that alphabet (``byte_level_regex``): the pre-tokens of
    ``rules_pre_tokenizer``, without the copies that mapping each pre-token on its own makes."""
    tok = byte_level_tokenizer(model_tok.model)
    tok.normalizer = normalizers.ByteLevel()
    pattern = byte_level_regex(split_pattern(rules, word_rules))
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    return tok


def segment_words(rules: Sequence[dict], words: Sequence[str], word_rules: Sequence[Sequence[str]] = ()) -> list[list[str]]:
    """Each byte-level word as the rules cut it on its own (a word GPT-2 would pre-tokenize further stays whole)."""
    if not rules and not word_rules:
        return [[w] for w in words]
    plain, cut = rules_pre_tokenizer([]), rules_pre_tokenizer(rules, word_rules)
    chars = {r["char"] * 2 for r in rules}
    listed = {"".join(pieces) for pieces in word_rules}
    out = []
    for w in words:
        segs = [w]
        if w in listed or any(c in w for c in chars):
            try:
                text = piece_to_bytes(w).decode("utf-8")
            except UnicodeDecodeError:
                text = None
            if text is not None and [p for p, _ in plain.pre_tokenize_str(text)] == [w]:
                segs = [p for p, _ in cut.pre_tokenize_str(text)]
        out.append(segs)
    return out


def encode_segments(model_tok: Tokenizer, segments: Sequence[Sequence[str]]) -> list[list[int]]:
    """Model-only ids of each segmented word: its segments encoded on their own, concatenated."""
    flat = sorted({s for segs in segments for s in segs})
    ids = dict(zip(flat, (e.ids for e in model_tok.encode_batch(flat))))
    return [[i for s in segs for i in ids[s]] for segs in segments]


# a rule depends only on the BPE model, the character and max_run: each process builds it once (tests and
# repeated fits in one session ask for the same rules, at up to 3 s each)
_RULES: dict[tuple[str, str, int], dict | None] = {}


def _memo_split_rule(bare_bpe: Tokenizer, fingerprint: str, char: str, max_run: int) -> dict | None:
    key = (fingerprint, char, max_run)
    if key not in _RULES:
        _RULES[key] = split_rule_for(bare_bpe, char, max_run)
    rule = _RULES[key]
    return dict(rule) if rule else None


def _words_with_runs(words: Sequence[str], multi: Sequence[str]) -> dict[str, list[int]]:
    """For each byte-level character, and each of the pieces ``multi``, the indices of the words holding it twice
    in a row (one pass over the words instead of one per character)."""
    out: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        for c in {a for a, b in zip(w, w[1:]) if a == b}:
            out.setdefault(c, []).append(i)
        for c in multi:
            if c * 2 in w:
                out.setdefault(c, []).append(i)
    return out


def select_split_rules(
    bare_bpe: Tokenizer, model_tok: Tokenizer, words: list[str], weights: np.ndarray, gold: list[list[int]],
    settings: DistillSettings,
) -> tuple[list[dict], list[dict]]:
    """Candidate rules for each character with a (c, c) merge, kept when they fix enough words and break none.

    Each rule costs encoding speed, so a rule must fix at least ``settings.split_rule_min_fixed`` weighted
    word occurrences of the fit words, unless its character is one of ``settings.split_rule_chars``.
    """
    chars = sorted({a for a, b in gpt2_merges() if a == b and _one_character(a)})
    always = {_piece(c) for c in settings.split_rule_chars}
    plain = [e.ids for e in model_tok.encode_batch(words)]
    accepted, considered = [], []
    wrong = [i for i, (p, g) in enumerate(zip(plain, gold)) if p != g]
    fingerprint = hashlib.sha256(bare_bpe.to_str().encode("utf-8")).hexdigest()
    with_runs = _words_with_runs(words, [c for c in chars if len(c) > 1])
    for char in tqdm(chars, desc="split rules", unit="char", mininterval=2.0):
        # building a rule asks BPE about every run length and neighbour: skip characters with nothing to fix
        needed = 0.0 if char in always else max(settings.split_rule_min_fixed, 1e-9)
        if needed and sum(weights[i] for i in wrong if char * 2 in words[i]) < needed:
            considered.append({"char": char, "accepted": False, "reason": "no wrong fit word has a run of it"})
            continue
        rule = _memo_split_rule(bare_bpe, fingerprint, char, settings.max_run)
        if rule is None:
            considered.append({"char": char, "accepted": False, "reason": "no rule"})
            continue
        idx = with_runs.get(char, [])
        if rule["class"] in ("letter", "digit"):  # these rules end the run with the word: only cut whole runs
            idx = [i for i in idx if _units(words[i].lstrip("Ġ"), char)]
        cut = encode_segments(model_tok, segment_words([rule], [words[i] for i in idx]))
        fixed = [i for i, c in zip(idx, cut) if c == gold[i] and plain[i] != gold[i]]
        broken = sum(1 for i, c in zip(idx, cut) if c != gold[i] and plain[i] == gold[i])
        # pure runs, alone and after a space, whether or not the fit words hold them: the rule's pieces (a space
        # with part of the run, as " ─") must come out of the Unigram as BPE's tokens
        runs = [lead + char * n for n in range(2, settings.max_run + 1) for lead in ("", "Ġ")]
        run_gold = [e.ids for e in bare_bpe.encode_batch(runs)]
        run_plain = [e.ids for e in model_tok.encode_batch(runs)]
        run_cut = encode_segments(model_tok, segment_words([rule], runs))
        broken_runs = sum(1 for p, c, g in zip(run_plain, run_cut, run_gold) if c != g and p == g)
        fixed_occ = float(weights[fixed].sum()) if fixed else 0.0
        enough = bool(fixed) and fixed_occ >= settings.split_rule_min_fixed or char in always
        ok = enough and broken == broken_runs == 0
        considered.append({"char": char, "accepted": ok, "fixed_types": len(fixed), "fixed_occurrences": fixed_occ,
                           "broken_types": broken, "broken_runs": broken_runs})
        if ok:
            accepted.append(rule)
    return accepted, considered


def _wrong_before_contraction(
    model_tok: Tokenizer, rules: Sequence[dict], words: list[str], gold: list[list[int]],
) -> list[int]:
    """The punctuation words ending in a quote that get other ids than BPE's when the letters of a contraction
    follow them: GPT-2 keeps the quote in the word, but the split rules do not cut a quote run there (the cut
    quote would start a contraction), so the Unigram sees the whole word (``exec('''def``)."""
    if not any(r["class"] == "quote" for r in rules):
        return []
    idx = [i for i, w in enumerate(words) if w.endswith("'") and _punctuation(w.lstrip("Ġ"))]
    if not idx:
        return []
    pre = rules_pre_tokenizer(rules)
    segments = []
    for i in idx:
        cut = [p for p, _ in pre.pre_tokenize_str(_raw(words[i]) + "s")]
        segments.append(cut[:-1] if cut[-1] == "s" else [words[i]])
    return [i for i, ids in zip(idx, encode_segments(model_tok, segments)) if ids != gold[i]]


def select_word_rules(
    model_tok: Tokenizer, rules: Sequence[dict], words: list[str], weights: np.ndarray, gold: list[list[int]],
    pred: list[list[int]], limit: int,
) -> list[list[str]]:
    """BPE's pieces of the fit words still wrong (``pred``, or before a contraction's letters), most frequent first,
    at most ``limit``: those a regex can cut (``word_rules.word_segments``) and whose every BPE token the Unigram
    gives back alone."""
    wrong = {i for i, (p, g) in enumerate(zip(pred, gold)) if p != g} | set(_wrong_before_contraction(
        model_tok, rules, words, gold))
    wrong = sorted(wrong, key=lambda i: (-weights[i], words[i]))
    chosen = []
    for i in wrong:
        tokens = [model_tok.id_to_token(t) for t in gold[i]]
        if len(chosen) < limit and word_segments(tokens) is not None:
            chosen.append((tokens, gold[i]))
    if not chosen:
        return []
    # a rule whose tokens the Unigram splits further would fix nothing: keep only the rules that fix their word
    cut = encode_segments(model_tok, segment_words(rules, ["".join(t) for t, _ in chosen], [t for t, _ in chosen]))
    return [t for (t, ids), got in zip(chosen, cut) if got == ids]


# --- the stage ---


@contextmanager
def _gc_paused():
    """Pause the cyclic garbage collector: each round, and each split rule's questions to BPE, build ~10^5 small
    objects (no cycles), and with a large corpus alive every collection they trigger walks it, which more than
    doubled the fit's time."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def fit_distilled(
    bpe: Tokenizer, corpus_counts: Counter, settings: DistillSettings
) -> tuple[Tokenizer, FitResult]:
    """Fit scores and split rules on ``corpus_counts`` (byte-level pre-token counts); build the tokenizer."""
    pieces = gpt2_pieces(bpe)
    bare_bpe = bare_model(bpe)
    weighted = fit_words(pieces, corpus_counts, settings)
    vocab = set(pieces)
    words = sorted(weighted)  # sorted: the fit must not depend on the corpus's iteration order
    weights = np.array([weighted[w] for w in words], dtype=np.float64)
    gold = [e.ids for e in bare_bpe.encode_batch(words)]
    general = [text_to_piece(lead + w) for w, _ in most_frequent_english(settings.general_usage_words)
               for lead in ("", " ")]
    with _gc_paused():
        scores, stats, given_up = fit_scores(pieces, words, weights, gold, settings,
                                             [e.ids for e in bare_bpe.encode_batch(general)],
                                             np.array([w in vocab for w in words]))
        model_tok = unigram_tokenizer(pieces, scores)
        start = time.perf_counter()
        rules, considered = (
            select_split_rules(bare_bpe, model_tok, words, weights, gold, settings) if settings.split_rules else ([], [])
        )
        split_rule_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pred = encode_segments(model_tok, segment_words(rules, words))
    word_rules = select_word_rules(model_tok, rules, words, weights, gold, pred, settings.word_rules)
    if word_rules:
        pred = encode_segments(model_tok, segment_words(rules, words, word_rules))
    final = with_rules(model_tok, rules, word_rules)
    bad = [i for i, (p, g) in enumerate(zip(pred, gold)) if p != g]
    stats.update(
        fit_word_types=len(words),
        corpus_word_types=len(corpus_counts),
        fit_mismatched_types=len(bad),
        fit_mismatched_tie_types=sum(1 for i in bad if sorted(pred[i]) == sorted(gold[i])),
        split_rules_considered=considered,
        word_rules=len(word_rules),
        split_rule_seconds=round(split_rule_seconds, 2),
        word_rule_seconds=round(time.perf_counter() - start, 2),
        word_rules_examples=[" · ".join(readable(p) for p in pieces) for pieces in word_rules[: settings.examples]],
    )
    # the proof is about scores alone: report the words the split and word rules do not fix either
    still_wrong = {words[i] for i in bad}
    unsatisfiable = [w for w in given_up if w in still_wrong]
    stats.update(
        proven_unsatisfiable_types=len(unsatisfiable),
        proven_unsatisfiable_cut_by_rules=len(given_up) - len(unsatisfiable),
        proven_unsatisfiable_examples=[readable(w) for w in unsatisfiable[: settings.examples]],
    )
    return final, FitResult(scores=[float(s) for s in scores], split_rules=rules, word_rules=word_rules, stats=stats)


def distill_tokenizer(
    bpe: Tokenizer,
    train_texts: Iterable[str],
    heldout_texts: Iterable[str],
    settings: DistillSettings,
    out_dir: Path,
    report_md: Path,
    report_json: Path,
    extra_eval_texts: dict[str, list[str]] | None = None,
) -> dict:
    """Fit the distilled Unigram tokenizer on ``train_texts``, save it to ``out_dir``, verify it and report.

    Returns the report summary. With ``settings.strict`` raises ``DistillationMismatch`` (after writing
    the reports) when any word occurrence of ``train_texts`` gets ids other than BPE's.
    """
    from ivr.tokenizers.verify import DistillationMismatch, verify_tokenizer

    train_texts = list(train_texts)
    with PeakRSS() as peak:
        start = time.perf_counter()
        counts, _ = pre_token_counts(bpe, train_texts, desc="pre-tokenizing the fit corpus")
        pre_tokenize_seconds = time.perf_counter() - start
        tok, fit = fit_distilled(bpe, counts, settings)
        fit_seconds = time.perf_counter() - start

    metadata = {
        "stage": "distill",
        "method": "unigram scores by cutting planes (linear programs) on BPE segmentations",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "scores": "sum of the fitted weights of the merges that build each piece (higher wins); not log-probabilities",
        "pre_tokenizer": "ByteLevel normalizer (the whole text to byte-level characters at once), then one Split by "
                         "GPT-2's regex with the split and word rules, rewritten for byte-level characters",
        # the rewrite writes out the Unicode classes of this library's regex engine
        "tokenizers_version": tokenizers.__version__,
        "split_rules": fit.split_rules,
        "word_rules": fit.word_rules,
        "fit": {k: v for k, v in fit.stats.items() if k not in ("history", "split_rules_considered")},
    }
    save_tokenizer_dir(tok, out_dir, metadata)
    eval_sets = {"corpus": train_texts, "heldout": list(heldout_texts), **(extra_eval_texts or {})}
    summary = verify_tokenizer(
        # the file as users load it
        load_tokenizer(out_dir), bpe, eval_sets, report_md, report_json, settings=settings,
        fit_info={**fit.stats, "pre_tokenize_seconds": round(pre_tokenize_seconds, 2),
                  "fit_seconds": round(fit_seconds, 2), "peak_rss_mb": peak.mb,
                  "peak_rss_scope": peak.scope},
    )
    corpus = summary["sets"]["corpus"]
    if settings.strict and corpus["mismatched_occurrences"]:
        raise DistillationMismatch(
            f"strict distillation: {corpus['mismatched_occurrences']} corpus word occurrences "
            f"({corpus['mismatched_types']} types) differ from BPE; see {report_md}"
        )
    return summary
