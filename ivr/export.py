"""Export a fine-tuned GPT-2 with its remapped tokenizer as a self-contained Hugging Face directory."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import torch
from transformers import GenerationConfig, GPT2LMHeadModel

from ivr.atomic import atomic_dir
from ivr.tokenizers.byte_level import EOS_TOKEN
from ivr.tokenizers.io import file_sha256, load_tokenizer

EXPORT_METADATA_FILE = "ivr_export.json"
LIGHTNING_PREFIX = "model."


def export_hf(model: GPT2LMHeadModel, tokenizer_dir: Path, out_dir: Path, metadata: dict) -> Path:
    """Write ``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer files and
    ``ivr_export.json`` (``metadata`` plus file hashes) into ``out_dir`` in one rename.

    The config's ``vocab_size``, ``bos_token_id`` and ``eos_token_id`` are taken from the tokenizer,
    which must have exactly as many ids as the model has token rows. ``model`` is not modified.
    """
    tokenizer_dir, out_dir = Path(tokenizer_dir), Path(out_dir)
    tokenizer = load_tokenizer(tokenizer_dir)
    vocab_size = tokenizer.get_vocab_size(with_added_tokens=True)
    rows = model.get_input_embeddings().weight.shape[0]
    if vocab_size != rows:
        raise ValueError(f"tokenizer at {tokenizer_dir} has {vocab_size} ids but the model has {rows} token rows")
    eos_id = tokenizer.token_to_id(EOS_TOKEN)
    if eos_id is None:
        raise ValueError(f"tokenizer at {tokenizer_dir} has no {EOS_TOKEN}")

    config = copy.deepcopy(model.config)
    config.vocab_size, config.bos_token_id, config.eos_token_id = vocab_size, eos_id, eos_id
    # GPT-2 has no padding token; generation pads with EOS instead of warning on every call
    generation = GenerationConfig(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id)

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        # written after the weights so they replace the model's own copies
        config.save_pretrained(tmp)
        generation.save_pretrained(tmp)
        copied = []
        for src in sorted(tokenizer_dir.iterdir()):
            if src.is_file():
                shutil.copy2(src, tmp / src.name)
                copied.append(src.name)
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        record = {
            **metadata,
            "tokenizer_dir": str(tokenizer_dir),
            "tokenizer_files": copied,
            "vocab_size": vocab_size,
            "eos_token_id": eos_id,
            "sha256": {name: file_sha256(tmp / name) for name in files},
        }
        (tmp / EXPORT_METADATA_FILE).write_text(
            json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
    return out_dir


def load_lightning_checkpoint(
    model: GPT2LMHeadModel, checkpoint_path: Path, prefix: str = LIGHTNING_PREFIX
) -> GPT2LMHeadModel:
    """Load the weights a Lightning checkpoint holds under ``prefix`` into ``model`` (in place) and return it.

    The LightningModule keeps the Hugging Face model as its ``model`` attribute, hence the default
    prefix. A tied model may lack ``lm_head.weight`` in the checkpoint. Only load checkpoints you trust:
    they pickle the module's hyperparameters, which ``weights_only`` loading rejects.
    """
    checkpoint_path = Path(checkpoint_path)
    checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{checkpoint_path} is not a Lightning checkpoint: no 'state_dict'")
    state = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{checkpoint_path}: no weights under prefix {prefix!r}")

    missing, unexpected = model.load_state_dict(state, strict=False)
    tied = model.get_output_embeddings().weight is model.get_input_embeddings().weight
    missing = [k for k in missing if not (tied and k == "lm_head.weight")]
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint_path}: state dict does not fit the model; missing {missing}, unexpected {unexpected}"
        )
    return model
