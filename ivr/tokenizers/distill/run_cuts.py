"""Run cuts: where the distilled tokenizer cuts runs of one character behind a source's own pre-tokenizer.

A source whose pre-tokenizer is kept as it is (Llama-3's or Qwen2's regex, ``SourceBPE.rules`` false) gets no
split rules, which are written into GPT-2's regex. Its runs are ties all the same: BPE puts the long chunk first
(``================``·``=========`` for 25 ``=``), the Unigram the long chunk last. A run cut is a ``Split`` after
the source's pre-tokenizer that cuts a run of ASCII punctuation where BPE's tokens end, asked for every run length
between what may stand before and after it (``run_cuts_of``): the match is the run's character before the cut,
behind exactly that many characters of the run and before exactly the rest of it, in a context where BPE cuts
there, and it ends a pre-token (``merged_with_previous``). Cuts are only made inside a run: what comes before the
run stays with its first chunk and what follows with its last, which BPE may merge (`` '+``, ``-\n``). A
character gets cuts on the terms of a split rule, and the fit words they would break are kept whole
(``select_run_cuts``).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from collections.abc import Sequence

import numpy as np
from tokenizers import Regex, Tokenizer, pre_tokenizers
from tqdm import tqdm

from ivr.tokenizers.distill.gpt2_regex import rx
from ivr.tokenizers.distill.pre_tokenizer import encode_segments
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.rule_selection import TOO_FEW_WRONG, earns_a_rule, may_earn_a_rule, words_with_runs
from ivr.tokenizers.distill.split_rules import ASCII_PUNCT, ranges, repeat

# ASCII punctuation is its own byte-level character, so cuts written for it hold after the source's ByteLevel
# step; letters are left to the Unigram (every doubled letter of every word would pay for their test)
CHARS = ASCII_PUNCT
NEWLINE = "Ċ"
# runs before up to this many newlines are asked about one by one (a ruler and the blank line after it)
NEWLINES = 4


Context = tuple[str, str]
"""What stands before a run of a character and what follows it, as BPE is asked (``run_cuts_of``)."""
# more fit words than this that a character's cuts would break, kept whole one by one, and it gets no cuts
MAX_KEPT_WHOLE = 100
# a character whose cuts take a longer regex gets none (each context a cut depends on is written out: Llama-3's
# "(" would take 4 MB)
MAX_PATTERN = 1_000_000


@dataclass
class CharCuts:
    """The cuts in runs of one character: where BPE's tokens end, by context (``run_cuts_of``), and the words they
    must leave whole, each with the positions where they would match in it (fit words BPE cuts otherwise: a
    vocabulary piece that ``ignore_merges`` gives back whole, a run before a quote and a newline)."""

    contexts: dict[Context, set[tuple[int, int]]]
    whole: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)


def piece_grams(vocab) -> set[str]:
    """Every piece's substrings of two and three characters: what ``run_cuts_of`` asks about a neighbour."""
    return {piece[i:i + k] for piece in vocab for k in (2, 3) for i in range(len(piece) - k + 1)}


def run_cuts_of(bare_bpe: Tokenizer, char: str, max_run: int, grams: set[str]) -> dict[Context, set[tuple[int, int]]]:
    """Where BPE's tokens end inside a run of ``char``, as (offset in the run, run length), in each context: before
    the run a space, each character or space and character that some piece joins to ``char`` (``grams``: every
    piece's substrings of two and three characters), or anything else (``""``); after it one to ``NEWLINES``
    newlines or each punctuation character that some piece joins to it, or anything else (``""``). Next to a
    neighbour that some piece joins to a character beyond it, a cut holds only where it holds with nothing there
    too."""
    near = [x for x in [*CHARS, NEWLINE] if x != char and x + char in grams]
    lefts = ["", "Ġ", *near, *("Ġ" + x for x in near if "Ġ" + x + char in grams)]
    tails = ["", *(t for t in CHARS if t != char and char + t in grams)]
    if char + NEWLINE in grams:
        tails += [NEWLINE * k for k in range(1, NEWLINES + 1)]

    found: dict[Context, set[tuple[int, int]]] = {}
    for left in lefts:
        for tail in tails:
            ends = set()
            texts = [left + char * n + tail for n in range(1, max_run + 1)]
            for n, enc in enumerate(bare_bpe.encode_batch(texts), start=1):
                end = -len(left)
                for token in enc.tokens[:-1]:
                    end += len(token)
                    if 0 < end < n:
                        ends.add((end, n))
            found[(left, tail)] = ends
    # BPE may first join a neighbour to what stands beyond it (``]&`` after a run of ``_``, ``\\:`` before one of
    # ``:``, more newlines than are asked about), which leaves the run as if nothing stood there: a cut holds next
    # to such a neighbour only where it holds without it too
    free_left = {x for x in near if any(y + x in grams and y + x not in lefts for y in [*CHARS, "Ġ"])}
    free_tail = {t for t in tails if t and any(t[-1] + e in grams and t + e not in tails for e in [*CHARS, NEWLINE])}
    out = {}
    for left, tail in found:
        sides = [(a, b) for a in {left, "" if left in free_left else left}
                 for b in {tail, "" if tail in free_tail else tail}]
        out[(left, tail)] = set.intersection(*(found[side] for side in sides))
    return out


def _side(which: str, here: str, others: Sequence[str], run: str) -> str:
    """A lookaround that holds where ``here`` is what stands before the run (``which`` "before"; ``run`` the run's
    characters up to the match) or follows it (``which`` "after"), of ``others``: the longest that matches, and
    ``""`` where none does."""
    if which == "before":
        if here == "":
            firsts = "".join(rx(x) for x in others if len(x) == 1)
            return f"(?<![{firsts}]{run})" if firsts else ""
        return f"(?<={rx(here)}{run})" + "".join(f"(?<!{rx(x)}{run})" for x in others
                                                  if len(x) > len(here) and x.endswith(here))
    if here == "":
        firsts = "".join(rx(x) for x in others if len(x) == 1)
        return f"(?![{firsts}])" if firsts else ""
    return f"(?={rx(here)})" + "".join(f"(?!{rx(x)})" for x in others if len(x) > len(here) and x.startswith(here))


def run_cut_pattern(cuts: dict[str, CharCuts]) -> str:
    """The regex of the cuts. A match is the run's character before a cut, with exactly as many of the run up to
    it and exactly the rest after it, in a context where BPE cuts there, and not in a word to keep whole."""
    groups = []
    for char, char_cuts in sorted(cuts.items()):
        c, by_context = rx(char), char_cuts.contexts
        # by length, then as text: the regex (and the file's hash, which later stages key on) must not vary by run
        lefts = sorted({left for left, _ in by_context}, key=lambda x: (len(x), x))
        tails = sorted({tail for _, tail in by_context}, key=lambda x: (len(x), x))
        valid: dict[tuple[int, int], set[Context]] = defaultdict(set)
        for context, found in by_context.items():
            for cut in found:
                valid[cut].add(context)
        # per cut offset: the run lengths it holds for, by the contexts it holds in
        rests: dict[tuple[int, frozenset[Context]], list[int]] = defaultdict(list)
        for (end, n), where in valid.items():
            rests[(end, frozenset(where))].append(n - end)
        alts = []
        for (end, where), rest in sorted(rests.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))):
            run = f"{c}{{{end}}}"
            length = "|".join(repeat(c, lo, hi) for lo, hi in ranges(rest))
            if len(where) == len(by_context):
                conds = [f"(?=(?:{length})(?!{c}))"]
            else:
                conds = []
                for left in lefts:
                    after = [t for t in tails if (left, t) in where]
                    if not after:
                        continue
                    ahead = "" if len(after) == len(tails) else "(?:" + "|".join(
                        _side("after", t, tails, "") for t in after) + ")"
                    conds.append(f"{_side('before', left, lefts, run)}(?=(?:{length})(?!{c}){ahead})")
            alts.append(f"(?<={run})(?<!{c}{run})(?:{'|'.join(conds)})")
        # a word kept whole: the whole pre-token is that word, split where the match would start
        whole = "|".join(f"(?<=\\A{rx(w[:m])})(?={rx(w[m:])}\\z)" for w, at in char_cuts.whole for m in at)
        if alts:
            groups.append((f"(?!{whole})" if whole else "") + f"{c}(?:{'|'.join(alts)})")
    if not groups:
        return ""
    # every cut has the run's character on both sides: one test for a doubled character skips the rest elsewhere
    doubled = "".join(rx(c) for c in sorted(cuts))
    return f"(?=(?<r>[{doubled}])\\k<r>)(?:{'|'.join(groups)})"


def run_cut_split(cuts: dict[str, CharCuts]) -> pre_tokenizers.Split | None:
    """The ``Split`` that makes the cuts (a match ends its pre-token), None without cuts."""
    pattern = run_cut_pattern(cuts)
    return pre_tokenizers.Split(Regex(pattern), behavior="merged_with_previous") if pattern else None


def cut_words(cuts: dict[str, CharCuts], words: Sequence[str]) -> list[list[str]]:
    """Each byte-level word as the cuts leave it."""
    split = run_cut_split(cuts)
    doubled = [c * 2 for c in cuts]
    return [[p for p, _ in split.pre_tokenize_str(w)] if split is not None and any(d in w for d in doubled) else [w]
            for w in words]


def select_run_cuts(
    bare_bpe: Tokenizer, model_tok: Tokenizer, words: list[str], weights: np.ndarray, gold: list[list[int]],
    settings: DistillSettings, never: frozenset[str] = frozenset(),
) -> tuple[dict[str, CharCuts], list[dict]]:
    """Cuts for each character of ``CHARS`` whose doubled piece BPE outputs and whose runs BPE cuts, kept when they
    fix enough fit word occurrences (``settings.split_rule_min_fixed``, any for ``settings.split_rule_chars``) and
    their regex, with the words kept whole, stays under ``MAX_PATTERN`` characters. The fit words and pure runs, alone or after a space, that the
    Unigram gets right without them and they would break are kept whole, up to ``MAX_KEPT_WHOLE``. Returns the kept
    cuts and, per character, what was found (the report's fields)."""
    vocab = bare_bpe.get_vocab()
    chars = [c for c in CHARS if c * 2 in vocab and c * 2 not in never]
    grams = piece_grams(vocab)
    plain_all = [e.ids for e in model_tok.encode_batch(words)]
    wrong = [i for i, (p, g) in enumerate(zip(plain_all, gold)) if p != g]
    kept: dict[str, CharCuts] = {}
    considered = []
    with_runs = words_with_runs(words, [])
    for char in tqdm(chars, desc="run cuts", unit="char", mininterval=2.0):
        always = char in settings.split_rule_chars
        if not may_earn_a_rule(char, always, words, weights, wrong, settings):
            considered.append({"char": char, "accepted": False, "reason": TOO_FEW_WRONG})
            continue
        cuts = CharCuts(run_cuts_of(bare_bpe, char, settings.max_run, grams))
        if not any(cuts.contexts.values()):
            considered.append({"char": char, "accepted": False, "reason": "BPE cuts no run of it"})
            continue
        size = len(run_cut_pattern({char: cuts}))
        if size > MAX_PATTERN:
            considered.append({"char": char, "accepted": False, "reason": f"a regex of {size} characters"})
            continue
        # the fit words and pure runs, alone or after a space, whether or not the fit words hold them
        idx = with_runs.get(char, [])
        listed = {words[i] for i in idx}  # a fit word that is a pure run counts once
        runs = [r for n in range(2, settings.max_run + 1) for lead in ("", "Ġ") if (r := lead + char * n) not in listed]
        texts = [words[i] for i in idx] + runs
        text_gold = [gold[i] for i in idx] + [e.ids for e in bare_bpe.encode_batch(runs)]
        plain = [plain_all[i] for i in idx] + [e.ids for e in model_tok.encode_batch(runs)]
        segs = cut_words({char: cuts}, texts)
        cut = encode_segments(model_tok, segs)
        broken = [k for k, (c, g, p) in enumerate(zip(cut, text_gold, plain)) if c != g and p == g]
        cuts.whole = [(texts[k], tuple(int(m) - 1 for m in np.cumsum([len(x) for x in segs[k][:-1]])))
                      for k in broken]
        size = len(run_cut_pattern({char: cuts})) if cuts.whole else size  # each word kept whole is written out
        if size > MAX_PATTERN:
            considered.append({"char": char, "accepted": False, "reason": f"a regex of {size} characters"})
            continue
        fixed = [k for k, (c, g, p) in enumerate(zip(cut[:len(idx)], text_gold, plain)) if c == g and p != g]
        fixed_occ = float(weights[[idx[k] for k in fixed]].sum()) if fixed else 0.0
        ok = earns_a_rule(always, fixed, fixed_occ, settings) and len(broken) <= MAX_KEPT_WHOLE
        considered.append({"char": char, "accepted": ok, "fixed_types": len(fixed), "fixed_occurrences": fixed_occ,
                           "kept_whole": len(broken)})
        if ok:
            kept[char] = cuts
    return kept, considered
