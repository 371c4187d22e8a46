"""The LightningModule's loss and bits per byte, and the message when pretrained weights are missing."""

from __future__ import annotations

import logging
import math
import re
from dataclasses import replace

import pytest
import torch

from ivr.metrics import token_nll
from ivr.causal_lm import ModelShape, PretrainedUnavailableError, base_model, build_model, check_pretrained_reachable
from ivr.model import IVRLanguageModel


def test_token_nll_matches_transformers_loss():
    torch.manual_seed(0)
    model = build_model(ModelShape(n_layer=1, n_embd=16, n_positions=16))
    ids = torch.randint(0, 50257, (3, 16))
    out = model(input_ids=ids, labels=ids)
    nll, targets = token_nll(out.logits, ids)
    assert targets.numel() == 3 * 15
    assert torch.allclose(nll.mean(), out.loss, atol=1e-5)


def test_validation_bits_per_byte_is_nll_in_bits_over_bytes():
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.eval()  # no dropout, so the reference forward below sees the same logits
    ids = torch.randint(0, 50257, (2, 16))
    batch = {"input_ids": ids, "n_bytes": torch.tensor([40, 50])}
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.validation_step(batch, 0)
    module.on_validation_epoch_end()
    nll, _ = token_nll(module(ids), ids)
    assert logged["val/bits_per_byte"] == pytest.approx(nll.sum().item() / math.log(2) / 90, rel=1e-5)
    assert logged["val/perplexity"] == pytest.approx(math.exp(logged["val/loss"]), rel=1e-5)


def test_a_diverged_model_scores_nan_not_a_perfect_zero():
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    with torch.no_grad():
        module.model.lm_head.weight[3, 0] = float("nan")  # reaches every logit through the tied embedding
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.validation_step({"input_ids": torch.randint(0, 50257, (2, 16)), "n_bytes": torch.tensor([40, 50])}, 0)
    module.on_validation_epoch_end()
    assert math.isnan(logged["val/loss"]) and math.isnan(logged["val/bits_per_byte"])


def tiny_trainer(**kw):
    from lightning.pytorch import Trainer

    return Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                   enable_checkpointing=False, **kw)


def blocks(n: int, length: int) -> list[dict]:
    return [{"input_ids": torch.randint(0, 64, (length,)), "n_bytes": torch.tensor(30)} for _ in range(n)]


def test_blocks_longer_than_the_models_context_are_refused_by_name():
    from lightning.pytorch import LightningDataModule
    from torch.utils.data import DataLoader

    class Blocks(LightningDataModule):
        def __init__(self, block_size: int):
            super().__init__()
            self.save_hyperparameters()

        def val_dataloader(self):
            return DataLoader(blocks(2, self.hparams.block_size), batch_size=2)

    shape = ModelShape(architecture="llama", n_layer=1, n_head=2, n_embd=16, n_positions=32, vocab_size=64)
    with pytest.raises(ValueError, match="data.block_size 64 is longer than the model's context of 32 tokens"):
        tiny_trainer().validate(IVRLanguageModel(model_name_or_path=None, from_config=shape), datamodule=Blocks(64))
    tiny_trainer().validate(IVRLanguageModel(model_name_or_path=None, from_config=shape), datamodule=Blocks(32))


def test_scoring_an_untied_fit_s_checkpoint_with_a_tied_model_is_refused(tmp_path):
    """Lightning would load both matrices of an untied fit into the one tied parameter and score the model with
    its input rows replaced by the output layer's, without a word."""
    from lightning.pytorch import LightningDataModule
    from torch.utils.data import DataLoader

    class Blocks(LightningDataModule):
        def val_dataloader(self):
            return DataLoader(blocks(2, 16), batch_size=2)

    shape = ModelShape(n_layer=1, n_head=2, n_embd=16, n_positions=16, vocab_size=64, tie_word_embeddings=False)
    trained = IVRLanguageModel(model_name_or_path=None, from_config=shape)
    trained.configure_model()
    path = tmp_path / "untied.ckpt"
    torch.save({"state_dict": trained.state_dict(), "pytorch-lightning_version": "2.5.0"}, path)
    tied = IVRLanguageModel(model_name_or_path=None, from_config=replace(shape, tie_word_embeddings=True))
    with pytest.raises(ValueError, match=r"untied.ckpt: its output layer \(lm_head.weight\) differs from its token "
                                         r"embedding \(transformer.wte.weight\), but the configured model ties them"):
        tiny_trainer().validate(tied, datamodule=Blocks(), ckpt_path=str(path))


def test_a_fit_of_unbounded_length_asks_for_max_steps():
    from torch.utils.data import DataLoader

    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_head=2, n_embd=16,
                                                                              n_positions=16, vocab_size=64))
    with pytest.raises(ValueError, match="set trainer.max_steps"):
        tiny_trainer(max_epochs=-1).fit(module, DataLoader(blocks(4, 16), batch_size=2))


def test_the_schedule_counts_epochs_from_the_data_without_building_a_loader():
    from types import SimpleNamespace

    from ivr.schedule import schedule_steps

    data = SimpleNamespace(train_batches_per_epoch=lambda: 10)
    trainer = SimpleNamespace(max_steps=-1, max_epochs=3, datamodule=data, limit_train_batches=1.0,
                              accumulate_grad_batches=4)
    assert schedule_steps(trainer) == 9  # ceil(10 / 4) optimizer steps per epoch, 3 epochs
    assert schedule_steps(SimpleNamespace(**{**vars(trainer), "limit_train_batches": 0.5})) == 6
    assert schedule_steps(SimpleNamespace(**{**vars(trainer), "limit_train_batches": 8, "max_steps": 5})) == 5
    assert schedule_steps(SimpleNamespace(**{**vars(trainer), "max_epochs": -1, "max_steps": 7})) == 7
    assert schedule_steps(SimpleNamespace(**{**vars(trainer), "max_epochs": None})) == 3 * 1000  # Lightning's default


def test_init_is_cheap_and_configure_model_builds_once():
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16))
    assert module.model is None
    module.configure_model()
    first = module.model
    module.configure_model()
    assert module.model is first


def test_missing_pretrained_weights_name_both_ways_out(tmp_path):
    module = IVRLanguageModel(model_name_or_path=str(tmp_path / "no-such-checkpoint"))
    with pytest.raises(PretrainedUnavailableError, match=r"local checkpoint directory.*configs/demo\.yaml"):
        module.configure_model()


def test_a_model_counts_as_reachable_only_with_its_weights_in_the_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    repo = tmp_path / "models--someone--model"
    snapshot = repo / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    (snapshot / "config.json").write_text("{}")  # what an interrupted download leaves
    with pytest.raises(PretrainedUnavailableError, match="'someone/model': not a local checkpoint"):
        check_pretrained_reachable("someone/model")
    (snapshot / "model.safetensors").write_bytes(b"")
    check_pretrained_reachable("someone/model")
    check_pretrained_reachable(str(snapshot))  # a local directory: its loading names what is wrong in its files


def test_a_local_directory_without_a_config_or_weights_is_refused_before_the_stages(tmp_path):
    """Not only when align reads it, after every stage before it has run."""
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty: no config\.json in this directory \(model\.model_name_or_path\)"):
        check_pretrained_reachable(str(tmp_path / "empty"))
    build_model(ModelShape(n_layer=1, n_head=1, n_embd=8, n_positions=16)).save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").rename(tmp_path / "m" / "weights.safetensors")
    with pytest.raises(ValueError, match=r"m: no weights in this directory \(model\.model_name_or_path\): none of "
                                         r"model\.safetensors, "):
        check_pretrained_reachable(str(tmp_path / "m"))


def test_a_damaged_local_checkpoint_is_named_with_its_cause_not_looked_up_on_the_hub(tmp_path):
    from ivr.causal_lm import load_pretrained

    build_model(ModelShape(n_layer=1, n_head=1, n_embd=8, n_positions=16)).save_pretrained(tmp_path / "cut")
    weights = tmp_path / "cut" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])
    with pytest.raises(ValueError, match=r"cut: cannot load the checkpoint in this directory \(.*(header|metadata)"):
        load_pretrained(str(tmp_path / "cut"))
    (tmp_path / "empty").mkdir()  # named as missing, not as a config.json without a key
    with pytest.raises(ValueError, match=r"empty: no config\.json in this directory \(model\.model_name_or_path\)"):
        load_pretrained(str(tmp_path / "empty"))
    (tmp_path / "noweights").mkdir()
    (tmp_path / "noweights" / "config.json").write_text((tmp_path / "cut" / "config.json").read_text())
    with pytest.raises(ValueError, match=r"noweights: cannot load the checkpoint in this directory"):
        load_pretrained(str(tmp_path / "noweights"))
    (tmp_path / "m.gguf").write_bytes(b"")
    with pytest.raises(ValueError, match=r"m\.gguf: cannot read this GGUF checkpoint"):
        load_pretrained(str(tmp_path / "m.gguf"))
    # a GGUF spec may name the tokenizer too: which setting is wrong is said
    for check in (lambda name: base_model(name, None), check_pretrained_reachable):
        with pytest.raises(FileNotFoundError, match=r"^model\.model_name_or_path: no GGUF file at .*nowhere\.gguf"):
            check(str(tmp_path / "nowhere.gguf"))


@pytest.mark.parametrize("kw", [{"model_name_or_path": None}, {"model_name_or_path": "x", "from_config": ModelShape()}])
def test_model_source_must_be_exactly_one(kw):
    with pytest.raises(ValueError, match="model_name_or_path"):
        IVRLanguageModel(**kw)


def test_pretrained_checkpoint_is_built_in_train_mode(tmp_path):
    """from_pretrained hands back an eval-mode model; fine-tuning it must still use dropout."""
    build_model(ModelShape(n_layer=1, n_head=1, n_embd=8, n_positions=16)).save_pretrained(tmp_path)
    module = IVRLanguageModel(model_name_or_path=str(tmp_path))
    module.configure_model()
    assert all(m.training for m in module.model.modules())


def test_embedding_init_installs_the_align_stage_rows_and_watches_their_ids(tmp_path):
    from ivr.model import EmbeddingInit
    from ivr.tokenizers.remap_rules import RemapRule, write_remap_rules

    shape = ModelShape(n_layer=1, n_embd=16, n_positions=16)
    rows = build_model(shape).transformer.wte.weight.detach().clone()
    rows[7] = 0.5
    torch.save(rows, tmp_path / "final_wte.pt")
    write_remap_rules(tmp_path / "rules.yaml", [RemapRule(7, "Ġx", "Ġdef", (299, 825))])
    init = EmbeddingInit(str(tmp_path / "final_wte.pt"), str(tmp_path / "final_lm_head.pt"), str(tmp_path / "rules.yaml"))
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, embedding_init=init)
    module.configure_model()
    assert torch.equal(module.model.transformer.wte.weight, rows)
    assert module.model.lm_head.weight is module.model.transformer.wte.weight
    assert module.reassigned_ids.tolist() == [7]
    # rows aligned from another model's embedding (the config's model changed since `ivr align`) are refused
    original = tmp_path / "original_wte.pt"
    init = EmbeddingInit(init.final_wte, init.final_lm_head, init.remap_rules, str(original))
    torch.save(build_model(shape).transformer.wte.weight.detach(), original)
    IVRLanguageModel(model_name_or_path=None, from_config=shape, embedding_init=init).configure_model()
    torch.save(build_model(replace(shape, init_seed=1)).transformer.wte.weight.detach(), original)
    with pytest.raises(ValueError, match=r"final_wte\.pt: aligned from another model's token rows .*ivr align"):
        IVRLanguageModel(model_name_or_path=None, from_config=shape, embedding_init=init).configure_model()
    torch.save(build_model(replace(shape, vocab_size=50304)).transformer.wte.weight.detach(), original)
    with pytest.raises(ValueError, match=r"aligned from token rows of shape \(50304, 16\).*ivr align"):
        IVRLanguageModel(model_name_or_path=None, from_config=shape, embedding_init=init).configure_model()


def test_the_drift_starts_from_the_rows_as_installed_in_the_model_s_precision(tmp_path):
    from ivr.model import EmbeddingInit
    from ivr.tokenizers.remap_rules import RemapRule, write_remap_rules

    shape = ModelShape(n_layer=1, n_embd=16, n_positions=16)
    rows = build_model(shape).transformer.wte.weight.detach().clone()
    rows[7] = 0.1  # not a bfloat16 value
    torch.save(rows, tmp_path / "final_wte.pt")
    write_remap_rules(tmp_path / "rules.yaml", [RemapRule(7, "Ġx", "Ġdef", (299, 825))])
    init = EmbeddingInit(str(tmp_path / "final_wte.pt"), str(tmp_path / "final_lm_head.pt"), str(tmp_path / "rules.yaml"))
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, embedding_init=init)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # as precision bf16-true builds the model
    try:
        module.configure_model()
    finally:
        torch.set_default_dtype(default)
    assert module.model.transformer.wte.weight.dtype == torch.bfloat16
    assert torch.equal(module._initial_rows, module.model.transformer.wte.weight[[7]])
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.eval()
    module.validation_step({"input_ids": torch.randint(100, 200, (1, 16)), "n_bytes": torch.tensor([40])}, 0)
    module.on_validation_epoch_end()
    assert logged["embeddings/reassigned_drift"] == 0.0


def test_the_drift_of_a_pretrained_model_starts_from_its_rows_in_the_precision_it_trains_in(tmp_path):
    """A pretrained model loads in float32 and bf16-true converts it only after its rows are installed: an untrained
    model has drifted by 0, scored now or from its checkpoint."""
    from ivr.model import INITIAL_ROWS, EmbeddingInit
    from ivr.tokenizers.remap_rules import RemapRule, write_remap_rules

    shape = ModelShape(n_layer=1, n_embd=16, n_positions=16)
    base = build_model(shape)
    base.save_pretrained(tmp_path / "base")
    rows = base.transformer.wte.weight.detach().clone()
    rows[7] = 0.1  # not a bfloat16 value
    torch.save(rows, tmp_path / "final_wte.pt")
    write_remap_rules(tmp_path / "rules.yaml", [RemapRule(7, "Ġx", "Ġdef", (299, 825))])
    init = EmbeddingInit(str(tmp_path / "final_wte.pt"), str(tmp_path / "final_lm_head.pt"), str(tmp_path / "rules.yaml"))
    module = IVRLanguageModel(model_name_or_path=str(tmp_path / "base"), embedding_init=init)
    module.configure_model()
    module.to(torch.bfloat16)  # as Lightning's bf16-true converts the module after configure_model
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.eval()
    batch = {"input_ids": torch.randint(100, 200, (1, 16)), "n_bytes": torch.tensor([40])}
    module.validation_step(batch, 0)
    module.on_validation_epoch_end()
    assert logged["embeddings/reassigned_drift"] == 0.0
    checkpoint = {}
    module.on_save_checkpoint(checkpoint)
    scorer = IVRLanguageModel(model_name_or_path=str(tmp_path / "base"), embedding_init=init)
    scorer.weights_from_checkpoint = True
    scorer.configure_model()
    scorer.model.load_state_dict(module.model.state_dict())  # the bf16 weights, scored in float32
    scorer.on_load_checkpoint(checkpoint)
    scorer.log = module.log
    scorer.eval()
    scorer.validation_step(batch, 0)
    scorer.on_validation_epoch_end()
    assert logged["embeddings/reassigned_drift"] == 0.0
    assert checkpoint[INITIAL_ROWS].dtype == torch.bfloat16


def test_embedding_init_without_the_align_stage_says_what_to_run(tmp_path):
    from ivr.model import EmbeddingInit

    init = EmbeddingInit(str(tmp_path / "final_wte.pt"), str(tmp_path / "final_lm_head.pt"), str(tmp_path / "rules.yaml"))
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16), embedding_init=init)
    with pytest.raises(FileNotFoundError, match="ivr align"):
        module.configure_model()


def test_predict_stops_where_the_tokenizer_says_not_at_the_shapes_last_id():
    from ivr.model import GenerationSettings

    # GPT-2 padded to 50304 rows: the shape's default eos is the padding id 50303
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16,
                                                                               vocab_size=50304))
    module.configure_model()
    seen = {}
    module.model.generate = lambda ids, **kw: seen.update(kw) or ids
    batch = {"prompt": "x", "input_ids": torch.tensor([[464]])}
    module.predict_step(batch, 0)
    assert seen["eos_token_id"] == 50303  # the model's own config, without the tokenizer's ids
    module.generation = GenerationSettings(eos_token_ids=(50256,))
    module.predict_step(batch, 0)
    assert (seen["eos_token_id"], seen["pad_token_id"]) == ([50256], 50256)


def test_a_long_prompt_keeps_its_last_tokens_and_room_for_the_new_ones(caplog):
    from ivr.model import GenerationSettings

    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    seen = {}
    module.model.generate = lambda ids, **kw: seen.update(kw, ids=ids) or ids
    module.generation = GenerationSettings(max_new_tokens=5)
    prompt = torch.arange(100, 140)[None]  # 40 tokens, a context of 16
    module.predict_step({"prompt": "x", "input_ids": prompt}, 0)
    assert seen["ids"].tolist() == [list(range(129, 140))] and seen["max_new_tokens"] == 5
    assert "exceed the context of 16: the model sees the prompt's last 11 tokens and generates 5" in caplog.text
    module.predict_step({"prompt": "x", "input_ids": prompt[:, :3]}, 0)  # fits: as it is
    assert seen["ids"].tolist() == [[100, 101, 102]] and seen["max_new_tokens"] == 5
    module.generation = GenerationSettings(max_new_tokens=40)  # more new tokens than the context holds
    module.predict_step({"prompt": "x", "input_ids": prompt[:, :3]}, 0)  # a short prompt stays whole
    assert seen["ids"].tolist() == [[100, 101, 102]] and seen["max_new_tokens"] == 13
    module.predict_step({"prompt": "x", "input_ids": prompt}, 0)  # a long one keeps half the context
    assert seen["ids"].tolist() == [list(range(132, 140))] and seen["max_new_tokens"] == 8
    for bad, says in [({"max_new_tokens": 0}, "--max_new_tokens must be at least 1"),
                      ({"temperature": -1.0}, "--temperature must be 0"), ({"top_k": -1}, "--top_k must be 0")]:
        with pytest.raises(ValueError, match=says):
            GenerationSettings(**bad)


def test_a_held_out_loss_over_no_targets_is_not_logged_as_zero():
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.reassigned_ids = torch.tensor([7])
    module._initial_rows = module.model.get_input_embeddings().weight[[7]].detach().clone()
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    ids = torch.randint(100, 200, (2, 16))  # no target is a reassigned id
    module.validation_step({"input_ids": ids, "n_bytes": torch.tensor([40, 50])}, 0)
    module.on_validation_epoch_end()
    assert "val/loss_reassigned" not in logged and logged["val/loss_other"] == pytest.approx(logged["val/loss"])
    ids[0, 5] = 7
    module.validation_step({"input_ids": ids, "n_bytes": torch.tensor([40, 50])}, 0)
    module.on_validation_epoch_end()
    assert logged["val/loss_reassigned"] > 0


def test_a_shape_builds_the_same_weights_under_any_default_device():
    """Lightning builds the model under the accelerator's device: a GPU's generator would give other weights than
    the CPU ones `ivr align` read, and the aligned rows would be refused."""
    shape = ModelShape(n_layer=1, n_embd=16, n_positions=16)
    with torch.device("meta"):
        under = build_model(shape)
    assert torch.equal(under.transformer.wte.weight, build_model(shape).transformer.wte.weight)


def test_training_figures_cover_every_micro_batch_of_an_optimizer_step():
    """Under gradient accumulation a step's loss and bits per byte sum all its micro-batches, logged once."""
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.eval()
    module.reassigned_ids = torch.tensor([7])
    logged = []
    module.log = lambda name, value, **kw: logged.append((name, float(value)))
    batches = [{"input_ids": torch.randint(100, 200, (2, 16)), "n_bytes": torch.tensor([40, 50])},
               {"input_ids": torch.randint(100, 200, (3, 16)), "n_bytes": torch.tensor([30, 30, 60])}]
    batches[1]["input_ids"][0, 3] = 7
    losses = [module.training_step(b, i) for i, b in enumerate(batches)]
    assert not logged  # nothing until the optimizer steps
    optimizer = torch.optim.SGD(module.parameters(), lr=0.25)
    module.on_before_optimizer_step(optimizer)
    got = dict(logged)
    assert got["train/lr"] == 0.25  # the rate this step trains with
    tokens = [2 * 15, 3 * 15]
    assert got["train/loss"] == pytest.approx(sum(l.item() * t for l, t in zip(losses, tokens)) / sum(tokens), rel=1e-5)
    assert got["train/bits_per_byte"] == pytest.approx(got["train/loss"] * sum(tokens) / math.log(2) / 210, rel=1e-5)
    assert got["train/reassigned_token_share"] == pytest.approx(1 / 75)
    assert got["train/bytes_per_token"] == pytest.approx(210 / sum(tokens))
    logged.clear()
    module.on_before_optimizer_step(optimizer)  # the sums start again with the next step
    assert not logged


def test_training_figures_on_several_devices_are_those_of_every_rank_s_tokens():
    """Bits per byte of a step on two devices is the step's summed NLL over its summed bytes, not the mean of the
    ranks' ratios, which weighs a rank of short-byte tokens as much as one of long ones."""
    from types import SimpleNamespace

    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.eval()
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    batch = {"input_ids": torch.randint(100, 200, (2, 16)), "n_bytes": torch.tensor([40, 50])}
    module.training_step(batch, 0)
    local = module._train_sums.clone()
    other = torch.tensor([60.0, 30.0, 240.0, 0.0, 0.0])  # the other rank's nll, tokens, bytes, reassigned ones

    def reduce(tensor, reduce_op="mean"):
        assert reduce_op == "sum"
        return tensor + other

    module._trainer = SimpleNamespace(world_size=2, strategy=SimpleNamespace(reduce=reduce))
    module.on_before_optimizer_step(torch.optim.SGD(module.parameters(), lr=0.1))
    nll, tokens, nbytes = (local[:3] + other[:3]).tolist()
    assert logged["train/loss"] == pytest.approx(nll / tokens)
    assert logged["train/bits_per_byte"] == pytest.approx(nll / math.log(2) / nbytes)
    assert logged["train/bytes_per_token"] == pytest.approx(nbytes / tokens)


def test_held_out_sums_count_exactly_past_float32s_integers():
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.to(torch.bfloat16)  # as Lightning's bf16-true converts the module before validation starts
    module.on_validation_start()
    for _ in range(3):
        module.val_bytes.update(torch.tensor(2**24 + 1))  # a batch's byte count: an integer tensor
    assert module.val_bytes.compute().item() == 3 * (2**24 + 1)  # float32 gives 3 * 2**24, bfloat16 less


def test_a_compiled_model_scores_as_the_plain_one(monkeypatch):
    # the eager backend: what is tested is the module's use of the compiled wrapper, not the compiler (seconds)
    monkeypatch.setattr(torch, "compile", lambda model, _compile=torch.compile: _compile(model, backend="eager"))
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16),
                              compile=True)
    module.configure_model()
    module.eval()
    ids = torch.randint(0, 50257, (2, 16))
    assert module._compiled is not None
    assert torch.allclose(module(ids), module.model(input_ids=ids).logits, atol=1e-6)


@pytest.mark.parametrize("command", ["fit", "predict"])
def test_a_tokenizer_with_more_ids_than_the_model_has_rows_is_refused_when_the_model_is_built(tmp_path, command):
    from types import SimpleNamespace

    from ivr.tokenizers.io import load_tokenizer
    from ivr.tokenizers.source import fetch_original_tokenizer

    tok_dir, _ = fetch_original_tokenizer(tmp_path / "original", allow_hub=False)  # GPT-2's 50257 ids
    data = SimpleNamespace(hparams=SimpleNamespace(block_size=8, tokenizer="original"),
                           vocabulary=lambda: (load_tokenizer(tok_dir).get_vocab_size(True), tok_dir))
    other = SimpleNamespace(hparams=SimpleNamespace(), tokenizer=load_tokenizer(tok_dir))  # not asked anything
    for rows, datamodule, refused in ((1000, data, True), (50257, data, False), (1000, other, False)):
        shape = ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=rows)
        module = IVRLanguageModel(model_name_or_path=None, from_config=shape)
        module._trainer = SimpleNamespace(datamodule=datamodule, state=SimpleNamespace(fn=command))
        if refused:  # not an index error in the first block, nor a predict that feeds the model ids it lacks
            with pytest.raises(ValueError, match=r"original has 50257 ids but the model has 1000 token rows: set "
                                                 r"model\.from_config\.vocab_size to at least 50257"):
                module.configure_model()
        else:
            module.configure_model()
            assert module.model is not None


def optimizer_and_schedule(module: IVRLanguageModel, max_steps: int):
    """The module's optimizer and LambdaLR for a fit of ``max_steps`` optimizer steps."""
    from types import SimpleNamespace

    module._trainer = SimpleNamespace(max_steps=max_steps, max_epochs=None, datamodule=None)
    configured = module.configure_optimizers()
    return configured["optimizer"], configured["lr_scheduler"]["scheduler"]


def test_the_learning_rate_warms_up_linearly_then_follows_a_cosine_down_to_its_floor():
    shape = ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=64)
    warmup, ratio, total = 4, 0.1, 10
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, warmup_steps=warmup, min_lr_ratio=ratio)
    module.configure_model()
    _, scheduler = optimizer_and_schedule(module, total)
    rate = scheduler.lr_lambdas[0]
    assert module.total_steps == total
    # the first step already trains (not at rate 0), the peak is reached at the end of the warm-up
    assert [rate(s) for s in range(warmup + 1)] == pytest.approx([(s + 1) / (warmup + 1) for s in range(warmup)] + [1])
    assert rate((warmup + total) // 2) == pytest.approx((1 + ratio) / 2)  # the cosine's midpoint
    assert rate(total) == pytest.approx(ratio)
    assert rate(total + 5) == pytest.approx(ratio)  # steps past the planned length stay at the floor


def test_weight_decay_applies_to_matrices_only_not_biases_norms_or_positions():
    shape = ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=64)
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, weight_decay=0.3)
    module.configure_model()
    optimizer, _ = optimizer_and_schedule(module, 10)
    decay, no_decay = optimizer.param_groups
    positions = module.model.transformer.wpe.weight
    matrices = [p for p in module.model.parameters() if p.ndim >= 2 and p is not positions]
    assert decay["weight_decay"] == 0.3 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(p) for p in matrices}
    assert any(p is positions for p in no_decay["params"])
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(module.model.parameters()))


def embedding_init_of(tmp_path, shape: ModelShape, reassigned: int = 7):
    """The align stage's files for ``shape``: its own token rows, ``reassigned`` named by one remap rule."""
    from ivr.model import EmbeddingInit
    from ivr.tokenizers.remap_rules import RemapRule, write_remap_rules

    torch.save(build_model(shape).get_input_embeddings().weight.detach().clone(), tmp_path / "final_wte.pt")
    write_remap_rules(tmp_path / "rules.yaml", [RemapRule(reassigned, "Ġx", "Ġdef", (299, 825))])
    return EmbeddingInit(str(tmp_path / "final_wte.pt"), str(tmp_path / "final_lm_head.pt"), str(tmp_path / "rules.yaml"))


def test_training_only_reassigned_rows_puts_no_weight_decay_on_the_frozen_rows(tmp_path):
    """AdamW's decay shrinks every row of a matrix, gradient or not: the rows meant to stay bit for bit would
    move."""
    shape = ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=64)
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, weight_decay=0.3,
                              embedding_init=embedding_init_of(tmp_path, shape), train_only="reassigned_rows")
    module.configure_model()
    optimizer, _ = optimizer_and_schedule(module, 10)
    trained = [p for group in optimizer.param_groups if group["weight_decay"] > 0 for p in group["params"]]
    assert not trained
    assert any(p is module.model.get_input_embeddings().weight for p in optimizer.param_groups[1]["params"])


def test_a_resumed_fit_trains_with_the_configured_optimizer_settings_at_the_saved_position():
    """The checkpoint's step and moments are kept, but a changed learning rate, betas or weight decay in the
    config take effect."""
    from types import SimpleNamespace

    shape = ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=64)
    saved = IVRLanguageModel(model_name_or_path=None, from_config=shape, learning_rate=0.5, betas=(0.5, 0.6),
                             weight_decay=0.2, warmup_steps=2)
    saved.configure_model()
    old_optimizer, old_scheduler = optimizer_and_schedule(saved, 10)
    for _ in range(5):
        old_optimizer.step()
        old_scheduler.step()
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, learning_rate=1e-3, betas=(0.8, 0.9),
                              weight_decay=0.05, warmup_steps=2)
    module.configure_model()
    module.model.load_state_dict(saved.model.state_dict())
    optimizer, scheduler = optimizer_and_schedule(module, 10)
    optimizer.load_state_dict(old_optimizer.state_dict())  # as Lightning restores a checkpoint
    scheduler.load_state_dict(old_scheduler.state_dict())
    module._trainer.lr_scheduler_configs = [SimpleNamespace(scheduler=scheduler)]
    module.on_train_start()
    decay, no_decay = optimizer.param_groups
    assert scheduler.last_epoch == 5
    for group in (decay, no_decay):
        assert group["lr"] == pytest.approx(1e-3 * scheduler.lr_lambdas[0](5))
        assert group["betas"] == (0.8, 0.9)
    assert (decay["weight_decay"], no_decay["weight_decay"]) == (0.05, 0.0)


def test_no_reassigned_training_loss_is_logged_for_a_step_without_reassigned_targets():
    """A loss over no targets would log as NaN and spoil the run's curve of the reassigned tokens."""
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.reassigned_ids = torch.tensor([7])
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.training_step({"input_ids": torch.randint(100, 200, (2, 16)), "n_bytes": torch.tensor([40, 50])}, 0)
    module.on_before_optimizer_step(torch.optim.SGD(module.parameters(), lr=0.1))
    assert "train/loss" in logged
    assert "train/loss_reassigned" not in logged and "train/reassigned_token_share" not in logged


def test_held_out_figures_split_reassigned_and_other_targets_and_start_again_each_epoch():
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.eval()
    module.reassigned_ids = torch.tensor([7])
    module._initial_rows = module.model.get_input_embeddings().weight[[7]].detach().clone()
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    ids = torch.randint(100, 200, (2, 16))
    ids[0, 3] = ids[1, 9] = 7
    batch = {"input_ids": ids, "n_bytes": torch.tensor([40, 50])}
    module.validation_step(batch, 0)
    module.on_validation_epoch_end()
    nll, targets = token_nll(module(ids), ids)
    reassigned = targets == 7
    assert logged["val/loss_reassigned"] == pytest.approx(nll[reassigned].mean().item(), rel=1e-5)
    assert logged["val/loss_other"] == pytest.approx(nll[~reassigned].mean().item(), rel=1e-5)
    assert logged["val/bytes_per_token"] == pytest.approx(90 / targets.numel())
    first = dict(logged)
    module.validation_step(batch, 0)  # the next validation scores the same split afresh, not on top of the last
    module.on_validation_epoch_end()
    assert logged == pytest.approx(first)
    logged.clear()
    module.validation_step({"input_ids": torch.full((2, 16), 7), "n_bytes": torch.tensor([40, 50])}, 0)
    module.on_validation_epoch_end()
    assert "val/loss_reassigned" in logged and "val/loss_other" not in logged  # no other targets: not 0/0


def test_the_drift_of_reassigned_rows_is_averaged_over_rows_absolute_and_relative():
    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.reassigned_ids = torch.tensor([7, 9])
    weight = module.model.get_input_embeddings().weight
    module._initial_rows = weight[[7, 9]].detach().clone()
    step = torch.full((16,), 0.25)
    with torch.no_grad():
        weight[7] += step  # row 7 moves, row 9 stays
    logged = {}
    module.log = lambda name, value, **kw: logged.__setitem__(name, float(value))
    module.validation_step({"input_ids": torch.randint(100, 200, (1, 16)), "n_bytes": torch.tensor([40])}, 0)
    module.on_validation_epoch_end()
    moved = step.norm().item()
    assert logged["embeddings/reassigned_drift"] == pytest.approx(moved / 2, rel=1e-5)
    relative = moved / module._initial_rows[0].norm().item() / 2
    assert logged["embeddings/reassigned_relative_drift"] == pytest.approx(relative, rel=1e-5)
    # a remap that reassigned no id: no drift logged, not NaN
    module.reassigned_ids, module._initial_rows = torch.tensor([], dtype=torch.long), weight[[]].detach().clone()
    logged.clear()
    module.validation_step({"input_ids": torch.randint(100, 200, (1, 16)), "n_bytes": torch.tensor([40])}, 0)
    module.on_validation_epoch_end()
    assert "val/loss" in logged and not any(name.startswith("embeddings/") for name in logged)


def test_predict_accepts_a_model_whose_context_is_shorter_than_the_training_blocks():
    """Prediction reads prompts, not the training blocks: a long data.block_size must not stop it, while fitting
    with it is refused."""
    from types import SimpleNamespace

    shape = ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=64)
    data = SimpleNamespace(hparams=SimpleNamespace(block_size=64))
    for command in ("predict", "fit"):
        module = IVRLanguageModel(model_name_or_path=None, from_config=shape)
        module._trainer = SimpleNamespace(datamodule=data, state=SimpleNamespace(fn=command))
        if command == "fit":
            with pytest.raises(ValueError, match="data.block_size 64 is longer than the model's context of 16"):
                module.configure_model()
        else:
            module.configure_model()


def test_predict_samples_with_the_settings_given_and_returns_only_the_new_tokens():
    from ivr.model import GenerationSettings

    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    seen, new = {}, torch.tensor([[11, 12, 13]])
    module.model.generate = lambda ids, **kw: seen.update(kw) or torch.cat([ids, new], dim=1)
    batch = {"prompt": "x", "input_ids": torch.tensor([[464, 465]])}
    module.generation = GenerationSettings(temperature=0.7, top_k=5, eos_token_ids=(3, 4), pad_token_id=9)
    assert module.predict_step(batch, 0) == {"prompt": "x", "ids": new[0].tolist()}
    assert (seen["do_sample"], seen["temperature"], seen["top_k"]) == (True, 0.7, 5)
    assert (seen["eos_token_id"], seen["pad_token_id"]) == ([3, 4], 9)
    module.generation = GenerationSettings(temperature=0.0)  # greedy: no sampling settings reach generate
    module.predict_step(batch, 0)
    assert (seen["do_sample"], seen["temperature"], seen["top_k"]) == (False, None, None)


@pytest.mark.parametrize("monitor, reassigned, target, message", [
    ("val/loss_reassigned", [7], 150, "no held-out target is one of the 1 ids the remap reassigned"),
    ("val/loss_other", [7], 7, "every held-out target is a reassigned id"),
    ("embeddings/reassigned_drift", [], 7, "the fit's tokenizer has no reassigned ids"),
    ("val/loss_reassigned", [7], 7, None),  # logged: nothing to say
    ("val/loss", [7], 150, None),
])
def test_a_monitored_figure_of_the_reassigned_ids_that_has_no_value_is_named_with_why(monitor, reassigned, target,
                                                                                     message):
    from types import SimpleNamespace

    module = IVRLanguageModel(model_name_or_path=None, from_config=ModelShape(n_layer=1, n_embd=16, n_positions=16))
    module.configure_model()
    module.reassigned_ids = torch.tensor(reassigned, dtype=torch.long)
    module._initial_rows = module.model.get_input_embeddings().weight[reassigned].detach().clone()
    module.log = lambda *args, **kw: None
    module._trainer = SimpleNamespace(checkpoint_callback=SimpleNamespace(monitor=monitor), sanity_checking=False,
                                      state=SimpleNamespace(fn="fit"))
    ids = torch.full((2, 16), target)
    module.validation_step({"input_ids": ids, "n_bytes": torch.tensor([40, 50])}, 0)
    if message is None:
        module.on_validation_epoch_end()
        return
    with pytest.raises(ValueError, match=f"checkpoint.monitor '{monitor}' has no value.*{message}"):
        module.on_validation_epoch_end()
    module._trainer.sanity_checking = True  # two batches, no checkpoint: nothing to say yet
    module.validation_step({"input_ids": ids, "n_bytes": torch.tensor([40, 50])}, 0)
    module.on_validation_epoch_end()
    module._trainer.sanity_checking, module._trainer.state.fn = False, "validate"  # ivr validate saves none
    module.validation_step({"input_ids": ids, "n_bytes": torch.tensor([40, 50])}, 0)
    module.on_validation_epoch_end()


@pytest.mark.parametrize("resumed_steps", [10, 20])
def test_a_fit_resumed_with_another_schedule_length_says_how_the_rate_moves(caplog, resumed_steps):
    from types import SimpleNamespace

    shape = ModelShape(n_layer=1, n_head=2, n_embd=8, n_positions=16, vocab_size=64)
    saved = IVRLanguageModel(model_name_or_path=None, from_config=shape, learning_rate=1e-3, warmup_steps=2)
    saved.configure_model()
    old_optimizer, old_scheduler = optimizer_and_schedule(saved, 10)
    for _ in range(5):
        old_optimizer.step()
        old_scheduler.step()
    checkpoint = {}
    saved.on_save_checkpoint(checkpoint)
    module = IVRLanguageModel(model_name_or_path=None, from_config=shape, learning_rate=1e-3, warmup_steps=2)
    module.configure_model()
    module.on_load_checkpoint(checkpoint)
    optimizer, scheduler = optimizer_and_schedule(module, resumed_steps)
    scheduler.load_state_dict(old_scheduler.state_dict())
    module._trainer.lr_scheduler_configs = [SimpleNamespace(scheduler=scheduler)]
    with caplog.at_level(logging.WARNING, logger="ivr.model"):
        module.on_train_start()
    if resumed_steps == 10:
        assert "schedule" not in caplog.text
        return
    before, after = 1e-3 * old_scheduler.lr_lambdas[0](5), 1e-3 * scheduler.lr_lambdas[0](5)
    assert after > before  # earlier in a longer cosine: a higher rate
    assert ("schedule is 20 optimizer steps long, the checkpoint's fit's 10" in caplog.text
            and f"at step 5 the rate moves from {before:.3g} to {after:.3g}" in caplog.text)


def test_a_file_given_as_the_model_is_named_not_looked_up_on_the_hub(tmp_path):
    """A weight or config file rather than the directory holding it: transformers would read a config.json as a
    pickle; the setting is named, with what to give instead."""
    from ivr.causal_lm import load_pretrained

    build_model(ModelShape(n_layer=1, n_head=1, n_embd=8, n_positions=16)).save_pretrained(tmp_path / "m")
    for name in ("config.json", "model.safetensors"):
        for check in (load_pretrained, check_pretrained_reachable):
            with pytest.raises(ValueError, match=rf"model\.model_name_or_path: .*{name} is a file, not a checkpoint "
                                                 r"directory: give the directory that holds it"):
                check(str(tmp_path / "m" / name))


def test_a_path_that_is_no_directory_and_no_hub_name_is_named_as_missing(tmp_path):
    """Not said to be out of the Hub's reach: no Hub name looks like it."""
    for check in (lambda name: base_model(name, None), check_pretrained_reachable):
        for name in (str(tmp_path / "nowhere" / "model"), "~/nowhere-xyz"):
            with pytest.raises(PretrainedUnavailableError, match=rf"'{re.escape(name)}': no such directory, and no "
                                                                 r"Hub name.*local checkpoint directory"):
                check(name)


@pytest.mark.parametrize("damage", ["cut weights", "garbled config"])
def test_a_damaged_model_in_the_hugging_face_cache_is_named_with_its_folder(tmp_path, monkeypatch, damage):
    """Neither the weights reader's words alone nor "not in the Hugging Face cache"."""
    import shutil

    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "cache" / "models--someone--model"
    snapshot = repo / "snapshots" / "abc"
    build_model(ModelShape(n_layer=1, n_head=1, n_embd=8, n_positions=16)).save_pretrained(tmp_path / "m")
    shutil.copytree(tmp_path / "m", snapshot)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc")
    assert base_model("someone/model", None).config.n_embd == 8
    if damage == "cut weights":
        weights = snapshot / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:5000])
    else:
        (snapshot / "config.json").write_text("{oops")
    with pytest.raises(ValueError, match=rf"'someone/model': cannot load the model in the Hugging Face cache at "
                                         rf"{re.escape(str(snapshot))} \(.*\): if its files are damaged, delete "
                                         rf"{re.escape(str(repo))} "):
        base_model("someone/model", None)


def test_a_name_the_hub_does_not_know_is_not_said_to_be_out_of_its_reach(monkeypatch):
    """With a network, a misspelt Hub name reached the Hub, which answered that it has no such model."""
    from types import SimpleNamespace

    import huggingface_hub
    from huggingface_hub.errors import RepositoryNotFoundError
    from transformers import AutoModelForCausalLM

    def not_found(*args, **kwargs):
        raise RepositoryNotFoundError("404 Client Error", response=SimpleNamespace(headers={}, request=None))

    def not_found_as_transformers_says(*args, local_files_only=False, **kwargs):
        if local_files_only:
            raise OSError("not in the cache")
        try:
            not_found()
        except RepositoryNotFoundError as err:
            raise OSError("someone/modl is not a local folder and is not a valid model identifier") from err

    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", not_found)
    monkeypatch.setattr(AutoModelForCausalLM, "from_pretrained", not_found_as_transformers_says)
    for check in (lambda name: base_model(name, None), check_pretrained_reachable):
        with pytest.raises(PretrainedUnavailableError, match=r"'someone/modl': not a local checkpoint, not in the "
                                                             r"Hugging Face cache, and unknown to the Hub \(.*login"):
            check("someone/modl")
