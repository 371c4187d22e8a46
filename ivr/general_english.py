"""General English word frequencies (the ``wordfreq`` package's list, packaged with it, so offline).

Two stages ask what text beyond the user's corpus looks like: IVR's selection (a prior on how often general
text uses each id) and distillation (which merges unseen words depend on). Both take the same list.
"""

from __future__ import annotations


def most_frequent_english(n: int) -> list[tuple[str, float]]:
    """``wordfreq``'s ``n`` most frequent English words with their frequencies, most frequent first."""
    if n <= 0:
        return []
    import wordfreq

    freq = wordfreq.get_frequency_dict("en")
    return sorted(freq.items(), key=lambda item: item[1], reverse=True)[:n]
