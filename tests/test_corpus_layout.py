"""Which raw files are read, and which cleaned folder may be replaced: cleaning swaps the cleaned folder whole, so
it must never be the raw folder, hold it, lie in it, or be a folder of the user's."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from ivr.cleaned_corpus import CorpusError, iter_documents
from ivr.corpus import CleaningOptions, clean_corpus


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("cleaned, how", [(".", "is"), ("cleaned", "lies inside"), ("..", "contains")])
def test_a_cleaned_folder_overlapping_the_raw_folder_is_refused_and_nothing_is_deleted(raw_dir, cleaned, how):
    before = _files(raw_dir)
    with pytest.raises(CorpusError, match=rf"data\.cleaned_corpora_dir \(.*\) {how} data\.raw_corpora_dir \(.*raw\)"):
        clean_corpus(raw_dir, raw_dir / cleaned, CleaningOptions())
    assert _files(raw_dir) == before


def test_a_folder_that_is_not_an_ivr_cleaned_corpus_is_never_replaced(raw_dir, tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "thesis.tex").write_text("years of work")
    (mine / "manifest.json").write_text('{"name": "some other tool"}')
    with pytest.raises(CorpusError, match=r"data\.cleaned_corpora_dir \(.*mine\) exists and is no cleaned corpus.*"
                                          r"choose an empty or new folder"):
        clean_corpus(raw_dir, mine, CleaningOptions(), force=True)
    assert _files(mine) == {"manifest.json": b'{"name": "some other tool"}', "thesis.tex": b"years of work"}
    jsonl = tmp_path / "my_jsonl"  # records of the user's, named as cleaned files are
    jsonl.mkdir()
    (jsonl / "data.jsonl").write_text('{"a": 1}\n')
    with pytest.raises(CorpusError, match=r"my_jsonl\) exists and is no cleaned corpus"):
        clean_corpus(raw_dir, jsonl, CleaningOptions(), force=True)
    assert _files(jsonl) == {"data.jsonl": b'{"a": 1}\n'}
    (tmp_path / "a_file").write_text("not a folder")
    with pytest.raises(CorpusError, match=r"a_file\) exists and is no cleaned corpus"):
        clean_corpus(raw_dir, tmp_path / "a_file", CleaningOptions())
    (tmp_path / "empty").mkdir()  # an empty folder, or an earlier cleaned corpus, is fine to replace
    clean_corpus(raw_dir, tmp_path / "empty", CleaningOptions())
    assert clean_corpus(raw_dir, tmp_path / "empty", CleaningOptions(), force=True)["documents"] == 8
    # ivr's own cleaned corpus whose manifest was lost or left empty by a crash is cleaned again, not refused
    for damage in ("delete", "empty", "nul"):
        manifest = tmp_path / "empty" / "manifest.json"
        if damage == "delete":
            manifest.unlink()
        else:
            manifest.write_bytes(b"" if damage == "empty" else bytes(300))
        assert clean_corpus(raw_dir, tmp_path / "empty", CleaningOptions())["documents"] == 8, damage


def test_the_cleaned_folder_reached_through_a_link_in_the_raw_folder_is_not_read(raw_dir, tmp_path):
    cleaned = tmp_path / "cleaned"
    (raw_dir / "out").symlink_to(cleaned, target_is_directory=True)
    clean_corpus(raw_dir, cleaned, CleaningOptions())
    manifest = clean_corpus(raw_dir, cleaned, CleaningOptions(), force=True)
    assert manifest["documents"] == 8 and not any(f["cleaned"].startswith("out/") for f in manifest["files"])


def test_links_to_one_file_are_read_once_under_the_real_name_or_the_first_link_name(tmp_path):
    raw, outside = tmp_path / "raw", tmp_path / "outside.txt"
    raw.mkdir()
    (raw / "m.txt").write_text("one document")
    for name in ("a_link.txt", "z_link.txt"):  # a link sorted before the real name does not take its place
        (raw / name).symlink_to(raw / "m.txt")
    outside.write_text("another document")
    for name in ("y.txt", "b.txt"):
        (raw / name).symlink_to(outside)
    clean_corpus(raw, tmp_path / "cleaned", CleaningOptions())
    assert {d.doc_id: d.text for d in iter_documents(tmp_path / "cleaned")} == {
        "b.txt:0": "another document", "m.txt:0": "one document"}


def test_a_raw_file_name_that_is_not_utf8_is_named_and_must_be_renamed(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    try:
        with open(os.path.join(os.fsencode(raw), b"b\xff.txt"), "wb") as f:
            f.write(b"text")
    except (OSError, UnicodeError):
        pytest.skip("this file system takes UTF-8 names only")
    with pytest.raises(CorpusError, match=r"raw corpus file '.*b\\udcff\.txt': its name is not valid UTF-8.*rename"):
        clean_corpus(raw, tmp_path / "cleaned", CleaningOptions())


def test_a_raw_file_whose_cleaned_name_is_a_raw_folder_s_is_named_with_both(tmp_path):
    raw = tmp_path / "raw"
    (raw / "x.txt.jsonl").mkdir(parents=True)
    (raw / "x.txt").write_text("file x")
    (raw / "x.txt.jsonl" / "y.txt").write_text("file y")
    with pytest.raises(CorpusError, match=r"raw corpus files .*raw/x\.txt and .*raw/x\.txt\.jsonl/y\.txt: the first "
                                          r"one's cleaned file, x\.txt\.jsonl, would be the folder of the second"):
        clean_corpus(raw, tmp_path / "cleaned", CleaningOptions())
    assert not (tmp_path / "cleaned").exists()


def test_raw_folders_nested_past_the_recursion_limit_are_named_not_a_traceback(tmp_path):
    import sys

    from ivr.corpus import _raw_files

    deep = tmp_path / "raw" / "/".join(["d"] * 150)
    deep.mkdir(parents=True)
    (deep / "a.txt").write_text("text")
    depth, frame = 0, sys._getframe()
    while frame:
        depth, frame = depth + 1, frame.f_back
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(depth + 100)  # fewer levels than the tree has
    try:
        found, _ = _raw_files(tmp_path / "raw")
    except CorpusError as err:  # an os.walk that recurses once per level (Python 3.11)
        assert f"its folders nest too deep to be read (about {depth + 100} levels)" in str(err)
    else:  # one that does not (Python 3.12 on) reads them
        assert found == [deep / "a.txt"]
    finally:
        sys.setrecursionlimit(limit)


def test_cleaned_records_keep_the_bytes_earlier_versions_wrote(tmp_path):
    """Existing cleaned corpora stay valid and keep their content hash, every stage's cache key: the records'
    bytes and the manifest's leading keys are those ivr has always written."""
    raw = tmp_path / "raw"
    (raw / "sub").mkdir(parents=True)
    (raw / "a.txt").write_text('café "quoted"\r\nline\\two\t\u2603 \U0001F600\n', encoding="utf-8")
    (raw / "b.jsonl").write_text(json.dumps({"text": "first\u2028sep é"}) + "\n"
                                 + json.dumps({"text": "x" * 30 + "\n\n" + "y" * 10}) + "\n", encoding="utf-8")
    (raw / "sub" / "c.json").write_text(json.dumps([{"text": "é \x1b[1mb\x1b[0m"}, {"text": "</script> \\u"}]))
    manifest = clean_corpus(raw, tmp_path / "cleaned", CleaningOptions(max_document_chars=20))
    files = _files(tmp_path / "cleaned")
    assert json.loads(files.pop("manifest.json")) == manifest
    assert files == {
        "a.txt.jsonl": b'{"id": "a.txt:0#0", "text": "caf\xc3\xa9 \\"quoted\\"\\n"}\n'
                       b'{"id": "a.txt:0#1", "text": "line\\\\two\\t\xe2\x98\x83 \xf0\x9f\x98\x80\\n"}\n',
        "b.jsonl.jsonl": b'{"id": "b.jsonl:1", "text": "first\xe2\x80\xa8sep \xc3\xa9"}\n'
                         b'{"id": "b.jsonl:2#0", "text": "xxxxxxxxxxxxxxxxxxxx"}\n'
                         b'{"id": "b.jsonl:2#1", "text": "xxxxxxxxxx\\n\\n"}\n{"id": "b.jsonl:2#2", "text": "yyyyyyyyyy"}\n',
        "sub/c.json.jsonl": b'{"id": "sub/c.json:0", "text": "\xc3\xa9 \\u001b[1mb\\u001b[0m"}\n'
                            b'{"id": "sub/c.json:1", "text": "</script> \\\\u"}\n',
    }
    assert list(manifest)[:3] == ["version", "fingerprint", "content"] and manifest["version"] == 1
    assert manifest["content"] == "e2b745290df1545e4122db480bfaf1635d66f3614e180a58d1bb7a0b6813bd7e"
    assert [f["cleaned"] for f in manifest["files"]] == ["a.txt.jsonl", "b.jsonl.jsonl", "sub/c.json.jsonl"]
    assert [d.doc_id for d in iter_documents(tmp_path / "cleaned")][:3] == ["a.txt:0#0", "a.txt:0#1", "b.jsonl:1"]


def test_a_folder_holding_only_another_tool_s_manifest_is_never_replaced(raw_dir, tmp_path):
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "manifest.json").write_text('{"name": "some other tool"}')
    with pytest.raises(CorpusError, match=r"theirs\) exists and is no cleaned corpus"):
        clean_corpus(raw_dir, theirs, CleaningOptions())
    assert _files(theirs) == {"manifest.json": b'{"name": "some other tool"}'}


def test_files_of_other_kinds_are_named_as_not_read(tmp_path, caplog):
    """Markdown or code put in the raw folder is not read: said, by suffix, not dropped unseen."""
    raw = tmp_path / "raw"
    (raw / "docs").mkdir(parents=True)
    (raw / "a.txt").write_text("text")
    for name in ("docs/intro.md", "docs/usage.md", "tool.py", "LICENSE", ".hidden.md"):
        (raw / name).write_text("more text")
    with caplog.at_level(logging.WARNING, logger="ivr.corpus"):
        clean_corpus(raw, tmp_path / "cleaned", CleaningOptions())
    assert [d.doc_id for d in iter_documents(tmp_path / "cleaned")] == ["a.txt:0"]
    assert (f"raw corpus directory {raw}: 4 files not read, only .txt, .jsonl and .json files are (.md: 2, "
            ".py: 1, no suffix: 1)") in caplog.text
    caplog.clear()
    for name in ("docs/intro.md", "docs/usage.md", "tool.py", "LICENSE"):
        (raw / name).unlink()
    with caplog.at_level(logging.WARNING, logger="ivr.corpus"):
        clean_corpus(raw, tmp_path / "cleaned", CleaningOptions())
    assert "not read" not in caplog.text  # hidden files are left out without a word, as before


def test_hidden_raw_files_are_left_out_and_upper_case_suffixes_keep_their_format(tmp_path):
    """An editor's ``.draft.txt`` is no document; ``B.JSONL`` holds records, not one document of JSON text."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / ".draft.txt").write_text("a stale draft")
    (raw / "B.JSONL").write_text('{"text": "first"}\n{"text": "second"}\n')
    (raw / "C.Json").write_text('[{"text": "third"}]')
    clean_corpus(raw, tmp_path / "cleaned", CleaningOptions())
    assert {d.doc_id: d.text for d in iter_documents(tmp_path / "cleaned")} == {
        "B.JSONL:1": "first", "B.JSONL:2": "second", "C.Json:0": "third"}
