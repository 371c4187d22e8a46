"""Distillation exactness per language: distil GPT-2 on Python code and on English prose, then compare each
distilled tokenizer with BPE on held-out text in many languages, none of it fitted on.

Fits:

* ``code``: the standard library's ``.py`` files as ``distill_benchmark.py`` splits them (every 10th file held out);
* ``prose``: English prose (Python's help topics, then ``/usr/share/doc`` text; every other document held out).

Both fit with the default ``DistillSettings`` but for what ``--set KEY=VALUE`` and the general-word flags change
(``--general-languages ''``: no general words). ``--gguf`` distils another byte-level BPE, read from a GGUF file as
``ivr init`` reads it (alone: SmolLM2's, from the ``smollm2`` dependency group), and compares with that BPE.

Held-out sets, the same for both fits: the held-out code, the held-out English prose, and per language the
translated program messages under ``/usr/share/locale/<lang>/LC_MESSAGES`` (each catalogue one document, up to
``--lang-chars`` characters per language). Prints one row per set: word occurrences, wrong ones, the exact rate,
whether it reaches 99.99%, and the most frequent mismatches (BPE's pieces against the distilled ones). A second
table sorts each set's wrong occurrences by cause: ties and conflicts (as the report counts them), words the
merge-tree initialisation alone (the scores before any fitting) gets wrong too, words the fit broke (the
initialisation gets them right), and among all but ties those where BPE's segmentation has more tokens than the
distilled one (one early merge against a sum of later ones, ` liczbowa`: BPE `lic·z·bow·a`).

    uv run python benchmarks/multilingual_distill.py --out /tmp/multilingual
    uv run python benchmarks/multilingual_distill.py --out /tmp/multilingual_before --general-languages ''
    uv run python benchmarks/multilingual_distill.py --fit code --set init_offset=10 --set init_exponent=4.19
    uv run python benchmarks/multilingual_distill.py --fit code --set init_exponent=2.5 --set init_decay=1.7312e-4
    uv run python benchmarks/multilingual_distill.py --fit code --fit-held-out all --set word_rules=0 --set slack_penalty=1e9 --out /tmp/oracle
    uv run python benchmarks/multilingual_distill.py --fit code --fit-held-out half --out /tmp/half
    uv run --group smollm2 python benchmarks/multilingual_distill.py --gguf --out /tmp/multilingual_smollm2
"""

from __future__ import annotations

import json
from pathlib import Path

from common import (
    EXACT_TARGET,
    LANGUAGES,
    Stopwatch,
    add_heldout_every,
    add_settings,
    fetched_source,
    held_out_sets,
    non_negative_float,
    non_negative_int,
    parser,
    positive_int,
    regex_characters,
    settings_from,
)

from tokenizers import Tokenizer

from ivr.gguf import SMOLLM2_GGUF
from ivr.paths import TOKENIZER_FILE
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import readable, text_to_piece
from ivr.tokenizers.distill import distill_tokenizer
from ivr.tokenizers.distill.scores import initial_scores
from ivr.tokenizers.distill.source_bpe import source_bpe
from ivr.tokenizers.unigram import unigram_tokenizer
from ivr.tokenizers.verify import VerifySettings, language_table

ALL_EXAMPLES = 1_000_000
"""The report lists every mismatch, so the causes table counts them all."""


def causes_table(sets: dict[str, dict], prior: Tokenizer) -> str:
    """Each set's wrong word occurrences by cause (``compare_texts`` results listing every mismatch): ties,
    conflicts, non-tie words that the initial merge-tree scores (``prior``) get wrong too or right, and the
    non-tie ones whose BPE segmentation has more tokens than the distilled one."""
    lines = ["| set | wrong | ties | conflicts | initialisation wrong too | broken by the fit | BPE more tokens |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for name, s in sets.items():
        untied = [e for kind in ("conflict", "other") for e in s["mismatches"][kind]["examples"]]
        pieces = [[readable(t) for t in enc.tokens]
                  for enc in prior.encode_batch([text_to_piece(e["word"]) for e in untied])]
        prior_wrong = sum(e["count"] for e, got in zip(untied, pieces) if got != e["bpe"])
        more = sum(e["count"] for e in untied if len(e["bpe"]) > len(e["distilled"]))
        m = s["mismatches"]
        lines.append(f"| {name} | {s['mismatched_occurrences']} | {m['tie']['occurrences']} | "
                     f"{m['conflict']['occurrences']} | {prior_wrong} | {sum(e['count'] for e in untied) - prior_wrong}"
                     f" | {more} |")
    return "\n".join(lines)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("/tmp/multilingual"),
                    help="per fit, the distilled tokenizer and its reports (OUT/code, OUT/prose); with --gguf, the "
                         "source's BPE in OUT/original")
    ap.add_argument("--gguf", nargs="?", const=SMOLLM2_GGUF, default=None,
                    help="distil the BPE of this GGUF file (a path or distribution:path; alone: SmolLM2's, from the "
                         "smollm2 dependency group) instead of GPT-2's")
    ap.add_argument("--general-languages", default=None,
                    help="data.distill.general_languages ('' for none: the fit before general words)")
    ap.add_argument("--general-words", type=non_negative_int, default=None,
                    help="data.distill.general_words_per_language")
    ap.add_argument("--general-text-words", type=non_negative_float, default=None,
                    help="data.distill.general_text_words")
    ap.add_argument("--split-rule-chars", default=None, help="data.distill.split_rule_chars")
    add_settings(ap)
    ap.add_argument("--fit", choices=("code", "prose", "both"), default="both", help="which corpus to fit on")
    ap.add_argument("--lang-chars", type=positive_int, default=2_000_000, help="cap on each language's messages")
    ap.add_argument("--languages", default=",".join(LANGUAGES), help="comma-separated locale names")
    ap.add_argument("--fit-held-out", choices=("none", "all", "half"), default="none",
                    help="also fit on the held-out sets: 'all' of them (an oracle: what scores can match at all, not "
                         "what generalizes; with --set word_rules=0, the scores and split rules alone), or every other "
                         "document of each, measuring each set on the rest (text of its own kind in the fit)")
    add_heldout_every(ap)
    args = ap.parse_args()
    settings = settings_from(args.set, general_languages=args.general_languages,
                             general_words_per_language=args.general_words,
                             general_text_words=args.general_text_words, split_rule_chars=args.split_rule_chars)
    if args.gguf is None:
        bpe, special = offline_gpt2_tokenizer(), None
    else:
        bpe, special = fetched_source(args.out / "original", args.gguf)
    source = source_bpe(bpe)
    prior = unigram_tokenizer(source.pieces, initial_scores(source.pieces, source.merges, settings.init_exponent,
                                                             settings.init_offset, source.ignore_merges,
                                                             settings.init_decay),
                              source.never)
    fits, sets = held_out_sets(args.heldout_every, args.lang_chars, tuple(args.languages.split(",")))
    if args.fit_held_out != "none":
        step = 1 if args.fit_held_out == "all" else 2
        joined = [t for held in sets.values() for t in held[step - 1::step]]
        fits = {name: texts + joined for name, texts in fits.items()}
        sets = {name: held[::2] if step == 2 else held for name, held in sets.items()}
    for name in ("code", "prose") if args.fit == "both" else (args.fit,):
        out = args.out / name
        with Stopwatch() as stage:
            summary = distill_tokenizer(bpe, fits[name], [], settings, out / "tokenizer", out / "report.md",
                                        out / "report.json", extra_eval_texts=sets, special=special,
                                        verify_settings=VerifySettings(random_id_sequences=200, examples=ALL_EXAMPLES))
        fit = summary["fit"]
        tokenizer_file = out / "tokenizer" / TOKENIZER_FILE
        spec = json.loads(tokenizer_file.read_text(encoding="utf-8"))
        size = tokenizer_file.stat().st_size
        print(f"\n## fitted on {name}: {sum(map(len, fits[name])) / 1e6:.1f}M characters, fit {fit['fit_seconds']:.0f} s, "
              f"stage {stage.seconds:.0f} s, peak RSS {fit['peak_rss_mb']:.0f} MiB, {fit['fit_word_types']} fit word "
              f"types, {fit['word_rules']} word rules, tokenizer.json {size / 1e6:.2f} MB, regex "
              f"{regex_characters(spec)} characters; corpus "
              f"{summary['sets']['corpus']['mismatched_occurrences']} of {summary['sets']['corpus']['word_occurrences']}"
              f" wrong, decode([i]) mismatches {summary['ids']['single_id_decode_mismatches']}\n")
        held = {k: v for k, v in summary["sets"].items() if k in sets}
        print(language_table(held, EXACT_TARGET, examples=4))
        print(f"\nwrong occurrences by cause (initialisation: merge-tree scores at exponent {settings.init_exponent}, "
              f"offset {settings.init_offset}, decay {settings.init_decay:g}, no fitting, no rules)\n")
        print(causes_table(held, prior))


if __name__ == "__main__":
    main()
