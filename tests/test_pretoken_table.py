"""The distilled pre-token table: recorded from the encodings verification makes, read back as the counts that
cutting the documents again gives, and as the ids that encoding them with a tokenizer that cuts alike gives."""

from __future__ import annotations

import json
from unittest import mock

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st
from tokenizers import Tokenizer

from ivr.analysis import pretoken_table
from ivr.analysis.pretoken_table import PretokenRecorder, read_pretoken_counts, split_id_batches
from ivr.analysis.spans import count_pretokens
from ivr.packing import encoded_batches
from ivr.tokenizers.distill.pre_tokenizer import with_rules
from ivr.tokenizers.io import added_token_ids, encoded_pre_tokens, pre_tokens, special_text_as_text
from ivr.tokenizers.remap import build_remapped
from ivr.tokenizers.remap_rules import RemapRule

ALPHABET = "aAb1 2\n\t'\"=-.(é中<|>s"
SPECIAL = "x <|endoftext|> 1234567 0477''s == =="


@pytest.fixture(scope="module")
def layouts(distilled, gpt2_bpe):
    """The stand-in's GPT-2 pre-tokenizer, and the distilled layout (byte-level normalizer, one Split with
    word rules), both encoding document text as text."""
    rules = [gpt2_bpe.encode(n, add_special_tokens=False).tokens for n in ("1234567", " 0477")]
    ruled = with_rules(distilled, [], [r for r in rules if len(r) > 1], source=gpt2_bpe)
    return [as_text(distilled), special_text_as_text(ruled)]


@pytest.fixture(scope="module")
def remapped_layouts(layouts):
    return [remapped(tok) for tok in layouts]


def as_text(tok):
    """A copy of a shared tokenizer that encodes special tokens' text as text (the fixture stays as it is)."""
    return special_text_as_text(Tokenizer.from_str(tok.to_str()))


def remapped(tok):
    """``tok`` with two rare ids holding strings of the test texts: other ids, the same pre-tokens."""
    new = [("Ġ==", 31204), ("Ġ04", 40241)]
    rules = [RemapRule(i, tok.id_to_token(i), s, tuple(t.id for t in tok.model.tokenize(s))) for s, i in new]
    return build_remapped(tok, rules, 1e-12)


def record(directory, tok, splits, limit=1_000):
    directory.mkdir()
    recorder = PretokenRecorder(directory, added_token_ids(tok), limit=limit)
    for split, texts in splits.items():
        add = recorder.adder(split)
        for text, encoding in zip(texts, tok.encode_batch(texts, add_special_tokens=False)):
            add(text, encoding)
    return recorder.finish(tok, "sha", "corpus", 0.05)


def same(a, b) -> None:
    assert list(a.counts.items()) == list(b.counts.items())  # in the same order: selection breaks ties by it
    assert a.capped == b.capped and (a.total_bytes, a.documents) == (b.total_bytes, b.documents)


texts = st.lists(st.text(ALPHABET, max_size=40) | st.just(SPECIAL), min_size=1, max_size=8)


@hsettings(max_examples=30, deadline=None)
@given(train=texts, heldout=texts, cap=st.sampled_from([None, 1, 2]), fraction=st.sampled_from([0.0, 0.3, 1.0]))
def test_the_table_gives_the_counts_and_ids_of_cutting_every_document(tmp_path_factory, layouts, remapped_layouts,
                                                                        train, heldout, cap, fraction):
    for tok, remapped_tok in zip(layouts, remapped_layouts):
        table = tmp_path_factory.mktemp("t") / "table"
        with mock.patch.object(pretoken_table, "FLUSH_VALUES", 7):  # written in several row groups
            manifest = record(table, tok, {"train": train, "heldout": heldout})
        assert manifest["recorded"] and manifest["documents"] == {"train": len(train), "heldout": len(heldout)}
        got = read_pretoken_counts(table, "sha", "corpus", 0.05, cap, fraction)
        want = count_pretokens(tok, train, cap, fraction)
        same(got[0], want[0])
        assert (got[1] is None) == (want[1] is None)
        if want[1] is not None:
            same(got[1], want[1])
        # another model behind the same pre-tokenizer: its ids of every document, batch by batch
        for other in (tok, remapped_tok):
            for split, docs in (("train", train), ("heldout", heldout)):
                got = list(split_id_batches(table, split, other, "corpus", 0.05, docs_per_batch=3))
                want = list(encoded_batches(other, docs, docs_per_batch=3))
                assert [size for _, size in got] == [size for _, size in want]
                assert [list(map(list, ids)) for ids, _ in got] == [list(map(list, ids)) for ids, _ in want]
                assert all(a.dtype == np.int64 for ids, _ in got for a in ids)


@pytest.fixture(scope="module")
def cutters(layouts, gpt2_bpe):
    """Each layout with the ids its encoding matches in text, GPT-2's own among them (copies made once)."""
    return [(tok, frozenset(added_token_ids(tok))) for tok in (*layouts, as_text(gpt2_bpe))]


@hsettings(max_examples=40, deadline=None)
@given(text=st.text(ALPHABET, max_size=60) | st.just(SPECIAL))
def test_an_encodings_tokens_spell_the_pre_tokens_of_cutting_the_text(cutters, gpt2_bpe, text):
    for tok, added in cutters:
        assert encoded_pre_tokens(tok.encode(text, add_special_tokens=False), added) == pre_tokens(tok, text)
    # an added token matched in text is cut as text by the pre-tokenizer alone: the encoding cannot say
    added = frozenset(added_token_ids(gpt2_bpe))
    assert encoded_pre_tokens(gpt2_bpe.encode(text + "<|endoftext|>", add_special_tokens=False), added) is None


def test_a_table_for_something_else_or_over_its_limit_is_not_used(tmp_path, layouts, gpt2_bpe):
    tok = layouts[1]
    docs = [f"value_{i} = {i}\n" for i in range(30)]
    table = tmp_path / "table"
    record(table, tok, {"train": docs, "heldout": docs[:3]})
    for args in (("other", "corpus", 0.05), ("sha", "other", 0.05), ("sha", "corpus", 0.1)):
        assert "recorded for another" in read_pretoken_counts(table, *args, 1, 0.1)
    assert "recorded for another cutting" in split_id_batches(table, "train", as_text(gpt2_bpe), "corpus", 0.05)
    assert "recorded for another corpus" in split_id_batches(table, "train", tok, "other", 0.05)
    assert "no pre-token table" in read_pretoken_counts(tmp_path / "absent", "sha", "corpus", 0.05, 1, 0.1)
    (table / "manifest.json").write_text("{", encoding="utf-8")
    assert "manifest.json: not valid JSON" in read_pretoken_counts(table, "sha", "corpus", 0.05, 1, 0.1)
    (table / "manifest.json").write_text("[]", encoding="utf-8")
    assert "manifest.json: not a JSON object" in read_pretoken_counts(table, "sha", "corpus", 0.05, 1, 0.1)

    over = tmp_path / "over"
    manifest = record(over, tok, {"train": docs, "heldout": docs[:3]}, limit=10)
    assert not manifest["recorded"] and "MAX_SELECT_PRETOKENS" in manifest["reason"]
    assert sorted(p.name for p in over.iterdir()) == ["manifest.json"]  # no partial tables left behind
    assert "not recorded" in read_pretoken_counts(over, "sha", "corpus", 0.05, 1, 0.1)
    assert "not recorded" in split_id_batches(over, "heldout", tok, "corpus", 0.05)
    assert json.loads((over / "manifest.json").read_text())["documents"] == {"train": 30, "heldout": 3}


def test_a_document_holding_an_added_token_matched_in_text_stops_the_recording(tmp_path, layouts):

    tok = special_text_as_text(Tokenizer.from_str(layouts[1].to_str()))
    tok.add_tokens(["    "])  # not special: matched in text, as some code models' indentation tokens are
    plain = ["def f():\n\treturn 1\n", "x = 2\n"]
    manifest = record(tmp_path / "plain", tok, {"train": plain, "heldout": plain[:1]})
    assert manifest["recorded"]
    same(read_pretoken_counts(tmp_path / "plain", "sha", "corpus", 0.05, 1, 0)[0], count_pretokens(tok, plain, 1, 0)[0])
    with mock.patch.object(pretoken_table, "FLUSH_VALUES", 1):  # the documents after it would be written at once
        manifest = record(tmp_path / "added", tok, {"train": plain + ["def f():\n        return 1\n"], "heldout": plain})
    assert not manifest["recorded"] and "added token" in manifest["reason"]
    assert sorted(p.name for p in (tmp_path / "added").iterdir()) == ["manifest.json"]


def test_a_table_holding_exactly_its_limit_of_distinct_pre_tokens_is_recorded(tmp_path, layouts):
    tok = layouts[1]
    docs = {"train": ["x = 1\n", "y = 2\n"], "heldout": ["x = 2\n"]}
    distinct = len({p for split in docs.values() for text in split for p in pre_tokens(tok, text)})
    assert record(tmp_path / "at", tok, docs, limit=distinct)["pretokens"] == distinct
    assert not record(tmp_path / "over", tok, docs, limit=distinct - 1)["recorded"]


def test_an_empty_split_is_recorded_as_no_documents(tmp_path, layouts):
    """A tiny corpus can leave the held-out split empty: its table gives no batches, not a missing file."""
    tok = layouts[1]
    record(tmp_path / "table", tok, {"train": ["x = 1\n"], "heldout": []})
    assert list(split_id_batches(tmp_path / "table", "heldout", tok, "corpus", 0.05)) == []
    [(ids, size)] = split_id_batches(tmp_path / "table", "train", tok, "corpus", 0.05)
    assert [list(a) for a in ids] == [tok.encode("x = 1\n", add_special_tokens=False).ids] and size == 6


def test_a_table_not_recorded_or_of_another_version_says_why(tmp_path, layouts):
    tok = layouts[1]
    docs = [f"value_{i} = {i}\n" for i in range(30)]
    record(tmp_path / "over", tok, {"train": docs, "heldout": docs[:3]}, limit=10)
    assert "not recorded (more than 10 distinct pre-tokens" in read_pretoken_counts(
        tmp_path / "over", "sha", "corpus", 0.05, 1, 0.1)
    table = tmp_path / "old"
    record(table, tok, {"train": docs[:2], "heldout": docs[:1]})
    manifest = json.loads((table / "manifest.json").read_text(encoding="utf-8"))
    (table / "manifest.json").write_text(json.dumps({**manifest, "version": 1}), encoding="utf-8")
    for why in (read_pretoken_counts(table, "sha", "corpus", 0.05, 1, 0.1),
                split_id_batches(table, "train", tok, "corpus", 0.05)):
        assert why == f"{table / 'manifest.json'}: table version 1, not {pretoken_table.VERSION}"


@pytest.mark.parametrize("name", pretoken_table.TABLE_FILES)
@pytest.mark.parametrize("damage", ["truncated", "deleted"])
def test_a_truncated_or_missing_table_file_is_not_used_and_says_which(tmp_path, layouts, name, damage):
    """A run that keeps a checkpoint's tokenizer reads the table without the stage stamp's check: the datasets
    then encode the split, naming the file."""
    tok = layouts[1]
    docs = [f"value_{i} = {i}\n" for i in range(30)]
    table = tmp_path / "table"
    record(table, tok, {"train": docs, "heldout": docs[:3]})
    damaged = table / name
    if damage == "deleted":
        damaged.unlink()
    else:
        damaged.write_bytes(damaged.read_bytes()[:-20])
    for why in (read_pretoken_counts(table, "sha", "corpus", 0.05, 1, 0.1),
                split_id_batches(table, "train", tok, "corpus", 0.05)):
        assert why == f"{damaged}: missing" if damage == "deleted" else why.startswith(f"{damaged}: damaged (")


def test_the_cutting_fingerprint_changes_with_the_normalizer_and_the_cutting_of_special_token_text():
    """A table is reused only by tokenizers that cut text alike: another normalizer, or special tokens' text
    matched instead of cut as text, gives other pre-tokens."""
    from tokenizers import models, normalizers, pre_tokenizers

    def tokenizer():  # the model is no part of the cutting: a one-word one will do
        tok = Tokenizer(models.WordLevel({"a": 0, "<s>": 1}, unk_token="a"))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()
        tok.add_special_tokens(["<s>"])
        return tok

    plain = pretoken_table.cutting_fingerprint(tokenizer())
    assert pretoken_table.cutting_fingerprint(tokenizer()) == plain
    normalized = tokenizer()
    normalized.normalizer = normalizers.NFKC()
    special_matched = tokenizer()
    special_matched.encode_special_tokens = True
    assert plain not in {pretoken_table.cutting_fingerprint(t) for t in (normalized, special_matched)}
