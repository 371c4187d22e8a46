"""Count the CPU instructions that encoding takes, distilled tokenizer against BPE: a speed figure nearly without noise.

Timings on a shared machine move by a few percent from run to run, which hides changes of 1-2% in the pre-tokenizer
regex. This script runs each tokenizer under ``valgrind --tool=callgrind`` twice, once loading the tokenizer and the
sample and once also encoding the sample (one text at a time, one thread), and reports the difference: the
instructions spent encoding, within 0.3% on every run (Rust seeds its hash maps anew in each process). The ratio
BPE / distilled is a proxy for the encode speed ratio (it ignores cache misses and branch mispredictions; on this
benchmark's text the timed one-thread ratio came out 3-8% lower, docs/benchmarks.md). The sample is every 8th
document of ``distill_benchmark.py``'s throughput sample (held-out standard library code and English prose, about
0.7 MB); each tokenizer takes about 20 s. The ``no-<class>`` variants leave out one class's split and word rules,
and ``--exactness`` counts what each variant gets wrong, so that a rule class's speed cost and what it fixes are
read off one table.

    uv run python benchmarks/distill_benchmark.py --out /tmp/distill_bench     # fits the tokenizer
    uv run python benchmarks/encode_instructions.py --tokenizer /tmp/distill_bench/tokenizer
    uv run python benchmarks/encode_instructions.py --tokenizer /tmp/distill_bench/tokenizer \
        --variants distilled no-letter no-digit no-punct no-white       # what each class of rules costs
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VARIANTS = {
    "bpe": "GPT-2's BPE",
    "plain": "distilled model, GPT-2's plain pre-tokenizer",
    "split": "distilled model, split rules only",
    "distilled": "distilled tokenizer as saved (split and word rules)",
    "text-regex": "the same rules as a regex over text, each pre-token mapped to bytes on its own",
}
# leave one class out: a class's rules cost mostly through the guards every pre-token of the class passes, which
# only go away with both its split and its word rules
RULE_CLASSES = {"letter": ("letter",), "digit": ("digit",), "punct": ("punct", "quote"),
                "white": ("space", "newline", "tab")}
VARIANTS |= {f"no-{name}": f"distilled tokenizer without its {name} split and word rules" for name in RULE_CLASSES}


def build(variant: str, tokenizer_dir: Path):
    # imported here, so that the process counted under valgrind loads the tokenizers library alone
    from ivr.tokenizers.bpe import offline_gpt2_tokenizer
    from ivr.tokenizers.distill import rules_pre_tokenizer, with_rules
    from ivr.tokenizers.io import load_tokenizer, read_metadata
    from ivr.tokenizers.distill.word_rules import word_segments

    if variant == "bpe":
        return offline_gpt2_tokenizer()
    tok = load_tokenizer(tokenizer_dir)
    if variant == "distilled":
        return tok
    meta = read_metadata(tokenizer_dir, required=True)
    rules, words = meta.get("split_rules", []), meta.get("word_rules", [])
    if variant == "text-regex":  # the layout before the byte-level regex
        tok.normalizer = None
        tok.pre_tokenizer = rules_pre_tokenizer(rules, words)
        return tok
    if variant.startswith("no-"):
        left_out = RULE_CLASSES[variant[3:]]
        rules = [r for r in rules if r["class"] not in left_out]
        words = [w for w in words if word_segments(w)[0] not in left_out]
    else:
        rules, words = (rules if variant == "split" else []), []
    return with_rules(tok, rules, words)


def sample_texts(every: int) -> list[str]:
    from common import distillation_sets  # not at the top: the process under valgrind imports this script

    sets = distillation_sets()
    return (sets["held-out code"] + sets["prose"])[::every]


def wrong_occurrences(variants: list[str], tokenizer_dir: Path) -> dict[str, dict[str, int]]:
    """Per variant and benchmark set, the word occurrences that get other ids than BPE's."""
    from common import distillation_sets
    from ivr.tokenizers.verify import compare_texts

    sets, bpe = distillation_sets(), build("bpe", tokenizer_dir)
    return {v: {name: compare_texts(build(v, tokenizer_dir), bpe, texts, name)["mismatched_occurrences"]
                for name, texts in sets.items()} for v in variants}


def child(tokenizer_file: Path, sample: Path, encode: bool) -> None:
    # only the tokenizers library is loaded under valgrind: the tokenizer was built and saved beforehand
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_file))
    texts = json.loads(sample.read_text(encoding="utf-8"))
    if encode:
        for text in texts:
            tok.encode(text)


def instructions(tokenizer_file: Path, sample: Path, encode: bool) -> int:
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__,
           "--sample", str(sample), "--child", str(tokenizer_file)]
    out = subprocess.run(cmd + (["--encode"] if encode else []), capture_output=True, text=True, check=True).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise SystemExit(f"no instruction count in valgrind's output:\n{out[-2000:]}")
    return int(found.group(1))


def positive_every(value: str) -> int:
    """``common.positive_int``, imported only when ``--every`` is read: the process under valgrind parses too."""
    from common import positive_int

    return positive_int(value)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokenizer", type=Path, help="a distilled tokenizer folder (with ivr_metadata.json)")
    ap.add_argument("--every", type=positive_every, default=8,
                    help="take every n-th document of the throughput sample")
    ap.add_argument("--variants", nargs="+", choices=list(VARIANTS), default=list(VARIANTS)[:5],
                    help="which tokenizers to count (BPE always, as the reference): " + "; ".join(
                        f"{k}: {v}" for k, v in VARIANTS.items()) + "; the default is the first five")
    ap.add_argument("--exactness", action="store_true",
                    help="also count, for each variant, the word occurrences that get other ids than BPE's on the "
                         "distillation benchmark's fit corpus, held-out code and English prose (about a minute each)")
    ap.add_argument("--sample", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--encode", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child, args.sample, args.encode)
        return
    from ivr.paths import TOKENIZER_FILE

    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (e.g. apt-get install valgrind)")
    if args.tokenizer is None or not (args.tokenizer / TOKENIZER_FILE).is_file():
        raise SystemExit(f"{args.tokenizer}: no {TOKENIZER_FILE}; run benchmarks/distill_benchmark.py first")
    texts = sample_texts(args.every)
    print(f"sample: {len(texts)} documents, {sum(len(t.encode()) for t in texts) / 1e6:.2f} MB")
    counts = {}
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "sample.json"
        sample.write_text(json.dumps(texts), encoding="utf-8")
        for variant in ["bpe"] + [v for v in args.variants if v != "bpe"]:
            saved = Path(tmp) / f"{variant}.json"
            build(variant, args.tokenizer).save(str(saved))
            counts[variant] = instructions(saved, sample, True) - instructions(saved, sample, False)
    wrong = wrong_occurrences([v for v in counts if v != "bpe"], args.tokenizer) if args.exactness else {}
    names = list(next(iter(wrong.values()), {}))
    width = max(len(VARIANTS[v]) for v in counts)
    print(f"\n{'tokenizer':<{width}} | encode instructions (M) | BPE / this | distilled minus this (M)"
          + "".join(f" | wrong: {n}" for n in names))
    print(f"{'-' * width}-|-------------------------|------------|-------------------------"
          + "".join(f"-|-{'-' * (7 + len(n))}" for n in names))
    for variant, n in counts.items():
        saved = f"{(counts['distilled'] - n) / 1e6:,.0f}" if "distilled" in counts else "-"
        cells = "".join(f" | {wrong.get(variant, {}).get(k, 0) if variant != 'bpe' else 0:>{7 + len(k)}}" for k in names)
        print(f"{VARIANTS[variant]:<{width}} | {n / 1e6:>23,.0f} | {counts['bpe'] / n:>10.3f} | {saved:>24}{cells}")


if __name__ == "__main__":
    main()
