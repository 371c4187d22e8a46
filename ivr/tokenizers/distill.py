"""Distil GPT-2's BPE into a Unigram model with the same pieces at the same ids and the same segmentations.

Method, in four steps:

1. Words: the corpus's distinct byte-level pre-tokens (weighted by count), every vocabulary piece on its
   own and simple variants of it (leading space toggled, capitalised), plus an optional word list file.
   Labels are BPE's own segmentations of each word.
2. Initial scores: each piece scores the sum over the merges of its merge tree of ``(rank + 1) ** -exponent``,
   so early merges dominate as they do in BPE and every piece beats its own decomposition.
3. Cutting planes with row-action updates: every word the current Unigram Viterbi (the ``tokenizers`` one, so
   its tie rule is the real one) gets wrong adds the row "BPE's segmentation beats this one by a margin";
   Kaczmarz sweeps over all rows collected so far (plus one row per merge: a piece beats its two halves) move
   the scores the least, weighted towards rarely used pieces. Rounds are bounded in number and time and the
   round with the fewest weighted mismatches is kept.
4. Scale: Viterbi is unchanged by ``score -> lam * score - c * len(piece)`` (every segmentation of a word
   covers the same characters), so ``lam`` and ``c`` are fitted to make scores look like log-probabilities
   of the corpus's BPE token frequencies, with every score negative.

Ties (the same pieces in another order, mostly runs of one character) cannot be broken by any scores: HF
Unigram keeps the longest last piece while BPE puts its long chunks first. They are handled by split rules
derived from BPE's chunking of pure runs, spliced into GPT-2's own pre-tokenizer regex (one regex pass per
text, as for BPE), accepted per character only when they fix enough fit words and break none.
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
from ivr.tokenizers.byte_level import EOS_ID, EOS_TOKEN, GPT2_VOCAB_SIZE, piece_to_bytes
from ivr.tokenizers.io import byte_level_tokenizer, save_tokenizer_dir

log = logging.getLogger(__name__)

# LP unknowns are in units of 1e-12 so that the solver's absolute tolerances sit far below the score gaps
LP_UNIT = 1e-12
EOS_SCORE = -1000.0
# a violated row is moved this many margins past its boundary (not onto it)
OVERSHOOT = 2.0


@dataclass
class DistillSettings:
    """Knobs of tokenizer distillation (``data.distill.*``)."""

    strict: bool = False
    """Fail when any corpus word occurrence (ties included) gets ids other than BPE's."""
    init_exponent: float = 3.0
    """Initial score of a piece: sum over its merge tree of ``(rank + 1) ** -init_exponent``."""
    max_iterations: int = 40
    """Most fitting rounds (each: one Viterbi pass over all words, then row-action sweeps over the rows)."""
    max_seconds: float = 30.0
    """Stop starting fitting rounds after this many seconds of score fitting (the best round is kept)."""
    patience: int = 2
    """Stop after this many rounds without fewer weighted mismatches than the best round."""
    margin: float = 1.0
    """How much BPE's segmentation must beat each collected competitor, in units of 1e-12."""
    sweeps: int = 30
    """Most Kaczmarz sweeps over the collected rows per round."""
    max_step: float = 1e12
    """Rows violated by more than this (units of 1e-12) are left alone in a round (the default projects all)."""
    protect_merges: bool = True
    """Start with one row per merge (the merged piece beats its two halves) so updates do not undo merges."""
    vocab_words: bool = True
    """Fit on every vocabulary piece as a word of its own."""
    vocab_variants: bool = True
    """Also fit on each ASCII-alphabetic piece with its leading space toggled and with a capital first letter."""
    word_list: Path | None = None
    """Optional UTF-8 file with one word per line (optionally ``word<TAB>count``) for text beyond the corpus."""
    split_rules: bool = True
    """Splice rules into GPT-2's pre-tokenizer regex that cut runs of one character into BPE's chunks (ties)."""
    max_run: int = 128
    """Longest run of one character on which a candidate split rule must reproduce BPE exactly."""
    split_rule_min_fixed: float = 10.0
    """A split rule is kept only if it fixes at least this many weighted fit word occurrences (rules cost speed)."""
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


def _project(
    s: np.ndarray, rows: list[tuple[np.ndarray, np.ndarray]], order: np.ndarray, margin: np.ndarray, sweeps: int,
    usage: np.ndarray, max_step: float = math.inf,
) -> int:
    """Row-action (Kaczmarz) sweeps: move ``s`` onto every violated half-space ``d . s >= margin[row]`` in turn.

    Each move is the smallest in the metric weighted by ``usage`` (how many fit words use a piece), so the
    change lands on rarely used pieces and leaves the scores that many words depend on nearly alone.
    A violated row is over-projected to twice the margin so that it does not sit on its boundary. Rows are
    visited in ``order`` (heaviest words last, so that where rows conflict the frequent words win the sweep).
    Rows violated by more than ``max_step`` are skipped: the large moves they need would break many other words.
    Returns how many rows were still violated at the start of the last sweep.
    """
    import scipy.sparse as sp

    if not rows:
        return 0
    cols = np.concatenate([k for k, _ in rows])
    vals = np.concatenate([v for _, v in rows]).astype(np.float64)
    indptr = np.cumsum([0] + [len(k) for k, _ in rows])
    D = sp.csr_matrix((vals, cols, indptr), shape=(len(rows), len(s)))
    inv = 1.0 / usage
    norms = np.asarray(D.multiply(D).multiply(inv[None, :]).sum(axis=1)).ravel()
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    violated = 0
    for _ in range(sweeps):
        m_all = D @ s
        viol = np.flatnonzero((m_all < margin) & (m_all > margin - max_step))
        violated = len(viol)
        if not violated:
            break
        for r in viol[np.argsort(rank[viol], kind="stable")]:
            k, v = rows[r]
            m = float(v @ s[k])
            if m < margin[r]:
                s[k] += (OVERSHOOT * margin[r] - m) / norms[r] * v * inv[k]
    return violated


def fit_scores(
    pieces: Sequence[str], words: list[str], weights: np.ndarray, gold: list[list[int]], settings: DistillSettings
) -> tuple[np.ndarray, dict]:
    """Fit raw scores (in units of ``LP_UNIT``) so that the Unigram Viterbi gives ``gold`` on ``words``.

    Cutting planes with row-action updates: each round encodes all words with the real ``tokenizers``
    Unigram; every wrong word adds the row "BPE's segmentation beats this one by ``margin``"; then a few
    Kaczmarz sweeps over all rows collected so far move the scores the least (L2) to meet them. Rounds stop
    when no word is wrong, no new row appears, mismatches stop falling for ``patience`` rounds, or after
    ``max_iterations`` rounds / ``max_seconds``; the round with the fewest weighted mismatches is kept.
    """
    start = time.perf_counter()
    s = initial_scores(pieces, gpt2_merges(), settings.init_exponent) / LP_UNIT
    s[EOS_ID] = 0.0
    rows: list[tuple[np.ndarray, np.ndarray]] = []
    row_weight: list[float] = []
    row_margin: list[float] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()
    best = (math.inf, s.copy(), 0)
    history: list[dict] = []
    stale = 0
    usage = np.ones_like(s)
    for ids in gold:
        usage[list(set(ids))] += 1
    if settings.protect_merges:  # every piece beats its own two halves: the competitor most words have
        index = {p: i for i, p in enumerate(pieces)}
        for a, b in gpt2_merges():
            d = _difference([index[a + b]], [index[a], index[b]])
            rows.append((np.fromiter(d.keys(), dtype=np.int64), np.fromiter(d.values(), dtype=np.float64)))
            row_weight.append(math.inf)
            # keep at least the gap the initial scores give (or the margin): met from the start
            row_margin.append(min(settings.margin, 0.5 * float(rows[-1][1] @ s[rows[-1][0]])))
    bar = tqdm(range(settings.max_iterations), desc="fitting scores", unit="round", mininterval=2.0)
    for it in bar:
        pred = [e.ids for e in unigram_tokenizer(pieces, s * LP_UNIT).encode_batch(words)]
        bad = [i for i, (p, g) in enumerate(zip(pred, gold)) if p != g]
        loss = float(weights[bad].sum())
        new = 0
        for i in bad:
            key = (i, tuple(pred[i]))
            d = _difference(gold[i], pred[i])
            if d and key not in seen:
                seen.add(key)
                k = np.fromiter(d.keys(), dtype=np.int64, count=len(d))
                rows.append((k, np.fromiter(d.values(), dtype=np.float64, count=len(d))))
                row_weight.append(float(weights[i]))
                row_margin.append(settings.margin)
                new += 1
        if loss < best[0]:
            best, stale = (loss, s.copy(), it), 0
        else:
            stale += 1
        elapsed = time.perf_counter() - start
        entry = {"round": it, "mismatched_types": len(bad), "mismatched_occurrences": loss, "new_rows": new,
                 "seconds": round(elapsed, 2)}
        bar.set_postfix(mismatched=len(bad), new=new, rows=len(rows))
        if not bad or new == 0 or stale >= settings.patience or elapsed > settings.max_seconds:
            history.append(entry)
            break
        order = np.argsort(np.asarray(row_weight), kind="stable")
        entry["still_violated_rows"] = _project(s, rows, order, np.asarray(row_margin), settings.sweeps, usage,
                                               settings.max_step)
        history.append(entry)
    stats = {
        "rounds": len(history),
        "constraints": len(rows),
        "best_round": best[2],
        "history": history,
        "changed_pieces": int((np.abs(best[1] - initial_scores(pieces, gpt2_merges(), settings.init_exponent) / LP_UNIT)
                               > 1e-6).sum()),
        "score_fit_seconds": round(time.perf_counter() - start, 2),
    }
    return best[1], stats


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

# GPT-2's pre-tokenizer regex (what ``ByteLevel(use_regex=True)`` runs); split rules are spliced into it
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
# where the pre-token a run starts ends: GPT-2's class of the run's character no longer continues it
RUN_END = {
    "letter": r"(?!\p{L})",
    "digit": r"(?!\p{N})",
    "punct": r"(?![^\s\p{L}\p{N}])",
    # not before a contraction: GPT-2 would start the next pre-token there with the last quote
    "quote": r"(?![^\s\p{L}\p{N}]|s|t|re|ve|m|ll|d)",
    # whitespace: ``\s+(?!\S)`` leaves the last white character of a run before a word to the word; the run
    # is also cut where more ASCII white space follows in its pre-token (nothing merges a newline with it)
    "newline": r"(?:[\x{09}-\x{0D}\x{20}](?=\S)|\z|(?=[\x{09}\x{0B}-\x{0D}\x{20}][\x{09}-\x{0D}\x{20}]))",
}


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


def _repeat(c: str, lo: int, hi: int) -> str:
    if hi == lo:
        return f"{c}{{{lo}}}" if lo != 1 else c
    return f"{c}{{{lo},{hi}}}"


def _char_class(raw: str) -> str | None:
    if raw == "\n":
        return "newline"
    if raw == "'":
        return "quote"
    if raw.isspace():
        return None
    if raw.isalpha():
        return "letter"
    return "digit" if raw.isdigit() else "punct"


CONTRACTION = "'(?:s|t|re|ve|m|ll|d)"
ASCII_PUNCT = "".join(chr(i) for i in range(33, 127) if not chr(i).isalnum())


def _rx(raw: str) -> str:
    return "\\x{%02X}" % ord(raw)


def split_rule_for(bare_bpe: Tokenizer, char: str, max_run: int) -> dict | None:
    """Regex alternatives cutting runs of ``char`` that start a pre-token into BPE's chunks, or None.

    BPE chunks a run of length n as [a(n)] + chunks(n - a(n)) (checked here, else no rule). The alternatives
    are spliced into GPT-2's pre-tokenizer regex ahead of the class the character belongs to, so they are only
    tried where a pre-token starts (one regex pass per text, no lookbehind): at the start of a run of n they
    match the first chunk ``c{a(n)}``; the rest of the run then starts the next pre-token and is cut the same
    way. A cut is only made where BPE cannot merge across it: the run must end before a character nothing
    merges ``char`` with (for punctuation; letters, digits and quotes must end their pre-token). Punctuation
    runs later in a punctuation pre-token (``#----``) are reached by a ``prefix`` alternative that cuts off
    what comes before the run, where the character before it merges with nothing starting with ``char``.
    Anything else (a leading space, longer than ``max_run``) is left to GPT-2's own alternatives.
    """
    raw = piece_to_bytes(char).decode("latin-1")
    kind = _char_class(raw) if len(raw) == 1 else None
    if kind is None:
        return None
    chunks = _run_chunks(bare_bpe, char, max_run)
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
    c = _rx(raw)
    merges = gpt2_merges()
    ascii_chars = lambda chars: sorted(  # noqa: E731
        {piece_to_bytes(ch).decode("latin-1") for ch in chars} & set(ASCII_PUNCT + " \t\n")
    )
    end = RUN_END[kind]
    prefix = None
    if kind == "punct":
        right = ascii_chars({b[0] for a, b in merges if a[-1] == char and b[0] != char})
        end = f"(?![{c}{''.join(_rx(r) for r in right)}]|[^\\x{{00}}-\\x{{7F}}]|{CONTRACTION})"
    if kind in ("punct", "quote"):
        left = set(ascii_chars({a[-1] for a, b in merges if b[0] == char and a[-1] != char}))
        before = "".join(_rx(p) for p in ASCII_PUNCT if p != raw and p not in left)
        prefix = f"[{before}](?={c}{{2,{max_run}}}{end})"
    alts = []
    for a in sorted(rests, reverse=True):
        rest = "|".join(_repeat(c, lo, hi) for lo, hi in _ranges(rests[a]))
        alts.append(f"{_repeat(c, a - 1, a - 1) if a > 1 else ''}(?=(?:{rest}){end})")
    if kind == "punct" and whole:  # a whole-chunk run followed by more punctuation is cut off as it is
        alts.append(f"(?:{'|'.join(_repeat(c, lo - 1, hi - 1) for lo, hi in _ranges(whole))}){end}")
    return {"char": char, "class": kind, "pattern": f"{c}(?:{'|'.join(alts)})", "prefix": prefix}


def split_pattern(rules: Sequence[dict]) -> str:
    """GPT-2's pre-tokenizer regex with the rules' alternatives ahead of the class each rule cuts."""
    by = {k: "".join(r["pattern"] + "|" for r in rules if r["class"] in ks) for k, ks in
          {"letter": ("letter",), "digit": ("digit",), "punct": ("punct", "quote"), "space": ("newline",)}.items()}
    prefixes = [r["prefix"] for r in rules if r.get("prefix")]
    if prefixes:
        by["punct"] += r" ?[^\s\p{L}\p{N}]*?(?:" + "|".join(prefixes) + ")|"
    return (
        r"'s|'t|'re|'ve|'m|'ll|'d|" + by["letter"] + r" ?\p{L}+|" + by["digit"] + r" ?\p{N}+|"
        + by["punct"] + r" ?[^\s\p{L}\p{N}]+|" + by["space"] + r"\s+(?!\S)|\s+"
    )


def rules_pre_tokenizer(rules: Sequence[dict]):
    """GPT-2's byte-level pre-tokenizer, with the split rules spliced into its regex when there are any."""
    if not rules:
        return pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(split_pattern(rules)), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])


def with_rules(model_tok: Tokenizer, rules: Sequence[dict]) -> Tokenizer:
    """The full tokenizer: ``model_tok``'s model behind GPT-2's pre-tokenizer carrying the split rules."""
    tok = byte_level_tokenizer(model_tok.model)
    tok.pre_tokenizer = rules_pre_tokenizer(rules)
    return tok


def segment_words(rules: Sequence[dict], words: Sequence[str]) -> list[list[str]]:
    """Each byte-level word as the rules cut it on its own (a word GPT-2 would pre-tokenize further stays whole)."""
    if not rules:
        return [[w] for w in words]
    plain, cut = rules_pre_tokenizer([]), rules_pre_tokenizer(rules)
    chars = {r["char"] * 2 for r in rules}
    out = []
    for w in words:
        segs = [w]
        if any(c in w for c in chars):
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


def select_split_rules(
    bare_bpe: Tokenizer, model_tok: Tokenizer, words: list[str], weights: np.ndarray, gold: list[list[int]],
    settings: DistillSettings,
) -> tuple[list[dict], list[dict]]:
    """Candidate rules for each character with a (c, c) merge, kept when they fix enough words and break none.

    Each rule costs encoding speed, so a rule must fix at least ``settings.split_rule_min_fixed`` weighted
    word occurrences of the fit words.
    """
    chars = sorted({a for a, b in gpt2_merges() if a == b and len(a) == 1})
    plain = [e.ids for e in model_tok.encode_batch(words)]
    accepted, considered = [], []
    for char in tqdm(chars, desc="split rules", unit="char", mininterval=2.0):
        rule = split_rule_for(bare_bpe, char, settings.max_run)
        if rule is None:
            considered.append({"char": char, "accepted": False, "reason": "no rule"})
            continue
        idx = [i for i, w in enumerate(words) if char * 2 in w]
        cut = encode_segments(model_tok, segment_words([rule], [words[i] for i in idx]))
        fixed = [i for i, c in zip(idx, cut) if c == gold[i] and plain[i] != gold[i]]
        broken = sum(1 for i, c in zip(idx, cut) if c != gold[i] and plain[i] == gold[i])
        fixed_occ = float(weights[fixed].sum()) if fixed else 0.0
        ok = bool(fixed) and fixed_occ >= settings.split_rule_min_fixed and broken == 0
        considered.append({"char": char, "accepted": ok, "fixed_types": len(fixed), "fixed_occurrences": fixed_occ,
                           "broken_types": broken})
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
    rules, considered = (
        select_split_rules(bare_bpe, model_tok, words, weights, gold, settings) if settings.split_rules else ([], [])
    )
    final = with_rules(model_tok, rules)
    pred = encode_segments(model_tok, segment_words(rules, words))
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
        "method": "unigram scores by cutting planes with row-action updates on BPE segmentations",
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
