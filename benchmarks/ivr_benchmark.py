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

import argparse
import gettext
import sysconfig
import tempfile
import time
import zlib
from pathlib import Path

from ivr.analysis.select import IVRSettings, select_replacements
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.distill import DistillSettings, fit_distilled, pre_token_counts
from ivr.tokenizers.io import load_tokenizer
from ivr.tokenizers.remap import remap_tokenizer


def python_docs(max_bytes: int) -> list[tuple[str, str]]:
    stdlib = Path(sysconfig.get_paths()["stdlib"])
    docs, total = [], 0
    for f in sorted(stdlib.rglob("*.py")):
        if "pydoc_data" in f.parts or "site-packages" in f.parts:
            continue
        text = f.read_text(encoding="utf-8", errors="replace")
        docs.append((str(f.relative_to(stdlib)), text))
        total += len(text.encode("utf-8"))
        if total >= max_bytes:
            break
    return docs


def mo_docs(lang: str, max_bytes: int) -> list[tuple[str, str]]:
    docs, total = [], 0
    for f in sorted(Path("/usr/share/locale", lang, "LC_MESSAGES").glob("*.mo")):
        with open(f, "rb") as fh:
            try:
                catalog = gettext.GNUTranslations(fh)._catalog
            except (OSError, UnicodeDecodeError):
                continue
        text = "\n".join(v for k, v in catalog.items() if k and isinstance(v, str) and v.strip())
        if text:
            docs.append((f.name, text))
            total += len(text.encode("utf-8"))
        if total >= max_bytes:
            break
    return docs


def general_english(max_bytes: int) -> list[str]:
    from pydoc_data.topics import topics

    texts = list(topics.values())
    total = sum(len(t.encode("utf-8")) for t in texts)
    for f in sorted(Path("/usr/share/doc").rglob("*")):
        if total >= max_bytes:
            break
        if f.suffix in {".txt", ".md"} and f.is_file():
            text = f.read_text(encoding="utf-8", errors="replace")
            texts.append(text)
            total += len(text.encode("utf-8"))
    return texts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--domain", choices=["python", "russian"], default="python")
    ap.add_argument("--mb", type=float, default=8.0, help="domain corpus size in MB")
    ap.add_argument("--general-mb", type=float, default=3.0)
    ap.add_argument("--heldout-fraction", type=float, default=0.1)
    ap.add_argument("--num-replacements", type=int, default=2000)
    ap.add_argument("--min-count", type=int, default=IVRSettings.min_count)
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
        start = time.perf_counter()
        counts, _ = pre_token_counts(offline_gpt2_tokenizer(), train)
        distilled, _ = fit_distilled(offline_gpt2_tokenizer(), counts, DistillSettings())
        print(f"distilled tokenizer fitted on the training split in {time.perf_counter() - start:.1f} s")
    original = offline_gpt2_tokenizer()
    settings = IVRSettings(num_replacements=args.num_replacements, min_count=args.min_count)

    out = Path(args.out or tempfile.mkdtemp(prefix="ivr-bench-"))
    t0 = time.perf_counter()
    selection = select_replacements(distilled, train, settings, out / "replacement_candidates.csv", out / "selection_log.md")
    t1 = time.perf_counter()
    report = remap_tokenizer(
        distilled, settings, out / "remapped", out / "remapped" / "remap_rules.yaml", out / "remap_report.md",
        out / "remap_report.json", candidates_csv=out / "replacement_candidates.csv",
        heldout_texts=heldout, general_texts=general, original_bpe=original,
    )
    t2 = time.perf_counter()
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
    print(f"stage times: select {t1 - t0:.1f} s, remap {t2 - t1:.1f} s (build + save {report['build_seconds']:.1f} s, "
          f"the rest measuring), select + remap {t2 - t0:.1f} s")


if __name__ == "__main__":
    main()
