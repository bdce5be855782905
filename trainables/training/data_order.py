"""The training data order: seeded, length-grouped when asked, and resumable part-way through an epoch."""

from __future__ import annotations

import itertools
from typing import Iterator

import torch
from datasets import Dataset
from torch.utils.data import DataLoader, RandomSampler, Sampler
from torch.utils.data.distributed import DistributedSampler

from trainables.config import TrainConfig
from trainables.training.distributed import DistContext

MODEL_COLUMNS = ("input_ids", "attention_mask", "token_type_ids", "labels")


def model_columns(dataset: Dataset, extra: tuple[str, ...] = ()) -> list[str]:
    """The columns of ``dataset`` a model (and a method's ``extra`` columns) takes."""
    return [c for c in (*MODEL_COLUMNS, *extra) if c in dataset.column_names]


def train_loader(dataset: Dataset, cfg: TrainConfig, ctx: DistContext, collate,
                 extra_columns: tuple[str, ...] = ()) -> DataLoader:
    """Batches of the training set in a seeded order (length-grouped when asked)."""
    generator = torch.Generator().manual_seed(cfg.seed)
    sampler: Sampler
    if cfg.group_by_length:
        from transformers.trainer_pt_utils import DistributedLengthGroupedSampler, LengthGroupedSampler

        lengths = list(dataset["length"])
        if ctx.is_distributed:
            sampler = DistributedLengthGroupedSampler(cfg.per_device_batch_size, num_replicas=ctx.world_size,
                                                      rank=ctx.rank, seed=cfg.seed, lengths=lengths)
        else:
            sampler = LengthGroupedSampler(cfg.per_device_batch_size, lengths=lengths, generator=generator)
    elif ctx.is_distributed:
        sampler = DistributedSampler(dataset, num_replicas=ctx.world_size, rank=ctx.rank, seed=cfg.seed)
    else:
        sampler = RandomSampler(dataset, generator=generator)
    return DataLoader(
        dataset.select_columns(model_columns(dataset, extra_columns)),
        batch_size=cfg.per_device_batch_size,
        sampler=ResumableSampler(sampler, cfg.per_device_batch_size,
                                 generator=None if ctx.is_distributed else generator),
        collate_fn=collate,
        pin_memory=ctx.device.type == "cuda",
        # Its own generator for the per-epoch base seed it draws: drawing from the global one would shift
        # the dropout stream of a run resumed mid-epoch against the run it resumes.
        generator=torch.Generator().manual_seed(cfg.seed),
    )


class ResumableSampler(Sampler[int]):
    """A sampler that a resumed run can start part-way through an epoch, in the interrupted run's order.

    The distributed samplers' order is a function of (seed, epoch). The single-process ones draw
    from a generator that carries over from epoch to epoch, so its state at the start of the
    current epoch is part of a checkpoint (``epoch_state``). Skipped batches are not loaded.
    """

    def __init__(self, sampler: Sampler, batch_size: int, generator: torch.Generator | None = None):
        self.sampler, self.batch_size, self.generator = sampler, batch_size, generator
        self._epoch_start: torch.Tensor | None = None
        self._skip = 0

    def set_epoch(self, epoch: int) -> None:
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def epoch_state(self) -> torch.Tensor | None:
        return self._epoch_start

    def resume(self, epoch_state: torch.Tensor | None, *, skip_batches: int) -> None:
        """The next epoch replays the one ``epoch_state`` started, from its batch ``skip_batches`` on."""
        if epoch_state is not None and self.generator is not None:
            self.generator.set_state(epoch_state)
        self._skip = skip_batches

    def __iter__(self) -> Iterator[int]:
        if self.generator is not None:
            self._epoch_start = self.generator.get_state()
        skip, self._skip = self._skip * self.batch_size, 0
        return itertools.islice(iter(self.sampler), skip, None)

    def __len__(self) -> int:
        return len(self.sampler)


def set_epoch(loader: DataLoader, epoch: int) -> None:
    """Tell the loader's sampler which epoch begins (the distributed samplers' order depends on it)."""
    if hasattr(loader.sampler, "set_epoch"):
        loader.sampler.set_epoch(epoch)
