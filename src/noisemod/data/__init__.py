"""Datasets as in-memory uint8 tensors: one registry, one entry point, fast batches.

>>> from noisemod.data import load_dataset, BatchLoader
>>> data = load_dataset("digits")                     # or "mnist", "cifar10", "imagefolder", "synthetic", ...
>>> loader = BatchLoader.from_split(data.train, 64)   # float32 batches in [0, 1]
"""

from .bundle import DataBundle, DataError, DataNotFoundError, Split, channel_stats
from .cache import cache_dir, default_data_root
from .datasets import DATASETS, default_val_size, load_dataset, register_dataset
from .loader import BatchLoader, TensorImageDataset

__all__ = [
    "DATASETS",
    "BatchLoader",
    "DataBundle",
    "DataError",
    "DataNotFoundError",
    "Split",
    "TensorImageDataset",
    "cache_dir",
    "channel_stats",
    "default_data_root",
    "default_val_size",
    "load_dataset",
    "register_dataset",
]
