"""The unreachable-id finder: by construction from the merges, checked against the library's BPE on text."""

from __future__ import annotations

from tokenizers import Tokenizer
from tokenizers.models import BPE

from ivr.tokenizers.reachability import bpe_encode, tokenizer_unreachable_ids, unreachable_tokens

# (b, c) outranks (a, b): "abc" becomes [a, bc] and the token "abc" built from (ab, c) never forms;
# "xy" is in the vocabulary but no merge makes it, and "q" is no initial symbol
VOCAB = {"a": 0, "b": 1, "c": 2, "x": 3, "y": 4, "bc": 5, "ab": 6, "abc": 7, "xy": 8, "aq": 9, "<s>": 10}
MERGES = [("b", "c"), ("a", "b"), ("ab", "c")]


def test_unreachable_tokens_by_construction():
    assert bpe_encode(list("abc"), {m: r for r, m in enumerate(MERGES)}) == ["a", "bc"]
    assert unreachable_tokens(VOCAB, MERGES, special_ids={10}) == {7: ["a", "bc"], 8: ["x", "y"], 9: []}
    assert unreachable_tokens(VOCAB, MERGES, ignore_merges=True) == {}


def test_the_library_never_produces_them_on_text():
    tok = Tokenizer(BPE(VOCAB, MERGES))
    tok.add_special_tokens(["<s>"])
    unreachable = tokenizer_unreachable_ids(tok)
    assert set(unreachable) == {7, 8, 9}
    # the model does not encode an unreachable id's own string to that id alone; reachable ones it does
    alone = [i for i in range(len(VOCAB) - 1) if [t.id for t in tok.model.tokenize(tok.id_to_token(i))] == [i]]
    assert not set(alone) & set(unreachable) and {5, 6} <= set(alone)
    used = {i for text in ["abc", "abcabc", "ababc", "xy", "cab", "bcab"] for i in tok.encode(text).ids}
    assert not used & set(unreachable) and {5, 6} <= used


def test_gpt2_has_no_unreachable_ids(gpt2_bpe):
    """Every GPT-2 merge forms on its own string: no id is free for the taking; its special token is left out."""
    assert tokenizer_unreachable_ids(gpt2_bpe) == {}


def test_a_model_that_takes_whole_words_or_is_no_bpe_has_no_unreachable_ids():
    """With ``ignore_merges`` a word in the vocabulary is one token whatever the merges say, so none is free; a model
    without merges has nothing to find from them."""
    from tokenizers.models import WordLevel

    tok = Tokenizer(BPE(VOCAB, MERGES, ignore_merges=True))
    assert [t.value for t in tok.model.tokenize("abc")] == ["abc"]
    assert tokenizer_unreachable_ids(tok) == {}
    assert tokenizer_unreachable_ids(Tokenizer(WordLevel({"a": 0, "[UNK]": 1}, unk_token="[UNK]"))) == {}
