"""Build the remapped tokenizer: freed ids take new pieces inside the distilled Unigram model.

Each new piece scores exactly its own distilled segmentation plus ``new_piece_bonus`` per token saved, so
Viterbi picks it wherever the distilled segmentation has boundaries at its ends and nowhere else; text
containing neither a new piece nor a freed string keeps the distilled segmentation exactly.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from ivr.atomic import write_json, write_text
from ivr.cleaned_corpus import batched
from ivr.figures import figure
from ivr.markdown_text import LEGEND, code, counted, inputs_section
from ivr.tokenizers.candidates import read_candidates
from ivr.stamps import file_sha256
from ivr.tokenizers.io import save_tokenizer_dir
from ivr.tokenizers.remap_rules import (
    RemapRule,
    RemapRuleError,
    id_contract,
    read_remap_rules,
    rules_from_candidates,
    validate_remap_rules,
    write_remap_rules,
)
from ivr.tokenizers.special import SpecialTokens, special_tokens_of
from ivr.tokenizers.unigram import read_back_stable
from ivr.user_text import require_file, text_lines

log = logging.getLogger(__name__)


@dataclass
class RemapSettings:
    """Settings of the remapped tokenizer (``data.remap.*``)."""

    remap_rules_path: str | None = None
    """Hand-edited ``remap_rules.yaml`` to build the remapped tokenizer from, instead of the candidates."""
    new_piece_bonus: float = 1e-12
    """Score a new piece gets above the distilled segmentation it replaces, per token saved. Small, so
    it is used exactly where that segmentation has its boundaries, as selection assumed: the distilled scores
    hold near-ties of 1e-7 and less (at 1e-6, 14% of the help topics' lines got longer), and 1e-12 is still
    a hundred units in the last place of any score."""

    def __post_init__(self) -> None:
        # at 0 or below no new piece would beat the segmentation it replaces; an infinite score cannot be saved
        if not 0 < self.new_piece_bonus < math.inf:
            raise ValueError(f"data.remap.new_piece_bonus must be positive and finite, got {self.new_piece_bonus}")
        if self.remap_rules_path:
            require_file(self.remap_rules_path, "data.remap.remap_rules_path")
            self.remap_rules_path = os.path.expanduser(self.remap_rules_path)


def build_remapped(distilled: Tokenizer, rules: Sequence[RemapRule], bonus: float) -> Tokenizer:
    """The distilled tokenizer with each rule's id holding its new piece; everything else untouched."""
    spec = json.loads(distilled.to_str())
    model = spec["model"]
    if model.get("type") != "Unigram":
        raise ValueError(f"the distilled tokenizer must be a Unigram model, not {model.get('type')}")
    vocab = model["vocab"]
    # as the distilled scores, the new ones are floats that a saved tokenizer.json loads unchanged
    scores = read_back_stable([sum(vocab[i][1] for i in r.gpt2_ids) + bonus * (len(r.gpt2_ids) - 1) for r in rules])
    for r, score in zip(rules, scores):
        vocab[r.id] = [r.new_token, float(score)]
    remapped = Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))
    # encode special-token text as the distilled tokenizer does (the flag is not part of the JSON)
    remapped.encode_special_tokens = distilled.encode_special_tokens
    return remapped


def rules_not_encoding_to_own_id(remapped: Tokenizer, rules: Sequence[RemapRule]) -> list[RemapRule]:
    """The rules whose string, encoded alone by ``remapped``, is not exactly ``[rule.id]``: their id is never
    used for the string they were meant to save (another segmentation of it scores higher)."""
    encodings = remapped.encode_batch([r.new_text for r in rules], add_special_tokens=False)
    return [r for r, e in zip(rules, encodings) if e.ids != [r.id]]


def remap_tokenizer(
    distilled: Tokenizer,
    settings: RemapSettings,
    out_dir: str | Path,
    rules_path: str | Path,
    report_md: str | Path,
    report_json: str | Path,
    candidates_csv: str | Path | None = None,
    heldout_texts: Iterable[str] = (),
    general_texts: Iterable[str] = (),
    original_bpe: Tokenizer | None = None,
    extra_texts: Mapping[str, Sequence[str]] | None = None,
    special: SpecialTokens | None = None,
    described: Mapping[str, str] | None = None,
    protected_ids: Collection[int] = (),
    inputs: Mapping[str, object] | None = None,
) -> dict:
    """Build and save the remapped tokenizer and its rules, then measure it; return the report's summary.
    ``inputs``: what the report records of the tokenizers and texts, ahead of the rules file's hash and the bonus.

    Rules come from ``settings.remap_rules_path`` when set (a hand-edited rules file), else from
    ``candidates_csv``. The held-out, general and ``extra_texts`` (name -> texts, e.g. ``data.extra_eval_paths``)
    are only measured, never used for choices; ``described`` says what a set is, for the report. ``special``
    are the source's special tokens (``read_special_tokens``; without them, GPT-2's layout): no rule may free
    one, and the remapped tokenizer must keep them all (the ID contract, ``id_contract``), else this fails.
    ``protected_ids``: the ids the user protected (``data.select.protected_*``), which no rule may free either.
    """
    start = time.perf_counter()
    special = special or special_tokens_of(distilled)
    if settings.remap_rules_path:
        source = str(settings.remap_rules_path)
        rules = read_remap_rules(source, distilled, special)
    elif candidates_csv is not None:
        source = str(candidates_csv)
        rules = validate_remap_rules(rules_from_candidates(read_candidates(candidates_csv)), source, distilled, special)
    else:
        raise ValueError("remap needs data.remap.remap_rules_path or the replacement candidates CSV")
    freed = [r for r in rules if r.id in protected_ids]
    if freed:
        raise RemapRuleError("; ".join(f"{r.where}: the id is protected" for r in freed) + " (data.select.protected_ids"
                             " or protected_tokens); give these rules other ids")
    remapped = build_remapped(distilled, rules, settings.new_piece_bonus)
    not_own = rules_not_encoding_to_own_id(remapped, rules)
    if not_own:
        log.warning("remap: %d of %d rules from %s never encode their string to their own id: %s", len(not_own),
                    len(rules), source, ", ".join(f"{r.new_text!r} (id {r.id})" for r in not_own))
    contract = id_contract(distilled, remapped, special, rules, protected_ids)
    broken = [name for name, ok in contract.items() if ok is False]
    if broken:
        raise ValueError(f"remap from {source}: the remapped tokenizer breaks the ID contract: {', '.join(broken)}")
    meta = {
        "stage": "remap",
        "rules_source": source,
        "reassigned": len(rules),
        "new_piece_bonus": settings.new_piece_bonus,
    }
    save_tokenizer_dir(remapped, out_dir, meta, special)
    write_remap_rules(rules_path, rules)
    build_s = time.perf_counter() - start

    general = list(general_texts)  # a fixed reference, small: measured only when given
    sets: dict[str, Iterable[str]] = {"heldout_domain": heldout_texts, **({"general": general} if general else {}),
                                      **(extra_texts or {})}
    tokenizers = {"distilled": distilled, "remapped": remapped}
    if original_bpe is not None:
        tokenizers = {"original": original_bpe} | tokenizers
    base = "original" if original_bpe is not None else "distilled"
    results = {name: measure_texts(tokenizers, base, "remapped", texts) for name, texts in sets.items()}
    measured = {name: r.measured for name, r in results.items()}
    summary = {
        "inputs": {**(inputs or {}), "rules": f"{source} (sha256 {file_sha256(source)})",
                   "data.remap.new_piece_bonus": settings.new_piece_bonus},
        "reassigned": len(rules),
        "rules_source": source,
        "rules_hand_edited": bool(settings.remap_rules_path),
        "rules_not_encoding_to_own_id": [r.id for r in not_own],
        "rules_not_encoding_to_own_id_strings": [r.new_text for r in not_own],
        "id_contract": contract,
        "estimated_saving_pct": sum(r.estimated_saving_pct for r in rules),
        "baseline": base,
        "measured": measured,
        "texts": {name: (described or {}).get(name, "") for name in measured},
        "build_seconds": build_s,
        "made_longer": {name: r.made_longer for name, r in results.items()},
    }
    for name, m in measured.items():
        summary[f"{name}_change_pct_vs_{base}"] = _change(m[base]["tokens"], m["remapped"]["tokens"])
        summary[f"{name}_change_pct_vs_distilled"] = _change(m["distilled"]["tokens"], m["remapped"]["tokens"])
    used = results["heldout_domain"].used_ids
    summary["new_ids_unused_in_heldout"] = sum(1 for r in rules if r.id not in used) if used else None
    write_json(report_json, summary)
    write_text(report_md, _report_md(summary))
    return summary


MEASURE_BATCH = 64
"""Documents encoded at once when measuring a set of texts: memory follows one batch, not the set."""


class _Longer:
    """Units (documents or lines) that take more tokens after than before, counted as they stream past."""

    def __init__(self) -> None:
        self.count = self.longer = self.extra = self.old = 0

    def add(self, old: Sequence[int], new: Sequence[int]) -> None:
        grown = [b - a for a, b in zip(old, new) if b > a]
        self.count, self.old = self.count + len(old), self.old + sum(old)
        self.longer, self.extra = self.longer + len(grown), self.extra + sum(grown)

    def summary(self) -> dict:
        return {
            "count": self.count,
            "longer": self.longer,
            "longer_pct": _pct(self.longer, self.count),
            "extra_tokens": self.extra,
            "extra_tokens_pct": _pct(self.extra, self.old),
        }


@dataclass
class Measured:
    """One set of texts measured: ``measured`` (per tokenizer: bytes, tokens, tokens per byte), ``made_longer``
    (documents and non-blank lines with more tokens after than before), ``used_ids`` (the ids ``after`` emits)."""

    measured: dict[str, dict]
    made_longer: dict[str, dict]
    used_ids: set[int]


def measure_texts(tokenizers: Mapping[str, Tokenizer], before: str, after: str, texts: Iterable[str]) -> Measured:
    """One pass over ``texts``, ``MEASURE_BATCH`` documents at a time, each encoded once by every tokenizer
    (its lines once more by ``before`` and ``after``)."""
    n_bytes = 0
    tokens = dict.fromkeys(tokenizers, 0)
    documents, lines = _Longer(), _Longer()
    used: set[int] = set()
    for batch in batched(texts, MEASURE_BATCH):
        n_bytes += sum(len(t.encode("utf-8")) for t in batch)
        lengths = {}
        for name, tok in tokenizers.items():
            encodings = tok.encode_batch(batch, add_special_tokens=False)
            lengths[name] = [len(e.ids) for e in encodings]
            tokens[name] += sum(lengths[name])
            if name == after:
                for e in encodings:
                    used.update(e.ids)
        documents.add(lengths[before], lengths[after])
        units = [line for text in batch for line in text_lines(text) if line.strip()]
        lines.add(*([len(e.ids) for e in tokenizers[k].encode_batch(units, add_special_tokens=False)]
                    for k in (before, after)))
    measured = {name: {"bytes": n_bytes, "tokens": n, "tokens_per_byte": n / n_bytes if n_bytes else None}
                for name, n in tokens.items()}
    return Measured(measured, {"documents": documents.summary(), "lines": lines.summary()}, used)


def _pct(part: float, whole: float) -> float | None:
    """``part`` as a percentage of ``whole``; None (shown "n/a") for an empty ``whole``."""
    return 100.0 * part / whole if whole else None


def _change(before: int, after: int) -> float | None:
    return _pct(after - before, before)





def _report_md(s: dict) -> str:
    base = s["baseline"]
    lines = [
        "# IVR remap report",
        "",
        f"- ids reassigned: {s['reassigned']} (rules from `{s['rules_source']}`)",
        f"- estimated saving on the training texts: {s['estimated_saving_pct']:.2f}% of distilled tokens, "
        + ("the sum of the rules' `estimated_saving_pct` as the file gives them (0 where not given)"
           if s.get("rules_hand_edited") else
           "before the freed tokens' own uses there (`selection_log.md` gives the net figure)"),
    ]
    if s["rules_not_encoding_to_own_id"]:
        shown = [f"{code(t)} (id {i})" for t, i in zip(s["rules_not_encoding_to_own_id_strings"], s["rules_not_encoding_to_own_id"])]
        lines.append(f"- **WARNING: {len(shown)} rules whose string never encodes to its own id** (the id is never "
                     f"used for it): {', '.join(shown[:20])}{' …' if len(shown) > 20 else ''}")
        lines.append(f"  - {LEGEND}")
    if "heldout_domain" in s["measured"]:
        change = s["heldout_domain_change_pct_vs_distilled"]
        realized = None if change is None else -change
        unused = s["new_ids_unused_in_heldout"]
        lines.append(f"- realized saving on held-out domain text: {figure(realized, '.2f', '%')} of distilled tokens")
        lines.append(f"- new ids never used in held-out domain text: {figure(unused, 'd')}")
    if "id_contract" in s:
        ids = s["id_contract"]["protected_ids"]
        lines.append(f"- ID contract: {counted(len(ids), 'protected id')} (added tokens, bos/eos/pad/unk, data.select.protected_*: "
                     f"{', '.join(map(str, ids[:20]))}{' …' if len(ids) > 20 else ''}), never freed")
        lines += [f"  - {name}: {'yes' if ok else 'NO'}" for name, ok in s["id_contract"].items() if name != "protected_ids"]
    texts = {name: what for name, what in s.get("texts", {}).items() if what}
    if texts:
        lines += ["", "Texts measured (none of them fitted or selected on, but for held-out documents whose text a "
                  "training document repeats, which `ivr init` counts in its log):", ""]
        lines += [f"- `{name}`: {what}" for name, what in texts.items()]
    lines += ["", "| text | tokenizer | bytes | tokens | tokens/byte |", "|---|---|---:|---:|---:|"]
    for name, m in s["measured"].items():
        for tok, v in m.items():
            lines.append(f"| {name} | {tok} | {v['bytes']} | {v['tokens']} | {figure(v['tokens_per_byte'], '.4f')} |")
    lines.append("")
    for name in s["measured"]:
        also = "" if base == "distilled" else f", vs distilled: {figure(s[f'{name}_change_pct_vs_distilled'], '+.2f', '%')}"
        lines.append(f"- {name}: token count change vs {base}: {figure(s[f'{name}_change_pct_vs_{base}'], '+.2f', '%')}"
                     + also)
    if s.get("made_longer"):
        lines += ["", f"Made longer (more tokens than with the {base} tokenizer; lines: the non-blank lines, each "
                  "encoded alone):", "",
                  "| text | documents longer | lines longer | extra tokens on longer lines (share of all lines' tokens before) |", "|---|---:|---:|---:|"]
        for name, m in s["made_longer"].items():
            d, ln = m["documents"], m["lines"]
            lines.append(f"| {name} | {d['longer']} of {d['count']} ({figure(d['longer_pct'], '.2f', '%')}) | {ln['longer']} "
                         f"of {ln['count']} ({figure(ln['longer_pct'], '.2f', '%')}) | {ln['extra_tokens']} "
                         f"({figure(ln['extra_tokens_pct'], '.3f', '%')}) |")
    lines += inputs_section(s.get("inputs"))
    return "\n".join(lines) + "\n"
