"""analyze: id sequences equal Tokenizer.encode on the same documents; frequencies cover all ids."""

from __future__ import annotations

import numpy as np
import polars as pl

from ivr.analysis.frequency import analyze_corpus
from ivr.cleaned_corpus import iter_documents
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
