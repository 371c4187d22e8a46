"""Any causal LM: tiny Llama and GPT-2 models, tied and untied, through build, align, install, export and reload.

The tokenizer is a tiny byte-level BPE built here, with its special tokens at the lowest ids as in SmolLM2
(``<|endoftext|>`` 0, ``<|im_start|>`` 1 = bos, ``<|im_end|>`` 2 = eos) and ``<|endoftext|>`` as padding.
"""

from __future__ import annotations

import json

import pytest
import torch
from tokenizers import Tokenizer
from tokenizers.models import BPE, Unigram

from ivr.causal_lm import ModelShape, base_model, build_model, context_size, learned_position_embeddings
from ivr.embeddings import align_embeddings, install_embeddings, is_tied, load_final_embeddings
from ivr.checkpoints import load_lightning_checkpoint
from ivr.export import export_disagreements, export_hf
from ivr.model import GenerationSettings, IVRLanguageModel
from ivr.paths import ArtifactPaths
from ivr.tokenizers.byte_level import byte_to_char, text_to_piece
from ivr.tokenizers.io import byte_level_tokenizer
from ivr.tokenizers.remap_rules import RemapRule, write_remap_rules

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
BOS, EOS, PAD = 1, 2, 0
MERGES = [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("Ġ", "c"), ("a", "t"), ("Ġ", "a"), ("o", "n")]
NEW_TEXTS = [" cat", " on"]  # strings the original BPE cuts into several ids, given ids of their own
PADDING = 8
ARCHITECTURES = ["llama", "gpt2"]


def save_tokenizer(tok: Tokenizer, directory) -> None:
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIALS[BOS], eos_token=SPECIALS[EOS], pad_token=SPECIALS[PAD])
    fast.save_pretrained(str(directory))
    tok.save(str(directory / "tokenizer.json"))


def original_bpe() -> Tokenizer:
    vocab = {t: i for i, t in enumerate(SPECIALS)}
    for piece in [*byte_to_char().values(), *(a + b for a, b in MERGES)]:
        vocab.setdefault(piece, len(vocab))
    tok = byte_level_tokenizer(BPE(vocab, MERGES))
    tok.add_special_tokens(SPECIALS)
    return tok


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Artifact tree: the original BPE, a remapped Unigram over the same ids and the rules between them."""
    paths = ArtifactPaths.from_config(tmp_path_factory.mktemp("artifacts"))
    original = original_bpe()
    pieces = {i: p for p, i in original.get_vocab().items()}
    rules = []
    for rule_id, text in zip((original.token_to_id("in"), original.token_to_id("at")), NEW_TEXTS, strict=True):
        ids = tuple(original.encode(text).ids)
        assert len(ids) > 1 and rule_id >= len(SPECIALS)
        rules.append(RemapRule(rule_id, pieces[rule_id], text_to_piece(text), ids, "test"))
        pieces[rule_id] = text_to_piece(text)
    remapped = byte_level_tokenizer(Unigram([(pieces[i], -10.0 / len(pieces[i])) for i in range(len(pieces))], unk_id=None))
    remapped.add_special_tokens(SPECIALS)
    for tok, directory in ((original, paths.original_tokenizer_dir), (remapped, paths.remapped_tokenizer_dir)):
        directory.mkdir(parents=True)
        save_tokenizer(tok, directory)
    write_remap_rules(paths.remap_rules, rules)
    return paths, rules, original.get_vocab_size()


def shape(architecture: str, vocab_size: int, tied: bool = True, **kw) -> ModelShape:
    kv = {"n_kv_head": 1} if architecture == "llama" else {}  # grouped-query attention, as SmolLM2
    return ModelShape(
        architecture, n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=vocab_size, tie_word_embeddings=tied,
        bos_token_id=BOS, eos_token_id=EOS, **kv, **kw,
    )


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_built_models_have_the_shape_asked_and_the_same_weights_per_seed(architecture, tied):
    model = build_model(shape(architecture, 300, tied))
    assert type(model).__name__ == {"llama": "LlamaForCausalLM", "gpt2": "GPT2LMHeadModel"}[architecture]
    assert model.get_input_embeddings().weight.shape == (300, 16)
    assert is_tied(model) == tied
    assert context_size(model.config) == 32
    assert (learned_position_embeddings(model) is None) == (architecture == "llama")
    assert (model.config.bos_token_id, model.config.eos_token_id) == (BOS, EOS)
    again = build_model(shape(architecture, 300, tied))
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values(), strict=True))
    other = build_model(shape(architecture, 300, tied, init_seed=1))
    assert not torch.equal(model.get_input_embeddings().weight, other.get_input_embeddings().weight)


def test_gpt2_shape_is_refused_grouped_query_attention():
    with pytest.raises(ValueError, match="GPT-2 has no grouped-query attention"):
        ModelShape("gpt2", n_kv_head=1)
    with pytest.raises(ValueError, match="n_head 4 is not a multiple of n_kv_head 3"):
        ModelShape("llama", n_head=4, n_embd=16, n_kv_head=3)
    with pytest.raises(ValueError, match=r"eos_token_id 300 is outside the vocabulary \[0, 300\)"):
        ModelShape("llama", vocab_size=300, eos_token_id=300)
    # rotary positions turn pairs of a head's dimensions: an odd width failed inside the first forward call
    with pytest.raises(ValueError, match="a llama head needs an even width, and n_embd 24 / n_head 8 is 3"):
        ModelShape("llama", n_head=8, n_embd=24)
    assert ModelShape("gpt2", n_head=8, n_embd=24)


def test_opt_s_position_table_is_found_under_its_decoder():
    from transformers import OPTConfig, OPTForCausalLM

    model = OPTForCausalLM(OPTConfig(vocab_size=300, hidden_size=16, num_hidden_layers=1, ffn_dim=32,
                                     num_attention_heads=2, max_position_embeddings=32, word_embed_proj_dim=16))
    assert learned_position_embeddings(model) is model.model.decoder.embed_positions


def test_a_cached_hub_model_is_fingerprinted_by_the_revision_its_cache_resolves(tmp_path, monkeypatch):
    from ivr.causal_lm import checkpoint_fingerprint

    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--someone--tiny"
    assert checkpoint_fingerprint("someone/tiny") is None  # not cached
    for commit in ("a" * 40, "b" * 40):
        (repo / "snapshots" / commit).mkdir(parents=True)
        (repo / "snapshots" / commit / "config.json").write_text("{}")
    (repo / "refs").mkdir()
    fingerprints = []
    for commit in ("a" * 40, "b" * 40):  # another download moved the cache's main to a new snapshot
        (repo / "refs" / "main").write_text(commit)
        fingerprints.append(checkpoint_fingerprint("someone/tiny"))
    assert fingerprints == [[["revision", "a" * 40]], [["revision", "b" * 40]]]


@pytest.mark.parametrize("padded", [False, True])
@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_align_reads_any_model_and_install_writes_it_back(workspace, architecture, tied, padded):
    paths, rules, vocab_size = workspace
    rows = vocab_size + (PADDING if padded else 0)
    model = build_model(shape(architecture, rows, tied))
    wte = model.get_input_embeddings().weight.detach().clone()
    head = model.get_output_embeddings().weight.detach().clone()
    out = align_embeddings(model, paths)

    learned = architecture == "gpt2"
    assert set(out) == {"original_wte", "aligned_wte", "final_wte"} | ({"original_wpe"} if learned else set()) | (
        set() if tied else {"final_lm_head"}
    )
    assert paths.embedding("original_wpe").exists() == learned, "a stale position table must not survive"
    summary = json.loads(paths.embedding_metadata("alignment").read_text())
    assert summary["position_embeddings"] == ("learned" if learned else "none")
    assert summary["files"] == sorted(f"{name}.pt" for name in out)
    assert (summary["vocab_size"], summary["padding_rows"], summary["tied_output_embeddings"]) == (vocab_size, rows - vocab_size, tied)
    assert "no learned position embeddings" in summary["why"]["original_wpe"] or learned

    final, final_head = load_final_embeddings(paths.embedding("final_wte"), paths.embedding("final_lm_head"))
    assert (final_head is None) == tied
    install_embeddings(model, final, final_head)
    assert is_tied(model) == tied
    reassigned = [r.id for r in rules]
    untouched = torch.ones(rows, dtype=torch.bool)
    untouched[reassigned] = False
    for now, before in [(model.get_input_embeddings().weight, wte), (model.get_output_embeddings().weight, head)]:
        assert torch.equal(now[untouched], before[untouched]), "special, kept and padding rows stay as they were"
        for rule in rules:
            assert torch.allclose(now[rule.id], before[list(rule.gpt2_ids)].mean(0))
    assert torch.isfinite(model(torch.tensor([[BOS, 5, reassigned[0], EOS]])).logits).all()


@pytest.mark.parametrize("tied", [True, False])
def test_padding_rows_take_no_part_in_the_statistics(workspace, tied):
    from ivr.embeddings import AlignSettings

    paths, rules, vocab_size = workspace
    model = build_model(shape("llama", vocab_size + PADDING, tied))
    tables = {"final_wte": model.get_input_embeddings().weight}
    if not tied:  # the output layer's own rows, padded alike
        tables["final_lm_head"] = model.get_output_embeddings().weight
    with torch.no_grad():
        for weight in tables.values():
            weight[vocab_size:] = 1e6  # padding rows a model never trained
    align_embeddings(model, paths, AlignSettings(init_strategy="global_mean"))
    for name, weight in tables.items():
        final, weight = torch.load(paths.embedding(name), weights_only=True), weight.detach()
        assert torch.allclose(final[rules[0].id], weight[:vocab_size].mean(0)), name
        assert torch.equal(final[vocab_size:], weight[vocab_size:]), name


@pytest.mark.parametrize("tied", [True, False])
@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_export_loads_with_transformers_and_agrees_on_every_special_id(tmp_path, workspace, architecture, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    paths, rules, vocab_size = workspace
    rows = vocab_size + PADDING
    model = build_model(shape(architecture, rows, tied))
    model.config.bos_token_id = model.config.eos_token_id = 7  # wrong on purpose: the tokenizer decides
    out = export_hf(model, paths.remapped_tokenizer_dir, tmp_path / "hf", {"run": "test"})

    config = json.loads((out / "config.json").read_text())
    generation = json.loads((out / "generation_config.json").read_text())
    assert (config["vocab_size"], config["bos_token_id"], config["eos_token_id"], config["pad_token_id"]) == (rows, BOS, EOS, PAD)
    assert config["architectures"] == [type(model).__name__]
    assert (generation["bos_token_id"], generation["eos_token_id"], generation["pad_token_id"]) == (BOS, EOS, PAD)
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == 32
    record = json.loads((out / "ivr_export.json").read_text())
    assert (record["vocab_size"], record["embedding_rows"], record["eos_token_id"]) == (vocab_size, rows, EOS)
    assert export_disagreements(out, rows) == []

    loaded = AutoModelForCausalLM.from_pretrained(out)
    assert type(loaded) is type(model) and is_tied(loaded) == tied
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id) == (BOS, EOS, PAD)
    assert tokenizer(NEW_TEXTS[0])["input_ids"] == [rules[0].id]
    assert tokenizer.decode([rules[0].id, EOS]) == NEW_TEXTS[0] + SPECIALS[EOS]

    generator = pipeline("text-generation", model=str(out), device="cpu")
    new = generator(" the cat", max_new_tokens=3, do_sample=False, return_full_text=False)[0]["generated_text"]
    prompt = tokenizer(" the cat", return_tensors="pt")["input_ids"]
    greedy = generator.model.generate(prompt, max_new_tokens=3, do_sample=False)[0, prompt.size(1):]
    assert new == tokenizer.decode(greedy, skip_special_tokens=True)


def test_export_refuses_files_that_disagree(tmp_path, workspace):
    paths, _, vocab_size = workspace
    with pytest.raises(ValueError, match=f"has {vocab_size} ids but the model has 100 token rows"):
        export_hf(build_model(shape("llama", 100)), paths.remapped_tokenizer_dir, tmp_path / "small", {})
    assert not (tmp_path / "small").exists()

    out = export_hf(build_model(shape("llama", vocab_size)), paths.remapped_tokenizer_dir, tmp_path / "hf", {})
    generation = json.loads((out / "generation_config.json").read_text())
    (out / "generation_config.json").write_text(json.dumps({**generation, "eos_token_id": 0}))
    config = json.loads((out / "config.json").read_text())
    (out / "config.json").write_text(json.dumps({**config, "vocab_size": vocab_size + 1}))
    problems = export_disagreements(out, vocab_size)
    assert any("generation_config.json eos_token_id 0 but the tokenizer's eos token has id 2" in p for p in problems)
    assert any(f"config.json vocab_size {vocab_size + 1} but the embedding matrix has {vocab_size} rows" in p for p in problems)


@pytest.mark.parametrize("tied", [True, False])
def test_lightning_checkpoint_of_a_llama_round_trips(tmp_path, tied):
    trained = build_model(shape("llama", 300, tied, init_seed=1))
    state = {f"model.{k}": v for k, v in trained.state_dict().items() if not (tied and k == "lm_head.weight")}
    torch.save({"state_dict": state}, tmp_path / "last.ckpt")
    fresh = load_lightning_checkpoint(build_model(shape("llama", 300, tied, init_seed=2)), tmp_path / "last.ckpt")
    for name, tensor in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    assert is_tied(fresh) == tied


def test_a_saved_llama_loads_from_its_directory_in_float32_and_train_mode(tmp_path):
    build_model(shape("llama", 300)).to(torch.bfloat16).save_pretrained(tmp_path)
    loaded = base_model(str(tmp_path), None)
    assert type(loaded).__name__ == "LlamaForCausalLM" and loaded.dtype == torch.float32
    module = IVRLanguageModel(model_name_or_path=str(tmp_path))
    module.configure_model()
    assert all(m.training for m in module.model.modules())


def greedy_module(architecture: str, max_new_tokens: int) -> IVRLanguageModel:
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape(architecture, 300))
    module.configure_model()
    module.eval()
    module.generation = GenerationSettings(max_new_tokens=max_new_tokens, temperature=0.0)
    return module


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_generation_stays_within_the_context_size(architecture):
    module = greedy_module(architecture, 64)
    # a prompt past the context keeps its last half, leaving the other half to the new tokens
    for prompt_length, longest in [(10, 32 - 10), (40, 32 - 16)]:
        ids = torch.randint(3, 300, (1, prompt_length))
        out = module.predict_step({"prompt": "p", "input_ids": ids}, 0)["ids"]
        assert 0 < len(out) <= longest


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_generation_stops_at_the_model_s_eos(architecture):
    module = greedy_module(architecture, 8)
    forward = module.model.forward

    def eos_after_one(*args, **kwargs):  # a random model rarely picks eos: after one new token it must
        out = forward(*args, **kwargs)
        out.logits[..., EOS] += 1e4 * (kwargs["input_ids"].size(1) == 1)
        return out

    module.model.forward = eos_after_one
    out = module.predict_step({"prompt": "p", "input_ids": torch.randint(3, 300, (1, 5))}, 0)["ids"]
    assert len(out) == 2 and out[1] == EOS


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_position_embeddings_are_not_decayed(architecture):
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape(architecture, 300))
    module.configure_model()
    module.trainer = type("T", (), {"max_steps": 10, "max_epochs": -1})()
    decay, no_decay = module.configure_optimizers()["optimizer"].param_groups
    positions = learned_position_embeddings(module.model)
    assert any(p is module.model.get_input_embeddings().weight for p in decay["params"])
    assert (positions is not None) == any(p is getattr(positions, "weight", None) for p in no_decay["params"])


def write_llama_gguf(model, path, tokens: list[str]) -> None:
    """``model`` as a float32 GGUF file laid out as llama.cpp's converter writes it (q/k rows permuted)."""
    import gguf
    import numpy as np

    def permute(w, n_head):  # llama.cpp's interleaving of rotary halves, which transformers undoes on load
        return w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:]).swapaxes(1, 2).reshape(w.shape)

    cfg = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(cfg.max_position_embeddings)
    writer.add_block_count(cfg.num_hidden_layers)
    writer.add_embedding_length(cfg.hidden_size)
    writer.add_feed_forward_length(cfg.intermediate_size)
    writer.add_head_count(cfg.num_attention_heads)
    writer.add_head_count_kv(cfg.num_key_value_heads)
    writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_bos_token_id(BOS)
    writer.add_eos_token_id(EOS)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, cfg.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight" and cfg.tie_word_embeddings:
            continue  # GGUF marks a tied model by the output matrix's absence
        base, suffix = name.rsplit(".", 1)
        array = tensor.numpy().astype(np.float32)
        if ".q_proj." in name:
            array = permute(array, cfg.num_attention_heads)
        elif ".k_proj." in name:
            array = permute(array, cfg.num_key_value_heads)
        writer.add_tensor(f"{names.get_name(base)}.{suffix}", array)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


@pytest.mark.parametrize("tied", [True, False])
def test_a_gguf_checkpoint_loads_as_a_plain_model_that_saves(tmp_path, tied):
    pytest.importorskip("gguf")
    pytest.importorskip("accelerate")
    tokens = [*SPECIALS, *byte_to_char().values()]
    model = build_model(ModelShape("llama", n_layer=2, n_head=4, n_kv_head=2, n_embd=16, n_positions=64,
                                   vocab_size=len(tokens), tie_word_embeddings=tied))
    write_llama_gguf(model, tmp_path / "tiny.gguf", tokens)

    loaded = base_model(str(tmp_path / "tiny.gguf"), None)
    assert type(loaded).__name__ == "LlamaForCausalLM" and loaded.dtype == torch.float32 and is_tied(loaded) == tied
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert getattr(loaded.config, "quantization_config", None) is None
    assert (loaded.config.bos_token_id, loaded.config.eos_token_id, context_size(loaded.config)) == (BOS, EOS, 64)
    loaded.save_pretrained(tmp_path / "saved")  # refused by transformers for the model it loads from GGUF
    again = base_model(str(tmp_path / "saved"), None)
    assert torch.equal(again.get_input_embeddings().weight, model.get_input_embeddings().weight)


def test_a_refusal_of_sdpa_from_the_hub_or_its_cache_names_the_setting(monkeypatch):
    from ivr import causal_lm

    def refuse(name, attn_implementation):  # transformers' words for GPT-Neo, whichever branch loads it
        raise ValueError("GPTNeoForCausalLM does not support an attention implementation through "
                         "torch.nn.functional.scaled_dot_product_attention yet.")

    monkeypatch.setattr(causal_lm, "_load_pretrained", refuse)
    with pytest.raises(ValueError, match="scaled_dot_product_attention yet.; set model.attn_implementation: eager"):
        causal_lm.load_pretrained("someone/neo")
