"""A tokenizer's pieces by id, and whether a string survives its pre-tokenizer as one piece."""

from __future__ import annotations

from tokenizers import Tokenizer

from ivr.tokenizers.byte_level import text_to_piece
from ivr.tokenizers.io import pre_tokens


def vocab_pieces(tokenizer: Tokenizer) -> list[str]:
    """The pieces of ``tokenizer`` by id, added tokens included; fails unless the ids run from 0 without a gap and
    each piece has its own."""
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    by_id: dict[int, list[str]] = {}
    for piece, i in vocab.items():
        by_id.setdefault(i, []).append(piece)
    shared = {i: ps for i, ps in by_id.items() if len(ps) > 1}
    if shared:  # the id map keeps one of them: the other would vanish from every copy of the tokenizer
        examples = "; ".join(f"{sorted(ps)} at id {i}" for i, ps in sorted(shared.items())[:5])
        raise ValueError(f"the tokenizer's pieces share ids ({examples}): every piece needs an id of its own")
    pieces = [""] * len(vocab)
    for piece, i in vocab.items():
        if not 0 <= i < len(vocab):
            missing = sorted(set(range(len(vocab))) - set(vocab.values()))[:10]
            raise ValueError(f"the tokenizer's ids have gaps (no piece at ids {missing}): ids must run from 0 "
                             f"to the vocabulary size minus one")
        pieces[i] = piece
    return pieces


def single_pretoken(tokenizer: Tokenizer, text: str) -> bool:
    """Whether the pre-tokenizer keeps ``text`` as one pre-token (and a normalizer leaves its bytes alone)."""
    return pre_tokens(tokenizer, text) == [text_to_piece(text)]
