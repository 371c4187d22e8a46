"""Build the remapped tokenizer: freed ids take new pieces inside the distilled Unigram model.

Each new piece scores exactly its own distilled segmentation plus ``new_piece_bonus`` per token saved, so
Viterbi picks it wherever the distilled segmentation has boundaries at its ends and nowhere else; text
containing neither a new piece nor a freed string keeps the distilled segmentation exactly.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml
from tokenizers import Tokenizer

from ivr.analysis.select import IVRSettings, read_candidates, single_pretoken, vocab_pieces
from ivr.atomic import write_json, write_text
from ivr.tokenizers.byte_level import EOS_TOKEN, char_to_byte, piece_to_bytes, readable, single_byte_pieces, text_to_piece
from ivr.tokenizers.io import pre_tokens, save_tokenizer_dir
from ivr.tokenizers.unigram import read_back_stable

RULES_HEADER = """\
# In-place vocabulary reassignment rules. Each rule gives id `id` the string `new_text`, whose byte-level
# form is `new_token`. To change a rule's string, edit `new_text` and delete its `new_token` (or edit both
# so they agree). `gpt2_ids` are the GPT-2 ids the new string used to be split into; they are recomputed
# on every build. Rebuild with data.ivr.remap_rules_path pointing at this file.
"""


class RemapRuleError(ValueError):
    """One or more invalid rules; the message names each by its position and id."""


@dataclass
class RemapRule:
    id: int
    old_token: str
    old_text: str
    new_token: str
    new_text: str
    gpt2_ids: list[int]
    reason: str
    estimated_saving_pct: float = 0.0


def rules_from_candidates(candidates_csv: str | Path) -> list[dict]:
    return [
        {
            "id": r.freed_id,
            "old_token": r.freed_token,
            "new_token": r.new_token,
            "reason": f"{r.reason} #{r.rank}: {r.domain_count} occurrences in the domain, saves ~{r.estimated_saving} tokens; "
            f"old token used {r.freed_domain_count}x in the domain, {r.freed_general_per_million:.3g}/M in general text",
            "estimated_saving_pct": r.estimated_saving_pct,
        }
        for r in read_candidates(candidates_csv)
    ]


def read_rules(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: remap rules not found (data.ivr.remap_rules_path)")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        raise RemapRuleError(f"{path}: not valid YAML: {err}") from None
    rules = data.get("rules") if isinstance(data, dict) else data
    if not isinstance(rules, list):
        raise RemapRuleError(f"{path}: expected a list of rules under `rules:`")
    return rules


def validate_rules(distilled: Tokenizer, rules: Sequence[object], source: str) -> list[RemapRule]:
    """Check every rule against the distilled vocabulary; raise one error listing every bad rule."""
    pieces = vocab_pieces(distilled)
    vocab = {p: i for i, p in enumerate(pieces)}
    bytes_ = single_byte_pieces()
    alphabet = set(char_to_byte())
    errors: list[str] = []
    out: list[RemapRule] = []
    seen_ids: dict[int, int] = {}
    seen_new: dict[str, int] = {}
    for n, rule in enumerate(rules, 1):
        where = f"{source}: rule {n}"
        if not isinstance(rule, dict):
            errors.append(f"{where}: expected a mapping, got {type(rule).__name__}")
            continue
        rid = rule.get("id")
        where += f" (id {rid})"
        if not isinstance(rid, int) or isinstance(rid, bool) or not 0 <= rid < len(pieces):
            errors.append(f"{where}: unknown id; ids run from 0 to {len(pieces) - 1}")
            continue
        old = pieces[rid]
        if old == EOS_TOKEN:
            errors.append(f"{where}: {EOS_TOKEN} cannot be reassigned")
            continue
        if old in bytes_:
            errors.append(f"{where}: single-byte token {readable(old)!r} cannot be reassigned")
            continue
        if rid in seen_ids:
            errors.append(f"{where}: id already reassigned by rule {seen_ids[rid]}")
            continue
        seen_ids[rid] = n
        if rule.get("old_token") not in (None, old):
            errors.append(f"{where}: old_token {rule['old_token']!r} is not the distilled token {old!r} at that id")
            continue
        new, problem = _new_piece(rule, alphabet)
        if problem:
            errors.append(f"{where}: {problem}")
            continue
        if new in vocab:
            errors.append(f"{where}: {readable(new)!r} is already in the vocabulary at id {vocab[new]}")
            continue
        if new in seen_new:
            errors.append(f"{where}: {readable(new)!r} is already the new string of rule {seen_new[new]}")
            continue
        seen_new[new] = n
        text = readable(new)
        if not single_pretoken(distilled, text):
            parts = [readable(p) for p in pre_tokens(distilled, text)]
            errors.append(f"{where}: {text!r} would be split by the pre-tokenizer into {parts}")
            continue
        out.append(
            RemapRule(
                id=rid,
                old_token=old,
                old_text=readable(old),
                new_token=new,
                new_text=text,
                gpt2_ids=[t.id for t in distilled.model.tokenize(new)],
                reason=str(rule.get("reason") or "edited by hand"),
                estimated_saving_pct=float(rule.get("estimated_saving_pct") or 0.0),
            )
        )
    if errors:
        raise RemapRuleError(f"{len(errors)} invalid remap rule(s):\n" + "\n".join(errors))
    return out


def _new_piece(rule: dict, alphabet: set[str]) -> tuple[str, str | None]:
    """The rule's new string as a byte-level piece, or a description of what is wrong with it."""
    token, text = rule.get("new_token"), rule.get("new_text")
    if token is None and text is None:
        return "", "needs new_text or new_token"
    if token is not None:
        if not isinstance(token, str) or not token or not set(token) <= alphabet:
            return "", f"new_token {token!r} is not a non-empty byte-level piece"
        try:
            piece_to_bytes(token).decode("utf-8")
        except UnicodeDecodeError:
            return "", f"new_token {token!r} is not whole UTF-8 characters"
    if text is not None and (not isinstance(text, str) or not text):
        return "", f"new_text {text!r} is not a non-empty string"
    if token is not None and text is not None and text_to_piece(text) != token:
        return "", f"new_text {text!r} and new_token {token!r} disagree; edit both or delete new_token"
    return (token if token is not None else text_to_piece(text)), None


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
    return Tokenizer.from_str(json.dumps(spec, ensure_ascii=False))


def write_rules(rules: Sequence[RemapRule], path: str | Path) -> None:
    rows = [asdict(r) for r in rules]
    body = yaml.safe_dump({"rules": rows}, allow_unicode=True, sort_keys=False, width=120, default_flow_style=None)
    write_text(path, RULES_HEADER + body)


def tokens_per_byte(tokenizer: Tokenizer, texts: Sequence[str]) -> dict:
    n_bytes = sum(len(t.encode("utf-8")) for t in texts)
    encs = tokenizer.encode_batch(list(texts), add_special_tokens=False)
    n_tokens = sum(len(e.ids) for e in encs)
    return {"bytes": n_bytes, "tokens": n_tokens, "tokens_per_byte": n_tokens / n_bytes if n_bytes else 0.0}


def remap_tokenizer(
    distilled: Tokenizer,
    settings: IVRSettings,
    out_dir: str | Path,
    rules_path: str | Path,
    report_md: str | Path,
    report_json: str | Path,
    candidates_csv: str | Path | None = None,
    heldout_texts: Iterable[str] = (),
    general_texts: Iterable[str] = (),
    original_bpe: Tokenizer | None = None,
) -> dict:
    """Build and save the remapped tokenizer and its rules, then measure it; return the report's summary.

    Rules come from ``settings.remap_rules_path`` when set (a hand-edited rules file), else from
    ``candidates_csv``. The held-out and general texts are only measured, never used for choices.
    """
    start = time.perf_counter()
    if settings.remap_rules_path:
        source = str(settings.remap_rules_path)
        raw = read_rules(source)
    elif candidates_csv is not None:
        source = str(candidates_csv)
        raw = rules_from_candidates(candidates_csv)
    else:
        raise ValueError("remap needs data.ivr.remap_rules_path or the replacement candidates CSV")
    rules = validate_rules(distilled, raw, source)
    remapped = build_remapped(distilled, rules, settings.new_piece_bonus)
    not_own = [r.id for r in rules if remapped.encode(r.new_text, add_special_tokens=False).ids != [r.id]]
    meta = {
        "stage": "remap",
        "rules_source": source,
        "reassigned": len(rules),
        "new_piece_bonus": settings.new_piece_bonus,
    }
    save_tokenizer_dir(remapped, out_dir, meta)
    write_rules(rules, rules_path)
    build_s = time.perf_counter() - start

    heldout, general = list(heldout_texts), list(general_texts)
    tokenizers = {"distilled": distilled, "remapped": remapped}
    if original_bpe is not None:
        tokenizers = {"original": original_bpe} | tokenizers
    measured = {
        name: {k: tokens_per_byte(tok, texts) for k, tok in tokenizers.items()}
        for name, texts in (("heldout_domain", heldout), ("general", general))
        if texts
    }
    base = "original" if original_bpe is not None else "distilled"
    summary = {
        "reassigned": len(rules),
        "rules_source": source,
        "rules_not_encoding_to_own_id": not_own,
        "estimated_saving_pct": sum(r.estimated_saving_pct for r in rules),
        "baseline": base,
        "measured": measured,
        "build_seconds": build_s,
    }
    for name, m in measured.items():
        summary[f"{name}_change_pct_vs_{base}"] = _change(m[base]["tokens"], m["remapped"]["tokens"])
        summary[f"{name}_change_pct_vs_distilled"] = _change(m["distilled"]["tokens"], m["remapped"]["tokens"])
    if heldout:
        used = Counter(i for e in remapped.encode_batch(heldout, add_special_tokens=False) for i in e.ids)
        summary["new_ids_unused_in_heldout"] = sum(1 for r in rules if not used[r.id])
    write_json(report_json, summary)
    write_text(report_md, _report_md(summary))
    return summary


def _change(before: int, after: int) -> float:
    return 100.0 * (after - before) / before if before else 0.0


def _report_md(s: dict) -> str:
    base = s["baseline"]
    lines = [
        "# IVR remap report",
        "",
        f"- ids reassigned: {s['reassigned']} (rules from `{s['rules_source']}`)",
        f"- estimated saving on the training texts: {s['estimated_saving_pct']:.2f}% of distilled tokens",
    ]
    if "heldout_domain" in s["measured"]:
        realized = -s["heldout_domain_change_pct_vs_distilled"]
        lines.append(f"- realized saving on held-out domain text: {realized:.2f}% of distilled tokens")
        lines.append(f"- new ids never used in held-out domain text: {s['new_ids_unused_in_heldout']}")
    if s["rules_not_encoding_to_own_id"]:
        lines.append(f"- rules whose string does not encode to its own id: {s['rules_not_encoding_to_own_id'][:20]}")
    lines += ["", "| text | tokenizer | bytes | tokens | tokens/byte |", "|---|---|---:|---:|---:|"]
    for name, m in s["measured"].items():
        for tok, v in m.items():
            lines.append(f"| {name} | {tok} | {v['bytes']} | {v['tokens']} | {v['tokens_per_byte']:.4f} |")
    lines.append("")
    for name in s["measured"]:
        lines.append(f"- {name}: token count change vs {base}: {s[f'{name}_change_pct_vs_{base}']:+.2f}%, "
                     f"vs distilled: {s[f'{name}_change_pct_vs_distilled']:+.2f}%")
    return "\n".join(lines) + "\n"
