"""Check a distilled tokenizer against its source BPE: same ids for every text, same text for every id, the same
added tokens at the same ids."""

from __future__ import annotations

import random
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
from itertools import islice, permutations
from pathlib import Path

from tokenizers import Encoding, Tokenizer
from tqdm import tqdm

from ivr.atomic import read_json_object, write_json, write_text
from ivr.cleaned_corpus import batched
from ivr.figures import exact_share
from ivr.markdown_text import LEGEND, code, inputs_section, pieces, setting_text
from ivr.tokenizers.byte_level import byte_to_char, readable
from ivr.tokenizers.gpt2_pre_tokens import PreTokenCutter
from ivr.tokenizers.io import added_token_ids, encoded_pre_tokens, pre_tokens
from ivr.tokenizers.unigram import bare_model

KINDS = ("tie", "conflict", "other")


@dataclass
class VerifySettings:
    """Knobs of the check of a distilled tokenizer against BPE (``data.verify.*``)."""

    random_id_sequences: int = 2000
    """How many random id sequences verification decodes with both tokenizers."""
    examples: int = 20
    """How many of the most frequent mismatches the report lists per kind."""
    seed: int = 0
    """Seed for the random id sequences."""

    def __post_init__(self) -> None:
        for name in ("random_id_sequences", "examples"):
            if not getattr(self, name) >= 0:  # NaN fails too
                raise ValueError(f"data.verify.{name} must be at least 0, got {getattr(self, name)}")


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


def _count_segments(counts: Counter, ref: list[str], got: list[str],
                    kept: Callable[[str], str] = str) -> set[tuple[str, tuple[str, ...]]]:
    """Count (BPE word, the distilled tokenizer's pre-tokens inside it) over a text into ``counts``; ``ref`` are
    BPE's pre-tokens of the text, ``got`` the distilled tokenizer's; ``kept(w)``: what ``got`` holds of a BPE word
    (``_dropped_bytes``).

    The distilled pre-tokenizer may cut a BPE word further (split rules), depending on what follows it, so the
    cut is taken from each text in place. A distilled pre-token crossing a BPE word boundary is counted with the
    BPE word it ends in, whose segments then do not spell it, and the words before get segments that do not spell
    them either: each counts as a mismatch. Returns the keys counted.
    """
    if ref == got:
        keys = [(w, (w,)) for w in ref]
        counts.update(keys)
        return set(keys)
    counted = set()
    # both cover the text without gaps but for the bytes both drop: a pre-token's end is the length of the
    # byte-level text up to it
    j = got_end = ref_end = 0
    for w in ref:
        ref_end += len(kept(w))
        segs = []
        while j < len(got) and got_end + len(got[j]) <= ref_end:
            got_end += len(got[j])
            segs.append(got[j])
            j += 1
        counts[(w, tuple(segs))] += 1
        counted.add((w, tuple(segs)))
    return counted


def _dropped_bytes(bpe: Tokenizer) -> Callable[[str], str]:
    """What a byte-level BPE word keeps of its text: BPE drops a byte its vocabulary lacks (SmolLM2 has no 0x04),
    and the distilled tokenizer cuts it out before its model (``distill.pre_tokenizer.with_rules``), so its
    pre-tokens spell the words without it."""
    missing = "".join(c for c in byte_to_char().values() if bpe.token_to_id(c) is None)
    if not missing:
        return str
    table = str.maketrans("", "", missing)
    return lambda w: w.translate(table)


def compare_texts(
    distilled: Tokenizer,
    bpe: Tokenizer,
    texts: Iterable[str],
    name: str,
    examples: int = 20,
    bpe_ids: Iterable[Sequence[int]] | None = None,
    word_counts: Counter | None = None,
    on_encoded: Callable[[str, Encoding], None] | None = None,
) -> dict:
    """Exact-match rates of ``distilled`` against ``bpe`` on ``texts``, with mismatches grouped by kind.

    A word is one BPE pre-token; its distilled ids are the model's ids of the distilled pre-tokens within it
    (in context, so split rules act as they do on whole texts). A document that gets exactly BPE's ids counts
    every word of it as matched; only the others are cut into words by both pre-tokenizers.

    ``bpe_ids``: BPE's ids of each text, in order (``analyze``'s id sequences), which spares encoding the texts
    with BPE again. ``word_counts``: BPE's pre-token counts over all of ``texts``, when known (the distillation's
    fit counts them), which spares pre-tokenizing the documents that match.

    Memory: the words of the documents that differ, with their encodings, and, without ``word_counts``, the set
    of the matching documents' distinct words (for the word-type figures); a matching document's BPE tokens are
    the length of its ids, so its words are never encoded.

    ``on_encoded(text, encoding)`` is called with each text's distilled encoding, in order (selection's pre-token
    table is recorded from them: ``ivr.analysis.pretoken_table``).
    """
    # one streaming pass: a batch of texts at a time is encoded whole by the distilled tokenizer;
    # added tokens are left out on both sides, as analyze stores BPE's ids
    matched_words: set[str] = set()  # distinct words of the documents that get BPE's ids, without word_counts
    matched_occ = matched_tokens = 0
    counts: Counter = Counter()  # (BPE word, distilled pre-tokens in it) in the other documents
    ids_of = iter(bpe_ids) if bpe_ids is not None else None
    cut_bpe = PreTokenCutter(bpe)
    kept = _dropped_bytes(bpe)
    added = frozenset(added_token_ids(distilled))
    n_docs = doc_ok = 0
    differing: list[array] = []  # each differing document's (word, segments) keys, by their index
    key_index: dict[tuple, int] = {}
    with tqdm(desc=f"verifying {name}", unit="B", unit_scale=True, mininterval=2.0) as bar:
        for batch in batched(texts, 64):
            ours = distilled.encode_batch(batch, add_special_tokens=False)
            if ids_of is None:
                theirs = [e.ids for e in bpe.encode_batch(batch, add_special_tokens=False)]
            else:
                theirs = list(islice(ids_of, len(batch)))
                if len(theirs) < len(batch):
                    raise ValueError(f"verifying {name}: fewer BPE id sequences than texts")
            for text, a, b in zip(batch, ours, theirs):
                if on_encoded is not None:
                    on_encoded(text, a)
                if a.ids == list(b):
                    doc_ok += 1
                    matched_tokens += len(b)
                    if word_counts is None:
                        words = cut_bpe(text)
                        matched_occ += len(words)
                        matched_words.update(words)
                    continue
                # the encoding's tokens spell its pre-tokens: cutting the text again costs more than encoding it
                got = encoded_pre_tokens(a, added)
                keys_of = _count_segments(counts, cut_bpe(text), pre_tokens(distilled, text) if got is None else got,
                                          kept)
                # as small integers: a key's tuple is kept once, by the count, not once per document
                differing.append(array("l", (key_index.setdefault(k, len(key_index)) for k in keys_of)))
            n_docs += len(batch)
            bar.update(sum(len(t.encode("utf-8")) for t in batch))
    if ids_of is not None and next(ids_of, None) is not None:
        raise ValueError(f"verifying {name}: more BPE id sequences than texts")
    other: Counter = Counter()  # occurrences of each word in the documents that differ
    for (w, _), c in counts.items():
        other[w] += c
    if word_counts is None:
        occ = matched_occ + sum(other.values())
        n_types = len(matched_words) + sum(w not in matched_words for w in other)
    else:  # the count covers every document: its words are the set's
        if any(word_counts.get(w, 0) < c for w, c in other.items()):
            raise ValueError(f"verifying {name}: the given word counts are not the counts of these texts' words")
        occ = sum(c for c in word_counts.values() if c > 0)
        n_types = sum(c > 0 for c in word_counts.values())
    keys = sorted(counts)
    # the bare models (a second or so each to build) only where a document differs
    bare_bpe = bare_model(bpe) if keys else None
    gold = dict(zip(other, bare_bpe.encode_batch(list(other)))) if keys else {}
    segs = sorted({s for _, ss in keys for s in ss})
    seg_enc = dict(zip(segs, bare_model(distilled).encode_batch(segs))) if keys else {}
    tokens = matched_tokens + sum(c * len(gold[w].ids) for w, c in other.items())
    by_kind: dict[str, list[dict]] = {k: [] for k in KINDS}
    bad_occ = bad_tokens = 0
    bad_words: set[str] = set()
    bad_keys: set[tuple] = set()
    for w, ss in keys:
        g = gold[w]
        p_ids = [i for s in ss for i in seg_enc[s].ids]
        spelled = "".join(ss) == kept(w)
        if spelled and g.ids == p_ids:
            continue
        bad_keys.add((w, ss))
        c = counts[(w, ss)]
        p_tokens = [t for s in ss for t in seg_enc[s].tokens]
        bad_occ += c
        bad_tokens += c * len(g.ids)
        bad_words.add(w)
        kind = classify(bare_bpe, g.tokens, p_tokens) if spelled else "other"
        by_kind[kind].append(
            {"word": readable(w), "count": c, "bpe": [readable(t) for t in g.tokens],
             "distilled": [readable(t) for t in p_tokens]}
        )
    bad = {key_index[k] for k in bad_keys if k in key_index}
    return {
        "documents": n_docs,
        "word_occurrences": occ,
        "word_types": n_types,
        "bpe_tokens": tokens,
        "mismatched_occurrences": bad_occ,
        "mismatched_types": len(bad_words),
        # documents whose ids differ though every word of them matches (what lies between the words: added
        # tokens, the pre-tokenizer's context); none is expected, and `strict` fails on any
        "documents_differing_between_words": sum(1 for keys_of in differing if not any(k in bad for k in keys_of)),
        "rates": {
            "word_occurrence": _rate(occ - bad_occ, occ),
            "word_type": _rate(n_types - len(bad_words), n_types),
            "token": _rate(tokens - bad_tokens, tokens),
            "document": _rate(doc_ok, n_docs),
        },
        "mismatches": {
            k: {
                "types": len({e["word"] for e in v}),
                "occurrences": sum(e["count"] for e in v),
                "examples": sorted(v, key=lambda e: (-e["count"], e["word"]))[:examples],
            }
            for k, v in by_kind.items()
        },
    }


def _rate(ok: int, total: int) -> float | None:
    """``ok`` of ``total``; None (no rate: shown "n/a") for an empty set, never 100% of nothing."""
    return ok / total if total else None


def compare_ids(distilled: Tokenizer, bpe: Tokenizer, random_sequences: int = 2000, seed: int = 0) -> dict:
    """Same id->piece map, same added tokens (content and flags) at the same ids, same ``decode([i])`` for every
    id, same decode of random id sequences, with the special tokens and without them."""
    size = bpe.get_vocab_size(with_added_tokens=True)
    same_map = distilled.get_vocab(with_added_tokens=True) == bpe.get_vocab(with_added_tokens=True)
    ours, theirs = distilled.get_added_tokens_decoder(), bpe.get_added_tokens_decoder()
    # not ``normalized``: behind the ByteLevel normalizer every added token must match the raw text
    flags = lambda t: (t.content, t.special, t.lstrip, t.rstrip, t.single_word)  # noqa: E731
    bad_added = sorted(i for i in set(ours) | set(theirs) if i not in ours or i not in theirs
                       or flags(ours[i]) != flags(theirs[i]))
    singles = [[i] for i in range(size)]
    bad_single = [
        i for i, (a, b) in enumerate(zip(distilled.decode_batch(singles, False), bpe.decode_batch(singles, False)))
        if a != b
    ]
    rng = random.Random(seed)
    seqs = [[rng.randrange(size) for _ in range(rng.randint(1, 64))] for _ in range(random_sequences)]
    # with the special tokens, and without them as generated text is decoded (which goes by each id's piece)
    decoded = [(distilled.decode_batch(seqs, skip), bpe.decode_batch(seqs, skip)) for skip in (False, True)]
    bad_seq = sum(a != b or c != d for a, b, c, d in zip(*decoded[0], *decoded[1]))
    same_map = same_map and all(distilled.id_to_token(i) == bpe.id_to_token(i) for i in range(size))
    return {
        "vocab_size": distilled.get_vocab_size(with_added_tokens=True),
        "id_to_token_identical": same_map,
        "added_tokens": len(theirs),
        "special_tokens": sum(t.special for t in theirs.values()),
        "added_token_mismatches": len(bad_added),
        "added_token_mismatch_examples": bad_added[:20],
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
    settings: VerifySettings | None = None,
    fit_info: dict | None = None,
    fit_settings: dict | None = None,
    bpe_ids: dict[str, Iterable[Sequence[int]]] | None = None,
    word_counts: dict[str, Counter] | None = None,
    on_encoded: dict[str, Callable[[str, Encoding], None]] | None = None,
    inputs: dict | None = None,
) -> dict:
    """Compare ``distilled`` with ``bpe`` on every text set and on all ids; write both reports; return the summary.

    ``inputs``: what the tokenizers and texts are (files and their hashes, the corpus and its split), recorded as
    given, first in both reports.

    ``fit_info`` (the fit's statistics) and ``fit_settings`` (the settings it ran with, JSON-ready) are recorded
    as given, the fit settings ahead of ``settings`` in the report's settings. ``bpe_ids`` and ``word_counts``:
    per set, what ``compare_texts`` may reuse instead of encoding or pre-tokenizing the set again; ``on_encoded``:
    per set, what is called with each text's distilled encoding. ``bpe`` is compared reading special-token text
    in a document as ``distilled`` does (``encode_special_tokens``)."""
    settings = settings or VerifySettings()
    bpe_ids, word_counts, on_encoded = bpe_ids or {}, word_counts or {}, on_encoded or {}
    if bpe.encode_special_tokens != distilled.encode_special_tokens:
        # word statistics cut text by the regex alone: both must read "<|endoftext|>" in a text the same way
        bpe = Tokenizer.from_str(bpe.to_str())  # the flag is not in the JSON: a copy, the caller's left alone
        bpe.encode_special_tokens = distilled.encode_special_tokens
    summary = {
        **({"inputs": inputs} if inputs else {}),
        "ids": compare_ids(distilled, bpe, settings.random_id_sequences, settings.seed),
        "sets": {name: compare_texts(distilled, bpe, texts, name, settings.examples, bpe_ids.get(name),
                                     word_counts.get(name), on_encoded.get(name))
                 for name, texts in eval_sets.items()},
    }
    if fit_info is not None:
        summary["fit"] = fit_info
    summary["settings"] = {**(fit_settings or {}), **asdict(settings)}
    write_json(report_json, summary)
    write_text(report_md, render_markdown(summary))
    return summary


def read_report(report_json: Path) -> dict:
    """The summary ``verify_tokenizer`` wrote to ``report_json``; a ``ValueError`` naming the file where it is not
    one (damaged, or another file)."""
    try:
        summary = read_json_object(report_json)
    except ValueError as err:
        raise ValueError(f"{err}; run `ivr distill-tokenizer` again") from None
    if not isinstance(summary.get("sets"), dict) or not isinstance(summary.get("ids"), dict):
        raise ValueError(f"{report_json}: not a verification report (no 'sets' and 'ids'); run `ivr distill-tokenizer` "
                         "again")
    return summary


def render_markdown(summary: dict) -> str:
    ids = summary["ids"]
    lines = [
        "# Tokenizer distillation report",
        "",
        "Distilled Unigram tokenizer against the original BPE. A word is one byte-level pre-token; it matches when",
        "its ids are exactly BPE's. *tie*: the same pieces in another order (no scores can change that);",
        "*conflict*: a string spelled by the pieces the two segmentations do not share, which BPE cuts as the",
        "distilled tokenizer cut the word, proves that no additive scores give BPE's result; *other*: the rest",
        "(the Fit section lists the fit words a linear program proves cannot all be matched at once).",
        LEGEND,
    ]
    lines += inputs_section(summary.get("inputs"))
    lines += [
        "",
        "## Ids",
        "",
        f"- vocabulary size: {ids['vocab_size']}; id -> piece map identical: **{setting_text(ids['id_to_token_identical'])}**",
        f"- added tokens ({ids.get('added_tokens', 0)}, {ids.get('special_tokens', 0)} special) at other ids or "
        f"differing: **{ids.get('added_token_mismatches', 0)}**",
        f"- `decode([i])` mismatches over all ids: **{ids['single_id_decode_mismatches']}**",
        f"- random id sequences decoded differently: **{ids['random_sequence_decode_mismatches']}** "
        f"of {ids['random_sequences']}",
        "",
        "## Exact-match rates",
        "",
        "*corpus*: the training split, which the tokenizer was fitted on; *heldout*: the held-out documents; "
        "*english_reference*: Python's help topics; any other row: a file of `data.extra_eval_paths`. None of "
        "those but the corpus was fitted on (the split goes by document: a held-out document whose text a training "
        "document repeats counts as held out; `ivr init` logs how many there are).",
        "",
        "| set | documents | word occurrences | word occ. exact | word types exact | tokens exact | documents exact |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary["sets"].items():
        r = s["rates"]
        lines.append(
            f"| {name.replace('|', chr(92) + '|')} | {s['documents']} | {s['word_occurrences']} | "
            f"{exact_share(r['word_occurrence'], 6)} | {exact_share(r['word_type'], 6)} | {exact_share(r['token'], 6)} | "
            f"{exact_share(r['document'])} |"
        )
    held_out = {k: v for k, v in summary["sets"].items() if k != "corpus"}
    if len(held_out) > 2:  # several extra files or languages: one row each, with what goes wrong most
        lines += ["", "## Per set (held-out text)", "", language_table(held_out)]
    for name, s in summary["sets"].items():
        lines += ["", f"## Mismatches: {name}", "", "| kind | types | occurrences |", "|---|---:|---:|"]
        lines += [f"| {k} | {m['types']} | {m['occurrences']} |" for k, m in s["mismatches"].items()]
        if s.get("documents_differing_between_words"):
            lines += ["", f"**{s['documents_differing_between_words']} documents get other ids than BPE's though each "
                      "of their words matches** (what lies between the words differs)."]
        for k, m in s["mismatches"].items():
            if m["examples"]:
                lines += ["", f"Most frequent {k} mismatches:", "", "| word | count | BPE | distilled |", "|---|---:|---|---|"]
                lines += [
                    f"| {code(e['word'], True)} | {e['count']} | {pieces(e['bpe'], True)} | {pieces(e['distilled'], True)} |"
                    for e in m["examples"]
                ]
    fit = summary.get("fit")
    if fit:
        lines += ["", "## Fit", ""]
        for key in ("fit_word_types", "corpus_word_types", "corpus_word_types_left_out", "corpus_words_dropped", "rounds", "best_round", "constraints", "changed_merges",
                    "fit_mismatched_types", "fit_mismatched_tie_types", "proven_unsatisfiable_types",
                    "proven_unsatisfiable_cut_by_rules", "word_rules",
                    "pre_tokenize_seconds", "score_fit_seconds", "split_rule_seconds", "word_rule_seconds",
                    "fit_seconds"):
            if key in fit:
                lines.append(f"- {key.replace('_', ' ')}: {setting_text(fit[key])}")
        if "peak_rss_mb" in fit:
            since = {"block": "during the fit", "sampled": "during the fit, sampled every 10 ms"}.get(
                fit.get("peak_rss_scope"), "since the process started")
            lines.append(f"- peak resident memory {since} (whole process, MiB): {fit['peak_rss_mb']}")
        if fit.get("proven_unsatisfiable_examples"):
            lines.append("- proven unsatisfiable (no merge weights match them together with the other fit words, "
                         "and no split or word rule cuts them): "
                         + ", ".join(code(w) for w in fit["proven_unsatisfiable_examples"]))
        if fit.get("word_rules_examples"):
            lines.append("- word rules (whole words cut at BPE's tokens), most frequent first: "
                         + ", ".join(pieces(w) if isinstance(w, list) else code(w) for w in fit["word_rules_examples"]))
        rules = [r for r in fit.get("split_rules_considered", []) if r.get("accepted")]
        lines.append(
            f"- {fit.get('split_rule_kind', 'split rules')} accepted for: "
            + (", ".join(f"{code(r['char'])} ({r['fixed_occurrences']:g} occ.)" for r in rules) or "none")
        )
        if fit.get("history"):
            lines += ["", "Rounds of the score fit, before split and word rules (*fit mismatched types* above is after "
                      "them); occurrences are weighted, general words by their estimated frequency, hence fractions.",
                      "", "| round | mismatched types | mismatched occurrences | new rows | seconds since the score fit began |",
                      "|---:|---:|---:|---:|---:|"]
            lines += [f"| {h['round']} | {h['mismatched_types']} | {h['mismatched_occurrences']:g} | "
                      f"{h.get('new_rows', '')} | {h.get('seconds', '')} |" for h in fit["history"]]
            # a fit cut short is recorded in its last round: the log's warning is not kept with the report
            for h in fit["history"]:
                if h.get("stopped_by_max_seconds"):
                    lines += ["", f"**The score fit was stopped by data.distill.max_seconds after round {h['round']}**: "
                              "the round it ends at, and so the tokenizer, depends on the machine's speed."]
                if h.get("linear_program_failed"):
                    lines += ["", f"**The linear program failed after round {h['round']} "
                              f"({h['linear_program_failed']})**: the best round so far was kept."]
    if summary.get("settings"):
        lines += ["", "## Settings", ""] + [f"- {k}: {setting_text(v)}" for k, v in summary["settings"].items()]
    return "\n".join(lines) + "\n"


def language_table(sets: dict[str, dict], target: float = 0.9999, examples: int = 3) -> str:
    """A markdown table of ``compare_texts`` results, one row per set (a language, a file): word occurrences,
    wrong ones, the exact rate, whether it reaches ``target``, and the ``examples`` most frequent mismatches."""
    lines = ["| set | word occurrences | wrong | exact | >= {:.2%} | most frequent mismatches (BPE / distilled) |"
             .format(target), "|---|---:|---:|---:|---|---|"]
    for name, s in sets.items():
        rate = s["rates"]["word_occurrence"]
        worst = sorted((e for m in s["mismatches"].values() for e in m["examples"]), key=lambda e: (-e["count"], e["word"]))
        shown = ", ".join(f"{code(e['word'], True)} x{e['count']} ({pieces(e['bpe'], True)} / {pieces(e['distilled'], True)})"
                          for e in worst[:examples])
        reached = "n/a" if rate is None else "yes" if rate >= target else "no"
        cell = name.replace("|", "\\|")  # a set's name (a file path) as it was given
        lines.append(f"| {cell} | {s['word_occurrences']} | {s['mismatched_occurrences']} | {exact_share(rate)} | "
                     f"{reached} | {shown} |")
    return "\n".join(lines)

