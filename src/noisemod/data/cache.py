"""Where data lives (data root; the cache folder is io.cache_dir) and the on-disk cache of decoded datasets."""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from ..io import cache_dir, save_checkpoint

CACHE_FORMAT = 1  # bump when the layout of cached entries changes


def default_data_root() -> Path:
    """The folder that holds one entry per dataset: ``$NOISEMOD_DATA``, else ``<cache_dir()>/data``."""
    if os.environ.get("NOISEMOD_DATA"):
        return Path(os.environ["NOISEMOD_DATA"]).expanduser()
    return cache_dir() / "data"


def source_key(paths: list[Path]) -> str:
    """A digest of the files' absolute paths, sizes and modification times."""
    h = hashlib.sha256(f"noisemod-data-cache-{CACHE_FORMAT}".encode())
    for p in paths:
        st = Path(p).stat()
        h.update(f"{Path(p).resolve()}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:24]


def cached(name: str, sources: list[Path], build: Callable[[], dict], enabled: bool = True) -> dict:
    """Return ``build()``, stored in and reloaded from ``<cache_dir()>/datasets/``.

    The entry is keyed on ``name`` and the source files' paths, sizes and modification times. It is loaded
    with ``torch.load(weights_only=True)``, so it may only hold tensors, strings, numbers, lists and dicts.
    An unreadable entry is rebuilt; a failure to write one only warns.

    Args:
        name: dataset name (the start of the cache file name).
        sources: the files the data is decoded from.
        build: decodes the data.
        enabled: when False, just ``build()``.

    Returns:
        What ``build()`` returns (or returned when the entry was written).
    """
    if not enabled:
        return build()
    path = cache_dir() / "datasets" / f"{name}-{source_key(sources)}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=True)
        except Exception as e:
            warnings.warn(f"rebuilding unreadable data cache {path}: {e}", stacklevel=2)
    value = build()
    try:
        save_checkpoint(value, path)
    except OSError as e:
        warnings.warn(f"could not write data cache {path}: {e}", stacklevel=2)
    return value
