"""Progress lines: the rate and the time left count the steps this run took, a resumed fit's too."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch

import ivr.progress as progress
from ivr.progress import ProgressLog


def test_the_eta_of_a_resumed_fit_counts_only_this_runs_steps(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    trainer = SimpleNamespace(global_step=900, max_steps=1000, is_global_zero=True, world_size=1, callback_metrics={})
    callback = ProgressLog(every_seconds=0)
    callback.on_train_start(trainer, None)  # resumed at step 900
    trainer.global_step, clock[0] = 910, 100.0  # ten steps in 100 s: 90 left take 900 s
    with caplog.at_level(logging.INFO, logger="ivr.progress"):
        callback.on_train_batch_end(trainer, None, None, {"input_ids": torch.zeros(4, 8)}, 0)
    assert "step 910/1000" in caplog.text and "ETA 0:15:00" in caplog.text


def test_a_fit_bounded_by_epochs_shows_the_models_count_of_its_steps(monkeypatch, caplog):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    trainer = SimpleNamespace(global_step=0, max_steps=-1, is_global_zero=True, world_size=1, callback_metrics={})
    model = SimpleNamespace(total_steps=40)  # max_epochs × batches per epoch, as the schedule counts it
    callback = ProgressLog(every_seconds=0)
    callback.on_train_start(trainer, model)
    trainer.global_step, clock[0] = 10, 30.0
    with caplog.at_level(logging.INFO, logger="ivr.progress"):
        callback.on_train_batch_end(trainer, model, None, {"input_ids": torch.zeros(4, 8)}, 0)
    assert "step 10/40" in caplog.text and "ETA 0:01:30" in caplog.text
