"""Raw files that the disk, the file system or their encoding make hard to read: named, never silently lost."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.cleaned_corpus import CorpusError, iter_documents, split_counts
from ivr.corpus import CleaningOptions, clean_corpus
from ivr.raw_text import binary_lines


def _clean(raw: Path, tmp_path: Path, **kw) -> dict:
    return clean_corpus(raw, tmp_path / "cleaned", CleaningOptions(**kw))


def _records(n: int, start: int = 0) -> str:
    return "".join(json.dumps({"text": f"record {i}\n"}) + "\n" for i in range(start, start + n))


@pytest.mark.parametrize("name", ["shard2", "wiki.en"])  # a folder's name may hold a dot
def test_a_linked_folder_whose_target_is_gone_is_named_not_left_out(tmp_path, name):
    raw = tmp_path / "raw"
    (raw / "shard1").mkdir(parents=True)
    (raw / "shard1" / "a.jsonl").write_text(_records(3), encoding="utf-8")
    (raw / name).symlink_to(tmp_path / "not-mounted" / name, target_is_directory=True)
    with pytest.raises(CorpusError, match=rf"raw corpus file or folder .*{name}: a link to .*not-mounted/{name}, "
                                          r"which does not exist"):
        _clean(raw, tmp_path)


@pytest.mark.parametrize("links", [{"loop.txt": "loop.txt"}, {"a.txt": "b.txt", "b.txt": "a.txt"},
                                   {"shard": "shard2", "shard2": "shard"}], ids=["itself", "pair", "folders"])
def test_a_loop_of_links_is_named_as_one_not_as_a_missing_target(tmp_path, links):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "ok.txt").write_text("text", encoding="utf-8")
    for name, target in links.items():
        (raw / name).symlink_to(target)
    with pytest.raises(CorpusError, match=r"raw corpus file or folder .*: a link to .* in a loop of links that never "
                                          r"reaches a file or folder"):
        _clean(raw, tmp_path)


@given(st.binary(max_size=40).map(lambda b: bytes(b"ab\r\n"[x % 4] for x in b)), st.integers(1, 7))
def test_lines_read_chunk_by_chunk_are_those_of_the_whole_file(data, chunk_size):
    assert list(binary_lines(io.BytesIO(data), chunk_size)) == data.splitlines(keepends=True)


def test_a_jsonl_file_is_streamed_not_read_whole(tmp_path, monkeypatch):
    import builtins

    from ivr import raw_text

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(50), encoding="utf-8")
    size = (raw / "a.jsonl").stat().st_size
    read_bytes, real_open, reads = Path.read_bytes, builtins.open, []

    def not_raw_files(self):
        assert raw not in self.parents, f"{self} was read whole"
        return read_bytes(self)

    class Recorded:
        def __init__(self, f):
            self.f = f

        def read(self, n=-1):
            reads.append(n)
            return self.f.read(n)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

    def recorded_open(file, mode="r", *args, **kwargs):
        f = real_open(file, mode, *args, **kwargs)
        return Recorded(f) if "b" in mode and Path(file).parent == raw else f

    monkeypatch.setattr(Path, "read_bytes", not_raw_files)
    monkeypatch.setattr(builtins, "open", recorded_open)
    monkeypatch.setattr(raw_text.binary_lines, "__defaults__", (64,))  # chunks far smaller than the file
    assert _clean(raw, tmp_path)["documents"] == 50
    assert reads and max(reads) == 64 and reads.count(64) >= size // 64, "read in chunks, never whole"


def test_a_file_the_disk_cannot_read_is_named_even_when_bad_records_are_skipped(tmp_path, monkeypatch):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(3), encoding="utf-8")
    (raw / "b.txt").write_text("text", encoding="utf-8")
    real_open = open

    def failing_open(file, mode="r", *args, **kwargs):
        if str(file).endswith("b.txt"):
            raise OSError(5, "Input/output error")
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr("builtins.open", failing_open)
    with pytest.raises(CorpusError, match=r"b\.txt: cannot be read \(Input/output error\)"):
        _clean(raw, tmp_path, on_bad_record="skip")


def test_a_raw_name_too_long_for_its_cleaned_copy_is_named(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(3), encoding="utf-8")
    long_name = "x" * 251 + ".txt"  # 255 bytes, the usual limit; its copy adds ".jsonl"
    (raw / long_name).write_text("text", encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"raw corpus file .*{long_name}: its name is too long for its cleaned "
                                          r"copy .*rename it shorter"):
        _clean(raw, tmp_path)


@pytest.mark.parametrize("name, codec, order", [
    ("a.jsonl", "utf-16", "le"), ("notes.txt", "utf-16", "le"), ("b.jsonl", "utf-16", "be"),
    # three NUL bytes beside each character: utf-16 would read it with a NUL after every character, as binary
    ("a.jsonl", "utf-32", "le"), ("notes.txt", "utf-32", "be")])
def test_utf16_or_utf32_without_a_byte_order_mark_says_which_encoding_to_pass(tmp_path, name, codec, order):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name).write_bytes(_records(2).encode(f"{codec}-{order}"))
    with pytest.raises(CorpusError, match=rf"{name}: looks like {codec.upper()} without a byte-order mark .*pass "
                                          rf"--data.encoding {codec}-{order}"):
        _clean(raw, tmp_path)
    assert _clean(raw, tmp_path, encoding=f"{codec}-{order}")["documents"] == (2 if name.endswith(".jsonl") else 1)


@pytest.mark.parametrize("written, encoding", [("utf-16-le", "utf-16-be"), ("utf-16-be", "utf-16"),
                                               ("utf-32-le", "utf-16-le"), ("utf-16-le", "utf-32"),
                                               ("utf-32-be", "utf-32-le")])
@pytest.mark.parametrize("name", ["a.txt", "a.jsonl"])
def test_utf16_or_utf32_without_a_mark_read_in_another_order_or_width_is_named(tmp_path, name, written, encoding):
    """UTF-16-LE read as UTF-16-BE (or plain utf-16, which reads a file without a mark little-endian, a BE one)
    decodes without an error, as CJK text: the NUL bytes' places say which encoding the file is in."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name).write_bytes(_records(2).encode(written))
    with pytest.raises(CorpusError, match=rf"{name}: looks like {written[:6].upper()} without a byte-order mark .*"
                                          rf"data.encoding {encoding} would read as other characters; pass "
                                          rf"--data.encoding {written}"):
        _clean(raw, tmp_path, encoding=encoding)
    assert not (tmp_path / "cleaned").exists()
    assert _clean(raw, tmp_path, encoding=written)["documents"] == (2 if name.endswith(".jsonl") else 1)


@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "u8", "cp65001"])
def test_a_byte_order_mark_is_dropped_under_every_name_of_utf8(tmp_path, encoding):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + _records(2).encode())
    _clean(raw, tmp_path, encoding=encoding)
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == ["record 0\n", "record 1\n"]


def test_held_out_documents_with_the_text_of_a_training_document_are_counted(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(40) + _records(40), encoding="utf-8")  # every text twice
    _clean(raw, tmp_path)
    counts = split_counts(tmp_path / "cleaned", 0.3)
    held = {d.text for d in iter_documents(tmp_path / "cleaned", "heldout", 0.3)}
    train = {d.text for d in iter_documents(tmp_path / "cleaned", "train", 0.3)}
    copies = sum(d.text in train for d in iter_documents(tmp_path / "cleaned", "heldout", 0.3))
    assert counts["heldout_also_in_train"] == copies > 0 and len(held - train) > 0
    (raw / "a.jsonl").write_text(_records(80), encoding="utf-8")
    _clean(raw, tmp_path)
    assert split_counts(tmp_path / "cleaned", 0.3)["heldout_also_in_train"] == 0


def test_init_warns_when_held_out_documents_were_trained_on(tmp_path, caplog):
    from ivr import pipeline
    from ivr.paths import ArtifactPaths
    from ivr.pipeline_config import OriginalTokenizer, PipelineConfig

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(40) + _records(40), encoding="utf-8")
    config = PipelineConfig(paths=ArtifactPaths.from_config(tmp_path / "artifacts", raw_corpora_dir=raw),
                            heldout_fraction=0.3, original=OriginalTokenizer(use_hub=False))
    with caplog.at_level(logging.WARNING, logger="ivr.pipeline"):
        pipeline.init(config)
    assert "documents with the exact text of a training document: " in caplog.text


def test_a_utf16_le_jsonl_file_with_a_byte_order_mark_and_blank_lines_reads_every_record(tmp_path):
    """Notepad saves UTF-16-LE with a byte-order mark, which the -le codec keeps as text."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "w.jsonl").write_bytes(("\ufeff" + _records(1) + "\n" + _records(1, start=1)).encode("utf-16-le"))
    _clean(raw, tmp_path, encoding="utf-16-le")
    assert [(d.doc_id, d.text) for d in iter_documents(tmp_path / "cleaned")] == [
        ("w.jsonl:1", "record 0\n"), ("w.jsonl:3", "record 1\n")]


def test_a_utf8_byte_order_mark_is_dropped_only_at_the_start_of_a_jsonl_file(tmp_path):
    """As in a UTF-16 file, one later in the file (files joined with ``cat``) is no JSON, and its line is named."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(b"\xef\xbb\xbf" + _records(1).encode() + b"\xef\xbb\xbf" + _records(1).encode())
    with pytest.raises(CorpusError, match=r"a\.jsonl:2: invalid JSON \(Unexpected UTF-8 BOM"):
        _clean(raw, tmp_path)


def test_a_bad_byte_on_the_first_line_after_a_byte_order_mark_is_named_at_its_offset_in_the_file(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    data = b'\xef\xbb\xbf{"text": "caf\xe9"}\n'
    (raw / "a.jsonl").write_bytes(data)
    offset = data.index(b"\xe9")  # counted from the file's first byte, the mark's included
    with pytest.raises(CorpusError, match=rf"a\.jsonl:1: bytes at offset {offset} \(0xe9 "):
        _clean(raw, tmp_path)


@pytest.mark.parametrize("name, data", [("zeros.txt", bytes(4096)), ("r.jsonl", b'{"text": "\\u0000 short"}\n')],
                         ids=["a file of NUL bytes", "a short text starting with NUL"])
def test_text_with_a_nul_as_its_first_character_is_binary(tmp_path, name, data):
    """A file of NUL bytes (space reserved by a download that never finished) is no UTF-16 either."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name).write_bytes(data)
    with pytest.raises(CorpusError, match=r"(zeros\.txt|r\.jsonl:1): looks binary \(.*; a NUL at line 1, column 1\)"):
        _clean(raw, tmp_path)


def test_a_nul_is_placed_by_the_file_s_line_and_column_whatever_its_line_ends(tmp_path):
    # the text's \r\n are \n by the time it is checked: a character offset would fall two short of the file's here
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "crlf.txt").write_bytes(b"\xef\xbb\xbfab\r\ncd\r\nef\0")
    with pytest.raises(CorpusError, match=r"crlf\.txt: looks binary \(.*; a NUL at line 3, column 3\)"):
        _clean(raw, tmp_path)


@pytest.mark.parametrize("bom, name", [(b"\xff\xfe", "utf-16"), (b"\xff\xfe\x00\x00", "utf-32")],
                         ids=["utf-16", "utf-32"])
def test_a_jsonl_file_with_a_utf16_or_utf32_byte_order_mark_says_which_encoding_to_pass(tmp_path, bom, name):
    """UTF-32's little-endian mark begins with UTF-16's: the longer one is told first."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(bom + _records(2).encode(f"{name}-le"))
    with pytest.raises(CorpusError, match=rf"a\.jsonl: starts with a {name.upper()} byte-order mark but data.encoding "
                                          rf"is utf-8; pass --data\.encoding {name},"):
        _clean(raw, tmp_path)


@pytest.mark.parametrize("name", ["b.txt", "b.json", "b.jsonl"])
def test_a_file_the_disk_fails_after_its_first_bytes_is_named_even_when_bad_records_are_skipped(
        tmp_path, monkeypatch, name):
    """The first bytes are read to tell the encoding; a failure when the file is then read whole, or streamed, is
    the same unreadable file."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(3), encoding="utf-8")
    (raw / name).write_text(_records(1), encoding="utf-8")
    real_open, real_read_bytes, opened = open, Path.read_bytes, []

    def failing_open(file, mode="r", *args, **kwargs):
        if Path(file).name == name and "b" in mode:
            opened.append(file)
            if len(opened) > 1:
                raise OSError(5, "Input/output error")
        return real_open(file, mode, *args, **kwargs)

    def failing_read_bytes(self):
        if self.name == name:
            raise OSError(5, "Input/output error")
        return real_read_bytes(self)

    monkeypatch.setattr("builtins.open", failing_open)
    monkeypatch.setattr(Path, "read_bytes", failing_read_bytes)
    with pytest.raises(CorpusError, match=rf"{name}: cannot be read \(Input/output error\); fix the disk"):
        _clean(raw, tmp_path, on_bad_record="skip")


def test_blank_lines_of_a_utf8_jsonl_file_are_no_records_and_keep_the_line_numbers(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(1) + "\n \t\r\n" + _records(1, start=1) + "\r\n", encoding="utf-8")
    _clean(raw, tmp_path)
    assert [(d.doc_id, d.text) for d in iter_documents(tmp_path / "cleaned")] == [
        ("a.jsonl:1", "record 0\n"), ("a.jsonl:4", "record 1\n")]


def test_a_short_utf16_file_without_a_byte_order_mark_is_told_too(tmp_path):
    """Four characters are enough to see a NUL beside each: a one-line note in UTF-16 is not read as binary."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_text(_records(1), encoding="utf-8")
    (raw / "note.txt").write_bytes("hi there".encode("utf-16-le"))
    with pytest.raises(CorpusError, match=r"note\.txt: looks like UTF-16 without a byte-order mark .*pass "
                                          r"--data.encoding utf-16-le"):
        _clean(raw, tmp_path)


@pytest.mark.parametrize("data, encoding, mark", [
    ("\ufeffcafé".encode(), "cp1252", "UTF-8"),  # would read as "ï»¿cafÃ©"
    ("\ufeffcafé".encode(), "latin-1", "UTF-8"),
    ("\ufeffcafé".encode("utf-16-be"), "utf-16-le", "UTF-16"),  # would read as "\ufffe..." and CJK
    ("\ufeffcafé".encode("utf-16-le"), "latin-1", "UTF-16"),  # not "looks binary"
    ("\ufeffcafé".encode("utf-32-le"), "utf-16", "UTF-32"),
], ids=["utf8-as-cp1252", "utf8-as-latin1", "utf16be-as-utf16le", "utf16-as-latin1", "utf32-as-utf16"])
@pytest.mark.parametrize("name", ["a.txt", "a.jsonl"])
def test_a_byte_order_mark_that_contradicts_the_encoding_is_named(tmp_path, data, encoding, mark, name):
    """These decode without an error, as other characters: the mark says which encoding the file is in."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name).write_bytes(data)
    with pytest.raises(CorpusError, match=rf"{name}: starts with a {mark} byte-order mark but data.encoding is "
                                          rf"{encoding}; pass --data\.encoding {mark.lower()}"):
        _clean(raw, tmp_path, encoding=encoding)
    assert not (tmp_path / "cleaned").exists()


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be"])
def test_ascii_text_read_as_utf16_or_utf32_is_named(tmp_path, encoding):
    """Without a byte-order mark, ASCII bytes read as UTF-16 decode as CJK text and raise nothing."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.jsonl").write_bytes(_records(2).encode("utf-8"))
    with pytest.raises(CorpusError, match=rf"a\.jsonl: starts with plain ASCII text .* data.encoding is {encoding}"):
        _clean(raw, tmp_path, encoding=encoding)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-32-be"])
@pytest.mark.parametrize("text", ["Élève à l’école, café crème, voilà déjà l’été.",  # an even number of bytes
                                  "Привет, мир! Это текст на русском языке."],  # an odd one
                         ids=["french", "russian"])
def test_utf8_text_beyond_ascii_read_as_utf16_or_utf32_is_named(tmp_path, encoding, text):
    """UTF-8 text with accents or another script read as UTF-16 decodes as CJK text without an error (or, of an odd
    length, fails as if the file were cut short): it has no NUL bytes, which UTF-16 or UTF-32 text would."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_bytes(text.encode("utf-8"))
    with pytest.raises(CorpusError, match=rf"a\.txt: starts with UTF-8 text .* data.encoding is {encoding}, which "
                                          r"would read it as other characters; pass --data.encoding utf-8"):
        _clean(raw, tmp_path, encoding=encoding)
    assert not (tmp_path / "cleaned").exists()


@pytest.mark.parametrize("text, encoding", [("中文文本测试这是一个没有空格的句子用来检查编码是否正确", "utf-16-le"),
                                            ("Привет, мир! Это текст на русском языке.", "utf-16-be"),
                                            ("中文文本测试这是一个没有空格的句子", "utf-32-le")])
def test_utf16_or_utf32_text_without_nul_bytes_or_a_mark_is_read(tmp_path, text, encoding):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "a.txt").write_bytes(text.encode(encoding))
    _clean(raw, tmp_path, encoding=encoding)
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == [text]


@pytest.mark.parametrize("name, body, where", [
    ("a.jsonl", '{"text": "a"}\n{"text": "a", "text": "b"}\n', r"a\.jsonl:2"),
    ("a.json", '[{"text": "a"}, {"id": 1, "text": "a", "text": "b"}]', r"a\.json record 2"),
])
def test_a_record_that_names_its_text_twice_is_named(tmp_path, name, body, where):
    """json keeps the last value silently; a record with two texts is an error, a repeat elsewhere is not."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name).write_text(body, encoding="utf-8")
    with pytest.raises(CorpusError, match=rf"{where}: the 'text' field appears more than once in the record"):
        _clean(raw, tmp_path)
    (raw / name).write_text(body.replace('"text": "a", "text"', '"meta": {"k": 1, "k": 2}, "text"'), encoding="utf-8")
    _clean(raw, tmp_path)
    assert [d.text for d in iter_documents(tmp_path / "cleaned")] == ["a", "b"]


@pytest.mark.parametrize("name, data, encoding, offset", [
    ("a.txt", "some text\n".encode("utf-16")[:-1], "utf-16", 20),  # cut short: an odd number of bytes
    ("a.jsonl:1", _records(1).encode("utf-16")[:-1], "utf-16", 46),
    ("a.json", '[{"text": "x"}]'.encode("utf-16")[:-1], "utf-16", 30),
    # half of a surrogate pair, in a file without a mark: its NUL bytes are UTF-16's, not a sign of binary data
    ("a.txt", "some text".encode("utf-16-le") + b"\x3d\xd8" + "more".encode("utf-16-le"), "utf-16-le", 18),
], ids=["txt-cut-short", "jsonl-cut-short", "json-cut-short", "lone-surrogate"])
def test_a_damaged_utf16_file_read_as_utf16_is_named_as_damaged(tmp_path, name, data, encoding, offset):
    """The file is in the encoding it was read with: the error says where it is damaged (a JSONL file's line too),
    and neither tells the user to pass the encoding already passed nor calls the file binary."""
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / name.partition(":")[0]).write_bytes(data)
    with pytest.raises(CorpusError, match=rf"{name}: bytes at offset {offset} \(0x[0-9a-f ]+\) are not valid "
                                          rf"{encoding} \(.*\); the file is damaged there") as err:
        _clean(raw, tmp_path, encoding=encoding)
    assert "pass --data.encoding" not in str(err.value) and "binary" not in str(err.value)


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-be", "utf-32-le"])
def test_damaged_bytes_of_a_wide_jsonl_file_cost_only_their_line(tmp_path, encoding):
    raw = tmp_path / "raw"
    raw.mkdir()
    lines = _records(4).encode(encoding).split("\n".encode(encoding.replace("utf-16", "utf-16-le")
                                                       if encoding == "utf-16" else encoding))
    width = 4 if "32" in encoding else 2
    # line 2 gets half of a surrogate pair, line 3 two of them: neither is text in UTF-16 or UTF-32
    surrogate = "\ud83d".encode(encoding.replace("utf-16", "utf-16-le") if encoding == "utf-16" else encoding,
                                 errors="surrogatepass")
    lines[1] = lines[1][:width * 3] + surrogate + lines[1][width * 3:]
    lines[2] = lines[2] + surrogate + surrogate
    newline = "\n".encode("utf-16-le" if encoding == "utf-16" else encoding)
    (raw / "a.jsonl").write_bytes(newline.join(lines))
    manifest = _clean(raw, tmp_path, encoding=encoding, on_bad_record="skip")
    assert [d.doc_id for d in iter_documents(tmp_path / "cleaned")] == ["a.jsonl:1", "a.jsonl:4"]
    assert manifest["skipped_records"] == 2
    first = len(newline.join(lines[:1])) + len(newline) + width * 3
    assert manifest["skipped_examples"][0].startswith(f"{raw / 'a.jsonl'}:2: bytes at offset {first} (0x")
    assert manifest["skipped_examples"][1].startswith(f"{raw / 'a.jsonl'}:3: bytes at offset ")


def test_a_binary_file_read_as_utf16_is_still_called_binary(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "image.txt").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64) + b"\x00\xdc" + bytes(range(256)) * 8)
    with pytest.raises(CorpusError, match=r"image\.txt: looks binary"):
        _clean(raw, tmp_path, encoding="utf-16-le")
