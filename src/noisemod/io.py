"""Files that must never be half-written or run code when read: atomic writes and safe loads; the
cache folder."""

from __future__ import annotations

import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "CorruptFileError",
    "atomic_write",
    "cache_dir",
    "load_checkpoint",
    "read_json",
    "save_checkpoint",
    "write_json",
]


def cache_dir() -> Path:
    """The noisemod cache folder (decoded datasets, compiled kernels): ``$NOISEMOD_CACHE``, else
    ``$XDG_CACHE_HOME/noisemod``, else ``~/.cache/noisemod``."""
    if os.environ.get("NOISEMOD_CACHE"):
        return Path(os.environ["NOISEMOD_CACHE"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache").expanduser() / "noisemod"


class CorruptFileError(ValueError):
    """A file that exists but cannot be read: truncated, corrupt or of another format. The message
    names the file."""


class CheckpointError(CorruptFileError):
    """A checkpoint that cannot be read safely (corrupt, wrong format, or code in its pickle)."""


def atomic_write(path, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it over
    ``path``: readers see the old file or the new one, never a partial one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file the usual permissions
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, obj) -> Path:
    return atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2, sort_keys=True) + "\n"), "w")


def read_json(path) -> Any:
    """The JSON value in ``path``; a file that is not valid JSON (truncated, empty, binary) raises
    :class:`CorruptFileError` naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CorruptFileError(f"{path} is not valid JSON (truncated or corrupt?): {e}") from None


def save_checkpoint(obj: dict, path) -> Path:
    """``torch.save`` atomically. Keep ``obj`` to tensors and plain Python values so that it
    loads with ``torch.load(weights_only=True)``."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else type(e).__name__


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint with ``weights_only=True``: tensors and plain values only, so a crafted
    pickle cannot run code. Errors name the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise CheckpointError(
            f"refusing to load {path}: it is not a plain-tensor checkpoint (weights_only load failed: {_first_line(e)})"
        ) from None
    except Exception as e:  # truncated, corrupt or foreign files fail in many ways inside torch.load
        raise CheckpointError(f"cannot read checkpoint {path}: {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise CheckpointError(f"{path} is not a noisemod checkpoint (no 'model' entry)")
    return obj
