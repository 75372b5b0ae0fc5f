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

    def with_labels(self, labels: torch.Tensor) -> Split:
        """The same images with other labels (int64, one per image), e.g. shuffled ones."""
        return Split(self.images, labels)

    def spread(self, n: int) -> Split:
        """``n`` images evenly spaced over the split (all of them if ``n >= len(self)``), in order: a fixed
        batch that covers every class even when the split is stored class by class, as an image-folder
        tree's training split is."""
        if n >= len(self):
            return self.take(torch.arange(len(self)))
        return self.take(torch.arange(n) * len(self) // n)

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


def channel_stats(images: torch.Tensor, chunk: int = 256) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Exact per-channel mean and (population) standard deviation of uint8 images, in [0, 1] units.

    Sums pixel values and their squares as integers (single-threaded numpy, chunk by chunk), so it needs no
    float copy of the data and loses no precision.

    Args:
        images: uint8 tensor (N, C, H, W) with N >= 1, on the CPU.
        chunk: images summed at a time (bounds the temporary memory).

    Returns:
        ``(mean, std)``, tuples of C floats.
    """
    if len(images) == 0:
        raise ValueError("cannot compute the mean and std of an empty split")
    a = images.numpy()
    total, squares = np.zeros(a.shape[1], np.int64), np.zeros(a.shape[1], np.int64)
    for start in range(0, len(a), chunk):
        block = a[start : start + chunk].astype(np.uint16)  # 255**2 fits
        total += block.sum((0, 2, 3), dtype=np.int64)
        squares += np.square(block).sum((0, 2, 3), dtype=np.int64)
    n = a.size // a.shape[1]
    mean = [int(s) / (255 * n) for s in total]
    var = [(n * int(q) - int(s) ** 2) / (255 * n) ** 2 for s, q in zip(total, squares)]  # exact numerator
    return tuple(mean), tuple(v**0.5 for v in var)


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
