"""Lightning checkpoints: whether a file is one that can be read whole, what it holds, and loading its weights
into a Hugging Face model. Checked before Lightning or torch read a file, so a truncated, damaged or foreign file
is named rather than failing deep inside them."""

from __future__ import annotations

import pickle
import zipfile
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import PreTrainedModel

LIGHTNING_PREFIX = "model."
"""Where the LightningModule keeps the Hugging Face model (its ``model`` attribute) in a checkpoint's weights."""

_VERIFIED: set[tuple] = set()  # (path, size, mtime) of files whose members matched their CRCs in this process


def _members_match_their_crcs(archive: zipfile.ZipFile) -> bool:
    """Every member's bytes against its stored CRC; torch.load checks none, so bytes damaged on disk would load as
    other weights without a word. A member stored without a CRC (torch's ``set_crc32_options(False)``) is skipped."""
    for info in archive.infolist():
        if info.CRC == 0 and info.file_size:
            continue
        with archive.open(info) as member:  # reading to the end checks the CRC, and raises on a mismatch
            while member.read(1 << 24):
                pass
    return True


def readable_checkpoint(path: str | Path) -> Path:
    """``path`` if it holds a whole checkpoint; else a clear error before Lightning or torch fail on it.
    Lightning saves local checkpoints through a temporary file, but a copy cut short or a full disk can still
    leave a truncated one; ``torch.save`` writes a zip archive, whose directory sits at its end. One pass over the
    file, once per process and version of the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key in _VERIFIED:
        return path
    try:
        with zipfile.ZipFile(path) as archive:
            # the directory read whole, and every member inside the file: a cut copy fails here, not in torch
            whole = all(m.header_offset + m.compress_size <= stat.st_size for m in archive.infolist())
            whole = whole and _members_match_their_crcs(archive)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        whole = False
    if not whole:
        raise ValueError(f"{path}: not a readable checkpoint (truncated or damaged, or not written by torch.save); "
                         "pass another with --ckpt_path (a fit's checkpoints are under <artifacts>/training/checkpoints)")
    _VERIFIED.add(key)
    return path


def _structure(path: Path) -> object | None:
    """A checkpoint read with its tensors left on disk (memory-mapped); None where it holds classes that
    weights-only loading refuses: then Lightning's own load, as ``weights_only`` says, decides (nothing runs here)."""
    try:
        return torch.load(path, map_location="cpu", mmap=True, weights_only=True)
    except pickle.UnpicklingError:
        return None


def lightning_checkpoint(path: str | Path) -> Path:
    """``path`` if it is a whole checkpoint that Lightning wrote (weights under ``state_dict``); a tensor or a
    model saved with ``torch.save`` is named here rather than failing inside Lightning. Reads the file's
    structure only: tensors stay on disk (memory-mapped)."""
    path = readable_checkpoint(path)
    content = _structure(path)
    if content is None:
        return path
    if not isinstance(content, dict) or "state_dict" not in content:
        raise ValueError(f"{path} is not a Lightning checkpoint (it holds {type(content).__name__}, no "
                         "'state_dict'); pass a checkpoint of `ivr fit` with --ckpt_path")
    return path


def checkpoint_part(path: str | Path, key: str) -> dict:
    """The entry ``key`` of a whole Lightning checkpoint (the data module's state), read with its tensors left on
    disk (memory-mapped); ``{}`` where it has none, or where the file holds more than weights-only loading reads
    (then Lightning's own load, as ``weights_only`` says, decides: nothing in it runs here)."""
    content = _structure(readable_checkpoint(path))
    part = content.get(key) if isinstance(content, dict) else None
    return part if isinstance(part, dict) else {}


def holds_training_state(path: str | Path) -> bool:
    """Whether a Lightning checkpoint holds what resuming a fit needs (the optimizer's state); a weights-only one
    (``checkpoint.save_weights_only``) does not. True where weights-only loading cannot read it: Lightning decides."""
    content = _structure(readable_checkpoint(path))
    return not isinstance(content, dict) or "optimizer_states" in content


def load_lightning_checkpoint(
    model: PreTrainedModel, checkpoint_path: Path, prefix: str = LIGHTNING_PREFIX,
    check: Callable[[dict], None] | None = None, weights_only: bool = False,
) -> PreTrainedModel:
    """Load the weights a Lightning checkpoint holds under ``prefix`` into ``model`` (in place) and return it;
    ``check`` is called with the whole checkpoint first (and raises to refuse it).

    The LightningModule keeps the Hugging Face model as its ``model`` attribute, hence the default
    prefix. A tied model may lack its output weight in the checkpoint. Without ``weights_only``, load only
    checkpoints you trust: they pickle the module's hyperparameters, and loading them runs what they pickle; with
    it, a checkpoint holding more than tensors and primitive types is refused.
    """
    if Path(checkpoint_path).is_dir():
        raise ValueError(f"{checkpoint_path} is a folder (a sharded checkpoint), not the one file the export reads: "
                         "consolidate it first (`python -m lightning.pytorch.utilities.consolidate_checkpoint "
                         f"{checkpoint_path} --output_file FILE` for FSDP's) and pass that file with --ckpt_path")
    checkpoint_path = readable_checkpoint(checkpoint_path)
    try:
        checkpoint = torch.load(checkpoint_path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as err:
        raise ValueError(f"{checkpoint_path}: holds more than tensors and primitive types, which --weights_only true "
                         f"refuses ({str(err).splitlines()[0]}); export it without that flag only if you trust its "
                         "source") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ValueError(f"{checkpoint_path} is not a Lightning checkpoint: no 'state_dict'")
    if check is not None:
        check(checkpoint)
    state = {k.removeprefix(prefix): v for k, v in checkpoint["state_dict"].items() if k.startswith(prefix)}
    if not state:
        raise ValueError(f"{checkpoint_path}: no weights under prefix {prefix!r}")

    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:  # a size mismatch raises even when not strict
        raise ValueError(f"{checkpoint_path}: state dict does not fit the model ({first_mismatch(err)})") from None
    check_tying(model, state, checkpoint_path)
    head = model.get_output_embeddings()
    tied = head.weight is model.get_input_embeddings().weight
    head_key = next((f"{name}.weight" for name, module in model.named_modules() if module is head), None)
    missing = [k for k in missing if not (tied and k == head_key)]
    if missing or unexpected:
        raise ValueError(
            f"{checkpoint_path}: state dict does not fit the model; missing {missing}, unexpected {unexpected}"
        )
    return model


def check_tying(model: PreTrainedModel, state: dict, where: object) -> None:
    """Refuse weights (``state``: the model's state dict, keys without the Lightning prefix) of an untied fit for a
    model that ties its output layer to its token embedding: loaded, both matrices would land in the one tied
    parameter, the last one read winning, and the model would run with the other matrix's rows without a word."""
    head, embedding = model.get_output_embeddings(), model.get_input_embeddings()
    if head is None or head.weight is not embedding.weight:
        return
    names = {id(module): f"{name}.weight" for name, module in model.named_modules() if module in (head, embedding)}
    head_key, embedding_key = names.get(id(head)), names.get(id(embedding))
    head_rows, rows = state.get(head_key), state.get(embedding_key)
    if head_rows is None or rows is None or head_rows is rows:
        return
    if head_rows.shape != rows.shape or not torch.equal(head_rows, rows):
        raise ValueError(f"{where}: its output layer ({head_key}) differs from its token embedding ({embedding_key}), "
                         "but the configured model ties them, so one would overwrite the other: use the model "
                         "settings of the fit that wrote it (its model, or model.from_config.tie_word_embeddings "
                         "false)")


def first_mismatch(err: RuntimeError) -> str:
    """The first "size mismatch for …" line of torch's load_state_dict error."""
    return next((line.strip().rstrip(".") for line in str(err).splitlines() if "size mismatch" in line), str(err))
