"""Shared helpers of the distillation tests: a small corpus, settings that fit in seconds, split rules built
once per process as the fit builds them."""

from __future__ import annotations

import hashlib
import sysconfig
from pathlib import Path

from tokenizers import Tokenizer

from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.split_rules import memo_split_rule

PROSE = (
    "The quick brown fox jumps over the lazy dog. It's 2024, and tokenizers aren't perfect:\n\n\n"
    "Their merges (learned greedily) give '''odd''' results on runs like ==== or ---- or 999999.\n"
    "    Indented lines, tabs\tand trailing spaces   \n"
)
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def corpus() -> list[str]:
    files = ["textwrap.py", "string.py", "json/decoder.py"]
    return [PROSE] + [(STDLIB / f).read_text(encoding="utf-8") for f in files]


# the longest run on which the tests' split rules reproduce BPE (shorter than the default: faster to build)
MAX_RUN = 80


def fast_settings(**kw) -> DistillSettings:
    # no ruler characters unless a test asks: building their rules is most of a small fit's time
    kw = {"split_rule_chars": "", "general_usage_words": 0, "general_languages": "", "vocab_words": False,
          "vocab_variants": False, "number_words": 0, "max_run": MAX_RUN, "split_rule_min_fixed": 1, **kw}
    return DistillSettings(**kw)


def split_rule(bare_bpe: Tokenizer, char: str, max_run: int = MAX_RUN) -> dict | None:
    """The split rule for a character (byte-level piece) of ``bare_bpe``, built once per process as the fit
    builds it."""
    fingerprint = hashlib.sha256(bare_bpe.to_str().encode("utf-8")).hexdigest()
    return memo_split_rule(bare_bpe, fingerprint, char, max_run)
