"""A stand-in for the distilled tokenizer: a Unigram model over GPT-2's vocabulary, scored from the merge tree,
built in a fraction of a distillation's time; it encodes almost like GPT-2's BPE, which is all the remapping
tests need from it. And GPT-2's merges, read once per test process."""

from __future__ import annotations

import json
import math
from functools import lru_cache

from tokenizers import Tokenizer
from tokenizers.models import Unigram

from ivr.tokenizers.bpe import bpe_merges, offline_gpt2_files, offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import EOS_ID, EOS_TOKEN
from ivr.tokenizers.io import byte_level_tokenizer

BYTE_SCORE = -10.0


@lru_cache(maxsize=1)
def gpt2_merges() -> tuple[tuple[str, str], ...]:
    """GPT-2's merges in rank order (rank 0 first), as packaged."""
    return bpe_merges(offline_gpt2_tokenizer())


@lru_cache(maxsize=1)
def standin_json() -> str:
    vocab_path, _ = offline_gpt2_files()
    vocab = json.loads(vocab_path.read_text(encoding="utf-8"))
    by_id = {i: p for p, i in vocab.items()}
    # every merge adds weight, earlier merges more: Viterbi then prefers segmentations built from early merges
    score = {p: BYTE_SCORE for p in by_id.values() if len(p) == 1}
    for rank, (a, b) in enumerate(gpt2_merges()):
        merged = a + b
        if merged not in score:
            score[merged] = score[a] + score[b] + 10.0 + 8.0 / math.log(rank + 3)
    pieces = [(by_id[i], score.get(by_id[i], BYTE_SCORE)) for i in range(EOS_ID)] + [(EOS_TOKEN, BYTE_SCORE * 10)]
    return byte_level_tokenizer(Unigram(pieces, unk_id=None, byte_fallback=False)).to_str()


def standin_distilled_tokenizer() -> Tokenizer:
    return Tokenizer.from_str(standin_json())
