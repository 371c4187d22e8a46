"""Unigram scores written so that a saved tokenizer.json loads them as written."""

from __future__ import annotations

import json

import numpy as np

from ivr.tokenizers.unigram import bare_model, read_back, read_back_stable


def test_read_back_stable_moves_a_score_the_json_reader_rounds_off():
    # 2.0724814146518918e-07 loads as 2.072481414651892e-07 (a fitted score of merge "if")
    unstable = np.array([2.0724814146518918e-07, 0.5, 0.0])
    assert read_back(unstable)[0] != unstable[0]
    stable = read_back_stable(unstable)
    assert (read_back(stable) == stable).all()
    assert stable[0] != unstable[0] and abs(stable[0] - unstable[0]) <= 8 * np.spacing(unstable[0])
    assert list(stable[1:]) == [0.5, 0.0]


def test_the_bare_model_is_the_model_without_anything_around_it(distilled):
    """No normalizer, pre-tokenizer, post-processor, decoder or added token: a pre-token goes to the model as it is
    (``<|endoftext|>`` is plain text, `` `` stays a byte-level space), and the tokenizer it came from is unchanged."""
    before = distilled.to_str()
    bare = bare_model(distilled)
    spec = json.loads(bare.to_str())
    assert [spec[k] for k in ("normalizer", "pre_tokenizer", "post_processor", "decoder", "added_tokens")] == [
        None, None, None, None, []]
    assert spec["model"] == json.loads(before)["model"]
    plain = [t.id for t in distilled.model.tokenize("<|endoftext|>")]
    assert bare.encode("<|endoftext|>").ids == plain and len(plain) > 1
    assert bare.encode("Ġhello").tokens == ["Ġhello"]
    assert distilled.to_str() == before
