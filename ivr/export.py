"""Export a fine-tuned causal LM with its tokenizer as a self-contained Hugging Face directory.

The tokenizer decides the special ids: ``config.json``, ``generation_config.json``, ``tokenizer.json`` and
``tokenizer_config.json`` must name the same bos/eos/pad ids, and the embedding matrix must have a row for
every id, or a loader would silently pad with, stop at or start from the wrong token. The written directory
is read back with transformers and checked before it replaces ``out_dir``; any disagreement stops the export.
"""

from __future__ import annotations

import copy
import json
import shutil
import stat
from pathlib import Path

from tokenizers import Tokenizer
from transformers import PreTrainedModel

from ivr.atomic import atomic_dir, read_json_object
from ivr.causal_lm import context_size
from ivr.stamps import file_sha256
from ivr.tokenizers.io import read_special_tokens, read_tokenizer_file

EXPORT_METADATA_FILE = "ivr_export.json"
SPECIAL_NAMES = ("bos", "eos", "pad")


def tokenizer_special_ids(tokenizer_dir: Path, tok: Tokenizer | None = None) -> dict[str, int | None]:
    """``{"bos": id, "eos": id, "pad": id}`` of the tokenizer directory (``read_special_tokens``; ``tok``: its
    ``tokenizer.json`` as already read with its padding)."""
    special = read_special_tokens(tokenizer_dir, tok)
    return {name: getattr(special, f"{name}_id") for name in SPECIAL_NAMES}


def export_disagreements(out_dir: Path, rows: int) -> list[str]:
    """Every way the exported files disagree on special ids or vocabulary size: ``config.json``,
    ``generation_config.json``, the tokenizer as ``AutoTokenizer`` reads it, and the ids ``tokenizer.json`` and
    ``tokenizer_config.json`` give the special tokens (``read_special_tokens``).

    ``rows``: the token embedding's rows (the output layer's too). Generation may pad with eos when the
    tokenizer has no padding token (GPT-2 has none); everything else must match exactly."""
    from transformers import AutoTokenizer

    config = json.loads((out_dir / "config.json").read_text(encoding="utf-8"))
    generation = json.loads((out_dir / "generation_config.json").read_text(encoding="utf-8"))
    tokenizer = AutoTokenizer.from_pretrained(str(out_dir))
    written = read_tokenizer_file(out_dir, keep_padding=True)
    n_ids = written.get_vocab_size(with_added_tokens=True)
    special = tokenizer_special_ids(out_dir, written)
    problems = []
    if config.get("vocab_size") != rows:
        problems.append(f"config.json vocab_size {config.get('vocab_size')} but the embedding matrix has {rows} rows")
    if len(tokenizer) != n_ids:
        problems.append(f"tokenizer_config.json adds tokens: AutoTokenizer has {len(tokenizer)} ids, tokenizer.json {n_ids}")
    if n_ids > rows:
        problems.append(f"tokenizer.json has {n_ids} ids but the embedding matrix has only {rows} rows")
    for name in SPECIAL_NAMES:
        key, want = f"{name}_token_id", special[name]
        if getattr(tokenizer, key) != want:
            problems.append(f"AutoTokenizer reads {name} id {getattr(tokenizer, key)} but tokenizer.json and its config give {want}")
        if want is not None and not 0 <= want < n_ids:
            problems.append(f"tokenizer {name} id {want} is outside tokenizer.json's {n_ids} ids")
        if config.get(key) != want:
            problems.append(f"config.json {key} {config.get(key)} but the tokenizer's {name} token has id {want}")
        allowed = {want} if want is not None or name != "pad" else {want, tokenizer.eos_token_id}
        value = generation.get(key)
        # several stop ids (an instruct model's end of turn too) must hold the tokenizer's eos
        if not (value in allowed if not isinstance(value, list) else name == "eos" and want in value):
            problems.append(f"generation_config.json {key} {generation.get(key)} but the tokenizer's {name} token has id {want}")
    return problems


def _limit_tokenizer_length(tokenizer_config: Path, context: int | None) -> None:
    """The exported tokenizer's ``model_max_length`` is at most the model's context size, so that truncating to
    it fits the model (a from-scratch model may have a shorter context than its tokenizer's source)."""
    if context is None or not tokenizer_config.is_file():
        return
    settings = json.loads(tokenizer_config.read_text(encoding="utf-8"))
    length = settings.get("model_max_length")
    if isinstance(length, int) and length <= context:
        return
    settings["model_max_length"] = context
    tokenizer_config.write_text(json.dumps(settings, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _rope_as_transformers_4_reads_it(config_json: Path) -> None:
    """transformers 5 writes a model's rope settings as ``rope_parameters``, which transformers 4 does not read: it
    would run a Llama at its default ``rope_theta`` of 10000 (SmolLM2's is 100000), with other outputs and no
    warning. The same settings go under 4's keys too (``rope_theta``, ``rope_scaling``); 5 reads
    ``rope_parameters``. Settings per layer type (one dict each) have no one theta and are left as they are."""
    settings = json.loads(config_json.read_text(encoding="utf-8"))
    rope = settings.get("rope_parameters")
    if not isinstance(rope, dict) or not isinstance(rope.get("rope_theta"), (int, float)):
        return
    settings.setdefault("rope_theta", rope["rope_theta"])
    if rope.get("rope_type", "default") != "default":
        settings.setdefault("rope_scaling", {key: value for key, value in rope.items() if key != "rope_theta"})
    config_json.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def export_hf(model: PreTrainedModel, tokenizer_dir: Path, out_dir: Path, metadata: dict) -> Path:
    """Write ``config.json``, ``generation_config.json``, ``model.safetensors``, the tokenizer files and
    ``ivr_export.json`` (``metadata`` plus file hashes) into ``out_dir`` in one rename.

    The config's ``vocab_size`` is the embedding's row count (at least the tokenizer's ids; extra rows are
    padding), and its ``bos``/``eos``/``pad`` ids are the tokenizer's. ``model`` is not modified. Raises
    ``ValueError`` naming every disagreement between the written files; ``out_dir`` is then left as it was.
    """
    tokenizer_dir, out_dir = Path(tokenizer_dir), Path(out_dir)
    source = read_tokenizer_file(tokenizer_dir, keep_padding=True)
    vocab_size = source.get_vocab_size(with_added_tokens=True)
    rows = model.get_input_embeddings().weight.shape[0]
    head_rows = model.get_output_embeddings().weight.shape[0]
    if vocab_size > rows or head_rows != rows:
        raise ValueError(
            f"tokenizer at {tokenizer_dir} has {vocab_size} ids but the model has {rows} token rows "
            f"and {head_rows} output rows"
        )
    special = tokenizer_special_ids(tokenizer_dir, source)
    if special["eos"] is None:
        raise ValueError(f"tokenizer at {tokenizer_dir} names no eos token: generation would never stop")

    config = copy.deepcopy(model.config)
    # a model built from a config (a GGUF checkpoint's) has no architectures entry; loaders read it
    config.architectures = [type(model).__name__]
    config.vocab_size = rows
    # the weights' own dtype (a bf16-true fit's are bfloat16), not the float32 the model was loaded in
    config.dtype = model.dtype
    for name, token_id in special.items():
        setattr(config, f"{name}_token_id", token_id)
    # without a padding token (GPT-2 has none) generation pads with eos instead of warning on every call
    pad = special["pad"] if special["pad"] is not None else special["eos"]
    # the model's own generation settings (sampling defaults, stop ids) with the tokenizer's ids; a list of stop
    # ids stays where it holds the tokenizer's eos
    generation = copy.deepcopy(model.generation_config)
    stops = generation.eos_token_id
    generation.eos_token_id = stops if isinstance(stops, list) and special["eos"] in stops else special["eos"]
    generation.bos_token_id, generation.pad_token_id = special["bos"], pad

    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        # written after the weights so they replace the model's own copies
        config.save_pretrained(tmp)
        _rope_as_transformers_4_reads_it(tmp / "config.json")
        # as written, not through save_pretrained: transformers refuses to save an edited config that holds
        # sampling settings without do_sample, which published models' files do (it only warns on loading them)
        generation.to_json_file(tmp / "generation_config.json", use_diff=True, keys_to_pop=["compile_config"])
        copied = []
        for src in sorted(tokenizer_dir.iterdir()):
            if src.is_file():
                shutil.copy2(src, tmp / src.name)
                copied.append(src.name)
        _limit_tokenizer_length(tmp / "tokenizer_config.json", context_size(config))
        problems = export_disagreements(tmp, rows)
        if problems:
            raise ValueError(f"export to {out_dir} refused, the files disagree: " + "; ".join(problems))
        files = sorted(p.name for p in tmp.iterdir() if p.is_file())
        record = {
            **metadata,
            "tokenizer_dir": str(tokenizer_dir),
            "tokenizer_files": copied,
            "vocab_size": vocab_size,
            "embedding_rows": rows,
            **{f"{name}_token_id": token_id for name, token_id in special.items()},
            "sha256": {name: file_sha256(tmp / name) for name in files},
        }
        (tmp / EXPORT_METADATA_FILE).write_text(
            json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        # safetensors writes owner-only files whatever the umask, and copies keep their source's mode: every file
        # takes the mode of the config written here, so other users and serving containers can read the export
        mode = stat.S_IMODE((tmp / "config.json").stat().st_mode)
        for path in tmp.iterdir():
            if path.is_file():
                path.chmod(mode)
    return out_dir


def export_step(export_dir: Path) -> int | None:
    """The training step of the export in ``export_dir`` (its ``ivr_export.json``); None if there is none or the
    record cannot be read, since the export is about to be replaced either way."""
    try:
        step = read_json_object(Path(export_dir) / EXPORT_METADATA_FILE).get("step")
    except (OSError, ValueError):
        return None
    return step if isinstance(step, int) else None
