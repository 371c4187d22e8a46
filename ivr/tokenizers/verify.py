"""Check a distilled tokenizer against GPT-2's BPE: same ids for every text, same text for every id."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import permutations
from pathlib import Path

from tokenizers import Tokenizer

from ivr.atomic import write_json, write_text
from ivr.tokenizers.byte_level import readable
from ivr.tokenizers.distill import DistillSettings, bare_model, pre_token_counts

KINDS = ("tie", "conflict", "other")


class DistillationMismatch(RuntimeError):
    """The distilled tokenizer gives other ids than BPE where it was required not to."""


def conflict_witness(bare_bpe: Tokenizer, gold: Sequence[str], pred: Sequence[str]) -> str | None:
    """A string proving that no additive scores give ``gold`` here, or None if none is found.

    Cancel the pieces both segmentations share: the word needs ``score(G') > score(P')``. If some order
    of ``P'`` spells a string ``u`` that BPE itself segments as exactly that order, while ``G'`` also spells
    ``u``, then BPE on ``u`` needs ``score(P') >= score(G')``: both cannot hold (equal scores fall to the
    same tie rule in both places).
    """
    g, p = Counter(gold), Counter(pred)
    g_rest, p_rest = list((g - p).elements()), list((p - g).elements())
    if not g_rest or not p_rest or len(p_rest) > 4 or len(g_rest) > 8:
        return None
    for order in set(permutations(p_rest)):
        u = "".join(order)
        if bare_bpe.encode(u).tokens == list(order) and _spells(u, Counter(g_rest)):
            return u
    return None


def _spells(text: str, pieces: Counter) -> bool:
    """Whether ``text`` is a concatenation of exactly the multiset ``pieces``."""
    if not text:
        return not +pieces
    for piece in [q for q, n in pieces.items() if n > 0 and text.startswith(q)]:
        pieces[piece] -= 1
        ok = _spells(text[len(piece) :], pieces)
        pieces[piece] += 1
        if ok:
            return True
    return False


def classify(bare_bpe: Tokenizer, gold: Sequence[str], pred: Sequence[str]) -> str:
    """``tie`` (same pieces reordered), ``conflict`` (provably no additive scores) or ``other``."""
    if sorted(gold) == sorted(pred):
        return "tie"
    return "conflict" if conflict_witness(bare_bpe, gold, pred) else "other"


def compare_texts(distilled: Tokenizer, bpe: Tokenizer, texts: Iterable[str], name: str, examples: int = 20) -> dict:
    """Exact-match rates of ``distilled`` against ``bpe`` on ``texts``, with mismatches grouped by kind."""
    texts = list(texts)
    counts, n_docs = pre_token_counts(bpe, texts, desc=f"pre-tokenizing {name}")
    words = sorted(counts)
    bare_bpe = bare_model(bpe)
    gold = bare_bpe.encode_batch(words)
    pred = bare_model(distilled, keep_splits=True).encode_batch(words)
    occ = sum(counts.values())
    tokens = sum(counts[w] * len(g.ids) for w, g in zip(words, gold))
    by_kind: dict[str, list[dict]] = {k: [] for k in KINDS}
    bad_occ = bad_tokens = 0
    for w, g, p in zip(words, gold, pred):
        if g.ids == p.ids:
            continue
        bad_occ += counts[w]
        bad_tokens += counts[w] * len(g.ids)
        kind = classify(bare_bpe, g.tokens, p.tokens)
        by_kind[kind].append(
            {"word": readable(w), "count": counts[w], "bpe": [readable(t) for t in g.tokens],
             "distilled": [readable(t) for t in p.tokens]}
        )
    doc_ok = sum(
        a.ids == b.ids for a, b in zip(bpe.encode_batch(texts), distilled.encode_batch(texts))
    ) if texts else 0
    bad_types = sum(len(v) for v in by_kind.values())
    return {
        "documents": n_docs,
        "word_occurrences": occ,
        "word_types": len(words),
        "bpe_tokens": tokens,
        "mismatched_occurrences": bad_occ,
        "mismatched_types": bad_types,
        "rates": {
            "word_occurrence": _rate(occ - bad_occ, occ),
            "word_type": _rate(len(words) - bad_types, len(words)),
            "token": _rate(tokens - bad_tokens, tokens),
            "document": _rate(doc_ok, n_docs),
        },
        "mismatches": {
            k: {
                "types": len(v),
                "occurrences": sum(e["count"] for e in v),
                "examples": sorted(v, key=lambda e: (-e["count"], e["word"]))[:examples],
            }
            for k, v in by_kind.items()
        },
    }


def _rate(ok: int, total: int) -> float:
    return ok / total if total else 1.0


def compare_ids(distilled: Tokenizer, bpe: Tokenizer, random_sequences: int = 2000, seed: int = 0) -> dict:
    """Same id->piece map, same ``decode([i])`` for every id, same decode of random id sequences."""
    size = bpe.get_vocab_size(with_added_tokens=True)
    same_map = distilled.get_vocab(with_added_tokens=True) == bpe.get_vocab(with_added_tokens=True)
    singles = [[i] for i in range(size)]
    bad_single = [
        i for i, (a, b) in enumerate(zip(distilled.decode_batch(singles, False), bpe.decode_batch(singles, False)))
        if a != b
    ]
    rng = random.Random(seed)
    seqs = [[rng.randrange(size) for _ in range(rng.randint(1, 64))] for _ in range(random_sequences)]
    bad_seq = sum(a != b for a, b in zip(distilled.decode_batch(seqs, False), bpe.decode_batch(seqs, False)))
    return {
        "vocab_size": distilled.get_vocab_size(with_added_tokens=True),
        "id_to_token_identical": same_map,
        "single_id_decode_mismatches": len(bad_single),
        "single_id_decode_mismatch_examples": bad_single[:20],
        "random_sequences": random_sequences,
        "random_sequence_decode_mismatches": bad_seq,
    }


def verify_tokenizer(
    distilled: Tokenizer,
    bpe: Tokenizer,
    eval_sets: dict[str, Iterable[str]],
    report_md: Path,
    report_json: Path,
    settings: DistillSettings | None = None,
    fit_info: dict | None = None,
) -> dict:
    """Compare ``distilled`` with ``bpe`` on every text set and on all ids; write both reports; return the summary."""
    settings = settings or DistillSettings()
    summary = {
        "ids": compare_ids(distilled, bpe, settings.random_id_sequences, settings.seed),
        "sets": {name: compare_texts(distilled, bpe, texts, name, settings.examples) for name, texts in eval_sets.items()},
    }
    if fit_info is not None:
        summary["fit"] = fit_info
    write_json(report_json, summary)
    write_text(report_md, render_markdown(summary))
    return summary


def render_markdown(summary: dict) -> str:
    ids = summary["ids"]
    lines = [
        "# Tokenizer distillation report",
        "",
        "Distilled Unigram tokenizer against GPT-2's BPE. A word is one byte-level pre-token; it matches when",
        "its ids are exactly BPE's. *tie*: the same pieces in another order (no scores can change that);",
        "*conflict*: a sub-string proves that no additive scores give BPE's result; *other*: the rest.",
        "",
        "## Ids",
        "",
        f"- vocabulary size: {ids['vocab_size']}; id -> piece map identical: **{ids['id_to_token_identical']}**",
        f"- `decode([i])` mismatches over all ids: **{ids['single_id_decode_mismatches']}**",
        f"- random id sequences decoded differently: **{ids['random_sequence_decode_mismatches']}** "
        f"of {ids['random_sequences']}",
        "",
        "## Exact-match rates",
        "",
        "| set | documents | word occurrences | word occ. exact | word types exact | tokens exact | documents exact |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["sets"].items():
        r = s["rates"]
        lines.append(
            f"| {name} | {s['documents']} | {s['word_occurrences']} | {r['word_occurrence']:.6%} | "
            f"{r['word_type']:.6%} | {r['token']:.6%} | {r['document']:.4%} |"
        )
    for name, s in summary["sets"].items():
        lines += ["", f"## Mismatches: {name}", "", "| kind | types | occurrences |", "|---|---:|---:|"]
        lines += [f"| {k} | {m['types']} | {m['occurrences']} |" for k, m in s["mismatches"].items()]
        for k, m in s["mismatches"].items():
            if m["examples"]:
                lines += ["", f"Most frequent {k} mismatches:", "", "| word | count | BPE | distilled |", "|---|---:|---|---|"]
                lines += [
                    f"| `{_md(e['word'])}` | {e['count']} | {_md(' · '.join(e['bpe']))} | {_md(' · '.join(e['distilled']))} |"
                    for e in m["examples"]
                ]
    fit = summary.get("fit")
    if fit:
        lines += ["", "## Fit", ""]
        for key in ("fit_word_types", "corpus_word_types", "rounds", "constraints", "changed_pieces",
                    "fit_mismatched_types", "fit_mismatched_tie_types", "fit_seconds", "python_peak_mb"):
            if key in fit:
                lines.append(f"- {key.replace('_', ' ')}: {fit[key]}")
        rules = [r for r in fit.get("split_rules_considered", []) if r.get("accepted")]
        lines.append(f"- split rules accepted for: {' '.join(repr(readable(r['char'])) for r in rules) or 'none'}")
        if fit.get("lp_unmet_words"):
            lines.append(f"- words whose constraints no scores met: {len(fit['lp_unmet_words'])}")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "\\n").replace("`", "'")
