"""Batches straight from in-memory uint8 tensors, with no per-sample Python."""

from __future__ import annotations

import numpy as np
import torch

from .bundle import Split

#: keep a dataset resident on a CUDA device when it takes less than this share of the free memory
RESIDENT_FRACTION = 0.25


def epoch_generator(seed: int, epoch: int) -> torch.Generator:
    """A CPU generator seeded by the pair ``(seed, epoch)``."""
    state = np.random.SeedSequence([seed, epoch]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


class BatchLoader:
    """Iterate over shuffled mini-batches of uint8 images held in memory, as float32 in [0, 1] on a device.

    Each epoch's order is a permutation seeded by ``(seed, epoch)``: call :meth:`set_epoch` before iterating
    (the epoch does not advance by itself), so an epoch can be replayed or resumed exactly. Images travel to the
    device as uint8 (from pinned memory, without blocking) and become float32 there. On CUDA, a dataset smaller
    than :data:`RESIDENT_FRACTION` of the free memory is copied to the device once and indexed there.

    With ``world_size > 1`` every rank takes every ``world_size``-th index of the same permutation. So that all
    ranks have the same number of batches, the permutation is padded by repeating its first indices (as
    ``DistributedSampler`` does), or cut to a multiple of ``world_size`` when ``drop_last`` is set.

    Args:
        images: uint8 tensor (N, C, H, W).
        labels: int64 tensor (N,).
        batch_size: images per batch.
        shuffle: shuffle every epoch; if False, the order is ``0 .. N-1``.
        seed: seed of the shuffling.
        device: where the batches go.
        drop_last: drop the last batch when it is smaller than ``batch_size`` (and the tail of the permutation
            that does not divide among the ranks).
        rank, world_size: this process's shard of each epoch.
        resident: keep the whole dataset on the device; default: when it is already on a device, or on CUDA
            when it fits (see above).

    Yields:
        ``(x, y)``: float32 (B, C, H, W) in [0, 1] and int64 (B,), on ``device``.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        device: str | torch.device = "cpu",
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        resident: bool | None = None,
    ) -> None:
        split = Split(images, labels)  # validates dtypes and shapes
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not 0 <= rank < world_size:
            raise ValueError(f"need 0 <= rank < world_size, got rank={rank}, world_size={world_size}")
        self.batch_size, self.shuffle, self.seed, self.drop_last = batch_size, shuffle, seed, drop_last
        self.rank, self.world_size, self.epoch = rank, world_size, 0
        self.device = torch.device(device)
        if resident is None:
            on_host = split.images.device.type == "cpu"
            resident = not on_host or (self.device.type == "cuda" and _fits_on(self.device, split))
        self.resident = resident
        self.images, self.labels = split.images, split.labels
        if resident:
            self.images, self.labels = self.images.to(self.device), self.labels.to(self.device)

    @classmethod
    def from_split(cls, split: Split, batch_size: int, **kwargs) -> BatchLoader:
        """A loader over a :class:`Split` (``kwargs`` as in the constructor)."""
        return cls(split.images, split.labels, batch_size, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration follows."""
        self.epoch = epoch

    @property
    def num_samples(self) -> int:
        """Indices this rank visits per epoch."""
        n, ws = len(self.labels), self.world_size
        return n // ws if self.drop_last else -(-n // ws)

    def __len__(self) -> int:
        n, bs = self.num_samples, self.batch_size
        return n // bs if self.drop_last else -(-n // bs)

    def indices(self) -> torch.Tensor:
        """This rank's indices of the current epoch, in order (CPU int64)."""
        n = len(self.labels)
        order = torch.randperm(n, generator=epoch_generator(self.seed, self.epoch)) if self.shuffle else torch.arange(n)
        total = self.num_samples * self.world_size
        if total > n:
            order = torch.cat([order, order.repeat(-(-total // n))[: total - n]])
        return order[:total][self.rank :: self.world_size]

    def __iter__(self):
        return self.batches()

    def batches(self, start: int = 0):
        """Iterate over the current epoch's batches from batch number ``start`` (to resume mid-epoch)."""
        idx = self.indices()
        if self.resident:
            idx = idx.to(self.device, non_blocking=True)
        pin = self.device.type == "cuda" and not self.resident
        for first in range(start * self.batch_size, len(self) * self.batch_size, self.batch_size):
            batch = idx[first : first + self.batch_size]
            x, y = self.images.index_select(0, batch), self.labels.index_select(0, batch)
            if pin:
                x, y = x.pin_memory(), y.pin_memory()
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
            yield _to_unit_float(x), y


def _to_unit_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 -> float32 in [0, 1] (``x / 255``) where ``x`` is.

    On CPU numpy does it, single-threaded: a batch is too small to gain from torch's intra-op threads, and on a
    busy machine waiting for them can cost more than the conversion itself.
    """
    if x.device.type == "cpu":
        return torch.from_numpy(np.divide(x.numpy(), np.float32(255), dtype=np.float32))
    return x.div(255)


def _fits_on(device: torch.device, split: Split) -> bool:
    free, _ = torch.cuda.mem_get_info(device)
    return split.images.nbytes + split.labels.nbytes < RESIDENT_FRACTION * free


class TensorImageDataset(torch.utils.data.Dataset):
    """A map-style ``Dataset`` view of a :class:`Split` for hand-written loops.

    Args:
        split: the images and labels.

    Returns (per item):
        ``(x float32 (C, H, W) in [0, 1], label int)``.
    """

    def __init__(self, split: Split) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return self.split.images[i].float().div_(255), int(self.split.labels[i])
