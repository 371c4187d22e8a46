"""What general (non-domain) text needs from the vocabulary: how often it uses each id, and which candidate
replacements would make it longer.

General text is what selection may look at without seeing any evaluation text: ``wordfreq``'s most frequent
English words in the forms running text has them (after a space, capitalised, line-initial), weighted by
frequency, the lines of a sample of the Python standard library's sources (code and its English comments: the
technical words no word list holds, `` callback``, ``utf``, ``-->``), and the lines of the user's
``general_reference_paths``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer

from ivr.builtin_corpora import python_stdlib_paths
from ivr.general_english import most_frequent_english
from ivr.tokenizers.byte_level import readable
from ivr.user_text import read_user_text, text_lines

# running text mostly has words after a space, sometimes capitalised or line-initial
WORD_FORMS = ((" {}", 0.7, False), ("{}", 0.1, False), (" {}", 0.15, True), ("{}", 0.05, True))


def word_like(piece: str) -> bool:
    """Whether the word-list prior can tell how often general text uses ``piece``: letters only (after an
    optional leading space), lower-case or capitalised, the forms the list is read in. Numbers, punctuation
    (``-->``), capitals (``SOURCE``, ``ENGTH``) and mixed case (``macOS``) fill general text too (markup,
    licences, headings, names) but no word list shows it, so a zero prior proves nothing for them."""
    core = readable(piece).removeprefix(" ")
    return core.isalpha() and (core.islower() or core.istitle())


@functools.lru_cache(maxsize=2)  # a selection orders the ids it may free more than once, on one vocabulary
def word_like_ids(pieces: tuple[str, ...]) -> frozenset[int]:
    """The ids of ``pieces`` that are ``word_like``."""
    return frozenset(i for i, piece in enumerate(pieces) if word_like(piece))


@dataclass
class GeneralText:
    """Units of general text with weights: word forms (weights sum to the share of word occurrences the list
    covers) and reference lines (weight 1 each), measured apart."""

    words: list[str]
    word_weights: np.ndarray
    lines: list[str]


def code_reference(max_mb: float, exclude: Collection[Path] = ()) -> list[str]:
    """About ``max_mb`` MB of the standard library's sources (no tests), every k-th file in path order so that
    every package is sampled; none for ``max_mb <= 0``. ``exclude``: files of the domain corpus (the built-in
    corpus is the standard library), which general text must not hold: held-out ones would steer the selection
    that they measure."""
    if max_mb <= 0:
        return []
    excluded = {Path(p).resolve() for p in exclude}
    paths = [p for p in python_stdlib_paths() if p.resolve() not in excluded]
    stride = max(1, math.ceil(sum(p.stat().st_size for p in paths) / (max_mb * 1e6)))
    return [p.read_text(encoding="utf-8", errors="replace") for p in paths[::stride]]


def general_text(prior_words: int, reference_paths: Sequence[str], reference_texts: Sequence[str] = ()) -> GeneralText:
    """The word list's ``prior_words`` words in their running-text forms, and the non-blank lines of
    ``reference_texts`` and of the files ``reference_paths``."""
    words: list[str] = []
    weights: list[float] = []
    for word, freq in most_frequent_english(prior_words):
        for fmt, share, capital in WORD_FORMS:
            words.append(fmt.format(word.capitalize() if capital else word))
            weights.append(freq * share)
    lines = [line for text in reference_texts for line in text_lines(text) if line.strip()]
    for ref in reference_paths:
        path = Path(ref)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: general reference file not found (data.select.general_reference_paths)")
        text = read_user_text(path, "data.select.general_reference_paths")
        lines += [line for line in text_lines(text) if line.strip()]
    return GeneralText(words, np.asarray(weights, dtype=np.float64), lines)


def general_prior(tokenizer: Tokenizer, general: GeneralText) -> np.ndarray:
    """Estimated uses per million tokens of general text, per id (0 where nothing suggests any use): the word
    list's uses, raised to the reference lines' rate where that is higher."""
    prior = np.zeros(tokenizer.get_vocab_size(), dtype=np.float64)
    for enc, weight in zip(tokenizer.encode_batch(general.words, add_special_tokens=False), general.word_weights):
        np.add.at(prior, enc.ids, weight * 1e6)
    if general.lines:
        ids = [i for enc in tokenizer.encode_batch(general.lines, add_special_tokens=False) for i in enc.ids]
        if ids:
            prior = np.maximum(prior, np.bincount(np.asarray(ids), minlength=len(prior)) * 1e6 / len(ids))
    return prior


@dataclass
class Lengthening:
    """General text a remapped tokenizer makes longer than the distilled one."""

    word_share_pct: float
    """Share of the word list's occurrences (by frequency) that take more tokens."""
    line_share_pct: float
    """Share of the reference lines that take more tokens."""
    blame: dict[int, float]
    """Per reassigned id: the share (%) of words or lines made longer where it is the freed token (in the
    distilled encoding) or the new token (in the remapped one), words and lines added up."""
    freed_blame: dict[int, float]
    """The part of ``blame`` where the id is the freed token: what giving the string another id would undo."""


def lengthening(distilled: Tokenizer, remapped: Tokenizer, general: GeneralText, reassigned: Collection[int]) -> Lengthening:
    reassigned = set(reassigned)
    blame: dict[int, float] = {}
    freed_blame: dict[int, float] = {}

    def share(units: list[str], weights: np.ndarray) -> float:
        if not units:
            return 0.0
        before = distilled.encode_batch(units, add_special_tokens=False)
        after = remapped.encode_batch(units, add_special_tokens=False)
        total = float(weights.sum())
        longer = 0.0
        for b, a, w in zip(before, after, weights):
            if len(a.ids) > len(b.ids):
                longer += w
                for i in (set(b.ids) | set(a.ids)) & reassigned:
                    blame[i] = blame.get(i, 0.0) + 100.0 * w / total
                for i in set(b.ids) & reassigned:
                    freed_blame[i] = freed_blame.get(i, 0.0) + 100.0 * w / total
        return float(100.0 * longer / total)

    words = share(general.words, general.word_weights)
    lines = share(general.lines, np.ones(len(general.lines)))
    return Lengthening(words, lines, blame, freed_blame)
