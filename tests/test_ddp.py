"""Training on two processes through Lightning's own DDP (gloo on CPU): the pipeline runs once, every rank reads
the packed blocks, and the fit finishes, logs and checkpoints."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ivr.cli import main
from ivr.data import IVRDataModule
from tests.conftest import tiny_cli_args


def test_fit_with_two_cpu_processes_prepares_once_and_logs(tmp_path):
    args = tiny_cli_args(
        tmp_path, "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--trainer.strategy", "ddp",
        "--trainer.max_steps", "3", "--trainer.val_check_interval", "3", "--trainer.limit_val_batches", "2",
        "--trainer.log_every_n_steps", "1", "--progress.every_seconds", "0",
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "OMP_NUM_THREADS": "1"}
    # a process of its own: Lightning's launcher starts the second rank by running this same command again
    done = subprocess.run([sys.executable, "-m", "ivr.cli", "fit", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    # prepare_data runs on local rank 0 only: one corpus line, one analyze line, one packed dataset
    assert out.count("ivr.pipeline: corpus:") == 1 and out.count("ivr.pipeline: analyze:") == 1, out[-4000:]
    assert len(list((tmp_path / "artifacts" / "datasets").glob("original-*"))) == 1
    assert "`Trainer.fit` stopped: `max_steps=3` reached." in out
    # progress lines come from rank 0 alone, one per step, counting both ranks' tokens
    assert out.count("train: step 3/3") == 1, out[-4000:]
    assert (tmp_path / "artifacts" / "training" / "checkpoints" / "last.ckpt").is_file()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "lightning_logs" / "version_0"))
    acc.Reload()
    assert len(acc.Scalars("train/loss")) == 3  # rank 0 alone writes the logs
    assert acc.Scalars("val/loss")
    assert not (tmp_path / "lightning_logs" / "version_1").exists()


def test_setup_only_reads_and_says_what_to_run_when_the_blocks_are_missing(tmp_path):
    main(["init", *tiny_cli_args(tmp_path)])
    data = IVRDataModule(artifacts_dir=str(tmp_path / "artifacts"), tokenizer="original")
    with pytest.raises(FileNotFoundError, match="run `ivr prepare`"):
        data.setup("fit")
    assert not (tmp_path / "artifacts" / "datasets").exists()
