"""Distilled Unigram tokenizer: same ids as GPT-2's BPE, same text for every id, deterministic."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
import sysconfig
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Regex, Tokenizer, pre_tokenizers
from tokenizers.models import BPE

from ivr.tokenizers import distill
from ivr.tokenizers.bpe import gpt2_merges, offline_gpt2_tokenizer
from ivr.tokenizers.byte_level import piece_to_bytes
from ivr.tokenizers.distill import (
    DistillSettings,
    bare_model,
    distill_tokenizer,
    fit_distilled,
    fit_words,
    gpt2_pieces,
    pre_token_counts,
    rules_pre_tokenizer,
    split_pattern,
    with_rules,
)
from ivr.tokenizers.verify import DistillationMismatch, classify, compare_ids, compare_texts, conflict_witness

PROSE = (
    "The quick brown fox jumps over the lazy dog. It's 2024, and tokenizers aren't perfect:\n\n\n"
    "Their merges (learned greedily) give '''odd''' results on runs like ==== or ---- or 999999.\n"
    "    Indented lines, tabs\tand trailing spaces   \n"
)
STDLIB = Path(sysconfig.get_paths()["stdlib"])


def corpus() -> list[str]:
    files = ["textwrap.py", "string.py", "json/decoder.py"]
    return [PROSE] + [(STDLIB / f).read_text(encoding="utf-8") for f in files]


def fast_settings(**kw) -> DistillSettings:
    # no ruler characters unless a test asks: building their rules is most of a small fit's time
    kw = {"split_rule_chars": "", "general_usage_words": 0, **kw}
    return DistillSettings(vocab_words=False, vocab_variants=False, number_words=0, max_run=80, random_id_sequences=300,
                           split_rule_min_fixed=1, **kw)


@pytest.fixture(scope="module")
def bpe() -> Tokenizer:
    return offline_gpt2_tokenizer()


@pytest.fixture(scope="module")
def rule(bpe):
    """The split rule for a character (byte-level piece), built once per process as the fit builds it."""
    bare = bare_model(bpe)
    fingerprint = hashlib.sha256(bare.to_str().encode("utf-8")).hexdigest()
    return lambda char: distill._memo_split_rule(bare, fingerprint, char, fast_settings().max_run)


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
    assert all(score[a + b] - score[a] - score[b] > -8 * np.spacing(score[a + b]) for a, b in distill.gpt2_merges())
    assert sum(score[a + b] > score[a] + score[b] for a, b in distill.gpt2_merges()) > 0.999 * len(distill.gpt2_merges())
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


def test_read_back_stable_moves_a_score_the_json_reader_rounds_off():
    # 2.0724814146518918e-07 loads as 2.072481414651892e-07 (a fitted score of merge "if")
    unstable = np.array([2.0724814146518918e-07, 0.5, 0.0])
    assert distill._read_back(unstable)[0] != unstable[0]
    stable = distill.read_back_stable(unstable)
    assert (distill._read_back(stable) == stable).all()
    assert stable[0] != unstable[0] and abs(stable[0] - unstable[0]) <= 8 * np.spacing(unstable[0])
    assert list(stable[1:]) == [0.5, 0.0]


def test_exact_on_fit_corpus(fitted, bpe):
    tok, fit = fitted
    report = compare_texts(tok, bpe, corpus(), "corpus")
    # this corpus holds no provable conflict, so every word is exact, table borders ("+---+====+") included
    assert report["mismatched_types"] == fit.stats["fit_mismatched_types"] == 0, report["mismatches"]
    assert fit.stats["proven_unsatisfiable_types"] == 0
    assert report["rates"]["word_occurrence"] == report["rates"]["document"] == 1.0


def test_fit_words_cover_numbers(bpe):
    pieces = gpt2_pieces(bpe)
    words = fit_words(pieces, Counter({"x": 3}), DistillSettings(vocab_words=False, vocab_variants=False, number_words=2))
    assert words["x"] == 3 and words["07"] == words["Ġ99"] == words["5"] == 1
    assert "123" not in words and len(words) == 1 + 2 * (10 + 100)


def test_word_list_counts_weigh_words(bpe, tmp_path):
    pieces = gpt2_pieces(bpe)
    path = tmp_path / "words.txt"
    path.write_text("héllo\t7.5\nworld\n\nx\t2\n", encoding="utf-8")
    settings = DistillSettings(vocab_words=False, vocab_variants=False, number_words=0, word_list=path)
    words = fit_words(pieces, Counter({"x": 3, "world": 1}), settings)
    # each word with and without a leading space; the larger of the corpus count and the listed count
    assert words["hÃ©llo"] == words["ĠhÃ©llo"] == 7.5
    assert words["world"] == words["Ġworld"] == 1 and words["x"] == 3 and words["Ġx"] == 2
    for text, where in [("a b\n", ":1:"), ("ok\nbad\t-1\n", ":2:"), ("ok\tmany\n", ":1:")]:
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ValueError, match=f"words.txt{where}"):
            fit_words(pieces, Counter(), settings)
    path.write_bytes(b"caf\xe9\n")
    with pytest.raises(ValueError, match="words.txt: cannot read"):
        fit_words(pieces, Counter(), settings)


def test_table_borders_are_cut_where_bpe_keeps_them_apart(bpe, rule):
    # "-+" and "--+" are pieces: BPE merges a run's end with "+" after some run lengths and not others
    rules = [rule(c) for c in "-="]
    pre = rules_pre_tokenizer(rules)
    # the Unigram alone would order the run's chunks the other way (a tie): the rules cut them as BPE does
    assert [p for p, _ in pre.pre_tokenize_str(" +" + "-" * 19 + "+")] == ["Ġ+", "-" * 16, "---", "+"]
    # a run whose end BPE merges with the next character is cut where BPE cuts it
    assert [p for p, _ in pre.pre_tokenize_str("+" + "-" * 13 + "+")] == ["+", "-" * 12, "-+"]
    paren = rules_pre_tokenizer([rule("(")])
    # ... unless what follows the neighbour changes BPE's mind: "((" "'." but "(" "('" "x"
    assert [p for p, _ in paren.pre_tokenize_str("(('.")] == ["(('."]
    assert [p for p, _ in paren.pre_tokenize_str("(('x")] == ["(", "('", "x"]
    # after a space BPE's first chunk takes the space and some of the run, or the space alone
    assert [p for p, _ in pre.pre_tokenize_str(" " + "=" * 15)] == ["Ġ=", "=" * 12, "=="]
    assert [p for p, _ in pre.pre_tokenize_str(" " + "-" * 25)] == ["Ġ", "-" * 24, "-"]
    cut_bpe = with_rules(bare_model(bpe), rules)
    for n in range(2, 40):
        for text in [f" +{'-' * n}+{'-' * (n + 3)}+", f"|{'=' * n}+{'=' * 7}|\n", f"+{'-' * n}--+{'-' * n}-+",
                     f"+{'-' * n}+-", f"+{'-' * n}+){'-' * n}>"]:
            assert cut_bpe.encode(text).ids == bpe.encode(text).ids, text


PUNCT_RULES = "'\":)[=%/"


@pytest.fixture(scope="module")
def punct_rules(rule):
    return [rule(c) for c in PUNCT_RULES]


@pytest.fixture(scope="module")
def punct_cut_bpe(bpe, punct_rules):
    """GPT-2's BPE model behind the punctuation rules: any cut BPE would merge across shows up as other ids."""
    return with_rules(bare_model(bpe), punct_rules)


def test_no_prefix_alternative_matches_inside_its_own_run(punct_rules):
    # the pre-tokenizer skips the prefix alternatives where the scanned character is the run's own: a prefix
    # character is the one before a run, never part of it
    with_prefix = [r for r in punct_rules if r.get("prefix")]
    assert with_prefix
    for r in with_prefix:
        c = piece_to_bytes(r["char"]).decode("utf-8")
        prefix = pre_tokenizers.Split(Regex(r["prefix"]), behavior="isolated")
        for text in (c * n + tail for n in range(2, 12) for tail in ("", " ", "a", "(", "'s")):
            assert [p for p, _ in prefix.pre_tokenize_str(text)] == [text], (r["char"], text)


def test_quote_runs_are_cut_before_punctuation_where_bpe_is(bpe, punct_rules):
    pre = rules_pre_tokenizer(punct_rules)
    # a run of quotes inside punctuation: BPE keeps ' "' apart and merges the last quote with the next '"'
    assert [p for p, _ in pre.pre_tokenize_str(" \"'''\"")] == ["Ġ\"", "''", "'\""]
    assert [p for p, _ in pre.pre_tokenize_str("\"\"\"'")] == ["\"\"", "\"'"]
    # ... but three double quotes and '" give the three and '": the next character excludes that cut
    assert bare_model(bpe).encode("\"\"\"'\"").tokens == ["\"\"\"", "'\""]
    assert [p for p, _ in pre.pre_tokenize_str("\"\"\"'\"")] == ["\"\"\"'\""]


@pytest.mark.parametrize("text", [
    "\":[[[[[[[$", "/'=======\\\"", "|.'\"\"\"\"(", ":::::::://////", "'////)):////", "^]]]]:///-%%%%%%%%%",
    "::::::::///////\\\n\n\n---", "11111\\\\\\\"\"\"\":[[[]]]]]",
])
def test_rules_hold_where_a_neighbour_or_the_token_after_it_decides(bpe, punct_cut_bpe, text):
    # found by random punctuation strings: a cut next to a neighbour must also hold when a longer token
    # takes the neighbour (":[" after '"', '=\"' after "=", "://" after ":")
    assert punct_cut_bpe.encode(text).ids == bpe.encode(text).ids


@hsettings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(list(PUNCT_RULES + "(]-.!,+*\\ x1\n")), st.integers(1, 9)),
                max_size=8).map(lambda runs: "".join(c * n for c, n in runs)))
def test_rules_on_random_punctuation_runs_give_bpe_ids(bpe, punct_cut_bpe, text):
    assert punct_cut_bpe.encode(text).ids == bpe.encode(text).ids


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


def test_utf8_ranges_and_the_characters_bpe_merges_after_a_run():
    assert distill._utf8_prefix_range(b"\xe2") == (0x2000, 0x2FFF)
    assert distill._utf8_prefix_range(b"\xe2\x94") == (0x2500, 0x253F)
    assert distill._utf8_prefix_range(b"\xe0") == (0x800, 0xFFF)  # no overlong forms
    assert distill._utf8_prefix_range(b"\xed") == (0xD000, 0xD7FF)  # no surrogates
    assert distill._utf8_prefix_range(b"\xf0") == (0x10000, 0x3FFFF)
    assert distill._utf8_prefix_range(b"\x94") is None  # a continuation byte starts no character
    # GPT-2 merges ".–" and ".—": a run of "." is not cut before them; "┐" joins no "."
    after = {chr(c) for c in distill._merging_after(".", gpt2_merges())}
    assert {"–", "—"} <= after and "┐" not in after
    assert "…" not in distill._unmerged_before(".", gpt2_merges())  # "…" + ".." is one token


def test_a_rule_whose_pieces_the_model_gets_wrong_is_refused(bpe):
    bare = bare_model(bpe)

    class HeadBlind:  # BPE's ids, except for " ─" alone: the piece a rule cuts off a run after a space
        def encode_batch(self, words):
            return [SimpleNamespace(ids=[0] if w == "ĠâĶĢ" else e.ids) for w, e in zip(words, bare.encode_batch(words))]

    settings = fast_settings(split_rule_chars="─")
    kept, considered = distill.select_split_rules(bare, HeadBlind(), [], np.zeros(0), [], settings)
    (entry,) = [c for c in considered if c["char"] == "âĶĢ"]
    assert not kept and not entry["accepted"] and entry["broken_runs"] > 0
    kept, _ = distill.select_split_rules(bare, bare, [], np.zeros(0), [], settings)
    assert [r["char"] for r in kept] == ["âĶĢ"]


def test_placeholder_letter_and_digit_runs_get_split_rules(fitted, bpe):
    tok, fit = fitted
    assert {"N", "p", "X", "f", "0"} <= {r["char"] for r in fit.split_rules}
    runs = ["NNN", "ppp", "XXXXXX", "fffffff", "0000000"]
    # ties for the Unigram alone: the same pieces as BPE's, in another order
    plain = Tokenizer(tok.model).encode_batch(runs)
    assert any(p.tokens != b.tokens for p, b in zip(plain, bare_model(bpe).encode_batch(runs)))
    for text in ["NNN", "Call 555-NNNN or ppp.", "XXXXXX-XX", " fffffff", "0x0000000 ffff", "YYYY-MM-DD NNN\n"]:
        assert tok.encode(text).ids == bpe.encode(text).ids, text


# byte-level pieces: newline, and the multi-byte box drawing "─", ellipsis "…" and Hangul letter "ㅋ"
@pytest.mark.parametrize("char", ["=", "-", "#", ".", "'", '"', "(", ")", "Ċ", "9", "x", "âĶĢ", "âĢ¦", "ãħĭ"])
def test_split_rule_reproduces_bpe_runs(bpe, rule, char):
    bare = bare_model(bpe)
    run_rule = rule(char)
    assert run_rule is not None
    raw = piece_to_bytes(char).decode("utf-8")
    pre = rules_pre_tokenizer([run_rule])
    # BPE's model behind the rules: any cut BPE would merge across shows up as other ids
    cut_bpe = with_rules(bare, [run_rule])
    led_cut = 0
    for n in range(1, 65):
        run = raw * n
        assert [p for p, _ in pre.pre_tokenize_str(run)] == bare.encode(char * n).tokens, n
        for end in (" ", "\t"):  # also where one white character ends the text: every chunk its own pre-token
            assert sum(char in p for p, _ in pre.pre_tokenize_str(run + end)) == len(bare.encode(char * n).tokens), n
        # after a space the rule either cuts the run into BPE's chunks or leaves it whole to GPT-2's alternatives;
        # the first chunk (the space and part of the run) may be more than one BPE token: " ─" is "ĠâĶ" "Ģ"
        led, gold = [p for p, _ in pre.pre_tokenize_str(" " + run)], bare.encode("Ġ" + char * n).tokens
        head = len(gold) - len(led) + 1
        assert led == ["Ġ" + char * n] or (led[1:] == gold[head:] and led[0] == "".join(gold[:head])), n
        led_cut += len(led) > 1
        for text in [" " + run, "x" + run + "y", "(" + run + ")", run + "\n", " " + run + " z", "a\n" + run + "b",
                     run + "s", run + "'", run + "'.", "1" + run + "2",
                     run + "   x", run + " \n y", "a" + run + "\t\tb", run + "\u00a0\u00a0c",
                     "#" + run, "+" + run + "+" + run + "+", " (" + run + ")", run + "'s", "=" + run + "é", "''" + run,
                     "说" + run + "好", run + "—", run + "…x", run + "┐", run + "€5", run + "–", run + "」",
                     "┌" + run + "┬" + run + "┐", " └" + run + "→", "•" + run + "\ufffd", "…" + run, "├" + run,
                     ' "' + run + '",', run + "'\"", run + "\"'\"", "(" + run + "'\\", run + ")]",
                     run + '"""', run + "')-", ' "' + run + '"):', "!)." + run, run + "'\"'", run + ")'''"]:
            assert cut_bpe.encode(text).ids == bpe.encode(text).ids, (n, text)
    assert led_cut > 0 or char == "Ċ"  # GPT-2 keeps spaces with newlines


def test_conflict_witness_on_unsatisfiable_merges():
    vocab = {"a": 0, "b": 1, "aa": 2, "bb": 3, "bbaa": 4}
    bare = Tokenizer(BPE(vocab, [("a", "a"), ("b", "b"), ("bb", "aa")]))
    assert bare.encode("bbaa").tokens == ["bbaa"]
    assert bare.encode("bbbaa").tokens == ["bb", "b", "aa"]
    # any scores giving [bbaa] for "bbaa" give [b, bbaa] for "bbbaa"
    assert conflict_witness(bare, ["bb", "b", "aa"], ["b", "bbaa"]) == "bbaa"
    assert classify(bare, ["bb", "b", "aa"], ["b", "bbaa"]) == "conflict"
    assert conflict_witness(bare, ["bb", "aa"], ["b", "baa"]) is None


def test_strict_fails_on_a_mismatch_and_reports_are_written(bpe, tmp_path):
    out, md, js = tmp_path / "tok", tmp_path / "r.md", tmp_path / "r.json"
    # without split or word rules the run of quotes stays a tie, which strict refuses
    with pytest.raises(DistillationMismatch, match="corpus word occurrences"):
        distill_tokenizer(bpe, [PROSE], ["A held-out line, '''quoted'''."], fast_settings(strict=True, split_rules=False, word_rules=0),
                          out, md, js, extra_eval_texts={"extra": ["def f(x):\n    return x\n"]})
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


def test_fit_is_deterministic_and_builds_each_split_rule_once(bpe, monkeypatch):
    counts, _ = pre_token_counts(bpe, [PROSE])
    built = []
    build = distill.split_rule_for
    monkeypatch.setattr(distill, "split_rule_for", lambda *args: built.append(args[1]) or build(*args))
    monkeypatch.setattr(distill, "_RULES", {})
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


TRICKY = st.sampled_from(["'", "s", "t", "re", "ve", "m", "ll", "d", "a", "Z", "1", " ", "  ", "\t", "\n", "\u00a0",
                          "é", "ß", "٣", ".", "-", "=", "😀"])


@hsettings(max_examples=300, deadline=None)
@given(st.lists(TRICKY | st.characters(blacklist_categories=("Cs",)), max_size=40).map("".join))
def test_split_pattern_pre_tokenizes_like_gpt2(text):
    # the pattern tries GPT-2's alternatives in another order (faster); the pre-tokens must stay GPT-2's
    ours = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(split_pattern([])), behavior="isolated"),
                                    pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    gpt2 = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    assert ours.pre_tokenize_str(text) == gpt2.pre_tokenize_str(text)


@pytest.fixture(scope="module")
def fitted_tok(fitted):
    return fitted[0]


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


def test_general_words_make_the_merges_they_use_costlier_to_change(bpe, monkeypatch):
    usages = []
    solve = distill._solve_rows

    def spy(s0, trees, w0, rows, row_weight, merge_usage, *rest):
        usages.append(merge_usage.copy())
        return solve(s0, trees, w0, rows, row_weight, merge_usage, *rest)

    monkeypatch.setattr(distill, "_solve_rows", spy)
    counts, _ = pre_token_counts(bpe, corpus())
    fit_distilled(bpe, counts, fast_settings(split_rules=False))
    n = len(usages)
    fit_distilled(bpe, counts, fast_settings(split_rules=False, general_usage_words=2000))
    without, with_general = usages[0], usages[n]
    assert (with_general >= without).all()
    # " the" and "the" are general words: the merges building them gained (at least) those two users
    merges = distill.gpt2_merges()
    the = merges.index(("Ġt", "he"))
    assert with_general[the] >= without[the] + 2 and (with_general > without).sum() > 1000


def test_a_failing_linear_program_keeps_the_best_round(bpe, monkeypatch):
    import ivr.tokenizers.distill as distill

    def fail(*args, **kwargs):
        raise RuntimeError("score fitting: the linear program failed: test")

    counts, _ = pre_token_counts(bpe, corpus())
    monkeypatch.setattr(distill, "_solve_rows", fail)
    tok, fit = fit_distilled(bpe, counts, fast_settings())
    assert fit.stats["history"][0]["linear_program_failed"].endswith("test")
    assert fit.stats["rounds"] == 1 and fit.stats["changed_merges"] == 0
    # the merge-tree scores alone already get most words right; the fit did not crash the stage
    assert compare_texts(tok, bpe, corpus(), "corpus")["rates"]["word_occurrence"] > 0.99


def test_margin_is_relative_to_the_smallest_weight_at_stake():
    # merge 0 is heavy and in both segmentations, so it cancels; BPE's pieces (twice piece 0: merges 0 and 1)
    # tie with the competitor's (piece 1: merges 0, 0 and 2) until merge 1 or 2 moves
    import scipy.sparse as sp

    trees = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
    w0 = np.array([1e6, 10.0, 20.0])
    s0 = trees @ w0
    row = {0: 2, 1: -1}
    dw, slack = distill._solve_rows(s0, trees, w0, [row], np.ones(1), np.ones(3), 0.05, 1e8)
    gap = 2 * (s0[0] + (trees @ dw)[0]) - (s0[1] + (trees @ dw)[1])
    assert slack[0] == pytest.approx(0.0, abs=1e-9)
    assert gap == pytest.approx(0.05 * 10.0, rel=1e-6)  # 5% of merge 1's weight, not of merge 0's, nor 0.05
    assert dw[0] == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("strict_row", [0, 1])
def test_a_strict_row_is_kept_and_the_other_given_up_when_they_contradict(strict_row):
    # row 0 wants piece 0 twice to beat piece 1, row 1 the opposite: no weights meet both
    import scipy.sparse as sp

    trees = sp.csr_matrix(np.array([[1.0, 1.0, 0.0], [2.0, 0.0, 1.0]]))
    w0 = np.array([1e6, 10.0, 20.0])
    rows = [{0: 2, 1: -1}, {0: -2, 1: 1}]
    penalty = np.where(np.arange(2) == strict_row, distill.STRICT_PENALTY, 1.0)
    dw, slack = distill._solve_rows(trees @ w0, trees, w0, rows, np.ones(2), np.ones(3), 0.05, penalty)
    d = np.array([[2.0, -1.0], [-2.0, 1.0]])[strict_row]
    s = trees @ (w0 + dw)
    assert slack[strict_row] == pytest.approx(0.0, abs=1e-9) and slack[1 - strict_row] > 0
    assert d @ s[:2] >= 0.05 * 10.0 * (1 - 1e-6)
