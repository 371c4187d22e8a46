"""``selection_log.md``: what selection was given, what it chose and why, in a page a person reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from ivr.analysis.savings_curve import SavingsCurve, curve_table
from ivr.analysis.select_settings import SelectSettings
from ivr.figures import figure
from ivr.markdown_text import LEGEND, code, counted, inputs_section, setting_text
from ivr.tokenizers.candidates import Replacement


def selection_log_text(settings: SelectSettings, summary: dict, reps: Sequence[Replacement], notes: list[str],
                   curve: SavingsCurve | None, curve_png: str | Path | None) -> str:
    ex = summary["excluded"]
    lines = [
        "# IVR selection log",
        "",
        LEGEND,
        *inputs_section(summary.get("inputs")),
        "",
        "## Parameters",
        "",
        *[f"- `{k}`: {setting_text(v)}" for k, v in asdict(settings).items()],
        "",
        "## Totals",
        "",
        (
            f"- training documents: {summary['documents']}, bytes: {summary['train_bytes']}, "
            f"distilled tokens: {summary['train_tokens']}, distinct pre-tokens: {summary['distinct_pretokens']}"
            + (f" (the rarest dropped past the count's limit {summary['pretokens_dropped']} times, their token uses "
               "kept: they offer no candidates)" if summary["pretokens_dropped"] else "")
        ),
        f"- candidate strings (≥ {settings.min_count} uses, not yet tokens): {summary['candidate_strings']}"
        + (" (too many distinct strings to hold, `MAX_COUNTED_SPANS`: each string used more than "
           f"{summary['span_count_floor']} times is counted, a rarer one may be missing)"
           if summary["span_count_floor"] else ""),
        f"- ids reassigned: {summary['reassigned']} ({summary['forced']} forced)",
        (
            f"- estimated saving on the training texts: {summary['estimated_saving_tokens']} tokens, "
            f"minus {summary['freed_tokens_domain_uses']} uses of freed tokens = "
            f"**{summary['expected_saving_pct']:.2f}%** of tokens"
        ),
        (
            f"- freed ids the original BPE can never produce: {summary['unreachable_freed']} "
            f"(of {summary['unreachable_ids']} unreachable ids); unused by the general-text prior: "
            f"{summary['freed_unused_by_general_text']}"
        ),
    ]
    for k, c in enumerate(summary["general_longer"], 1):
        lines.append(f"- general text made longer, check {k}: {figure(c['words_pct'], '.3f', '%')} of word occurrences, "
                     f"{figure(c['lines_pct'], '.3f', '%')} of reference lines")
    if settings.max_general_longer_pct is not None and not summary["general_longer"]:
        lines.append("- general text made longer: n/a (no general text to measure, or nothing reassigned)")
    if summary["general_longer"]:
        lines.append(f"- replacements refused for making general text longer: {summary['refused_for_general_text']} "
                     f"(budget {settings.max_general_longer_pct}%)")
        if summary["ids_refused_for_forced_terms"]:
            lines.append(f"- freed ids refused under forced terms (each term then tries the next free id): "
                         f"{summary['ids_refused_for_forced_terms']}")
        if summary["general_budget_met"] is False:
            lines.append("- **budget not met**: the last check is over it; forced terms are never refused, and "
                         "what is left over comes from their own pieces or from the checks' limit of nine")
    if curve is not None:
        lines += [
            "",
            "## Estimated and left-out saving",
            "",
            f"{summary['validation_documents']} of the {summary['documents']} training documents "
            f"({summary['validation_documents'] / summary['documents']:.1%}; `validation_fraction` "
            f"{settings.validation_fraction}) were left out of a second ranking, run "
            "as the one above; its saving on them is what to expect on documents the selection never saw (they are "
            "part of the training split; the held-out split is the remap report's).",
            "",
            f"- saving on the ranked part: {summary['validation_fitted_saving_pct']:.2f}%, on the left-out part: "
            f"**{summary['validation_heldout_saving_pct']:.2f}%**, gap {summary['validation_gap_pct']:.2f} points",
            "",
            "### Savings curve",
            "",
            *(curve_table(curve)),
        ]
        if curve_png is not None:
            lines += ["", f"![savings curve]({Path(curve_png).name})"]
    elif settings.validation_fraction > 0:
        lines += ["", "## Estimated and left-out saving", "",
                  f"- saving on the left-out part: n/a ({summary['no_curve_because']})"]
    lines += [
        "",
        "## Why ids or strings were left out",
        "",
        f"- {ex['single_byte']} single-byte tokens: never freed, every byte must stay encodable.",
        f"- {counted(ex['special'], 'special token')}: the added tokens (matched before the model runs) and the ids the "
        "tokenizer's config names bos, eos, pad or unk; never freed.",
        f"- {ex['protected']} protected ids/tokens besides those: named in `protected_tokens`/`protected_ids`.",
        f"- {ex.get('forced_kept', 0)} forced terms that already are tokens: their ids are never freed.",
        f"- {ex['domain_count_at_least_min']} other tokens used ≥ {settings.min_count} times in the domain: freeing "
        "them would cost tokens.",
        f"- {'at least ' if summary['span_count_floor'] else ''}{ex['below_min_count']} span strings used "
        f"< {settings.min_count} times: too rare to be worth an id.",
        (
            f"- {ex['already_in_vocabulary']} frequent span strings that already are a token (which the distilled "
            "tokenizer does not emit there): a piece cannot appear twice."
        ),
        (
            f"- {ex['split_when_alone']} frequent span strings the pre-tokenizer's run rules cut when they stand "
            "alone: a piece must survive pre-tokenization on its own."
        ),
        (
            f"- {len(summary['not_encoding_to_own_id'])} strings that would not encode to their own id after "
            "remapping (another segmentation of them, new pieces included, scores as high), their places filled "
            "by the next candidates: "
            + (", ".join(code(t) for t in summary["not_encoding_to_own_id"][:20]) or "none")
        ),
        (
            f"- {len(summary['lengthening_training_words'])} strings whose piece would cut other words of the training "
            "split into more tokens (where the distilled scores hold a near-tie smaller than "
            "`data.remap.new_piece_bonus`), their places filled by the next candidates; the tokens each would add: "
            + (", ".join(f"{code(t)} {n}" for t, n in list(summary["lengthening_training_words"].items())[:20])
               or "none")
        ),
        *([f"- {summary['saving_nothing']} candidate strings save nothing once the strings ranked above them are "
             "tokens (each of their uses lies inside one of those), so fewer ids than `num_replacements` are "
             "reassigned"] if summary.get("saving_nothing") else []),
        *([f"- {summary['unfilled_after_refills']} ids keep their old token: the strings picked for them still "
             "failed one of the two checks above after the last refill round"] if summary["unfilled_after_refills"]
          else []),
        *[f"- forced: {n}" for n in notes],
        "",
        "## Top new tokens",
        "",
        f"The first {min(len(reps), 50)} of {len(reps)} by rank (all of them in `replacement_candidates.csv`). "
        "*occurrences*: where the string spans whole distilled tokens inside a pre-token of the training split, "
        "overlapping places included; *GPT-2 tokens*: the tokens it replaces; *saving*: the tokens it saves beyond "
        "the strings ranked above it, every use counted (the ranking counts at most `per_document_cap` uses per "
        "document, so savings need not fall down the ranks); *old uses*: the freed token's uses in the training "
        "split; *general /M*: the freed token's uses per million tokens of general text (the prior).",
        "",
        "| rank | new token | occurrences | GPT-2 tokens | saving | saving % | freed id | old token | old uses | general /M |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in reps[:50]:
        lines.append(
            f"| {r.rank} | {code(r.new_text, table=True)} | {r.domain_count} | {len(r.gpt2_ids)} | {r.estimated_saving} | "
            f"{r.estimated_saving_pct:.3f} | {r.freed_id} | {code(r.freed_text, table=True)} | {r.freed_domain_count} | "
            f"{r.freed_general_per_million:.3g} |"
        )
    return "\n".join(lines) + "\n"
