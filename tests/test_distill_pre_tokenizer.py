"""GPT-2's pre-tokenizer regex as the distilled tokenizer assembles it."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Regex, pre_tokenizers

from ivr.tokenizers.distill.pre_tokenizer import segment_words, split_pattern, with_rules
from ivr.tokenizers.distill.split_rules import split_rule_for
from tests.test_split_rules import tiny_bpe


TRICKY = st.sampled_from(["'", "s", "t", "re", "ve", "m", "ll", "d", "a", "Z", "1", " ", "  ", "\t", "\n", "\u00a0",
                          "é", "ß", "٣", ".", "-", "=", "😀"])


@hsettings(max_examples=300, deadline=None)
@given(st.lists(TRICKY | st.characters(blacklist_categories=("Cs",)), max_size=40).map("".join))
def test_split_pattern_pre_tokenizes_like_gpt2(text):
    # the pattern tries GPT-2's alternatives in another order (faster); the pre-tokens must stay GPT-2's
    ours = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split_pattern([])), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    gpt2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert ours.pre_tokenize_str(text) == gpt2.pre_tokenize_str(text)


def test_a_pre_tokenizer_asked_for_in_contradictory_terms_is_refused_with_the_reason():
    # each would otherwise drop what was asked for without a word (the rules, the run cuts) or fail on a None
    bpe = tiny_bpe([("x", "y")])
    with pytest.raises(ValueError, match="keeping the source's own pre-tokenizer needs the source"):
        with_rules(bpe, [], keep_pre_tokenizer=True)
    with pytest.raises(ValueError, match="kept without split or word rules"):
        with_rules(bpe, [], [["x", "y"]], source=bpe, keep_pre_tokenizer=True)
    cuts = pre_tokenizers.Split(Regex("--"), behavior="merged_with_previous")
    with pytest.raises(ValueError, match="run cuts follow a kept pre-tokenizer"):
        with_rules(bpe, [], source=bpe, run_cuts=cuts)


def test_added_tokens_keep_the_sources_ids():
    # tokens the model's vocabulary lacks take the next free ids in the order they are added: the source's order
    source, model = tiny_bpe([("x", "y")]), tiny_bpe([("x", "y")])
    source.add_tokens(["<a>", "<b>"])
    tok = with_rules(model, [], source=source)
    assert [tok.token_to_id(t) for t in ("<a>", "<b>")] == [source.token_to_id(t) for t in ("<a>", "<b>")]


def test_a_word_gpt2s_regex_cuts_is_left_whole_by_the_rules():
    # the rules only ever see whole pre-tokens: a vocabulary word across classes is never one
    bpe = tiny_bpe([("-", "-"), ("--", "--")])
    rule = split_rule_for(bpe, "-", 8)
    assert bpe.encode("------").tokens == ["----", "--"]
    assert segment_words([rule], ["------", "ab------"]) == [["----", "--"], ["ab------"]]
