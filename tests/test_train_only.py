"""``model.train_only``: frozen weights and rows stay bit for bit through AdamW steps, tied or untied."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer
from torch.utils.data import DataLoader

from ivr.causal_lm import ModelShape, build_model
from ivr.model import EmbeddingInit, IVRLanguageModel
from ivr.tokenizers.remap_rules import RemapRule, write_remap_rules

REASSIGNED = [5, 9]
VOCAB = 64
SHAPES = {
    "gpt2_untied": ModelShape(n_layer=1, n_embd=16, n_positions=16, vocab_size=VOCAB, tie_word_embeddings=False),
    "llama_tied": ModelShape("llama", n_layer=1, n_head=2, n_kv_head=1, n_embd=16, n_positions=16, vocab_size=VOCAB),
}


def module_for(tmp_path, shape: ModelShape, train_only: str) -> IVRLanguageModel:
    base = build_model(shape)
    torch.save(base.get_input_embeddings().weight.detach().clone(), tmp_path / "final_wte.pt")
    if not shape.tie_word_embeddings:
        torch.save(base.get_output_embeddings().weight.detach().clone(), tmp_path / "final_lm_head.pt")
    write_remap_rules(tmp_path / "rules.yaml", [RemapRule(i, f"Ġx{i}", f"Ġdef{i}", (1, 2)) for i in REASSIGNED])
    init = EmbeddingInit(str(tmp_path / "final_wte.pt"), str(tmp_path / "final_lm_head.pt"), str(tmp_path / "rules.yaml"))
    return IVRLanguageModel(
        model_name_or_path=None, from_config=shape, embedding_init=init, train_only=train_only,
        learning_rate=1e-2, weight_decay=0.5, warmup_steps=0,
    )


def train(module: IVRLanguageModel, steps: int = 3) -> dict[str, torch.Tensor]:
    """The weights before ``steps`` AdamW steps (each batch holds every reassigned id as a target)."""
    module.configure_model()
    before = {k: v.detach().clone() for k, v in module.model.state_dict().items()}
    ids = torch.randint(0, VOCAB, (8, 12), generator=torch.Generator().manual_seed(0))
    ids[:, 3], ids[:, 7] = REASSIGNED
    batches = [{"input_ids": ids[i : i + 2], "n_bytes": torch.full((2,), 30)} for i in range(0, 8, 2)]
    trainer = Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False,
    )
    trainer.fit(module, train_dataloaders=DataLoader(batches, batch_size=None))
    return before


def embedding_names(module: IVRLanguageModel) -> set[str]:
    matrices = {id(module.model.get_input_embeddings().weight), id(module.model.get_output_embeddings().weight)}
    return {name for name, p in module.model.named_parameters(remove_duplicate=False) if id(p) in matrices}


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_reassigned_rows_train_and_every_other_weight_stays(tmp_path, shape):
    module = module_for(tmp_path, shape, "reassigned_rows")
    before = train(module)
    after = module.model.state_dict()
    embeddings = embedding_names(module)
    assert embeddings, "the embedding parameters were not found"
    frozen = torch.ones(VOCAB, dtype=torch.bool)
    frozen[REASSIGNED] = False
    for name, old in before.items():
        if name in embeddings:
            assert torch.equal(after[name][frozen], old[frozen]), name
            assert not torch.equal(after[name][REASSIGNED], old[REASSIGNED]), name
        else:
            assert torch.equal(after[name], old), name


@pytest.mark.parametrize("shape", SHAPES.values(), ids=SHAPES.keys())
def test_embeddings_only_trains_the_embedding_matrices(tmp_path, shape):
    module = module_for(tmp_path, shape, "embeddings")
    before = train(module)
    after = module.model.state_dict()
    embeddings = embedding_names(module)
    for name, old in before.items():
        assert torch.equal(after[name], old) != (name in embeddings), name


def test_all_trains_everything(tmp_path):
    module = module_for(tmp_path, SHAPES["llama_tied"], "all")
    before = train(module)
    assert all(not torch.equal(module.model.state_dict()[name], old) for name, old in before.items())


def test_reassigned_rows_need_the_align_stage(tmp_path):
    module = IVRLanguageModel(model_name_or_path=None, from_config=SHAPES["llama_tied"], train_only="reassigned_rows")
    with pytest.raises(ValueError, match="data.tokenizer remapped"):
        module.configure_model()
    from ivr.trainable import restrict_training

    model = build_model(SHAPES["llama_tied"])
    with pytest.raises(ValueError, match="the remap reassigned no ids, so nothing would train; raise "
                                         "data.select.num_replacements"):
        restrict_training(model, "reassigned_rows", torch.tensor([], dtype=torch.long))


def test_unknown_train_only_is_named():
    module = IVRLanguageModel(model_name_or_path=None, from_config=SHAPES["llama_tied"], train_only="heads")
    with pytest.raises(ValueError, match="model.train_only: 'heads' is not one of all, embeddings, reassigned_rows"):
        module.configure_model()


def test_embeddings_only_masks_no_rows_and_needs_no_reassigned_ids():
    """``embeddings`` trains whole matrices: it neither asks for the align stage's ids nor masks rows (whose
    matrices would then take no weight decay)."""
    from ivr.trainable import restrict_training

    model = build_model(SHAPES["gpt2_untied"])
    assert restrict_training(model, "embeddings", None) == []
    assert restrict_training(model, "embeddings", torch.tensor(REASSIGNED)) == []
    wte, head = model.get_input_embeddings().weight, model.get_output_embeddings().weight
    assert wte.requires_grad and head.requires_grad
    assert not any(p.requires_grad for p in model.parameters() if p is not wte and p is not head)
    (model.get_input_embeddings()(torch.tensor([[1, 5]])).sum()).backward()
    assert wte.grad[1].abs().sum() > 0  # a row outside the reassigned ones keeps its gradient


def test_a_model_without_an_output_layer_has_its_token_embedding_alone():
    """A model whose output layer is None (a base model without a head) has one embedding matrix, not an error."""
    from transformers import GPT2Config, GPT2Model

    from ivr.trainable import embedding_matrices

    model = GPT2Model(GPT2Config(n_embd=16, n_layer=1, n_head=2, n_positions=16, vocab_size=VOCAB))
    assert model.get_output_embeddings() is None
    assert embedding_matrices(model) == [model.get_input_embeddings().weight]


@pytest.mark.parametrize("then, now", [("embeddings", "all"), ("all", "embeddings"), ("reassigned_rows", "embeddings")])
def test_a_fit_resumed_with_another_train_only_names_the_setting(tmp_path, then, now):
    """The optimizer state holds the weights the checkpoint's fit trained: resuming with other trainable weights
    failed in torch's words ("a parameter group that doesn't match the size"), naming no setting."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    ids = torch.randint(0, VOCAB, (8, 12), generator=torch.Generator().manual_seed(0))
    loader = DataLoader([{"input_ids": ids[i : i + 2], "n_bytes": torch.full((2,), 30)} for i in range(0, 8, 2)],
                        batch_size=None)

    def fit(module: IVRLanguageModel, steps: int, ckpt_path=None) -> None:
        Trainer(max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False,
                enable_model_summary=False, limit_val_batches=0,
                callbacks=[ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)],
                ).fit(module, train_dataloaders=loader, ckpt_path=ckpt_path)

    fit(module_for(tmp_path, SHAPES["gpt2_untied"], then), 2)
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.raises(ValueError, match=rf"{last.name} was trained with model.train_only {then}, not {now}: .*"
                                         rf"resume with model.train_only {then}"):
        fit(module_for(tmp_path, SHAPES["gpt2_untied"], now), 4, last)
    fit(module_for(tmp_path, SHAPES["gpt2_untied"], then), 4, last)  # the same setting resumes
