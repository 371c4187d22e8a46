"""Choose which ids to free and which domain strings take them over (In-place Vocabulary Reassignment).

New tokens are strings made of two or more consecutive distilled tokens inside one pre-token, so the
pre-tokenizer never changes. They are picked greedily by the tokens they save on the training texts,
recomputed against what is already picked, with each document's uses of a pre-token capped so strings piled
up in a few files (one module's private names) rank below strings every file uses. Freed ids are, in this
order: ids the original BPE can never produce, ids general text (a word-frequency prior, reference texts)
never uses, then the rest, each group by ascending domain use. An optional budget refuses replacements that
make general text longer. A part of the training texts is held out of a second, identical ranking to
measure how far the savings carry to documents the ranking never saw (the savings curve).
"""

from __future__ import annotations

import heapq
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer
from tqdm.auto import tqdm

from ivr.analysis.domain_words import words_made_longer
from ivr.analysis.general_use import code_reference, general_prior, general_text, lengthening, word_like_ids
from ivr.analysis.selection_log import selection_log_text
from ivr.markdown_text import code
from ivr.analysis.savings_curve import SavingsCurve, savings_curve, write_curve_plot
from ivr.analysis.select_settings import SelectSettings
from ivr.analysis.spans import (
    Greedy,
    PretokenCounts,
    PretokenStats,
    Spans,
    count_pretokens,
    pretoken_stats,
    replay,
)
from ivr.atomic import write_text
from ivr.tokenizers.byte_level import piece_to_bytes, readable, single_byte_pieces, text_to_piece
from ivr.tokenizers.candidates import Replacement, write_candidates
from ivr.tokenizers.io import pre_tokens
from ivr.tokenizers.pieces import single_pretoken, vocab_pieces
from ivr.tokenizers.remap import RemapSettings, build_remapped, rules_not_encoding_to_own_id
from ivr.tokenizers.remap_rules import RemapRule
from ivr.user_text import read_user_lines


@dataclass
class Selection:
    replacements: list[Replacement]
    summary: dict
    curve: SavingsCurve | None = None


# rounds of refilling the places of strings that would not encode to their own id or would lengthen other words
REFILL_ROUNDS = 6


class ForcedTokensError(ValueError):
    pass


def read_forced_tokens(path: str | Path, tokenizer: Tokenizer) -> list[str]:
    """Forced terms as byte-level pieces; a term the pre-tokenizer would split is an error naming its line."""
    path = Path(path)
    if not path.is_file():
        raise ForcedTokensError(f"{path}: forced tokens file not found")
    terms: list[str] = []
    for lineno, line in enumerate(read_user_lines(path, "data.select.forced_tokens_path"), 1):
        if not line.strip() or line.startswith("#"):  # verbatim: " #[" is a term
            continue
        term = line
        if line.startswith('"'):
            try:
                term = json.loads(line)
            except json.JSONDecodeError as err:
                raise ForcedTokensError(f"{path}:{lineno}: not a valid JSON string: {err}") from None
            if not isinstance(term, str):
                raise ForcedTokensError(f"{path}:{lineno}: not a JSON string")
            try:
                term.encode("utf-8")
            except UnicodeEncodeError:
                raise ForcedTokensError(f"{path}:{lineno}: {line.strip()} holds a lone surrogate, which is no "
                                        "text") from None
            if not term:
                raise ForcedTokensError(f"{path}:{lineno}: {line.strip()} is an empty term; drop the line")
        if not single_pretoken(tokenizer, term):
            parts = [readable(p) for p in pre_tokens(tokenizer, term)]
            raise ForcedTokensError(f"{path}:{lineno}: {term!r} is split by the pre-tokenizer into {parts}")
        terms.append(text_to_piece(term))
    return terms


class _Ranker:
    """Ranked new strings of one set of training texts (lazy greedy by marginal weighted saving)."""

    def __init__(self, distilled: Tokenizer, stats: PretokenStats, pieces: list[str], settings: SelectSettings, forced: list[str]):
        self.stats = stats
        vocab = set(pieces)
        spans = Spans(stats, pieces)
        counted = spans.count(settings.max_token_chars)
        counts, self.span_count_floor = counted.counts, counted.floor
        self.excluded = {"below_min_count": sum(1 for c in counts.values() if c < settings.min_count)}
        ranked = {s for s, c in counts.items() if c >= settings.min_count}
        self.excluded["already_in_vocabulary"] = len(ranked & vocab)
        ranked -= vocab
        # the distilled pre-tokenizer's run rules depend on context: a string that is one pre-token inside a
        # word may be cut when it stands alone, and remap (rightly) refuses such a piece
        split_alone = {s for s in ranked if not single_pretoken(distilled, piece_to_bytes(s).decode("utf-8"))}
        self.excluded["split_when_alone"] = len(split_alone)
        self.ranked = ranked - split_alone
        # the bounds of the ranked strings alone: the count's dicts of every string go (text of ever new strings
        # holds millions of them)
        self.bound = {s: counted.bound[s] for s in self.ranked}
        del counted, counts
        self.forced = forced
        self.occ = spans.index(self.ranked | set(forced), max([settings.max_token_chars] + [len(readable(f)) for f in forced]))

    def pick(self, n: int, refused: Collection[str] = ()) -> list[tuple[str, str]]:
        """Up to ``n`` (string, reason): the forced strings, then the best ranked ones but ``refused``."""
        greedy = Greedy(self.stats, self.occ, by_weight=True)
        picked = []
        for f in self.forced:
            if f in refused:
                continue
            greedy.add(f)
            picked.append((f, "forced"))
        heap = [(-self.bound[s], s) for s in self.ranked if s not in self.forced and s not in refused]
        heapq.heapify(heap)
        fresh: dict[str, int] = {}
        self.saving_nothing = 0
        with tqdm(total=n, desc="select", unit="token", leave=False) as bar:
            while heap and len(picked) < n:
                neg, s = heapq.heappop(heap)
                if fresh.get(s) == len(picked):
                    if -neg <= 0:  # the best gain is none: every string left is inside the ones picked
                        self.saving_nothing = len(heap) + 1
                        break
                    greedy.add(s)
                    picked.append((s, "ranked"))
                    bar.update(1)
                    continue
                fresh[s] = len(picked)
                heapq.heappush(heap, (-greedy.gain(s), s))
            bar.total = bar.n  # no more strings that save: a bar stopped short would look stalled
            bar.refresh()
        return picked


# a piece no word list can judge (``-->``, ``SOURCE``, ``412``) is taken to be used about once per million tokens
# of general text: after words that rare, before the word list's common words
UNJUDGED_RATE = 1.0


def _free_order(stats: PretokenStats, pieces: list[str], settings: SelectSettings, never: set[int],
                unreachable: Collection[int], prior) -> list[int]:
    """Ids that may be freed, best first: unreachable, unused by general text, the rest; then by domain use and
    estimated general use: the prior's for word-like pieces, at least ``UNJUDGED_RATE`` for the others."""
    unreachable = set(unreachable)
    eligible = [i for i in range(len(pieces)) if i not in never and stats.id_counts[i] < settings.min_count]
    words = word_like_ids(tuple(pieces))
    use = {i: prior[i] if i in words else max(prior[i], UNJUDGED_RATE) for i in eligible}
    eligible.sort(key=lambda i: (i not in unreachable, use[i] > 0, int(stats.id_counts[i]), use[i], -i))
    return eligible


def _rules(pairs: Sequence[tuple[str, int]], pieces: list[str], distilled: Tokenizer) -> list[RemapRule]:
    return [RemapRule(fid, pieces[fid], s, tuple(t.id for t in distilled.model.tokenize(s))) for s, fid in pairs]


def select_replacements(
    distilled: Tokenizer,
    train_texts: Iterable[str],
    settings: SelectSettings,
    candidates_csv: str | Path,
    selection_log: str | Path,
    curve_png: str | Path | None = None,
    unreachable: Collection[int] = (),
    counted: tuple[PretokenCounts, PretokenCounts | None] | None = None,
    new_piece_bonus: float = RemapSettings.new_piece_bonus,
    corpus_sources: Collection[Path] = (),
    special_ids: Collection[int] = (),
    inputs: Mapping[str, object] | None = None,
) -> Selection:
    """Pick new tokens and the ids they take; write ``replacement_candidates.csv``, ``selection_log.md`` and,
    with ``curve_png``, the savings curve's plot. ``unreachable``: ids the original BPE never produces
    (``ivr.tokenizers.reachability``), freed first. ``counted``: ``train_texts``' pre-token counts, all and the
    validation part, where already known (``ivr.analysis.pretoken_table``); otherwise they are counted here.
    ``new_piece_bonus``: ``data.remap.new_piece_bonus``, so that the checks build the remapped tokenizer as
    remap will. ``corpus_sources``: the domain corpus's files, left out of the general code reference.
    ``special_ids``: ids the tokenizer's config names (bos, eos, pad, unk), never freed like its added tokens."""
    pieces = vocab_pieces(distilled)
    vocab = set(pieces)
    everything, validation = counted or count_pretokens(distilled, train_texts, settings.per_document_cap,
                                                        settings.validation_fraction)
    cache: dict[str, list[int]] = {}
    stats = pretoken_stats(distilled, everything, segment_cache=cache)
    if stats.total_tokens == 0:
        raise ValueError("no training text to select replacements from")
    forced = read_forced_tokens(settings.forced_tokens_path, distilled) if settings.forced_tokens_path else []
    forced_notes: list[str] = []
    forced_ok: list[str] = []
    for f in forced:
        if f in vocab:
            forced_notes.append(f"{code(readable(f))} is already a token (id {pieces.index(f)}); nothing to add, "
                                f"and its id is never freed")
        elif f in forced_ok:
            forced_notes.append(f"{code(readable(f))} is listed twice; kept once")
        else:
            forced_ok.append(f)
    if len(forced_ok) > settings.num_replacements:
        raise ForcedTokensError(f"{settings.forced_tokens_path}: {len(forced_ok)} new terms to force, more than "
                                f"data.select.num_replacements ({settings.num_replacements}); raise it or shorten "
                                f"the file")

    general = general_text(settings.general_prior_words, settings.general_reference_paths,
                           code_reference(settings.general_code_mb, corpus_sources))
    prior = general_prior(distilled, general)
    special = set(distilled.get_added_tokens_decoder()) | set(special_ids)
    # a forced term that is a token already must stay one
    named = settings.protected(pieces)
    kept_forced = {pieces.index(f) for f in forced if f in vocab} - named
    protected = named | kept_forced
    bytes_ = single_byte_pieces()
    byte_ids = {i for i, p in enumerate(pieces) if p in bytes_}
    never = special | protected | byte_ids
    order = _free_order(stats, pieces, settings, never, unreachable, prior)

    if len(forced_ok) > len(order):
        raise ForcedTokensError(f"{settings.forced_tokens_path}: {len(forced_ok)} new terms to force, but only "
                                f"{len(order)} ids may be freed (special, protected and single-byte ids never are)")
    ranker = _Ranker(distilled, stats, pieces, settings, forced_ok)
    n = min(settings.num_replacements, len(order))
    refused_strings: set[str] = set()
    refused_ids: set[int] = set()
    # strings that would not encode to their own id once remapped: another segmentation of them, new pieces
    # included, scores as high (two new pieces " HALF" and "HALF" tie but for the bonus, which "HALF" wins)
    not_own: set[str] = set()
    # strings whose piece would cut other words of the training split into more tokens (`parser` as `pars`·`er`),
    # with the tokens they would add
    lengthening_domain: dict[str, int] = {}

    def built(pairs: list[tuple[str, int]]) -> tuple[Tokenizer, set[str]]:
        """The remapped tokenizer of ``pairs`` and the strings it breaks: those off their own id, or where there
        are none, those whose piece lengthens other training words (a string off its own id lengthens the words it
        lies in, so that check waits for its refill)."""
        rules = _rules(pairs, pieces, distilled)
        remapped = build_remapped(distilled, rules, new_piece_bonus)
        failing = {r.new_token for r in rules_not_encoding_to_own_id(remapped, rules)}
        not_own.update(failing)
        if not failing:
            longer = words_made_longer(stats, ranker.occ, remapped, {fid: s for s, fid in pairs}, exempt=forced_ok)
            lengthening_domain.update(longer)
            failing = set(longer)
        return remapped, failing

    refill_rounds = unfilled = 0
    checks = []
    budget_met: bool | None = None  # None: no budget, or nothing to check it on
    while True:
        picked = ranker.pick(n, refused_strings | not_own | set(lengthening_domain))
        free = [i for i in order if i not in refused_ids]
        pairs = [(s, fid) for (s, _), fid in zip(picked, free)]
        if not pairs:
            budget_met = True if checks else None  # nothing left reassigned makes anything longer
            break
        remapped, failing = built(pairs)
        unfilled = 0  # the ids this round leaves unused: a round after a budget refusal fills its places anew
        if failing and refill_rounds < REFILL_ROUNDS:
            refill_rounds += 1
            continue  # fill their places with the next candidates
        while failing and pairs:  # still some after the last refill: leave their ids unused, check what is left
            unfilled += len(failing)
            kept = [k for k, (s, _) in enumerate(pairs) if s not in failing]
            picked, pairs = [picked[k] for k in kept], [pairs[k] for k in kept]
            remapped, failing = built(pairs) if pairs else (remapped, set())
        if settings.max_general_longer_pct is None or not pairs or not (general.words or general.lines):
            break
        check = lengthening(distilled, remapped, general, [fid for _, fid in pairs])
        checks.append(check)
        excess = max(check.word_share_pct, check.line_share_pct) - settings.max_general_longer_pct
        budget_met = excess <= 0
        if excess <= 0 or len(checks) > 8:
            break
        by_id = {fid: s for s, fid in pairs}
        removed, refused_before = 0.0, len(refused_ids)
        for fid, share in sorted(check.blame.items(), key=lambda kv: -kv[1]):
            if removed >= excess:
                break
            if by_id[fid] not in forced_ok:
                refused_strings.add(by_id[fid])
                refused_ids.add(fid)
                removed += share
            elif check.freed_blame.get(fid, 0.0) > 0:
                # a forced string is never refused: the id whose freed piece general text uses is, and the
                # string takes the next one
                refused_ids.add(fid)
                removed += check.freed_blame[fid]
        if len(refused_ids) == refused_before:
            break  # what is over the budget is the forced strings' own pieces

    forced_notes += [f"{code(readable(f))} would not encode to its own id after remapping; left out"
                     for f in forced_ok if f in not_own]
    placed = {s for s, _ in pairs}
    forced_notes += [f"{code(readable(f))} left out: the budget refused every id it could take"
                     for f in forced_ok if f not in placed and f not in not_own]
    counted = Greedy(stats, ranker.occ)  # every use counts in the estimate, whatever the ranking's cap
    replacements = []
    for rank, ((s, reason), (_, fid)) in enumerate(zip(picked, pairs), 1):
        g = counted.gain(s)
        counted.add(s)
        replacements.append(
            Replacement(
                rank=rank,
                new_text=readable(s),
                new_token=s,
                domain_count=counted.used_count(s),
                gpt2_ids=[t.id for t in distilled.model.tokenize(s)],
                estimated_saving=int(g),
                estimated_saving_pct=100.0 * g / stats.total_tokens,
                freed_id=fid,
                freed_token=pieces[fid],
                freed_text=readable(pieces[fid]),
                freed_domain_count=int(stats.id_counts[fid]),
                freed_general_per_million=float(prior[fid]),
                reason=reason,
            )
        )
    write_candidates(candidates_csv, replacements)
    curve, no_curve = _validation_curve(distilled, everything, validation, cache, pieces, settings, forced_ok, never,
                                        unreachable, prior, n, not_own | set(lengthening_domain))
    if curve_png is not None:  # an empty plot says so, and the stage's listed output exists
        write_curve_plot(curve or SavingsCurve([], [], []), curve_png)

    saving = sum(r.estimated_saving for r in replacements)
    cost = sum(r.freed_domain_count for r in replacements)
    excluded = dict(ranker.excluded)
    excluded.update(
        # each id under its first reason only (single byte, special, protected, forced), so the reasons add up
        single_byte=len(byte_ids),
        special=len(special - byte_ids),
        protected=len(named - special - byte_ids),
        forced_kept=len(kept_forced - special - byte_ids),
        # beyond the ids counted above, which are never freed whatever their use
        domain_count_at_least_min=sum(1 for i, c in enumerate(stats.id_counts)
                                      if c >= settings.min_count and i not in never),
    )
    summary = {
        # what the selection was made from (the tokenizers and corpus, by hash), for the log
        **({"inputs": {**inputs, "data.remap.new_piece_bonus": new_piece_bonus}} if inputs else {}),
        "documents": stats.documents,
        # the documents the savings curve left out (one at least where the fraction's hash leaves out none)
        "validation_documents": validation.documents if validation is not None else None,
        "train_bytes": stats.total_bytes,
        "train_tokens": stats.total_tokens,
        "distinct_pretokens": len(everything.counts),
        "pretokens_dropped": everything.dropped_pretokens,
        "candidate_strings": len(ranker.ranked),
        # 0: every span string counted; otherwise strings used no more often than this may be missing
        "span_count_floor": ranker.span_count_floor,
        # what the last pick left because they save nothing beside the strings picked before them
        "saving_nothing": ranker.saving_nothing,
        "forced": sum(1 for r in replacements if r.reason == "forced"),
        "reassigned": len(replacements),
        "estimated_saving_tokens": saving,
        "freed_tokens_domain_uses": cost,
        "expected_saving_pct": 100.0 * (saving - cost) / stats.total_tokens,
        "unreachable_ids": len(set(unreachable)),
        "unreachable_freed": len(set(unreachable) & {r.freed_id for r in replacements}),
        "freed_unused_by_general_text": sum(1 for r in replacements if r.freed_general_per_million == 0),
        "refused_for_general_text": len(refused_strings),
        # forced strings keep their place and take the next id: only the id is refused
        "ids_refused_for_forced_terms": len(refused_ids) - len(refused_strings),
        "general_budget_met": budget_met,
        # None (shown "n/a") where there is no general text of that kind to measure
        "general_longer": [{"words_pct": c.word_share_pct if general.words else None,
                            "lines_pct": c.line_share_pct if general.lines else None} for c in checks],
        "not_encoding_to_own_id": sorted(readable(s) for s in not_own),
        # left out after the last refill round: their ids keep the old tokens
        "unfilled_after_refills": unfilled,
        "lengthening_training_words": {readable(s): n for s, n in sorted(lengthening_domain.items(),
                                                                         key=lambda kv: (-kv[1], kv[0]))},
        "excluded": excluded,
        "no_curve_because": no_curve,
    }
    if curve is not None:
        summary.update(
            validation_fitted_saving_pct=curve.fitted_pct[-1],
            validation_heldout_saving_pct=curve.heldout_pct[-1],
            validation_gap_pct=curve.fitted_pct[-1] - curve.heldout_pct[-1],
        )
    write_text(selection_log, selection_log_text(settings, summary, replacements, forced_notes, curve, curve_png))
    return Selection(replacements, summary, curve)


def _validation_curve(distilled, everything, validation, cache, pieces, settings, forced, never, unreachable, prior, n,
                      not_own) -> tuple[SavingsCurve | None, str | None]:
    """Rank on the training texts but a validation part, then measure that ranking on the part; without a curve
    (no saving to show), why."""
    if validation is None:
        return None, "too little training text to leave a part out"
    fit = pretoken_stats(distilled, everything - validation, segment_cache=cache)
    val = pretoken_stats(distilled, validation, segment_cache=cache)
    if not (fit.total_tokens and val.total_tokens):
        return None, f"the {'left-out' if not val.total_tokens else 'ranked'} part has no tokens"
    strings = [s for s, _ in _Ranker(distilled, fit, pieces, settings, forced).pick(n, not_own)]
    freed = _free_order(fit, pieces, settings, never, unreachable, prior)[: len(strings)]
    strings = strings[: len(freed)]
    if not strings:
        return None, "the ranking without the left-out part selected nothing"
    fit_net = [g - int(fit.id_counts[f]) for g, f in zip(replay(fit, pieces, strings), freed)]
    val_net = [g - int(val.id_counts[f]) for g, f in zip(replay(val, pieces, strings), freed)]
    return savings_curve(fit_net, fit.total_tokens, val_net, val.total_tokens), None
