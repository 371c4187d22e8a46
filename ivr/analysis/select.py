"""Choose which ids to free and which domain strings take them over (In-place Vocabulary Reassignment).

New tokens are strings made of two or more consecutive distilled tokens inside one pre-token, so the
pre-tokenizer never changes. They are picked greedily by the tokens they actually save on the training
texts, recomputed against what is already picked. Freed ids are tokens the domain (almost) never uses
and general English (a word-frequency prior, plus optional reference texts) uses least.
"""

from __future__ import annotations

import heapq
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ivr.atomic import write_text
from ivr.general_english import most_frequent_english
from ivr.tokenizers.byte_level import EOS_TOKEN, piece_to_bytes, readable, single_byte_pieces, text_to_piece
from ivr.tokenizers.candidates import Replacement, write_candidates
from ivr.tokenizers.io import pre_tokens
from ivr.tokenizers.pieces import single_pretoken, vocab_pieces


@dataclass
class SelectSettings:
    """Settings of the choice of ids to free and strings to give them (``data.select.*``)."""

    num_replacements: int = 2000
    """How many ids to reassign at most (forced tokens included)."""
    min_count: int = 20
    """A new token must occur at least this often in the training texts, and an id is freed only if
    its own token occurs fewer times than this there."""
    max_token_chars: int = 32
    """Longest new token, in characters."""
    protected_tokens: list[str] = field(default_factory=list)
    """Tokens never freed, as readable text (``" the"``) or byte-level piece (``"Ġthe"``)."""
    protected_ids: list[int] = field(default_factory=list)
    """Ids never freed."""
    forced_tokens_path: str | None = None
    """UTF-8 file of terms that must become tokens, one per line, ahead of the ranked ones. A line is
    taken verbatim (leading spaces count); write it as a JSON string (``"    return"``) to show spaces
    or escapes. Blank lines and lines starting with ``#`` are skipped."""
    general_reference_paths: list[str] = field(default_factory=list)
    """UTF-8 text files of general (non-domain) text; tokens they use are freed last."""
    general_prior_words: int = 50000
    """How many of ``wordfreq``'s most frequent English words feed the general-frequency prior (0: none)."""


@dataclass
class Selection:
    replacements: list[Replacement]
    summary: dict


class ForcedTokensError(ValueError):
    pass


@dataclass
class PretokenStats:
    """Training texts as distinct pre-tokens with their counts and distilled segmentations."""

    pieces: list[str]
    counts: list[int]
    segs: list[list[int]]
    id_counts: np.ndarray
    total_tokens: int
    total_bytes: int
    documents: int


def pretoken_stats(tokenizer: Tokenizer, texts: Iterable[str]) -> PretokenStats:
    counter: Counter[str] = Counter()
    n_bytes = n_docs = 0
    for text in tqdm(texts, desc="pre-tokenize", unit="doc", leave=False):
        counter.update(pre_tokens(tokenizer, text))
        n_bytes += len(text.encode("utf-8"))
        n_docs += 1
    pieces = list(counter)
    counts = [counter[p] for p in pieces]
    model = tokenizer.model
    segs = [[t.id for t in model.tokenize(p)] for p in tqdm(pieces, desc="segment", unit="pre-token", leave=False)]
    flat = np.fromiter((i for s in segs for i in s), dtype=np.int64)
    weights = np.repeat(np.asarray(counts, dtype=np.int64), [len(s) for s in segs])
    id_counts = np.bincount(flat, weights=weights, minlength=tokenizer.get_vocab_size()).astype(np.int64)
    return PretokenStats(pieces, counts, segs, id_counts, int(id_counts.sum()), n_bytes, n_docs)


def read_forced_tokens(path: str | Path, tokenizer: Tokenizer) -> list[str]:
    """Forced terms as byte-level pieces; a term the pre-tokenizer would split is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        raise ForcedTokensError(f"{path}: forced tokens file not found")
    terms: list[str] = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        line = line.rstrip("\r")
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        term = line
        if line.startswith('"'):
            try:
                term = json.loads(line)
            except json.JSONDecodeError as err:
                raise ForcedTokensError(f"{path}:{lineno}: not a valid JSON string: {err}") from None
        if not single_pretoken(tokenizer, term):
            parts = [readable(p) for p in pre_tokens(tokenizer, term)]
            raise ForcedTokensError(f"{path}:{lineno}: {term!r} is split by the pre-tokenizer into {parts}")
        terms.append(text_to_piece(term))
    return terms


def general_prior(tokenizer: Tokenizer, settings: SelectSettings) -> np.ndarray:
    """Estimated uses per million tokens of general text, per id (0 where nothing suggests any use)."""
    prior = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    if settings.general_prior_words > 0:
        freq = dict(most_frequent_english(settings.general_prior_words))
        words = list(freq)
        # running text mostly has words after a space, sometimes capitalised or line-initial
        variants = [(" {}", 0.7), ("{}", 0.1), (" {}", 0.15), ("{}", 0.05)]
        for k, (fmt, weight) in enumerate(variants):
            forms = [fmt.format(w.capitalize() if k >= 2 else w) for w in words]
            for w, enc in zip(words, tokenizer.encode_batch(forms, add_special_tokens=False)):
                np.add.at(prior, enc.ids, freq[w] * weight * 1e6)
    for ref in settings.general_reference_paths:
        path = Path(ref)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: general reference file not found (data.select.general_reference_paths)")
        ids = tokenizer.encode(path.read_text(encoding="utf-8"), add_special_tokens=False).ids
        if ids:
            counts = np.bincount(np.asarray(ids), minlength=len(prior))
            prior = np.maximum(prior, counts * 1e6 / len(ids))
    return prior


def own_string_emitted(tokenizer: Tokenizer, pieces: Sequence[str]) -> np.ndarray:
    """Whether each piece is what the tokenizer emits for its own string (unreachable ones are freed first)."""
    ok = np.ones(len(pieces), dtype=bool)
    for i, p in enumerate(pieces):
        if p != EOS_TOKEN:
            ok[i] = [t.id for t in tokenizer.model.tokenize(p)] == [i]
    return ok


class _Spans:
    """Candidate strings and where they lie, as token spans, in the distinct pre-tokens."""

    def __init__(self, stats: PretokenStats, pieces: Sequence[str], max_chars: int):
        self.stats, self.pieces, self.max_chars = stats, pieces, max_chars
        raw = [piece_to_bytes(p) for p in pieces]
        # a span must start and end on a character boundary so every new token is valid UTF-8 text
        self.cont_start = [bool(b) and 0x80 <= b[0] < 0xC0 for b in raw]
        self.chars = [sum(1 for x in b if not 0x80 <= x < 0xC0) for b in raw]

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

    def count(self) -> tuple[dict[str, int], dict[str, int]]:
        counts: dict[str, int] = {}
        bound: dict[str, int] = {}
        for t in tqdm(range(len(self.stats.segs)), desc="count spans", unit="pre-token", leave=False):
            c = self.stats.counts[t]
            for i, j, s in self.iter_spans(t, self.max_chars):
                counts[s] = counts.get(s, 0) + c
                bound[s] = bound.get(s, 0) + c * (j - i)
        return counts, bound

    def index(self, wanted: set[str], max_chars: int) -> dict[str, dict[int, list[tuple[int, int]]]]:
        occ: dict[str, dict[int, list[tuple[int, int]]]] = {s: {} for s in wanted}
        for t in tqdm(range(len(self.stats.segs)), desc="index spans", unit="pre-token", leave=False):
            for i, j, s in self.iter_spans(t, max_chars):
                if s in occ:
                    occ[s].setdefault(t, []).append((i, j))
        return occ


def best_collapse(k: int, spans: Sequence[tuple[int, int]]) -> int:
    """Most tokens saved by collapsing non-overlapping spans (inclusive token ranges) of a k-token pre-token."""
    ordered = sorted(spans, key=lambda s: s[1])
    best = [0] * (k + 1)
    n = 0
    for e in range(1, k + 1):
        v = best[e - 1]
        while n < len(ordered) and ordered[n][1] == e - 1:
            i, j = ordered[n]
            v = max(v, best[i] + j - i)
            n += 1
        best[e] = v
    return best[k]


class _Greedy:
    """Lazy greedy choice of new tokens by marginal saving, given what is already chosen."""

    def __init__(self, stats: PretokenStats, occ: dict[str, dict[int, list[tuple[int, int]]]]):
        self.stats, self.occ = stats, occ
        self.chosen: dict[int, list[tuple[int, int]]] = {}
        self.value: dict[int, int] = {}

    def gain(self, s: str) -> int:
        total = 0
        for t, spans in self.occ[s].items():
            have = self.chosen.get(t)
            if not have and len(spans) == 1:
                i, j = spans[0]
                total += self.stats.counts[t] * (j - i)
            else:
                k = len(self.stats.segs[t])
                total += self.stats.counts[t] * (best_collapse(k, (have or []) + spans) - self.value.get(t, 0))
        return total

    def add(self, s: str) -> None:
        for t, spans in self.occ[s].items():
            have = self.chosen.setdefault(t, [])
            have.extend(spans)
            self.value[t] = best_collapse(len(self.stats.segs[t]), have)

    def used_count(self, s: str) -> int:
        return sum(self.stats.counts[t] * len(spans) for t, spans in self.occ[s].items())


def select_replacements(
    distilled: Tokenizer,
    train_texts: Iterable[str],
    settings: SelectSettings,
    candidates_csv: str | Path,
    selection_log: str | Path,
) -> Selection:
    """Pick new tokens and the ids they take; write ``replacement_candidates.csv`` and ``selection_log.md``."""
    pieces = vocab_pieces(distilled)
    vocab = set(pieces)
    stats = pretoken_stats(distilled, train_texts)
    if stats.total_tokens == 0:
        raise ValueError("no training text to select replacements from")

    forced = read_forced_tokens(settings.forced_tokens_path, distilled) if settings.forced_tokens_path else []
    spans = _Spans(stats, pieces, settings.max_token_chars)
    counts, bound = spans.count()
    excluded = {
        "below_min_count": sum(1 for c in counts.values() if c < settings.min_count),
        "already_in_vocabulary": 0,
    }
    ranked = {s for s, c in counts.items() if c >= settings.min_count}
    excluded["already_in_vocabulary"] = len(ranked & vocab)
    ranked -= vocab
    # the distilled pre-tokenizer's run rules depend on context: a string that is one pre-token inside a
    # word may be cut when it stands alone, and remap (rightly) refuses such a piece
    split_alone = {s for s in ranked if not single_pretoken(distilled, piece_to_bytes(s).decode("utf-8"))}
    excluded["split_when_alone"] = len(split_alone)
    ranked -= split_alone

    forced_notes: list[str] = []
    forced_ok: list[str] = []
    for f in forced:
        if f in vocab:
            forced_notes.append(f"`{_md(readable(f))}` is already a token (id {pieces.index(f)}); nothing to add")
        elif f in forced_ok:
            forced_notes.append(f"`{_md(readable(f))}` is listed twice; kept once")
        else:
            forced_ok.append(f)
    occ = spans.index(ranked | set(forced_ok), max([settings.max_token_chars] + [len(readable(f)) for f in forced_ok]))

    greedy = _Greedy(stats, occ)
    picked: list[tuple[str, int, str]] = []
    for f in forced_ok:
        g = greedy.gain(f)
        greedy.add(f)
        picked.append((f, g, "forced"))
    heap = [(-bound[s], s) for s in ranked if s not in forced_ok]
    heapq.heapify(heap)
    fresh: dict[str, int] = {}
    with tqdm(total=settings.num_replacements, desc="select", unit="token", leave=False) as bar:
        bar.update(len(picked))
        while heap and len(picked) < settings.num_replacements:
            neg, s = heapq.heappop(heap)
            if fresh.get(s) == len(picked):
                if -neg <= 0:
                    break
                greedy.add(s)
                picked.append((s, -neg, "ranked"))
                bar.update(1)
                continue
            fresh[s] = len(picked)
            heapq.heappush(heap, (-greedy.gain(s), s))

    # ids to free: ascending domain use, then general use, unreachable pieces first, then latest merge
    protected = set(settings.protected_ids) | {pieces.index(p) for p in _protected_pieces(settings, vocab)}
    bytes_ = single_byte_pieces()
    prior = general_prior(distilled, settings)
    emitted = own_string_emitted(distilled, pieces)
    eligible = [
        i
        for i, p in enumerate(pieces)
        if p != EOS_TOKEN and p not in bytes_ and i not in protected and stats.id_counts[i] < settings.min_count
    ]
    eligible.sort(key=lambda i: (int(stats.id_counts[i]), prior[i], bool(emitted[i]), -i))
    excluded.update(
        single_byte=len(bytes_),
        end_of_text=1,
        protected=len(protected),
        domain_count_at_least_min=int((stats.id_counts >= settings.min_count).sum()),
    )
    picked = picked[: len(eligible)]  # forced tokens come first, so they survive a shortage of free ids

    replacements = []
    for rank, ((s, g, reason), fid) in enumerate(zip(picked, eligible), 1):
        replacements.append(
            Replacement(
                rank=rank,
                new_text=readable(s),
                new_token=s,
                domain_count=greedy.used_count(s),
                gpt2_ids=[t.id for t in distilled.model.tokenize(s)],
                estimated_saving=int(g),
                estimated_saving_pct=100.0 * g / stats.total_tokens,
                freed_id=fid,
                freed_token=pieces[fid],
                freed_text=readable(pieces[fid]),
                freed_domain_count=int(stats.id_counts[fid]),
                freed_general_per_million=float(prior[fid]),
                reason=reason,
            )
        )
    write_candidates(candidates_csv, replacements)
    saving = sum(r.estimated_saving for r in replacements)
    cost = sum(r.freed_domain_count for r in replacements)
    summary = {
        "documents": stats.documents,
        "train_bytes": stats.total_bytes,
        "train_tokens": stats.total_tokens,
        "distinct_pretokens": len(stats.pieces),
        "candidate_strings": len(ranked),
        "forced": len(forced_ok),
        "reassigned": len(replacements),
        "estimated_saving_tokens": saving,
        "freed_tokens_domain_uses": cost,
        "expected_saving_pct": 100.0 * (saving - cost) / stats.total_tokens,
        "excluded": excluded,
    }
    write_text(selection_log, _selection_log(settings, summary, replacements, forced_notes))
    return Selection(replacements, summary)


def _protected_pieces(settings: SelectSettings, vocab: set[str]) -> set[str]:
    out = set()
    for p in settings.protected_tokens:
        if p in vocab:
            out.add(p)
        if text_to_piece(p) in vocab:
            out.add(text_to_piece(p))
    return out


def _md(text: str) -> str:
    """Text shown safely inside a Markdown table cell: escapes visible, pipes and backticks neutralised."""
    return json.dumps(text, ensure_ascii=False)[1:-1].replace("|", "\\|").replace("`", "ˋ")


def _selection_log(settings: SelectSettings, summary: dict, reps: Sequence[Replacement], notes: list[str]) -> str:
    ex = summary["excluded"]
    lines = [
        "# IVR selection log",
        "",
        "## Parameters",
        "",
        *[f"- `{k}`: `{v}`" for k, v in asdict(settings).items()],
        "",
        "## Totals",
        "",
        (
            f"- training documents: {summary['documents']}, bytes: {summary['train_bytes']}, "
            f"distilled tokens: {summary['train_tokens']}, distinct pre-tokens: {summary['distinct_pretokens']}"
        ),
        f"- candidate strings (≥ {settings.min_count} uses, not yet tokens): {summary['candidate_strings']}",
        f"- ids reassigned: {summary['reassigned']} ({summary['forced']} forced)",
        (
            f"- estimated saving on the training texts: {summary['estimated_saving_tokens']} tokens, "
            f"minus {summary['freed_tokens_domain_uses']} uses of freed tokens = "
            f"**{summary['expected_saving_pct']:.2f}%** of tokens"
        ),
        "",
        "## Why ids or strings were left out",
        "",
        f"- {ex['single_byte']} single-byte tokens: never freed, every byte must stay encodable.",
        f"- {ex['end_of_text']} `<|endoftext|>`: the model's document separator, never freed.",
        f"- {ex['protected']} protected ids/tokens: named in `protected_tokens`/`protected_ids`.",
        f"- {ex['domain_count_at_least_min']} tokens used ≥ {settings.min_count} times in the domain: freeing them would cost tokens.",
        f"- {ex['below_min_count']} span strings used < {settings.min_count} times: too rare to be worth an id.",
        (
            f"- {ex['already_in_vocabulary']} frequent span strings that already are a token (which the distilled "
            "tokenizer does not emit there): a piece cannot appear twice."
        ),
        (
            f"- {ex['split_when_alone']} frequent span strings the pre-tokenizer's run rules cut when they stand "
            "alone: a piece must survive pre-tokenization on its own."
        ),
        *[f"- forced: {n}" for n in notes],
        "",
        "## Top new tokens",
        "",
        "| rank | new token | occurrences | GPT-2 tokens | saving | saving % | freed id | old token | old uses | general /M |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in reps[:50]:
        lines.append(
            f"| {r.rank} | `{_md(r.new_text)}` | {r.domain_count} | {len(r.gpt2_ids)} | {r.estimated_saving} | "
            f"{r.estimated_saving_pct:.3f} | {r.freed_id} | `{_md(r.freed_text)}` | {r.freed_domain_count} | "
            f"{r.freed_general_per_million:.3g} |"
        )
    return "\n".join(lines) + "\n"
