"""Corpus cleaning: formats, normalisation, reuse, the held-out split, and every kind of bad input."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.cleaned_corpus import (CorpusError, check_splits, corpus_content, is_heldout, iter_documents, read_manifest,
                                 split_membership)
from ivr.corpus import CleaningOptions, clean_corpus, cleaned_from_current_sources
from ivr.raw_records import check_text, split_long


def _clean(raw: Path, tmp_path: Path, **kw) -> dict:
    force = kw.pop("force", False)
    return clean_corpus(raw, tmp_path / "cleaned", CleaningOptions(**kw), force=force)


def test_txt_jsonl_json_become_documents(raw_dir, tmp_path):
    manifest = _clean(raw_dir, tmp_path)
    docs = {d.doc_id: d.text for d in iter_documents(tmp_path / "cleaned")}
    assert manifest["documents"] == len(docs) == 1 + 5 + 2
    # BOM dropped and CRLF normalised; nothing else changed
    assert docs["readme.txt:0"] == "Hello world!\nSecond line.\n"
    assert docs["sub/notes.jsonl:3"] == "def f2(x):\n    return x + 2\n"
    assert docs["list.json:0"] == "Ünïcödé text"
    assert (tmp_path / "cleaned" / "sub" / "notes.jsonl.jsonl").is_file()
    assert manifest["bytes"] == sum(len(t.encode()) for t in docs.values())


def test_existing_cleaned_corpus_is_reused_unless_forced(raw_dir, tmp_path):
    _clean(raw_dir, tmp_path)
    marker = tmp_path / "cleaned" / "readme.txt.jsonl"
    written = marker.stat().st_ino
    _clean(raw_dir, tmp_path)
    assert marker.stat().st_ino == written
    _clean(raw_dir, tmp_path, force=True)
    assert marker.stat().st_ino != written  # a new file, in the folder that replaced the old one


def test_changed_raw_file_triggers_cleaning(raw_dir, tmp_path):
    _clean(raw_dir, tmp_path)
    (raw_dir / "readme.txt").write_text("new content, longer than before")
    _clean(raw_dir, tmp_path)
    docs = {d.doc_id: d.text for d in iter_documents(tmp_path / "cleaned")}
    assert docs["readme.txt:0"] == "new content, longer than before"


def test_malformed_jsonl_line_names_file_and_line(raw_dir, tmp_path):
    (raw_dir / "bad.jsonl").write_text('{"text": "ok"}\n{"text": broken}\n')
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: invalid JSON"):
        _clean(raw_dir, tmp_path)
    assert not (tmp_path / "cleaned").exists(), "a failed build must leave nothing behind"


@pytest.mark.parametrize("encoding", ["utf-16", "utf-32", "utf-16-le"])
def test_jsonl_in_a_wide_encoding_is_read_by_lines_of_text(tmp_path, encoding):
    raw = tmp_path / "raw"
    raw.mkdir()
    # U+0A0D and U+0D0A hold the bytes of line breaks; U+2028 inside a record does not end its line
    records = [{"text": "first ਍ record"}, {"text": "second ഊ\u2028record"}]
    (raw / "wide.jsonl").write_bytes("\r\n".join(json.dumps(r, ensure_ascii=False) for r in records).encode(encoding))
    clean_corpus(raw, tmp_path / "cleaned", CleaningOptions(encoding=encoding))
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == [r["text"] for r in records]
    (raw / "wide.jsonl").write_bytes('{"text": "ok"}\n{"text": broken}\n'.encode(encoding))
    with pytest.raises(CorpusError, match=r"wide\.jsonl:2: invalid JSON"):
        clean_corpus(raw, tmp_path / "again", CleaningOptions(encoding=encoding))


def test_json_record_without_text_key_names_file_and_record(raw_dir, tmp_path):
    (raw_dir / "norec.json").write_text(json.dumps([{"text": "a"}, {"body": "b"}]))
    with pytest.raises(CorpusError, match=r"norec\.json record 2: no 'text' field \(fields: body\)"):
        _clean(raw_dir, tmp_path)


def test_custom_text_key(raw_dir, tmp_path):
    for p in list(raw_dir.rglob("*.json*")):
        p.unlink()
    (raw_dir / "c.jsonl").write_text(json.dumps({"body": "custom key"}) + "\n")
    _clean(raw_dir, tmp_path, text_key="body")
    assert "custom key" in [d.text for d in iter_documents(tmp_path / "cleaned")]


def test_undecodable_bytes_name_file_offset_and_suggest_encoding(raw_dir, tmp_path):
    (raw_dir / "latin.txt").write_bytes("café".encode("latin-1"))
    with pytest.raises(CorpusError, match=r"latin\.txt: bytes at offset 3 \(0xe9\) are not valid utf-8.*--encoding"):
        _clean(raw_dir, tmp_path)
    # and the suggested fix works
    for p in raw_dir.rglob("*"):
        if p.is_file() and p.name != "latin.txt":
            p.unlink()
    _clean(raw_dir, tmp_path, encoding="latin-1")
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == ["café"]


def test_undecodable_jsonl_line_names_line(raw_dir, tmp_path):
    (raw_dir / "enc.jsonl").write_bytes(b'{"text": "fine"}\n{"text": "caf\xe9"}\n')
    with pytest.raises(CorpusError, match=r"enc\.jsonl:2: bytes at offset 30"):
        _clean(raw_dir, tmp_path)


@pytest.mark.parametrize("make", ["missing", "empty", "wrong_suffix"])
def test_missing_or_empty_raw_dir_says_what_to_put_where(tmp_path, make):
    raw = tmp_path / "raw"
    if make != "missing":
        raw.mkdir()
    if make == "wrong_suffix":
        (raw / "data.csv").write_text("a,b\n")
    with pytest.raises(CorpusError, match=r"raw corpus directory .*raw.*\.txt.*builtin_corpus"):
        _clean(raw, tmp_path)


def test_skip_policy_counts_and_records_bad_records(raw_dir, tmp_path, capsys):
    (raw_dir / "bad.jsonl").write_text('{"text": "ok"}\nnot json\n{"other": 1}\n')
    manifest = _clean(raw_dir, tmp_path, on_bad_record="skip")
    assert manifest["skipped_records"] == 2
    assert "skipped 2 bad records" in capsys.readouterr().out
    assert "ok" in [d.text for d in iter_documents(tmp_path / "cleaned")]


def test_heldout_split_is_stable_and_disjoint(raw_dir, tmp_path):
    _clean(raw_dir, tmp_path)
    train = [d.doc_id for d in iter_documents(tmp_path / "cleaned", "train", 0.5)]
    held = [d.doc_id for d in iter_documents(tmp_path / "cleaned", "heldout", 0.5)]
    assert set(train).isdisjoint(held) and len(train) + len(held) == 8
    assert all(is_heldout(i, 0.5) for i in held) and not any(is_heldout(i, 0.5) for i in train)
    fraction = sum(is_heldout(f"doc{i}", 0.1) for i in range(10000)) / 10000
    assert 0.08 < fraction < 0.12
    # the same on every machine and in every process (no salted hash): a document's split is part of the
    # artifacts' meaning, and these memberships must never change
    assert [i for i in range(40) if is_heldout(f"doc{i}", 0.2)] == [8, 11, 14, 16, 17, 20, 22, 25, 26, 37, 38]


def test_builtin_corpus_reads_python_stdlib(tmp_path):
    manifest = _clean(tmp_path / "absent", tmp_path, builtin_corpus="python_stdlib", builtin_corpus_max_mb=0.2)
    assert 0 < manifest["bytes"] <= 200_000
    assert all(f["cleaned"].startswith("builtin/python_stdlib/") for f in manifest["files"])
    assert not any("/test/" in f["cleaned"] for f in manifest["files"])


def test_the_manifest_records_the_builtin_corpus_and_the_cap_it_was_drawn_under(raw_dir, tmp_path):
    manifest = _clean(tmp_path / "absent", tmp_path, builtin_corpus="python_stdlib", builtin_corpus_max_mb=0.2)
    assert (manifest["builtin_corpus"], manifest["builtin_corpus_max_mb"]) == ("python_stdlib", 0.2)
    # a cap that draws the same files is recorded too (a reader of the manifest compares it with the config)
    same_files = (sum(Path(f["source"]).stat().st_size for f in manifest["files"]) + 0.5) / 1e6
    again = _clean(tmp_path / "absent", tmp_path, builtin_corpus="python_stdlib", builtin_corpus_max_mb=same_files)
    assert again["builtin_corpus_max_mb"] == same_files and again["content"] == manifest["content"]
    assert again["files"] == manifest["files"]
    # a stage run alone compares what init would: the cap and the bad-record policy in force count too
    options = CleaningOptions(builtin_corpus="python_stdlib", builtin_corpus_max_mb=same_files)
    assert cleaned_from_current_sources(tmp_path / "absent", tmp_path / "cleaned", options)
    assert not cleaned_from_current_sources(tmp_path / "absent", tmp_path / "cleaned",
                                            replace(options, builtin_corpus_max_mb=0.2))
    assert not cleaned_from_current_sources(tmp_path / "absent", tmp_path / "cleaned",
                                            replace(options, on_bad_record="skip"))
    # no built-in corpus, no cap
    plain = _clean(raw_dir, tmp_path / "plain", builtin_corpus_max_mb=0.2)
    assert (plain["builtin_corpus"], plain["builtin_corpus_max_mb"]) == (None, None)


def test_binary_files_are_refused_with_the_file_named(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "image.txt").write_bytes(bytes(range(256)) * 40)
    with pytest.raises(CorpusError, match=r"image\.txt: looks binary"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions(encoding="latin-1"))
    (raw / "image.txt").unlink()
    (raw / "r.jsonl").write_text(json.dumps({"text": "ok\x00\x01\x02"}) + "\n")
    with pytest.raises(CorpusError, match=r"r\.jsonl:1: looks binary"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())


def test_a_binary_txt_is_called_binary_in_utf8_too_and_skip_skips_it(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "image.txt").write_bytes(bytes(range(256)) * 40)  # not UTF-8 either: the encoding is not the problem
    with pytest.raises(CorpusError, match=r"image\.txt: looks binary"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())
    (raw / "good.txt").write_text("a good document\n", encoding="utf-8")
    manifest = clean_corpus(raw, tmp_path / "clean", CleaningOptions(on_bad_record="skip"))
    assert manifest["documents"] == 1 and manifest["skipped_records"] == 1
    assert "image.txt: looks binary" in manifest["skipped_examples"][0]


def test_a_damaged_manifest_is_named_and_init_cleans_again(raw_dir, tmp_path):
    manifest = _clean(raw_dir, tmp_path)
    path = tmp_path / "cleaned" / "manifest.json"
    path.write_text(path.read_text()[:100], encoding="utf-8")
    with pytest.raises(CorpusError, match=r"manifest\.json: not valid JSON .*: damaged; run `ivr init` to clean the "
                                          r"corpus again"):
        read_manifest(tmp_path / "cleaned")
    for valid_json in ("[]", '{"version": 1, "fingerprint": "x"}',  # JSON, but not a manifest ivr wrote
                       '{"version": 1, "fingerprint": "x", "files": ["a.jsonl"]}'):
        path.write_text(valid_json, encoding="utf-8")
        with pytest.raises(CorpusError, match=r"manifest\.json: (not a JSON object|damaged \(not a manifest ivr wrote)"):
            read_manifest(tmp_path / "cleaned")
    again = _clean(raw_dir, tmp_path)
    # the same corpus; only the signature of the files written anew differs
    assert {**again, "cleaned_signature": None} == {**manifest, "cleaned_signature": None}


def test_ordinary_control_characters_are_text():
    assert check_text("a\tb\nc\fd\ve" * 100, "x") == "a\tb\nc\fd\ve" * 100


@given(st.text(alphabet="ab \n", max_size=300), st.integers(min_value=1, max_value=40))
def test_split_long_pieces_join_back_and_fit(text, max_chars):
    pieces = split_long(text, max_chars)
    assert "".join(pieces) == text
    assert all(0 < len(p) <= max_chars for p in pieces)


def test_split_long_cuts_at_paragraphs_then_lines():
    assert split_long("aa\n\nbb\ncc\n\ndd", 8) == ["aa\n\n", "bb\ncc\n\n", "dd"]
    assert split_long("x" * 10, 4) == ["xxxx", "xxxx", "xx"]


def test_one_large_document_is_cut_so_both_splits_have_documents(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "book.txt").write_text("".join(f"Paragraph {i} of a long book.\n\n" for i in range(2000)))
    manifest = clean_corpus(raw, tmp_path / "clean", CleaningOptions(max_document_chars=1000))
    assert manifest["documents"] > 50
    counts = check_splits(tmp_path / "clean", 0.05, 1000)
    assert counts["heldout"] > 0 and counts["train"] > 0
    texts = [d.text for d in iter_documents(tmp_path / "clean")]
    assert "".join(texts) == (raw / "book.txt").read_text()


def test_an_empty_split_fails_early_and_says_what_to_change(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "one.txt").write_text("a single short document")
    clean_corpus(raw, tmp_path / "clean", CleaningOptions())
    with pytest.raises(CorpusError, match=r"has 1 documents and none falls in the (heldout|train) split.*max_document_chars"):
        check_splits(tmp_path / "clean", 0.5, 250_000)


def test_byte_order_marks_linked_and_hidden_folders_and_suffix_case(tmp_path):
    raw = tmp_path / "raw"
    (raw / ".ipynb_checkpoints").mkdir(parents=True)
    (raw / "a.jsonl").write_bytes(b'\xef\xbb\xbf{"text": "first"}\n{"text": "second"}\n')
    (raw / "b.json").write_bytes(b'\xef\xbb\xbf[{"text": "third"}]')
    (raw / "C.TXT").write_text("fourth")
    (raw / ".ipynb_checkpoints" / "a-checkpoint.txt").write_text("a stale copy")
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "deep" / "d.txt").write_text("fifth")
    (raw / "linked").symlink_to(elsewhere, target_is_directory=True)
    (raw / "a_link").symlink_to(raw / "real", target_is_directory=True)  # listed before its folder, named after it
    (raw / "real").mkdir()
    (raw / "real" / "r.txt").write_text("sixth")
    (elsewhere / "loop").symlink_to(raw, target_is_directory=True)  # read once, not forever
    _clean(raw, tmp_path)
    docs = {d.doc_id: d.text for d in iter_documents(tmp_path / "cleaned")}
    assert docs == {"C.TXT:0": "fourth", "a.jsonl:1": "first", "a.jsonl:2": "second", "b.json:0": "third",
                    "linked/deep/d.txt:0": "fifth", "real/r.txt:0": "sixth"}


@pytest.mark.parametrize("name, encoding", [("w.txt", "utf-16"), ("w.txt", "utf-32"), ("w.jsonl", "utf-16"),
                                            ("w.json", "utf-32")])
def test_a_utf16_or_utf32_file_is_named_with_the_encoding_to_pass(tmp_path, name, encoding):
    raw = tmp_path / "raw"
    raw.mkdir()
    text = "text saved as " + encoding
    body = text if name.endswith(".txt") else json.dumps({"text": text}) + "\n"
    (raw / name).write_bytes(body.encode(encoding))
    with pytest.raises(CorpusError, match=rf"w\.(txt|jsonl?): starts with a {encoding.upper()} byte-order mark but "
                                          rf"data.encoding is utf-8; pass --data.encoding {encoding}"):
        _clean(raw, tmp_path)
    _clean(raw, tmp_path, encoding=encoding)
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == [text]


def test_data_encoding_is_the_users_files_and_must_be_a_text_encoding(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "de.txt").write_bytes("Fußballer".encode("cp1252"))
    _clean(raw, tmp_path, encoding="cp1252", builtin_corpus="python_stdlib", builtin_corpus_max_mb=0.3)
    docs = {d.doc_id: d.text for d in iter_documents(tmp_path / "cleaned")}
    assert docs["de.txt:0"] == "Fußballer"
    # the built-in corpus is read as UTF-8 whatever data.encoding says: no mojibake, no blame on a stdlib file
    stdlib = [t for k, t in docs.items() if k.startswith("builtin/")]
    assert stdlib and all("Ã" not in t for t in stdlib)
    for bad in ("utf8x", "rot13"):
        with pytest.raises(CorpusError, match=f"data.encoding: unknown encoding '{bad}'"):
            CleaningOptions(encoding=bad)


def test_bad_records_that_cannot_be_written_or_converted_are_named_and_skipped(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    big = "9" * 5000
    (raw / "a.jsonl").write_text('{"\\ud800": "x"}\n{"text": "ok", "n": ' + big + '}\n{"text": "kept"}\n',
                                 encoding="utf-8")
    with pytest.raises(CorpusError, match=r"a\.jsonl:1: no 'text' field \(fields: \\ud800\)"):
        _clean(raw, tmp_path)
    manifest = _clean(raw, tmp_path, on_bad_record="skip")
    assert manifest["skipped_records"] == 2 and "a.jsonl:2: invalid JSON (Exceeds the limit" in manifest["skipped_examples"][1]
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == ["kept"]


def test_an_empty_json_file_holds_no_records_and_short_texts_with_controls_are_text(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "empty.json").write_text("  \n", encoding="utf-8")
    (raw / "log.jsonl").write_text(json.dumps({"text": "\x1b[1mBold\x1b[0m"}) + "\n", encoding="utf-8")
    _clean(raw, tmp_path)
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == ["\x1b[1mBold\x1b[0m"]
    with pytest.raises(CorpusError, match="looks binary"):
        check_text("\x1b[1mBold\x1b[0m" * 40, "x")


def test_unreadable_folders_and_broken_links_are_named(tmp_path):
    raw = tmp_path / "raw"
    (raw / "ok").mkdir(parents=True)
    (raw / "ok" / "a.txt").write_text("text", encoding="utf-8")
    (raw / "big.txt").symlink_to(tmp_path / "annex" / "not-fetched")
    with pytest.raises(CorpusError, match=r"raw corpus file .*big\.txt: a link to .*not-fetched, which does not exist"):
        _clean(raw, tmp_path)
    (raw / "big.txt").unlink()
    with pytest.raises(CorpusError, match=r"raw corpus folder .*gone: cannot be read"):
        from ivr import corpus

        def failing_walk(top, onerror=None, followlinks=False):  # a folder the walk cannot list (permissions)
            onerror(PermissionError(13, "Permission denied", str(top / "gone")))
            yield from ()

        import unittest.mock
        with unittest.mock.patch.object(corpus.os, "walk", failing_walk):
            _clean(raw, tmp_path)


def test_a_damaged_cleaned_file_is_named_with_its_line(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "d.jsonl").write_text("".join(json.dumps({"text": f"document {i}"}) + "\n" for i in range(40)),
                                 encoding="utf-8")
    _clean(raw, tmp_path)
    cleaned = tmp_path / "cleaned" / "d.jsonl.jsonl"
    data = cleaned.read_bytes()
    cleaned.write_bytes(data[: data.index(b"\n", 100) + 10])  # a cut second or third record
    with pytest.raises(CorpusError, match=r"d\.jsonl\.jsonl:\d: damaged cleaned corpus .*ivr init --normalize-force"):
        list(iter_documents(tmp_path / "cleaned"))
    with pytest.raises(CorpusError, match=r"d\.jsonl\.jsonl:\d: damaged cleaned corpus"):
        check_splits(tmp_path / "cleaned", 0.5, 1000)
    with pytest.raises(CorpusError, match=r"d\.jsonl\.jsonl:\d: damaged cleaned corpus"):
        list(split_membership(tmp_path / "cleaned"))
    cleaned.write_bytes(data[:50] + b"\xff" + data[51:])  # a byte that is no UTF-8
    for read in (iter_documents, split_membership):
        with pytest.raises(CorpusError, match=r"d\.jsonl\.jsonl: damaged cleaned corpus \('utf-8' codec"):
            list(read(tmp_path / "cleaned"))


def test_a_change_of_the_cleaning_code_cleans_again(tmp_path, monkeypatch):
    from ivr import corpus

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("text", encoding="utf-8")
    first = _clean(raw, tmp_path)
    assert _clean(raw, tmp_path)["fingerprint"] == first["fingerprint"]
    monkeypatch.setattr(corpus, "code_fingerprint", lambda modules: "another cleaning")
    assert _clean(raw, tmp_path)["fingerprint"] != first["fingerprint"]


@pytest.mark.parametrize("name, lines, says", [
    ("s.jsonl", '{"text": "fine"}\n{"text": "bad \\ud800 x"}\n', r"s\.jsonl:2: holds a lone surrogate '\\ud800' at character 4"),
    ("bad.jsonl", '{"text": "fine"}\n\n{"text": tru}\n', r"bad\.jsonl:3: invalid JSON \(Expecting value at column 10\)"),
], ids=["lone surrogate", "error inside a line"])
def test_a_bad_record_is_named_by_line_and_skip_skips_it(tmp_path, name, lines, says):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name).write_text(lines, encoding="utf-8")
    with pytest.raises(CorpusError, match=says):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())
    # the good lines still read, their text unchanged (the terminator was never part of a record)
    manifest = clean_corpus(raw, tmp_path / "clean", CleaningOptions(on_bad_record="skip"))
    assert manifest["documents"] == 1 and manifest["skipped_records"] == 1
    assert [d.text for d in iter_documents(tmp_path / "clean")] == ["fine"]


@pytest.mark.parametrize("newline", ["\n", "\r\n", "\r"], ids=["lf", "crlf", "cr"])
def test_an_invalid_json_file_names_the_line_and_column_whatever_ends_its_lines(tmp_path, newline):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.json").write_bytes(newline.join(['[{"text": "a"},', ' {"text": "b"},', '  {"text": tru}]']).encode())
    with pytest.raises(CorpusError, match=r"a\.json:3: invalid JSON \(Expecting value at column 12\)"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())


@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_json_lines_in_a_json_file_are_named_as_such(tmp_path, newline):
    """A record per line under the .json suffix (how many exporters name JSON Lines) is one file of many JSON values:
    the error says to rename it, not only that there is extra data; a list that is merely followed by more data is
    not taken for JSON Lines."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.json").write_text(newline.join(['{"text": "a"}', '{"text": "b"}', ""]), encoding="utf-8", newline="")
    with pytest.raises(CorpusError, match=r"a\.json:2: invalid JSON \(Extra data at column 1\): the file holds a JSON "
                                          r"object per line, as JSON Lines does; rename it to a\.jsonl"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())
    (raw / "a.json").write_text('[{"text": "a"}]\n[{"text": "b"}]\n', encoding="utf-8")
    with pytest.raises(CorpusError, match=r"a\.json:2: invalid JSON \(Extra data at column 1\) \("):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())


@pytest.mark.parametrize("name, where", [("deep.jsonl", r"deep\.jsonl:2"), ("deep.json", r"deep\.json")])
def test_json_nested_too_deeply_is_an_invalid_record_not_a_recursion_error(tmp_path, name, where):
    raw = tmp_path / "raw"
    raw.mkdir()
    deep = "[" * 100_000 + "]" * 100_000
    (raw / name).write_text(f'{{"text": "fine"}}\n{deep}\n' if name.endswith(".jsonl") else deep, encoding="utf-8")
    (raw / "ok.txt").write_text("a good document")
    with pytest.raises(CorpusError, match=rf"{where}: invalid JSON \(nested deeper"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())
    manifest = clean_corpus(raw, tmp_path / "clean", CleaningOptions(on_bad_record="skip"))
    assert manifest["skipped_records"] == 1


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_a_nul_past_the_first_64k_characters_is_still_binary(tmp_path, encoding):
    raw = tmp_path / "raw"
    raw.mkdir()
    tail = "caf\xe9" if encoding == "latin-1" else "tail"  # latin-1 bytes: not UTF-8, refused as binary all the same
    (raw / "late.txt").write_bytes(("x" * 70_000 + "\0" + tail).encode(encoding))
    with pytest.raises(CorpusError, match=r"late\.txt: looks binary \(0 control characters in the first 65536; "
                                          r"a NUL at line 1, column 70001\)"):
        clean_corpus(raw, tmp_path / "clean", CleaningOptions())


def test_a_cleaned_copy_of_changed_raw_files_is_told_apart(tmp_path, caplog):
    from ivr import pipeline
    from ivr.corpus import cleaned_from_current_sources
    from ivr.paths import ArtifactPaths
    from ivr.pipeline_config import PipelineConfig

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("text", encoding="utf-8")
    assert cleaned_from_current_sources(raw, tmp_path / "cleaned", CleaningOptions())  # nothing cleaned yet
    _clean(raw, tmp_path)
    assert cleaned_from_current_sources(raw, tmp_path / "cleaned", CleaningOptions())
    assert not cleaned_from_current_sources(raw, tmp_path / "cleaned", CleaningOptions(max_document_chars=10))
    (raw / "a.txt").write_text("text, and more", encoding="utf-8")
    assert not cleaned_from_current_sources(raw, tmp_path / "cleaned", CleaningOptions())
    # a stage command run alone says it reads the earlier copy (it then fails here: no tokenizer was fetched)
    paths = ArtifactPaths.from_config(tmp_path / "art", raw_corpora_dir=raw, cleaned_corpora_dir=tmp_path / "cleaned")
    with caplog.at_level("WARNING"), pytest.raises(FileNotFoundError):
        pipeline.run_stage(PipelineConfig(paths=paths), "analyze")
    assert "analyze reads the earlier cleaned copy" in caplog.text


def test_a_manifest_without_its_fingerprint_or_its_cleaned_file_names_is_damaged(raw_dir, tmp_path):
    """Every reader goes by the manifest's fingerprint and cleaned names: one lacking them is named as damaged,
    not a KeyError in a later stage."""
    _clean(raw_dir, tmp_path)
    path = tmp_path / "cleaned" / "manifest.json"
    for damaged in ({"version": 1, "files": [{"cleaned": "readme.txt.jsonl"}]},
                    {"version": 1, "fingerprint": "x", "files": [{"source": "readme.txt"}]}):
        path.write_text(json.dumps(damaged), encoding="utf-8")
        with pytest.raises(CorpusError, match=r"manifest\.json: damaged \(not a manifest ivr wrote"):
            read_manifest(tmp_path / "cleaned")


def test_the_corpus_key_of_the_stages_follows_the_text_not_the_raw_files_dates(raw_dir, tmp_path):
    """A raw file touched but unchanged is cleaned again, yet must not rebuild every stage after it."""
    first = _clean(raw_dir, tmp_path)
    key = corpus_content(tmp_path / "cleaned")
    readme = raw_dir / "readme.txt"
    st = readme.stat()
    os.utime(readme, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert _clean(raw_dir, tmp_path)["fingerprint"] != first["fingerprint"]
    assert corpus_content(tmp_path / "cleaned") == key
    readme.write_text("another text", encoding="utf-8")
    _clean(raw_dir, tmp_path)
    assert corpus_content(tmp_path / "cleaned") != key


def test_a_manifest_written_without_the_cleaned_files_signature_is_still_read(raw_dir, tmp_path):
    manifest = _clean(raw_dir, tmp_path)
    del manifest["cleaned_signature"]
    (tmp_path / "cleaned" / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    assert corpus_content(tmp_path / "cleaned") == manifest["content"]


@pytest.mark.parametrize("fraction, empty", [(0.0, "heldout"), (1.0, "train")])
def test_the_split_a_held_out_fraction_leaves_empty_is_the_one_named(raw_dir, tmp_path, fraction, empty):
    documents = _clean(raw_dir, tmp_path)["documents"]
    with pytest.raises(CorpusError, match=rf"has {documents} documents and none falls in the {empty} split "
                                          rf"\(data\.heldout_fraction={fraction}\)"):
        check_splits(tmp_path / "cleaned", fraction, 250_000)


def test_a_long_document_that_begins_with_a_blank_line_loses_none_of_it_when_cut(tmp_path):
    """A paragraph break at a piece's very start is no place to cut: the blank line would be a piece of its own,
    dropped as an empty document."""
    raw = tmp_path / "raw"
    raw.mkdir()
    text = "\n\n" + "x" * 8 + "\n" + "y" * 8
    (raw / "a.txt").write_text(text, encoding="utf-8")
    _clean(raw, tmp_path, max_document_chars=12)
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == [text[:11], text[11:]]


def test_a_piece_of_a_long_document_that_is_only_blank_lines_is_no_document(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("a" * 10 + "\n" * 12 + "b", encoding="utf-8")  # cut after 10 and after 20 characters
    _clean(raw, tmp_path, max_document_chars=10)
    assert [(d.doc_id, d.text) for d in iter_documents(tmp_path / "cleaned")] == [
        ("a.txt:0#0", "a" * 10), ("a.txt:0#2", "\n\nb")]


def test_a_record_without_the_text_field_lists_at_most_eight_of_its_fields_sorted_or_none(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    fields = {f"f{i}": i for i in reversed(range(10))}
    (raw / "r.jsonl").write_text(f'{{"text": "kept"}}\n{json.dumps(fields)}\n{{}}\n', encoding="utf-8")
    manifest = _clean(raw, tmp_path, on_bad_record="skip")
    assert manifest["skipped_examples"] == [
        f"{raw / 'r.jsonl'}:2: no 'text' field (fields: f0, f1, f2, f3, f4, f5, f6, f7); set --data.text_key "
        "(`ivr init --text-key`)",
        f"{raw / 'r.jsonl'}:3: no 'text' field (fields: none); set --data.text_key (`ivr init --text-key`)"]


def test_a_record_that_is_no_object_or_whose_text_is_no_string_is_named_and_skipped(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "r.jsonl").write_text('{"text": "kept"}\n["text"]\n"text"\n{"text": 3}\n{"text": null}\n', encoding="utf-8")
    manifest = _clean(raw, tmp_path, on_bad_record="skip")
    where = raw / "r.jsonl"
    assert manifest["skipped_examples"] == [
        f"{where}:2: expected a JSON object with a 'text' field, got list",
        f"{where}:3: expected a JSON object with a 'text' field, got str",
        f"{where}:4: field 'text' is int, expected a string",
        f"{where}:5: field 'text' is NoneType, expected a string"]
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == ["kept"]


@pytest.mark.parametrize("then, texts", [({"text_key": "body"}, ["the body"]), ({"encoding": "cp1252"}, ["5 \u20ac"])],
                         ids=["text key", "encoding"])
def test_another_text_key_or_encoding_cleans_the_corpus_again(tmp_path, then, texts):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b'{"text": "5 \x80", "body": "the body"}\n')  # 0x80: U+0080 in latin-1, the euro in cp1252
    first = {"text_key": "text", "encoding": "latin-1"}
    _clean(raw, tmp_path, **first)
    _clean(raw, tmp_path, **{**first, **then})
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == texts


def test_a_corpus_cleaned_skipping_bad_records_is_cleaned_again_when_they_must_raise(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "bad.jsonl").write_text('{"text": "ok"}\n{"text": broken}\n', encoding="utf-8")
    assert _clean(raw, tmp_path, on_bad_record="skip")["skipped_records"] == 1
    with pytest.raises(CorpusError, match=r"bad\.jsonl:2: invalid JSON"):
        _clean(raw, tmp_path, on_bad_record="raise")


def test_a_raw_file_without_documents_gets_no_cleaned_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_text("text", encoding="utf-8")
    (raw / "blank.txt").write_text("  \n", encoding="utf-8")
    manifest = _clean(raw, tmp_path)
    assert [f["cleaned"] for f in manifest["files"]] == ["a.txt.jsonl"]
    assert not (tmp_path / "cleaned" / "blank.txt.jsonl").exists()


def test_checking_whether_the_raw_files_changed_logs_nothing(tmp_path, caplog):
    """Every stage command asks; the warning that the raw folder gives no files is init's to give, once."""
    options = CleaningOptions(builtin_corpus="python_stdlib", builtin_corpus_max_mb=0.01)
    clean_corpus(tmp_path / "absent", tmp_path / "cleaned", options)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ivr.corpus"):
        assert cleaned_from_current_sources(tmp_path / "absent", tmp_path / "cleaned", options)
    assert not caplog.records
