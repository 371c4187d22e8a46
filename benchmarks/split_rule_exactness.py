"""How exact are the split rules? GPT-2's own BPE model behind GPT-2's pre-tokenizer with the split rules,
against GPT-2's BPE, on random strings of punctuation and white-space runs (``--tokenizer DIR``: another
byte-level BPE with GPT-2's regex, saved as ``DIR/tokenizer.json``, such as SmolLM2's, which
``smollm2_distill.py`` writes to ``OUT/original``). For a BPE whose pre-tokenizer the distillation keeps
(Llama-3's, Qwen2's regex, which ``real_vocab_distill.py`` writes to ``OUT/<vocabulary>/original``) the same
holds for its run cuts, the ``Split`` behind its own pre-tokenizer: its BPE model behind both against the BPE.

A split rule may only cut where BPE never merges across the cut, so the BPE model behind the rules must give
BPE's ids on every text; any difference is a cut the rules should not have made. The strings are random runs
of punctuation and white space (1 to ``--longest`` of a character, up to 6 runs, with some letters, digits,
carriage returns and non-ASCII punctuation), far denser in odd neighbours than real text:

    uv run python benchmarks/split_rule_exactness.py --texts 200000 --seed 1
    uv run python benchmarks/split_rule_exactness.py --tokenizer /tmp/smollm2_distill/original
    uv run python benchmarks/split_rule_exactness.py --tokenizer /tmp/real_vocabs/llama-bpe/original
"""

from __future__ import annotations

import random
from pathlib import Path

from common import Stopwatch, non_negative_int, parser, positive_int, print_metrics, random_seed, two_or_more

from ivr.paths import TOKENIZER_FILE
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import readable, text_to_piece
from ivr.tokenizers.distill import bare_model, split_rule_for, with_rules
from ivr.tokenizers.distill.run_cuts import CHARS, CharCuts, piece_grams, run_cut_split, run_cuts_of
from ivr.tokenizers.distill.source_bpe import source_bpe
from ivr.tokenizers.io import load_tokenizer

PUNCTUATION = "'\"()[]{}-=.!%*#~_/^+<>|\\:,;?"
WHITE = " \n\t"
OTHERS = "xs1\r«¿…─"


def random_texts(n: int, alphabet: list[str], seed: int, longest: int) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(n):
        runs = [rng.choice(alphabet) for _ in range(rng.randint(1, 6))]
        texts.append("".join(c * (rng.randint(1, longest) if rng.random() < 0.5 else 1) for c in runs))
    return texts


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--chars", default=PUNCTUATION + WHITE, help="characters that get a split rule")
    ap.add_argument("--texts", type=positive_int, default=200_000, help="how many random strings")
    ap.add_argument("--seed", type=random_seed, default=1, help="seed of the random strings")
    ap.add_argument("--max-run", type=two_or_more, default=64, help="longest run each rule is built for")
    ap.add_argument("--longest", type=positive_int, default=9, help="longest run in the random strings")
    ap.add_argument("--examples", type=non_negative_int, default=10, help="how many differing strings to print")
    ap.add_argument("--tokenizer", type=Path, default=None, metavar="DIR",
                    help="a byte-level BPE saved as DIR/tokenizer.json (default: GPT-2's)")
    args = ap.parse_args()
    if args.tokenizer is not None and not (args.tokenizer / TOKENIZER_FILE).is_file():
        raise SystemExit(f"--tokenizer {args.tokenizer}: no {TOKENIZER_FILE} there; smollm2_distill.py writes one "
                         "to OUT/original, real_vocab_distill.py to OUT/<vocabulary>/original")

    bpe = offline_gpt2_tokenizer() if args.tokenizer is None else load_tokenizer(args.tokenizer)
    bare = bare_model(bpe)
    source = source_bpe(bpe)
    kept = not source.rules
    with Stopwatch() as building:
        if kept:  # run cuts behind the source's own pre-tokenizer: ASCII punctuation whose doubled piece exists
            vocab = bare.get_vocab()
            grams = piece_grams(vocab)
            rules = {c: CharCuts(run_cuts_of(bare, c, args.max_run, grams)) for c in args.chars
                     if c in CHARS and c * 2 in vocab}
        else:
            rules = [r for c in args.chars if (r := split_rule_for(bare, text_to_piece(c), args.max_run))]
    cut = (with_rules(bare, [], source=bpe, keep_pre_tokenizer=True, run_cuts=run_cut_split(rules)) if kept
           else with_rules(bare, rules, source=bpe, isolated_digits=source.isolated_digits))
    texts = random_texts(args.texts, list(PUNCTUATION + WHITE + OTHERS), args.seed, args.longest)
    gold, ours = bpe.encode_batch(texts), cut.encode_batch(texts)
    bad = [(t, g.tokens, o.tokens) for t, g, o in zip(texts, gold, ours) if g.ids != o.ids]
    rows = [("characters with " + ("run cuts" if kept else "a rule"), f"{len(rules)} of {len(args.chars)}"),
            ("rule building (s)", f"{building.seconds:.1f}"),
            ("random strings", str(len(texts))),
            ("strings with other ids than BPE's", str(len(bad)))]
    print_metrics(rows)
    for text, g, o in bad[: args.examples]:
        print(f"\n{text!r}\n  BPE:   {' · '.join(readable(t) for t in g)}\n  rules: {' · '.join(readable(t) for t in o)}")


if __name__ == "__main__":
    main()
