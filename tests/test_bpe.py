"""The offline GPT-2 vocabulary is GPT-2's, and init stores it in a directory both libraries load."""

from __future__ import annotations

import json

import pytest

from ivr.tokenizers.source import fetch_original_tokenizer
from ivr.tokenizers.byte_level import EOS_ID, piece_to_bytes, text_to_piece
from tests.standin import gpt2_merges


@pytest.mark.parametrize(
    "text, ids",
    [("Hello world", [15496, 995]), ("Hello world!", [15496, 995, 0]), (" the", [262]), ("\n\n", [628])],
)
def test_offline_vocabulary_gives_gpt2_ids(gpt2_bpe, text, ids):
    assert gpt2_bpe.encode(text).ids == ids


def test_layout(gpt2_bpe):
    assert gpt2_bpe.get_vocab_size() == 50257
    assert gpt2_bpe.token_to_id("<|endoftext|>") == EOS_ID
    assert gpt2_bpe.encode("a<|endoftext|>b").ids == [64, EOS_ID, 65]
    assert len(gpt2_merges()) == 50000


def test_byte_level_alphabet_round_trips():
    text = "tab\there, ünïcode ✓ and \x00"
    assert piece_to_bytes(text_to_piece(text)) == text.encode("utf-8")


def test_fetch_offline_writes_loadable_dir_with_source(tmp_path):
    from transformers import AutoTokenizer

    target, meta = fetch_original_tokenizer(tmp_path / "orig", allow_hub=False)
    assert meta["source"]["kind"] == "offline"
    hf = AutoTokenizer.from_pretrained(str(target))
    assert hf("Hello world").input_ids == [15496, 995]
    assert hf.eos_token_id == EOS_ID


def test_fetch_prefers_local_dir_and_force_refetches(tmp_path):
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    target, meta = fetch_original_tokenizer(tmp_path / "b", local_dir=first, allow_hub=False)
    assert meta["source"] == {"kind": "local", "path": str(first)}
    # reused as is with the same settings, re-fetched with force
    written = (target / "tokenizer.json").stat().st_mtime_ns
    _, again = fetch_original_tokenizer(target, local_dir=first, allow_hub=False)
    assert again["source"]["kind"] == "local" and (target / "tokenizer.json").stat().st_mtime_ns == written
    fetch_original_tokenizer(target, local_dir=first, allow_hub=False, force=True)
    assert (target / "tokenizer.json").stat().st_mtime_ns != written
    # other settings fetch their own tokenizer
    _, other = fetch_original_tokenizer(target, allow_hub=False)
    assert other["source"]["kind"] == "offline"
    assert json.loads((target / "ivr_metadata.json").read_text())["source"]["kind"] == "offline"


def test_fetch_rejects_a_tokenizer_that_is_not_byte_level_bpe(tmp_path):
    from tokenizers import Tokenizer, models

    bad = tmp_path / "bad"
    bad.mkdir()
    Tokenizer(models.WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]")).save(str(bad / "tokenizer.json"))
    with pytest.raises(ValueError, match="not a byte-level BPE tokenizer: its model is WordLevel, not BPE"):
        fetch_original_tokenizer(tmp_path / "out", local_dir=bad, allow_hub=False)
