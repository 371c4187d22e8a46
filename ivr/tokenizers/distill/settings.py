"""What a distillation fit may be told (``DistillSettings``) and what it hands back (``FitResult``)."""

from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ivr.general_english import check_languages
from ivr.tokenizers.distill.word_list import MAX_COUNT, read_word_list_entries
from ivr.user_text import require_file, require_utf8_text

# how many word rules and words proven unsatisfiable the fit statistics list (most frequent first)
EXAMPLES = 20


MAX_MARGIN = 1000.0
"""The largest ``margin``: a fraction of the smallest merge weight at stake (up to 1e12 in the fit's units, and raised
up to 64x), so that the linear program's bounds stay below the 1e20 its solver reads as infinite."""

MAX_RUN = 1024
"""The longest ``max_run``: BPE is asked about every run length after every lead, so building a rule grows faster
than the square of it (GPT-2's space: 0.3 s at 128, 9.5 s at 512, 78 s at 1024)."""

MAX_NUMBER_WORDS = 6
"""The longest digit strings ``number_words`` may ask for: 6 adds 2.2 million fit words."""


@dataclass
class DistillSettings:
    """Knobs of tokenizer distillation (``data.distill.*``)."""

    strict: bool = False
    """Fail when any corpus word occurrence (ties included) or corpus document gets ids other than BPE's, or the
    id map, the added tokens or any decode differs."""
    init_exponent: float = 3.3
    """Initial weight of merge ``rank`` is ``((rank + init_offset) / init_offset) ** -init_exponent *
    exp(-init_decay * rank)``; a piece scores the sum over its tree. Steeper is closer to BPE's merge order; past
    a range of about 2^51 between the first and the last merge (3.3 at offset 1) late merges weigh less than
    float64 resolves."""
    init_offset: float = 1.0
    """Ranks below about this offset weigh alike; a larger offset leaves room in float64's range for a steeper
    ``init_exponent`` among the later merges (offset 10 at exponent 4.19 spans the range of offset 1 at 3.3)."""
    init_decay: float = 0.0
    """A further factor ``exp(-init_decay * rank)``: each rank then weighs at least ``exp(init_decay)`` times less
    than the one before, late ranks too, which the power alone makes weigh nearly alike (exponent 2.5 with decay
    1.7312e-4 spans the range of exponent 3.3 alone over GPT-2's 50,000 merges). 0: the power alone."""
    max_iterations: int = 40
    """Most fitting rounds (each: one Viterbi pass over all words, then, but for the last round, one linear program
    over the rows; 1 keeps the merge-tree initialisation)."""
    max_seconds: float = 120.0
    """Stop starting fitting rounds after this many seconds of score fitting (the best round is kept). A fit
    stopped by it depends on the machine's speed (a warning and the report say so); one that ends by itself does
    not."""
    margin: float = 0.05
    """How much BPE's segmentation must beat each collected competitor, as a fraction of the smallest initial
    weight among the merges the two segmentations use differently (a fixed margin would outweigh late merges,
    whose weights are tiny, and force large changes on them). At most 1000."""
    slack_penalty: float = 300.0
    """Cost of giving up one word occurrence by 1e-12 of score, against changing by 100% the weight of a
    merge that one fit word uses (changes cost more on merges many words use). Lower gives up more fit words
    to word rules and breaks fewer unseen ones. Vocabulary pieces are never given up:
    a piece that does not encode to itself breaks every text that holds it."""
    relative_slack: bool = False
    """Charge giving a word up by its shortfall relative to the smallest initial weight of the merges at stake
    (scale-free, as changes of merge weights are charged), ``slack_penalty`` then per occurrence and per 100% of
    that weight. Off, the shortfall is absolute, so words decided by late merges (small weights) are given up
    more readily than words decided by early ones; on, the fit keeps more of them and breaks more unseen words
    (docs/distillation.md, fit alternatives)."""
    vocab_words: bool = True
    """Fit on every vocabulary piece as a word of its own."""
    vocab_variants: bool = True
    """Also fit on each ASCII-alphabetic piece with its leading space toggled, with a capital first letter and in
    capitals (headings and licences write whole words in capitals: SmolLM2's `` PROCUREMENT``)."""
    number_words: int = 4
    """Also fit on every digit string of up to this many digits, with and without a leading space (BPE's
    digit merges are erratic and numbers are everywhere; 5 digits adds provable conflicts, not accuracy; at most
    6, which adds 2.2 million fit words). Where
    the source puts every digit on its own (``Digits(individual_digits=True)``), any value above 0 means the ten
    digits alone."""
    general_usage_words: int = 50000
    """How many of ``wordfreq``'s most frequent English words (with and without a leading space) count, in the
    fit's cost of changing a merge, as users of the merges their BPE pieces are built from: a merge that many
    general words use costs more to change, so a fit on code breaks fewer words of prose it never sees. They add
    no constraints (0: none)."""
    general_languages: str = "en de fr es it pt nl pl ru ja zh ko"
    """``wordfreq`` languages whose most frequent words join the fit words (space- or comma-separated codes;
    empty: none), so that text in them is segmented as BPE does although the corpus holds none of it. Each
    word is cut by the source tokenizer's pre-tokenizer, after a space and not, lower-case and capitalised,
    and weighs its estimated occurrences in ``general_text_words`` words of general text. Russian, Japanese,
    Chinese and Korean matter little to GPT-2, whose fits get them right anyway (weighted as 1e6 words of text,
    they moved no held-out set of its benchmark by more than one occurrence), but SmolLM2 merges a space with the
    first byte of many CJK characters, and its Japanese and Chinese need their words."""
    general_words_per_language: int = 10000
    """How many of each general language's most frequent words join the fit words."""
    general_text_words: float = 3e6
    """The size, in word occurrences, of the general text of each language that the general words' weights
    estimate: a word of frequency ``f`` weighs ``f * general_text_words`` like that many corpus occurrences,
    so rare words are given up (``slack_penalty``) where matching them would cost frequent ones. At 1e6 the fit
    gives up SmolLM2's `` 文件`` ("file"), which Chinese program messages are full of. At most 1e12, as a word
    list's counts."""
    word_list: Path | None = None
    """Optional UTF-8 file with one word per line, optionally ``word<TAB>count``, for text beyond the corpus.
    Each word is fitted with and without a leading space, cut by the source's pre-tokenizer as text is
    (``don't``: ``don`` and ``'t``), weighted by its count (1 when none is given)."""
    split_rules: bool = True
    """Splice rules into GPT-2's pre-tokenizer regex that cut runs of one character into BPE's chunks (ties); behind
    a pre-tokenizer kept as it is (Llama-3's, Qwen2's regex), cut runs of ASCII punctuation after it (run cuts,
    chosen per character as split rules are)."""
    max_run: int = 128
    """Longest run of one character on which a candidate split rule must reproduce BPE exactly (at most 1024:
    building a rule grows faster than the square of it, about 80 s for the space at 1024)."""
    split_rule_min_fixed: float = 10.0
    """A split rule is kept only if it fixes at least this many weighted fit word occurrences (rules cost speed)."""
    split_rule_chars: str = " \n\t-=*#~_/^+.<>|\")]%:?@!,;([{}" + string.digits + string.ascii_letters + "─═…—–•·█░▬★"
    """Characters whose runs get a split rule whatever the fit corpus holds (if it breaks no fit word). The default
    is a space, a newline and a tab, then ``-=*#~_/^+.<>|")]%:?@!,;([{}``, the digits, the ASCII letters and
    ``─═…—–•·█░▬★`` (the default printed below loses the white space). Spaces, newlines and tabs (indentation,
    aligned comments, trailing spaces, blank lines: SmolLM2 cuts 22 spaces 16·6 and 10 tabs 8·2, GPT-2 3 newlines
    2·1, which the Unigram ties), rulers,
    underlines and markers (``-=*#~_/^+.<>|``), double quotes and brackets (``\"""``, ``")))``, ``{{{``, ``[[[``),
    exclamations, commas and semicolons (``!!!``, ``,,,``, ``;;;`` of Lisp comments), format and placeholder
    marks (``%%%``, ``:::``, ``???``, ``@@@``), placeholder or hex runs of letters and digits (``NNN``, ``ffff``,
    ``0000``), and the box drawings, dashes, dots and blocks of GPT-2's merges of a
    multi-byte character with itself (``────``, ``……``) are common in any text. Letter, digit and multi-byte
    rules take under 1 s each to build; ASCII punctuation up to 6 s."""
    word_rules: int = 1000
    """At most this many of the fit words that scores and split rules leave wrong (most frequent first) get a
    word rule: regex alternatives that cut exactly that whole pre-token at BPE's token boundaries (``0477``,
    `` '(')``; 0: none). Each costs a little encoding speed, on text starting with its characters only."""
    letter_word_rules: Literal["corpus", "all"] = "corpus"
    """Which letter words (the class of most pre-tokens) may get a word rule: ``corpus``, those of the fit corpus
    and ``word_list``; ``all``, also the vocabulary variants and general words the scores leave wrong. Each letter
    rule is tested at every word: on the distillation benchmark the 209 that ``all`` adds slow batched encoding
    from 0.855x to 0.789x of BPE's speed and fix 17 of 4.84M held-out word occurrences (French 7, Portuguese 9)."""

    def __post_init__(self) -> None:
        # merge weights ((rank + offset) / offset) ** -exponent must fall with rank and stay above 0 (the fit
        # divides by them); a margin of 0 lets BPE's segmentation merely tie its competitor, which Viterbi may break
        # either way; a penalty of 0 gives up every word for free, a negative one leaves the linear program unbounded
        for name in ("init_exponent", "init_offset", "margin", "slack_penalty"):
            value = getattr(self, name)
            if not 0 < value < math.inf:  # NaN fails too
                raise ValueError(f"data.distill.{name} must be positive{' and finite' if value > 0 else ''}, got {value}")
        if self.margin > MAX_MARGIN:
            raise ValueError(f"data.distill.margin must be at most {MAX_MARGIN:g} (a fraction of the smallest merge weight "
                             f"at stake: 0.05 is 5%), got {self.margin:g}")
        if not 0 <= self.init_decay < math.inf:  # a growth with rank would put late merges before early ones
            raise ValueError(f"data.distill.init_decay must be at least 0 and finite, got {self.init_decay}")
        at_least = (
            ("max_iterations", 1, ""),
            ("max_seconds", 0, " (0: one round)"),
            ("number_words", 0, ""),
            # a split rule cuts runs of two or more characters, and run cuts behind a kept regex too: below 2 none
            ("max_run", 2, " (to turn split rules off, set data.distill.split_rules false)" if self.split_rules else ""),
            ("split_rule_min_fixed", 0, ""),
            ("word_rules", 0, " (0: none)"),
            ("general_usage_words", 0, " (0: none)"),
            ("general_words_per_language", 0, " (0: none)"),
            ("general_text_words", 0, " (0: no general words)"),
        )
        for name, least, note in at_least:
            value = getattr(self, name)
            if not value >= least:
                raise ValueError(f"data.distill.{name} must be at least {least}{note}, got {value}")
        if self.max_run > MAX_RUN:
            raise ValueError(f"data.distill.max_run must be at most {MAX_RUN} (the space's split rule takes about 80 s "
                             f"to build at {MAX_RUN}), got {self.max_run}")
        if self.number_words > MAX_NUMBER_WORDS:  # 10^k strings, each with and without a space
            raise ValueError(f"data.distill.number_words must be at most {MAX_NUMBER_WORDS} (7 would add 22 million fit "
                             f"words), got {self.number_words}")
        if not math.isfinite(self.general_text_words):  # infinite weights: the linear program cannot be solved
            raise ValueError(f"data.distill.general_text_words must be finite, got {self.general_text_words}")
        # a finite size far past any text overflows too, once the program multiplies a frequent word's weight by the
        # slack penalty: bounded as a word list's counts are
        if self.general_text_words > MAX_COUNT:
            raise ValueError(f"data.distill.general_text_words must be at most {MAX_COUNT:.0e} (a word weighs its "
                             f"frequency times it, and the fit multiplies weights by its penalties), got "
                             f"{self.general_text_words:g}")
        if self.letter_word_rules not in ("corpus", "all"):
            raise ValueError(f"data.distill.letter_word_rules must be 'corpus' or 'all', got {self.letter_word_rules!r}")
        check_languages(parse_languages(self.general_languages), "data.distill.general_languages")
        require_utf8_text(self.split_rule_chars, "data.distill.split_rule_chars")
        if self.word_list is not None:
            require_file(self.word_list, "data.distill.word_list")  # as written: "" is named as empty, not as "."
            self.word_list = Path(self.word_list).expanduser()  # ~ expanded once: the stamp and the fit read one file
            read_word_list_entries(self.word_list)  # a bad line stops the run here, not after analyze


@dataclass
class FitResult:
    """Scores for the source's pieces (by id) and what the fit saw."""

    scores: list[float]
    split_rules: list[dict]
    word_rules: list[list[str]] = field(default_factory=list)
    """BPE's pieces of each word cut by a word rule, most frequent first."""
    run_cuts: list[dict] = field(default_factory=list)
    """Behind a kept pre-tokenizer, per character: the contexts its run cuts were asked about, the words they keep
    whole."""
    stats: dict = field(default_factory=dict)


def parse_languages(spec: str) -> list[str]:
    """``"de, fr es"`` -> ``["de", "fr", "es"]`` (commas or spaces between codes)."""
    return spec.replace(",", " ").split()
