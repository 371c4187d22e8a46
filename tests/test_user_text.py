"""Text files named in settings: a missing or non-UTF-8 file is one error naming the file and the setting."""

from __future__ import annotations

import pytest

from ivr.analysis.general_use import general_text
from ivr.analysis.select import read_forced_tokens
from ivr.prompts import read_prompts
from ivr.tokenizers.remap_rules import read_remap_rules
from ivr.user_text import read_user_text

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
