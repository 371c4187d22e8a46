"""The offline corpora: which files each one reads, in what order, how texts are read, and size caps."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from ivr.builtin_corpora import (
    BUILTIN_CORPORA,
    documentation_texts,
    english_reference_texts,
    environment_code_paths,
    environment_code_texts,
    help_topics,
    python_stdlib_files,
    python_stdlib_paths,
    python_stdlib_texts,
    stdlib_root,
    translated_messages,
    until_size,
)
from ivr.raw_records import normalize


@pytest.fixture
def doc_root(tmp_path: Path) -> Path:
    root = tmp_path / "doc"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "README.md").write_bytes(b"\xef\xbb\xbfread me\r\nsecond line\r\n")
    (root / "pkg" / "copyright").write_text("Copyright: someone\n", encoding="utf-8")
    (root / "pkg" / "NEWS.txt").write_text("x" * 50, encoding="utf-8")
    (root / "pkg" / "changelog.gz").write_bytes(b"\x1f\x8b compressed")
    (root / "pkg" / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    (root / "pkg" / "blank.txt").write_text("  \n", encoding="utf-8")
    (root / "pkg" / "nul.txt").write_text("a\x00b", encoding="utf-8")
    (root / "zz").mkdir()
    (root / "zz" / "copyright").write_text("Copyright: someone\n", encoding="utf-8")  # a repeat
    (root / "zz" / "link.txt").symlink_to(root / "pkg" / "NEWS.txt")
    return root


def test_documentation_texts_come_in_path_order_and_keep_the_file_as_read(doc_root):
    texts = list(documentation_texts(suffixes={"", ".txt", ".md"}, root=doc_root))
    # NEWS, README (byte-order mark kept, line ends made \n), blank, copyright, nul, zz/copyright; no link, no latin-1
    assert texts == ["x" * 50, "\ufeffread me\nsecond line\n", "  \n", "Copyright: someone\n", "a\x00b",
                     "Copyright: someone\n"]


def test_documentation_texts_filters(doc_root):
    assert list(documentation_texts(suffixes={".md"}, root=doc_root)) == ["\ufeffread me\nsecond line\n"]
    assert "x" * 50 not in documentation_texts(max_file_bytes=49, root=doc_root)
    with_links = list(documentation_texts(suffixes={".txt"}, symlinks=True, root=doc_root))
    assert with_links.count("x" * 50) == 2
    replaced = list(documentation_texts(suffixes={".txt"}, undecodable="replace", root=doc_root))
    assert "caf\ufffd" in replaced
    assert list(documentation_texts(root=doc_root / "absent")) == []


def test_clean_documentation_texts_are_normalized_and_distinct(doc_root):
    texts = list(documentation_texts(skip_suffixes={".gz"}, clean=True, root=doc_root))
    raw = (doc_root / "pkg" / "README.md").read_bytes().decode("utf-8")
    assert texts == ["x" * 50, normalize(raw), "Copyright: someone\n"]


def test_until_size_keeps_the_item_that_passes_the_limit():
    assert until_size(["aa", "bb", "cc"], 3) == ["aa", "bb"]
    assert until_size(["aa", "bb", "cc"], 4) == ["aa", "bb", "cc"]
    assert until_size(["aa", "bb", "cc"], 4, stop_at_limit=True) == ["aa", "bb"]
    assert until_size(["aa", "bb", "cc"], 4, already=3) == ["aa"]
    assert until_size(["aa", "bb"], 4, already=5) == [] and until_size(["aa"], 0) == []
    assert until_size(["é", "a", "b"], 2) == ["é", "a"] and until_size(["é", "a", "b"], 1, size=len) == ["é", "a"]


def test_until_size_reads_no_item_beyond_the_last_one_taken():
    read = []

    def items():
        for text in ("aa", "bb", "cc"):
            read.append(text)
            yield text

    assert until_size(items(), 3) == ["aa", "bb"] and read == ["aa", "bb"]


def test_stdlib_paths_leave_out_the_skipped_directories_and_names():
    root = stdlib_root()
    paths = python_stdlib_paths()
    assert paths == sorted(paths) and all(p.suffix == ".py" for p in paths)
    assert root / "json" / "decoder.py" in paths
    assert not any({"test", "tests", "idle_test", "pydoc_data"} & set(p.relative_to(root).parts) for p in paths)
    assert root / "pydoc_data" / "topics.py" in python_stdlib_paths(skip_dirs=())
    assert root / "json" / "decoder.py" not in python_stdlib_paths(skip_names={"decoder.py"})


def test_stdlib_texts_are_named_relative_to_the_root():
    name, text = next(python_stdlib_texts())
    assert name == python_stdlib_paths()[0].relative_to(stdlib_root()).as_posix() and isinstance(text, str)


def test_the_library_corpus_stops_before_passing_its_size():
    files = python_stdlib_files(0.05)
    assert files and sum(p.stat().st_size for p, _ in files) <= 50_000
    assert [p for p, _ in files] == python_stdlib_paths()[: len(files)]
    assert all(name == f"builtin/python_stdlib/{p.relative_to(stdlib_root()).as_posix()}" for p, name in files)
    assert BUILTIN_CORPORA["python_stdlib"] is python_stdlib_files


def test_environment_code_mixes_packages_and_the_stdlib_in_a_stable_order():
    import sysconfig

    import yaml

    paths = environment_code_paths()
    assert paths == environment_code_paths() and paths != sorted(paths)  # hash order, not path order
    assert stdlib_root() / "json" / "decoder.py" in paths
    assert Path(yaml.__file__) in paths and Path(sysconfig.get_paths()["purelib"]) in Path(yaml.__file__).parents
    assert not any("site-packages" in p.relative_to(stdlib_root()).parts for p in paths if stdlib_root() in p.parents)


def test_environment_code_texts_leave_out_files_that_are_not_utf8(tmp_path):
    (tmp_path / "a.py").write_text("x = 1\r\n", encoding="utf-8")
    (tmp_path / "b.py").write_bytes(b"caf\xe9")
    assert list(environment_code_texts([tmp_path / "a.py", tmp_path / "b.py", tmp_path / "gone.py"])) == ["x = 1\n"]


def test_help_topics_are_sorted_and_already_normalized():
    topics = help_topics()
    assert [k for k, _ in topics] == sorted(k for k, _ in topics) and len(topics) > 20
    assert all(normalize(text) == text for _, text in topics)
    assert english_reference_texts() == [text for _, text in topics]


def mo_file(messages: dict[str, str]) -> bytes:
    """A GNU message catalogue holding ``messages`` (msgid -> translation) and a UTF-8 header."""
    entries = sorted({"": "Content-Type: text/plain; charset=UTF-8\n", **messages}.items())
    ids = b"".join(k.encode() + b"\0" for k, _ in entries)
    strs = b"".join(v.encode() + b"\0" for _, v in entries)
    n = len(entries)
    start = 28 + 16 * n
    table, offset = [], start
    for k, _ in entries:
        table.append((len(k.encode()), offset))
        offset += len(k.encode()) + 1
    for _, v in entries:
        table.append((len(v.encode()), offset))
        offset += len(v.encode()) + 1
    header = struct.pack("<7I", 0x950412DE, 0, n, 28, 28 + 8 * n, 0, 0)
    return header + b"".join(struct.pack("<2I", *t) for t in table) + ids + strs


def test_translated_messages_join_each_catalogue(tmp_path):
    folder = tmp_path / "ru" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "b.mo").write_bytes(mo_file({"Open": "Открыть", "Close": "Закрыть", "Blank": " "}))
    (folder / "a.mo").write_bytes(mo_file({}))  # the header alone: no text
    (folder / "c.mo").write_bytes(b"not a catalogue")
    assert list(translated_messages("ru", root=tmp_path)) == [("b.mo", "Закрыть\nОткрыть")]


def test_translated_messages_leave_out_catalogues_that_cannot_be_read(tmp_path):
    """A link to a catalogue that is gone, one cut short, one whose header names a plural rule or a charset that
    cannot be read: left out, as a file that is no catalogue is, not an error ending the corpus."""
    folder = tmp_path / "ru" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    good = mo_file({"Open": "Открыть"})
    (folder / "a.mo").symlink_to(tmp_path / "gone.mo")
    (folder / "b.mo").write_bytes(good[:20])
    (folder / "c.mo").write_bytes(mo_file({"": "Plural-Forms: nplurals=2; plural=n!=1 or (;\n", "Open": "x"}))
    (folder / "d.mo").write_bytes(mo_file({"": "Content-Type: text/plain; charset=NO-SUCH-CHARSET\n", "Open": "x"}))
    (folder / "e.mo").write_bytes(good)
    assert list(translated_messages("ru", root=tmp_path)) == [("e.mo", "Открыть")]


def test_a_cap_below_the_first_file_says_so():
    with pytest.raises(ValueError, match=r"data.builtin_corpus_max_mb 1e-06 is below the size of the standard library's first file"):
        python_stdlib_files(1e-6)


def test_third_party_code_names_files_by_package_without_tests_and_skips_what_is_no_package(tmp_path, monkeypatch):
    """The corpus of other authors' code: each file under its package's name, no test suites, and a name that is
    not an installed package (missing, or a single module) left out rather than failing the benchmark."""
    from ivr.builtin_corpora import third_party_code

    package = tmp_path / "somepkg"
    for name in ("__init__.py", "core.py", "tests/test_core.py", "test/helper.py", "sub/util.py"):
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(f"# {name}\n", encoding="utf-8")
    (tmp_path / "single.py").write_text("x = 1\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    found = list(third_party_code(("no_such_package_anywhere", "single", "somepkg")))
    assert found == [("somepkg/__init__.py", "# __init__.py\n"), ("somepkg/core.py", "# core.py\n"),
                     ("somepkg/sub/util.py", "# sub/util.py\n")]


def test_files_of_a_skipped_suffix_are_never_read(doc_root):
    texts = list(documentation_texts(skip_suffixes={".txt"}, root=doc_root))
    assert "x" * 50 not in texts and "Copyright: someone\n" in texts


def test_a_file_of_exactly_the_size_limit_is_read(doc_root):
    """``max_file_bytes`` leaves out files larger than the limit, not those that reach it."""
    size = (doc_root / "pkg" / "NEWS.txt").stat().st_size
    assert "x" * 50 in documentation_texts(suffixes={".txt"}, max_file_bytes=size, root=doc_root)
