"""The words a distillation fit learns from: the corpus's byte-level pre-tokens (weighted by count), every
vocabulary piece on its own and simple variants of it, digit strings, the general words of other languages
(``general_words.py``), and an optional word list."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path

from tokenizers import Tokenizer
from tqdm import tqdm

from ivr.counting import most_frequent
from ivr.tokenizers.byte_level import text_to_piece, whole_text
from ivr.tokenizers.distill.general_words import general_words
from ivr.tokenizers.distill.settings import DistillSettings, parse_languages
from ivr.tokenizers.distill.word_list import read_word_list_entries
from ivr.tokenizers.gpt2_pre_tokens import PreTokenCutter
from ivr.tokenizers.pieces import single_pretoken


MAX_CORPUS_WORDS = 250_000
"""The most distinct corpus pre-tokens the fit learns from: the most frequent ones (ties by the word itself), when
a corpus holds more. The fit's time and memory follow its word count, and a large corpus's distinct words grow
without end (names, numbers, hashes), mostly words met once or twice. The 8 MB demo corpus holds some 36,000
distinct pre-tokens, well below the cap, so its fit is unchanged."""


def corpus_sample(corpus_counts: Counter, limit: int | None = None) -> Counter:
    """The ``limit`` (``MAX_CORPUS_WORDS``) most frequent of ``corpus_counts`` (``ivr.counting.most_frequent``: by
    count, then by the word, so the sample does not depend on the order the corpus was read in)."""
    return most_frequent(corpus_counts, MAX_CORPUS_WORDS if limit is None else limit)


MAX_COUNTED_WORDS = 2_000_000
"""The most distinct pre-tokens the count of the fit corpus holds at once (some 120 bytes each: about 250 MB).
Past it the less frequent half is dropped (ties by the word), and a dropped word counts again from its next
occurrence. The fit learns from the ``MAX_CORPUS_WORDS`` most frequent corpus words only, a quarter of what a
drop keeps: a word loses counts only where it was outside the 1,000,000 most frequent when a drop came (a word
frequent only late in a very large corpus). The 128 MB benchmark corpus holds some 250,000 distinct pre-tokens,
far below it: nothing is dropped there."""


def pre_token_counts(pre_tokenizer: Tokenizer, texts: Iterable[str], desc: str = "pre-tokenizing",
                     limit: int | None = None) -> tuple[Counter, bool]:
    """Count byte-level pre-tokens (words) of ``texts``, holding at most ``limit`` distinct ones (``None``: no
    bound; the fit corpus's count uses ``MAX_COUNTED_WORDS``); also whether any were dropped on the way (the
    counts of rare words are then too low)."""
    counts: Counter = Counter()
    dropped = False
    cut = PreTokenCutter(pre_tokenizer)
    with tqdm(desc=desc, unit="B", unit_scale=True, mininterval=2.0) as bar:  # MB/s, as analyze and packing show
        for text in texts:
            counts.update(cut.counts(text))
            if limit is not None and len(counts) > limit:
                counts = most_frequent(counts, limit // 2)
                dropped = True
            bar.update(len(text.encode("utf-8")))
    return counts, dropped


def fit_words(
    pieces: Sequence[str], corpus_counts: Counter, settings: DistillSettings, bpe: Tokenizer | None = None,
    isolated_digits: bool = False, whole_pre_tokens: bool = False, listed: Counter | None = None,
) -> Counter:
    """The weighted words to fit on: corpus pre-tokens, vocabulary pieces and their variants, a word list, and
    general words of other languages (``settings.general_languages``), which ``bpe``'s pre-tokenizer cuts.
    ``pieces`` are the pieces BPE can output (``SourceBPE.outputs``: no added tokens). Of the corpus's words, the
    ``MAX_CORPUS_WORDS`` most frequent count (``corpus_sample``). With ``isolated_digits`` (the source puts every
    digit on its own) the digit strings are the ten digits. ``bpe``'s pre-tokenizer cuts the word list too. With
    ``whole_pre_tokens`` (a pre-tokenizer other than GPT-2's, or a normalizer) a vocabulary piece, variant or digit
    string is fitted only where ``bpe``'s pipeline keeps it as it is (the Llama-3 regex cuts `` 42`` into `` `` and
    ``42``; lower-casing changes ``The``). ``listed``: the word list as ``read_word_list`` gave it, where the caller
    has read it already."""
    words = corpus_sample(corpus_counts)
    extra: Counter = Counter()
    if settings.vocab_words:
        extra.update(pieces)
    if settings.vocab_variants:
        for p in pieces:
            core = p[1:] if p.startswith("Ġ") else p
            if not (core.isascii() and core.isalpha()):
                continue
            cased = {core, core[0].upper() + core[1:], core.upper()}
            for variant in {lead + form for form in cased for lead in ("", "Ġ")}:
                extra[variant] += 1
    if isolated_digits:
        extra.update(str(n) for n in range(10 if settings.number_words else 0))
    else:
        for k in range(1, settings.number_words + 1):
            extra.update(p + str(n).zfill(k) for n in range(10**k) for p in ("", "Ġ"))
    if whole_pre_tokens:
        if bpe is None:
            raise ValueError("fitting on whole pre-tokens only needs the source tokenizer's pre-tokenizer")
        extra = Counter({w: n for w, n in extra.items() if _whole(bpe, w)})
    for w in extra:  # words met only outside the corpus count once: they must be right, not dominate
        words.setdefault(w, 1)
    languages = parse_languages(settings.general_languages)
    if languages and settings.general_words_per_language > 0:
        if bpe is None:
            raise ValueError("general words (data.distill.general_languages) need the source tokenizer's pre-tokenizer")
        general = general_words(bpe, languages, settings.general_words_per_language, settings.general_text_words)
        for w, n in general.items():  # a word's estimated general count, where above its corpus count
            words[w] = max(words.get(w, 0), n)
    if listed is None and settings.word_list:
        listed = read_word_list(settings.word_list, bpe)
    if listed:  # a listed count weighs like a corpus count; the larger of the two is kept
        for piece, n in listed.items():
            words[piece] = max(words.get(piece, 0), n)
    return words


def _whole(bpe: Tokenizer, piece: str) -> bool:
    """Whether ``bpe``'s pipeline keeps the byte-level ``piece`` whole (``single_pretoken``); a piece that is not
    whole UTF-8 (a part of a character) cannot be cut as text and is kept."""
    text = whole_text(piece)
    return text is None or single_pretoken(bpe, text)


def read_word_list(path: Path, bpe: Tokenizer | None = None) -> Counter:
    """A word list's byte-level fit words with their counts (default 1; an entry listed twice adds up): each entry
    with and without a leading space, cut by ``bpe``'s pre-tokenizer as text is (``v2``: ``v``, ``2`` behind
    isolated digits; ``it's``: ``it``, ``'s``), a pre-token met in several entries keeping its largest count."""
    entries = read_word_list_entries(path)
    cut = PreTokenCutter(bpe) if bpe is not None else None
    out: Counter = Counter()
    for word, count in entries.items():
        for text in (word, " " + word):
            for piece in cut(text) if cut else [text_to_piece(text)]:
                out[piece] = max(out[piece], count)
    return out
