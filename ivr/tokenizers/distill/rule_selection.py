"""Which rules the fit keeps: a split rule per character when it fixes enough fit words and breaks none, and
word rules for the most frequent fit words that scores and split rules still leave wrong."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import numpy as np
from tokenizers import Tokenizer
from tqdm import tqdm

from ivr.tokenizers.bpe import bpe_merges
from ivr.tokenizers.byte_level import run_length, text_to_piece
from ivr.tokenizers.distill.pre_tokenizer import encode_segments, rules_pre_tokenizer, segment_words
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.split_rules import (
    WHITE_KINDS,
    is_one_character,
    is_punctuation,
    memo_split_rule,
    piece_text,
)
from ivr.tokenizers.distill.white_runs import white_leads
from ivr.tokenizers.distill.word_rules import word_segments


TOO_FEW_WRONG = "too few wrong fit words with a run of it"
# the fewest word rules checked at once where rules that fix nothing left places under the limit (each check
# builds a pre-tokenizer)
MIN_RULE_BATCH = 64


def earns_a_rule(always: bool, fixed: Sequence[int], fixed_occurrences: float, settings: DistillSettings) -> bool:
    """Whether a character's split rule or run cuts are worth their encoding cost: the character is one of
    ``split_rule_chars``, or its cuts fix fit words of at least ``split_rule_min_fixed`` weighted occurrences (and
    at least one word, so that 0 does not take every rule that fixes nothing)."""
    return always or bool(len(fixed)) and fixed_occurrences >= settings.split_rule_min_fixed


def may_earn_a_rule(char: str, always: bool, words: Sequence[str], weights: np.ndarray, wrong: Sequence[int],
                    settings: DistillSettings) -> bool:
    """``earns_a_rule`` at best, before asking BPE about every run length: the words still wrong that hold a run of
    ``char`` are all the cuts could fix."""
    candidates = [i for i in wrong if char * 2 in words[i]]
    return earns_a_rule(always, candidates, float(weights[candidates].sum()) if candidates else 0.0, settings)


def words_with_runs(words: Sequence[str], multi: Sequence[str]) -> dict[str, list[int]]:
    """For each byte-level character, and each of the pieces ``multi``, the indices of the words holding it twice
    in a row (one pass over the words instead of one per character)."""
    out: dict[str, list[int]] = {}
    for i, w in enumerate(words):
        for c in {a for a, b in zip(w, w[1:]) if a == b}:
            out.setdefault(c, []).append(i)
        for c in multi:
            if c * 2 in w:
                out.setdefault(c, []).append(i)
    return out


def select_split_rules(
    bare_bpe: Tokenizer, model_tok: Tokenizer, words: list[str], weights: np.ndarray, gold: list[list[int]],
    settings: DistillSettings, never: frozenset[str] = frozenset(),
) -> tuple[list[dict], list[dict]]:
    """Candidate rules for each character with a (c, c) merge, kept when they fix enough words and break none.

    Each rule costs encoding speed, so a rule must fix at least ``settings.split_rule_min_fixed`` weighted
    word occurrences of the fit words, unless its character is one of ``settings.split_rule_chars``. A merge
    whose piece BPE never outputs (``never``: ``00`` behind isolated digits) makes no run to cut.
    """
    merges = bpe_merges(bare_bpe)
    chars = sorted({a for a, b in merges if a == b and is_one_character(a) and a + b not in never})
    always = {text_to_piece(c) for c in settings.split_rule_chars}
    plain = [e.ids for e in model_tok.encode_batch(words)]
    accepted, considered = [], []
    wrong = [i for i, (p, g) in enumerate(zip(plain, gold)) if p != g]
    fingerprint = hashlib.sha256(bare_bpe.to_str().encode("utf-8")).hexdigest()
    with_runs = words_with_runs(words, [c for c in chars if len(c) > 1])
    for char in tqdm(chars, desc="split rules", unit="char", mininterval=2.0):
        # building a rule asks BPE about every run length and neighbour: skip characters with nothing to fix
        if not may_earn_a_rule(char, char in always, words, weights, wrong, settings):
            considered.append({"char": char, "accepted": False, "reason": TOO_FEW_WRONG})
            continue
        rule = memo_split_rule(bare_bpe, fingerprint, char, settings.max_run, merges)
        if rule is None:
            considered.append({"char": char, "accepted": False, "reason": "no rule"})
            continue
        idx = with_runs.get(char, [])
        if rule["class"] in ("letter", "digit"):  # these rules end the run with the word: only cut whole runs
            idx = [i for i in idx if run_length(words[i].lstrip("Ġ"), char)]
        cut = encode_segments(model_tok, segment_words([rule], [words[i] for i in idx]))
        fixed = [i for i, c in zip(idx, cut) if c == gold[i] and plain[i] != gold[i]]
        broken = sum(1 for i, c in zip(idx, cut) if c != gold[i] and plain[i] == gold[i])
        # pure runs, alone and after a space (or other white space before white space), whether or not the fit
        # words hold them: the rule's pieces (a space with part of the run, as " ─") must come out of the Unigram
        # as BPE's tokens
        white = rule["class"] in WHITE_KINDS
        leads = ["", "Ġ"] + ([text_to_piece(t) for t in white_leads(piece_text(char))] if white else [])
        runs = [lead + char * n for n in range(2, settings.max_run + 1) for lead in leads]
        run_gold = [e.ids for e in bare_bpe.encode_batch(runs)]
        run_plain = [e.ids for e in model_tok.encode_batch(runs)]
        run_cut = encode_segments(model_tok, segment_words([rule], runs))
        broken_runs = sum(1 for p, c, g in zip(run_plain, run_cut, run_gold) if c != g and p == g)
        fixed_occ = float(weights[fixed].sum()) if fixed else 0.0
        ok = earns_a_rule(char in always, fixed, fixed_occ, settings) and broken == broken_runs == 0
        considered.append({"char": char, "accepted": ok, "fixed_types": len(fixed), "fixed_occurrences": fixed_occ,
                           "broken_types": broken, "broken_runs": broken_runs})
        if ok:
            accepted.append(rule)
    return accepted, considered


def _wrong_before_contraction(
    model_tok: Tokenizer, rules: Sequence[dict], words: list[str], gold: list[list[int]],
) -> list[int]:
    """The punctuation words ending in a quote that get other ids than BPE's when the letters of a contraction
    follow them: GPT-2 keeps the quote in the word, but the split rules do not cut a quote run there (the cut
    quote would start a contraction), so the Unigram sees the whole word (``exec('''def``)."""
    if not any(r["class"] == "quote" for r in rules):
        return []
    idx = [i for i, w in enumerate(words) if w.endswith("'") and is_punctuation(w.lstrip("Ġ"))]
    if not idx:
        return []
    pre = rules_pre_tokenizer(rules)
    segments = []
    for i in idx:
        cut = [p for p, _ in pre.pre_tokenize_str(piece_text(words[i]) + "s")]
        segments.append(cut[:-1] if cut[-1] == "s" else [words[i]])
    return [i for i, ids in zip(idx, encode_segments(model_tok, segments)) if ids != gold[i]]


def select_word_rules(
    model_tok: Tokenizer, rules: Sequence[dict], words: list[str], weights: np.ndarray, gold: list[list[int]],
    pred: list[list[int]], limit: int, letter_ok: Callable[[str], bool] | None = None,
) -> list[list[str]]:
    """BPE's pieces of the fit words still wrong (``pred``, or before a contraction's letters), most frequent first,
    at most ``limit``: those a regex can cut (``word_rules.word_segments``), of the letter class only those
    ``letter_ok`` accepts (None: any), and whose every BPE token the Unigram gives back alone. A word whose rule
    would fix nothing takes no place under ``limit``: the next word does."""
    wrong = {i for i, (p, g) in enumerate(zip(pred, gold)) if p != g} | set(_wrong_before_contraction(
        model_tok, rules, words, gold))
    wrong = sorted(wrong, key=lambda i: (-weights[i], words[i]))
    candidates = []
    for i in wrong:
        tokens = [model_tok.id_to_token(t) for t in gold[i]]
        found = word_segments(tokens)
        if found is not None and (letter_ok is None or found[0] != "letter" or letter_ok(words[i])):
            candidates.append((tokens, gold[i]))
    kept: list[list[str]] = []
    start = 0
    while len(kept) < limit and start < len(candidates):
        # a rule whose tokens the Unigram splits further would fix nothing: keep only the rules that fix their
        # word (each rule cuts its own whole pre-token only, so batches are checked on their own)
        batch = candidates[start : start + max(limit - len(kept), MIN_RULE_BATCH)]
        start += len(batch)
        cut = encode_segments(model_tok, segment_words(rules, ["".join(t) for t, _ in batch], [t for t, _ in batch]))
        kept += [t for (t, ids), got in zip(batch, cut) if got == ids]
    return kept[:limit]
