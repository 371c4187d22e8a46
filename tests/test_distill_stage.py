"""The distillation stage: a pure Unigram at GPT-2's ids that gives BPE's ids, saved, verified, deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Tokenizer

from ivr.tokenizers.byte_level import piece_to_bytes
from ivr.tokenizers.distill import split_rules
from ivr.tokenizers.distill.pre_tokenizer import with_rules
from ivr.tokenizers.distill.settings import DistillSettings
from ivr.tokenizers.distill.stage import distill_tokenizer, fit_distilled
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.unigram import bare_model
from ivr.tokenizers.verify import DistillationMismatch, VerifySettings, classify, compare_ids, compare_texts
from tests.distill_fixtures import PROSE, corpus, fast_settings
from tests.standin import gpt2_merges


@pytest.fixture(scope="module")
def fitted(bpe):
    counts, _ = pre_token_counts(bpe, corpus())
    return fit_distilled(bpe, counts, fast_settings(split_rule_chars=DistillSettings.split_rule_chars))


def test_model_is_pure_unigram_with_gpt2_ids(fitted, bpe):
    tok, _ = fitted
    spec = json.loads(tok.to_str())
    assert spec["model"]["type"] == "Unigram" and "merges" not in spec["model"]
    assert spec["model"]["byte_fallback"] is False
    # the text is mapped to byte-level characters once, then cut by one regex written for that alphabet
    assert spec["normalizer"]["type"] == "ByteLevel" and spec["pre_tokenizer"]["type"] == "Split"
    # scores are merge-tree sums: every piece outscores its two halves together, but by less than the units in
    # the last place the scores move to load as written (late merges weigh about that), single bytes score 0
    score = {piece: value for piece, value in spec["model"]["vocab"]}
    assert all(score[a + b] - score[a] - score[b] > -8 * np.spacing(score[a + b]) for a, b in gpt2_merges())
    assert sum(score[a + b] > score[a] + score[b] for a, b in gpt2_merges()) > 0.999 * len(gpt2_merges())
    assert min(v for p, v in score.items() if p != "<|endoftext|>") == 0.0 and score["<|endoftext|>"] < 0
    assert tok.token_to_id("<|endoftext|>") == 50256
    ids = compare_ids(tok, bpe, random_sequences=300)
    assert ids["vocab_size"] == 50257
    assert ids["id_to_token_identical"]
    assert ids["single_id_decode_mismatches"] == 0
    assert ids["random_sequence_decode_mismatches"] == 0


def test_offsets_are_bpes_through_the_byte_level_normalizer(fitted, bpe):
    # the normalizer maps the whole text to byte-level characters; the offsets still point into the text itself,
    # non-ASCII characters and the special token included, as the fast tokenizer of transformers reports them
    from transformers import PreTrainedTokenizerFast

    tok, _ = fitted
    text = "The quick fox\u2019s caf\u00e9 \u2014 \u201cquoted\u201d 2024\n\tdef f(x):\n    return x<|endoftext|>It's"
    ours, gold = tok.encode(text), bpe.encode(text)
    assert ours.ids == gold.ids and ours.offsets == gold.offsets
    assert text[slice(*ours.offsets[ours.ids.index(50256)])] == "<|endoftext|>"
    fast = PreTrainedTokenizerFast(tokenizer_object=tok)
    assert fast(text, return_offsets_mapping=True)["offset_mapping"] == gold.offsets


def test_a_saved_tokenizer_loads_the_fitted_scores(fitted, tmp_path):
    # tokenizers' JSON reader rounds some numbers off by a unit in the last place: the fit writes floats it
    # reads back unchanged, so loading and saving again moves no score
    tok, fit = fitted
    tok.save(str(tmp_path / "tokenizer.json"))
    written = [v for _, v in json.loads((tmp_path / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]]
    loaded = [v for _, v in json.loads(Tokenizer.from_file(str(tmp_path / "tokenizer.json")).to_str())["model"]["vocab"]]
    assert written == loaded == [float(v) for v in fit.scores]


def test_exact_on_fit_corpus(fitted, bpe):
    tok, fit = fitted
    report = compare_texts(tok, bpe, corpus(), "corpus")
    # this corpus holds no provable conflict, so every word is exact, table borders ("+---+====+") included
    assert report["mismatched_types"] == fit.stats["fit_mismatched_types"] == 0, report["mismatches"]
    assert fit.stats["proven_unsatisfiable_types"] == 0
    assert report["rates"]["word_occurrence"] == report["rates"]["document"] == 1.0


def test_triple_quote_tie_is_cut_by_a_split_rule(fitted, bpe, rule):
    tok, fit = fitted
    assert bare_model(bpe).encode("'''").tokens == ["''", "'"]
    # the model alone cannot order equal pieces BPE's way: the Unigram tie rule keeps the longest last piece
    plain = Tokenizer(tok.model).encode("'''").tokens
    assert plain == ["'", "''"]
    assert classify(bare_model(bpe), ["''", "'"], plain) == "tie"
    assert "'" in {r["char"] for r in fit.split_rules}
    for text in ["'''", "x = '''doc'''", "'''''''"]:
        assert tok.encode(text).ids == bpe.encode(text).ids, text
    # the same mechanism on runs the small corpus does not need
    forced = with_rules(tok, [rule(c) for c in "'=Ċ"])
    for text in ["'''", "x = '''doc'''", "'''''''", "\n\n\n\n\n", "a\n\n\n\nb", "a ===== b", "=====\n"]:
        assert forced.encode(text).ids == bpe.encode(text).ids, text


def test_the_record_of_split_rules_names_each_character_as_text(fitted):
    """``split_rules_considered`` (the reports' record) names a character as text, as the report shows it: a
    newline, not its byte-level ``Ċ``; ``─``, not ``âĶĢ``."""
    _, fit = fitted
    chars = {r["char"] for r in fit.stats["split_rules_considered"]}
    assert {"\n", "─", "~"} <= chars and not {"Ċ", "âĶĢ"} & chars


def test_ruler_characters_get_split_rules_without_evidence(fitted, bpe):
    tok, fit = fitted
    tilde = next(r for r in fit.stats["split_rules_considered"] if r["char"] == "~")
    # the fit corpus has no run of "~", yet rulers of it are common: the rule is kept because it breaks nothing
    assert tilde["accepted"] and tilde["fixed_types"] == 0
    for text in ["Title\n~~~~~~~~~~~~~~\n", "~~~~~~~~~~~~~~~~~ x", " ~~~~~~~~~~~"]:
        assert tok.encode(text).ids == bpe.encode(text).ids, text
    # the Unigram alone orders the chunks of such a run the other way
    assert Tokenizer(tok.model).encode("~" * 14).tokens != bare_model(bpe).encode("~" * 14).tokens


def test_multi_byte_runs_get_split_rules(fitted, bpe):
    tok, fit = fitted
    assert {"─", "…", "—"} <= {piece_to_bytes(r["char"]).decode("utf-8") for r in fit.split_rules}
    runs = ["─" * 7, "…" * 3, "—" * 6]
    plain = Tokenizer(tok.model).encode_batch([bpe.pre_tokenizer.pre_tokenize_str(r)[0][0] for r in runs])
    assert any(p.ids != b.ids for p, b in zip(plain, bpe.encode_batch(runs)))
    for text in ["Title\n" + "─" * 30 + "\n", "他说" + "…" * 6 + "好", "a" + "—" * 6 + "b", "x" + "…" * 3 + ".",
                 "── ──── ─────── " + "─" * 9, "═" * 11 + "\n"]:
        assert tok.encode(text).ids == bpe.encode(text).ids, text


def test_placeholder_letter_and_digit_runs_get_split_rules(fitted, bpe):
    tok, fit = fitted
    assert {"N", "p", "X", "f", "0"} <= {r["char"] for r in fit.split_rules}
    runs = ["NNN", "ppp", "XXXXXX", "fffffff", "0000000"]
    # ties for the Unigram alone: the same pieces as BPE's, in another order
    plain = Tokenizer(tok.model).encode_batch(runs)
    assert any(p.tokens != b.tokens for p, b in zip(plain, bare_model(bpe).encode_batch(runs)))
    for text in ["NNN", "Call 555-NNNN or ppp.", "XXXXXX-XX", " fffffff", "0x0000000 ffff", "YYYY-MM-DD NNN\n"]:
        assert tok.encode(text).ids == bpe.encode(text).ids, text

def test_strict_fails_on_a_mismatch_and_reports_are_written(bpe, tmp_path):
    out, md, js = tmp_path / "tok", tmp_path / "r.md", tmp_path / "r.json"
    # without split or word rules the run of quotes stays a tie, which strict refuses
    with pytest.raises(DistillationMismatch, match="corpus word occurrences"):
        distill_tokenizer(bpe, [PROSE], ["A held-out line, '''quoted'''."], fast_settings(strict=True, split_rules=False, word_rules=0),
                          out, md, js, extra_eval_texts={"extra": ["def f(x):\n    return x\n"]},
                          verify_settings=VerifySettings(random_id_sequences=300))
    report = json.loads(js.read_text(encoding="utf-8"))
    assert set(report["sets"]) == {"corpus", "heldout", "extra"}
    assert report["sets"]["corpus"]["mismatches"]["tie"]["types"] >= 1
    assert 0 < report["sets"]["corpus"]["rates"]["word_occurrence"] < 1
    fit = report["fit"]
    parts = ("pre_tokenize_seconds", "score_fit_seconds", "split_rule_seconds", "word_rule_seconds")
    assert 0 < sum(fit[k] for k in parts) <= fit["fit_seconds"] and fit["peak_rss_mb"] > 0
    text = md.read_text(encoding="utf-8")
    assert "Exact-match rates" in text and "peak resident memory" in text
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(out))
    loaded = Tokenizer.from_file(str(out / "tokenizer.json"))
    assert hf.encode("hello world") == loaded.encode("hello world").ids == bpe.encode("hello world").ids
    # BPE's stored ids of a document cut short (a source saved with truncation): every word matches, yet the
    # document's ids differ, which strict refuses too
    ids = bpe.encode(PROSE, add_special_tokens=False).ids
    with pytest.raises(DistillationMismatch, match="1 corpus documents get other ids than BPE's though each of"):
        distill_tokenizer(bpe, [PROSE], ["A held-out line."], fast_settings(strict=True), out, md, js,
                          bpe_ids={"corpus": [ids[:10]]})


def test_fit_is_deterministic_and_builds_each_split_rule_once(bpe, monkeypatch):
    counts, _ = pre_token_counts(bpe, [PROSE])
    built = []
    build = split_rules.split_rule_for
    monkeypatch.setattr(split_rules, "split_rule_for", lambda *args: built.append(args[1]) or build(*args))
    monkeypatch.setattr(split_rules, "SPLIT_RULE_CACHE", {})
    first, _ = fit_distilled(bpe, counts, fast_settings(split_rule_chars="~"))
    n = len(built)
    second, _ = fit_distilled(bpe, counts, fast_settings(split_rule_chars="~"))
    assert first.to_str() == second.to_str()
    assert "~" in built and len(built) == n  # the second fit took every rule from the first


@hsettings(max_examples=200, deadline=None)
@given(st.text(max_size=80))
def test_round_trip(fitted_tok, text):
    # "<|endoftext|>" in the text is the special token, as in GPT-2's tokenizer: keep it when decoding
    assert fitted_tok.decode(fitted_tok.encode(text).ids, skip_special_tokens=False) == text


@pytest.fixture(scope="module")
def fitted_tok(fitted):
    return fitted[0]


# the fit corpus's lines (without trailing white space, which would join the next line's indentation into a
# pre-token the corpus may not hold): any text made of them holds only pre-tokens the fit saw
FIT_LINES = sorted({line for text in corpus() for line in text.splitlines() if line.strip() and line == line.rstrip()})


@hsettings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(FIT_LINES), min_size=1, max_size=30))
def test_text_made_of_fit_corpus_lines_gets_bpes_ids(fitted_tok, bpe, lines):
    # not a round trip (any scores decode back): the ids themselves, in any order of the lines
    text = "\n" + "\n".join(lines) + "\n"
    assert fitted_tok.encode(text).ids == bpe.encode(text).ids


def test_split_rules_fix_words_no_scores_can_match(bpe):
    # quotes and "=" runs after a space whose BPE chunks contradict each other under any additive scores
    texts = [PROSE, "a = ('''x''')\nb = \"'''\"\nc = \"('''\"\n" * 3 + " ===============\n ====\n ==============\n"]
    counts, _ = pre_token_counts(bpe, texts)
    _, plain = fit_distilled(bpe, counts, fast_settings(split_rules=False, word_rules=0))
    assert plain.stats["proven_unsatisfiable_types"] == 3
    assert set(plain.stats["proven_unsatisfiable_examples"]) == {" ('''", " ==============", " ==============="}
    tok, cut = fit_distilled(bpe, counts, fast_settings(word_rules=0))
    assert cut.stats["proven_unsatisfiable_cut_by_rules"] == 3
    assert cut.stats["proven_unsatisfiable_types"] == cut.stats["fit_mismatched_types"] == 0
    assert compare_texts(tok, bpe, texts, "t")["mismatched_types"] == 0
