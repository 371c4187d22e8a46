"""The training order is a function of seed and epoch, resumable mid-epoch; validation serves every block once."""

import pytest
import torch

from ivr.batch_order import evaluation_loader, training_loader

BLOCKS = [torch.tensor([i]) for i in range(23)]


def epoch(loader, number: int, stop: int | None = None) -> list[list[int]]:
    loader.sampler.set_epoch(number)
    out = []
    for batch in loader:
        out.append(batch.flatten().tolist())
        if len(out) == stop:
            break
    return out


def test_each_epoch_is_a_permutation_drawn_from_seed_and_epoch():
    first = epoch(training_loader(BLOCKS, 4, 0, seed=7), 0)
    assert len(first) == 5  # whole batches only: 23 blocks give 5 batches of 4
    assert len({i for b in first for i in b}) == 20
    assert epoch(training_loader(BLOCKS, 4, 0, seed=7), 0) == first  # no global random state involved
    assert epoch(training_loader(BLOCKS, 4, 0, seed=7), 1) != first
    assert epoch(training_loader(BLOCKS, 4, 0, seed=8), 0) != first


def test_a_loader_resumed_from_its_state_serves_the_rest_of_the_epoch():
    whole = [epoch(training_loader(BLOCKS, 4, 0, seed=7), e) for e in (0, 1)]
    loader = training_loader(BLOCKS, 4, 0, seed=7)
    assert epoch(loader, 0, stop=2) == whole[0][:2]
    state = loader.state_dict()
    assert state == {"seed": 7, "epoch": 0, "batches": 2, "started": True, "batch_size": 4, "replicas": 1,
                     "accumulate": 0, "start_batches": 0, "start_blocks": 0}

    resumed = training_loader(BLOCKS, 4, 0, seed=99)  # a run that drew another seed keeps the saved one
    resumed.load_state_dict(state)
    assert epoch(resumed, 0) == whole[0][2:]
    assert resumed.state_dict() == {"seed": 7, "epoch": 0, "batches": 5, "started": True, "batch_size": 4,
                                    "replicas": 1, "accumulate": 0, "start_batches": 2, "start_blocks": 8}
    assert epoch(resumed, 1) == whole[1]  # the skip applies once

    # a state without "started" (as loaders wrote it before it was recorded) resumes the same
    older = training_loader(BLOCKS, 4, 0, seed=99)
    older.load_state_dict({"epoch": 0, "batches": 2, "seed": 7})
    assert epoch(older, 0) == whole[0][2:]

    # a state saved at an epoch's end skips nothing of the next epoch
    after_end = training_loader(BLOCKS, 4, 0, seed=7)
    after_end.load_state_dict({"seed": 7, "epoch": 0, "batches": 5, "started": True})
    assert epoch(after_end, 1) == whole[1]


def test_passes_are_counted_here_and_the_trainer_only_says_whether_one_continues():
    # a fit stopped by max_steps mid-epoch is saved with the epoch counted done: Lightning then passes the next
    # epoch's number to set_epoch while it goes on with the saved epoch at its saved batch
    whole = [epoch(training_loader(BLOCKS, 4, 0, seed=7), e) for e in (0, 1, 2)]
    done = [3, 0, 0]  # the trainer's restored count of the running epoch's batches at the start of each pass
    resumed = training_loader(BLOCKS, 4, 0, seed=7, continued=lambda: done.pop(0))
    resumed.load_state_dict({"seed": 7, "epoch": 0, "batches": 3, "started": True})
    assert epoch(resumed, 1) == whole[0][3:]
    assert epoch(resumed, 2) == whole[1]
    assert epoch(resumed, 3) == whole[2]
    # a loader rebuilt on the same state (reload_dataloaders_every_n_epochs) goes on counting
    rebuilt = training_loader(BLOCKS, 4, 0, seed=99, order=resumed.order, continued=lambda: 0)
    assert epoch(rebuilt, 0) == epoch(training_loader(BLOCKS, 4, 0, seed=7), 3)


def test_a_fit_stopped_at_an_epoch_s_last_batch_goes_on_with_the_whole_next_epoch():
    # Lightning restores such a fit with the epoch's batches all counted but the epoch not closed: the first pass
    # after the restore must serve nothing (Lightning would take one batch of it and close it)
    whole = [epoch(training_loader(BLOCKS, 4, 0, seed=7), e) for e in (0, 1, 2)]
    done = [5, 0, 0]
    resumed = training_loader(BLOCKS, 4, 0, seed=7, continued=lambda: done.pop(0))
    resumed.load_state_dict({"seed": 7, "epoch": 0, "batches": 5, "started": True})
    assert epoch(resumed, 0) == []
    assert epoch(resumed, 1) == whole[1]
    assert epoch(resumed, 2) == whole[2]


def test_an_epoch_the_trainer_limits_ends_at_its_limit_when_resumed():
    # trainer.limit_train_batches 3 of 5: a fit stopped after the limited epoch's last batch goes on with the next
    # epoch, not with the fourth batch of this one, which the limit leaves out
    whole = [epoch(training_loader(BLOCKS, 4, 0, seed=7), e, stop=3) for e in (0, 1)]
    done = [3, 0, 0]
    resumed = training_loader(BLOCKS, 4, 0, seed=7, continued=lambda: done.pop(0), epoch_length=lambda: 3)
    resumed.load_state_dict({"seed": 7, "epoch": 0, "batches": 3, "started": True})
    assert epoch(resumed, 0) == []
    assert epoch(resumed, 1, stop=3) == whole[1]


def flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


ORDER = flat(epoch(training_loader(BLOCKS, 1, 0, seed=7), 0))  # epoch 0's blocks in the order they are served


def test_an_epoch_resumed_with_smaller_batches_goes_on_after_the_blocks_it_trained(caplog):
    """Out of memory: a fit stopped after 2 batches of 4 goes on with batches of 2, then of 1. The trainer counts the
    batches done in whatever size they had; the loader counts blocks, and every block of the epoch is served once."""
    first = training_loader(BLOCKS, 4, 0, seed=7)
    trained = epoch(first, 0, stop=2)
    second = training_loader(BLOCKS, 2, 0, seed=7, continued=lambda: 2)
    second.load_state_dict(first.state_dict())
    with caplog.at_level("INFO", logger="ivr.batch_order"):
        trained += epoch(second, 0, stop=3)
        assert "resuming epoch 0 after 8 of its blocks with data.batch_size 2 on 1 device(s), where it was 4 on 1" \
            in caplog.text
        third = training_loader(BLOCKS, 1, 0, seed=7, continued=lambda: 5)
        third.load_state_dict(second.state_dict())
        trained += epoch(third, 0, stop=len(third) - 5)  # Lightning ends the epoch when its count reaches the length
        assert "after 14 of its blocks with data.batch_size 1" in caplog.text
    assert flat(trained) == ORDER
    assert "left out" not in caplog.text
    # the same state loaded without a trainer goes on the same way
    alone = training_loader(BLOCKS, 2, 0, seed=7)
    alone.load_state_dict(first.state_dict())
    assert flat(epoch(alone, 0)) == ORDER[8:22]


def test_an_epoch_resumed_with_larger_batches_says_how_many_blocks_the_trainer_leaves_out(caplog):
    """The trainer ends an epoch when its count of batches reaches the epoch's length, and it counts the batches done
    as batches of the new size: an epoch of batches of 4 has 5, so after 3 batches of 2 it takes 2 more."""
    first = training_loader(BLOCKS, 2, 0, seed=7)
    trained = epoch(first, 0, stop=3)
    resumed = training_loader(BLOCKS, 4, 0, seed=7, continued=lambda: 3)
    resumed.load_state_dict(first.state_dict())
    trained += epoch(resumed, 0, stop=len(resumed) - 3)
    assert flat(trained) == ORDER[:14]  # none twice: 20 of an epoch of batches of 4, less the 6 left out
    assert "resuming epoch 0 after 6 of its blocks with data.batch_size 4 on 1 device(s), where it was 2 on 1: 6 of " \
        "its blocks are left out" in caplog.text
    # batches of 16: the trainer counts the epoch done (2 of its 1 batch), so the pass closes it
    caplog.clear()
    state = {**first.state_dict(), "batches": 4}
    larger = training_loader(BLOCKS, 16, 0, seed=7, continued=lambda: 4)
    larger.load_state_dict(state)
    assert epoch(larger, 0) == []
    assert "after 8 of its blocks with data.batch_size 16 on 1 device(s), where it was 2 on 1: 8 of its blocks are " \
        "left out" in caplog.text


def test_under_a_limit_of_batches_per_epoch_only_blocks_the_resume_skips_count_as_left_out(caplog):
    """trainer.limit_train_batches 3: the limit leaves the rest of every epoch out by design, so a resume with larger
    batches that the trainer ends at the limit is no loss to report."""
    first = training_loader(BLOCKS, 2, 0, seed=7)
    trained = epoch(first, 0, stop=1)
    resumed = training_loader(BLOCKS, 4, 0, seed=7, continued=lambda: 1, epoch_length=lambda: 3)
    resumed.load_state_dict(first.state_dict())
    with caplog.at_level("INFO", logger="ivr.batch_order"):
        trained += epoch(resumed, 0, stop=3 - 1)
    assert flat(trained) == ORDER[:10]
    assert "after 2 of its blocks with data.batch_size 4 on 1 device(s), where it was 2 on 1: the rest" in caplog.text
    assert "left out" not in caplog.text
    # on two devices, the block where the first pass's 3 end between the ranks is left out all the same
    single = training_loader(BLOCKS, 3, 0, seed=7)
    epoch(single, 0, stop=1)
    two = training_loader(BLOCKS, 3, 0, seed=7, num_replicas=2, rank=0, continued=lambda: 1, epoch_length=lambda: 2)
    two.load_state_dict(single.state_dict())
    epoch(two, 0)
    assert "where it was 3 on 1: 1 of its blocks are left out" in caplog.text
    # a limit the trainer has reached closes the epoch, with nothing to say
    caplog.clear()
    reached = training_loader(BLOCKS, 4, 0, seed=7, continued=lambda: 3, epoch_length=lambda: 3)
    reached.load_state_dict({**first.state_dict(), "batches": 3})
    with caplog.at_level("INFO", logger="ivr.batch_order"):
        assert epoch(reached, 0) == []
    assert not caplog.text


def test_another_sampler_is_served_as_it_is():
    from torch.utils.data import SequentialSampler

    from ivr.batch_order import ResumableLoader

    # as Lightning's overfit_batches rebuilds the loader
    loader = ResumableLoader(BLOCKS, batch_size=4, sampler=SequentialSampler(BLOCKS), drop_last=True)
    loader.load_state_dict({"seed": 7, "epoch": 0, "batches": 2, "started": True})
    assert [b.flatten().tolist() for b in loader] == [list(range(i, i + 4)) for i in range(0, 20, 4)]


def test_ranks_share_the_epoch_and_validation_repeats_no_block():
    shares = [epoch(training_loader(BLOCKS, 3, 0, seed=7, num_replicas=2, rank=r), 0) for r in (0, 1)]
    seen = [i for share in shares for b in share for i in b]
    assert len(seen) == len(set(seen)) == 18  # 11 blocks per rank, 3 whole batches of 3 each
    held_out = [[i for b in evaluation_loader(BLOCKS, 4, 0, num_replicas=3, rank=r) for i in b.flatten().tolist()]
                for r in range(3)]
    assert sorted(i for share in held_out for i in share) == list(range(23))


def test_a_training_split_smaller_than_one_batch_is_refused(tmp_path):
    from ivr.data import IVRDataModule

    data = IVRDataModule(artifacts_dir=str(tmp_path), batch_size=8, block_size=32)
    data.datasets = {"train": BLOCKS[:3]}
    with pytest.raises(ValueError, match="the training split holds 3 blocks of 32 tokens, fewer than one batch"):
        data.train_dataloader()
    data.datasets = {"train": BLOCKS[:8]}
    assert len(data.train_dataloader()) == 1



def test_a_training_split_smaller_than_one_batch_per_device_is_refused(tmp_path):
    """Each device trains on its own share of the blocks: 12 blocks are one batch of 8, but not on two devices."""
    from types import SimpleNamespace

    from ivr.data import IVRDataModule

    data = IVRDataModule(artifacts_dir=str(tmp_path), batch_size=8, block_size=32)
    data.datasets = {"train": BLOCKS[:12]}
    data.trainer = SimpleNamespace(world_size=2, global_rank=0)
    assert data.train_batches_per_epoch() == 0
    with pytest.raises(ValueError, match=r"holds 12 blocks of 32 tokens, fewer than one batch \(8 per device × 2 devices\)"):
        data.train_dataloader()


def test_a_held_out_split_smaller_than_the_devices_is_refused(tmp_path):
    from types import SimpleNamespace

    from ivr.data import IVRDataModule

    data = IVRDataModule(artifacts_dir=str(tmp_path), block_size=32)
    data.datasets = {"validation": BLOCKS[:1]}
    data.trainer = SimpleNamespace(world_size=2, global_rank=1)
    with pytest.raises(ValueError, match="the held-out split holds 1 blocks of 32 tokens, fewer than the 2 devices"):
        data.val_dataloader()
    data.datasets = {"validation": BLOCKS[:3]}
    assert [b.flatten().tolist() for b in data.val_dataloader()] == [[1]]  # rank 1 of 2: one block, none repeated


def test_resuming_inside_an_accumulation_says_which_batches_reach_no_update(tmp_path, caplog):
    from types import SimpleNamespace

    from ivr.data import IVRDataModule

    dm = IVRDataModule(artifacts_dir=str(tmp_path), batch_size=4)
    dm.datasets = {"train": BLOCKS}
    progress = SimpleNamespace(ready=3)
    trainer = SimpleNamespace(fit_loop=SimpleNamespace(epoch_loop=SimpleNamespace(
        batch_progress=SimpleNamespace(current=progress))), accumulate_grad_batches=2, num_training_batches=5,
        world_size=1, global_rank=0)
    dm.trainer = trainer
    loader = dm.train_dataloader()
    with caplog.at_level("WARNING", logger="ivr.data"):
        assert loader.continued() == 3 and loader.epoch_length() == 5
    assert "resuming at batch 3 of an epoch, inside an accumulation of 2 batches: the gradients of its first 1" \
        in caplog.text
    caplog.clear()
    progress.ready = 4  # between two optimizer steps: nothing lost
    loader.continued()
    assert "inside an accumulation" not in caplog.text
    # the steps were taken as the checkpointed fit accumulated: each batch alone (out of memory, resumed with batches
    # of half the size accumulated in pairs) loses nothing; in fours, batch 6 of 8 batches of 2 sat inside one
    for accumulated, ready, lost in ((1, 3, False), (4, 6, True)):
        caplog.clear()
        dm._order.load({"accumulate": accumulated, "batch_size": 2 if lost else 4, "replicas": 1})
        progress.ready = ready
        with caplog.at_level("WARNING", logger="ivr.data"):
            loader.continued()
        assert ("resuming at batch 6 of an epoch, inside an accumulation of 4 batches: the gradients of its first 2 "
                "batches were not saved, so their blocks reach no update; a trainer.val_check_interval that is a "
                "multiple of trainer.accumulate_grad_batches and of the epoch's batches (11)" in caplog.text) == lost
        assert dm._order.accumulate == 2  # the new fit's, for its own checkpoints


def test_the_epoch_order_skips_its_first_items_once():
    """``skip`` stands for the part of a resumed epoch already trained on: the next pass over the sampler serves
    its epoch whole."""
    from ivr.batch_order import EpochOrder

    sampler = EpochOrder(BLOCKS, num_replicas=1, rank=0, seed=7)
    whole = list(sampler)
    sampler.skip = 8
    assert list(sampler) == whole[8:]
    assert list(sampler) == whole


def test_without_the_trainer_only_a_loaded_state_s_cut_short_pass_is_continued():
    """A pass broken off in a loop of one's own is done with: the next pass serves the next epoch. Only a pass
    that a loaded state says was cut short goes on, and only once."""
    whole = [epoch(training_loader(BLOCKS, 4, 0, seed=7), e) for e in (0, 1, 2)]
    loader = training_loader(BLOCKS, 4, 0, seed=7)
    assert epoch(loader, 0, stop=2) == whole[0][:2]
    assert epoch(loader, 1) == whole[1]
    resumed = training_loader(BLOCKS, 4, 0, seed=7)
    resumed.load_state_dict({"seed": 7, "epoch": 0, "batches": 2, "started": True})
    assert epoch(resumed, 0, stop=1) == whole[0][2:3]
    assert epoch(resumed, 1, stop=1) == whole[1][:1]  # not the rest of epoch 0 again
    assert epoch(resumed, 2) == whole[2]


def test_the_state_records_the_devices_a_pass_was_split_across(caplog):
    """Ranks share the epoch's order by turns, so whole batches on every rank cover a prefix of it: a fit on two
    devices resumed on one goes on exactly; one resumed on two leaves out the block where the prefix ends between the
    ranks, and what the trainer's count of batches leaves at the epoch's end."""
    loader = training_loader(BLOCKS, 3, 0, seed=7, num_replicas=2, rank=0)
    epoch(loader, 0, stop=1)
    state = loader.state_dict()
    assert (state["batch_size"], state["replicas"]) == (3, 2)
    caplog.set_level("INFO", logger="ivr.batch_order")
    resumed = training_loader(BLOCKS, 3, 0, seed=7, num_replicas=2, rank=0, continued=lambda: 1)
    resumed.load_state_dict(state)
    epoch(resumed, 0)
    assert not caplog.text  # the same devices: nothing to say
    one = training_loader(BLOCKS, 3, 0, seed=7, continued=lambda: 1)
    one.load_state_dict(state)
    assert flat(epoch(one, 0, stop=len(one) - 1)) == ORDER[6:21]
    assert "after 6 of its blocks with data.batch_size 3 on 1 device(s), where it was 3 on 2: the rest" in caplog.text

    single = training_loader(BLOCKS, 3, 0, seed=7)
    epoch(single, 0, stop=1)
    caplog.clear()
    shares = []
    for rank in (0, 1):
        two = training_loader(BLOCKS, 3, 0, seed=7, num_replicas=2, rank=rank, continued=lambda: 1)
        two.load_state_dict(single.state_dict())
        shares += flat(epoch(two, 0, stop=len(two) - 1))
    assert sorted(shares) == sorted(ORDER[4:16])  # ORDER[3] where the prefix ends, ORDER[16:18] at the end
    assert "where it was 3 on 1: 3 of its blocks are left out" in caplog.text


def test_an_epoch_finished_in_larger_batches_is_closed_not_served_again_in_smaller_ones(caplog):
    """A fit stopped at the last batch of epoch 0 (5 batches of 4) and resumed with batches of 2: the trainer counts
    5 of the new epoch's 11 done, but every block of the epoch was trained. The pass closes the epoch, silently,
    and the next serves epoch 1 whole; so does a loaded state without the trainer."""
    caplog.set_level("INFO", logger="ivr.batch_order")
    loader = training_loader(BLOCKS, 4, 0, seed=7)
    epoch(loader, 0)
    state = loader.state_dict()
    whole_next = epoch(training_loader(BLOCKS, 2, 0, seed=7), 1)
    done = [5, 0]
    resumed = training_loader(BLOCKS, 2, 0, seed=7, continued=lambda: done.pop(0))
    resumed.load_state_dict(state)
    assert epoch(resumed, 0) == []
    assert epoch(resumed, 1) == whole_next
    alone = training_loader(BLOCKS, 2, 0, seed=7)
    alone.load_state_dict(state)
    assert epoch(alone, 1) == whole_next
    assert not caplog.text


def test_a_fit_resumed_with_smaller_batches_trains_the_blocks_an_uninterrupted_one_does(tmp_path, monkeypatch):
    """Out of memory at batches of 4 after 3 steps, resumed with batches of 2 up to step 6: the 18 blocks trained are
    the ones a fit with batches of 2 trains in 9 steps, in the same order, none twice."""
    from tests.conftest import tiny_cli_args
    from ivr.cli import main
    from ivr.model import IVRLanguageModel

    blocks = []
    step = IVRLanguageModel.training_step

    def recording_step(self, batch, batch_idx):
        blocks.extend(tuple(row) for row in batch["input_ids"].tolist())
        return step(self, batch, batch_idx)

    monkeypatch.setattr(IVRLanguageModel, "training_step", recording_step)
    fit = ["fit", *tiny_cli_args(tmp_path), "--trainer.limit_val_batches", "1"]
    main([*fit, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3"])
    main([*fit, "--trainer.max_steps", "6", "--trainer.val_check_interval", "3", "--data.batch_size", "2",
          "--ckpt_path", "last"])
    interrupted, blocks[:] = blocks[:], []
    main([*fit, "--trainer.max_steps", "9", "--trainer.val_check_interval", "9", "--data.batch_size", "2"])
    assert len(interrupted) == 18 and len(set(interrupted)) == 18 and interrupted == blocks
