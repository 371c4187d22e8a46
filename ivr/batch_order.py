"""The order packed blocks are served in, on one device or several.

Training: each epoch's order is a permutation drawn from the seed and the epoch alone, split across ranks by
turns. Where the order stands (the seed, the epoch of the current pass, the batches served in it and in what size)
is an :class:`OrderState` that the data module keeps and checkpoints, so a fit resumed from a mid-epoch checkpoint
draws the same order and goes on after the blocks it already trained on, in batches of another size or on other
devices too. A plain shuffled DataLoader draws from the global random state, which a resumed fit seeds afresh: it
would train the epoch's first batches again.

The passes are counted here, not taken from Lightning's epoch number: a fit stopped by ``max_steps`` mid-epoch
is saved with that epoch counted done, and a resumed fit that also stops by ``max_steps`` numbers the rest of it
as the next epoch. Only whether a pass continues a cut-short one comes from the trainer (its restored count of the
running epoch's batches); resumed by epochs alone, Lightning starts a new epoch and the rest of that one is left.

Validation: every block exactly once across ranks. Lightning's default distributed sampler repeats blocks to give
every rank as many, which would count them twice in the summed held-out metrics.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, fields
from typing import Callable, Iterator

from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler

log = logging.getLogger(__name__)


@dataclass
class OrderState:
    """Where the training order stands; what a checkpoint records of it."""

    seed: int
    epoch: int = 0
    """The epoch whose permutation the current (or last) pass serves."""
    batches: int = 0
    """Batches served in that pass."""
    started: bool = False
    """Whether a pass has begun: the next one then serves the following epoch, or continues a cut-short one."""
    batch_size: int = 0
    """The batch size of the pass (0: not recorded); with ``replicas``, what a served batch stood for."""
    replicas: int = 0
    """The devices the pass was split across (0: not recorded)."""
    accumulate: int = 0
    """The trainer's ``accumulate_grad_batches`` in the pass (0: not recorded): which batches a step closed."""
    start_batches: int = 0
    """The trainer's count of the epoch's batches when the pass began (more than 0 where it went on with one)."""
    start_blocks: int = 0
    """Blocks of the epoch's order, across devices, served before the pass began."""

    def blocks_served(self, done: int) -> int:
        """Blocks of the epoch's order served across devices once the trainer counts ``done`` of its batches.

        Ranks share the order by turns, so whole batches on every rank always cover a prefix of it."""
        return self.start_blocks + (done - self.start_batches) * self.batch_size * self.replicas

    def epoch_batches(self, blocks: int) -> int:
        """Whole batches each device serves in an epoch of ``blocks`` blocks, in the sizes of the pass."""
        return blocks // self.replicas // self.batch_size

    def as_dict(self) -> dict:
        return asdict(self)

    def load(self, state: dict) -> None:
        for f in fields(self):
            if f.name in state:
                setattr(self, f.name, type(getattr(self, f.name))(state[f.name]))


class EpochOrder(DistributedSampler):
    """A rank's share of the epoch's permutation; ``skip`` leaves out its first items once (a resumed epoch)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        # ranks get equal shares; where the count does not divide, the permutation's last few blocks (others
        # each epoch) are left out of that epoch rather than repeated
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed, drop_last=True)
        self.skip = 0

    def __iter__(self) -> Iterator[int]:
        order = list(super().__iter__())
        skip, self.skip = self.skip, 0
        return iter(order[skip:])


class ResumableLoader(DataLoader):
    """A DataLoader over an :class:`EpochOrder` that serves the passes :class:`OrderState` says.

    ``continued()``: how many batches of the running epoch the trainer counts as done at the start of a pass (more
    than 0 only when a resumed fit goes on with a cut-short epoch); ``epoch_length()``: how many batches of an
    epoch the trainer trains (fewer than the loader holds under ``trainer.limit_train_batches``). Without it, a state loaded with
    ``load_state_dict`` whose pass was cut short is continued. Any other sampler (``overfit_batches`` puts a
    sequential one in) is served as it is."""

    def __init__(self, *args, order: OrderState | None = None, continued: Callable[[], int] | None = None,
                 epoch_length: Callable[[], int] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.order = order if order is not None else OrderState(seed=getattr(self.sampler, "seed", 0))
        self.continued = continued
        self.epoch_length = epoch_length
        self._loaded = False

    def __iter__(self):
        # a generator: the body runs at the first batch, after Lightning has restored a resumed fit's progress
        sampler, state = self.sampler, self.order
        if not isinstance(sampler, EpochOrder):
            yield from super().__iter__()
            return
        done = self.continued() if self.continued is not None else (state.batches if self._loaded else 0)
        self._loaded = False
        now = (self.batch_size, sampler.num_replicas)
        # a state without the sizes was written with the ones in use
        state.batch_size, state.replicas = state.batch_size or now[0], state.replicas or now[1]
        then = (state.batch_size, state.replicas)
        blocks = state.blocks_served(done) if done else 0
        # counted in the batches the pass was trained in, every block of the epoch was: it is finished
        finished = bool(done) and blocks >= state.epoch_batches(len(sampler.dataset)) * then[0] * then[1]
        length = natural = len(self)
        if self.epoch_length is not None and isinstance(limited := self.epoch_length(), int) and 0 < limited < length:
            length = limited  # the trainer trains this many batches of each epoch (trainer.limit_train_batches)
        skip = -(-blocks // sampler.num_replicas)  # a rank's blocks already served, rounded up: none serves one twice
        closing = self.continued is not None and state.started and (done >= length or finished)
        if state.started and done and not finished and not (closing and length < natural):
            # the trainer ends the epoch after `length` batches, counting those done as batches of this size (a limit
            # it has reached ends it by design)
            left = max(sampler.num_samples - skip, 0) // self.batch_size
            taken = 0 if closing else left if self.continued is None else min(left, length - done)
            served = blocks + taken * self.batch_size * sampler.num_replicas
            # of the blocks an epoch of this size serves (a limit's share, which leaves the rest out by design)
            lost = max(length * self.batch_size * sampler.num_replicas - served, 0) if length == natural else \
                skip * sampler.num_replicas - blocks
            self._say_resumed(state.epoch, blocks, then, lost)
        if closing:
            # a fit stopped by max_steps at an epoch's last batch is restored with that epoch whole but not yet
            # closed: Lightning would take one batch of this pass and close it, so serving the next epoch here
            # would lose all of it but that batch; an empty pass closes it, and the next serves the next epoch
            return
        if state.started and done and not finished:
            epoch = state.epoch
        elif state.started:
            epoch, done, skip = state.epoch + 1, 0, 0
        else:  # a fit's first pass: the epoch Lightning set (0)
            epoch, done, skip = sampler.epoch, 0, 0
        sampler.seed = state.seed
        sampler.set_epoch(epoch)
        sampler.skip = skip
        state.started, state.epoch, state.batches = True, epoch, done
        state.start_batches, state.start_blocks = done, skip * sampler.num_replicas
        state.batch_size, state.replicas = self.batch_size, sampler.num_replicas
        for batch in super().__iter__():
            state.batches += 1
            yield batch

    def _say_resumed(self, epoch: int, blocks: int, then: tuple[int, int], lost: int) -> None:
        now = (self.batch_size, self.sampler.num_replicas)
        if then == now and not lost:
            return
        sizes = (f" with data.batch_size {now[0]} on {now[1]} device(s), where it was {then[0]} on {then[1]}"
                 if then != now else "")
        if lost:
            log.warning("resuming epoch %d after %d of its blocks%s: %d of its blocks are left out", epoch, blocks,
                        sizes, lost)
        else:
            log.info("resuming epoch %d after %d of its blocks%s: the rest of the epoch is served once", epoch,
                     blocks, sizes)

    # Lightning checkpoints a loader with these (and warns that a mid-epoch resume is unreliable without them)
    def state_dict(self) -> dict:
        return self.order.as_dict()

    def load_state_dict(self, state: dict) -> None:
        # a saved loader state was always written after a pass had begun, "started" recorded or not
        self.order.load({"started": True, **state})
        self._loaded = True


def training_loader(dataset: Dataset, batch_size: int, num_workers: int, seed: int = 0, num_replicas: int = 1,
                    rank: int = 0, order: OrderState | None = None, continued: Callable[[], int] | None = None,
                    epoch_length: Callable[[], int] | None = None) -> ResumableLoader:
    """Shuffled per epoch from ``order.seed`` (a fresh order from ``seed`` where none is given), whole batches only,
    resumable mid-epoch."""
    order = order if order is not None else OrderState(seed=seed)
    sampler = EpochOrder(dataset, num_replicas=num_replicas, rank=rank, seed=order.seed)
    return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                           order=order, continued=continued, epoch_length=epoch_length)


def evaluation_loader(dataset: Dataset, batch_size: int, num_workers: int, num_replicas: int = 1,
                      rank: int = 0) -> DataLoader:
    """In order, every block once across ranks (a rank may get one batch fewer)."""
    sampler = UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
