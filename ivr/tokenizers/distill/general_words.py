"""General words of many languages as fit words: what a fit on one domain must also get right elsewhere.

A fit on code or English sees few German or Polish words, so its scores generalise to them only as far as the
merge-tree prior does, and the changes the corpus asks for break some of them (` Befehl`, ` seulement`). The
most frequent words of each language in ``wordfreq`` join the fit words, cut by the source tokenizer's own
pre-tokenizer (so a listed word is fitted as the pre-tokens running text gives it) and labelled, like every
fit word, by BPE's segmentation. Each weighs its estimated number of occurrences in ``text_words`` words of
general text of its language: a frequent word weighs like a frequent corpus word, while a rare one is given up
cheaply (``DistillSettings.slack_penalty`` per occurrence) when matching it would take changes other words pay
for. (When every fit word was strict, wordfreq's English words as fit words doubled the error on English
prose: each forced change of a merge weight broke words the fit never saw.)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from tokenizers import Tokenizer

from ivr.general_english import check_languages, most_frequent
from ivr.tokenizers.io import pre_tokens

# the most frequent quarter of each language's words is fitted in capitals too, at a tenth of the weight
UPPER_WORDS, UPPER_SHARE = 0.25, 0.1


def word_forms(word: str, unspaced_share: float, upper: bool) -> list[tuple[str, float]]:
    """The forms a listed (lower-case) word takes in running text, with their shares of its occurrences: after
    a space, lower-case and capitalised, and with ``upper`` in capitals at a tenth of that (headings, command
    names: ` COMMANDE`); without a space (a line's or a bracket's first word), ``unspaced_share`` of each."""
    cased = {word: 1.0, word[:1].upper() + word[1:]: 1.0}
    if upper:
        cased.setdefault(word.upper(), UPPER_SHARE)
    return [(lead + form, share * lead_share) for form, share in cased.items()
            for lead, lead_share in ((" ", 1.0), ("", unspaced_share))]


def general_words(bpe: Tokenizer, languages: Sequence[str], per_language: int, text_words: float) -> Counter:
    """Byte-level fit words with weights: the ``per_language`` most frequent words of each of ``languages``
    (``wordfreq`` codes) as ``language_words`` weighs them (summed where languages meet)."""
    out: Counter = Counter()
    check_languages(languages, "data.distill.general_languages")
    for lang in languages:
        out.update(language_words(bpe, most_frequent(lang, per_language), text_words))
    return out


def language_words(
    bpe: Tokenizer, ranked: Sequence[tuple[str, float]], text_words: float, unspaced_share: float = 0.25
) -> Counter:
    """Byte-level fit words with weights from one language's ``(word, frequency)`` list, most frequent first:
    each form of ``word_forms`` (capitals for the first ``UPPER_WORDS`` of the list) cut into pre-tokens by
    ``bpe``'s pre-tokenizer, each pre-token weighing ``frequency * text_words * share``."""
    out: Counter = Counter()
    if text_words <= 0:
        return out
    for rank, (word, frequency) in enumerate(ranked):
        for form, share in word_forms(word, unspaced_share, rank < len(ranked) * UPPER_WORDS):
            for piece in pre_tokens(bpe, form):  # through the source's normalizer, where it has one
                out[piece] += frequency * text_words * share
    return out
