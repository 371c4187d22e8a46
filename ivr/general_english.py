"""General word frequencies of many languages (the ``wordfreq`` package's lists, packaged with it, so offline).

Two stages ask what text beyond the user's corpus looks like: IVR's selection (a prior on how often general
English uses each id) and distillation (which merges unseen words depend on, and which words of other
languages the fit learns from). Both take these lists.
"""

from __future__ import annotations

import functools


def check_languages(codes: list[str], setting: str) -> None:
    """Every code names one of ``wordfreq``'s word lists, else an error naming ``setting`` and the lists it has."""
    import wordfreq

    known = wordfreq.available_languages()
    bad = [c for c in codes if c not in known]
    if bad:
        raise ValueError(f"{setting}: wordfreq has no word list for {', '.join(map(repr, bad))}; "
                         f"it has {', '.join(sorted(known))}")
    twice = sorted({c for c in codes if codes.count(c) > 1})
    if twice:  # a language named twice would count its words twice
        raise ValueError(f"{setting}: {', '.join(map(repr, twice))} named more than once")


def most_frequent(lang: str, n: int) -> list[tuple[str, float]]:
    """``wordfreq``'s ``n`` most frequent words of language ``lang`` (``en``, ``de``, ``ja``, ...) with their
    frequencies (a share of all word occurrences), most frequent first; ties in the list's own order."""
    if n <= 0:
        return []
    check_languages([lang], "language")
    return list(_ranked(lang, n))


# sorting a list of 300,000 words takes a fifth of a second, and stages ask again; only the words asked for are
# kept: the whole sorted lists of twelve languages held about 330 MiB for the rest of the process
@functools.lru_cache(maxsize=None)
def _ranked(lang: str, n: int) -> tuple[tuple[str, float], ...]:
    import wordfreq

    return tuple(sorted(wordfreq.get_frequency_dict(lang).items(), key=lambda item: item[1], reverse=True)[:n])


def most_frequent_english(n: int) -> list[tuple[str, float]]:
    """``wordfreq``'s ``n`` most frequent English words with their frequencies, most frequent first."""
    return most_frequent("en", n)
