"""Select + remap on an offline corpus and print how many tokens the remapped tokenizer saves.

Domains (all offline):
  python   the installed Python's standard library ``.py`` files (``pydoc_data`` excluded), one document per file
  russian  the Russian translations (``msgstr``) in ``/usr/share/locale/ru/LC_MESSAGES/*.mo``, one document per file
General English: ``pydoc_data.topics`` (Python's help topics) and ``.txt``/``.md`` files under ``/usr/share/doc``.

The distilled tokenizer is read from ``--distilled DIR`` (e.g. ``artifacts/tokenizers/distilled_unigram``) or,
by default, fitted on the training split first with the project's distillation (its time is reported apart).

    uv run python benchmarks/ivr_benchmark.py --domain python --mb 8
"""

from __future__ import annotations

import tempfile
import zlib
from pathlib import Path

from common import Stopwatch, parser

from ivr.analysis.select import SelectSettings, select_replacements
from ivr.builtin_corpora import (
    documentation_texts,
    english_reference_texts,
    python_stdlib_texts,
    translated_messages,
    until_size,
    utf8_size,
)
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.distill import DistillSettings, fit_distilled, pre_token_counts
from ivr.tokenizers.io import load_tokenizer
from ivr.tokenizers.remap import RemapSettings, remap_tokenizer


def text_size(doc: tuple[str, str]) -> int:
    return utf8_size(doc[1])


def python_docs(max_bytes: int) -> list[tuple[str, str]]:
    """(path, text) of the standard library's ``.py`` files but ``pydoc_data`` and installed packages (tests
    included), until ``max_bytes`` is reached."""
    docs = python_stdlib_texts(skip_dirs={"pydoc_data", "site-packages"})
    return until_size(docs, max_bytes, size=text_size, stop_at_limit=True)


def mo_docs(lang: str, max_bytes: int) -> list[tuple[str, str]]:
    return until_size(translated_messages(lang), max_bytes, size=text_size, stop_at_limit=True)


def general_english(max_bytes: int) -> list[str]:
    """The help topics, then ``.txt``/``.md`` files under ``/usr/share/doc`` (links followed, bad bytes
    replaced) until ``max_bytes`` is reached."""
    texts = english_reference_texts()
    docs = documentation_texts(suffixes={".txt", ".md"}, symlinks=True, undecodable="replace")
    return texts + until_size(docs, max_bytes, already=sum(map(utf8_size, texts)), stop_at_limit=True)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--domain", choices=["python", "russian"], default="python")
    ap.add_argument("--mb", type=float, default=8.0, help="domain corpus size in MB")
    ap.add_argument("--general-mb", type=float, default=3.0)
    ap.add_argument("--heldout-fraction", type=float, default=0.1)
    ap.add_argument("--num-replacements", type=int, default=2000)
    ap.add_argument("--min-count", type=int, default=SelectSettings.min_count)
    ap.add_argument("--distilled", help="directory of a distilled tokenizer (default: fit one on the training split)")
    ap.add_argument("--out", help="artifact directory (default: a temporary one)")
    args = ap.parse_args()

    max_bytes = int(args.mb * 1e6)
    docs = python_docs(max_bytes) if args.domain == "python" else mo_docs("ru", max_bytes)
    # split by document name, as the project does, so held-out files are never seen by selection
    heldout_mask = [zlib.crc32(name.encode()) % 1000 < args.heldout_fraction * 1000 for name, _ in docs]
    train = [t for (_, t), h in zip(docs, heldout_mask) if not h]
    heldout = [t for (_, t), h in zip(docs, heldout_mask) if h]
    general = general_english(int(args.general_mb * 1e6))

    if args.distilled:
        distilled = load_tokenizer(args.distilled)
    else:
        with Stopwatch() as fitting:
            counts, _ = pre_token_counts(offline_gpt2_tokenizer(), train)
            distilled, _ = fit_distilled(offline_gpt2_tokenizer(), counts, DistillSettings())
        print(f"distilled tokenizer fitted on the training split in {fitting.seconds:.1f} s")
    original = offline_gpt2_tokenizer()
    settings = SelectSettings(num_replacements=args.num_replacements, min_count=args.min_count)

    out = Path(args.out or tempfile.mkdtemp(prefix="ivr-bench-"))
    with Stopwatch() as selecting:
        selection = select_replacements(
            distilled, train, settings, out / "replacement_candidates.csv", out / "selection_log.md"
        )
    with Stopwatch() as remapping:
        report = remap_tokenizer(
            distilled, RemapSettings(), out / "remapped", out / "remapped" / "remap_rules.yaml",
            out / "remap_report.md", out / "remap_report.json", candidates_csv=out / "replacement_candidates.csv",
            heldout_texts=heldout, general_texts=general, original_bpe=original,
        )
    m = report["measured"]
    print(f"domain: {args.domain}, {sum(len(t.encode()) for t in train) / 1e6:.2f} MB train in {len(train)} docs, "
          f"{sum(len(t.encode()) for t in heldout) / 1e6:.2f} MB held-out in {len(heldout)} docs; "
          f"general English {m['general']['original']['bytes'] / 1e6:.2f} MB; artifacts in {out}")
    print()
    print("| text | original BPE tok/byte | distilled tok/byte | remapped tok/byte | change vs BPE | change vs distilled |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in ("heldout_domain", "general"):
        v = m[name]
        print(f"| {name} | {v['original']['tokens_per_byte']:.4f} | {v['distilled']['tokens_per_byte']:.4f} | "
              f"{v['remapped']['tokens_per_byte']:.4f} | {report[f'{name}_change_pct_vs_original']:+.2f}% | "
              f"{report[f'{name}_change_pct_vs_distilled']:+.2f}% |")
    print()
    print(f"ids reassigned: {report['reassigned']}; estimated saving on train: {selection.summary['expected_saving_pct']:.2f}%; "
          f"realized on held-out vs distilled: {-report['heldout_domain_change_pct_vs_distilled']:.2f}%; "
          f"new ids unused in held-out: {report['new_ids_unused_in_heldout']}")
    print(f"stage times: select {selecting.seconds:.1f} s, remap {remapping.seconds:.1f} s (build + save "
          f"{report['build_seconds']:.1f} s, the rest measuring), select + remap "
          f"{selecting.seconds + remapping.seconds:.1f} s")


if __name__ == "__main__":
    main()
