"""Which checkpoint a command reads (``--ckpt_path`` a file, ``last``, ``best`` or ``base``), and what is checked
about it before any stage runs: a damaged file, an export folder, a missing file, a weights-only checkpoint for a
resume are named here, not met inside torch or Lightning after hours of preparation."""

from __future__ import annotations

import os
from pathlib import Path

from ivr.data import IVRDataModule
from ivr.paths import ArtifactPaths


def home_expanded(ckpt_path: str | None) -> str | None:
    """``ckpt_path`` with a leading ``~`` read as the home folder, as Lightning's file system reads it (a config
    file's ckpt_path, or ``--ckpt_path=~/...``, which the shell leaves as it is), so that the checks here look at
    the file Lightning loads."""
    return os.path.expanduser(ckpt_path) if ckpt_path and ckpt_path.startswith("~") else ckpt_path


def check_local_checkpoint(paths: ArtifactPaths, ckpt_path: str) -> None:
    """A damaged checkpoint (a copy cut short, a full disk) is named here, not met by a bare error from inside
    torch. Only local files (``last``: the last fit's); anything else (a remote path, a sharded folder,
    Lightning's other keywords) is Lightning's to resolve."""
    from ivr.checkpoints import lightning_checkpoint

    if not ckpt_path.strip():  # Path("") is the working folder
        raise ValueError("--ckpt_path is empty: give a checkpoint file, last or best (or leave it out)")
    path = paths.last_checkpoint if ckpt_path == "last" else Path(ckpt_path)
    if path.is_dir() and not any(path.iterdir()):
        raise FileNotFoundError(f"--ckpt_path {ckpt_path} is an empty folder, not a checkpoint (a file, or a sharded "
                                "checkpoint's folder)")
    if path.is_file():
        lightning_checkpoint(path)
    elif path.is_dir() and any((path / name).is_file() for name in ("config.json", "model.safetensors")):
        raise ValueError(f"--ckpt_path {ckpt_path} is a Hugging Face model folder (an export), not a Lightning "
                         "checkpoint: a fit's checkpoints are under <data.artifacts_dir>/training/checkpoints; to "
                         "start from the folder's weights, set model.model_name_or_path to it")
    elif ckpt_path not in LIGHTNING_CHECKPOINT_WORDS and "://" not in ckpt_path \
            and not ckpt_path.startswith("registry") and not path.exists():
        # before the stages run (hours on a large corpus), not after them inside Lightning
        raise FileNotFoundError(f"--ckpt_path {ckpt_path}: no such checkpoint file")


LIGHTNING_CHECKPOINT_WORDS = ("last", "best", "hpc")


def check_resumable(ckpt_path: str) -> None:
    """A weights-only checkpoint is refused for resuming before the stages run, not met by Lightning's KeyError
    after them."""
    from ivr.checkpoints import holds_training_state

    if Path(ckpt_path).is_file() and not holds_training_state(ckpt_path):
        raise ValueError(f"{ckpt_path} holds the weights only (checkpoint.save_weights_only), not the optimizer's "
                         "state a fit resumes from: score or export it with --ckpt_path; a fit that is to resume "
                         "later keeps that state (checkpoint.save_weights_only false, the default)")


def run_checkpoint(command: str, datamodule: IVRDataModule | None, ckpt_path: str | None) -> str | None:
    """The checkpoint ``ivr predict``, ``validate``, ``test`` or ``export`` loads: the one given, else the last
    fit's; ``base`` for none (the configured model: the base model with the aligned rows), said aloud. Without the
    data module (Lightning called directly) Lightning's own rules apply."""
    if not isinstance(datamodule, IVRDataModule):
        return ckpt_path
    ckpt_path = home_expanded(ckpt_path)
    tokenizer = datamodule.paths.tokenizer_file(datamodule.hparams.tokenizer)
    if not tokenizer.is_file():
        raise FileNotFoundError(f"no tokenizer at {tokenizer}: run `ivr fit` (or `ivr prepare`) with this config first")
    if ckpt_path == "base":
        print(f"ivr {command}: using the configured model without fine-tuning (--ckpt_path base)")
        return None
    if ckpt_path in (None, "last"):
        last = datamodule.paths.last_checkpoint
        if not last.is_file():
            missing = (f"{last} links to {os.readlink(last)}, which does not exist: put it back," if last.is_symlink()
                       else f"{last} does not exist. Run `ivr fit` first,")
            raise FileNotFoundError(f"no checkpoint for ivr {command}: {missing} pass --ckpt_path FILE, or "
                                    "--ckpt_path base to use the model without fine-tuning")
        print(f"ivr {command}: using the last fit's checkpoint {last}")
        ckpt_path = str(last)
    elif ckpt_path == "best":
        ckpt_path = best_checkpoint(datamodule.paths.last_checkpoint)
        print(f"ivr {command}: using the last fit's best checkpoint {ckpt_path}")
    check_local_checkpoint(datamodule.paths, ckpt_path)
    if command != "export":  # export runs no stage
        datamodule.keep_checkpoint_tokenizer(ckpt_path, command)
    return ckpt_path


def best_checkpoint(last: Path) -> str:
    """The best checkpoint the last fit's ModelCheckpoint recorded (in ``last.ckpt``): a new process's Lightning
    knows none, and says the callback is not configured to keep one."""
    from ivr.checkpoints import checkpoint_part

    if not last.is_file():
        raise FileNotFoundError(f"--ckpt_path best: no {last} to read the best checkpoint from; run `ivr fit` first")
    states = checkpoint_part(last, "callbacks")
    if not states:  # checkpoint.save_weights_only leaves the callbacks' state out
        raise FileNotFoundError(f"--ckpt_path best: {last} records no callback state (a weights-only checkpoint, "
                                "checkpoint.save_weights_only) and so no best checkpoint; pass --ckpt_path FILE")
    best = next((s["best_model_path"] for s in states.values() if isinstance(s, dict) and s.get("best_model_path")),
                None)
    if best is not None and not Path(best).is_file() and (last.parent / Path(best).name).is_file():
        # recorded by its absolute path: in a tree moved since, it lies beside last.ckpt
        best = str(last.parent / Path(best).name)
    if best is None or not Path(best).is_file():
        raise FileNotFoundError(f"--ckpt_path best: the fit that wrote {last} kept no best checkpoint "
                                f"({'none recorded' if best is None else best + ' is gone'}); set checkpoint.monitor "
                                "(val/loss) for the fit, or pass --ckpt_path FILE")
    return best
