"""The order packed blocks are served in, on one device or several.

Training: each epoch's order is a permutation drawn from the seed and the epoch alone, split across ranks, so a fit
resumed from a mid-epoch checkpoint draws the same order and goes on after the batches it already trained on
(Lightning keeps the loader's ``state_dict`` in its checkpoints). A plain shuffled DataLoader draws from the global
random state, which a resumed fit seeds afresh: it would train the epoch's first batches again.

Validation: every block exactly once across ranks. Lightning's default distributed sampler repeats blocks to give
every rank as many, which would count them twice in the summed held-out metrics.
"""

from __future__ import annotations

from typing import Callable, Iterator

from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler


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
    """A DataLoader over an :class:`EpochOrder` whose position in the epoch goes into Lightning's checkpoints.

    ``position()`` gives the trainer's view at the start of each pass: the epoch it runs and how many of that
    epoch's batches it counts as done (more than 0 only when a resumed fit continues an epoch). The permutation is
    the epoch's, and after ``load_state_dict`` the batches done are skipped. The trainer's epoch, not the one
    Lightning passes to ``set_epoch`` (its count of epochs processed, which runs one ahead after a fit stopped
    by ``max_steps`` mid-epoch is resumed), keeps a resumed fit on the uninterrupted fit's batches. Without
    ``position`` the saved state alone decides. Any other sampler (``overfit_batches`` puts a sequential one in)
    is served as it is."""

    def __init__(self, *args, position: Callable[[], tuple[int, int]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.position = position
        self._served = 0
        self._resume: dict | None = None

    def __iter__(self):
        # a generator: Lightning makes the iterator before it sets the epoch, the body runs at the first batch
        sampler = self.sampler
        resume, self._resume = self._resume, None
        self._served = 0
        if isinstance(sampler, EpochOrder):
            if self.position is not None:
                epoch, done = self.position()
            else:  # a saved pass cut short is continued, in its epoch
                done = (resume or {}).get("batches", 0)
                epoch = resume.get("epoch", sampler.epoch) if resume and 0 < done < len(self) else sampler.epoch
            sampler.set_epoch(epoch)
            if resume is not None:
                if "seed" in resume:  # a seed drawn anew by this run would give other permutations
                    sampler.seed = resume["seed"]
                if 0 < done < len(self):
                    sampler.skip = done * self.batch_size
                    self._served = done
        for batch in super().__iter__():
            self._served += 1
            yield batch

    def state_dict(self) -> dict:
        sampler = self.sampler
        return {"epoch": getattr(sampler, "epoch", 0), "batches": self._served, "seed": getattr(sampler, "seed", 0)}

    def load_state_dict(self, state: dict) -> None:
        self._resume = {key: int(state[key]) for key in ("epoch", "batches", "seed") if key in state}


def training_loader(dataset: Dataset, batch_size: int, num_workers: int, seed: int, num_replicas: int = 1,
                    rank: int = 0, position: Callable[[], tuple[int, int]] | None = None) -> ResumableLoader:
    """Shuffled per epoch from ``seed``, whole batches only, resumable mid-epoch (``position``: see
    ResumableLoader)."""
    sampler = EpochOrder(dataset, num_replicas=num_replicas, rank=rank, seed=seed)
    return ResumableLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers, drop_last=True,
                           position=position)


def evaluation_loader(dataset: Dataset, batch_size: int, num_workers: int, num_replicas: int = 1,
                      rank: int = 0) -> DataLoader:
    """In order, every block once across ranks (a rank may get one batch fewer)."""
    sampler = UnrepeatedDistributedSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=num_workers)
