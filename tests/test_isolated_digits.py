"""A source that puts every digit on its own before GPT-2's regex (``Digits(individual_digits=True)``, as
SmolLM's and StarCoder's Hub tokenizers do): distillation keeps that step, so the distilled tokenizer cuts the
source's pre-tokens and never fits words the source cannot produce."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer

from ivr.tokenizers.byte_level import text_to_piece
from ivr.tokenizers.byte_level_regex import isolated_digits
from ivr.tokenizers.distill import distill_tokenizer, source_bpe
from ivr.tokenizers.distill.words import fit_words
from ivr.tokenizers.gpt2_pre_tokens import crosses_digit
from ivr.tokenizers.bpe import bpe_merges
from ivr.tokenizers.io import load_tokenizer, pre_tokens, read_metadata, read_special_tokens
from tests.distill_fixtures import corpus, fast_settings, split_rule
from tests.test_other_bpe import ROLES, tiny_bpe

DIGITS_FIRST = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                        pre_tokenizers.ByteLevel(add_prefix_space=False)])
NUMBERS = "In 2024 the 3rd build took 12.5 s; v2 of x86_64 ran at 1,000,000 ops (²½٣ too).\n  42\t7  \n"


@pytest.fixture(scope="module")
def bpe():
    # trained behind grouped digits, so that it has merges of digits (``00``, ``2024``) no text ever reaches
    grouped = tiny_bpe(extra_texts=[NUMBERS * 50 + " 000 0000 00000 1000 2000 " * 200])
    grouped.pre_tokenizer = DIGITS_FIRST
    return grouped


@pytest.fixture(scope="module")
def distilled(bpe, tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    bpe.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(ROLES), encoding="utf-8")
    texts = [NUMBERS, *corpus()]
    word_list = out / "words.txt"
    word_list.write_text("v2\nx86_64\n", encoding="utf-8")
    settings = fast_settings(split_rule_chars="-=0123456789", number_words=2, word_list=word_list)
    summary = distill_tokenizer(bpe, texts[:3], texts[3:], settings, out / "tokenizer", out / "r.md", out / "r.json",
                                special=read_special_tokens(out))
    return out / "tokenizer", summary


def test_crosses_digit():
    assert not crosses_digit(text_to_piece("7")) and not crosses_digit(text_to_piece("²"))
    assert not crosses_digit(text_to_piece(" word")) and not crosses_digit(text_to_piece("=="))
    assert crosses_digit(text_to_piece("12")) and crosses_digit(text_to_piece(" 1"))
    assert crosses_digit(text_to_piece("v2")) and crosses_digit(text_to_piece("٣x"))
    assert crosses_digit(text_to_piece("²")[:1] + "1")  # a part of a character beside a digit


def test_the_digits_are_those_the_digits_step_isolates():
    digits = {c for lo, hi in isolated_digits() for c in range(lo, hi + 1)}
    assert {ord(c) for c in "0123456789²½٣Ⅻ\U00011de0"} <= digits
    assert not {ord(c) for c in "aüò -"} & digits


def test_the_source_is_read_with_its_digits_step(bpe):
    source = source_bpe(bpe)
    assert source.isolated_digits
    multi_digit = [i for i, p in enumerate(source.pieces) if crosses_digit(p)]
    assert multi_digit, "the fixture should hold pieces that cross a digit"
    assert set(multi_digit) <= source.never
    assert not source_bpe(tiny_bpe()).isolated_digits


def test_fit_words_never_cross_a_digit(bpe):
    source = source_bpe(bpe)
    corpus_counts = Counter({text_to_piece(w): 2 for w in ("7", " the", "==")})
    words = fit_words(source.outputs, corpus_counts, fast_settings(number_words=3, vocab_words=True),
                      isolated_digits=True)
    assert not any(crosses_digit(w) for w in words)
    assert {str(d) for d in range(10)} <= set(words) and text_to_piece(" the") in words
    grouped = fit_words(source.outputs, corpus_counts, fast_settings(number_words=2))
    assert text_to_piece(" 42") in grouped  # the same settings for a source that groups digits


def test_the_distilled_tokenizer_keeps_the_digits_step(distilled, bpe):
    path, summary = distilled
    tok = load_tokenizer(path)
    assert ("0", "0") in bpe_merges(bpe)  # a run of zeros BPE would chunk, were digits not isolated
    rules = read_metadata(path, required=True)["split_rules"]
    assert rules and not any(r["char"].isdigit() for r in rules)  # so no rule for a run no text holds
    assert [step["type"] for step in json.loads(tok.to_str())["pre_tokenizer"]["pretokenizers"]] == ["Split", "Split"]
    ids = summary["ids"]
    assert ids["id_to_token_identical"] and ids["single_id_decode_mismatches"] == 0
    assert ids["random_sequence_decode_mismatches"] == 0
    assert summary["sets"]["corpus"]["rates"]["word_occurrence"] > 0.99
    for text in NUMBERS.splitlines():
        assert tok.encode(text).ids == bpe.encode(text).ids
    hf = AutoTokenizer.from_pretrained(str(path))
    assert hf(NUMBERS)["input_ids"] == bpe.encode(NUMBERS).ids


def test_the_word_list_is_cut_as_text_is(bpe, tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("v2\n", encoding="utf-8")
    words = fit_words([], Counter(), fast_settings(word_list=path), bpe, isolated_digits=True)
    assert set(words) == {text_to_piece(w) for w in ("v", " v", "2")}


def test_the_three_step_form_is_read_with_its_digits_step():
    from tokenizers import Regex

    from ivr.tokenizers.gpt2_pre_tokens import GPT2_PATTERN, PreTokenCutter

    tok = tiny_bpe(pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.Split(Regex(GPT2_PATTERN), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))
    assert source_bpe(tok).isolated_digits and PreTokenCutter(tok).fast
    assert PreTokenCutter(tok)(NUMBERS) == pre_tokens(tok, NUMBERS)


def test_rules_are_kept_beside_the_digits(bpe):
    from ivr.tokenizers.distill import initial_scores, unigram_tokenizer, with_rules
    from ivr.tokenizers.unigram import bare_model

    source = source_bpe(bpe)
    model = unigram_tokenizer(source.pieces, initial_scores(source.pieces, source.merges, 3.3), source.never)
    rules = [r for r in (split_rule(bare_model(bpe), text_to_piece(c)) for c in "-=") if r]
    assert rules
    cut = with_rules(model, rules, source=bpe, isolated_digits=True)
    _assert_same(cut, _text_form(rules, []), "a ====1==== b---- 2---3 ò½")


# digits of several scripts, white space before and after them, rule characters and letters
# (ò, ó, ü and ½ hold the bytes whose byte-level characters are ², ³, ¼ and ½; U+11DE0 is a digit newer than the
# regex engine's Unicode tables)
TEXT = st.text(alphabet="0123456789²½٣Ⅻ\U00011de0 \t\n-=.abcXYòóü'", max_size=40)


@pytest.fixture(scope="module")
def saved(distilled):
    """The saved tokenizer, and the same rules in the source's own steps: ``Digits``, the rules' regex over text,
    ``ByteLevel``."""
    metadata = read_metadata(distilled[0], required=True)
    return load_tokenizer(distilled[0]), _text_form(metadata["split_rules"], metadata["word_rules"])


@settings(max_examples=200, deadline=None)
@given(TEXT)
def test_the_distilled_pre_tokens_are_the_sources_steps_with_the_rules(saved, bpe, text):
    tok, reference = saved
    _assert_same(tok, reference, text)
    # and so they cut the source's pre-tokens finer, never across them
    mine, theirs = pre_tokens(tok, text), pre_tokens(bpe, text)
    ends = {sum(map(len, theirs[:k])) for k in range(len(theirs) + 1)}
    assert ends <= {sum(map(len, mine[:k])) for k in range(len(mine) + 1)}


def _text_form(rules, word_rules):
    from tokenizers import Regex, Tokenizer, models

    from ivr.tokenizers.distill.pre_tokenizer import split_pattern

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Split(Regex(split_pattern(rules, word_rules)), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    return tok


def _assert_same(tok, reference, text: str) -> None:
    mine = pre_tokens(tok, text)
    assert mine == pre_tokens(reference, text)
    assert "".join(mine) == text_to_piece(text) and not any(crosses_digit(p) for p in mine)
