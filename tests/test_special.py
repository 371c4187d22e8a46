"""Special tokens are read from tokenizer.json and its config, never assumed."""

from __future__ import annotations

import json
import logging

import pytest
from tokenizers import Tokenizer, models

from ivr.tokenizers.io import read_special_tokens
from ivr.tokenizers.special import special_tokens_of


def tokenizer_dir(tmp_path, added, config=None):
    tmp_path.mkdir(exist_ok=True)
    tok = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2}, [("a", "b")]))
    tok.add_special_tokens(added)
    tok.save(str(tmp_path / "tokenizer.json"))
    if config is not None:
        (tmp_path / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


def test_roles_come_from_the_config_in_either_form(tmp_path):
    path = tokenizer_dir(tmp_path, ["<s>", "</s>"], {"bos_token": {"content": "<s>"}, "eos_token": "</s>"})
    special = read_special_tokens(path)
    assert special.added == {3: "<s>", 4: "</s>"}
    assert (special.bos_id, special.eos_id, special.pad_id, special.unk_id) == (3, 4, None, None)
    # no <|endoftext|>: documents are separated by eos
    assert special.separator_id == 4 and special.protected_ids() == {3, 4}


def test_endoftext_separates_documents_where_the_vocabulary_has_it(tmp_path):
    path = tokenizer_dir(tmp_path, ["<|endoftext|>", "<|im_end|>"], {"eos_token": "<|im_end|>"})
    assert read_special_tokens(path).separator_id == 3


def test_a_separator_that_is_a_plain_vocabulary_piece_is_never_freed_nor_reassigned(tmp_path):
    from ivr.tokenizers.remap_rules import RemapRuleError, validate_remap_rules

    tmp_path.mkdir(exist_ok=True)
    tok = Tokenizer(models.BPE({"a": 0, "b": 1, "ab": 2, "<|endoftext|>": 3}, [("a", "b")]))
    tok.add_special_tokens(["</s>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"eos_token": "</s>"}), encoding="utf-8")
    special = read_special_tokens(tmp_path)
    assert special.separator_id == 3 and special.protected_ids() == {3, 4}
    with pytest.raises(RemapRuleError, match=r"id 3 is the document separator"):
        validate_remap_rules([{"id": 3, "new_token": "ba"}], "rules.yaml", tokenizer=tok, special=special)


def test_without_a_config_only_gpt2s_layout_is_read(tmp_path):
    (tmp_path / "a").mkdir()
    special = read_special_tokens(tokenizer_dir(tmp_path / "a", ["<|endoftext|>"]))
    assert (special.bos_id, special.eos_id, special.unk_id, special.pad_id) == (3, 3, 3, None)
    (tmp_path / "b").mkdir()
    with pytest.raises(ValueError, match="put a tokenizer_config.json naming bos_token"):
        read_special_tokens(tokenizer_dir(tmp_path / "b", ["<s>", "</s>"]))


@pytest.mark.parametrize(
    "config, message",
    [({"eos_token": "<nope>"}, "tokenizer_config.json: eos_token '<nope>' is not in the tokenizer's vocabulary"),
     ({"bos_token": "<s>"}, "no document separator"),
     ({"eos_token": 5}, "tokenizer_config.json: eos_token must be a token's text .*got 5"),
     ({"eos_token": {"id": 1}}, r"tokenizer_config.json: eos_token must be a token's text .*got \{'id': 1\}")],
)
def test_bad_configs_are_named(tmp_path, config, message):
    with pytest.raises(ValueError, match=message):
        read_special_tokens(tokenizer_dir(tmp_path, ["<s>"], config))


def test_a_config_that_is_not_utf8_is_named(tmp_path):
    path = tokenizer_dir(tmp_path, ["<s>"])
    (path / "tokenizer_config.json").write_bytes(b'{"eos_token": "\xe9"}')
    with pytest.raises(ValueError, match=r"tokenizer_config\.json: not valid UTF-8 JSON"):
        read_special_tokens(path)


def test_gpt2s_hub_config_without_roles_keeps_gpt2s_layout(tmp_path):
    # GPT-2's Hub tokenizer_config.json holds model_max_length alone
    special = read_special_tokens(tokenizer_dir(tmp_path, ["<|endoftext|>"], {"model_max_length": 1024}))
    assert (special.bos_id, special.eos_id, special.unk_id, special.pad_id) == (3, 3, 3, None)
    assert special.model_max_length == 1024


def test_special_tokens_map_gives_roles_as_transformers_reads_it(tmp_path):
    for name, decoder in (("legacy", False), ("listed", True)):
        config = {"model_max_length": 2048, "bos_token": "<s>", "eos_token": "<s>", "unk_token": "<s>"}
        if decoder:
            config["added_tokens_decoder"] = {}
        path = tokenizer_dir(tmp_path / name, ["<s>", "</s>", "<pad>"], config)
        (path / "special_tokens_map.json").write_text(json.dumps({"bos_token": "</s>", "eos_token": "</s>",
                                                                  "pad_token": {"content": "<pad>"}}))
        special = read_special_tokens(path)
        # the map replaces the config's roles, unless the config lists the added tokens: then it is not read
        expected = (3, 3, None, 3) if decoder else (4, 4, 5, 3)
        assert (special.bos_id, special.eos_id, special.pad_id, special.unk_id) == expected, name
        assert special.model_max_length == 2048


@pytest.mark.parametrize("listed", [{"additional_special_tokens": ["<|a|>", {"content": "<|b|>"}]},
                                    {"extra_special_tokens": ["<|a|>", "<|b|>"]},
                                    {"extra_special_tokens": {"a": "<|a|>", "b": "<|b|>"}},
                                    {"additional_special_tokens": ["<|a|>"], "extra_special_tokens": {"x": "<|b|>"}}])
def test_further_special_tokens_are_read_and_carried(tmp_path, listed):
    from transformers import AutoTokenizer

    from ivr.tokenizers.io import load_tokenizer, save_tokenizer_dir

    path = tokenizer_dir(tmp_path / "src", ["</s>", "<|a|>", "<|b|>", "<|c|>"], {"eos_token": "</s>", **listed})
    special = read_special_tokens(path)
    assert special.extra == ("<|a|>", "<|b|>")
    save_tokenizer_dir(load_tokenizer(path), tmp_path / "out", {}, special)
    assert read_special_tokens(tmp_path / "out").extra == ("<|a|>", "<|b|>")  # carried on to every derived one
    assert sorted(AutoTokenizer.from_pretrained(str(tmp_path / "out")).all_special_ids) == [3, 4, 5]
    with pytest.raises(ValueError, match=r"the further special tokens \['<\|z\|>'\] are not added tokens"):
        read_special_tokens(tokenizer_dir(tmp_path / "bad", ["</s>"], {"eos_token": "</s>",
                                                                       "additional_special_tokens": ["<|z|>"]}))


@pytest.mark.parametrize("config", [{"image_token": "<|a|>", "mask_token": {"content": "<|b|>"}},
                                    {"extra_special_tokens": {"image_token": "<|a|>", "mask_token": "<|b|>"}}])
def test_named_further_tokens_keep_their_names(tmp_path, config, caplog):
    from transformers import AutoTokenizer

    from ivr.tokenizers.io import load_tokenizer, save_tokenizer_dir

    path = tokenizer_dir(tmp_path / "src", ["</s>", "<|a|>", "<|b|>", "<|c|>"],
                         {"eos_token": "</s>", "add_bos_token": False, "additional_special_tokens": ["<|c|>"], **config})
    special = read_special_tokens(path)
    assert special.named == (("image_token", "<|a|>", 4), ("mask_token", "<|b|>", 5))  # not add_bos_token's switch
    assert special.extra == ("<|c|>",) and {4, 5} <= special.protected_ids()
    save_tokenizer_dir(load_tokenizer(path), tmp_path / "out", {}, special)
    assert read_special_tokens(tmp_path / "out").named == special.named
    fast = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    assert (fast.image_token, fast.mask_token, fast.extra_special_tokens) == ("<|a|>", "<|b|>", ["<|c|>"])
    assert sorted(fast.all_special_ids) == [3, 4, 5, 6]
    # a template's leftover (a mask token the vocabulary lacks) is left out, as transformers would give it a new id
    with caplog.at_level(logging.WARNING):
        left = read_special_tokens(tokenizer_dir(tmp_path / "bad", ["</s>"], {"eos_token": "</s>", "image_token": "<|z|>"}))
    assert left.named == () and "image_token '<|z|>' not in the tokenizer's vocabulary: left out" in caplog.text


@pytest.mark.parametrize("config, extra", [({}, ("<|a|>",)), ({"added_tokens_decoder": {}}, ())])
def test_the_map_s_further_special_tokens_count_only_where_transformers_reads_them(tmp_path, config, extra):
    from transformers import AutoTokenizer

    path = tokenizer_dir(tmp_path, ["</s>", "<|a|>"], {"eos_token": "</s>", **config})
    (path / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>",
                                                              "additional_special_tokens": ["<|a|>"]}), encoding="utf-8")
    assert read_special_tokens(path).extra == extra
    assert len(AutoTokenizer.from_pretrained(str(path)).all_special_ids) == 1 + len(extra)


def test_a_named_token_s_id_is_never_freed(gpt2_bpe):
    from dataclasses import replace

    from ivr.tokenizers.remap_rules import RemapRuleError, validate_remap_rules

    mask = gpt2_bpe.token_to_id("Ġmask")  # a plain vocabulary piece the config names mask_token
    special = replace(special_tokens_of(gpt2_bpe), named=(("mask_token", "Ġmask", mask),))
    assert mask in special.protected_ids()
    with pytest.raises(RemapRuleError, match=rf"id {mask} is the config's mask_token"):
        validate_remap_rules([{"id": mask, "new_text": "zzqqxx"}], "r.yaml", gpt2_bpe, special)


def test_a_role_at_id_zero_is_named_and_never_freed(tmp_path):
    """Id 0 is an id like any other: a role naming the vocabulary's first piece is in ``role_ids`` and protected."""
    special = read_special_tokens(tokenizer_dir(tmp_path, ["</s>"], {"eos_token": "</s>", "bos_token": "a"}))
    assert special.role_ids() == {"bos": 0, "eos": 3}
    assert 0 in special.protected_ids()


def test_padding_and_truncation_sides_are_kept_apart_and_checked(tmp_path):
    """Each side goes to its own field (a source may pad left and truncate right); a side that is neither is named."""
    special = read_special_tokens(tokenizer_dir(tmp_path / "a", ["</s>"], {
        "eos_token": "</s>", "padding_side": "left", "truncation_side": "right"}))
    assert (special.padding_side, special.truncation_side) == ("left", "right")
    with pytest.raises(ValueError, match="truncation_side must be 'left' or 'right', got 'middle'"):
        read_special_tokens(tokenizer_dir(tmp_path / "b", ["</s>"], {"eos_token": "</s>", "truncation_side": "middle"}))


def test_without_a_config_endoftext_beside_another_added_token_is_not_read_as_gpt2(tmp_path):
    """GPT-2's layout is ``<|endoftext|>`` as the only added token; with any other added token the roles of each
    are unknown, so a config is asked for."""
    with pytest.raises(ValueError, match="put a tokenizer_config.json naming bos_token"):
        read_special_tokens(tokenizer_dir(tmp_path, ["<|endoftext|>", "<|im_end|>"]))


def test_a_further_special_token_listed_twice_counts_once(tmp_path):
    """A transformers 4 config may list one token under both ``additional_special_tokens`` and
    ``extra_special_tokens``: it is one further special token."""
    path = tokenizer_dir(tmp_path, ["</s>", "<|a|>", "<|b|>"], {
        "eos_token": "</s>", "additional_special_tokens": ["<|a|>", "<|b|>"], "extra_special_tokens": ["<|a|>"]})
    assert read_special_tokens(path).extra == ("<|a|>", "<|b|>")


def test_named_tokens_are_ordered_by_name_and_the_record_says_only_whether_a_template_exists(tmp_path):
    """Named tokens come sorted by name whatever the config's order, so a derived directory's read-back compares
    equal; the metadata record holds whether there is a chat template, not the template."""
    from dataclasses import replace

    path = tokenizer_dir(tmp_path, ["</s>", "<|a|>", "<|b|>"],
                         {"eos_token": "</s>", "mask_token": "<|b|>", "image_token": "<|a|>"})
    special = read_special_tokens(path)
    assert special.named == (("image_token", "<|a|>", 4), ("mask_token", "<|b|>", 5))
    assert replace(special, chat_template="{{ messages }}").to_json()["chat_template"] is True


def padded_tokenizer_dir(tmp_path, added, config=None, **padding):
    """``tokenizer_dir``'s tokenizer saved after a padded call: its tokenizer.json carries the padding."""
    path = tokenizer_dir(tmp_path, added, config)
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.enable_padding(**padding)
    tok.save(str(path / "tokenizer.json"))
    return path


def test_the_configs_pad_token_and_side_come_before_the_padding_tokenizer_json_was_saved_with(tmp_path):
    """transformers takes a pad token and side from tokenizer.json's padding only where the configs name none."""
    padding = {"pad_id": 3, "pad_token": "</s>", "direction": "right"}
    bare = read_special_tokens(padded_tokenizer_dir(tmp_path / "a", ["</s>", "<pad>"], {"eos_token": "</s>"}, **padding))
    assert (bare.pad_id, bare.padding_side) == (3, "right")
    config = {"eos_token": "</s>", "padding_side": "left"}
    path = padded_tokenizer_dir(tmp_path / "b", ["</s>", "<pad>"], config, **padding)
    (path / "special_tokens_map.json").write_text(json.dumps({"eos_token": "</s>", "pad_token": "<pad>"}))
    special = read_special_tokens(path)
    assert (special.pad_id, special.padding_side) == (4, "left")


def test_the_truncation_side_comes_from_tokenizer_json_s_truncation_where_the_configs_name_none(tmp_path):
    """transformers takes ``truncation_side`` from the direction of the truncation tokenizer.json was saved with,
    as it takes ``padding_side`` from its padding; the original fetched from such a folder truncates as the source."""
    from transformers import AutoTokenizer

    from ivr.tokenizers.source import fetch_original_tokenizer

    source, _ = fetch_original_tokenizer(tmp_path / "gpt2", allow_hub=False)
    tok = Tokenizer.from_file(str(source / "tokenizer.json"))
    tok.enable_truncation(8, direction="left")
    tok.save(str(source / "tokenizer.json"))
    assert AutoTokenizer.from_pretrained(str(source)).truncation_side == "left"
    assert read_special_tokens(source).truncation_side == "left"
    fetched, meta = fetch_original_tokenizer(tmp_path / "o", local_dir=source, allow_hub=False)
    assert meta["special"]["truncation_side"] == "left"
    assert AutoTokenizer.from_pretrained(str(fetched)).truncation_side == "left"
    assert Tokenizer.from_file(str(fetched / "tokenizer.json")).truncation is None  # documents are encoded whole
    # the config's side comes first
    config = json.loads((source / "tokenizer_config.json").read_text(encoding="utf-8"))
    (source / "tokenizer_config.json").write_text(json.dumps({**config, "truncation_side": "right"}), encoding="utf-8")
    assert read_special_tokens(source).truncation_side == "right"


def test_transformers_no_limit_length_is_no_length(tmp_path):
    """transformers writes ``int(1e30)`` as model_max_length where it knows none: it is not a context size."""
    special = read_special_tokens(tokenizer_dir(tmp_path, ["<|endoftext|>"], {"model_max_length": int(1e30)}))
    assert special.model_max_length is None


def test_a_tokenizer_is_saved_only_with_the_source_s_added_tokens_at_their_ids(tmp_path):
    """The configs written beside tokenizer.json name the source's tokens: a tokenizer that holds others is
    refused before anything is written."""
    from ivr.tokenizers.io import save_tokenizer_dir

    path = tokenizer_dir(tmp_path / "source", ["</s>"], {"eos_token": "</s>"})
    tok = Tokenizer.from_file(str(path / "tokenizer.json"))
    tok.add_special_tokens(["<extra>"])
    with pytest.raises(ValueError, match=r"the added tokens are not the source's at the same ids: \[\(4, '<extra>'\)\]"):
        save_tokenizer_dir(tok, tmp_path / "out", {}, read_special_tokens(path))
    assert not (tmp_path / "out").exists()


def test_a_config_that_is_json_but_not_an_object_is_named(tmp_path):
    for name in ("tokenizer_config.json", "special_tokens_map.json"):
        path = tokenizer_dir(tmp_path / name, ["<s>"])
        (path / name).write_text('["<s>"]', encoding="utf-8")
        with pytest.raises(ValueError, match=rf"{name}: not a JSON object"):
            read_special_tokens(path)


def test_a_continuation_stops_at_the_eos_and_at_the_document_separator_where_they_differ(tmp_path):
    """An instruct model ends a turn with its eos but a document with ``<|endoftext|>``: predict stops at either."""
    from ivr.data import IVRDataModule

    data = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), tokenizer="original")
    data.paths.tokenizer_dir("original").mkdir(parents=True)
    tokenizer_dir(data.paths.tokenizer_dir("original"), ["<|endoftext|>", "<|im_end|>"],
                  {"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
    assert data.generation_ids() == ((3, 4), 3)


def test_only_the_roles_the_config_names_are_recorded(tmp_path):
    """A derived directory names the source's roles and no other: an unnamed pad stays unnamed there."""
    special = read_special_tokens(tokenizer_dir(tmp_path, ["</s>"], {"eos_token": "</s>"}))
    assert special.role_texts == (("eos", "</s>"),)
    assert {key for key in special.to_json() if key.endswith("_token")} == {"eos_token"}


def test_further_tokens_must_be_listed_and_named_tokens_must_be_texts(tmp_path):
    """A config that gives a bare string where a list belongs, or a number as a token, is named with its key; a
    mapping's entries whose names do not end in ``_token`` are further special tokens, not named ones."""
    with pytest.raises(ValueError, match=r"tokenizer_config.json: additional_special_tokens must list tokens' texts"):
        read_special_tokens(tokenizer_dir(tmp_path / "a", ["</s>", "<|a|>"], {
            "eos_token": "</s>", "additional_special_tokens": "<|a|>"}))
    with pytest.raises(ValueError, match=r"tokenizer_config.json: mask_token must be a token's text"):
        read_special_tokens(tokenizer_dir(tmp_path / "b", ["</s>"], {"eos_token": "</s>", "mask_token": {"content": 5}}))
    special = read_special_tokens(tokenizer_dir(tmp_path / "c", ["</s>", "<|a|>"], {
        "eos_token": "</s>", "extra_special_tokens": {"a": "<|a|>"}}))
    assert special.extra == ("<|a|>",) and special.named == ()


def test_gpt2s_layout_keeps_the_context_length_it_is_given(gpt2_bpe):
    """The packaged GPT-2 vocabulary stands for the Hub tokenizer, whose config says 1024; without a length none is
    made up."""
    from ivr.tokenizers.special import GPT2_MODEL_MAX_LENGTH

    assert special_tokens_of(gpt2_bpe, model_max_length=GPT2_MODEL_MAX_LENGTH).model_max_length == GPT2_MODEL_MAX_LENGTH
    assert special_tokens_of(gpt2_bpe).model_max_length is None


def test_reads_of_a_tokenizer_saved_again_follow_its_bytes(tmp_path):
    """Vocabulary and special-token reads share one parse per content: a file saved again in place, at the same
    size (two pieces swapped, as a new remap may do), is read again, and a deleted one is missed."""
    from ivr.tokenizers.io import read_vocab_size, read_vocabulary

    tok = Tokenizer(models.WordLevel({"a": 0, "b": 1, "<|endoftext|>": 2}, unk_token="<|endoftext|>"))
    tok.add_special_tokens(["<|endoftext|>"])
    tok.save(str(tmp_path / "tokenizer.json"))
    assert read_vocabulary(tmp_path) == {"a": 0, "b": 1, "<|endoftext|>": 2} and read_vocab_size(tmp_path) == 3
    assert read_special_tokens(tmp_path).separator_id == 2
    path = tmp_path / "tokenizer.json"
    swapped = path.read_text().replace('"a": 0', '"c": 0').replace('"b": 1', '"a": 1').replace('"c": 0', '"b": 0')
    assert swapped != path.read_text() and len(swapped) == len(path.read_text())
    with open(path, "r+") as f:  # the same file, rewritten within the clock's tick
        f.write(swapped)
    assert read_vocabulary(tmp_path) == {"b": 0, "a": 1, "<|endoftext|>": 2}
    path.unlink()
    with pytest.raises(FileNotFoundError, match="no tokenizer at"):
        read_vocabulary(tmp_path)


@pytest.mark.parametrize("config, model_type, roles", [
    ({"tokenizer_class": "GPT2Tokenizer"}, None, {"bos": 3, "eos": 3, "unk": 3}),
    ({"tokenizer_class": "GPT2TokenizerFast", "eos_token": "<pad>", "unk_token": None}, None, {"bos": 3, "eos": 4}),
    ({"model_max_length": 1024}, "gpt2", {"bos": 3, "eos": 3, "unk": 3}),  # the class of config.json's model type
    ({"tokenizer_class": "PreTrainedTokenizerFast"}, "gpt2", {}),  # the bare class has no defaults
])
def test_roles_the_configs_leave_unnamed_take_the_tokenizer_class_s_defaults(tmp_path, config, model_type, roles):
    from transformers import AutoTokenizer

    path = tokenizer_dir(tmp_path, ["<|endoftext|>", "<pad>"], config)
    if model_type is not None:
        (path / "config.json").write_text(json.dumps({"model_type": model_type}), encoding="utf-8")
    assert read_special_tokens(path).role_ids() == roles
    loaded = AutoTokenizer.from_pretrained(str(path))  # as transformers gives them
    assert {role: loaded.convert_tokens_to_ids(getattr(loaded, f"{role}_token")) for role in ("bos", "eos", "pad", "unk")
            if getattr(loaded, f"{role}_token") is not None} == roles


def test_a_class_default_the_vocabulary_lacks_is_left_out_and_named(tmp_path, caplog):
    path = tokenizer_dir(tmp_path, ["<pad>", "<sep>"], {"tokenizer_class": "GPT2Tokenizer", "eos_token": "<sep>"})
    with caplog.at_level(logging.WARNING):
        assert read_special_tokens(path).role_ids() == {"eos": 4}
    assert "bos_token to '<|endoftext|>'" in caplog.text and "vocabulary lacks" in caplog.text
