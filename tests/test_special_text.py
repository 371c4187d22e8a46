"""A special token's text written inside a document (``<|endoftext|>`` in a file) is encoded as plain text by
every tokenizer the pipeline loads: packing never finds the separator inside a document, its bytes count in bits
per byte, and the original BPE, the distilled and the remapped tokenizers agree on it."""

from __future__ import annotations

import pytest

from ivr.packing import pack_blocks
from ivr.tokenizers.byte_level import EOS_ID, piece_to_bytes
from ivr.tokenizers.distill.stage import distill_tokenizer
from ivr.tokenizers.io import load_tokenizer, save_tokenizer_dir
from ivr.tokenizers.remap import build_remapped
from ivr.tokenizers.remap_rules import RemapRule
from ivr.tokenizers.verify import VerifySettings, compare_texts
from tests.distill_fixtures import PROSE, fast_settings

DOC = "Tokens end with <|endoftext|> in GPT-2.\nprint('<|endoftext|>')\n"


@pytest.fixture(scope="module")
def tokenizers(gpt2_bpe, tmp_path_factory):
    """The original BPE and the distilled Unigram as the pipeline loads them (``load_tokenizer``)."""
    out = tmp_path_factory.mktemp("special_text")
    save_tokenizer_dir(gpt2_bpe, out / "original", {"stage": "init"})
    original = load_tokenizer(out / "original")
    # a fit of few rounds and no rules is enough: what is checked is how each reads the separator's text
    summary = distill_tokenizer(original, [PROSE, DOC], [DOC], fast_settings(split_rules=False, word_rules=0,
                                                                              max_iterations=2),
                                out / "distilled", out / "report.md", out / "report.json",
                                verify_settings=VerifySettings(random_id_sequences=10))
    return original, load_tokenizer(out / "distilled"), summary


def test_the_text_is_encoded_as_text_not_as_the_separator(tokenizers):
    original, distilled, _ = tokenizers
    for tok in (original, distilled):
        enc = tok.encode(DOC, add_special_tokens=False)
        assert EOS_ID not in enc.ids
        assert tok.decode(enc.ids) == DOC


def test_packing_keeps_the_separator_between_documents_only_and_counts_the_bytes(tokenizers):
    original, _, _ = tokenizers
    n = len(original.encode(DOC, add_special_tokens=False).ids)
    (blocks, n_bytes), = pack_blocks(original, [DOC], n + 1, EOS_ID)
    assert blocks.shape == (1, n + 1)
    assert EOS_ID not in blocks[0, :n].tolist() and blocks[0, n] == EOS_ID  # the separator is the added id
    first = len(piece_to_bytes(original.id_to_token(int(blocks[0, 0]))))
    assert n_bytes.tolist() == [len(DOC.encode("utf-8")) - first]  # every byte of the text counts but the first token's


def test_original_distilled_and_remapped_agree(tokenizers):
    original, distilled, summary = tokenizers
    ids = original.encode(DOC, add_special_tokens=False).ids
    assert distilled.encode(DOC, add_special_tokens=False).ids == ids
    assert summary["sets"]["heldout"]["rates"]["document"] == 1.0  # verification compares whole documents too
    assert compare_texts(distilled, original, [DOC], "doc")["rates"]["document"] == 1.0
    # a remapped tokenizer encodes special text as the distilled one it is built from: as text, new pieces included
    piece = "endoftext"
    assert original.token_to_id(piece) is None
    rule = RemapRule(300, original.id_to_token(300), piece, tuple(t.id for t in distilled.model.tokenize(piece)))
    remapped = build_remapped(distilled, [rule], 1e-12)
    enc = remapped.encode(DOC, add_special_tokens=False).ids
    assert EOS_ID not in enc and enc.count(300) == 2 and remapped.decode(enc) == DOC
