"""Cuts inside words where BPE always has a boundary: would they carry a distilled tokenizer to unseen words?

Word rules cut listed words only, so they cannot reach the held-out names and compounds that keep the
Latin-script languages short of 99.99% (docs/distillation.md#why-the-latin-script-languages-stay-short). A cut
*inside* words, at a context (up to ``--context`` characters on each side, ``^``/``$`` marking a word's edges)
where BPE has a boundary in every training word that holds it, would. This script estimates what such cuts could
do before anyone builds them into the regex, with no encode cost counted:

* training words: the ``--per-language`` most frequent words of each general language in ``wordfreq``, in the
  forms and weights the fit's general words take (``language_words``), labelled by BPE; never held-out text;
* candidate contexts: around each boundary BPE has and the distilled tokenizer lacks in a training word it gets
  wrong; kept where BPE has the boundary in every one of at least ``--min-types`` training words holding the
  context, and ranked (``--rank``) by the training weight of the words the cut alone makes right less those it
  makes wrong (only contexts that gain), or of the words it makes right alone;
* the ``K`` best of them (``--rules``) cut every held-out pre-token where they match; the parts go to the
  distilled Unigram model alone (words no cut touches keep the whole tokenizer's segmentation).

Prints, per held-out set of ``multilingual_distill.py`` and per ``K``: wrong occurrences without and with the
cuts, and how many the cuts fix and break. ``--tokenizer`` is the tokenizer ``multilingual_distill.py`` wrote:

    uv run python benchmarks/multilingual_distill.py --fit code --out /tmp/multilingual
    uv run python benchmarks/context_cuts.py --tokenizer /tmp/multilingual/code/tokenizer/tokenizer.json
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

from common import LANGUAGES, WORDS_PER_BATCH, add_heldout_every, held_out_sets, parser, positive_int
from tokenizers import Tokenizer

from ivr.general_english import most_frequent
from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import piece_to_bytes
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.general_words import language_words
from ivr.tokenizers.io import pre_tokens
from ivr.tokenizers.unigram import bare_model

Context = tuple[str, str]


def segmentations(tok: Tokenizer, texts: list[str]) -> list[tuple[str, ...]]:
    return [tuple(e.tokens) for i in range(0, len(texts), WORDS_PER_BATCH)
            for e in tok.encode_batch(texts[i:i + WORDS_PER_BATCH])]


def boundaries(segmentation: tuple[str, ...]) -> set[int]:
    """Where a segmentation of a byte-level word cuts it (character offsets, its ends left out)."""
    cuts, at = set(), 0
    for token in segmentation[:-1]:
        at += len(token)
        cuts.add(at)
    return cuts


def contexts(word: str, at: int, width: int) -> Iterator[Context]:
    """The contexts of a cut at ``at``: up to ``width`` characters on each side, ``^``/``$`` at the word's edges."""
    marked, at = "^" + word + "$", at + 1
    for left in range(1, width + 1):
        for right in range(1, width + 1):
            if at - left >= 0 and at + right <= len(marked):
                yield marked[at - left:at], marked[at:at + right]


class Labelled:
    """Byte-level words with their weight, BPE's segmentation and the distilled tokenizer's."""

    def __init__(self, weights: Counter, bpe: Tokenizer, distilled: Tokenizer):
        self.words = list(weights)
        self.weights = [weights[w] for w in self.words]
        self.gold = segmentations(bare_model(bpe), self.words)
        self.got = segmentations(distilled, [piece_to_bytes(w).decode("utf-8", "replace") for w in self.words])

    def __iter__(self):
        return zip(self.words, self.weights, self.gold, self.got)


def cut(word: str, rules: set[Context], width: int, whole: tuple[str, ...], model: Tokenizer) -> tuple[str, ...]:
    """``word``'s segmentation with the cuts of ``rules``: its parts through the bare ``model``; ``whole`` where
    no rule matches."""
    at = [i for i in range(1, len(word)) if any(c in rules for c in contexts(word, i, width))]
    if not at:
        return whole
    parts = [word[a:b] for a, b in zip([0, *at], [*at, len(word)])]
    return tuple(t for part in parts for t in model.encode(part).tokens)


def ranked_contexts(train: Labelled, width: int, min_types: int, model: Tokenizer, rank: str) -> list[Context]:
    """Safe contexts (BPE cuts there in every training word holding them, at least ``min_types``), best first:
    by the training weight of the wrong words the cut alone makes right (``fixes``), or of those less the right
    words it makes wrong (``net``, only contexts that gain)."""
    candidates = set()
    for word, _, gold, got in train:
        if gold != got:
            candidates.update(c for at in boundaries(gold) - boundaries(got) for c in contexts(word, at, width))
    seen, agree = Counter(), Counter()
    holding: defaultdict[Context, set[int]] = defaultdict(set)  # the training words holding each candidate
    for i, (word, _, gold, _) in enumerate(train):
        cuts = boundaries(gold)
        for at in range(1, len(word)):
            for c in contexts(word, at, width):
                if c in candidates:
                    seen[c] += 1
                    agree[c] += at in cuts
                    holding[c].add(i)
    safe = {c for c in candidates if seen[c] == agree[c] >= min_types}
    words = list(train)
    gain: defaultdict[Context, float] = defaultdict(float)
    for c in safe:
        for i in holding[c]:
            word, weight, gold, got = words[i]
            if rank == "fixes" and gold == got:
                continue
            after = cut(word, {c}, width, got, model)
            gain[c] += weight * ((after == gold) - (got == gold))
    kept = [c for c in gain if gain[c] > 0]
    print(f"{len(candidates)} candidate contexts, {len(safe)} safe, {len(kept)} gain by {rank}")
    return sorted(kept, key=lambda c: (-gain[c], c))


def main() -> None:
    ap = parser(__doc__)
    ap.add_argument("--tokenizer", type=Path, required=True,
                    help="the distilled tokenizer.json to test (multilingual_distill.py writes OUT/code/tokenizer/)")
    ap.add_argument("--per-language", type=positive_int, default=100_000,
                    help="training words: this many of each general language's most frequent words")
    ap.add_argument("--context", type=positive_int, default=3,
                    help="characters of context on each side of a cut, at most")
    ap.add_argument("--min-types", type=positive_int, default=3,
                    help="a context is kept only where at least this many training words hold it")
    ap.add_argument("--rules", type=lambda v: [positive_int(k) for k in v.split(",")], default=[50, 200, 1000],
                    help="comma-separated numbers of best contexts to cut with")
    ap.add_argument("--rank", choices=("net", "fixes"), default="net",
                    help="rank contexts by the training words they fix less those they break (net), or fixes alone")
    ap.add_argument("--lang-chars", type=positive_int, default=2_000_000, help="cap on each language's messages")
    add_heldout_every(ap)
    args = ap.parse_args()

    start = time.perf_counter()
    bpe, distilled = offline_gpt2_tokenizer(), Tokenizer.from_file(str(args.tokenizer))
    model = bare_model(distilled)
    weights: Counter = Counter()
    for lang in DistillSettings().general_languages.split():
        weights.update(language_words(bpe, most_frequent(lang, args.per_language), DistillSettings().general_text_words))
    train = Labelled(weights, bpe, distilled)
    print(f"{len(train.words)} training word types ({time.perf_counter() - start:.0f} s)")
    ranked = ranked_contexts(train, args.context, args.min_types, model, args.rank)
    print("best contexts: " + ", ".join(f"{a}|{b}" for a, b in ranked[:12]) + f" ({time.perf_counter() - start:.0f} s)")

    _, sets = held_out_sets(args.heldout_every, args.lang_chars, LANGUAGES)
    counted = {name: Counter(p for text in texts for p in pre_tokens(bpe, text)) for name, texts in sets.items()}
    held = {name: (counts, Labelled(counts, bpe, distilled)) for name, counts in counted.items()}
    ks = args.rules
    print("\n| held-out set | wrong | " + " | ".join(f"{k} cuts: wrong (fixed / broken)" for k in ks) + " |")
    print("|---|---:|" + "---|" * len(ks))
    for name, (counts, words) in held.items():
        before = sum(counts[w] for w, _, gold, got in words if gold != got)
        cells = []
        for k in ks:
            rules = set(ranked[:k])
            fixed = broken = after = 0
            for word, _, gold, got in words:
                if cut(word, rules, args.context, got, model) != gold:
                    after += counts[word]
                    broken += counts[word] * (gold == got)
                elif gold != got:
                    fixed += counts[word]
            cells.append(f"{after} ({fixed} / {broken})")
        print(f"| {name} | {before} | " + " | ".join(cells) + " |")
    print(f"\n{time.perf_counter() - start:.0f} s in all")


if __name__ == "__main__":
    main()
