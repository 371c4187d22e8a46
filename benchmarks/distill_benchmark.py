"""Distil GPT-2 on the Python standard library and compare it with BPE: exactness, fit cost, encode speed.

Corpus: the stdlib's ``.py`` files (no site-packages, tests, IDLE or help topics), split by file into fit and
held-out;
English prose held out, reported per source and together: ``pydoc_data/topics.py`` (the Python help topics)
and text under ``/usr/share/doc``.

    uv run python benchmarks/distill_benchmark.py --out /tmp/distill_bench

Two fits' encode speeds compare within one run with ``--throughput-only --also OTHER/tokenizer``.
"""

from __future__ import annotations

import statistics
from pathlib import Path

from common import (Stopwatch, add_heldout_every, add_settings, encode_speeds, english_prose, parser, positive_int,
                    print_metrics, settings_from, stdlib_split, tokenizer_dir)

from ivr.paths import TOKENIZER_FILE
from ivr.peak_memory import process_peak_kb
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.distill import DistillSettings, distill_tokenizer, with_rules
from ivr.tokenizers.io import load_tokenizer, read_metadata


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--out", type=Path, default=Path("/tmp/distill_bench"),
                    help="where the distilled tokenizer (OUT/tokenizer) and its reports (report.md, report.json) go")
    add_heldout_every(ap)
    ap.add_argument("--max-iterations", type=positive_int, default=None,
                    help=f"fitting rounds (default {DistillSettings.max_iterations})")
    ap.add_argument("--repeats", type=positive_int, default=3,
                    help="throughput passes over the sample; in each, BPE, the distilled tokenizer and the distilled "
                         "model without word rules and without any rules take turns on each of 40 chunks (the "
                         "median chunk ratio is reported)")
    ap.add_argument("--no-vocab-words", action="store_true",
                    help="fit without the vocabulary pieces and their variants (data.distill.vocab_words and "
                         "vocab_variants false); the digit strings and general words stay: with --set number_words=0 "
                         "--set general_languages= as well, the fit is on the corpus alone")
    add_settings(ap)
    ap.add_argument("--throughput-only", action="store_true",
                    help="skip fitting: time the tokenizer already in OUT/tokenizer (speed is the noisiest figure)")
    ap.add_argument("--also", type=tokenizer_dir, default=None, metavar="DIR",
                    help="a second saved tokenizer (a tokenizer.json directory) timed in the same rotation, so "
                         "that two fits' speeds compare within one run")
    args = ap.parse_args()
    fitted = args.out / "tokenizer"
    if args.throughput_only and not (fitted / TOKENIZER_FILE).is_file():
        raise SystemExit(f"--throughput-only: no {TOKENIZER_FILE} in {fitted}: fit one first (the same command "
                         "without --throughput-only)")

    bpe = offline_gpt2_tokenizer()
    fit_texts, held_texts = stdlib_split(args.heldout_every)
    prose = english_prose()
    rows = [] if args.throughput_only else fit_and_verify(args, bpe, fit_texts, held_texts, prose)
    sample = held_texts + [t for texts in prose.values() for t in texts]
    rows += throughput_rows(fitted, sample, args.repeats, args.also)
    print_metrics(rows)


def fit_and_verify(args, bpe, fit_texts: list[str], held_texts: list[str], prose: dict[str, list[str]]) -> list[tuple]:
    """Distil into ``args.out`` and return the table rows of fit and verification figures."""
    vocab = False if args.no_vocab_words else None
    settings = settings_from(args.set, max_iterations=args.max_iterations, vocab_words=vocab, vocab_variants=vocab)
    with Stopwatch() as stage:
        summary = distill_tokenizer(
            bpe, fit_texts, held_texts, settings, args.out / "tokenizer", args.out / "report.md",
            args.out / "report.json", extra_eval_texts=prose,
        )

    rows = [
        ("fit corpus (MB)", f"{sum(len(t.encode()) for t in fit_texts) / 1e6:.2f}"),
        ("fit time incl. pre-tokenizing (s)", f"{summary['fit']['fit_seconds']:.1f}"),
        ("stage time incl. verification (s)", f"{stage.seconds:.1f}"),
        (f"peak RSS of the fit ({'process' if summary['fit']['peak_rss_scope'] == 'process' else 'the fit alone'}) / "
         "of the process so far (MiB)",
         f"{summary['fit']['peak_rss_mb']:.0f} / {process_peak_kb() / 1024:.0f}"),
        ("fit rounds / constraints", f"{summary['fit']['rounds']} / {summary['fit']['constraints']}"),
        ("ids identical / decode([i]) mismatches",
         f"{summary['ids']['id_to_token_identical']} / {summary['ids']['single_id_decode_mismatches']}"),
    ]
    for name, s in summary["sets"].items():
        r, m = s["rates"], s["mismatches"]
        rows.append((f"{name}: exact word occ / type / token / doc",
                     f"{r['word_occurrence']:.5%} / {r['word_type']:.5%} / {r['token']:.5%} / {r['document']:.3%}"))
        rows.append((f"{name}: mismatched types tie / conflict / other",
                     f"{m['tie']['types']} / {m['conflict']['types']} / {m['other']['types']}"))
    parts = [summary["sets"][k] for k in prose]
    occurrences = sum(p["word_occurrences"] for p in parts)
    wrong = sum(p["mismatched_occurrences"] for p in parts)
    rows.append(("English prose (both sets): exact word occ / wrong occurrences",
                 f"{1 - wrong / occurrences:.5%} / {wrong} of {occurrences}"))
    return rows


def throughput_rows(tokenizer_dir: Path, sample: list[str], repeats: int, also: Path | None = None,
                    n_chunks: int = 40) -> list[tuple]:
    """Encode speed of the distilled tokenizer against BPE's, in one run: the median over chunks of the ratio
    of their times on the same chunk (a whole-pass ratio swung by 10% between runs on a shared machine; the
    per-chunk median moved by 1-2%)."""
    rows = []
    # all loaded afresh, so that their word caches (10,000 words each) start empty alike; the distilled model
    # behind GPT-2's plain pre-tokenizer tells the rules' cost apart from the Unigram model's, and behind the
    # split rules alone the word rules' cost apart from the split rules'
    metadata = read_metadata(tokenizer_dir, required=True)
    toks = {"bpe": offline_gpt2_tokenizer(), "distilled": load_tokenizer(tokenizer_dir),
            "plain": with_rules(load_tokenizer(tokenizer_dir), []),
            "split": with_rules(load_tokenizer(tokenizer_dir), metadata.get("split_rules", []))}
    if also is not None:
        toks["also"] = load_tokenizer(also)
    for label, speed, ratios in encode_speeds(toks, sample, repeats, n_chunks):
        ratio = {k: statistics.median(v) for k, v in ratios.items()}
        quart = statistics.quantiles(ratios["distilled"], n=4)
        rows.append((f"{label} MB/s BPE / distilled (median chunk ratio, quartiles)",
                     f"{speed['bpe']:.2f} / {speed['distilled']:.2f} ({ratio['distilled']:.3f}x; "
                     f"{quart[0]:.2f}-{quart[2]:.2f})"))
        rows.append((f"{label} MB/s distilled without word rules", f"{speed['split']:.2f} ({ratio['split']:.3f}x BPE)"))
        rows.append((f"{label} MB/s distilled without split or word rules",
                     f"{speed['plain']:.2f} ({ratio['plain']:.3f}x BPE)"))
        if also is not None:
            rows.append((f"{label} MB/s {also}", f"{speed['also']:.2f} ({ratio['also']:.3f}x BPE)"))
    return rows


if __name__ == "__main__":
    main()
