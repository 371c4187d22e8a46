"""The offline GPT-2 vocabulary is GPT-2's, and init stores it in a directory both libraries load."""

from __future__ import annotations

import json
import re

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
    every = bytes(range(256))
    from ivr.tokenizers.byte_level import bytes_to_piece

    assert piece_to_bytes(bytes_to_piece(every)) == every


@pytest.mark.parametrize("char", [" ", "\n", "\x7f", "\xa0", "\xad", "Ř", "✓"])
def test_a_character_outside_the_byte_level_alphabet_is_named(char):
    """A space, a control character or a character past the 256 of the alphabet is no byte-level piece's:
    refused with the character named, never read as its Latin-1 byte. ``readable`` leaves such a piece as it is."""
    from ivr.tokenizers.byte_level import readable

    with pytest.raises(ValueError, match=re.escape(f"{char!r} is outside the byte-level alphabet")):
        piece_to_bytes("Ġa" + char)
    assert readable("Ġa" + char) == "Ġa" + char


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


def test_a_piece_reads_as_its_text_with_escapes_for_part_of_a_character():
    """Reports and rule errors show a piece as text: a lone byte of a multi-byte character stays visible as its
    escape, and an added token that is no byte-level string shows as it is."""
    from ivr.tokenizers.byte_level import readable, whole_text

    check = text_to_piece("✓")
    assert readable(text_to_piece(" ünï")) == " ünï" and whole_text(text_to_piece(" ünï")) == " ünï"
    assert readable(check[:2]) == "\\xe2\\x9c" and whole_text(check[:2]) is None
    assert readable("<｜begin▁of▁sentence｜>") == "<｜begin▁of▁sentence｜>"


def test_the_separator_holds_no_bytes_of_text():
    """Packed blocks count the bytes of their text only: ``<|endoftext|>`` between documents adds none."""
    assert piece_to_bytes("<|endoftext|>") == b"" and piece_to_bytes(text_to_piece("<|end")) == b"<|end"


def test_the_single_byte_pieces_are_the_256_byte_level_characters():
    """Selection and remap rules never free these ids: every byte-level vocabulary needs them to encode any text."""
    from ivr.tokenizers.byte_level import bytes_to_piece, single_byte_pieces

    assert single_byte_pieces() == {bytes_to_piece(bytes([b])) for b in range(256)}
    assert len(single_byte_pieces()) == 256 and text_to_piece(" ") in single_byte_pieces()


def test_a_run_length_counts_whole_characters_only():
    from ivr.tokenizers.byte_level import run_length

    line = text_to_piece("─")  # three byte-level characters
    assert run_length(line * 4, line) == 4 and run_length(text_to_piece("    "), text_to_piece(" ")) == 4
    assert run_length(line * 2 + text_to_piece("-"), line) is None and run_length(line[:2], line) is None


def test_the_merges_read_from_the_tokenizer_are_the_packaged_ones_in_rank_order(gpt2_bpe):
    from ivr.tokenizers.bpe import bpe_merges, offline_gpt2_files

    lines = offline_gpt2_files()[1].read_text(encoding="utf-8").splitlines()
    packaged = tuple(tuple(line.split(" ")) for line in lines if line and not line.startswith("#version"))
    assert bpe_merges(gpt2_bpe) == packaged
