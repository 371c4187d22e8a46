"""Unigram scores written so that a saved tokenizer.json loads them as written."""

from __future__ import annotations

import numpy as np

from ivr.tokenizers.unigram import read_back, read_back_stable


def test_read_back_stable_moves_a_score_the_json_reader_rounds_off():
    # 2.0724814146518918e-07 loads as 2.072481414651892e-07 (a fitted score of merge "if")
    unstable = np.array([2.0724814146518918e-07, 0.5, 0.0])
    assert read_back(unstable)[0] != unstable[0]
    stable = read_back_stable(unstable)
    assert (read_back(stable) == stable).all()
    assert stable[0] != unstable[0] and abs(stable[0] - unstable[0]) <= 8 * np.spacing(unstable[0])
    assert list(stable[1:]) == [0.5, 0.0]
