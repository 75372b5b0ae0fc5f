"""Files that must never be half-written or run code when read: atomic writes and safe loads; the
cache folder; YAML files whose errors name the line."""

from __future__ import annotations

import json
import os
import pickle
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "CheckpointError",
    "CorruptFileError",
    "YamlFile",
    "atomic_write",
    "cache_dir",
    "load_checkpoint",
    "read_json",
    "read_yaml",
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


class YamlFile:
    """A YAML file read once: its value (``yaml.safe_load``'s) and where each part of it is, so
    that an error about a part names its line (:meth:`line`, :meth:`where`)."""

    def __init__(self, path, value, node):
        self.path, self.value, self._node = Path(path), value, node

    def line(self, where: str) -> int:
        """The line (from 1) of the part at ``where``, a path of keys and indices such as
        ``grids[0].model`` or ``claims[2].a`` ("top level": the document); the line of the deepest
        part found when the rest is missing."""
        import yaml

        node, line = self._node, 1
        for part in [] if where == "top level" else re.findall(r"[^.\[\]]+|\[\d+\]", where):
            if node is None:
                break
            line = node.start_mark.line + 1
            if isinstance(node, yaml.SequenceNode) and part.startswith("["):
                index = int(part[1:-1])
                node = node.value[index] if index < len(node.value) else None
            elif isinstance(node, yaml.MappingNode):
                node = next((v for k, v in node.value if k.value == part), None)
            else:
                node = None
        return node.start_mark.line + 1 if node is not None else line

    def where(self, where: str) -> str:
        """``<file>, line <n>``: the start of an error message about the part at ``where``."""
        return f"{self.path}, line {self.line(where)}"


def read_yaml(path) -> YamlFile:
    """A YAML file's value and where its parts are. A file that is not valid YAML (or not UTF-8)
    raises :class:`CorruptFileError` naming the file, the line and the problem, in one line; a
    missing file, ``FileNotFoundError``."""
    import yaml

    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise CorruptFileError(f"{path}: not a UTF-8 text file: {e}") from None
    try:
        return YamlFile(path, yaml.safe_load(text), yaml.compose(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        at = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(e, "problem", None) or e).split())
        context, started = getattr(e, "context", None), getattr(e, "context_mark", None)
        if context and started is not None:
            problem += f" ({context} at line {started.line + 1})"
        raise CorruptFileError(f"{path}{at}: not valid YAML: {problem}") from None
