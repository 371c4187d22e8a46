"""Distil GPT-2's BPE into a Unigram model with the same pieces at the same ids and the same segmentations.

Method, in four steps:

1. Words: the corpus's distinct byte-level pre-tokens (weighted by count), every vocabulary piece on its
   own and simple variants of it (leading space toggled, capitalised), plus an optional word list file.
   Labels are BPE's own segmentations of each word.
2. Initial scores: each piece scores the sum over the merges of its merge tree of ``(rank + 1) ** -exponent``,
   so early merges dominate as they do in BPE and every piece beats its own decomposition.
3. Cutting planes: every word the current Unigram Viterbi (the ``tokenizers`` one, so its tie rule is the
   real one) gets wrong adds the constraint "BPE's segmentation beats this one by a margin"; a linear program
   finds the smallest L1 change of scores meeting all constraints collected so far (with penalised slack, so
   constraints no additive scores can meet show up as slack instead of making the program infeasible).
4. Scale: Viterbi is unchanged by ``score -> lam * score - c * len(piece)`` (every segmentation of a word
   covers the same characters), so ``lam`` and ``c`` are fitted to make scores look like log-probabilities
   of the corpus's BPE token frequencies, with every score negative.

Ties (the same pieces in another order, mostly runs of one character) cannot be broken by any scores: HF
Unigram keeps the longest last piece while BPE puts its long chunks first. They are handled by ``Split``
pre-tokenizer rules derived from the merges, accepted per character only when they fix words and break none.
"""

from __future__ import annotations

import json
import logging
import math
import time
import tracemalloc
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Regex, Tokenizer, pre_tokenizers
from tokenizers.models import Unigram
from tqdm import tqdm

from ivr.tokenizers.bpe import gpt2_merges
from ivr.tokenizers.byte_level import EOS_ID, EOS_TOKEN, GPT2_VOCAB_SIZE
from ivr.tokenizers.io import byte_level_tokenizer, save_tokenizer_dir

log = logging.getLogger(__name__)

# LP unknowns are in units of 1e-12 so that the solver's absolute tolerances sit far below the score gaps
LP_UNIT = 1e-12
EOS_SCORE = -1000.0


@dataclass
class DistillSettings:
    """Knobs of tokenizer distillation (``data.distill.*``)."""

    strict: bool = False
    """Fail when any corpus word occurrence (ties included) gets ids other than BPE's."""
    init_exponent: float = 2.5
    """Initial score of a piece: sum over its merge tree of ``(rank + 1) ** -init_exponent``."""
    max_iterations: int = 40
    """Most cutting-plane rounds (each: one Viterbi pass over all words, one linear program)."""
    margin: float = 10.0
    """How much BPE's segmentation must beat each collected competitor, in units of 1e-12."""
    slack_penalty: float = 1e9
    """Linear-program cost of leaving one unit of a constraint unmet (relative to one unit of score change)."""
    vocab_words: bool = True
    """Fit on every vocabulary piece as a word of its own."""
    vocab_variants: bool = True
    """Also fit on each ASCII-alphabetic piece with its leading space toggled and with a capital first letter."""
    word_list: Path | None = None
    """Optional UTF-8 file with one word per line (optionally ``word<TAB>count``) for text beyond the corpus."""
    split_rules: bool = True
    """Derive ``Split`` pre-tokenizer rules that cut runs of one character into BPE's chunks (fixes ties)."""
    max_run: int = 128
    """Longest run of one character on which a candidate split rule must reproduce BPE exactly."""
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


def bare_model(tok: Tokenizer, keep_splits: bool = False) -> Tokenizer:
    """``tok``'s model alone, fed byte-level strings (pre-tokens); ``keep_splits`` keeps non-ByteLevel splits."""
    spec = json.loads(tok.to_str())
    pre = spec.get("pre_tokenizer")
    if keep_splits and pre and pre.get("type") == "Sequence":
        rest = [p for p in pre["pretokenizers"] if p["type"] != "ByteLevel"]
        spec["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": rest} if rest else None
    else:
        spec["pre_tokenizer"] = None
    spec.update(normalizer=None, post_processor=None, decoder=None, added_tokens=[])
    return Tokenizer.from_str(json.dumps(spec))


def pre_token_counts(pre_tokenizer: Tokenizer, texts: Iterable[str], desc: str = "pre-tokenizing") -> tuple[Counter, int]:
    """Count byte-level pre-tokens (words) of ``texts``; also returns the number of texts."""
    counts: Counter = Counter()
    n = 0
    for text in tqdm(texts, desc=desc, unit="doc", mininterval=2.0):
        counts.update(w for w, _ in pre_tokenizer.pre_tokenizer.pre_tokenize_str(text))
        n += 1
    return counts, n


def initial_scores(pieces: Sequence[str], merges: Sequence[tuple[str, str]], exponent: float) -> np.ndarray:
    """Merge-tree scores: a piece's score is the sum of ``(rank + 1) ** -exponent`` over its merge tree."""
    index = {p: i for i, p in enumerate(pieces)}
    scores = np.zeros(len(pieces))
    for rank, (a, b) in enumerate(merges):
        scores[index[a + b]] = scores[index[a]] + scores[index[b]] + (rank + 1) ** -exponent
    return scores


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
    if settings.word_list:
        extra.update(_read_word_list(settings.word_list))
    for w in extra:  # words met only outside the corpus count once: they must be right, not dominate
        words.setdefault(w, 1)
    return words


def _read_word_list(path: Path) -> Counter:
    from ivr.tokenizers.byte_level import text_to_piece

    out: Counter = Counter()
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        word = line.split("\t")[0].strip()
        if not word:
            continue
        if " " in word:
            raise ValueError(f"{path}:{lineno}: a word list entry holds a space: {word!r}")
        out[text_to_piece(word)] += 1
        out[text_to_piece(" " + word)] += 1
    return out


def unigram_tokenizer(pieces: Sequence[str], scores: Sequence[float]) -> Tokenizer:
    """A bare Unigram tokenizer (no pre-tokenizer) over byte-level strings, for fitting."""
    vocab = [(p, float(s)) for p, s in zip(pieces, scores)]
    vocab[EOS_ID] = (EOS_TOKEN, EOS_SCORE)
    return Tokenizer(Unigram(vocab, None, False))


def _difference(gold: Sequence[int], other: Sequence[int]) -> dict[int, int]:
    d = Counter(gold)
    d.subtract(other)
    return {k: v for k, v in d.items() if v}


def _solve(
    base: np.ndarray, constraints: list[tuple[int, dict[int, int]]], usage: np.ndarray, settings: DistillSettings
):
    """Smallest usage-weighted L1 change x (LP units) with ``d . (base + x) >= margin`` for every constraint, slack penalised."""
    import scipy.sparse as sp
    from scipy.optimize import linprog

    n_vars = len(base)
    rows, cols, vals, rhs = [], [], [], []
    for r, (_, d) in enumerate(constraints):
        for k, v in d.items():
            rows.append(r)
            cols.append(k)
            vals.append(v)
        rhs.append(settings.margin - sum(v * base[k] for k, v in d.items()))
    n_rows = len(constraints)
    D = sp.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_vars))
    # unknowns: increases, decreases, slacks; D x + s >= rhs written as -D x+ + D x- - s <= -rhs
    A = sp.hstack([-D, D, -sp.identity(n_rows)]).tocsr()
    # changing a piece many words use risks breaking them: make it cost in proportion
    cost = np.concatenate([usage, usage, np.full(n_rows, settings.slack_penalty)])
    res = linprog(cost, A_ub=A, b_ub=-np.asarray(rhs), bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"score linear program failed ({n_rows} constraints): {res.message}")
    return res.x[:n_vars] - res.x[n_vars : 2 * n_vars], res.x[2 * n_vars :]


def fit_scores(
    pieces: Sequence[str], words: list[str], weights: np.ndarray, gold: list[list[int]], settings: DistillSettings
) -> tuple[np.ndarray, dict]:
    """Cutting-plane fit of raw scores (in LP units) so that Viterbi gives ``gold`` on ``words``."""
    base = initial_scores(pieces, gpt2_merges(), settings.init_exponent) / LP_UNIT
    base[EOS_ID] = 0.0
    x = np.zeros_like(base)
    constraints: list[tuple[int, dict[int, int]]] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()
    best = (math.inf, x, [])
    history, slack = [], np.zeros(0)
    usage = np.ones_like(base)
    for ids in gold:
        usage[list(set(ids))] += 1
    bar = tqdm(range(settings.max_iterations), desc="fitting scores", unit="round")
    for it in bar:
        raw = base + x
        pred = [e.ids for e in unigram_tokenizer(pieces, raw * LP_UNIT).encode_batch(words)]
        bad = [i for i, (p, g) in enumerate(zip(pred, gold)) if p != g]
        new = 0
        for i in bad:
            d = _difference(gold[i], pred[i])
            if d and (i, tuple(pred[i])) not in seen:
                seen.add((i, tuple(pred[i])))
                constraints.append((i, d))
                new += 1
        loss = float(weights[bad].sum())
        bar.set_postfix(mismatched=len(bad), new=new, constraints=len(constraints))
        history.append({"round": it, "mismatched_types": len(bad), "mismatched_occurrences": loss, "new_constraints": new})
        if loss < best[0]:
            best = (loss, x.copy(), bad)
        if new == 0:
            break
        x, slack = _solve(base, constraints, usage, settings)
    unmet = sorted({words[constraints[r][0]] for r in np.flatnonzero(slack > 1e-6)}) if len(slack) else []
    stats = {
        "rounds": len(history),
        "constraints": len(constraints),
        "history": history,
        "changed_pieces": int((np.abs(best[1]) > 1e-9).sum()),
        "lp_unmet_words": unmet,
    }
    return base + best[1], stats


def log_prob_scale(raw: np.ndarray, pieces: Sequence[str], token_counts: np.ndarray) -> np.ndarray:
    """Map raw scores to ``lam * raw - c * len`` (same Viterbi) fitted to log token frequencies, all negative."""
    lens = np.array([len(p) for p in pieces], dtype=np.float64)
    real = raw * LP_UNIT
    logp = np.log((token_counts + 0.5) / (token_counts + 0.5).sum())
    mask = np.arange(len(pieces)) != EOS_ID
    (lam, c), *_ = np.linalg.lstsq(np.stack([real[mask], -lens[mask]], axis=1), logp[mask], rcond=None)
    lam = max(float(lam), 1.0)  # a small lam would shrink the fitted margins towards float rounding
    c = max(float(c), float((lam * real[mask] / lens[mask]).max()) + 0.01)
    scores = lam * real - c * lens
    scores[EOS_ID] = EOS_SCORE
    return scores


# --- split rules for runs of one character ---


def _run_chunks(bare_bpe: Tokenizer, char: str, max_run: int) -> list[list[int]]:
    """BPE's chunk lengths for runs of ``char`` of length 0..max_run (index = run length)."""
    encs = bare_bpe.encode_batch([char * n for n in range(1, max_run + 1)])
    return [[]] + [[len(t) for t in e.tokens] for e in encs]


def _ranges(values: list[int]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for v in sorted(values):
        if out and out[-1][1] == v - 1:
            out[-1] = (out[-1][0], v)
        else:
            out.append((v, v))
    return out


def split_rule_for(bare_bpe: Tokenizer, char: str, max_run: int) -> dict | None:
    """A regex cutting runs of ``char`` (up to ``max_run`` long) into BPE's chunks, or None.

    BPE chunks a run of length n as [a(n)] + chunks(n - a(n)) (checked here, else no rule). The regex cuts
    after a first chunk ``c{a}`` when exactly n - a more ``c`` follow, and only at a run start or where the
    previous cut ended (``\G``), so cuts chain along a run. With ``merged_with_previous`` it only cuts inside
    runs, never before one, and skips runs next to a character that has a merge with ``char``.
    """
    chunks = _run_chunks(bare_bpe, char, max_run)
    rests: dict[int, list[int]] = {}
    for n, ch in enumerate(chunks):
        if len(ch) > 1:
            if ch[1:] != chunks[n - ch[0]]:
                return None
            rests.setdefault(ch[0], []).append(n - ch[0])
    if not rests:
        return None
    merges = gpt2_merges()
    # no cut where a neighbour could merge into the run first: BPE's chunks there are not the pure-run ones
    left = "".join(sorted({_hex(a[-1]) for a, b in merges if b[0] == char and a[-1] != char}))
    right = "".join(sorted({_hex(b[0]) for a, b in merges if a[-1] == char and b[0] != char}))
    c = _hex(char)
    alts = []
    for a in sorted(rests, reverse=True):
        for lo, hi in _ranges(rests[a]):
            rest = f"{c}{{{lo}}}" if lo == hi else f"{c}{{{lo},{hi}}}"
            alts.append(f"{c}{{{a}}}(?={rest}(?![{c}{right}]))")
    return {"char": char, "pattern": f"(?:(?<![{c}{left}])|\\G)(?:{'|'.join(alts)})"}


def _hex(char: str) -> str:
    return "\\x{%04X}" % ord(char)


def with_rules(model_tok: Tokenizer, rules: Sequence[dict], byte_level: bool) -> Tokenizer:
    """``model_tok`` with the split rules (after GPT-2's ByteLevel pre-tokenizer when ``byte_level``)."""
    tok = byte_level_tokenizer(model_tok.model) if byte_level else Tokenizer(model_tok.model)
    # one regex for all characters: one scan per pre-token keeps encoding fast
    pattern = "|".join(r["pattern"] for r in rules)
    splits = [pre_tokenizers.Split(Regex(pattern), behavior="merged_with_previous")] if rules else []
    if byte_level and splits:
        tok.pre_tokenizer = pre_tokenizers.Sequence([tok.pre_tokenizer, *splits])
    elif splits:
        tok.pre_tokenizer = pre_tokenizers.Sequence(splits)
    return tok


def select_split_rules(
    bare_bpe: Tokenizer, model_tok: Tokenizer, words: list[str], gold: list[list[int]], settings: DistillSettings
) -> tuple[list[dict], list[dict]]:
    """Candidate rules for each character with a (c, c) merge, kept when they fix words and break none."""
    chars = sorted({a for a, b in gpt2_merges() if a == b and len(a) == 1})
    plain = [e.ids for e in model_tok.encode_batch(words)]
    accepted, considered = [], []
    for char in tqdm(chars, desc="split rules", unit="char"):
        rule = split_rule_for(bare_bpe, char, settings.max_run)
        if rule is None:
            considered.append({"char": char, "accepted": False, "reason": "BPE chunks its runs in no first-chunk-then-rest way"})
            continue
        idx = [i for i, w in enumerate(words) if char * 2 in w]
        cut = [e.ids for e in with_rules(model_tok, [rule], False).encode_batch([words[i] for i in idx])]
        fixed = sum(1 for i, c in zip(idx, cut) if c == gold[i] and plain[i] != gold[i])
        broken = sum(1 for i, c in zip(idx, cut) if c != gold[i] and plain[i] == gold[i])
        ok = fixed > 0 and broken == 0
        considered.append({"char": char, "accepted": ok, "fixed_types": fixed, "broken_types": broken})
        if ok:
            accepted.append(rule)
    return accepted, considered


# --- the stage ---


def fit_distilled(
    bpe: Tokenizer, corpus_counts: Counter, settings: DistillSettings
) -> tuple[Tokenizer, FitResult]:
    """Fit scores and split rules on ``corpus_counts`` (byte-level pre-token counts); build the tokenizer."""
    pieces = gpt2_pieces(bpe)
    bare_bpe = bare_model(bpe)
    weighted = fit_words(pieces, corpus_counts, settings)
    words = sorted(weighted)  # sorted: the fit must not depend on the corpus's iteration order
    weights = np.array([weighted[w] for w in words], dtype=np.float64)
    gold = [e.ids for e in bare_bpe.encode_batch(words)]
    raw, stats = fit_scores(pieces, words, weights, gold, settings)

    token_counts = np.zeros(len(pieces))
    for ids, w in zip(gold, weights):
        np.add.at(token_counts, ids, w)
    scores = log_prob_scale(raw, pieces, token_counts)
    model_tok = unigram_tokenizer(pieces, scores)
    rules, considered = select_split_rules(bare_bpe, model_tok, words, gold, settings) if settings.split_rules else ([], [])
    final = with_rules(model_tok, rules, byte_level=True)

    fitted = with_rules(model_tok, rules, byte_level=False)
    pred = [e.ids for e in fitted.encode_batch(words)]
    bad = [i for i, (p, g) in enumerate(zip(pred, gold)) if p != g]
    stats.update(
        fit_word_types=len(words),
        corpus_word_types=len(corpus_counts),
        fit_mismatched_types=len(bad),
        fit_mismatched_tie_types=sum(1 for i in bad if sorted(pred[i]) == sorted(gold[i])),
        split_rules_considered=considered,
    )
    return final, FitResult(scores=[float(s) for s in scores], split_rules=rules, stats=stats)


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
    tracemalloc.start()
    start = time.perf_counter()
    counts, _ = pre_token_counts(bpe, train_texts, desc="pre-tokenizing the fit corpus")
    tok, fit = fit_distilled(bpe, counts, settings)
    fit_seconds = time.perf_counter() - start
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()

    metadata = {
        "stage": "distill",
        "method": "unigram scores by cutting-plane LP on BPE segmentations",
        "settings": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items()},
        "score_scale": "lam * merge-tree score - c * len(piece); all scores negative",
        "split_rules": fit.split_rules,
        "fit": {k: v for k, v in fit.stats.items() if k not in ("history", "split_rules_considered")},
    }
    save_tokenizer_dir(tok, out_dir, metadata)
    eval_sets = {"corpus": train_texts, "heldout": list(heldout_texts), **(extra_eval_texts or {})}
    summary = verify_tokenizer(
        tok, bpe, eval_sets, report_md, report_json, settings=settings,
        fit_info={**fit.stats, "fit_seconds": round(fit_seconds, 2), "python_peak_mb": round(peak / 2**20, 1)},
    )
    corpus = summary["sets"]["corpus"]
    if settings.strict and corpus["mismatched_occurrences"]:
        raise DistillationMismatch(
            f"strict distillation: {corpus['mismatched_occurrences']} corpus word occurrences "
            f"({corpus['mismatched_types']} types) differ from BPE; see {report_md}"
        )
    return summary
