"""analyze: id sequences equal Tokenizer.encode on the same documents; frequencies cover all ids."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from ivr.analysis.frequency import SplitIdSequences, analyze_corpus, frequency_inputs, id_sequences_inputs
from ivr.cleaned_corpus import CorpusError, corpus_content, iter_documents
from ivr.corpus import CleaningOptions, clean_corpus


def test_analyze_matches_encode_and_counts_every_id(raw_dir, tmp_path, gpt2_bpe):
    clean_corpus(raw_dir, tmp_path / "cleaned", CleaningOptions())
    docs = list(iter_documents(tmp_path / "cleaned"))
    seq, freq = tmp_path / "seq.txt", tmp_path / "freq.parquet"
    summary = analyze_corpus(gpt2_bpe, iter(docs), seq, freq, batch_size=3)

    lines = seq.read_text().splitlines()
    expected = [gpt2_bpe.encode(d.text, add_special_tokens=False).ids for d in docs]
    assert [list(map(int, line.split())) for line in lines] == expected

    frame = pl.read_parquet(freq)
    assert frame.columns == ["token_id", "token", "text", "count", "doc_freq", "share"]
    assert frame.height == 50257 and frame["token_id"].to_list() == list(range(50257))
    flat = np.concatenate([np.array(e) for e in expected])
    assert frame["count"].sum() == summary["tokens"] == len(flat)
    top = int(np.bincount(flat).argmax())
    assert frame["count"][top] == np.bincount(flat)[top]
    assert frame["doc_freq"][top] == sum(top in e for e in expected)
    assert abs(frame["share"].sum() - 1.0) < 1e-9
    assert frame.filter(pl.col("token_id") == 15496)["text"][0] == "Hello"


def test_the_summary_counts_every_document_its_utf8_bytes_tokens_and_distinct_ids(tmp_path, gpt2_bpe):
    """The summary ``ivr analyze`` logs counts every document of every batch, and the corpus's UTF-8 size (what
    the manifest's total and the progress bar measure), not its characters."""
    from ivr.cleaned_corpus import Document

    docs = [Document(f"d{i}", text) for i, text in enumerate(["café au lait\n", "x = 1\n", "x = 2\n"])]
    summary = analyze_corpus(gpt2_bpe, iter(docs), tmp_path / "seq.txt", tmp_path / "freq.parquet", batch_size=2)
    ids = [i for d in docs for i in gpt2_bpe.encode(d.text, add_special_tokens=False).ids]
    assert summary == {"documents": 3, "bytes": 26, "tokens": len(ids), "distinct_ids": len(set(ids))}
    assert len(set(ids)) < len(ids)  # "x", " =" and "\n" repeat: distinct ids are fewer than tokens


def test_the_frequency_table_shows_each_piece_as_the_tokenizer_spells_it_and_as_text(tmp_path, gpt2_bpe):
    """``token`` is the byte-level piece (``Ġworld``), ``text`` the text it stands for (`` world``): a reader of
    the table sees spaces and newlines, not the byte-level alphabet."""
    from ivr.cleaned_corpus import Document

    freq = tmp_path / "freq.parquet"
    analyze_corpus(gpt2_bpe, iter([Document("d", "Hello world\n")]), tmp_path / "seq.txt", freq)
    frame = pl.read_parquet(freq)
    for piece, text in (("Ġworld", " world"), ("Ċ", "\n")):
        row = frame.row(gpt2_bpe.token_to_id(piece), named=True)
        assert (row["token"], row["text"], row["count"], row["doc_freq"]) == (piece, text, 1, 1)


def test_no_documents_give_an_empty_id_file_and_shares_of_zero(tmp_path, gpt2_bpe):
    """Shares are counts over the total, taken as at least 1: no tokens give shares of 0, not 0/0 (NaN)."""
    seq, freq = tmp_path / "seq.txt", tmp_path / "freq.parquet"
    summary = analyze_corpus(gpt2_bpe, iter([]), seq, freq)
    assert summary == {"documents": 0, "bytes": 0, "tokens": 0, "distinct_ids": 0}
    shares = pl.read_parquet(freq)["share"]
    assert seq.read_text() == "" and len(shares) == 50257 and shares.is_nan().sum() == 0 and shares.sum() == 0


def test_both_files_name_the_tokenizer_and_corpus_they_were_made_from_and_the_ids_read_as_before(raw_dir, tmp_path, gpt2_bpe):
    """The inputs head the id file as ``# key: value`` lines (values in JSON) and are the table's metadata; the ids
    read back as from a file written without them (an older version's), and a file made from another corpus is
    refused."""
    cleaned = tmp_path / "clé\naned"  # no ASCII (the header is UTF-8, the ids ASCII), and a line break in a name
    clean_corpus(raw_dir, cleaned, CleaningOptions())
    inputs = {"original tokenizer": "tok/tokenizer.json (sha256 abc)",
              "corpus": f"{cleaned} (content {corpus_content(cleaned)})"}
    seq, freq, bare = tmp_path / "seq.txt", tmp_path / "freq.parquet", tmp_path / "bare.txt"
    analyze_corpus(gpt2_bpe, iter_documents(cleaned), seq, freq, inputs=inputs)
    analyze_corpus(gpt2_bpe, iter_documents(cleaned), bare, tmp_path / "bare.parquet")

    lines = seq.read_text(encoding="utf-8").splitlines(keepends=True)
    assert lines[:2] == [f"# {k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in inputs.items()]
    assert lines[2:] == bare.read_text().splitlines(True)
    assert id_sequences_inputs(seq) == frequency_inputs(freq) == inputs
    assert id_sequences_inputs(bare) == frequency_inputs(tmp_path / "bare.parquet") == {}
    assert pl.read_parquet(freq).equals(pl.read_parquet(tmp_path / "bare.parquet"))
    for split in (None, "train", "heldout"):
        assert list(SplitIdSequences(cleaned, seq, split, 0.3)) == list(SplitIdSequences(cleaned, bare, split, 0.3))
    # line numbers count the input lines
    seq.write_text("".join(lines[:-1]), encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"seq\.txt:{len(lines)}: the file ends before"):
        list(SplitIdSequences(cleaned, seq))
    seq.write_text("".join([lines[0], lines[1].replace("(content ", "(content 0"), *lines[2:]]), encoding="utf-8")
    with pytest.raises(CorpusError, match=r"(?s)seq\.txt:2: made from another corpus .*run `ivr analyze` again"):
        list(SplitIdSequences(cleaned, seq))
