"""Tiny GPT-2 models, a remapped tokenizer and remap rules built offline for the embedding and export tests."""

from __future__ import annotations

from pathlib import Path

import yaml
from tokenizers.models import Unigram
from transformers import GPT2Config, GPT2LMHeadModel

from ivr.tokenizers.bpe import offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import text_to_piece
from ivr.tokenizers.io import byte_level_tokenizer, save_tokenizer_dir

# ids handed to domain strings; the strings are not GPT-2 pieces, so each decomposes into several ids
REASSIGNED = {40000: " mitochondria", 40001: " phosphorylation", 40002: "ATPase"}


def tiny_gpt2(tied: bool = True, seed: int = 0) -> GPT2LMHeadModel:
    import torch

    torch.manual_seed(seed)
    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, tie_word_embeddings=tied)
    return GPT2LMHeadModel(config).eval()


def make_rules() -> list[dict]:
    original = offline_gpt2_tokenizer()
    vocab = original.get_vocab()
    pieces = {i: p for p, i in vocab.items()}
    rules = []
    for rule_id, text in REASSIGNED.items():
        piece = text_to_piece(text)
        assert piece not in vocab
        ids = original.encode(text).ids
        assert len(ids) > 1
        rules.append(
            {"id": rule_id, "old_token": pieces[rule_id], "new_token": piece, "gpt2_ids": ids, "reason": "test"}
        )
    return rules


def write_rules(path: Path, rules: list[dict], wrapped: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump({"rules": rules} if wrapped else rules, allow_unicode=True), encoding="utf-8")
    return path


def build_tokenizers(original_dir: Path, remapped_dir: Path, rules: list[dict]) -> None:
    """GPT-2's BPE, and a Unigram over the same ids where each rule's id holds its new piece."""
    original = offline_gpt2_tokenizer()
    save_tokenizer_dir(original, original_dir, {"stage": "test-original"})
    pieces = {i: p for p, i in original.get_vocab().items()}
    for rule in rules:
        pieces[rule["id"]] = rule["new_token"]
    # longer pieces score higher so the new domain pieces win over their decompositions
    vocab = [(pieces[i], -10.0 / len(pieces[i])) for i in range(len(pieces))]
    remapped = byte_level_tokenizer(Unigram(vocab, unk_id=None, byte_fallback=False))
    save_tokenizer_dir(remapped, remapped_dir, {"stage": "test-remapped"})


def tie_tokenizer():
    """A tiny byte-level Unigram where the new pieces ``" HALF"`` and ``"HALF"`` would tie on ``" HALF"`` but for
    the bonus per token saved, which ``"HALF"`` (three tokens to one) gets more of: ``" HALF"`` is ``ĠHAL·F`` by a
    hair over ``Ġ·H·A·LF``, so with both pieces it encodes as ``Ġ·HALF``, never to its own id. Ids 258-265
    (``zq0``..``zq7``) are unused pieces to free; ``<|endoftext|>`` is the last id."""
    from ivr.tokenizers.byte_level import ENDOFTEXT, bytes_to_piece

    pieces = [(bytes_to_piece(bytes([b])), -10.0) for b in range(256)]
    pieces += [("LF", -5.0), ("ĠHAL", -25.0 + 5e-13)] + [(f"zq{i}", -30.0) for i in range(8)]
    return byte_level_tokenizer(Unigram(pieces + [(ENDOFTEXT, -100.0)], unk_id=None, byte_fallback=False))


def near_tie_tokenizer():
    """A tiny byte-level Unigram where ``parser`` beats ``p·ars·er`` by less than the new-piece bonus: a new piece
    ``pars`` (``p·ars``) would cut ``parser`` into ``pars·er``. Ids 258-265 (``zq0``..``zq7``) are unused pieces
    to free; ``<|endoftext|>`` is the last id."""
    from ivr.tokenizers.byte_level import ENDOFTEXT, bytes_to_piece

    pieces = [(bytes_to_piece(bytes([b])), -10.0) for b in range(256)]
    pieces += [("ars", -5.0), ("er", -5.0), ("parser", -20.0 + 4e-15)] + [(f"zq{i}", -30.0) for i in range(8)]
    return byte_level_tokenizer(Unigram(pieces + [(ENDOFTEXT, -100.0)], unk_id=None, byte_fallback=False))
