"""A byte-level BPE other than GPT-2, with added tokens at the lowest ids as SmolLM2 has them: init reads its
special tokens, distillation keeps every id and added token, remap rules refuse the protected ids."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import AutoTokenizer

from ivr.tokenizers.distill import UnsupportedTokenizer, distill_tokenizer, source_bpe
from ivr.tokenizers.io import load_tokenizer, read_special_tokens
from ivr.tokenizers.remap_rules import RemapRule, RemapRuleError, id_contract, validate_remap_rules
from ivr.tokenizers.source import fetch_original_tokenizer
from tests.distill_fixtures import corpus, fast_settings

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>", "<file_sep>"]
ROLES = {"bos_token": "<|im_start|>", "eos_token": "<|im_end|>", "pad_token": "<|im_end|>", "unk_token": "<|endoftext|>"}
CHAT_TEMPLATE = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"


def tiny_bpe(pre_tokenizer=None, extra_texts=()) -> Tokenizer:
    """A byte-level BPE of 600 ids trained on the test corpus (and ``extra_texts``), its special tokens at ids 0-4."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer or pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=SPECIALS, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator([*corpus(), *extra_texts], trainer)
    return tok


@pytest.fixture(scope="module")
def source_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("smol")
    tiny_bpe().save(str(path / "tokenizer.json"))
    (path / "tokenizer_config.json").write_text(json.dumps({**ROLES, "model_max_length": 8192, "chat_template": CHAT_TEMPLATE}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def distilled(source_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("distilled")
    original, _ = fetch_original_tokenizer(out / "original", "some/model", local_dir=source_dir, allow_hub=False)
    special = read_special_tokens(original)
    summary = distill_tokenizer(load_tokenizer(original), corpus()[:3], corpus()[3:], fast_settings(),
                                out / "tokenizer", out / "r.md", out / "r.json", special=special)
    return out, special, summary


def test_init_reads_the_special_tokens_from_the_source(source_dir, distilled):
    out, special, _ = distilled
    assert special.added == dict(enumerate(SPECIALS))
    assert (special.bos_id, special.eos_id, special.pad_id, special.unk_id) == (1, 2, 2, 0)
    assert special.separator_id == 0 and special.model_max_length == 8192
    hf = AutoTokenizer.from_pretrained(str(out / "original"))
    assert (hf.bos_token_id, hf.eos_token_id, hf.pad_token_id) == (1, 2, 2)


def test_the_chat_template_is_carried_and_gives_the_same_ids(distilled):
    out, special, _ = distilled
    assert special.chat_template == CHAT_TEMPLATE
    messages = [{"role": "user", "content": "def f(x): return x"}]
    original, derived = (AutoTokenizer.from_pretrained(str(out / name)) for name in ("original", "tokenizer"))
    assert derived.chat_template == CHAT_TEMPLATE
    ids = original.apply_chat_template(messages, tokenize=True)["input_ids"]
    assert ids[0] == 1 and ids == derived.apply_chat_template(messages, tokenize=True)["input_ids"]


def test_distilled_keeps_every_id_added_token_and_role(source_dir, distilled):
    out, special, summary = distilled
    ids = summary["ids"]
    assert ids["id_to_token_identical"] and ids["added_token_mismatches"] == 0
    assert (ids["vocab_size"], ids["added_tokens"], ids["special_tokens"]) == (600, 5, 5)
    assert ids["single_id_decode_mismatches"] == ids["random_sequence_decode_mismatches"] == 0
    # a 600-id vocabulary has far more ties and conflicts per word than a real one
    assert summary["sets"]["corpus"]["rates"]["word_occurrence"] > 0.99
    bpe, tok = load_tokenizer(source_dir), load_tokenizer(out / "tokenizer")
    text = "<|im_start|>user\ndef f(x):<|im_end|>\n<|endoftext|> return x"
    assert tok.encode(text).ids == bpe.encode(text).ids  # the pipeline encodes special-token text as text
    bpe.encode_special_tokens = tok.encode_special_tokens = False  # the saved files as others load them
    assert tok.encode(text).ids == bpe.encode(text).ids
    assert tok.encode(text).ids[0] == 1 and 2 in tok.encode(text).ids
    assert read_special_tokens(out / "tokenizer") == special
    hf = AutoTokenizer.from_pretrained(str(out / "tokenizer"))
    assert (hf.bos_token_id, hf.eos_token_id, hf.unk_token_id) == (1, 2, 0)
    assert json.loads((out / "tokenizer" / "ivr_metadata.json").read_text())["special"]["eos_id"] == 2


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"id": 1, "new_text": "zzqqxx"}, "<|im_start|> cannot be reassigned: id 1 is an added token and the bos token"),
        ({"id": 2, "new_text": "zzqqxx"}, "id 2 is an added token and the eos token and the pad token"),
        ({"id": 4, "new_text": "zzqqxx"}, "<file_sep> cannot be reassigned: id 4 is an added token"),
        # old_text is written beside old_token and edited like new_text: it must name the token at the id
        ({"id": 590, "old_text": "not the piece", "new_text": "zzqqxx"},
         "old_text 'not the piece' is not the text of the distilled token at that id"),
    ],
)
def test_remap_rules_refuse_special_ids(distilled, bad, message):
    out, special, _ = distilled
    with pytest.raises(RemapRuleError, match="r.yaml: rule 1 .*") as err:
        validate_remap_rules([bad], "r.yaml", load_tokenizer(out / "tokenizer"), special)
    assert message in str(err.value)


def test_a_complete_rule_on_a_special_token_is_refused_without_the_tokenizer(distilled):
    _, special, _ = distilled
    rule = {"id": 3, "old_token": "<repo_name>", "new_token": "zz", "gpt2_ids": [90, 90]}
    with pytest.raises(RemapRuleError, match="<repo_name> cannot be reassigned"):
        validate_remap_rules([rule], "r.yaml", None, special)


def test_id_contract_notices_a_lost_special_token(distilled):
    out, special, _ = distilled
    tok = load_tokenizer(out / "tokenizer")
    assert all(id_contract(tok, tok, special, []).values())
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] != 3]
    broken = id_contract(tok, Tokenizer.from_str(json.dumps(spec)), special, [])
    assert broken["added tokens identical at the same ids"] is False
    role = next(iter(special.role_ids().values()))  # a role's id (bos, eos, pad or unk) holding another token
    spec = json.loads(tok.to_str())
    spec["added_tokens"] = [t for t in spec["added_tokens"] if t["id"] != role]
    spec["model"]["vocab"][role][0] = "<|other|>"
    assert id_contract(tok, Tokenizer.from_str(json.dumps(spec)), special, [])[
        "bos/eos/pad/unk ids hold the same tokens"] is False
    # the two tokenizers agree, but not with what the source's config made the added tokens
    wanted = dataclasses.replace(special, added={**special.added, 3: "<|not this|>"})
    assert id_contract(tok, tok, wanted, [])["added tokens identical at the same ids"] is False
    rule = RemapRule(7, tok.id_to_token(7), "zz", (90, 90))
    assert id_contract(tok, tok, special, [rule])["no rule frees a protected id"] is True
    assert id_contract(tok, tok, special, [rule], protected_ids=[7])["no rule frees a protected id"] is False


def test_unsupported_pre_tokenizers_are_named():
    words = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False)])
    with pytest.raises(UnsupportedTokenizer, match=r"WhitespaceSplit\(\) then ByteLevel"):
        source_bpe(tiny_bpe(words))
    prefixed = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"(?i:'s|'t)|\p{N}{1,3}| ?\p{L}+|\s+"), "isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=False)])
    with pytest.raises(UnsupportedTokenizer, match=r"Split\(pattern='\(\?i:'s\|'t\).*add_prefix_space=True"):
        source_bpe(tiny_bpe(prefixed))


def test_gpt2_regex_as_split_then_byte_level_is_supported():
    from ivr.tokenizers.gpt2_pre_tokens import GPT2_PATTERN

    split = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(GPT2_PATTERN), "isolated"),
                                     pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    source = source_bpe(tiny_bpe(split))
    assert source.never == frozenset(range(5)) and len(source.pieces) == 600


def test_a_byte_missing_from_the_vocabulary_is_dropped_as_bpe_drops_it():
    from ivr.tokenizers.byte_level import byte_to_char
    from ivr.tokenizers.distill import initial_scores, unigram_tokenizer, with_rules

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    alphabet = [c for c in pre_tokenizers.ByteLevel.alphabet() if c != byte_to_char()[4]]
    tok.train_from_iterator(corpus(), trainers.BpeTrainer(vocab_size=400, special_tokens=SPECIALS[:1],
                                                          show_progress=False, initial_alphabet=alphabet))
    source = source_bpe(tok)
    model = unigram_tokenizer(source.pieces, initial_scores(source.pieces, source.merges, 3.3), source.never)
    distilled = with_rules(model, [], source=tok)
    text = "def f(x):\x04 return x\x04\x04"
    assert distilled.encode(text).ids == tok.encode(text).ids
    with pytest.raises(Exception, match="unk"):  # without the cut, the Unigram has no piece for the byte
        model.encode(byte_to_char()[4])


def test_a_normalized_role_token_with_a_space_keeps_its_text_under_an_nfc_normalizer(tmp_path):
    """An NFC source whose bos is a normalized special token holding a space and an accent: behind the byte-level
    normalizer the distilled tokenizer must still name it by its text (config, id->token, decode without special
    tokens), or transformers adds it again as a new id."""
    from tokenizers import AddedToken, normalizers

    tok = tiny_bpe()
    tok.normalizer = normalizers.NFC()
    tok.add_special_tokens([AddedToken("<é s>", normalized=True, special=True)])
    source = tmp_path / "source"
    source.mkdir()
    tok.save(str(source / "tokenizer.json"))
    (source / "tokenizer_config.json").write_text(json.dumps({"bos_token": "<é s>", "eos_token": "<|im_end|>"}))
    original, _ = fetch_original_tokenizer(tmp_path / "original", "some/model", local_dir=source, allow_hub=False)
    special = read_special_tokens(original)
    bos = special.bos_id
    summary = distill_tokenizer(load_tokenizer(original), corpus()[:3], corpus()[3:], fast_settings(),
                                tmp_path / "tokenizer", tmp_path / "r.md", tmp_path / "r.json", special=special)
    ids = summary["ids"]
    assert ids["id_to_token_identical"] and not ids["random_sequence_decode_mismatches"]
    hf = AutoTokenizer.from_pretrained(str(tmp_path / "tokenizer"))
    assert (hf.bos_token, hf.bos_token_id, len(hf)) == ("<é s>", bos, tok.get_vocab_size())
    text = "<é s> def f(x): return x"
    assert hf.encode(text) == AutoTokenizer.from_pretrained(str(original)).encode(text)
    assert hf.decode(hf.encode(text), skip_special_tokens=True) == " def f(x): return x"


def test_padding_as_transformers_reads_it_is_carried_and_its_pad_id_protected(tmp_path):
    """A pad token and side named only by tokenizer.json's padding, a truncation side by the config: transformers
    reads them there, so every derived directory must say them and remap must not free the pad id."""
    tok = tiny_bpe()
    pad = tok.id_to_token(590)  # a plain vocabulary piece
    tok.enable_padding(direction="left", pad_id=590, pad_token=pad)
    source = tmp_path / "source"
    source.mkdir()
    tok.save(str(source / "tokenizer.json"))
    (source / "tokenizer_config.json").write_text(json.dumps({**{k: v for k, v in ROLES.items() if k != "pad_token"},
                                                                  "truncation_side": "left"}))
    original, meta = fetch_original_tokenizer(tmp_path / "original", "some/model", local_dir=source, allow_hub=False)
    special = read_special_tokens(original)
    assert (special.pad_id, special.padding_side, special.truncation_side) == (590, "left", "left")
    assert 590 in special.protected_ids() and meta["special"]["pad_token"] == pad  # a piece's text, not null
    with pytest.raises(RemapRuleError, match="id 590 is the pad token"):
        validate_remap_rules([{"id": 590, "new_text": "zzqqxx"}], "r.yaml", load_tokenizer(original), special)
    out = tmp_path / "distilled"
    distill_tokenizer(load_tokenizer(original), corpus()[:3], corpus()[3:], fast_settings(), out, tmp_path / "r.md",
                      tmp_path / "r.json", special=special)
    for directory in (source, original, out):
        hf = AutoTokenizer.from_pretrained(str(directory))
        assert (hf.pad_token_id, hf.padding_side, hf.truncation_side) == (590, "left", "left"), directory
        assert hf(["a", "abc def"], padding=True)["input_ids"][0][0] == 590


def test_runs_of_spaces_get_their_rule_whatever_the_fit_corpus_holds(tmp_path):
    """A BPE that merges long runs of spaces (SmolLM2's, this one trained on indented and aligned lines) ties on
    them in the Unigram. The space is a default ``split_rule_chars`` character, so its rule comes from the
    vocabulary even where the fit corpus (here without such runs) gives no wrong word to earn it."""
    from ivr.tokenizers.distill import DistillSettings
    from ivr.tokenizers.special import special_tokens

    assert " " in DistillSettings.split_rule_chars
    bpe = tiny_bpe(extra_texts=["x = 1" + " " * k + "# c\n" + " " * (4 * (k % 5)) + "y\n" for k in range(1, 40)] * 20)
    special = special_tokens(bpe, {role.removesuffix("_token"): text for role, text in ROLES.items()})
    fit = [re.sub(" {2,}", " ", text) for text in corpus()[:3]]  # not one run of spaces
    texts = ["x = 1" + " " * n + end for n in range(2, 64) for end in ("\ny", "# note")]
    for chars, exact in (("", False), (" ", True)):
        out = tmp_path / ("space" if chars else "none")
        distill_tokenizer(bpe, fit, corpus()[3:], fast_settings(split_rule_chars=chars), out / "tok", out / "r.md",
                          out / "r.json", special=special)
        tok = load_tokenizer(out / "tok")
        assert all(tok.encode(t).ids == bpe.encode(t).ids for t in texts) == exact, chars


def edited(tok: Tokenizer, edit) -> Tokenizer:
    """``tok`` with its ``tokenizer.json`` spec changed in place by ``edit``."""
    spec = json.loads(tok.to_str())
    edit(spec)
    return Tokenizer.from_str(json.dumps(spec))


@pytest.mark.parametrize("option, value, says", [
    ("byte_fallback", True, "byte_fallback=True"),
    ("unk_token", "<unk>", "unk_token='<unk>'"),
    ("dropout", 0.1, "dropout=0.1"),
    ("end_of_word_suffix", "</w>", "end_of_word_suffix='</w>'"),
])
def test_bpe_options_the_unigram_cannot_reproduce_are_named(gpt2_bpe, option, value, says):
    source = edited(gpt2_bpe, lambda spec: spec["model"].update({option: value}))
    with pytest.raises(UnsupportedTokenizer, match=rf"^cannot distil this tokenizer: BPE option {re.escape(says)} is unsupported$"):
        source_bpe(source)


def test_a_dropout_of_zero_is_no_dropout(gpt2_bpe):
    assert source_bpe(edited(gpt2_bpe, lambda spec: spec["model"].update(dropout=0.0))).rules


def test_a_model_or_decoder_other_than_byte_level_bpe_is_named(gpt2_bpe):
    with pytest.raises(UnsupportedTokenizer, match=r"^cannot distil this tokenizer: its model is Unigram, not BPE; "):
        source_bpe(Tokenizer(models.Unigram([("a", 0.0)], None, False)))
    source = edited(gpt2_bpe, lambda spec: spec.update(decoder={"type": "BPEDecoder", "suffix": "</w>"}))
    with pytest.raises(UnsupportedTokenizer, match=r"decoder BPEDecoder\(suffix='</w>'\) is unsupported \(ByteLevel expected\)$"):
        source_bpe(source)


def test_a_piece_no_merge_builds_is_never_output(gpt2_bpe):
    """BPE cannot give it back for any text, so the Unigram must not either."""
    source = source_bpe(edited(gpt2_bpe, lambda spec: spec["model"]["vocab"].update(zzqq=50257)))
    assert source.pieces[50257] == "zzqq" and source.never == {50256, 50257}
    assert "zzqq" not in source.outputs


@pytest.mark.parametrize("flag", ["lstrip", "rstrip", "single_word"])
def test_an_added_token_that_strips_spaces_or_checks_words_keeps_the_rules_unless_behind_a_normalizer(gpt2_bpe, flag):
    """Behind a normalizer such a token would be matched on byte-level text, where a space is ``Ġ``: the source's
    pre-tokenizer is then kept as it is; without one the rules stay."""
    from tokenizers import AddedToken

    for normalizer, rules in ((None, True), ({"type": "NFC"}, False)):
        source = edited(gpt2_bpe, lambda spec: spec.update(normalizer=normalizer))
        source.add_tokens([AddedToken("zz", normalized=True, **{flag: True})])
        assert source_bpe(source).rules is rules, normalizer


def test_a_source_distillation_refuses_is_refused_before_analyze_encodes_the_corpus(tmp_path, gpt2_bpe):
    """BPE dropout (random ids) passes init, which any byte-level BPE does for training on the original tokenizer;
    a pipeline that distils refuses it right after init."""
    import json

    from ivr import pipeline
    from ivr.paths import ArtifactPaths
    from ivr.pipeline_config import OriginalTokenizer, PipelineConfig
    from ivr.tokenizers.distill import UnsupportedTokenizer

    spec = json.loads(gpt2_bpe.to_str())
    spec["model"]["dropout"] = 0.5
    source, raw = tmp_path / "src", tmp_path / "raw"
    source.mkdir()
    raw.mkdir()
    (source / "tokenizer.json").write_text(json.dumps(spec), encoding="utf-8")
    for i in range(60):  # enough documents for both splits
        (raw / f"{i}.txt").write_text(f"def f{i}(x):\n    return x + {i}\n" * 20, encoding="utf-8")
    paths = ArtifactPaths.from_config(tmp_path / "artifacts", raw_corpora_dir=raw)
    config = PipelineConfig(paths=paths, heldout_fraction=0.3,
                            original=OriginalTokenizer("x/y", str(source), use_hub=False))
    with pytest.raises(UnsupportedTokenizer, match=r"BPE option dropout=0.5 is unsupported"):
        pipeline.prepare(config, "distilled", 32)
    assert paths.original_tokenizer_dir.is_dir() and not paths.token_frequency.exists()
