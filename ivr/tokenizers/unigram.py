"""Unigram tokenizers over byte-level pieces, and scores written so that a saved ``tokenizer.json`` loads them
unchanged: shared by the distillation fit, its verification and the remapped tokenizer."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

import numpy as np
from tokenizers import Tokenizer
from tokenizers.models import Unigram

# far below any piece's score: a piece BPE never outputs (an added token such as <|endoftext|>) never wins a
# segmentation of text
NEVER_SCORE = -1000.0


def bare_model(tok: Tokenizer) -> Tokenizer:
    """``tok``'s model alone, fed byte-level strings (pre-tokens). The model is shared with ``tok``, not copied
    (nothing changes a model once built; a copy through JSON took 0.2 s, with the distilled regex more)."""
    return Tokenizer(tok.model)


def read_back(values: np.ndarray) -> np.ndarray:
    """What ``tokenizers`` loads for each of ``values`` once they are written into a ``tokenizer.json``."""
    tok = Tokenizer(Unigram([(str(i), float(v)) for i, v in enumerate(values)], None, False))
    return np.array([v for _, v in json.loads(Tokenizer.from_str(tok.to_str()).to_str())["model"]["vocab"]])


def read_back_stable(scores: Sequence[float], max_ulps: int = 64) -> np.ndarray:
    """``scores``, each moved by the fewest units in the last place that make ``tokenizers`` load it as written.

    Its JSON reader rounds about one number in six off by a unit in the last place (8,249 of the 50,257 fitted
    scores), so a file written from the fitted floats would load other ones, and every load and save would move
    them again; late merges weigh about as little as that (``DistillSettings.init_exponent``).
    """
    want = np.asarray(scores, dtype=np.float64)
    out = want.copy()
    todo = np.flatnonzero(read_back(out) != out) if len(out) else []
    for k in range(1, max_ulps + 1):
        for direction in (np.inf, -np.inf):
            if not len(todo):
                return out
            moved = want[todo]
            for _ in range(k):
                moved = np.nextafter(moved, direction)
            out[todo] = moved
            todo = todo[read_back(moved) != moved]
    if len(todo):
        raise RuntimeError(f"{len(todo)} scores read back changed within {max_ulps} units in the last place")
    return out


def unigram_tokenizer(pieces: Sequence[str], scores: Sequence[float], never: Iterable[int] = ()) -> Tokenizer:
    """A bare Unigram tokenizer (no pre-tokenizer) over byte-level strings, for fitting, holding the scores as
    a saved ``tokenizer.json`` loads them (``read_back_stable``); the ids ``never`` score ``NEVER_SCORE``."""
    stable = read_back_stable(scores)
    vocab = [(p, float(s)) for p, s in zip(pieces, stable)]
    for i in never:
        vocab[i] = (pieces[i], NEVER_SCORE)
    return Tokenizer(Unigram(vocab, None, False))
