"""Selection's pre-token table: recorded from the encodings verification makes, read back as the counts that
cutting the documents again gives."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from ivr.analysis.pretoken_table import PretokenRecorder, read_pretoken_counts
from ivr.analysis.spans import count_pretokens
from ivr.tokenizers.distill.pre_tokenizer import with_rules
from ivr.tokenizers.io import special_text_as_text

ALPHABET = "aAb1 2\n\t'\"=-.(é中<|>s"


@pytest.fixture(scope="module")
def layouts(distilled, gpt2_bpe):
    """The stand-in's GPT-2 pre-tokenizer, and the distilled layout (byte-level normalizer, one Split with
    word rules), both encoding document text as text."""
    rules = [gpt2_bpe.encode(n, add_special_tokens=False).tokens for n in ("1234567", " 0477")]
    ruled = with_rules(distilled, [], [r for r in rules if len(r) > 1], source=gpt2_bpe)
    return [special_text_as_text(distilled), special_text_as_text(ruled)]


def record(tmp_path, tok, texts, limit=1_000):
    table = tmp_path / "table"
    table.mkdir()
    recorder = PretokenRecorder(table, limit=limit)
    for text, encoding in zip(texts, tok.encode_batch(texts, add_special_tokens=False)):
        recorder.add(text, encoding)
    return table, recorder.finish(tok, "sha", "corpus")


def same(a, b) -> None:
    assert list(a.counts.items()) == list(b.counts.items())  # in the same order: selection breaks ties by it
    assert a.capped == b.capped and (a.total_bytes, a.documents) == (b.total_bytes, b.documents)


@hsettings(max_examples=60, deadline=None)
@given(texts=st.lists(st.text(ALPHABET, max_size=40) | st.just("x <|endoftext|> 1234567 0477''s"), min_size=1,
                      max_size=8),
       cap=st.sampled_from([None, 1, 2]), fraction=st.sampled_from([0.0, 0.3, 1.0]))
def test_the_table_gives_the_counts_of_cutting_every_document(tmp_path_factory, layouts, texts, cap, fraction):
    for tok in layouts:
        table, manifest = record(tmp_path_factory.mktemp("t"), tok, texts)
        assert manifest["recorded"] and manifest["documents"] == len(texts)
        got = read_pretoken_counts(table, "sha", "corpus", cap, fraction)
        want = count_pretokens(tok, texts, cap, fraction)
        same(got[0], want[0])
        assert (got[1] is None) == (want[1] is None)
        if want[1] is not None:
            same(got[1], want[1])


def test_a_table_for_something_else_or_over_its_limit_is_not_used(tmp_path, layouts):
    tok = layouts[1]
    texts = [f"value_{i} = {i}\n" for i in range(30)]
    table, _ = record(tmp_path, tok, texts)
    assert "another distilled tokenizer or corpus" in read_pretoken_counts(table, "other", "corpus", 1, 0.1)
    assert "another distilled tokenizer or corpus" in read_pretoken_counts(table, "sha", "other", 1, 0.1)
    assert "no pre-token table" in read_pretoken_counts(tmp_path / "absent", "sha", "corpus", 1, 0.1)
    (table / "manifest.json").write_text("{", encoding="utf-8")
    assert "unreadable" in read_pretoken_counts(table, "sha", "corpus", 1, 0.1)

    over = tmp_path / "over"
    over.mkdir()
    table, manifest = record(over, tok, texts, limit=10)
    assert not manifest["recorded"] and "MAX_SELECT_PRETOKENS" in manifest["reason"]
    assert sorted(p.name for p in table.iterdir()) == ["manifest.json"]  # no partial counts left behind
    assert "not recorded" in read_pretoken_counts(table, "sha", "corpus", 1, 0.1)
    assert json.loads((table / "manifest.json").read_text())["documents"] == len(texts)
