"""A source whose pre-tokenizer regex is not GPT-2's (here Llama-3's, as its tokenizer.json writes it): the
distilled tokenizer runs that pre-tokenizer as it is, then cuts runs of one character between BPE's chunks (run
cuts), without split or word rules, and fits only words it can cut whole."""

from __future__ import annotations

import json
from collections import Counter
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Regex, Tokenizer, models, pre_tokenizers

from ivr.tokenizers.byte_level import piece_to_bytes, text_to_piece
from ivr.tokenizers.distill import UnsupportedTokenizer, distill_tokenizer, source_bpe
from ivr.tokenizers.distill.pre_tokenizer import encode_segments
from ivr.tokenizers.distill import run_cuts
from ivr.tokenizers.distill.run_cuts import (
    CharCuts, cut_words, piece_grams, run_cut_pattern, run_cuts_of, select_run_cuts,
)
from ivr.tokenizers.distill.words import fit_words
from ivr.tokenizers.io import load_tokenizer, pre_tokens, read_metadata, read_special_tokens
from ivr.tokenizers.unigram import bare_model
from tests.distill_fixtures import corpus, fast_settings
from tests.test_other_bpe import ROLES, tiny_bpe

LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
          r"|\s*[\r\n]+|\s+(?!\S)|\s+")


@pytest.fixture(scope="module")
def bpe():
    return tiny_bpe(pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(LLAMA3), "isolated"),
                                             pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)]))


@pytest.fixture(scope="module")
def distilled(bpe, tmp_path_factory):
    out = tmp_path_factory.mktemp("llama3")
    bpe.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(json.dumps(ROLES), encoding="utf-8")
    texts = corpus()
    summary = distill_tokenizer(bpe, texts[:3], texts[3:], fast_settings(split_rule_chars="-=", number_words=2),
                                out / "tokenizer", out / "r.md", out / "r.json", special=read_special_tokens(out))
    return load_tokenizer(out / "tokenizer"), out / "tokenizer", summary


def test_the_source_is_read_without_rules(bpe):
    source = source_bpe(bpe)
    assert not source.rules and not source.isolated_digits
    assert source_bpe(tiny_bpe()).rules
    grouped = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    assert not source_bpe(tiny_bpe(grouped)).rules


def test_a_pre_tokenizer_without_a_regex_is_refused():
    # every document would be one word
    with pytest.raises(UnsupportedTokenizer, match=r"ByteLevel\(.*use_regex=False.*\) is unsupported"):
        source_bpe(tiny_bpe(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)))


def test_the_distilled_tokenizer_runs_the_sources_pre_tokenizer(distilled, bpe):
    tok, path, summary = distilled
    *steps, cuts = json.loads(tok.to_str())["pre_tokenizer"]["pretokenizers"]
    assert steps == json.loads(bpe.to_str())["pre_tokenizer"]["pretokenizers"]
    assert cuts["type"] == "Split" and cuts["behavior"] == "MergedWithPrevious"
    assert tok.normalizer is None
    metadata = read_metadata(path, required=True)
    assert metadata["split_rules"] == [] and metadata["word_rules"] == []
    assert {r["char"] for r in metadata["run_cuts"]} >= {"-"}
    ids = summary["ids"]
    assert ids["id_to_token_identical"] and ids["single_id_decode_mismatches"] == 0
    assert ids["random_sequence_decode_mismatches"] == 0
    # a 600-id vocabulary has far more ties and conflicts per word than a real one
    assert summary["sets"]["corpus"]["rates"]["word_occurrence"] > 0.99
    text = "<|im_start|>the<|im_end|>\n the<|endoftext|>"
    # special-token text as text (as the pipeline encodes it), and as special tokens (as others load the file)
    for as_text in (True, False):
        mine, theirs = load_tokenizer(path), Tokenizer.from_str(bpe.to_str())
        mine.encode_special_tokens = theirs.encode_special_tokens = as_text
        assert mine.encode(text).ids == theirs.encode(text).ids
        assert (mine.encode(text).ids[0] == 1) != as_text


def test_only_words_the_pre_tokenizer_keeps_whole_are_fitted(bpe):
    source = source_bpe(bpe)
    words = fit_words(source.outputs, Counter(), fast_settings(number_words=2, vocab_words=True), bpe,
                      whole_pre_tokens=True)
    assert text_to_piece("42") in words and text_to_piece(" 42") not in words  # " ", "42" in Llama-3's regex
    texts = [piece_to_bytes(w).decode("utf-8", errors="ignore") for w in words]
    assert all(pre_tokens(bpe, t) == [w] for t, w in zip(texts, words) if text_to_piece(t) == w)
    assert text_to_piece(" 42") in fit_words(source.outputs, Counter(), fast_settings(number_words=2), bpe)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="ab Z'sT(.=-#\n\r\t 0123456789²é", max_size=40).map(lambda t: t.replace("-", "-" * 7)))
def test_the_pre_tokens_cut_the_sources_finer_never_across(distilled, bpe, text):
    mine, theirs = pre_tokens(distilled[0], text), pre_tokens(bpe, text)
    assert "".join(mine) == "".join(theirs)
    ends = {len("".join(theirs[:k])) for k in range(len(theirs) + 1)}
    assert ends <= {len("".join(mine[:k])) for k in range(len(mine) + 1)}


def runs_in_context() -> list[str]:
    # neighbours that stay in the run's pre-token (Llama-3's regex cuts a letter off)
    return [f"{lead}{'-' * n}{tail}" for n in range(1, 41) for lead in ("", " ", "((", "'(")
            for tail in ("", "\n", "',", "%%", "\n\n")]


def test_runs_come_out_in_bpes_order(distilled, bpe):
    # BPE chunks 13 dashes 8·4·1; the Unigram alone puts a long chunk last
    tok = distilled[0]
    wrong = [t for t in runs_in_context() if tok.encode(t).ids != bpe.encode(t).ids]
    assert wrong == []
    bare = bare_model(bpe)
    cuts = run_cuts_of(bare, "-", 40, piece_grams(bare.get_vocab()))
    assert {(8, 13), (12, 13)} <= cuts[("", "")]
    assert cut_words({"-": CharCuts(cuts)}, ["-" * 13, "(" + "-" * 13 + ")", "--"]) == [
        ["-" * 8, "-" * 4, "-"], ["(" + "-" * 8, "-" * 4, "-)"], ["--"]]


def test_without_run_cuts_some_runs_come_out_in_another_order(bpe, tmp_path):
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(ROLES), encoding="utf-8")
    bpe.save(str(tmp_path / "tokenizer.json"))
    texts = corpus()
    distill_tokenizer(bpe, texts[:3], texts[3:], fast_settings(split_rules=False, number_words=2),
                      tmp_path / "tokenizer", tmp_path / "r.md", tmp_path / "r.json",
                      special=read_special_tokens(tmp_path))
    tok = load_tokenizer(tmp_path / "tokenizer")
    assert tok.pre_tokenizer.__getstate__() == bpe.pre_tokenizer.__getstate__()
    assert any(tok.encode(t).ids != bpe.encode(t).ids for t in runs_in_context())


def test_a_normalizer_and_ignore_merges_are_kept(bpe, tmp_path):
    # Qwen2's tokenizer.json puts NFC in front, Llama-3's sets ignore_merges: both kept, without rules
    spec = json.loads(bpe.to_str())
    spec["normalizer"] = {"type": "NFC"}
    spec["model"]["ignore_merges"] = True
    source = Tokenizer.from_str(json.dumps(spec))
    assert not source_bpe(source).rules
    source.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(ROLES), encoding="utf-8")
    texts = corpus()
    distill_tokenizer(source, texts[:3], texts[3:], fast_settings(vocab_words=True), tmp_path / "out",
                      tmp_path / "r.md", tmp_path / "r.json", special=read_special_tokens(tmp_path))
    tok = load_tokenizer(tmp_path / "out")
    assert json.loads(tok.to_str())["normalizer"] == {"type": "NFC"}
    text = "cafe\u0301 caf\u00e9 \uff21\uff22 \u212b"  # decomposed and composed é, full-width letters, Ångström sign
    assert pre_tokens(tok, text) == pre_tokens(source, text) and text_to_piece("é") in "".join(pre_tokens(tok, text))
    pieces = [p for p, i in sorted(source.get_vocab().items(), key=lambda kv: kv[1]) if i >= 5]
    assert [tok.model.token_to_id(p) for p in pieces] == [source.model.token_to_id(p) for p in pieces]
    wrong = [p for p in pieces if tok.encode(piece_to_bytes(p).decode("utf-8", errors="ignore")).ids
             != source.encode(piece_to_bytes(p).decode("utf-8", errors="ignore")).ids]
    assert len(wrong) <= len(pieces) // 100, wrong[:10]  # each piece alone, as ignore_merges gives it


def test_ignore_merges_gives_a_whole_word_in_the_vocabulary_as_is(tmp_path):
    from tokenizers import models

    from ivr.tokenizers.byte_level import byte_to_char
    from ivr.tokenizers.io import byte_level_tokenizer

    merges = [("b", "c"), ("a", "b"), ("ab", "c")]  # merged as BPE orders them, "abc" is "a"·"bc"
    vocab = {c: i for i, c in enumerate(byte_to_char().values())}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    source = byte_level_tokenizer(models.BPE(vocab, merges, ignore_merges=True))
    assert source.encode("abc").tokens == ["abc"]
    assert byte_level_tokenizer(models.BPE(vocab, merges)).encode("abc").tokens == ["a", "bc"]
    distill_tokenizer(source, ["abc\nbc ab"], [], fast_settings(vocab_words=True), tmp_path / "out",
                      tmp_path / "r.md", tmp_path / "r.json")
    tok = load_tokenizer(tmp_path / "out")
    for text in ("abc", "bc", " ab", "\nbc"):
        assert tok.encode(text).tokens == source.encode(text).tokens, text
    # no additive scores give "abc" its piece and " abc" BPE's "Ġ"·"a"·"bc" (w(a+b) + w(ab+c) against w(b+c))
    assert source.encode(" abc").tokens == ["Ġ", "a", "bc"]


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="ae\u0301\u0308 =-'s1²\u212b\uff21\n", max_size=30))
def test_gpt2s_regex_behind_a_normalizer_keeps_its_rules(normalized_pair, text):
    # GPT-NeoX's tokenizer.json: NFC, then GPT-2's regex; the rules cut the normalized text, as over text they would
    reference, tok = normalized_pair
    assert pre_tokens(tok, text) == pre_tokens(reference, text)


@pytest.fixture(scope="module")
def normalized_pair():
    from tokenizers import models, normalizers

    from ivr.tokenizers.distill import initial_scores, unigram_tokenizer, with_rules
    from ivr.tokenizers.distill.pre_tokenizer import rules_pre_tokenizer
    from ivr.tokenizers.unigram import bare_model
    from tests.distill_fixtures import split_rule

    spec = json.loads(tiny_bpe().to_str())
    spec["normalizer"] = {"type": "NFC"}
    source = Tokenizer.from_str(json.dumps(spec))
    read = source_bpe(source)
    assert read.rules
    model = unigram_tokenizer(read.pieces, initial_scores(read.pieces, read.merges, 3.3), read.never)
    rules = [r for r in (split_rule(bare_model(source), text_to_piece(c)) for c in "=-") if r]
    tok = with_rules(model, rules, source=source)
    assert rules and [n["type"] for n in json.loads(tok.to_str())["normalizer"]["normalizers"]] == ["NFC", "ByteLevel"]
    reference = Tokenizer(models.BPE())
    reference.normalizer, reference.pre_tokenizer = normalizers.NFC(), rules_pre_tokenizer(rules)
    return reference, tok


def test_ignore_merges_alone_turns_the_rules_off():
    spec = json.loads(tiny_bpe().to_str())
    spec["model"]["ignore_merges"] = True
    assert source_bpe(tiny_bpe()).rules and not source_bpe(Tokenizer.from_str(json.dumps(spec))).rules


def test_added_tokens_behind_a_normalizer_are_matched_as_the_source_matches_them():
    from tokenizers import AddedToken

    from ivr.tokenizers.distill import initial_scores, unigram_tokenizer, with_rules

    spec = json.loads(tiny_bpe().to_str())
    spec["normalizer"] = {"type": "Lowercase"}
    source = Tokenizer.from_str(json.dumps(spec))
    source.add_tokens([AddedToken("ae", normalized=True)])  # matched in lower-cased text: "Ae", "AE" too
    read = source_bpe(source)
    assert read.rules
    model = unigram_tokenizer(read.pieces, initial_scores(read.pieces, read.merges, 3.3), read.never)
    tok = with_rules(model, [], source=source)
    for text in ("Ae ae AE", "xAEy", "<|endoftext|> ae"):
        assert tok.encode(text).ids == source.encode(text).ids, text
    assert source.encode("Ae ae AE").ids.count(source.token_to_id("ae")) == 3
    # one that strips spaces around it would not find them in byte-level text: kept as the source has it
    source.add_tokens([AddedToken("zz", normalized=True, lstrip=True)])
    assert not source_bpe(source).rules


def test_behind_lower_casing_no_capitalised_variant_is_fitted():
    spec = json.loads(tiny_bpe().to_str())
    spec["normalizer"] = {"type": "Lowercase"}
    source = Tokenizer.from_str(json.dumps(spec))
    read = source_bpe(source)
    words = fit_words(read.outputs, Counter(), fast_settings(vocab_words=True, vocab_variants=True), source,
                      whole_pre_tokens=True)
    assert text_to_piece(" the") in words and text_to_piece(" The") not in words


def test_a_word_kept_whole_is_not_cut_where_the_same_run_elsewhere_is():
    # with ignore_merges a vocabulary piece comes back whole whatever its runs: its cuts are excepted
    cuts = CharCuts({("", ""): {(8, 13), (12, 13)}}, whole=[("(" + "-" * 13, (8, 12))])
    assert cut_words({"-": cuts}, ["(" + "-" * 13, "-" * 13, "x" + "-" * 13, "(" + "-" * 13 + ")"]) == [
        ["(" + "-" * 13], ["-" * 8, "-" * 4, "-"], ["x" + "-" * 8, "-" * 4, "-"], ["(" + "-" * 8, "-" * 4, "-)"]]


def test_a_fit_word_the_cuts_would_break_is_kept_whole():
    # "//-----" is one piece (whole under ignore_merges), but after "/" BPE cuts a run of five dashes 4·1
    vocab = {"-": 0, "/": 1, "--": 2, "----": 3, "//": 4, "//----": 5, "//-----": 6, "x": 7, "Ġ": 8}
    merges = [("-", "-"), ("--", "--"), ("/", "/"), ("//", "----"), ("//----", "-")]
    bare = Tokenizer(models.BPE(vocab, merges, ignore_merges=True))
    words = ["//-----", "-----", "x-----"]
    gold = [e.ids for e in bare.encode_batch(words)]
    assert gold == [[6], [3, 0], [7, 3, 0]]
    # BPE's own model stands in for the Unigram: every word is right without cuts
    kept, _ = select_run_cuts(bare, bare, words, np.ones(len(words)), gold, fast_settings(max_run=8, split_rule_chars="-"))
    assert kept["-"].whole == [("//-----", (5,))]
    assert cut_words(kept, words) == [["//-----"], ["----", "-"], ["x----", "-"]]
    assert encode_segments(bare, cut_words(kept, words)) == gold
    assert cut_words({"-": CharCuts(kept["-"].contexts)}, words)[0] == ["//----", "-"]


def test_a_neighbour_that_joins_what_follows_it_first_moves_no_cut():
    # "_]" after a run of "_" cuts five "_" 4·1, but before "&" BPE joins "]&" first and keeps the five whole
    vocab = {p: i for i, p in enumerate(["_", "]", "&", "Ġ", "__", "____", "]&", "_]", "_____"])}
    bare = Tokenizer(models.BPE(vocab, [("_", "_"), ("__", "__"), ("]", "&"), ("_", "]"), ("____", "_")]))
    assert [e.tokens for e in bare.encode_batch(["_____]", "_____]&"])] == [["____", "_]"], ["_____", "]&"]]
    cuts = {"_": CharCuts(run_cuts_of(bare, "_", 8, piece_grams(vocab)))}
    # every cut lands where a BPE token ends, in every context of up to two neighbours
    words = [a + "_" * n + b for n in range(2, 9) for a in ("", "]", "&") for b in ("", "]", "&", "]&", "]]", "&]")]
    for word, enc, segments in zip(words, bare.encode_batch(words), cut_words(cuts, words)):
        assert set(np.cumsum([len(s) for s in segments])) <= set(np.cumsum([len(t) for t in enc.tokens])), word


def dash_runs(wrong=("-----", "x----"), words=("x", "x-----", "-----")):
    """A BPE that chunks five dashes "----" "-", a model that gets the texts ``wrong`` wrong and the rest right
    (by default "-----" alone and "x----", so that cutting "x-----" breaks it), and fit words with their ids."""
    vocab = {p: i for i, p in enumerate(["-", "x", "Ġ", "--", "----"])}
    bare = Tokenizer(models.BPE(vocab, [("-", "-"), ("--", "--")]))

    class Model:
        def encode_batch(self, texts):
            return [SimpleNamespace(ids=[0] if t in wrong else e.ids) for t, e in zip(texts, bare.encode_batch(texts))]

    words = list(words)
    return bare, Model(), words, [e.ids for e in bare.encode_batch(words)]


def test_the_occurrences_that_cuts_fix_are_those_of_the_fixed_words():
    bare, model, words, gold = dash_runs()
    weights = np.array([2.0, 3.0, 5.0])
    _, considered = select_run_cuts(bare, model, words, weights, gold, fast_settings(max_run=8))
    (entry,) = [c for c in considered if c["char"] == "-"]
    assert entry["accepted"] and entry["fixed_types"] == 1
    assert entry["fixed_occurrences"] == weights[words.index("-----")]


def test_cuts_that_break_more_fit_words_than_may_be_kept_whole_are_refused(monkeypatch):
    bare, model, words, gold = dash_runs()
    monkeypatch.setattr(run_cuts, "MAX_KEPT_WHOLE", 1)
    kept, _ = select_run_cuts(bare, model, words, np.ones(3), gold, fast_settings(max_run=8))
    assert kept["-"].whole == [("x-----", (len("x----") - 1,))]
    monkeypatch.setattr(run_cuts, "MAX_KEPT_WHOLE", 0)
    kept, considered = select_run_cuts(bare, model, words, np.ones(3), gold, fast_settings(max_run=8))
    (entry,) = [c for c in considered if c["char"] == "-"]
    assert kept == {} and not entry["accepted"] and entry["kept_whole"] == 1


def test_cuts_whose_regex_is_too_long_are_refused_with_its_length(monkeypatch):
    bare, model, words, gold = dash_runs()
    size = len(run_cut_pattern({"-": CharCuts(run_cuts_of(bare, "-", 8, piece_grams(bare.get_vocab())))}))
    kept, _ = select_run_cuts(bare, model, words, np.ones(3), gold, fast_settings(max_run=8))
    # "x-----" is kept whole, which the regex writes out
    whole_size = len(run_cut_pattern(kept))
    assert kept["-"].whole and whole_size > size
    monkeypatch.setattr(run_cuts, "MAX_PATTERN", whole_size)
    assert "-" in select_run_cuts(bare, model, words, np.ones(3), gold, fast_settings(max_run=8))[0]
    for limit, found in ((whole_size - 1, whole_size), (size - 1, size)):
        monkeypatch.setattr(run_cuts, "MAX_PATTERN", limit)
        kept, considered = select_run_cuts(bare, model, words, np.ones(3), gold, fast_settings(max_run=8))
        assert kept == {} and {"char": "-", "accepted": False, "reason": f"a regex of {found} characters"} in considered


def test_a_character_whose_doubled_piece_bpe_never_outputs_gets_no_cuts():
    # behind the source's own steps the run never reaches BPE whole: cuts in it could only cost encoding time
    bare, model, words, gold = dash_runs()
    kept, considered = select_run_cuts(bare, model, words, np.ones(3), gold, fast_settings(max_run=8),
                                       never=frozenset({"--"}))
    assert kept == {} and not [c for c in considered if c["char"] == "-"]


def test_a_fit_word_that_is_a_pure_run_is_kept_whole_once():
    # the pure runs are asked about besides the fit words: one that is both is counted (and excepted) once
    bare, model, words, gold = dash_runs(wrong=("----",), words=("x", "------"))
    kept, considered = select_run_cuts(bare, model, words, np.ones(2), gold,
                                       fast_settings(max_run=8, split_rule_chars="-"))
    (entry,) = [c for c in considered if c["char"] == "-"]
    whole = [w for w, _ in kept["-"].whole]
    assert "------" in whole and len(whole) == len(set(whole)) == entry["kept_whole"]


def test_a_fit_word_the_model_gets_wrong_either_way_is_not_kept_whole():
    # keeping it whole fixes nothing: it would only lengthen the regex and the report's count
    bare, model, words, gold = dash_runs(wrong=("-----", "----"), words=("x", "-----"))
    kept, considered = select_run_cuts(bare, model, words, np.ones(2), gold,
                                       fast_settings(max_run=8, split_rule_chars="-"))
    (entry,) = [c for c in considered if c["char"] == "-"]
    whole = [w for w, _ in kept["-"].whole]
    assert "-----" not in whole and entry["kept_whole"] == len(whole)


def test_an_added_token_behind_a_kept_pre_tokenizer_is_matched_in_the_normalized_text(bpe):
    # as the source matches it: NFC composes "e" and the accent before the token is looked for
    from tokenizers import AddedToken

    from ivr.tokenizers.distill import with_rules

    spec = json.loads(bpe.to_str())
    spec["normalizer"] = {"type": "NFC"}
    source = Tokenizer.from_str(json.dumps(spec))
    source.add_tokens([AddedToken("café", normalized=True)])
    tok = with_rules(bare_model(source), [], source=source, keep_pre_tokenizer=True)
    text = "un cafe\u0301 noir"
    assert source.token_to_id("café") in source.encode(text).ids
    assert tok.encode(text).ids == source.encode(text).ids


def test_a_word_kept_whole_is_only_excepted_where_it_is_the_whole_pre_token():
    # the same characters at the end of a longer pre-token are cut as any run is
    cuts = CharCuts({("", ""): {(8, 13), (12, 13)}}, whole=[("(" + "-" * 13, (8, 12))])
    assert cut_words({"-": cuts}, ["x(" + "-" * 13]) == [["x(" + "-" * 8, "-" * 4, "-"]]


def assert_cut_where_bpe_cuts(bare: Tokenizer, vocab: dict[str, int], words: list[str]) -> None:
    """Every cut of ``bare``'s run cuts of "-" in each word lands where one of BPE's tokens ends."""
    cuts = {"-": CharCuts(run_cuts_of(bare, "-", 8, piece_grams(vocab)))}
    for word, enc, segments in zip(words, bare.encode_batch(words), cut_words(cuts, words)):
        assert set(np.cumsum([len(s) for s in segments])) <= set(np.cumsum([len(t) for t in enc.tokens])), word


def test_a_cut_that_holds_before_nothing_else_is_not_made_before_a_neighbour_that_moves_it():
    # "---" is "--" "-" alone but "-" "--+" before "+": the cut after two dashes holds only where no "+" follows
    vocab = {p: i for i, p in enumerate(["-", "+", "Ġ", "--", "----", "-+", "--+"])}
    bare = Tokenizer(models.BPE(vocab, [("-", "+"), ("-", "-+"), ("-", "-"), ("--", "--")]))
    assert [e.tokens for e in bare.encode_batch(["---", "---+"])] == [["--", "-"], ["-", "--+"]]
    assert_cut_where_bpe_cuts(bare, vocab, [a + "-" * n + b for n in range(2, 9) for a in ("", "+")
                                            for b in ("", "+", "++")])


def test_a_cut_that_holds_after_a_neighbour_is_not_made_after_a_space_and_that_neighbour():
    # "+---" is "+" "--" "-" but " +---" is " +-" "--": BPE joins the space, "+" and the run's first dash first
    vocab = {p: i for i, p in enumerate(["-", "+", "Ġ", "Ġ+", "Ġ+-", "--"])}
    bare = Tokenizer(models.BPE(vocab, [("Ġ", "+"), ("Ġ+", "-"), ("-", "-")]))
    assert [e.tokens for e in bare.encode_batch(["+---", "Ġ+---"])] == [["+", "--", "-"], ["Ġ+-", "--"]]
    assert_cut_where_bpe_cuts(bare, vocab, [a + "-" * n + b for n in range(2, 9) for a in ("", "+", "Ġ+")
                                            for b in ("", "+")])
