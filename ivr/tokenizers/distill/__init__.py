"""Distil a byte-level BPE (GPT-2's, SmolLM2's: ``source_bpe`` says which are supported) into a Unigram model with
the same pieces at the same ids, the same added tokens and the same segmentations.

One module per concern: ``source_bpe`` (what is read from the source BPE, what is refused), ``settings`` (what
a fit may be told), ``words`` (what it learns from) and ``general_words`` (the words of other languages among
them), ``scores`` (initial merge-tree scores), ``lp_fit`` (cutting planes over the merge weights), ``split_rules``,
``run_cuts`` and ``word_rules`` (regex alternatives for what no scores can fix), ``rule_selection`` (which rules are
kept), ``gpt2_regex`` (the regex pieces they share), ``pre_tokenizer`` (GPT-2's regex with the rules spliced in) and
``stage`` (fit, save, verify; the method in full).

The names below are the ones code outside the package uses.
"""

from ivr.tokenizers.distill.pre_tokenizer import (
    encode_segments,
    rules_pre_tokenizer,
    segment_words,
    with_rules,
)
from ivr.tokenizers.distill.scores import initial_scores
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.source_bpe import UnsupportedTokenizer, source_bpe
from ivr.tokenizers.distill.split_rules import split_rule_for
from ivr.tokenizers.distill.stage import check_strict, distill_tokenizer, fit_distilled
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.unigram import bare_model, unigram_tokenizer

__all__ = [
    "DistillSettings",
    "check_strict",
    "UnsupportedTokenizer",
    "bare_model",
    "distill_tokenizer",
    "encode_segments",
    "fit_distilled",
    "initial_scores",
    "pre_token_counts",
    "rules_pre_tokenizer",
    "segment_words",
    "source_bpe",
    "split_rule_for",
    "unigram_tokenizer",
    "with_rules",
]
