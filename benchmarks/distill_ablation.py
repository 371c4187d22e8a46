"""Score one distillation setting on the distillation benchmark's data, with where the misses come from.

Fits on the standard library's ``.py`` files (as ``distill_benchmark.py``) with ``DistillSettings`` changed by
``--set key=value``, then prints wrong word occurrences on the fit corpus, held-out code and English prose,
split into ties, words the merge-tree initialisation already gets right (the fit broke them) and the rest.
Word level only (no verification of ids or decoding), so one setting takes about a minute:

    uv run python benchmarks/distill_ablation.py --set init_exponent=2.65 --set number_words=3
"""

from __future__ import annotations

import numpy as np
from common import Stopwatch, add_heldout_every, add_settings, english_prose, parser, settings_from, stdlib_split

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import readable
from ivr.tokenizers.distill import (
    bare_model,
    encode_segments,
    fit_distilled,
    initial_scores,
    pre_token_counts,
    segment_words,
    source_bpe,
    unigram_tokenizer,
)


def main() -> None:
    ap = parser(__doc__)
    add_settings(ap)
    add_heldout_every(ap)
    args = ap.parse_args()
    settings = settings_from(args.set)

    bpe = offline_gpt2_tokenizer()
    bare, source = bare_model(bpe), source_bpe(bpe)
    pieces = source.pieces
    fit_texts, held_texts = stdlib_split(args.heldout_every)
    sets = {"corpus": fit_texts, "heldout": held_texts}
    sets["prose (both sets)"] = [t for texts in english_prose().values() for t in texts]
    counts = {name: pre_token_counts(bpe, texts, desc=name)[0] for name, texts in sets.items()}
    with Stopwatch() as fitting:
        _, fit = fit_distilled(bpe, counts["corpus"], settings)
    model = unigram_tokenizer(pieces, fit.scores, source.never)
    init = unigram_tokenizer(pieces, initial_scores(pieces, source.merges, settings.init_exponent, settings.init_offset,
                                                    source.ignore_merges, settings.init_decay), source.never)

    st = fit.stats
    print(f"\nfit {fitting.seconds:.1f} s; split rules for {''.join(readable(r['char']) for r in fit.split_rules)!r}")
    print(f"fit word types wrong beyond ties {st['fit_mismatched_types'] - st['fit_mismatched_tie_types']} "
          f"(proven unsatisfiable {st['proven_unsatisfiable_types']}, given up "
          f"{st['fit_mismatched_types'] - st['fit_mismatched_tie_types'] - st['proven_unsatisfiable_types']})")
    print(f"{'set':<18} | {'occurrences':>11} | {'wrong':>5} | {'tie':>4} | {'init right, fit broke':>21}")
    print(f"{'-' * 18}-|-{'-' * 11}-|-{'-' * 5}-|-{'-' * 4}-|-{'-' * 21}")
    for name, c in counts.items():
        words = sorted(c)
        weights = np.array([c[w] for w in words], dtype=np.float64)
        gold = [e.ids for e in bare.encode_batch(words)]
        pred = encode_segments(model, segment_words(fit.split_rules, words))
        first = [e.ids for e in init.encode_batch(words)]
        wrong = [i for i, (p, g) in enumerate(zip(pred, gold)) if p != g]
        tie = [i for i in wrong if sorted(pred[i]) == sorted(gold[i])]
        broke = [i for i in wrong if first[i] == gold[i]]
        print(f"{name:<18} | {weights.sum():>11.0f} | {weights[wrong].sum():>5.0f} | {weights[tie].sum():>4.0f} "
              f"| {weights[broke].sum():>21.0f}")


if __name__ == "__main__":
    main()
