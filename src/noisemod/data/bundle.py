"""In-memory dataset containers: :class:`Split` and :class:`DataBundle`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


class DataError(ValueError):
    """A data file is missing pieces, corrupt or inconsistent; the message names the file."""


class DataNotFoundError(FileNotFoundError):
    """The files of a dataset are not under the data root; the message says what is expected where."""


def split_indices(n: int, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Split ``range(n)`` into the rest and a seeded random part of ``k`` indices, each in increasing order."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).numpy()
    # numpy sorts: torch's multi-threaded sort of small index arrays can be slow on a busy machine
    return torch.from_numpy(np.sort(perm[k:])), torch.from_numpy(np.sort(perm[:k]))


@dataclass(frozen=True)
class Split:
    """One split of a dataset, held in memory.

    Attributes:
        images: uint8 tensor (N, C, H, W), contiguous.
        labels: int64 tensor (N,).
    """

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.dim() != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.dtype != torch.int64 or self.labels.shape != self.images.shape[:1]:
            raise ValueError(
                f"labels must be int64 ({len(self.images)},), got {self.labels.dtype} {tuple(self.labels.shape)}"
            )
        object.__setattr__(self, "images", self.images.contiguous())
        object.__setattr__(self, "labels", self.labels.contiguous())

    def __len__(self) -> int:
        return len(self.labels)

    def take(self, indices: torch.Tensor) -> Split:
        """The images at ``indices`` (a new Split that owns its memory)."""
        return Split(self.images[indices], self.labels[indices])

    def subset(self, n: int, seed: int = 0) -> Split:
        """A seeded random subset of ``n`` images, kept in their original order.

        For one seed, the subset of ``n`` images is contained in the subset of any larger ``n``.

        Args:
            n: number of images, ``1 <= n <= len(self)``.
            seed: seed of the random choice.

        Returns:
            A new :class:`Split`.
        """
        if not 1 <= n <= len(self):
            raise ValueError(f"subset size must be between 1 and {len(self)}, got {n}")
        return self.take(split_indices(len(self), n, seed)[1])


def channel_stats(images: torch.Tensor, chunk: int = 4096) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) standard deviation of uint8 images, in [0, 1] units.

    Counts pixel values per channel (a 256-bin histogram), so it needs no float copy of the data.

    Args:
        images: uint8 tensor (N, C, H, W) with N >= 1.
        chunk: images counted at a time (bounds the temporary memory).

    Returns:
        ``(mean, std)``, tuples of C floats.
    """
    if len(images) == 0:
        raise ValueError("cannot compute the mean and std of an empty split")
    channels = range(images.shape[1])
    counts = sum(
        torch.stack([torch.bincount(images[i : i + chunk, c].reshape(-1), minlength=256) for c in channels])
        for i in range(0, len(images), chunk)
    ).double()
    values = torch.arange(256, dtype=torch.float64) / 255
    total = counts.sum(1, keepdim=True)
    mean = (counts * values).sum(1, keepdim=True) / total
    var = (counts * (values - mean) ** 2).sum(1, keepdim=True) / total
    return tuple(mean.flatten().tolist()), tuple(var.sqrt().flatten().tolist())


@dataclass(frozen=True)
class DataBundle:
    """A dataset with its train / validation / test splits, class names and training statistics.

    Attributes:
        name: registry name of the dataset.
        train, val, test: the splits; ``val`` is carved from the original training set and may be empty.
        classes: class names; label ``i`` is ``classes[i]``.
        mean, std: per-channel mean and standard deviation of ``train`` (after removing ``val``), in [0, 1] units.
    """

    name: str
    train: Split
    val: Split
    test: Split
    classes: tuple[str, ...]
    mean: tuple[float, ...]
    std: tuple[float, ...]

    @property
    def in_channels(self) -> int:
        """Number of image channels C."""
        return self.train.images.shape[1]

    @property
    def input_size(self) -> tuple[int, int]:
        """Image size (H, W)."""
        return tuple(self.train.images.shape[2:])

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.classes)
