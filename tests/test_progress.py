"""Progress lines: the rate and the time left count the steps this run took, a resumed fit's too; the progress
bar's epoch total."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
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


def run_steps(monkeypatch, caplog, steps, every_seconds=0.0, model=None, **trainer_fields):
    """Log lines of a ProgressLog fed ``steps``: (global step, clock) pairs, on a stand-in trainer."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    fields = {"global_step": 0, "max_steps": 100, "is_global_zero": True, "world_size": 1, "callback_metrics": {}}
    trainer = SimpleNamespace(**{**fields, **trainer_fields})
    callback = ProgressLog(every_seconds=every_seconds)
    callback.on_train_start(trainer, model)
    with caplog.at_level(logging.INFO, logger="ivr.progress"):
        for trainer.global_step, clock[0] in steps:
            callback.on_train_batch_end(trainer, model, None, {"input_ids": torch.zeros(4, 8)}, 0)
    return [r.getMessage() for r in caplog.records if r.name == "ivr.progress"]


def test_durations_read_as_hours_minutes_and_seconds_never_negative():
    """Minutes wrap at the hour, and a negative span (a step count past the total) shows as none."""
    assert progress._duration(3725.9) == "1:02:05"
    assert progress._duration(-5) == "0:00:00"


def test_a_line_comes_after_the_first_step_then_once_per_interval(monkeypatch, caplog):
    """The first step speaks at once; later ones only when ``every_seconds`` have passed since the last line
    (exactly that long counts)."""
    lines = run_steps(monkeypatch, caplog, [(1, 1.0), (2, 5.0), (3, 11.0), (4, 15.0), (5, 21.0)], every_seconds=10)
    assert [m.split(",")[0] for m in lines] == ["train: step 1/100", "train: step 3/100", "train: step 5/100"]


def test_the_rate_counts_every_ranks_tokens_and_only_rank_zero_speaks(monkeypatch, caplog):
    """Rank 0 speaks for the job: its batch times the world size; other ranks write nothing."""
    lines = run_steps(monkeypatch, caplog, [(1, 1.0)], world_size=2)
    assert len(lines) == 1 and "64 tokens/s" in lines[0]  # 4 × 8 tokens on each of 2 ranks in 1 s
    caplog.clear()
    assert run_steps(monkeypatch, caplog, [(1, 1.0)], world_size=2, is_global_zero=False) == []


def test_without_a_known_total_or_a_step_taken_no_total_or_eta_is_shown(monkeypatch, caplog):
    """An unbounded fit (max_steps -1, no model count) shows no total; a batch before the run's first optimizer
    step (gradient accumulation) shows no ETA rather than dividing by zero."""
    lines = run_steps(monkeypatch, caplog, [(10, 5.0)], max_steps=-1)
    assert lines[0].startswith("train: step 10, ") and "ETA" not in lines[0]
    caplog.clear()
    lines = run_steps(monkeypatch, caplog, [(0, 5.0)])
    assert lines[0].startswith("train: step 0/100, ") and "ETA" not in lines[0]


def test_a_second_fit_counts_its_own_tokens(monkeypatch, caplog):
    """The callback, reused for another fit, starts its token count again."""
    clock = [0.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    trainer = SimpleNamespace(global_step=0, max_steps=10, is_global_zero=True, world_size=1, callback_metrics={})
    callback = ProgressLog(every_seconds=0)
    for _ in range(2):
        clock[0] = 0.0
        callback.on_train_start(trainer, None)
        trainer.global_step, clock[0] = 1, 1.0
        callback.on_train_batch_end(trainer, None, None, {"input_ids": torch.zeros(4, 8)}, 0)
    with caplog.at_level(logging.INFO, logger="ivr.progress"):
        trainer.global_step, clock[0] = 2, 2.0
        callback.on_train_batch_end(trainer, None, None, {"input_ids": torch.zeros(4, 8)}, 0)
    assert "32 tokens/s" in caplog.records[-1].getMessage()  # 64 tokens in 2 s of the second fit, not 96


def test_validation_lines_skip_the_sanity_check_and_empty_metrics(caplog):
    """The sanity check's scores and a validation that logged nothing write no line; a fit's names its step."""
    trainer = SimpleNamespace(sanity_checking=True, is_global_zero=True, global_step=7, ckpt_path=None,
                              callback_metrics={"val/loss": torch.tensor(2.5)}, state=SimpleNamespace(fn="fit"))
    callback = ProgressLog()
    with caplog.at_level(logging.INFO, logger="ivr.progress"):
        callback.on_validation_end(trainer, None)
        trainer.sanity_checking, trainer.callback_metrics = False, {}
        callback.on_validation_end(trainer, None)
        assert caplog.text == ""
        trainer.callback_metrics = {"val/loss": torch.tensor(2.5)}
        callback.on_validation_end(trainer, None)
    assert "validation at step 7: val/loss 2.5000" in caplog.text


@pytest.mark.parametrize(("limits", "description"), [({"max_steps": 5}, "Epoch 3"), ({"max_epochs": 4}, "Epoch 3/3")])
def test_the_progress_bar_shows_an_epoch_total_only_where_there_is_one(limits, description):
    """Lightning's own rich bar reads ``Epoch 3/-2`` for a fit bounded by steps alone."""
    from ivr.commands import IVRTrainer
    from ivr.progress import StepBoundedRichProgressBar

    trainer = IVRTrainer(logger=False, enable_checkpointing=False, **limits)
    bar = trainer.progress_bar_callback
    assert isinstance(bar, StepBoundedRichProgressBar)
    bar._trainer = trainer  # set by Lightning when the fit starts
    assert bar._get_train_description(3).strip() == description


def test_a_progress_bar_given_or_turned_off_is_left_as_it_is():
    from lightning.pytorch.callbacks import TQDMProgressBar

    from ivr.commands import IVRTrainer

    own = TQDMProgressBar(refresh_rate=7)
    assert IVRTrainer(logger=False, callbacks=own, max_steps=5).progress_bar_callback is own
    assert IVRTrainer(logger=False, callbacks=[own], max_steps=5).progress_bar_callback is own
    assert IVRTrainer(logger=False, enable_progress_bar=False, max_steps=5).progress_bar_callback is None
