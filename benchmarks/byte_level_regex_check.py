"""Does the saved tokenizer's byte-level regex cut the pre-tokens of the rules' regex over text?

The distilled tokenizer runs ``split_pattern`` rewritten for byte-level characters (``byte_level_regex``)
behind the ``ByteLevel`` normalizer. This script loads the saved tokenizer (``tokenizer.json`` as written, its
normalizer and byte-level regex), builds the regex over text from the rules its metadata lists, and compares
their pre-tokens on the distillation benchmark's fit corpus, held-out code and English prose, and on
random strings drawn from the rules' own characters, the listed words, non-ASCII letters, digits, marks,
punctuation and white space, and any code point, where the two forms would part if a class or a construct
were rewritten wrong:

    uv run python benchmarks/distill_benchmark.py --out /tmp/distill_bench     # fits the tokenizer
    uv run python benchmarks/byte_level_regex_check.py --tokenizer /tmp/distill_bench/tokenizer --texts 100000
"""

from __future__ import annotations

import random

from common import Stopwatch, distillation_sets, non_negative_int, parser, positive_int, random_seed, tokenizer_dir

from ivr.tokenizers.byte_level import piece_to_bytes
from ivr.tokenizers.distill import rules_pre_tokenizer
from ivr.tokenizers.io import load_tokenizer, pre_tokens, read_metadata

NON_ASCII = list("éßЖ中½٣\u0301\u00a0\u3000\u2028\u0085“”—…─═•·█\U0001f600\u00ad\u200b")


def random_texts(n: int, rules: list[dict], words: list[list[str]], seed: int) -> list[str]:
    rng = random.Random(seed)
    chars = sorted({piece_to_bytes(r["char"]).decode("utf-8") for r in rules}) + NON_ASCII + list(" \n\t'sxa1")
    listed = ["".join(piece_to_bytes(p).decode("utf-8") for p in w) for w in words]
    texts = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 8)):
            if listed and rng.random() < 0.3:
                parts.append(rng.choice(listed))
            elif rng.random() < 0.15:  # any code point, most of them in the Basic Multilingual Plane
                code = rng.randrange(0x10000 if rng.random() < 0.9 else 0x110000)
                parts.append(chr(code) if not 0xD800 <= code <= 0xDFFF else "?")
            else:
                parts.append(rng.choice(chars) * (rng.randint(2, 12) if rng.random() < 0.4 else 1))
        texts.append("".join(parts))
    return texts


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--tokenizer", type=tokenizer_dir, required=True, help="a distilled tokenizer folder (with ivr_metadata.json)")
    ap.add_argument("--texts", type=positive_int, default=100_000, help="how many random strings")
    ap.add_argument("--seed", type=random_seed, default=0, help="seed of the random strings")
    ap.add_argument("--examples", type=non_negative_int, default=5, help="how many differing texts to print")
    args = ap.parse_args()
    meta = read_metadata(args.tokenizer, required=True)
    rules, words = meta.get("split_rules", []), meta.get("word_rules", [])
    over_text = rules_pre_tokenizer(rules, words)
    byte_level = load_tokenizer(args.tokenizer)  # the saved file itself, not rebuilt from its rules

    sets = distillation_sets() | {"random strings": random_texts(args.texts, rules, words, args.seed)}
    rows, bad = [], []
    for name, texts in sets.items():
        with Stopwatch() as check:
            differ = [t for t in texts if pre_tokens(byte_level, t) != [p for p, _ in over_text.pre_tokenize_str(t)]]
        bad += differ
        rows.append((name, f"{len(texts)}", f"{len(differ)}", f"{check.seconds:.1f}"))
    print(f"\n{'set':<16} | texts  | texts cut differently | seconds\n{'-' * 16}-|--------|-----------------------|--------")
    for name, n, d, s in rows:
        print(f"{name:<16} | {n:>6} | {d:>21} | {s:>7}")
    for text in bad[: args.examples]:
        print(f"\n{text[:200]!r}\n  over text:  {[p for p, _ in over_text.pre_tokenize_str(text)][:20]}"
              f"\n  byte-level: {pre_tokens(byte_level, text)[:20]}")


if __name__ == "__main__":
    main()
