"""Select + remap on an offline corpus and print how many tokens the remapped tokenizer saves, on held-out text
from other sources than the fit corpus, and how much general text it makes longer.

Domains (all offline):
  python   the demo's corpus: the installed Python's standard library (``data.builtin_corpus: python_stdlib``,
           no tests, no help-topic prose), one document per file; held out: its own held-out files and the
           ``.py`` files of installed third-party packages (``ivr.builtin_corpora.third_party_code``)
  russian  the Russian translations (``msgstr``) in ``/usr/share/locale/ru/LC_MESSAGES/*.mo``, one document per file
General English: ``pydoc_data.topics`` (Python's help topics) and ``.txt``/``.md`` files under ``/usr/share/doc``.

The domain corpus is cleaned as ``ivr init`` cleans it and split as every stage splits it (``is_heldout`` on the
cleaned documents' ids, ``--heldout-fraction`` as ``data.heldout_fraction``): held-out documents are never seen by
selection.

The distilled tokenizer is read from ``--distilled DIR`` (e.g. ``artifacts/tokenizers/distilled_unigram``) or,
by default, fitted on the training split first with the project's distillation (its time is reported apart).

    uv run python benchmarks/ivr_benchmark.py --domain python --mb 8
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from common import (
    Stopwatch, fraction, non_negative_int, parser, positive_float, positive_int, settings_from, tokenizer_dir,
)

from ivr.analysis.select import SelectSettings, select_replacements
from ivr.builtin_corpora import (
    documentation_texts,
    english_reference_texts,
    python_stdlib_files,
    third_party_code,
    translated_messages,
    until_size,
    utf8_size,
)
from ivr.cleaned_corpus import iter_documents
from ivr.corpus import CleaningOptions, clean_corpus
from ivr.paths import ArtifactPaths
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.distill import DistillSettings, fit_distilled, pre_token_counts
from ivr.tokenizers.io import load_tokenizer
from ivr.tokenizers.reachability import tokenizer_unreachable_ids
from ivr.tokenizers.remap import RemapSettings, remap_tokenizer

TARGET_SAVING_PCT = 40.0
TARGET_LINES_LONGER_PCT = 1.0
# the raw files this script writes, under --out (never the stages' corpora/raw, which may hold a user's text)
BENCHMARK_RAW = "benchmark_raw"


def text_size(doc: tuple[str, str]) -> int:
    return utf8_size(doc[1])


def cleaned_corpus(domain: str, megabytes: float, paths: ArtifactPaths) -> Path:
    """The domain's documents cleaned as ``ivr init`` cleans them, into ``paths``: the built-in corpus for
    ``python``; for ``russian`` each catalogue written as a ``.txt`` raw file (one document, its id the
    catalogue's name) first, into a folder of the script's own beside ``corpora/raw`` (a user's raw text there,
    as in a project's ``artifacts/``, is neither read nor removed)."""
    raw = paths.root / BENCHMARK_RAW
    shutil.rmtree(raw, ignore_errors=True)  # an earlier run's files would join the corpus
    options = CleaningOptions(builtin_corpus="python_stdlib", builtin_corpus_max_mb=megabytes)
    if domain == "russian":
        options = CleaningOptions()
        raw.mkdir(parents=True)
        for name, text in until_size(translated_messages("ru"), megabytes * 1e6, size=text_size, stop_at_limit=True):
            (raw / f"{name}.txt").write_text(text, encoding="utf-8")
    clean_corpus(raw, paths.cleaned_corpora_dir, options, default_raw_dir=True)
    return paths.cleaned_corpora_dir


def domain_splits(cleaned: Path, heldout_fraction: float) -> tuple[list[str], list[str]]:
    """The cleaned domain documents' texts, (training split, held-out split); refused where either is empty (a
    small ``--mb``: selection needs training text, and every figure is measured on the held-out one)."""
    train = [d.text for d in iter_documents(cleaned, "train", heldout_fraction)]
    heldout = [d.text for d in iter_documents(cleaned, "heldout", heldout_fraction)]
    if not train or not heldout:
        raise SystemExit(f"{len(train) + len(heldout)} domain documents: {len(train)} for training, {len(heldout)} "
                         f"held out; raise --mb or change --heldout-fraction ({heldout_fraction}) so that both "
                         "splits hold some")
    return train, heldout


def general_english(max_bytes: int) -> list[str]:
    """The help topics, then ``.txt``/``.md`` files under ``/usr/share/doc`` (links followed, bad bytes
    replaced) until ``max_bytes`` is reached."""
    texts = english_reference_texts()
    docs = documentation_texts(suffixes={".txt", ".md"}, symlinks=True, undecodable="replace")
    return texts + until_size(docs, max_bytes, already=sum(map(utf8_size, texts)), stop_at_limit=True)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--domain", choices=["python", "russian"], default="python",
                    help="the domain corpus: the standard library's sources or Russian UI messages (see above)")
    ap.add_argument("--mb", type=positive_float, default=8.0, help="domain corpus size in MB")
    ap.add_argument("--general-mb", type=positive_float, default=3.0,
                    help="general English in MB, the help topics included (more /usr/share/doc text fills it up)")
    ap.add_argument("--heldout-fraction", type=fraction, default=0.1,
                    help="data.heldout_fraction: share of the domain's documents held out of selection and measured")
    ap.add_argument("--num-replacements", type=non_negative_int,
                    help="default: data.select.num_replacements's (2000)")
    ap.add_argument("--min-count", type=positive_int, help="default: data.select.min_count's (20)")
    ap.add_argument("--distilled", type=tokenizer_dir, help="directory of a distilled tokenizer (default: fit one on the training split)")
    ap.add_argument("--out", help="artifact directory, best new or empty (default: a temporary one)")
    ap.add_argument("--select", action="append", default=[], metavar="KEY=VALUE",
                    help="a SelectSettings field (data.select.KEY; null for None), repeatable")
    ap.add_argument("--remap", action="append", default=[], metavar="KEY=VALUE",
                    help="a RemapSettings field (data.remap.KEY), repeatable")
    args = ap.parse_args()

    out = Path(args.out or tempfile.mkdtemp(prefix="ivr-bench-"))
    paths = ArtifactPaths.from_config(out)  # every file where the `ivr` stages write it
    files = python_stdlib_files(args.mb) if args.domain == "python" else []
    cleaned = cleaned_corpus(args.domain, args.mb, paths)
    train, heldout = domain_splits(cleaned, args.heldout_fraction)
    general = general_english(int(args.general_mb * 1e6))
    other = {"third_party_code": [t for _, t in third_party_code()]} if args.domain == "python" else {}

    if args.distilled:
        distilled = load_tokenizer(args.distilled)
    else:
        with Stopwatch() as fitting:
            counts, _ = pre_token_counts(offline_gpt2_tokenizer(), train)
            distilled, _ = fit_distilled(offline_gpt2_tokenizer(), counts, DistillSettings())
        print(f"distilled tokenizer fitted on the training split in {fitting.seconds:.1f} s")
    original = offline_gpt2_tokenizer()
    settings = settings_from(args.select, SelectSettings, "--select", num_replacements=args.num_replacements,
                             min_count=args.min_count)
    remap_settings = settings_from(args.remap, RemapSettings, "--remap")
    unreachable = tokenizer_unreachable_ids(original)

    with Stopwatch() as selecting:
        selection = select_replacements(
            distilled, train, settings, paths.replacement_candidates, paths.selection_log, paths.savings_curve,
            unreachable=unreachable, corpus_sources=[path for path, _ in files],
            new_piece_bonus=remap_settings.new_piece_bonus,
        )
    with Stopwatch() as remapping:
        report = remap_tokenizer(
            distilled, remap_settings, paths.remapped_tokenizer_dir, paths.remap_rules, paths.remap_report_md,
            paths.remap_report_json, candidates_csv=paths.replacement_candidates, heldout_texts=heldout,
            general_texts=general, original_bpe=original, extra_texts=other,
        )
    remapped = load_tokenizer(paths.remapped_tokenizer_dir)
    sets = {"heldout_domain": heldout, "general": general, **other}
    round_trip = all(remapped.decode(e.ids) == t for texts in sets.values()
                     for t, e in zip(texts, remapped.encode_batch(texts, add_special_tokens=False)))
    produced = {i for texts in sets.values() for e in original.encode_batch(texts, add_special_tokens=False) for i in e.ids}

    m, longer = report["measured"], report["made_longer"]
    print(f"domain: {args.domain}, {sum(map(utf8_size, train)) / 1e6:.2f} MB train in {len(train)} docs, "
          f"{sum(map(utf8_size, heldout)) / 1e6:.2f} MB held-out in {len(heldout)} docs; "
          + "".join(f"{k} {sum(map(utf8_size, v)) / 1e6:.2f} MB in {len(v)} files; " for k, v in other.items())
          + f"general English {m['general']['original']['bytes'] / 1e6:.2f} MB; artifacts in {out}")
    print()
    print("| text | GPT-2 tok/byte | remapped tok/byte | tokens vs GPT-2 | documents longer | lines longer | "
          "extra tokens on longer lines |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in sets:
        v, d, ln = m[name], longer[name]["documents"], longer[name]["lines"]
        print(f"| {name} | {v['original']['tokens_per_byte']:.4f} | {v['remapped']['tokens_per_byte']:.4f} | "
              f"{report[f'{name}_change_pct_vs_original']:+.2f}% | {d['longer_pct']:.2f}% | {ln['longer_pct']:.2f}% "
              f"({ln['longer']} of {ln['count']}) | {ln['extra_tokens_pct']:.3f}% |")
    print()
    s = selection.summary
    print(f"ids reassigned: {report['reassigned']}; estimated saving on train: {s['expected_saving_pct']:.2f}%; "
          f"validation (ranked on 80% of train, measured on the rest): {s.get('validation_fitted_saving_pct', 0):.2f}% "
          f"-> {s.get('validation_heldout_saving_pct', 0):.2f}%; realized on held-out vs distilled: "
          f"{-report['heldout_domain_change_pct_vs_distilled']:.2f}%; new ids unused in held-out: "
          f"{report['new_ids_unused_in_heldout']}; refused for general text: {s['refused_for_general_text']}")
    print(f"unreachable ids (from the merges): {len(unreachable)}; freed: {s['unreachable_freed']}; produced by "
          f"GPT-2 on these texts: {len(produced & set(unreachable))}; freed ids unused by the general prior: "
          f"{s['freed_unused_by_general_text']} of {report['reassigned']}")
    print(f"stage times: select {selecting.seconds:.1f} s, remap {remapping.seconds:.1f} s (build + save "
          f"{report['build_seconds']:.1f} s, the rest measuring)")
    print()
    domain_rows = [k for k in sets if k != "general"]
    checks = [(f"{k}: >= {TARGET_SAVING_PCT:.0f}% fewer tokens than GPT-2", -report[f"{k}_change_pct_vs_original"],
               -report[f"{k}_change_pct_vs_original"] >= TARGET_SAVING_PCT) for k in domain_rows]
    checks += [
        ("general English: total tokens not above GPT-2's", report["general_change_pct_vs_original"],
         report["general_change_pct_vs_original"] <= 0),
        (f"general English: <= {TARGET_LINES_LONGER_PCT}% of lines longer", longer["general"]["lines"]["longer_pct"],
         longer["general"]["lines"]["longer_pct"] <= TARGET_LINES_LONGER_PCT),
        ("round trip decode(encode(x)) == x on every text", float(round_trip), round_trip),
    ]
    print("| target | value | met |\n|---|---:|---|")
    for name, value, ok in checks:
        print(f"| {name} | {value:.2f} | {'yes' if ok else 'NO'} |")


if __name__ == "__main__":
    main()
