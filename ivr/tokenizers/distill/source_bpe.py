"""What distillation reads from the source BPE, and what it refuses: its pieces by id, its merges by rank, the ids
BPE never outputs for text, and a check that its pipeline is one the distilled tokenizer reproduces.

Supported with split and word rules: a BPE model (no dropout, no word prefixes or suffixes, no byte fallback, no
unknown token, merges applied to every word) behind GPT-2's pre-tokenizer regex, written as
``ByteLevel(use_regex=True)`` or as ``Sequence[Split(GPT-2's regex, isolated), ByteLevel(use_regex=False)]``,
without a prefix space, optionally behind ``Digits(individual_digits=True)`` (every digit its own pre-token, as
in SmolLM's and StarCoder's Hub tokenizers). Other pre-tokenizers made of ``Split`` and ``Digits`` steps before a
final ``ByteLevel`` (the Llama-3 and Qwen regexes), and any pre-tokenizer with ``ignore_merges`` (Llama-3's),
are kept as they are, without split or word rules, which are written into GPT-2's regex (``SourceBPE.rules``). A
normalizer (GPT-NeoX's and Qwen2's NFC) is kept either way, in front. Anything else is refused by name.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tokenizers import Tokenizer

from ivr.tokenizers.bpe import bpe_merges
from ivr.tokenizers.byte_level import single_byte_pieces
from ivr.tokenizers.gpt2_pre_tokens import crosses_digit, is_digits_then_gpt2, is_gpt2_pre_tokenizer, pre_tokenizer_steps
from ivr.tokenizers.pieces import vocab_pieces


class UnsupportedTokenizer(ValueError):
    """The source tokenizer has a step the distilled Unigram cannot reproduce; the message names it."""


@dataclass(frozen=True)
class SourceBPE:
    """The source BPE as distillation sees it."""

    pieces: list[str]
    """Every piece by id, added tokens included."""
    merges: tuple[tuple[str, str], ...]
    """The merges by rank (rank 0 first)."""
    never: frozenset[int]
    """Ids BPE never outputs for text: added tokens (matched before the model) and pieces that are neither a
    single byte nor built by a merge, and, behind isolated digits, pieces holding a digit and anything else. The
    Unigram gets them at a score that never wins."""
    isolated_digits: bool = False
    """Whether the source puts every digit on its own before GPT-2's regex (``Digits(individual_digits=True)``)."""
    ignore_merges: bool = False
    """Whether BPE gives a word that is a vocabulary piece back as it is, whatever its merges would do."""
    rules: bool = True
    """Whether the source cuts text by GPT-2's regex (after isolated digits or not) and merges every word, into
    which pipeline the split and word rules are written; otherwise the distilled tokenizer keeps the source's
    pre-tokenizer as it is."""

    @property
    def outputs(self) -> list[str]:
        """The pieces BPE can output, in id order: what the fit may learn from."""
        return [p for i, p in enumerate(self.pieces) if i not in self.never]


def source_bpe(bpe: Tokenizer) -> SourceBPE:
    """Read ``bpe`` for distillation; raise ``UnsupportedTokenizer`` naming every step it cannot reproduce."""
    spec = json.loads(bpe.to_str())
    model = spec.get("model") or {}
    steps = pre_tokenizer_steps(spec)
    problems = _model_problems(model) + _pipeline_problems(spec, steps)
    if problems:
        raise UnsupportedTokenizer("cannot distil this tokenizer: " + "; ".join(problems))
    pieces = vocab_pieces(bpe)
    merges = bpe_merges(bpe)
    index = {p: i for i, p in enumerate(pieces)}
    unknown = [m for m in merges if m[0] not in index or m[1] not in index or m[0] + m[1] not in index][:5]
    if unknown:
        raise UnsupportedTokenizer(f"cannot distil this tokenizer: merges with parts or results outside the "
                                   f"vocabulary, e.g. {unknown}")
    # a piece no merge builds stays unused even with ignore_merges, which outputs a whole word in the vocabulary
    # as is: such a piece would need a score of its own (none in a vocabulary whose merges build every piece)
    built = single_byte_pieces() | {a + b for a, b in merges}
    isolated_digits = is_digits_then_gpt2(steps)
    never = frozenset(set(bpe.get_added_tokens_decoder()) | {
        i for i, p in enumerate(pieces) if p not in built or (isolated_digits and crosses_digit(p))})
    # behind a normalizer, an added token matched on normalized text is matched on the byte-level text too, where
    # a space is "Ġ": stripping spaces around it or checking word boundaries would then fail
    stripped = spec.get("normalizer") and any(
        t.get("normalized") and (t.get("lstrip") or t.get("rstrip") or t.get("single_word"))
        for t in spec.get("added_tokens") or [])
    rules = (is_gpt2_pre_tokenizer(steps) or isolated_digits) and not model.get("ignore_merges") and not stripped
    return SourceBPE(pieces, merges, never, isolated_digits, bool(model.get("ignore_merges")), rules)


def _model_problems(model: dict) -> list[str]:
    if model.get("type") != "BPE":
        return [f"its model is {model.get('type')}, not BPE"]
    problems = []
    for key, unsupported in (("dropout", lambda v: v not in (None, 0, 0.0)),
                             ("continuing_subword_prefix", bool), ("end_of_word_suffix", bool),
                             ("byte_fallback", bool), ("unk_token", lambda v: v is not None)):
        if unsupported(model.get(key)):
            problems.append(f"BPE option {key}={model[key]!r} is unsupported")
    return problems


def _pipeline_problems(spec: dict, steps: list[dict]) -> list[str]:
    problems = []
    if not _runnable(steps):
        problems.append("pre-tokenizer " + " then ".join(_describe(s) for s in steps) + " is unsupported: only "
                        "Split and Digits steps before a final ByteLevel without a prefix space are, with a regex "
                        "in a Split or in the ByteLevel")
    decoder = spec.get("decoder") or {}
    if decoder.get("type") != "ByteLevel":
        problems.append(f"decoder {_describe(decoder)} is unsupported (ByteLevel expected)")
    return problems


def _runnable(steps: list[dict]) -> bool:
    """Steps the distilled tokenizer can run (GPT-2's among them): ``Split`` and ``Digits`` on the text, then
    ``ByteLevel`` without a prefix space, with a regex somewhere (without one, a whole document would be one
    word)."""
    *cuts, last = steps or [{}]
    return (last.get("type") == "ByteLevel" and not last.get("add_prefix_space", False)
            and all(s.get("type") in ("Split", "Digits") for s in cuts)
            and (last.get("use_regex", True) or any(s.get("type") == "Split" for s in cuts)))


def _describe(step: dict) -> str:
    """A pipeline step as ``Type(option=value, ...)``, its regex written out."""
    def value(v: object) -> str:
        return f"'{v.get('Regex', v.get('String'))}'" if isinstance(v, dict) else repr(v)

    options = ", ".join(f"{k}={value(v)}" for k, v in step.items() if k != "type")
    return f"{step.get('type')}({options})"
