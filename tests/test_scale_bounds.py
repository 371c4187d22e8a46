"""What keeps large corpora cheap: stored BPE ids read back per split, a bounded count of the fit corpus's
words, and select's one streaming pass of pre-token counts."""

from __future__ import annotations

import itertools
import zlib
from collections import Counter

import pytest

from ivr.analysis.frequency import SplitIdSequences, analyze_corpus
from ivr.analysis.spans import PretokenCounts, count_pretokens, pretoken_stats
from ivr.cleaned_corpus import CorpusError, SplitTexts, iter_documents
from ivr.corpus import CleaningOptions, clean_corpus
from ivr.tokenizers.distill.pre_tokenizer import with_rules
from ivr.tokenizers.distill.word_rules import word_segments
from ivr.tokenizers.distill.words import pre_token_counts
from ivr.tokenizers.io import pre_tokens


def test_stored_ids_are_read_back_per_split_in_the_order_of_the_texts(tmp_path, raw_dir, gpt2_bpe):
    cleaned, sequences = tmp_path / "cleaned", tmp_path / "ids.txt"
    clean_corpus(raw_dir, cleaned, CleaningOptions())
    analyze_corpus(gpt2_bpe, iter_documents(cleaned), sequences, tmp_path / "freq.parquet")
    for split in ("train", "heldout"):
        texts = list(SplitTexts(cleaned, split, 0.3))
        assert texts, split
        ids = [gpt2_bpe.encode(t, add_special_tokens=False).ids for t in texts]
        assert list(SplitIdSequences(cleaned, sequences, split, 0.3)) == ids
    # another corpus's ids, or a damaged file, are refused, naming the file and the line
    lines = sequences.read_text(encoding="ascii").splitlines(keepends=True)
    sequences.write_text("".join(lines[:2]), encoding="ascii")
    with pytest.raises(CorpusError, match=r"ids\.txt:3: the file ends before"):
        list(SplitIdSequences(cleaned, sequences, None, 0.3))
    sequences.write_text("".join(lines + ["1\n"]), encoding="ascii")
    with pytest.raises(CorpusError, match=rf"ids\.txt:{len(lines) + 1}: more lines than"):
        list(SplitIdSequences(cleaned, sequences, "train", 0.3))
    for damaged in ("1 2 x\n", "1 \u00e9\n"):
        sequences.write_text("".join([lines[0], damaged, *lines[2:]]), encoding="utf-8")
        with pytest.raises(CorpusError, match=r"ids\.txt:2: not a line of token ids"):
            list(SplitIdSequences(cleaned, sequences, None, 0.3))


def test_the_fit_corpus_count_is_exact_below_its_budget_and_bounded_above_it(gpt2_bpe):
    texts = [" ".join(["common"] * 5 + [f"rare{i}" for i in range(i, i + 3)]) for i in range(10)]
    exact, dropped = pre_token_counts(gpt2_bpe, texts)
    assert not dropped and pre_token_counts(gpt2_bpe, texts, limit=len(exact)) == (exact, False)
    bounded, dropped = pre_token_counts(gpt2_bpe, texts, limit=6)
    assert dropped and len(bounded) <= 6
    assert bounded["Ġcommon"] == exact["Ġcommon"] == 40  # the most frequent words keep their counts
    # a word that came back after a drop counts from then on: never more than its true count
    assert all(0 < bounded[w] <= exact[w] for w in bounded) and bounded != exact


def test_select_counts_in_one_pass_and_leaves_one_document_out_of_a_tiny_corpus(distilled):
    texts = ["x = 1\n", "y = 2\ny = 2\n", "def f(): pass\n"]
    everything, held = count_pretokens(distilled, texts, cap=1, validation_fraction=0.2)
    assert held.documents == 2  # by the texts' hashes
    everything, held = count_pretokens(distilled, texts, cap=1, validation_fraction=1.0)  # all: keep one out
    docs = [Counter(pre_tokens(distilled, t)) for t in texts]
    assert everything.counts == sum(docs, Counter()) and everything.documents == 3
    assert everything.capped["Ġ="] == 2 and everything.counts["Ġ="] == 3  # at most one use per document
    assert held.documents == 1 and (everything - held).documents == 2
    assert held.counts in docs
    assert count_pretokens(distilled, texts, cap=1, validation_fraction=0)[1] is None


def test_a_tiny_corpus_leaves_out_the_first_of_the_documents_of_the_smallest_hash(distilled):
    """Where the hash leaves out no document, the one left out is the first of those sharing the smallest hash,
    as documented: a reordered tie must not change which document the savings curve measures on."""
    key, seen = (lambda t: zlib.crc32(t.encode("utf-8")) % 1000), {}
    for i in itertools.count():
        text = f"x = {i}\n"
        if key(text) in seen and key(text) > 0:
            break
        seen.setdefault(key(text), text)
    first, second = seen[key(text)], text
    # a fraction below every hash but 0 leaves out neither
    for texts in ([first, second], [second, first]):
        _, held = count_pretokens(distilled, texts, cap=None, validation_fraction=0.0005)
        assert held.documents == 1 and held.counts == Counter(pre_tokens(distilled, texts[0]))


def test_the_ranked_part_keeps_only_its_own_dropped_token_uses():
    """Past the pre-token limit the token uses of dropped pre-tokens still count towards the ids to free; the
    savings curve's ranking leaves out those of the left-out documents, as it leaves out their pre-tokens."""
    everything = PretokenCounts(None, Counter(a=3), dropped_ids=Counter({5: 4, 6: 1}), documents=3)
    held = PretokenCounts(None, Counter(a=1), dropped_ids=Counter({5: 1}), documents=1)
    assert (everything - held).dropped_ids == Counter({5: 3, 6: 1})


def test_word_rules_of_digit_strings_cut_only_their_own_words_with_a_bounded_regex(distilled, gpt2_bpe):
    numbers = [str(n) for n in range(1234567, 1234567 + 7919 * 60, 7919)]
    rules = [gpt2_bpe.encode(n, add_special_tokens=False).tokens for n in numbers]
    rules = [r for r in rules if word_segments(r)]
    tok = with_rules(distilled, [], rules, source=gpt2_bpe)
    # the class checks that say where a word starts and ends are shared, not spelled out per cut in byte-level form
    per_rule = (len(tok.to_str()) - len(with_rules(distilled, [], [], source=gpt2_bpe).to_str())) / len(rules)
    assert per_rule < 8_000
    first, other = "".join(rules[0]), "".join(rules[1])
    for text, cut in ((f"x={first}+{other}\n", True), (f"x=9{first}", False), (f"x={first}9", False),
                      (f"a{first}", True), (f"x {first}", False)):  # after a space it is another word
        pieces = pre_tokens(tok, text)
        assert (rules[0][0] in pieces and rules[0][-1] in pieces) == cut, (text, pieces)


def test_select_counts_at_most_its_limit_of_pre_tokens_and_keeps_the_id_counts_exact(distilled):
    texts = [f"common = value_{i} + other_{i}\nresult = common\n" for i in range(40)]
    exact, _ = count_pretokens(distilled, texts, cap=2, validation_fraction=0)
    bounded, _ = count_pretokens(distilled, texts, cap=2, validation_fraction=0, limit=10)
    assert len(exact.counts) > 10 >= len(bounded.counts) and bounded.dropped_pretokens
    assert set(bounded.capped) <= set(bounded.counts)
    assert bounded.counts["Ġ="] == exact.counts["Ġ="] == 80  # the most frequent keep their counts
    # the ids the dropped pre-tokens use are still counted: which ids to free depends on them
    full, cut = pretoken_stats(distilled, exact), pretoken_stats(distilled, bounded)
    assert (cut.id_counts == full.id_counts).all() and cut.total_tokens == full.total_tokens


def test_a_long_pre_token_is_cut_into_bounded_pieces_for_selection_with_the_id_counts_exact(distilled, monkeypatch):
    from ivr.analysis import spans

    run = "".join("ACGT"[(i * 7 + i // 5) % 4] for i in range(400))  # one pre-token of a hundred or so tokens
    texts = [f"{run}\n", "x = 1\n"]
    everything, _ = count_pretokens(distilled, texts, cap=None, validation_fraction=0)
    whole = pretoken_stats(distilled, everything)
    monkeypatch.setattr(spans, "MAX_SPAN_TOKENS", 16)
    cut = pretoken_stats(distilled, everything)
    assert max(len(s) for s in whole.segs) > 16 >= max(len(s) for s in cut.segs)
    assert (cut.id_counts == whole.id_counts).all() and cut.total_tokens == whole.total_tokens
    # the pieces still spell the pre-token, in order, each with its own tokens
    long_piece = next(p for p, s in zip(whole.pieces, whole.segs) if len(s) > 16)
    parts = [(p, s) for p, s in zip(cut.pieces, cut.segs) if p not in whole.pieces]
    assert "".join(p for p, _ in parts) == long_piece
    assert [i for _, s in parts for i in s] == whole.segs[whole.pieces.index(long_piece)]
