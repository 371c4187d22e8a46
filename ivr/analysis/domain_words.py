"""Whether the remapped tokenizer cuts the training split's pre-tokens as selection estimated.

Selection counts a new string's saving where it lies on distilled token boundaries and takes every other
pre-token to keep its distilled segmentation. A new piece scores its old segmentation plus a small bonus, so where
the distilled scores hold a near-tie smaller than the bonus, a word without the new string can change too: with
` pars` new, `parser` (one token) becomes `pars`·`er`. This finds such words and the new strings they use.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from tokenizers import Tokenizer

from ivr.analysis.spans import Greedy, Occurrences, PretokenStats


def words_made_longer(stats: PretokenStats, occ: Occurrences, remapped: Tokenizer, new: Mapping[int, str],
                      exempt: Collection[str] = ()) -> dict[str, int]:
    """New strings (``new``: reassigned id → string) that make some training pre-token longer than selection
    estimated, each with the tokens they add over the split (every use counted). A pre-token that held a freed
    token is left out: its freed token's uses are counted apart. ``exempt`` strings (forced terms) are never
    blamed."""
    estimate = Greedy(stats, occ)
    expected: dict[int, set[str]] = {}  # pre-token → the new strings selection placed in it
    for s in new.values():
        estimate.add(s)
        for t, _ in occ.places(s):
            expected.setdefault(t, set()).add(s)
    model, added = remapped.model, {}
    for t, (piece, seg, count) in enumerate(zip(stats.pieces, stats.segs, stats.counts)):
        if any(i in new for i in seg):
            continue
        after = [token.id for token in model.tokenize(piece)]
        extra = len(after) - (len(seg) - estimate.value.get(t, 0))
        if extra <= 0:
            continue
        used = {new[i] for i in after if i in new}
        # the strings that took the place of the estimated ones, or those themselves where none did
        for string in (used - expected.get(t, set()) or used) - set(exempt):
            added[string] = added.get(string, 0) + count * extra
    return added
