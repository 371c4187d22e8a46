"""Text files named in settings: a missing or non-UTF-8 file is one error naming the file and the setting."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ivr.analysis.general_use import general_text
from ivr.analysis.select import read_forced_tokens
from ivr.prompts import read_prompts
from ivr.tokenizers.remap_rules import read_remap_rules
from ivr.user_text import read_text_files, read_user_text, text_lines

LATIN1 = "ok\ncafé\n".encode("latin-1")


@pytest.mark.parametrize("read, setting", [
    (lambda p, tok: read_forced_tokens(p, tok), "data.select.forced_tokens_path"),
    (lambda p, tok: general_text(0, [str(p)]), "data.select.general_reference_paths"),
    (lambda p, tok: read_remap_rules(p), "data.remap.remap_rules_path"),
    (lambda p, tok: read_prompts(p), "data.prompts_path"),
])
def test_a_latin1_file_names_itself_the_byte_and_the_setting(tmp_path, gpt2_bpe, read, setting):
    path = tmp_path / "given.txt"
    path.write_bytes(LATIN1)
    with pytest.raises(ValueError, match=rf"given\.txt:2: bytes at offset 6 \(0xe9 0a\) are not valid UTF-8 \({setting}\)"):
        read(path, gpt2_bpe)


def test_missing_and_unreadable_files_name_the_setting(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nothing\.txt: not found \(data\.x\)"):
        read_user_text(tmp_path / "nothing.txt", "data.x")
    with pytest.raises(ValueError, match=r": cannot be read \(data\.x\)"):
        read_user_text(tmp_path, "data.x")  # a directory
    (tmp_path / "ok.txt").write_text("héllo\n", encoding="utf-8")
    assert read_user_text(tmp_path / "ok.txt", "data.x") == "héllo\n"


def test_a_byte_order_mark_is_not_part_of_the_text(tmp_path):
    path = tmp_path / "terms.txt"
    path.write_bytes(b"\xef\xbb\xbf# my terms\n mitochondria\n")
    assert read_user_text(path, "data.x") == "# my terms\n mitochondria\n"


def test_prompts_end_at_newlines_only_and_escape_newlines_and_backslashes(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("page one\x0cpage two\u2028same line\r\nprint('a\\\\nb')\\n    \n\n", encoding="utf-8")
    assert read_prompts(path) == ["page one\x0cpage two\u2028same line", "print('a\\nb')\n    "]
    # a line of spaces is a prompt (an indentation to continue); an empty line is none
    path.write_text("import os\n    \n\ndef f():\n", encoding="utf-8")
    assert read_prompts(path) == ["import os", "    ", "def f():"]


def test_a_file_that_cannot_be_read_is_named_once_with_the_system_s_reason(tmp_path):
    with pytest.raises(ValueError) as raised:
        read_user_text(tmp_path, "data.x")  # a directory
    assert str(raised.value) == f"{tmp_path}: cannot be read (data.x): Is a directory"


def test_a_bad_byte_is_shown_with_the_bytes_after_it(tmp_path):
    """Up to four bytes from the first bad one: enough to tell a Latin-1 letter from a cut UTF-8 sequence."""
    path = tmp_path / "terms.txt"
    path.write_bytes("café au lait\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"terms\.txt:1: bytes at offset 3 \(0xe9 20 61 75\) are not valid UTF-8"):
        read_user_text(path, "data.x")


def test_extra_eval_files_read_a_lone_carriage_return_as_a_newline(tmp_path):
    """A file saved with classic Mac line ends holds its lines, as one saved on Windows does."""
    path = tmp_path / "eval.txt"
    path.write_bytes(b"one\rtwo\r\nthree\r")
    assert read_text_files([str(path)]) == ["one\ntwo\nthree\n"]


@pytest.mark.parametrize("path", [None, ""])
def test_predict_without_a_prompts_file_says_which_setting_to_give(path):
    """An empty value (``--data.prompts_path ""``) is no file: it must not be read as the current folder."""
    with pytest.raises(ValueError, match=r"^ivr predict needs --data\.prompts_path: a text file with one prompt"):
        read_prompts(path)


def test_a_prompts_file_of_empty_lines_holds_no_prompts(tmp_path):
    path = tmp_path / "prompts.txt"
    path.write_text("\n\r\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^{path} holds no prompts \(one per line expected\)"):
        read_prompts(path)


def test_settings_that_name_files_and_folders_read_a_tilde_as_the_home_folder(tmp_path, monkeypatch):
    """A config file passes ``~/x`` on as written: every file and folder setting reads it as a shell would, and
    none makes a folder named ``~`` in the working folder."""
    from ivr.analysis.select_settings import SelectSettings
    from ivr.data import IVRDataModule
    from ivr.tokenizers.distill.settings import DistillSettings
    from ivr.tokenizers.remap import RemapSettings

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    for name in ("words.txt", "forced.txt", "general.txt", "rules.yaml", "eval.txt", "prompts.txt"):
        (home / name).write_text("hello\n", encoding="utf-8")
    (tmp_path / "heldout").write_text("hello\n", encoding="utf-8")
    dm = IVRDataModule(
        artifacts_dir="~/art", raw_corpora_dir="~/raw", cleaned_corpora_dir="~/clean", embeddings_output_dir="~/emb",
        extra_eval_paths=["~/eval.txt", "./heldout"], prompts_path="~/prompts.txt",
        distill=DistillSettings(word_list="~/words.txt"),
        select=SelectSettings(forced_tokens_path="~/forced.txt", general_reference_paths=["~/general.txt"]),
        remap=RemapSettings(remap_rules_path="~/rules.yaml"),
    )
    paths = dm.paths
    assert (paths.root, paths.raw_corpora_dir, paths.cleaned_corpora_dir, paths.embeddings_dir) == (
        home / "art", home / "raw", home / "clean", home / "emb")
    assert paths.checkpoints_dir.parent.parent == home / "art"
    config = dm.config
    assert config.extra_eval_paths == (str(home / "eval.txt"), "./heldout")  # a report row's name, as written
    assert config.distill.word_list == home / "words.txt"
    assert (config.select.forced_tokens_path, config.select.general_reference_paths) == (
        str(home / "forced.txt"), [str(home / "general.txt")])
    assert config.remap.remap_rules_path == str(home / "rules.yaml")
    assert read_prompts("~/prompts.txt") == ["hello"]
    assert read_text_files(["~/eval.txt"]) == ["hello\n"]
    (home / "file").write_text("x")
    with pytest.raises(NotADirectoryError, match="data.artifacts_dir ~/file is a file"):
        IVRDataModule(artifacts_dir="~/file")
    assert not (tmp_path / "~").exists()


@given(st.text(alphabet="ab\n\r\x0b\x0c\x1c\x85\u2028\u2029 "))
def test_text_lines_end_at_newlines_only_and_join_back_to_the_text(text):
    lines = text_lines(text)
    assert "".join(lines) == text
    assert all(line and "\n" not in line[:-1] for line in lines)
    assert all(line.endswith("\n") for line in lines[:-1])


def test_reference_and_measured_lines_are_not_cut_at_a_form_feed_or_a_line_separator():
    assert general_text(0, [], ["one\u2028line\x0c of text\n\nnext\n"]).lines == ["one\u2028line\x0c of text\n", "next\n"]
