"""Which ids a BPE tokenizer can never produce, found from its vocabulary and merges alone.

A token shows up in the encoding of some word only if BPE turns the token's own string into that one
token: the merges that build it inside a longer word all lie within its span (a merge across the span's
edge would leave no token there), and BPE applies them in the same order, lowest rank and then leftmost
first, when the string stands alone. So a token is unreachable exactly when its own string ends as other
tokens: a lower-ranked merge takes one of its parts first and it never forms, or no merge makes it at all.
Such ids are the cheapest to reassign: no text uses them. (The pre-tokenizer can only make more tokens
unreachable; this finder looks at the model, so it never calls a usable token unreachable.)
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from tokenizers import Tokenizer

from ivr.tokenizers.bpe import bpe_merges, bpe_model


def bpe_encode(symbols: Sequence[str], ranks: Mapping[tuple[str, str], int]) -> list[str]:
    """BPE on a sequence of initial symbols: the lowest-ranked adjacent pair merges first, the leftmost of
    equal pairs first, until no adjacent pair has a merge."""
    parts = list(symbols)
    while len(parts) > 1:
        best, where = None, -1
        for k in range(len(parts) - 1):
            rank = ranks.get((parts[k], parts[k + 1]))
            if rank is not None and (best is None or rank < best):
                best, where = rank, k
        if best is None:
            break
        parts[where : where + 2] = [parts[where] + parts[where + 1]]
    return parts


def unreachable_tokens(
    vocab: Mapping[str, int],
    merges: Sequence[tuple[str, str]],
    special_ids: Collection[int] = (),
    ignore_merges: bool = False,
) -> dict[int, list[str]]:
    """Ids BPE never produces, each with the pieces its own string becomes instead (``[]``: a character of it
    is not an initial symbol, so it never forms).

    Args:
        vocab: the model's pieces and ids (byte-level pieces for a byte-level tokenizer).
        merges: the merges in rank order.
        special_ids: ids to leave out (added and special tokens: they are matched before the model runs).
        ignore_merges: the model takes a whole word that is in the vocabulary as is (Llama-3 style), so every
            piece is reachable.
    """
    if ignore_merges:
        return {}
    ranks = {pair: rank for rank, pair in reversed(list(enumerate(merges)))}
    alphabet = {p for p in vocab if len(p) == 1}
    out: dict[int, list[str]] = {}
    for piece, i in vocab.items():
        if i in special_ids or len(piece) == 1:
            continue
        if not set(piece) <= alphabet:
            out[i] = []
            continue
        parts = bpe_encode(list(piece), ranks)
        if parts != [piece]:
            out[i] = parts
    return out


def tokenizer_unreachable_ids(tokenizer: Tokenizer) -> dict[int, list[str]]:
    """``unreachable_tokens`` of a BPE tokenizer, its added and special tokens left out; empty for other models."""
    try:
        model = bpe_model(tokenizer)
    except ValueError:  # not a BPE model: nothing to find from merges
        return {}
    return unreachable_tokens(
        dict(model["vocab"]), bpe_merges(tokenizer), set(tokenizer.get_added_tokens_decoder()), bool(model.get("ignore_merges"))
    )
