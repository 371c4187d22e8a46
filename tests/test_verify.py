"""Verification: mismatches classified, provable conflicts found, its settings and the fit's recorded."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from tokenizers import AddedToken, Tokenizer
from tokenizers.models import BPE

from ivr.tokenizers.io import pre_tokens
from ivr.tokenizers.verify import (
    VerifySettings,
    classify,
    compare_ids,
    compare_texts,
    conflict_witness,
    language_table,
    read_report,
    verify_tokenizer,
)


def test_conflict_witness_on_unsatisfiable_merges():
    vocab = {"a": 0, "b": 1, "aa": 2, "bb": 3, "bbaa": 4}
    bare = Tokenizer(BPE(vocab, [("a", "a"), ("b", "b"), ("bb", "aa")]))
    assert bare.encode("bbaa").tokens == ["bbaa"]
    assert bare.encode("bbbaa").tokens == ["bb", "b", "aa"]
    # any scores giving [bbaa] for "bbaa" give [b, bbaa] for "bbbaa"
    assert conflict_witness(bare, ["bb", "b", "aa"], ["b", "bbaa"]) == "bbaa"
    assert classify(bare, ["bb", "b", "aa"], ["b", "bbaa"]) == "conflict"
    assert conflict_witness(bare, ["bb", "aa"], ["b", "baa"]) is None


def test_the_report_records_the_fit_and_its_settings_ahead_of_its_own(distilled, gpt2_bpe, tmp_path):
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    settings = VerifySettings(random_id_sequences=5, examples=1, seed=3)
    summary = verify_tokenizer(distilled, gpt2_bpe, {"t": ["'''x''' ==== y\n"] * 2}, md, js, settings,
                               fit_info={"rounds": 2, "corpus_words_dropped": False},
                               fit_settings={"max_run": 80, "word_list": None, "general_text_words": 1e6})
    assert list(summary["settings"]) == ["max_run", "word_list", "general_text_words", "random_id_sequences",
                                         "examples", "seed"]
    assert summary["ids"]["random_sequences"] == 5 and summary["fit"] == {"rounds": 2, "corpus_words_dropped": False}
    assert all(len(m["examples"]) <= 1 for m in summary["sets"]["t"]["mismatches"].values())
    assert json.loads(js.read_text(encoding="utf-8")) == summary == read_report(js)
    text = md.read_text(encoding="utf-8")
    assert "- max_run: 80" in text and "- seed: 3" in text
    # values read as the config spells them, not as Python prints them
    assert "- word_list: none" in text and "- general_text_words: 1000000\n" in text
    assert "- corpus words dropped: false" in text and ": None" not in text and ": False" not in text
    for damaged, why in (('{"ids": ', "not valid JSON"), ("[]", "not a JSON object"), ('{"ids": {}}', "not a verification report")):
        js.write_text(damaged, encoding="utf-8")
        with pytest.raises(ValueError, match=rf"r\.json: {why}.*run `ivr distill-tokenizer` again"):
            read_report(js)


def test_special_token_text_is_read_alike_by_both(distilled, gpt2_bpe, tmp_path):
    from ivr.tokenizers.io import special_text_as_text

    text = ["hello <|endoftext|> world\n"]
    distilled = special_text_as_text(Tokenizer.from_str(distilled.to_str()))
    assert not gpt2_bpe.encode_special_tokens
    summary = verify_tokenizer(distilled, gpt2_bpe, {"t": text}, tmp_path / "r.md", tmp_path / "r.json",
                               VerifySettings(random_id_sequences=1))
    # BPE reads the text as text too: the same ids, and its words are the document's
    assert summary["sets"]["t"]["rates"]["document"] == 1.0 and not gpt2_bpe.encode_special_tokens


def test_the_report_has_a_row_per_held_out_set_with_its_most_frequent_mismatches(distilled, gpt2_bpe, tmp_path):
    # the stand-in (merge-tree scores) cuts " certains" as Ġcertain · s where BPE has Ġcert · ains
    sets = {"corpus": ["x = 1\n"], "heldout": ["y = 2\n"], "de.txt": ["Der Hund schläft.\n"],
            "fr|v2.txt": ["Il y a certains mots, certains.\n"]}
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    summary = verify_tokenizer(distilled, gpt2_bpe, sets, md, js, VerifySettings(random_id_sequences=1))
    table = language_table({k: v for k, v in summary["sets"].items() if k != "corpus"})
    rows = {line.split(" | ")[0].lstrip("| "): line for line in table.splitlines()[2:]}
    assert list(rows) == ["heldout", "de.txt", "fr\\|v2.txt"]  # a name's "|" escaped, in both tables
    assert "| 0 | 100.0000% | yes |" in rows["de.txt"]
    assert "| 2 | " in rows["fr\\|v2.txt"] and "| no |" in rows["fr\\|v2.txt"]
    # each piece its own code span, its leading space shown
    assert "`␠certains` x2 (`␠cert`·`ains` / `␠certain`·`s`)" in rows["fr\\|v2.txt"]
    text = md.read_text(encoding="utf-8")
    assert "| fr\\|v2.txt | 1 | " in text and all(line.count(" | ") == 6 for line in text.splitlines()
                                                 if line.startswith("| fr\\|v2.txt | 1 | "))
    assert "## Per set (held-out text)" in text and table in text
    # two held-out sets are the plain report: no table
    verify_tokenizer(distilled, gpt2_bpe, {"corpus": ["x\n"], "heldout": ["y\n"]}, md, js, VerifySettings(random_id_sequences=1))
    assert "## Per set" not in md.read_text(encoding="utf-8")


def test_an_empty_held_out_split_or_extra_file_is_n_a_not_100_percent(distilled, gpt2_bpe, tmp_path):
    sets = {"corpus": ["x = 1\n"], "heldout": [], "empty.txt": [""], "fr.txt": ["Il y a des mots.\n"]}
    md, js = tmp_path / "r.md", tmp_path / "r.json"
    summary = verify_tokenizer(distilled, gpt2_bpe, sets, md, js, VerifySettings(random_id_sequences=1))
    assert set(summary["sets"]["heldout"]["rates"].values()) == {None}
    assert summary["sets"]["empty.txt"]["rates"]["word_occurrence"] is None
    assert summary["sets"]["empty.txt"]["rates"]["document"] == 1.0  # one empty document, encoded alike
    assert json.loads(js.read_text(encoding="utf-8"))["sets"]["heldout"]["rates"]["token"] is None
    text = md.read_text(encoding="utf-8")
    assert "| heldout | 0 | 0 | n/a | n/a | n/a | n/a |" in text
    assert "| empty.txt | 1 | 0 | n/a | n/a | n/a | 100.0000% |" in text
    assert "| heldout | 0 | 0 | n/a | n/a |  |" in text  # the per-set table


def test_stored_bpe_ids_and_word_counts_give_the_comparison_made_from_scratch(distilled, gpt2_bpe):
    texts = ["Il y a certains mots, certains.\n", "x = 1\n", "'''x''' ==== y\n", "x = 1\n"]
    fresh = compare_texts(distilled, gpt2_bpe, texts, "t")
    assert fresh["mismatched_occurrences"] == 5 and fresh["rates"]["document"] == 0.5
    ids = [gpt2_bpe.encode(t, add_special_tokens=False).ids for t in texts]
    counts = Counter(w for t in texts for w in pre_tokens(gpt2_bpe, t))
    assert compare_texts(distilled, gpt2_bpe, texts, "t", bpe_ids=ids, word_counts=counts) == fresh
    assert fresh["documents_differing_between_words"] == 0  # the two that differ hold mismatched words
    # the stored ids are what the documents are compared with; a document whose ids differ though each of its
    # words matches (cut short, as a source saved with truncation cut them) is counted apart
    cut = compare_texts(distilled, gpt2_bpe, texts, "t", bpe_ids=[*ids[:3], ids[3][:2]])
    assert cut["rates"]["document"] == 0.25 and cut["documents_differing_between_words"] == 1
    with pytest.raises(ValueError, match="fewer BPE id sequences"):
        compare_texts(distilled, gpt2_bpe, texts, "t", bpe_ids=ids[:2])
    with pytest.raises(ValueError, match="more BPE id sequences than texts"):
        compare_texts(distilled, gpt2_bpe, texts, "t", bpe_ids=ids + ids[:1])
    with pytest.raises(ValueError, match="not the counts of these texts' words"):
        compare_texts(distilled, gpt2_bpe, texts, "t", bpe_ids=ids, word_counts=Counter({"x": 1}))


def test_an_added_token_that_strips_differently_is_a_mismatch():
    def tok(**flags) -> Tokenizer:
        t = Tokenizer(BPE({"a": 0, "b": 1}, []))
        t.add_tokens([AddedToken("<x>", **flags)])
        return t

    # "a <x> b" encodes otherwise when <x> takes the spaces around it
    differing = compare_ids(tok(lstrip=True, rstrip=True), tok(), random_sequences=5)
    assert differing["added_token_mismatches"] == 1 and differing["added_token_mismatch_examples"] == [2]
    assert compare_ids(tok(), tok(), random_sequences=5)["added_token_mismatches"] == 0


def test_decoding_without_special_tokens_is_compared_too():
    def tok(special: bool) -> Tokenizer:
        t = Tokenizer(BPE({"a": 0, "b": 1}, []))
        (t.add_special_tokens if special else t.add_tokens)(["<x>"])
        return t

    # both decode every id alike; only a decode that skips special tokens drops <x> from one of them
    differing = compare_ids(tok(True), tok(False), random_sequences=50)
    assert differing["single_id_decode_mismatches"] == 0 and differing["random_sequence_decode_mismatches"] > 0
    assert compare_ids(tok(True), tok(True), random_sequences=50)["random_sequence_decode_mismatches"] == 0


def test_each_bpe_word_is_counted_with_the_distilled_pre_tokens_that_end_in_it():
    from ivr.tokenizers.verify import _count_segments

    counts = Counter()
    assert _count_segments(counts, ["a", "bc"], ["a", "b", "c"]) == {("a", ("a",)), ("bc", ("b", "c"))}
    # a distilled pre-token across a word boundary goes with the word it ends in
    assert _count_segments(counts, ["ab", "c"], ["a", "bc"]) == {("ab", ("a",)), ("c", ("bc",))}
    assert _count_segments(counts, ["a", "bc"], ["a", "bc"]) == {("a", ("a",)), ("bc", ("bc",))}
    assert counts[("a", ("a",))] == 2


def test_a_share_of_exact_matches_is_cut_never_rounded_up_to_a_target():
    from ivr.figures import exact_share

    assert exact_share(1 - 1 / 3_000_000) == "99.9999%" and exact_share(1.0) == "100.0000%"
    assert exact_share(0.99989999) == "99.9899%"
    assert [exact_share(n / (n + 1)) for n in (9999, 19999, 99999)] == ["99.9900%", "99.9950%", "99.9990%"]
    assert exact_share(None) == "n/a" and exact_share(1 - 1e-7, 6) == "99.999990%"


def test_zero_examples_or_random_sequences_are_allowed_and_a_negative_count_is_named():
    """``examples: 0`` keeps the report to its figures; only a negative count is a mistake."""
    assert VerifySettings(random_id_sequences=0, examples=0).examples == 0
    with pytest.raises(ValueError, match=r"data\.verify\.examples must be at least 0, got -1"):
        VerifySettings(examples=-1)


def test_mismatches_are_grouped_by_kind_and_listed_most_frequent_first(distilled, gpt2_bpe):
    # the stand-in cuts ''' as '·'' where BPE has ''·' (a tie), " certains" and " ====" otherwise
    texts = ["Il y a certains mots, certains.\n", "x''' ==== y\n"]
    mismatches = compare_texts(distilled, gpt2_bpe, texts, "t")["mismatches"]
    assert [e["word"] for e in mismatches["tie"]["examples"]] == ["'''"]
    others = mismatches["other"]["examples"]
    assert [e["count"] for e in others] == sorted((e["count"] for e in others), reverse=True)
    assert others[0]["word"] == " certains" and others[0]["count"] > others[-1]["count"]
    # the per-set table's most frequent mismatch is the most frequent of any kind
    row = language_table({"t": compare_texts(distilled, gpt2_bpe, texts, "t")}, examples=1).splitlines()[2]
    assert "`␠certains` x2" in row and "'''" not in row


def test_a_tie_is_the_same_pieces_in_another_order():
    bare = Tokenizer(BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    assert classify(bare, ["ab", "a"], ["a", "ab"]) == "tie"
    assert classify(bare, ["ab", "a"], ["a", "b", "a"]) == "other"


def test_every_id_is_decoded_alone_the_last_one_too_and_special_tokens_are_counted_apart():
    def tok(last: str) -> Tokenizer:
        t = Tokenizer(BPE({"a": 0, "b": 1}, []))
        t.add_special_tokens(["<s>"])
        t.add_tokens([last])
        return t

    ids = compare_ids(tok("<x>"), tok("<y>"), random_sequences=0)
    assert ids["single_id_decode_mismatch_examples"] == [ids["vocab_size"] - 1]
    assert (ids["added_tokens"], ids["special_tokens"]) == (2, 1)


def test_the_report_says_when_documents_differ_between_matching_words(distilled, gpt2_bpe, tmp_path):
    """Ids that differ outside every word (added tokens, the pre-tokenizer's context) are shown, not hidden."""
    text = "x = 1\n"
    ids = gpt2_bpe.encode(text, add_special_tokens=False).ids
    md = tmp_path / "r.md"
    verify_tokenizer(distilled, gpt2_bpe, {"t": [text]}, md, tmp_path / "r.json", VerifySettings(random_id_sequences=1),
                     bpe_ids={"t": [ids[:-1]]})
    assert "**1 documents get other ids than BPE's though each of their words matches**" in md.read_text(encoding="utf-8")


def test_a_set_exactly_at_the_target_reaches_it(distilled, gpt2_bpe):
    result = compare_texts(distilled, gpt2_bpe, ["Il y a certains mots, certains.\n"], "t")
    rate = result["rates"]["word_occurrence"]
    assert 0 < rate < 1
    assert "| yes |" in language_table({"t": result}, target=rate)
    assert "| no |" in language_table({"t": result}, target=rate + 1e-9)


def test_the_peak_memory_line_says_over_what_span_it_was_measured():
    from ivr.tokenizers.verify import render_markdown

    tok = Tokenizer(BPE({"a": 0}, []))
    ids = compare_ids(tok, tok, random_sequences=0)
    for scope, span in ((None, "since the process started"), ("block", "during the fit"),
                        ("sampled", "during the fit, sampled every 10 ms")):
        fit = {"peak_rss_mb": 12, **({"peak_rss_scope": scope} if scope else {})}
        assert f"- peak resident memory {span} (whole process, MiB): 12\n" in render_markdown(
            {"ids": ids, "sets": {}, "fit": fit})


def test_the_accepted_split_rules_show_their_characters_as_recorded():
    from ivr.tokenizers.verify import render_markdown

    tok = Tokenizer(BPE({"a": 0}, []))
    fit = {"split_rules_considered": [{"char": c, "accepted": ok, "fixed_occurrences": n}
                                      for c, ok, n in (("\n", True, 3), ("é", True, 1.5), ("~", False, 0))]}
    md = render_markdown({"ids": compare_ids(tok, tok, random_sequences=0), "sets": {}, "fit": fit})
    assert "- split rules accepted for: `\\n` (3 occ.), `é` (1.5 occ.)\n" in md


def test_a_fit_cut_short_says_so_in_the_markdown_as_its_json_does():
    from ivr.tokenizers.verify import render_markdown

    tok = Tokenizer(BPE({"a": 0}, []))
    ids = compare_ids(tok, tok, random_sequences=0)
    history = [{"round": 0, "mismatched_types": 5, "mismatched_occurrences": 9.0, "new_rows": 5, "seconds": 0.5},
               {"round": 1, "mismatched_types": 2, "mismatched_occurrences": 3.0, "new_rows": 2, "seconds": 130.1}]
    md = render_markdown({"ids": ids, "sets": {}, "fit": {"history": history}})
    assert "max_seconds" not in md and "failed" not in md
    history[1]["stopped_by_max_seconds"] = True
    md = render_markdown({"ids": ids, "sets": {}, "fit": {"history": history}})
    assert "stopped by data.distill.max_seconds after round 1" in md and "depends on the machine's speed" in md
    del history[1]["stopped_by_max_seconds"]
    history[0]["linear_program_failed"] = "score fitting: the linear program failed: numerical trouble"
    md = render_markdown({"ids": ids, "sets": {}, "fit": {"history": history}})
    assert "linear program failed after round 0 (score fitting: the linear program failed: numerical trouble)" in md


def test_a_sub_string_is_no_proof_unless_bpes_own_pieces_spell_it_too():
    bare = Tokenizer(BPE({"a": 0, "b": 1, "ab": 2, "ba": 3}, [("a", "b"), ("b", "a")]))
    # BPE cuts "baa" as the distilled ba·a, but its own ab·a spells "aba", never "baa": no contradiction
    assert bare.encode("baa").tokens == ["ba", "a"] and bare.encode("aba").tokens == ["ab", "a"]
    assert conflict_witness(bare, ["ab", "a"], ["a", "ba"]) is None
    assert classify(bare, ["ab", "a"], ["a", "ba"]) == "other"


def test_a_byte_the_vocabulary_lacks_shifts_no_word_of_a_differing_document():
    """BPE drops a byte its vocabulary lacks (SmolLM2 has no 0x04) and the distilled tokenizer cuts it out before
    its model, so its pre-tokens spell the BPE words without it: the words after it keep their own pieces."""
    from tokenizers import decoders, pre_tokenizers

    from ivr.tokenizers.byte_level import byte_to_char
    from ivr.tokenizers.distill import initial_scores, source_bpe, unigram_tokenizer, with_rules

    chars = [c for b, c in sorted(byte_to_char().items()) if b != 4]
    merges = [("Ġ", "r"), ("e", "t"), ("Ġr", "et")]
    vocab = {c: i for i, c in enumerate(chars + [a + b for a, b in merges])}
    bpe = Tokenizer(BPE(vocab, merges))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    source = source_bpe(bpe)
    model = unigram_tokenizer(source.pieces, initial_scores(source.pieces, source.merges, 3.3), source.never)
    distilled = with_rules(model, [], source=bpe)
    for text in ["f(x):\x04 ret x", "caf\x04e ret x"]:
        ids = bpe.encode(text).ids
        assert distilled.encode(text).ids == ids
        # BPE's stored ids cut short: the document differs, each of its words matches
        result = compare_texts(distilled, bpe, [text], "t", bpe_ids=[ids[:-1]])
        assert result["mismatched_occurrences"] == 0, result["mismatches"]
        assert result["documents_differing_between_words"] == 1


def test_the_legend_says_what_a_conflicts_witness_is_which_need_not_be_inside_the_word():
    """The witness is spelled by the pieces the two segmentations do not share, in BPE's order: a string of its
    own, not a part of the word."""
    from ivr.tokenizers.verify import render_markdown

    vocab = {"a": 0, "b": 1, "c": 2, "aa": 3, "ca": 4, "bc": 5, "cac": 6}
    bare = Tokenizer(BPE(vocab, [("a", "a"), ("c", "a"), ("b", "c"), ("ca", "c")]))
    gold, pred = ["bc", "c", "aa", "a"], ["b", "c", "ca", "aa"]
    assert bare.encode("bccaaa").tokens == gold and bare.encode("bca").tokens == ["b", "ca"]
    # any scores giving bc·c·aa·a for "bccaaa" give bc·a for "bca", where BPE has b·ca
    assert conflict_witness(bare, gold, pred) == "bca" and "bca" not in "bccaaa"
    assert classify(bare, gold, pred) == "conflict"
    tok = Tokenizer(BPE({"a": 0}, []))
    md = render_markdown({"ids": compare_ids(tok, tok, random_sequences=0), "sets": {}})
    assert "sub-string" not in md
    assert "*conflict*: a string spelled by the pieces the two segmentations do not share" in md
