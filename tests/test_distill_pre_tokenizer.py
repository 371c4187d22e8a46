"""GPT-2's pre-tokenizer regex as the distilled tokenizer assembles it."""

from __future__ import annotations

from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Regex, pre_tokenizers

from ivr.tokenizers.distill.pre_tokenizer import split_pattern


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
