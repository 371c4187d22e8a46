"""The distillation stage: fit a Unigram model with BPE's pieces at BPE's ids that segments as BPE does, save
it, verify the saved file, and fail under ``strict`` when the corpus or the ids are not matched exactly.

Method, in four steps:

1. Words (``words.py``): the corpus's distinct byte-level pre-tokens (weighted by count), every vocabulary
   piece on its own and simple variants of it (leading space toggled, capitalised), digit strings of up to
   four digits (the ten digits where the source puts every digit on its own), general words of other languages,
   plus an optional word list file. Labels are BPE's own segmentations of each word.
2. Initial scores (``scores.py``): merge ``rank`` weighs ``((rank + offset) / offset) ** -exponent`` (offset 1 by
   default) and a piece scores the sum of the weights in its merge tree, so early merges dominate as they do in
   BPE and every piece beats its own halves.
3. Cutting planes over the merge weights (``lp_fit.py``): every word the current Unigram Viterbi (the
   ``tokenizers`` one, on the scores as they will be written) gets wrong adds the row "BPE's segmentation beats
   this one by a margin" (a fraction of the smallest weight at stake, since late merges weigh ~1e-13); a linear
   program over all rows so far finds the smallest relative change of the merge weights that meets them (cheap
   on merges few words use, wordfreq's most frequent English words counted as users too; a fit word is given up
   where keeping it would cost more than ``slack_penalty`` times its count, a vocabulary piece never). Fitting
   merge weights rather than free piece scores keeps scores merge-tree sums, which is what carries the fit to
   words it never saw. Rounds are bounded in number and time; the round with the fewest weighted mismatches is
   kept, and a last phase-one program proves which of the words still wrong cannot be matched together with the
   others.
4. Written scores (``ivr.tokenizers.unigram``): the merge-tree sums themselves (0 for a single byte, up to about
   1.1; higher wins), not log-probabilities. Shifting them to look like ones (``score - c * len(piece)``, the
   same Viterbi in exact arithmetic) multiplies every sum's magnitude about tenfold, and the weights of late
   merges (~3e-16 at the default exponent) then drown in float rounding.

Ties (the same pieces in another order, mostly runs of one character) cannot be broken by any scores: HF
Unigram keeps the longest last piece while BPE puts its long chunks first. They are handled by split rules
derived from BPE's chunking of pure runs (``split_rules.py``), spliced into GPT-2's own pre-tokenizer regex
(``pre_tokenizer.py``; one regex pass per text, as for BPE), accepted per character only when they fix enough
fit words and break none (``rule_selection.py``). The most frequent fit words still wrong get word rules that
cut them at BPE's tokens (``word_rules.py``). The saved tokenizer runs that regex rewritten for byte-level text
behind the ``ByteLevel`` normalizer (``byte_level_regex``), which cuts the same pre-tokens for fewer
instructions than mapping each pre-token.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import tokenizers
from tokenizers import Encoding, Tokenizer

from ivr.collector import collector_paused
from ivr.general_english import most_frequent_english
from ivr.peak_memory import PeakRSS
from ivr.tokenizers.byte_level import byte_to_char, readable, text_to_piece
from ivr.tokenizers.distill.lp_fit import fit_scores
from ivr.tokenizers.distill.pre_tokenizer import encode_segments, segment_words, with_rules
from ivr.tokenizers.distill.rule_selection import select_split_rules, select_word_rules
from ivr.tokenizers.distill.run_cuts import cut_words, run_cut_split, select_run_cuts
from ivr.tokenizers.distill.settings import EXAMPLES, DistillSettings, FitResult
from ivr.tokenizers.distill.source_bpe import SourceBPE, source_bpe
from ivr.tokenizers.distill.words import MAX_COUNTED_WORDS, fit_words, pre_token_counts, read_word_list
from ivr.tokenizers.gpt2_pre_tokens import crosses_digit
from ivr.tokenizers.io import load_tokenizer, save_tokenizer_dir
from ivr.tokenizers.special import SpecialTokens
from ivr.tokenizers.unigram import bare_model, unigram_tokenizer
from ivr.tokenizers.verify import DistillationMismatch, VerifySettings, verify_tokenizer

log = logging.getLogger(__name__)


def fit_distilled(
    bpe: Tokenizer, corpus_counts: Counter, settings: DistillSettings, source: SourceBPE | None = None
) -> tuple[Tokenizer, FitResult]:
    """Fit scores and split rules on ``corpus_counts`` (byte-level pre-token counts); build the tokenizer: the
    fitted Unigram behind the rules, with ``bpe``'s added tokens, decoder and post-processor. ``source`` is
    ``source_bpe(bpe)`` where the caller has it already."""
    source = source or source_bpe(bpe)
    if not source.rules:
        log.info("the split and word rules do not fit this source (a regex other than GPT-2's, ignore_merges, or an "
                 "added token that strips spaces behind a normalizer): the distilled tokenizer keeps its "
                 "pre-tokenizer as it is, followed by run cuts, without word rules")
    pieces = source.pieces
    bare_bpe = bare_model(bpe)
    # behind another pre-tokenizer or a normalizer, a piece or variant may never reach the model whole (" 42" in
    # Llama-3's regex, "The" behind lower-casing)
    listed = read_word_list(settings.word_list, bpe) if settings.word_list else Counter()
    weighted = fit_words(source.outputs, corpus_counts, settings, bpe, source.isolated_digits,
                         not source.rules or bpe.normalizer is not None, listed)
    # the fit learns from the most frequent corpus words only (corpus_sample): the others may get other ids
    left_out = sum(1 for w in corpus_counts if w not in weighted)
    if left_out:
        log.info("the fit leaves out %d of the corpus's %d distinct pre-tokens, the least frequent; they may get other "
                 "ids than BPE's", left_out, len(corpus_counts))
    vocab = set(source.outputs)
    words = sorted(weighted)  # sorted: the fit must not depend on the corpus's iteration order
    weights = np.array([weighted[w] for w in words], dtype=np.float64)
    gold = [e.ids for e in bare_bpe.encode_batch(words)]
    general = [text_to_piece(lead + w) for w, _ in most_frequent_english(settings.general_usage_words)
               for lead in ("", " ")]
    if source.isolated_digits:  # "00th" is no word behind isolated digits
        general = [w for w in general if not crosses_digit(w)]
    with collector_paused():
        score_cpu = time.process_time()  # every thread's: the solver's own may run several
        scores, stats, given_up = fit_scores(pieces, words, weights, gold, settings,
                                             [e.ids for e in bare_bpe.encode_batch(general)],
                                             np.array([w in vocab for w in words]),
                                             merges=source.merges, never=sorted(source.never),
                                             whole_pieces=source.ignore_merges)
        score_cpu = time.process_time() - score_cpu
        model_tok = unigram_tokenizer(pieces, scores, source.never)
        start = time.perf_counter()
        never = frozenset(pieces[i] for i in source.never)
        rules, runs, considered = [], {}, []
        if settings.split_rules and source.rules:
            rules, considered = select_split_rules(bare_bpe, model_tok, words, weights, gold, settings, never)
        elif settings.split_rules:
            runs, considered = select_run_cuts(bare_bpe, model_tok, words, weights, gold, settings, never)
        split_rule_seconds = time.perf_counter() - start
    start = time.perf_counter()
    pred = encode_segments(model_tok, segment_words(rules, words) if source.rules else cut_words(runs, words))
    letter_ok = None
    if settings.letter_word_rules == "corpus":
        letter_ok = lambda w: w in corpus_counts or w in listed  # noqa: E731  (no copy of the corpus's words)
    word_rules = select_word_rules(model_tok, rules, words, weights, gold, pred,
                                   settings.word_rules if source.rules else 0, letter_ok)
    if word_rules:
        pred = encode_segments(model_tok, segment_words(rules, words, word_rules))
    word_rule_seconds = time.perf_counter() - start  # not the final tokenizer's build (its Unicode classes: ~1 s)
    final = with_rules(model_tok, rules, word_rules, source=bpe, isolated_digits=source.isolated_digits,
                       keep_pre_tokenizer=not source.rules, run_cuts=run_cut_split(runs))
    bad = [i for i, (p, g) in enumerate(zip(pred, gold)) if p != g]
    stats.update(
        fit_word_types=len(words),
        corpus_word_types=len(corpus_counts),
        corpus_word_types_left_out=left_out,
        fit_mismatched_types=len(bad),
        fit_mismatched_tie_types=sum(1 for i in bad if sorted(pred[i]) == sorted(gold[i])),
        # the characters as text (a newline, not its byte-level "Ċ"), as the other examples are
        split_rules_considered=[{**rule, "char": readable(rule["char"])} for rule in considered],
        split_rule_kind="split rules" if source.rules else "run cuts (behind the source's own pre-tokenizer)",
        word_rules=len(word_rules),
        score_fit_cpu_seconds=round(score_cpu, 2),
        split_rule_seconds=round(split_rule_seconds, 2),
        word_rule_seconds=round(word_rule_seconds, 2),
        word_rules_examples=[[readable(p) for p in pieces] for pieces in word_rules[:EXAMPLES]],
    )
    # the proof is about scores alone: report the words the split and word rules do not fix either
    still_wrong = {words[i] for i in bad}
    unsatisfiable = [w for w in given_up if w in still_wrong]
    stats.update(
        proven_unsatisfiable_types=len(unsatisfiable),
        proven_unsatisfiable_cut_by_rules=len(given_up) - len(unsatisfiable),
        proven_unsatisfiable_examples=[readable(w) for w in unsatisfiable[:EXAMPLES]],
    )
    # a kept pre-tokenizer's run cuts, per character (their regex is in tokenizer.json): how many contexts BPE was
    # asked about and the words they keep whole
    kept_runs = [{"char": c, "contexts": len(cuts.contexts), "kept_whole": [w for w, _ in cuts.whole]}
                 for c, cuts in sorted(runs.items())]
    return final, FitResult(scores=[float(s) for s in scores], split_rules=rules, word_rules=word_rules,
                            run_cuts=kept_runs, stats=stats)


def distill_tokenizer(
    bpe: Tokenizer,
    train_texts: Iterable[str],
    heldout_texts: Iterable[str],
    settings: DistillSettings,
    out_dir: Path,
    report_md: Path,
    report_json: Path,
    extra_eval_texts: dict[str, list[str]] | None = None,
    verify_settings: VerifySettings | None = None,
    special: SpecialTokens | None = None,
    bpe_ids: dict[str, Iterable[Sequence[int]]] | None = None,
    on_encoded: dict[str, Callable[[str, Encoding], None]] | None = None,
    inputs: dict | None = None,
) -> dict:
    """Fit the distilled Unigram tokenizer on ``train_texts``, save it to ``out_dir``, verify it and report.

    ``special`` are ``bpe``'s special tokens (``read_special_tokens`` of its directory), which the distilled
    tokenizer's config names alike; without them, ``bpe`` must have GPT-2's layout (``special_tokens_of``).
    ``bpe_ids``: BPE's ids of the texts of ``"corpus"`` (``train_texts``) and ``"heldout"``, in order, where
    known (``ivr.analysis.frequency.SplitIdSequences``): verification then compares against them instead of encoding again.
    ``on_encoded``: per set (``"corpus"``, ``"heldout"``), what is called with the saved tokenizer's encoding of each
    of its texts, in order, as verification makes it (``ivr.analysis.pretoken_table`` records them).
    ``inputs``: what the reports record as the source tokenizer and texts (``verify_tokenizer``).
    Returns the report summary. With ``settings.strict`` raises ``DistillationMismatch`` (after writing
    the reports) when any word occurrence or document of ``train_texts`` gets ids other than BPE's, or the id map,
    the added tokens or a decode differ.
    """
    verify_settings = verify_settings or VerifySettings()
    source = source_bpe(bpe)  # an unsupported tokenizer fails here, before any work
    # read twice (the fit, then verification): a re-iterable such as ``ivr.cleaned_corpus.SplitTexts`` streams from disk
    # each time; only a one-shot iterator is held in memory
    train_texts, heldout_texts = (list(t) if iter(t) is t else t for t in (train_texts, heldout_texts))
    with PeakRSS() as peak:
        start = time.perf_counter()
        counts, dropped = pre_token_counts(bpe, train_texts, "pre-tokenizing the fit corpus", MAX_COUNTED_WORDS)
        pre_tokenize_seconds = time.perf_counter() - start
        tok, fit = fit_distilled(bpe, counts, settings, source)
        fit.stats["corpus_words_dropped"] = dropped
        fit_seconds = time.perf_counter() - start

    # strict decides only whether a mismatch fails the stage, not what is fitted
    fit_settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(settings).items() if k != "strict"}
    metadata = {
        "stage": "distill",
        "method": "unigram scores by cutting planes (linear programs) on BPE segmentations",
        # the fit's settings; verification's are the report's, which `ivr verify-tokenizer` writes again
        "settings": fit_settings,
        "scores": "sum of the fitted weights of the merges that build each piece (higher wins); not log-probabilities",
        "pre_tokenizer": ("the source's normalizer, then " if bpe.normalizer is not None else "")
                         + ("ByteLevel normalizer (the whole text to byte-level characters at once), then "
                            + ("a Split that puts every digit on its own, as the source's Digits step does, then "
                               if source.isolated_digits else "")
                            + "one Split by GPT-2's regex (the source's) with the split and word rules, rewritten for "
                              "byte-level characters" if source.rules else
                            "the source's own pre-tokenizer, as it is (no split or word rules: they are written for "
                            "GPT-2's regex and BPE's merge order)"
                            + (", then a Split of the run cuts (run_cuts)" if fit.run_cuts else ""))
                         + (", then a Split that removes the bytes the vocabulary lacks, as BPE drops them"
                            if any(bpe.token_to_id(c) is None for c in byte_to_char().values()) else ""),
        # the rewrite writes out the Unicode classes of this library's regex engine
        "tokenizers_version": tokenizers.__version__,
        "split_rules": fit.split_rules,
        "run_cuts": fit.run_cuts,
        "word_rules": fit.word_rules,
        # the whole record, which `ivr verify-tokenizer` writes into the report again
        "fit": {**fit.stats, "pre_tokenize_seconds": round(pre_tokenize_seconds, 2), "fit_seconds": round(fit_seconds, 2),
                "peak_rss_mb": peak.mb, "peak_rss_scope": peak.scope},
    }
    save_tokenizer_dir(tok, out_dir, metadata, special)
    eval_sets = {"corpus": train_texts, "heldout": heldout_texts, **(extra_eval_texts or {})}
    summary = verify_tokenizer(
        # the file as users load it
        load_tokenizer(out_dir), bpe, eval_sets, report_md, report_json, settings=verify_settings,
        fit_info=metadata["fit"],
        fit_settings=fit_settings,
        bpe_ids=bpe_ids,
        on_encoded=on_encoded,
        inputs=inputs,
        # the fit's count is the corpus's words unless it dropped some (both cut through the source's own pipeline)
        word_counts=None if dropped else {"corpus": counts},
    )
    if settings.strict:
        check_strict(summary, report_md)
    return summary


def check_strict(summary: dict, report_md: Path) -> None:
    """``data.distill.strict``: raise ``DistillationMismatch`` naming what differs from BPE in a verification
    ``summary`` (the corpus's words and documents, the id map, the added tokens, decoding), where anything does."""
    corpus, ids = summary["sets"]["corpus"], summary["ids"]
    problems = [
        f"{corpus['mismatched_occurrences']} corpus word occurrences ({corpus['mismatched_types']} types) differ "
        "from BPE" if corpus["mismatched_occurrences"] else "",
        f"{corpus['documents_differing_between_words']} corpus documents get other ids than BPE's though each of "
        "their words matches" if corpus["documents_differing_between_words"] else "",
        "the id→piece map differs from BPE's" if not ids["id_to_token_identical"] else "",
        f"{ids['added_token_mismatches']} added tokens differ (ids {ids['added_token_mismatch_examples']}"
        f"{' …' if ids['added_token_mismatches'] > 20 else ''})" if ids["added_token_mismatches"] else "",
        f"{ids['single_id_decode_mismatches'] + ids['random_sequence_decode_mismatches']} ids or id sequences "
        "decode otherwise" if ids["single_id_decode_mismatches"] or ids["random_sequence_decode_mismatches"] else "",
    ]
    problems = [p for p in problems if p]
    if problems:
        raise DistillationMismatch(f"strict distillation: {'; '.join(problems)}; see {report_md}")
