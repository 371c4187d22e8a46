"""Selection's time and peak memory on text of ever new strings: random base64 words (encoded data, random
identifiers), where every short span is rare and the span strings number in the millions.

Each size runs in a process of its own, so that its peak resident memory is its own. The distilled tokenizer is
read from ``--distilled`` (``uv run ivr prepare --config configs/demo.yaml`` writes one):

    uv run python benchmarks/select_memory.py --distilled artifacts/tokenizers/distilled_unigram --mb 3 10
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from common import Stopwatch, parser, positive_float

from ivr.peak_memory import process_peak_kb


def random_words(mb: float, seed: int = 0) -> list[str]:
    """Documents of 400 base64 words of 8 to 20 characters each, ``mb`` MB in all."""
    rng, docs, size = random.Random(seed), [], 0
    while size < mb * 1e6:
        doc = " ".join(base64.b64encode(rng.randbytes(rng.randint(6, 15))).decode() for _ in range(400)) + "\n"
        docs.append(doc)
        size += len(doc)
    return docs


def peak_gb() -> float:
    """This process's peak resident memory so far in GB (10^9 bytes); the kernel counts it in KiB."""
    return process_peak_kb() * 1024 / 1e9


def measure(distilled: Path, mb: float) -> dict:
    """One selection with the default settings, in this process."""
    from ivr.analysis.select import SelectSettings, select_replacements
    from ivr.tokenizers.io import load_tokenizer

    docs, tok = random_words(mb), load_tokenizer(distilled)
    with tempfile.TemporaryDirectory() as scratch, Stopwatch() as t:
        out = Path(scratch)
        sel = select_replacements(tok, docs, SelectSettings(), out / "c.csv", out / "log.md", out / "curve.png")
    return {"mb": mb, "documents": len(docs), "seconds": t.seconds,
            "peak_gb": peak_gb(),
            "picked": len(sel.replacements), "span_count_floor": sel.summary["span_count_floor"]}


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--distilled", type=Path, default=Path("artifacts/tokenizers/distilled_unigram"),
                    help="directory of a distilled tokenizer")
    ap.add_argument("--mb", type=positive_float, nargs="+", default=[3.0, 10.0], help="sizes of random text in MB")
    ap.add_argument("--one", type=positive_float, help=argparse.SUPPRESS)  # one size, in the child process
    args = ap.parse_args()
    if not (args.distilled / "tokenizer.json").is_file():
        sys.exit(f"{args.distilled}: no distilled tokenizer; run `uv run ivr prepare --config configs/demo.yaml` "
                 "first or pass --distilled DIR")
    if args.one is not None:
        print(json.dumps(measure(args.distilled, args.one)))
        return
    print("| random text (MB) | documents | seconds | peak resident memory (GB) | strings picked | span count floor |")
    print("|---:|---:|---:|---:|---:|---:|")
    for mb in args.mb:
        # the child's errors go to this terminal; only its result line is read back
        done = subprocess.run([sys.executable, __file__, "--distilled", str(args.distilled), "--one", str(mb)],
                              stdout=subprocess.PIPE, text=True)
        if done.returncode:
            sys.exit(f"the selection on {mb:g} MB failed (status {done.returncode}): its error is above")
        r = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"| {r['mb']:g} | {r['documents']} | {r['seconds']:.1f} | {r['peak_gb']:.2f} | {r['picked']} | "
              f"{r['span_count_floor']} |", flush=True)


if __name__ == "__main__":
    main()
