"""Can merge weights learned from large general word lists replace the merge-tree prior (the distillation's initial
merge weights, ``((rank + init_offset) / init_offset) ** -init_exponent`` at ``DistillSettings``' defaults)?

The words that keep the Latin-script languages short of 99.99% are mostly words the prior gets wrong and no fit
word shares merges with (``docs/distillation.md``). This experiment learns the merge weights themselves from
``wordfreq``'s ``--per-language`` most frequent words of each language (in the forms and pre-tokens the fit's
general words take) and the vocabulary pieces, all labelled by GPT-2's BPE, with no corpus, no linear program and
no rules: each epoch encodes every training word with the real ``tokenizers`` Unigram, and every merge weight
moves multiplicatively by ``eta * g / (|g| + 1)``, ``g`` the merge's count in BPE's segmentations of the wrong
words less its count in the Unigram's (a batch perceptron in log space, so weights stay positive and late merges
move in proportion to their size). ``eta`` decays as ``1 / (1 + epoch / 5)``.

Printed: per held-out set of ``multilingual_distill.py``, the wrong word occurrences of the prior and of the
learned weights (the epoch with the fewest wrong training words): all words / words with a letter / words that
are not training words.

    uv run python benchmarks/learned_prior.py --per-language 100000
"""

from __future__ import annotations

import numpy as np
from common import (
    LANGUAGES, Stopwatch, add_heldout_every, encode_ids, held_out_sets, parser, positive_float, positive_int,
)

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import readable
from ivr.tokenizers.distill import DistillSettings
from ivr.tokenizers.distill.general_words import general_words
from ivr.tokenizers.distill.scores import merge_tree_matrix, merge_weights
from ivr.tokenizers.distill.source_bpe import source_bpe
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.unigram import bare_model, unigram_tokenizer

GENERAL = "en de fr es it pt pl nl ru ja ko zh"


def piece_counts(seqs: list[list[int]], n_pieces: int) -> np.ndarray:
    """How often each piece id occurs in ``seqs``, summed."""
    return np.bincount(np.concatenate([np.asarray(s, dtype=np.int64) for s in seqs]), minlength=n_pieces)


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--per-language", type=positive_int, default=100_000,
                    help="most frequent words of each language")
    ap.add_argument("--general-languages", default=GENERAL, help="wordfreq languages of the training words")
    ap.add_argument("--epochs", type=positive_int, default=15,
                    help="most passes over the training words (fewer once none is wrong)")
    ap.add_argument("--eta", type=positive_float, default=0.2, help="first epoch's step in log weight")
    ap.add_argument("--lang-chars", type=positive_int, default=2_000_000, help="cap on each language's messages")
    add_heldout_every(ap)
    args = ap.parse_args()

    bpe = offline_gpt2_tokenizer()
    source, bare = source_bpe(bpe), bare_model(bpe)
    trees = merge_tree_matrix(source.pieces, source.merges, source.ignore_merges)
    train = general_words(bpe, args.general_languages.split(), args.per_language, 1.0)
    train.update(p for i, p in enumerate(source.pieces) if i not in source.never)
    words = sorted(train)
    labels = encode_ids(bare, words)
    print(f"{len(words)} training word types")

    _, sets = held_out_sets(args.heldout_every, args.lang_chars, LANGUAGES)
    counts = {name: pre_token_counts(bpe, texts, desc=name)[0] for name, texts in sets.items()}
    held = sorted(set().union(*counts.values()))
    held_labels = encode_ids(bare, held)
    known = set(words)

    def held_out_row(weights: np.ndarray) -> list[str]:
        got = encode_ids(unigram_tokenizer(source.pieces, trees @ weights, source.never), held)
        wrong = {h for h, g, lab in zip(held, got, held_labels) if g != lab}
        cells = []
        for c in counts.values():
            bad = [(h, k) for h, k in c.items() if h in wrong]
            cells.append(f"{sum(k for _, k in bad)} / {sum(k for h, k in bad if any(ch.isalpha() for ch in readable(h)))}"
                         f" / {sum(k for h, k in bad if h not in known)}")
        return cells

    prior = DistillSettings()
    w0 = merge_weights(trees.shape[1], prior.init_exponent, prior.init_offset)
    log_w0 = np.log(w0)
    log_w, best, run = log_w0.copy(), (np.inf, log_w0, -1), 0
    with Stopwatch() as t:
        for epoch in range(args.epochs):
            run = epoch + 1
            got = encode_ids(unigram_tokenizer(source.pieces, trees @ np.exp(log_w), source.never), words)
            bad = [i for i, (g, lab) in enumerate(zip(got, labels)) if g != lab]
            print(f"epoch {epoch}: {len(bad)} training word types wrong", flush=True)
            if len(bad) < best[0]:
                best = (len(bad), log_w.copy(), epoch)
            if not bad:
                break
            g = trees.T @ (piece_counts([labels[i] for i in bad], len(source.pieces))
                           - piece_counts([got[i] for i in bad], len(source.pieces)))
            log_w = log_w + args.eta / (1 + epoch / 5) * g / (np.abs(g) + 1.0)
    print(f"{run} epochs in {t.seconds:.0f} s; best epoch {best[2]}, {best[0]} training word types wrong\n")
    print("wrong occurrences: all / words with a letter / words outside the training words\n")
    print(f"| held-out set | prior `((rank+{prior.init_offset:g})/{prior.init_offset:g})^-{prior.init_exponent:g}` | "
          "learned |\n|---|---|---|")
    # the prior as the library computes it: exp(log(w)) moves weights by a rounding, which flips near-ties
    for name, a, b in zip(counts, held_out_row(w0), held_out_row(np.exp(best[1]))):
        print(f"| {name} | {a} | {b} |")


if __name__ == "__main__":
    main()
