"""Candidate strings as spans of distilled tokens inside pre-tokens, and the tokens collapsing them saves.

Texts are reduced to their distinct pre-tokens, each with its count, a weight (the count with each
document's uses capped, so a string piled up in a few files ranks lower) and its distilled segmentation.
A candidate string is two or more consecutive tokens of one segmentation; it saves tokens where it lies on
token boundaries, and overlapping candidates in one pre-token save what the best non-overlapping choice
saves.
"""

from __future__ import annotations

import functools
import zlib
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ivr.counting import most_frequent
from ivr.tokenizers.byte_level import piece_to_bytes
from ivr.tokenizers.io import pre_tokens


class Occurrences:
    """Where each candidate string lies: per string, one flat array of ``(pre-token index, first, last)`` token
    positions, pre-tokens ascending. About 12 bytes a place, where a dict of lists of tuples takes some 200: text
    of ever new strings (random identifiers, encoded data) holds tens of millions of places of ranked strings."""

    def __init__(self, flat: dict[str, array]):
        self.flat = flat

    def places(self, s: str) -> Iterator[tuple[int, list[tuple[int, int]]]]:
        """Each pre-token ``s`` lies in, with the (first, last) token positions it covers there."""
        flat = self.flat[s]
        n, x = len(flat), 0
        while x < n:
            t = flat[x]
            spans = [(flat[x + 1], flat[x + 2])]
            x += 3
            while x < n and flat[x] == t:
                spans.append((flat[x + 1], flat[x + 2]))
                x += 3
            yield t, spans


@dataclass
class PretokenStats:
    """Texts as distinct pre-tokens with their counts, ranking weights and distilled segmentations."""

    pieces: list[str]
    counts: list[int]
    weights: list[int]
    segs: list[list[int]]
    id_counts: np.ndarray
    total_tokens: int
    total_bytes: int
    documents: int


MAX_SELECT_PRETOKENS = 2_000_000
"""The most distinct pre-tokens selection counts at once (with their per-document-capped counts, some 250 bytes
each: about 500 MB). Past it the less frequent half is dropped (``ivr.counting.most_frequent``) and their token
uses go to ``PretokenCounts.dropped_ids``, so the id counts that decide which ids to free stay exact; a dropped
pre-token offers no candidate strings and counts again from its next occurrence. Candidates need ``min_count``
uses and save tokens in proportion to them, so the dropped ones are the least useful. The 1 GB benchmark corpus
holds far fewer: nothing is dropped there."""


@dataclass
class PretokenCounts:
    """Documents reduced to their pre-token counts: every use, and at most ``cap`` uses per document (the
    ranking's weights; ``None``: every use). Memory follows the distinct pre-tokens, at most
    ``MAX_SELECT_PRETOKENS`` of them, not the documents."""

    cap: int | None
    counts: Counter = field(default_factory=Counter)
    capped: Counter = field(default_factory=Counter)
    total_bytes: int = 0
    documents: int = 0
    dropped_ids: Counter = field(default_factory=Counter)
    """Token id -> its uses in the pre-tokens dropped from ``counts`` (``drop_rare``)."""
    dropped_pretokens: int = 0
    """How many pre-tokens ``drop_rare`` dropped (one dropped twice counts twice); 0: the counts are exact."""

    def add(self, doc: Counter, size: int) -> None:
        """Count one document's pre-tokens (``doc``) of ``size`` UTF-8 bytes."""
        self.counts.update(doc)
        if self.cap is not None:
            self.capped.update({p: min(c, self.cap) for p, c in doc.items()})
        self.total_bytes += size
        self.documents += 1

    def drop_rare(self, tokenizer: Tokenizer, keep: int) -> None:
        """Keep the ``keep`` most frequent pre-tokens; the others' token uses (by ``tokenizer``'s model) go to
        ``dropped_ids``."""
        kept = most_frequent(self.counts, keep)
        model = tokenizer.model
        for piece, count in self.counts.items():
            if piece not in kept:
                for token in model.tokenize(piece):
                    self.dropped_ids[token.id] += count
                self.capped.pop(piece, None)
                self.dropped_pretokens += 1
        self.counts = kept

    def __sub__(self, other: PretokenCounts) -> PretokenCounts:
        """The documents counted here but not in ``other`` (which must be some of them). Where either side dropped
        pre-tokens the difference is approximate: a pre-token dropped here but kept in ``other`` is missing from
        both the counts and the dropped ids."""
        return PretokenCounts(self.cap, self.counts - other.counts, self.capped - other.capped,
                              self.total_bytes - other.total_bytes, self.documents - other.documents,
                              self.dropped_ids - other.dropped_ids, self.dropped_pretokens)


def count_pretokens(tokenizer: Tokenizer, texts: Iterable[str], cap: int | None, validation_fraction: float,
                    limit: int = MAX_SELECT_PRETOKENS) -> tuple[PretokenCounts, PretokenCounts | None]:
    """One streaming pass over ``texts``: the pre-token counts of them all, and of the validation part that the
    savings curve leaves out of its ranking (a stable hash of each text below ``validation_fraction``; None
    without a curve, or with fewer than two documents). Where the hash leaves out none of the texts, or all of
    them, the part is the one document of the smallest hash (the first of them), so each side has one at least.
    Each side holds at most ``limit`` distinct pre-tokens (``MAX_SELECT_PRETOKENS``)."""
    everything, held = PretokenCounts(cap), PretokenCounts(cap)
    smallest: tuple[int, Counter, int] | None = None
    with tqdm(desc="pre-tokenize", unit="B", unit_scale=True, mininterval=2.0, leave=False) as bar:
        for text in texts:
            doc, size = Counter(pre_tokens(tokenizer, text)), len(text.encode("utf-8"))
            everything.add(doc, size)
            key = zlib.crc32(text.encode("utf-8")) % 1000
            if key < validation_fraction * 1000:
                held.add(doc, size)
            for side in (everything, held):
                if len(side.counts) > limit:
                    side.drop_rare(tokenizer, limit // 2)
            if smallest is None or key < smallest[0]:
                smallest = (key, doc, size)
            bar.update(size)
    if validation_fraction <= 0 or everything.documents < 2:
        return everything, None
    if held.documents in (0, everything.documents):  # a tiny corpus
        held = PretokenCounts(cap)
        held.add(*smallest[1:])
    return everything, held


def pretoken_stats(
    tokenizer: Tokenizer,
    documents: PretokenCounts,
    segment_cache: dict[str, list[int]] | None = None,
) -> PretokenStats:
    """Pre-token counts over ``documents``; ``weights`` count at most ``documents.cap`` uses per document.
    ``segment_cache`` keeps segmentations between calls on parts of the same texts."""
    counter = documents.counts
    pieces = list(counter)
    counts = [counter[p] for p in pieces]
    weights = counts if documents.cap is None else [documents.capped[p] for p in pieces]
    cache = {} if segment_cache is None else segment_cache
    model = tokenizer.model
    for p in pieces:
        if p not in cache:
            cache[p] = [t.id for t in model.tokenize(p)]
    segs = [cache[p] for p in pieces]
    flat = np.fromiter((i for s in segs for i in s), dtype=np.int64)
    repeats = np.repeat(np.asarray(counts, dtype=np.int64), [len(s) for s in segs])
    id_counts = np.bincount(flat, weights=repeats, minlength=tokenizer.get_vocab_size()).astype(np.int64)
    for i, count in documents.dropped_ids.items():
        id_counts[i] += count
    if any(len(s) > MAX_SPAN_TOKENS for s in segs):
        pieces, counts, weights, segs = _in_chunks(tokenizer, pieces, counts, weights, segs)
    return PretokenStats(pieces, counts, weights, segs, id_counts, int(id_counts.sum()), documents.total_bytes,
                         documents.documents)


MAX_SPAN_TOKENS = 256
"""Pre-tokens longer than this many tokens (a run of letters of a thousand characters or so: a DNA sequence, a
long identifier) are cut into pieces of at most this many tokens, between characters, for selection: the exact saving of overlapping strings in
one pre-token costs time in proportion to its length at every pick that touches it, so a few such runs took
minutes. A string across a cut is not counted there."""


def _in_chunks(tokenizer: Tokenizer, pieces: list[str], counts: list[int], weights: list[int],
               segs: list[list[int]]) -> tuple[list[str], list[int], list[int], list[list[int]]]:
    out: tuple[list, list, list, list] = ([], [], [], [])
    for piece, count, weight, seg in zip(pieces, counts, weights, segs):
        start = 0
        while True:
            end = min(start + MAX_SPAN_TOKENS, len(seg))
            # never inside a character (a token may hold part of one): a span ending there would be no text
            while start + 1 < end < len(seg) and _starts_inside_character(tokenizer.id_to_token(seg[end])):
                end -= 1
            part = seg[start:end]
            text = piece if len(part) == len(seg) else "".join(tokenizer.id_to_token(i) for i in part)
            for column, value in zip(out, (text, count, weight, part)):
                column.append(value)
            if end >= len(seg):
                break
            start = end
    return out


MAX_COUNTED_SPANS = 8_000_000
"""The most distinct span strings selection counts at once (with their savings bound, some 150 bytes each: about
1.2 GB). Ordinary text stays far below it (the 1 GB benchmark corpus's 443,922 distinct pre-tokens hold a few
million); text of ever new letters does not (half a megabyte of random letters holds 7 million). Past it the
count keeps the more frequent half, less what it drops (the batch form of Misra and Gries' frequent-items
count), and a second pass counts the kept strings exactly: every string used more than ``SpanCounts.floor``
times is kept, so only strings rarer than that can be missing."""


@dataclass
class SpanCounts:
    """Span strings with their uses and their savings bounds (``Spans.count``)."""

    counts: dict[str, int]
    bound: dict[str, int]
    floor: int = 0
    """0: every string is here. Otherwise the count hit ``MAX_COUNTED_SPANS``: a string used more than this many
    times is here with its exact uses, a rarer one may be missing."""


def _shrink(counts: dict[str, int], keep: int) -> tuple[dict[str, int], int]:
    """At most ``keep`` of ``counts``' strings, each less the cut that leaves no more than that above zero, and
    the cut: a string's count falls short of its uses by at most the sum of the cuts, so none used more often
    than that sum is ever dropped."""
    values = np.fromiter(counts.values(), dtype=np.int64, count=len(counts))
    cut = int(np.partition(values, len(values) - keep - 1)[len(values) - keep - 1])
    return {s: c - cut for s, c in counts.items() if c > cut}, cut


# UTF-8's continuation bytes: a byte outside them starts a character
CONTINUATION_BYTES = bytes(range(0x80, 0xC0))


def _raw(piece: str) -> bytes:
    """The bytes a piece stands for; an added token outside the byte-level alphabet (``<｜begin▁of▁sentence｜>``),
    which no span holds, as its text's."""
    try:
        return piece_to_bytes(piece)
    except ValueError:
        return piece.encode("utf-8")


def _starts_inside_character(piece: str) -> bool:
    return _inside(_raw(piece))


def _inside(raw: bytes) -> bool:
    return bool(raw) and raw[0] in CONTINUATION_BYTES


@functools.lru_cache(maxsize=2)  # a selection builds spans for every replay of its strings, on one vocabulary
def _character_bounds(pieces: tuple[str, ...]) -> tuple[tuple[bool, ...], tuple[int, ...]]:
    """Per piece: whether it starts inside a character, and how many characters start in it. A span must start
    and end on a character boundary so every new token is valid UTF-8 text."""
    raw = [_raw(p) for p in pieces]
    return (tuple(_inside(b) for b in raw),
            tuple(len(b.translate(None, CONTINUATION_BYTES)) for b in raw))


class Spans:
    """Candidate strings and where they lie, as token spans, in the distinct pre-tokens."""

    def __init__(self, stats: PretokenStats, pieces: Sequence[str]):
        self.stats, self.pieces = stats, pieces
        self.cont_start, self.chars = _character_bounds(tuple(pieces))

    def iter_spans(self, t: int, max_chars: int):
        seg, pieces, chars, cont = self.stats.segs[t], self.pieces, self.chars, self.cont_start
        k = len(seg)
        for i in range(k - 1):
            if cont[seg[i]]:
                continue
            s, n = pieces[seg[i]], chars[seg[i]]
            for j in range(i + 1, k):
                s += pieces[seg[j]]
                n += chars[seg[j]]
                if n > max_chars:
                    break
                if j + 1 < k and cont[seg[j + 1]]:
                    continue
                yield i, j, s

    def count(self, max_chars: int) -> SpanCounts:
        """Per string: its uses, and the tokens it would save alone by the ranking weights (an upper bound).
        Holds at most ``MAX_COUNTED_SPANS`` strings: past it a second pass counts exactly the strings a bounded
        first pass kept (``SpanCounts.floor``)."""
        limit = MAX_COUNTED_SPANS
        counts: dict[str, int] = {}
        bound: dict[str, int] | None = {}
        floor = 0
        stats = self.stats
        for t in tqdm(range(len(stats.segs)), desc="count spans", unit="pre-token", leave=False):
            c, w = stats.counts[t], stats.weights[t]
            for i, j, s in self.iter_spans(t, max_chars):
                counts[s] = counts.get(s, 0) + c
                if bound is not None:
                    bound[s] = bound.get(s, 0) + w * (j - i)
            if len(counts) > limit:
                counts, cut = _shrink(counts, limit // 2)
                floor, bound = floor + cut, None
        if bound is None:
            counts, bound = dict.fromkeys(counts, 0), dict.fromkeys(counts, 0)
            for t in tqdm(range(len(stats.segs)), desc="count spans again", unit="pre-token", leave=False):
                c, w = stats.counts[t], stats.weights[t]
                for i, j, s in self.iter_spans(t, max_chars):
                    if s in counts:
                        counts[s] += c
                        bound[s] += w * (j - i)
        return SpanCounts(counts, bound, floor)

    def index(self, wanted: set[str], max_chars: int) -> Occurrences:
        flat = {s: array("i") for s in wanted}
        for t in tqdm(range(len(self.stats.segs)), desc="index spans", unit="pre-token", leave=False):
            for i, j, s in self.iter_spans(t, max_chars):
                if s in flat:
                    flat[s].extend((t, i, j))
        return Occurrences(flat)


def best_collapse(k: int, spans: Sequence[tuple[int, int]]) -> int:
    """Most tokens saved by collapsing non-overlapping spans (inclusive token ranges) of a k-token pre-token."""
    return prefix_best(k, spans)[k]


def prefix_best(k: int, spans: Sequence[tuple[int, int]]) -> list[int]:
    """``best[e]``: most tokens saved by non-overlapping ``spans`` within the first ``e`` tokens (``e`` = 0..k)."""
    ordered = sorted(spans, key=itemgetter(1))
    best = [0] * (k + 1)
    n = 0
    for e in range(1, k + 1):
        v = best[e - 1]
        while n < len(ordered) and ordered[n][1] == e - 1:
            i, j = ordered[n]
            v = max(v, best[i] + j - i)
            n += 1
        best[e] = v
    return best


def suffix_best(k: int, spans: Sequence[tuple[int, int]]) -> list[int]:
    """``best[s]``: most tokens saved by non-overlapping ``spans`` within tokens ``s``..``k-1`` (``s`` = 0..k)."""
    ordered = sorted(spans, key=itemgetter(0), reverse=True)
    best = [0] * (k + 1)
    n = 0
    for s in range(k - 1, -1, -1):
        v = best[s + 1]
        while n < len(ordered) and ordered[n][0] == s:
            i, j = ordered[n]
            v = max(v, j - i + best[j + 1])
            n += 1
        best[s] = v
    return best


class Greedy:
    """Marginal savings of strings given those already chosen, by pre-token ``counts`` (tokens saved) or
    ``weights`` (the ranking's per-document-capped counts).

    For each pre-token with chosen spans it keeps the best savings before and after every token boundary (the
    latter made when first asked for), so a string that lies once in such a pre-token is valued in constant
    time: the best without it, or the best before its span, its span and the best after it."""

    def __init__(self, stats: PretokenStats, occ: Occurrences, by_weight: bool = False):
        self.stats, self.occ = stats, occ
        self.mult = stats.weights if by_weight else stats.counts
        self.chosen: dict[int, list[tuple[int, int]]] = {}
        self.value: dict[int, int] = {}
        self.before: dict[int, list[int]] = {}
        self.after: dict[int, list[int]] = {}

    def gain(self, s: str) -> int:
        total = 0
        for t, spans in self.occ.places(s):
            have = self.chosen.get(t)
            if len(spans) == 1:
                i, j = spans[0]
                if not have:
                    total += self.mult[t] * (j - i)
                else:
                    after = self.after.get(t)
                    if after is None:
                        after = self.after[t] = suffix_best(len(self.stats.segs[t]), have)
                    total += self.mult[t] * max(0, self.before[t][i] + j - i + after[j + 1] - self.value[t])
            else:
                k = len(self.stats.segs[t])
                total += self.mult[t] * (best_collapse(k, (have or []) + spans) - self.value.get(t, 0))
        return total

    def add(self, s: str) -> None:
        for t, spans in self.occ.places(s):
            have = self.chosen.setdefault(t, [])
            have.extend(spans)
            k = len(self.stats.segs[t])
            self.before[t] = prefix_best(k, have)
            self.after.pop(t, None)
            self.value[t] = self.before[t][k]

    def used_count(self, s: str) -> int:
        return sum(self.stats.counts[t] * len(spans) for t, spans in self.occ.places(s))


def replay(stats: PretokenStats, pieces: Sequence[str], strings: Sequence[str]) -> list[int]:
    """Tokens each string saves on ``stats``' texts beyond the strings before it, in the given order."""
    max_chars = max((len(piece_to_bytes(s)) for s in strings), default=0)
    greedy = Greedy(stats, Spans(stats, pieces).index(set(strings), max_chars))
    gains = []
    for s in strings:
        gains.append(greedy.gain(s))
        greedy.add(s)
    return gains
