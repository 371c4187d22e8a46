"""Unigram scores written so that a saved tokenizer.json loads them as written."""

from __future__ import annotations

import json

import numpy as np
import pytest

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


def test_a_tokenizer_holds_the_stable_scores_and_its_never_ids_lose_to_any_split():
    """The fit's tokenizer scores pieces as a saved tokenizer.json will load them; a piece it must never output
    (an added token) loses even to a split into pieces of very low score."""
    from tokenizers import Tokenizer

    from ivr.tokenizers.unigram import NEVER_SCORE, unigram_tokenizer

    unstable = 2.0724814146518918e-07  # loads as another float (the first test's score)
    tok = unigram_tokenizer(["a", "b", "ab", "c"], [-6.0, -6.0, -1.0, unstable], never=[2])
    vocab = json.loads(tok.to_str())["model"]["vocab"]
    assert [s for _, s in vocab] == [-6.0, -6.0, NEVER_SCORE, read_back_stable([unstable])[0]]
    assert vocab[3][1] != unstable
    assert tok.encode("ab").tokens == ["a", "b"]
    assert json.loads(Tokenizer.from_str(tok.to_str()).to_str())["model"]["vocab"] == vocab


def test_a_score_that_stays_unstable_is_an_error():
    """Past ``max_ulps`` the fit stops rather than write a file that would load other scores; one unit is enough
    for this score."""
    unstable = np.array([2.0724814146518918e-07, 0.5])
    with pytest.raises(RuntimeError, match=r"^1 scores read back changed within 0 units in the last place"):
        read_back_stable(unstable, max_ulps=0)
    assert read_back_stable(unstable, max_ulps=1)[1] == 0.5


def test_a_score_moves_to_the_nearest_float_that_loads_as_written():
    """Scores move as little as they can, downwards where that is nearer: this one needs several units in the last
    place, fewer below it than above it."""
    score = -6.771312917783506e-10

    def ulps_away(k: int, direction: float) -> float:
        x = score
        for _ in range(k):
            x = np.nextafter(x, direction)
        return x

    nearest = next(x for k in range(1, 65) for x in (ulps_away(k, np.inf), ulps_away(k, -np.inf))
                   if read_back(np.array([x]))[0] == x)
    assert nearest not in (ulps_away(1, np.inf), ulps_away(1, -np.inf)) and nearest < score
    assert read_back_stable([score])[0] == nearest
