from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from tests.remap_fixtures import REASSIGNED, build_tokenizers, make_rules, tiny_gpt2

from ivr.checkpoints import load_lightning_checkpoint
from ivr.export import EXPORT_METADATA_FILE, export_hf
from ivr.stamps import file_sha256


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tokenizers")
    build_tokenizers(root / "original", root / "remapped", make_rules())
    return root / "remapped"


@pytest.mark.parametrize("tied", [True, False])
def test_export_loads_offline(tmp_path, tokenizer_dir, tied):
    from transformers import AutoModelForCausalLM, AutoTokenizer, pipeline

    model = tiny_gpt2(tied=tied)
    model.config.bos_token_id = model.config.eos_token_id = 7  # wrong on purpose: export must fix them
    out = export_hf(model, tokenizer_dir, tmp_path / "hf", {"run": "test"})
    assert model.config.eos_token_id == 7, "export must not modify the model"

    names = {p.name for p in out.iterdir()}
    assert {
        "config.json",
        "generation_config.json",
        "model.safetensors",
        "tokenizer.json",
        EXPORT_METADATA_FILE,
    } <= names
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir()), "no temporary directory left behind"
    config = json.loads((out / "config.json").read_text())
    assert (config["vocab_size"], config["eos_token_id"], config["bos_token_id"]) == (50257, 50256, 50256)
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == generation["pad_token_id"] == 50256  # GPT-2 has no pad: eos pads
    record = json.loads((out / EXPORT_METADATA_FILE).read_text())
    assert record["run"] == "test" and record["sha256"]["model.safetensors"] == file_sha256(out / "model.safetensors")
    assert (out / "tokenizer.json").read_bytes() == (tokenizer_dir / "tokenizer.json").read_bytes()

    loaded = AutoModelForCausalLM.from_pretrained(out)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    assert (loaded.lm_head.weight is loaded.transformer.wte.weight) == tied

    # the class name transformers 4 reads too (5 would write its own, TokenizersBackend, which 4 refuses)
    assert json.loads((out / "tokenizer_config.json").read_text())["tokenizer_class"] == "PreTrainedTokenizerFast"
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer(" mitochondria")["input_ids"]
    assert ids == [next(i for i, t in REASSIGNED.items() if t == " mitochondria")]
    assert tokenizer.eos_token_id == 50256 and tokenizer.decode(ids) == " mitochondria"

    generator = pipeline("text-generation", model=str(out), device="cpu")
    new = generator("The mitochondria", max_new_tokens=4, do_sample=False, return_full_text=False)[0]["generated_text"]
    prompt = tokenizer("The mitochondria", return_tensors="pt")["input_ids"]
    greedy = generator.model.generate(prompt, max_new_tokens=4, do_sample=False)[0, prompt.size(1):]
    assert new and new == tokenizer.decode(greedy)


def test_export_keeps_the_model_s_generation_settings_and_stop_ids(tmp_path, tokenizer_dir):
    model = tiny_gpt2(tied=True)
    model.generation_config.do_sample, model.generation_config.temperature, model.generation_config.top_p = True, 0.7, 0.8
    model.generation_config.eos_token_id = [50256, 3]  # an end of turn besides the tokenizer's eos
    out = export_hf(model, tokenizer_dir, tmp_path / "hf", {})
    generation = json.loads((out / "generation_config.json").read_text())
    assert (generation["temperature"], generation["top_p"], generation["eos_token_id"]) == (0.7, 0.8, [50256, 3])
    model.generation_config.eos_token_id = [5, 3]  # stop ids without the tokenizer's eos: replaced by it
    out = export_hf(model, tokenizer_dir, tmp_path / "hf2", {})
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == 50256


def test_a_published_generation_config_with_sampling_settings_but_greedy_exports(tmp_path, tokenizer_dir):
    from transformers import AutoModelForCausalLM

    saved = tmp_path / "base"
    tiny_gpt2(tied=True).save_pretrained(saved)
    path = saved / "generation_config.json"
    # sampling settings without do_sample: transformers warns when loading it and refused to save it once edited
    path.write_text(json.dumps({**json.loads(path.read_text()), "temperature": 0.7, "top_p": 0.9}))
    out = export_hf(AutoModelForCausalLM.from_pretrained(saved), tokenizer_dir, tmp_path / "hf", {})
    generation = json.loads((out / "generation_config.json").read_text())
    assert (generation["temperature"], generation["top_p"], generation["eos_token_id"]) == (0.7, 0.9, 50256)
    assert "do_sample" not in generation or generation["do_sample"] is False


def test_the_config_names_the_weights_own_dtype(tmp_path, tokenizer_dir):
    from transformers import AutoModelForCausalLM

    model = tiny_gpt2(tied=True)
    assert json.loads((export_hf(model, tokenizer_dir, tmp_path / "f32", {}) / "config.json").read_text())[
        "dtype"] == "float32"
    out = export_hf(model.to(torch.bfloat16), tokenizer_dir, tmp_path / "bf16", {})  # a bf16-true fit's weights
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert AutoModelForCausalLM.from_pretrained(out, dtype="auto").dtype == torch.bfloat16


def test_the_export_is_readable_by_others_under_a_normal_umask(tmp_path, tokenizer_dir):
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = export_hf(tiny_gpt2(), tokenizer_dir, tmp_path / "training" / "hf_export", {"run": "test"})
    finally:
        os.umask(old)
    entries = [out, *out.rglob("*")]
    assert {p.name for p in entries} >= {"hf_export", "model.safetensors", "config.json", "tokenizer.json"}
    for p in entries:
        mode = p.stat().st_mode
        need = stat.S_IROTH | (stat.S_IXOTH if p.is_dir() else 0)
        assert mode & need == need, f"{p.relative_to(tmp_path)}: {stat.filemode(mode)}"


def test_export_rejects_vocab_mismatch(tmp_path, tokenizer_dir):
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=1000, n_embd=16, n_layer=1, n_head=2, n_positions=16))
    with pytest.raises(ValueError, match=r"has 50257 ids but the model has 1000 token rows"):
        export_hf(model, tokenizer_dir, tmp_path / "hf", {})
    assert not (tmp_path / "hf").exists()


def test_a_tokenizer_that_names_no_eos_token_is_refused(tmp_path, tokenizer_dir):
    """A config naming a bos token but no eos: an export would generate without end, so nothing is written."""
    import shutil

    folder = tmp_path / "no_eos"
    shutil.copytree(tokenizer_dir, folder)
    config = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
    config.update(eos_token=None, unk_token=None)
    (folder / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    (folder / "special_tokens_map.json").unlink(missing_ok=True)
    with pytest.raises(ValueError, match=r"names no eos token: generation would never stop"):
        export_hf(tiny_gpt2(tied=True), folder, tmp_path / "hf", {})
    assert not (tmp_path / "hf").exists()


def test_tokenizer_files_that_disagree_are_refused_and_leave_the_export_as_it_was(
        tmp_path, tokenizer_dir):
    import shutil

    model = tiny_gpt2(tied=True)
    out = export_hf(model, tokenizer_dir, tmp_path / "hf", {"run": "first"})
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    adds = tmp_path / "adds"  # a config that adds a token tokenizer.json lacks
    shutil.copytree(tokenizer_dir, adds)
    config = json.loads((adds / "tokenizer_config.json").read_text())
    config["added_tokens_decoder"] = {"50257": {"content": "<|tool|>", "special": True, "lstrip": False,
                                                "rstrip": False, "normalized": False, "single_word": False}}
    (adds / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"export to .*hf refused, the files disagree: tokenizer_config.json adds "
                                         r"tokens: AutoTokenizer has 50258 ids, tokenizer.json 50257"):
        export_hf(model, adds, tmp_path / "hf", {"run": "second"})
    no_eos = tmp_path / "no_eos"
    shutil.copytree(tokenizer_dir, no_eos)
    config = json.loads((no_eos / "tokenizer_config.json").read_text())
    config["eos_token"] = config["bos_token"] = config["unk_token"] = None
    (no_eos / "tokenizer_config.json").write_text(json.dumps(config))
    # tokenizer.json's end of text still stands as eos, which AutoTokenizer would not read from these files
    with pytest.raises(ValueError, match=r"refused, the files disagree: .*AutoTokenizer reads eos id None but "
                                         r"tokenizer.json and its config give 50256"):
        export_hf(model, no_eos, tmp_path / "hf", {"run": "third"})
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("tied", [True, False])
def test_lightning_checkpoint_round_trip(tmp_path, tied):
    trained = tiny_gpt2(tied=tied, seed=1)
    state = {f"model.{k}": v for k, v in trained.state_dict().items()}
    if tied:
        state.pop("model.lm_head.weight")
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {**state, "other.step": torch.tensor(3)}, "epoch": 1}, path)

    fresh = tiny_gpt2(tied=tied, seed=2)
    load_lightning_checkpoint(fresh, path)
    for name, tensor in trained.state_dict().items():
        assert torch.equal(fresh.state_dict()[name], tensor), name
    assert (fresh.lm_head.weight is fresh.transformer.wte.weight) == tied


class _Pickled:
    """An object a checkpoint's hyperparameters may hold: weights-only loading refuses to build it."""


def test_weights_only_loading_refuses_a_checkpoint_holding_other_objects(tmp_path):
    trained = tiny_gpt2(seed=1)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}, "epoch": 1}, path)
    fresh = load_lightning_checkpoint(tiny_gpt2(seed=2), path, weights_only=True)
    assert torch.equal(fresh.transformer.wte.weight, trained.transformer.wte.weight)
    torch.save({"state_dict": {f"model.{k}": v for k, v in trained.state_dict().items()}, "hparams": _Pickled()}, path)
    with pytest.raises(ValueError, match=rf"{path}: holds more than tensors and primitive types, which --weights_only "
                                         "true refuses"):
        load_lightning_checkpoint(tiny_gpt2(), path, weights_only=True)
    load_lightning_checkpoint(tiny_gpt2(), path)  # trusted: loaded whole


def test_lightning_checkpoint_errors(tmp_path):
    path = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {"net.x": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match=rf"{path}: no weights under prefix 'model.'"):
        load_lightning_checkpoint(tiny_gpt2(), path)
    torch.save({"state_dict": {"model.transformer.wte.weight": torch.zeros(50257, 32)}}, path)
    with pytest.raises(ValueError, match=r"does not fit the model; missing \['transformer.wpe.weight'"):
        load_lightning_checkpoint(tiny_gpt2(), path)
    torch.save({"weights": 1}, path)
    with pytest.raises(ValueError, match="not a Lightning checkpoint"):
        load_lightning_checkpoint(tiny_gpt2(), path)


def test_a_sharded_checkpoint_folder_is_named_with_how_to_make_one_file(tmp_path):
    """A sharded checkpoint (FSDP's or DeepSpeed's folder) exists but is no file the export reads: "no checkpoint"
    would send the user looking for a file that is there."""
    folder = tmp_path / "epoch=0-step=8.ckpt"
    folder.mkdir()
    (folder / "meta.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"step=8.ckpt is a folder \(a sharded checkpoint\).*"
                                         r"lightning.pytorch.utilities.consolidate_checkpoint"):
        load_lightning_checkpoint(tiny_gpt2(), folder)


def test_a_tokenizer_whose_source_stated_no_length_exports_the_models_context(tmp_path):
    from transformers import AutoTokenizer

    from ivr.tokenizers.source import fetch_original_tokenizer

    packaged, _ = fetch_original_tokenizer(tmp_path / "a", allow_hub=False)
    bare = tmp_path / "bare"  # tokenizer.json alone: no config states a length
    bare.mkdir()
    (bare / "tokenizer.json").write_bytes((packaged / "tokenizer.json").read_bytes())
    fetched, meta = fetch_original_tokenizer(tmp_path / "o", local_dir=bare, allow_hub=False)
    assert meta["special"]["model_max_length"] is None
    model = tiny_gpt2()
    out = export_hf(model, fetched, tmp_path / "hf", {})
    assert AutoTokenizer.from_pretrained(str(out)).model_max_length == model.config.n_positions


class _Runs:
    """Pickled, it calls ``Path.touch`` on load: what a checkpoint from an untrusted source may hold."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (self.path,))


def test_reading_a_checkpoint_s_parts_runs_nothing_it_holds(tmp_path):
    from ivr.run_checkpoint import best_checkpoint
    from ivr.checkpoints import checkpoint_part

    ran = tmp_path / "ran"
    path = tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "IVRDataModule": {"vocabulary_sha256": "x"}, "evil": _Runs(ran)}, path)
    assert checkpoint_part(path, "IVRDataModule") == {} and not ran.exists()  # Lightning's load decides
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "IVRDataModule": {"vocabulary_sha256": "x"}}, plain)
    assert checkpoint_part(plain, "IVRDataModule") == {"vocabulary_sha256": "x"}
    # a weights-only checkpoint (checkpoint.save_weights_only) holds no callback state, so no best checkpoint
    with pytest.raises(FileNotFoundError, match="records no callback state .*save_weights_only"):
        best_checkpoint(plain)


def test_a_checkpoint_holding_classes_is_left_to_lightning_and_counts_as_resumable(tmp_path):
    """A checkpoint that weights-only loading cannot read (hyperparameters pickled as classes) is neither refused
    as "not a Lightning checkpoint" nor as weights-only: Lightning's own load decides, and nothing in it runs here."""
    from ivr.checkpoints import holds_training_state, lightning_checkpoint

    ran = tmp_path / "ran"
    path = tmp_path / "classes.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": _Runs(ran)}, path)
    assert lightning_checkpoint(path) == path
    assert holds_training_state(path) and not ran.exists()
    plain = tmp_path / "plain.ckpt"
    torch.save({"state_dict": {}, "optimizer_states": []}, plain)
    assert holds_training_state(plain)


def test_a_dict_without_state_dict_is_not_a_lightning_checkpoint(tmp_path):
    """A dictionary saved with torch.save that holds no ``state_dict`` is named before Lightning meets it."""
    from ivr.checkpoints import lightning_checkpoint

    path = tmp_path / "weights.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(ValueError, match=r"weights\.pt is not a Lightning checkpoint \(it holds dict, no 'state_dict'\)"):
        lightning_checkpoint(path)


def test_a_checkpoint_part_that_is_not_a_mapping_reads_as_empty(tmp_path):
    """The data module's state is a mapping; anything else under its key reads as none rather than being checked
    as if it were one."""
    from ivr.checkpoints import checkpoint_part

    path = tmp_path / "odd.ckpt"
    torch.save({"state_dict": {}, "IVRDataModule": ["vocabulary_sha256"]}, path)
    assert checkpoint_part(path, "IVRDataModule") == {}


def test_an_untied_model_needs_its_output_layer_in_the_checkpoint(tmp_path):
    """Only a tied model may lack ``lm_head.weight``: an untied one would keep a random output layer."""
    state = {f"model.{k}": v for k, v in tiny_gpt2(tied=False, seed=1).state_dict().items() if k != "lm_head.weight"}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state}, path)
    with pytest.raises(ValueError, match=r"does not fit the model; missing \['lm_head.weight'\]"):
        load_lightning_checkpoint(tiny_gpt2(tied=False), path)


def test_an_untied_checkpoint_is_refused_by_a_model_that_ties_its_embeddings(tmp_path):
    """Loaded into a tied model, an untied fit's two matrices would land in one parameter, the last one read
    winning: the input rows would silently be the output layer's. Refused by name; a tied fit's checkpoint, whose
    two entries are the same matrix, still loads."""
    untied = tiny_gpt2(tied=False, seed=1)
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {f"model.{k}": v for k, v in untied.state_dict().items()}}, path)
    with pytest.raises(ValueError, match=r"last.ckpt: its output layer \(lm_head.weight\) differs from its token "
                                         r"embedding \(transformer.wte.weight\), but the configured model ties them"):
        load_lightning_checkpoint(tiny_gpt2(tied=True), path)
    tied = tiny_gpt2(tied=True, seed=1)
    torch.save({"state_dict": {f"model.{k}": v for k, v in tied.state_dict().items()}}, path)
    loaded = load_lightning_checkpoint(tiny_gpt2(tied=True, seed=2), path)
    assert torch.equal(loaded.transformer.wte.weight, tied.transformer.wte.weight)


def test_weights_the_model_lacks_are_named_and_the_check_sees_the_whole_checkpoint(tmp_path):
    """A weight under the prefix that the model has no place for is an error, not dropped; ``check`` is called
    with the whole checkpoint and its error refuses the load."""
    state = {f"model.{k}": v for k, v in tiny_gpt2(seed=1).state_dict().items()}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": {**state, "model.extra.weight": torch.zeros(2)}, "epoch": 1}, path)
    with pytest.raises(ValueError, match=r"unexpected \['extra.weight'\]"):
        load_lightning_checkpoint(tiny_gpt2(), path)
    torch.save({"state_dict": state, "epoch": 1}, path)
    seen = []

    def refuse(checkpoint):
        seen.append(checkpoint["epoch"])
        raise ValueError("refused by the check")

    with pytest.raises(ValueError, match="refused by the check"):
        load_lightning_checkpoint(tiny_gpt2(), path, check=refuse)
    assert seen == [1]


def test_an_error_without_a_size_mismatch_line_is_given_whole():
    """``first_mismatch`` falls back to the whole error, so a load that fails otherwise is not reported empty."""
    from ivr.checkpoints import first_mismatch

    assert first_mismatch(RuntimeError("Error(s):\n\tsize mismatch for w: copying a param.")) == "size mismatch for w: copying a param"
    assert first_mismatch(RuntimeError("something else")) == "something else"


def test_a_model_whose_output_layer_has_other_rows_than_its_embedding_is_refused(tmp_path, tokenizer_dir):
    """An untied head of another size would export logits over ids the tokenizer and the config do not have."""
    model = tiny_gpt2(tied=False)
    rows = model.get_input_embeddings().weight.shape[0]
    model.lm_head = torch.nn.Linear(model.config.n_embd, rows + 8, bias=False)
    with pytest.raises(ValueError, match=rf"the model has {rows} token rows and {rows + 8} output rows"):
        export_hf(model, tokenizer_dir, tmp_path / "hf", {})
    assert not (tmp_path / "hf").exists()



def test_the_export_record_names_the_tokenizer_folder_and_the_files_taken_from_it(tmp_path, tokenizer_dir):
    """``ivr_export.json`` says where the exported tokenizer came from, file by file."""
    out = export_hf(tiny_gpt2(), tokenizer_dir, tmp_path / "hf", {})
    record = json.loads((out / EXPORT_METADATA_FILE).read_text())
    assert record["tokenizer_dir"] == str(tokenizer_dir)
    assert record["tokenizer_files"] == sorted(p.name for p in tokenizer_dir.iterdir() if p.is_file())


@pytest.mark.parametrize("scaling", [None, {"rope_type": "linear", "factor": 2.0}])
def test_a_llama_s_rope_settings_are_written_under_the_keys_of_transformers_4_too(tmp_path, tokenizer_dir, scaling):
    # transformers 4 ignores rope_parameters and would run the model at rope_theta 10000 without a word
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(
        vocab_size=50257, hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, max_position_embeddings=32, rope_theta=100000.0, rope_scaling=scaling and dict(scaling))).eval()
    out = export_hf(model, tokenizer_dir, tmp_path / "hf", {})
    config = json.loads((out / "config.json").read_text())
    assert config["rope_theta"] == config["rope_parameters"]["rope_theta"] == 100000.0
    assert config.get("rope_scaling") == scaling and config["rope_parameters"]["rope_type"] == (scaling or {}).get(
        "rope_type", "default")
    assert AutoConfig.from_pretrained(out).rope_parameters == model.config.rope_parameters
    ids = torch.tensor([[5, 9, 13, 20, 31, 40, 63, 50256] * 3])
    with torch.no_grad():
        assert torch.equal(AutoModelForCausalLM.from_pretrained(out).eval()(ids).logits, model(ids).logits)
