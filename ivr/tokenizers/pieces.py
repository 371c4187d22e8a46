"""A tokenizer's pieces by id, and whether a string survives its pre-tokenizer as one piece."""

from __future__ import annotations

import json

from tokenizers import Tokenizer

from ivr.tokenizers.byte_level import text_to_piece
from ivr.tokenizers.io import pre_tokens


def vocab_pieces(tokenizer: Tokenizer) -> list[str]:
    """Pieces by id: the Unigram vocabulary plus added tokens (``<|endoftext|>``)."""
    model = json.loads(tokenizer.to_str())["model"]
    pieces = [p for p, _ in model["vocab"]]
    for i in range(len(pieces), tokenizer.get_vocab_size()):
        pieces.append(tokenizer.id_to_token(i))
    return pieces


def single_pretoken(tokenizer: Tokenizer, text: str) -> bool:
    """Whether the pre-tokenizer keeps ``text`` as one pre-token (and a normalizer leaves its bytes alone)."""
    return pre_tokens(tokenizer, text) == [text_to_piece(text)]
