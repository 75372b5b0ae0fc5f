"""Readers for the on-disk formats: IDX (MNIST), CIFAR-10 python batches, image folders (tree or zip).

They return numpy arrays and never execute code from the files they read. Every error names the file.
"""

from __future__ import annotations

import gzip
import io
import multiprocessing
import os
import pickle
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from .bundle import DataError

IDX_LABELS, IDX_IMAGES = 2049, 2051
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
GRAYSCALE_MODES = ("1", "L", "LA", "La", "I", "I;16", "F")


def read_file_bytes(path: Path) -> bytes:
    """The bytes of ``path``, gunzipped when its name ends in ``.gz``."""
    data = Path(path).read_bytes()
    if str(path).endswith(".gz"):
        try:
            data = gzip.decompress(data)
        except (EOFError, OSError, zlib.error) as e:
            raise DataError(f"{path}: corrupt or truncated gzip file ({e})") from e
    return data


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read an IDX file of unsigned bytes (optionally gzipped).

    Args:
        path: the file.
        magic: expected magic number, :data:`IDX_LABELS` (2049, 1-D) or :data:`IDX_IMAGES` (2051, 3-D).

    Returns:
        A writable uint8 array with the dimensions from the header.
    """
    data = read_file_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"{path}: truncated IDX file ({len(data)} bytes, the header alone is {header})")
    found = int.from_bytes(data[:4], "big")
    if found != magic:
        raise DataError(f"{path}: wrong magic number {found}, expected {magic}")
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, 4))
    size = int(np.prod(dims))
    if len(data) - header != size:
        raise DataError(
            f"{path}: header says {dims} = {size} bytes of data but the file holds {len(data) - header}"
            + (" (truncated)" if len(data) - header < size else "")
        )
    return np.frombuffer(data, np.uint8, size, header).reshape(dims).copy()


def read_idx_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read matching IDX image (N, H, W) and label (N,) files and check that the counts agree."""
    images, labels = read_idx(images_path, IDX_IMAGES), read_idx(labels_path, IDX_LABELS)
    if len(images) != len(labels):
        raise DataError(f"{labels_path}: {len(labels)} labels but {images_path} holds {len(images)} images")
    return images, labels


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of bytes use it, restricted to latin-1."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"encoding {encoding!r} is not allowed")
    return text.encode("latin1")


def _allowed_globals() -> dict[tuple[str, str], object]:
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy < 2
        from numpy.core import multiarray, numeric
    allowed: dict[tuple[str, str], object] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _latin1_encode,
    }
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


class SafeUnpickler(pickle.Unpickler):
    """An unpickler for plain data: builtin containers, str, bytes, numbers and numpy arrays; no other globals."""

    def find_class(self, module: str, name: str) -> object:
        try:
            return _allowed_globals()[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name}") from None


def load_pickle(path: Path) -> dict:
    """Unpickle a dict of plain data (bytes keys are decoded to str) with :class:`SafeUnpickler`."""
    try:
        with open(path, "rb") as f:
            obj = SafeUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as e:
        raise DataError(f"{path}: not a valid pickle of plain data ({e})") from e
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a dict, found {type(obj).__name__}")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Read one CIFAR-10 python batch.

    Returns:
        ``(images uint8 (N, 3, 32, 32), labels int64 (N,))``.
    """
    batch = load_pickle(path)
    data, labels = batch.get("data"), batch.get("labels")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        raise DataError(f"{path}: 'data' is not a uint8 array of shape (N, 3072)")
    if labels is None or len(labels) != len(data):
        raise DataError(f"{path}: {0 if labels is None else len(labels)} labels for {len(data)} images")
    return data.reshape(-1, 3, 32, 32), np.asarray(labels, dtype=np.int64)


# ----------------------------------------------------------------------------------------------- image folders


@dataclass(frozen=True)
class ImageFolderIndex:
    """The image files of a ``{train,test}/<class>/*`` tree, in a directory or a zip (see :func:`index_image_folder`).

    Attributes:
        source: the directory or zip file.
        classes: class names; label ``i`` is ``classes[i]``.
        files: ``{"train": [(relative posix path, label), ...], "test": [...]}``, sorted by path.
        is_zip: whether ``source`` is a zip file.
    """

    source: Path
    classes: tuple[str, ...]
    files: dict[str, list[tuple[str, int]]]
    is_zip: bool

    def describe(self, name: str) -> str:
        """A user-facing name of one file: ``zip:member`` or a full path."""
        return f"{self.source}:{name}" if self.is_zip else str(self.source / name)


def _list_entries(source: Path) -> list[tuple[str, bool]]:
    """All ``(posix path, is_dir)`` entries of a directory tree or zip file."""
    if source.is_dir():
        return [(p.relative_to(source).as_posix(), p.is_dir()) for p in source.rglob("*")]
    try:
        with zipfile.ZipFile(source) as z:
            return [(i.filename.rstrip("/"), i.is_dir()) for i in z.infolist()]
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{source}: not a readable zip file ({e})") from e


def index_image_folder(source: Path, classes: tuple[str, ...] | None = None) -> ImageFolderIndex:
    """List the images of an image-folder tree ``train/<class>/*.{png,jpg,jpeg}``, ``test/<class>/...``.

    The tree may sit at the top of ``source`` or inside a single top-level folder. Hidden files and folders
    (``.*``, ``__MACOSX``) are ignored.

    Args:
        source: a directory or a zip file.
        classes: the expected class names in label order; default: the training class folders sorted by name.

    Returns:
        An :class:`ImageFolderIndex`.
    """
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such image folder or zip")
    entries = [(PurePosixPath(p).parts, is_dir) for p, is_dir in _list_entries(source)]
    entries = [(p, is_dir) for p, is_dir in entries if p and not any(s.startswith((".", "__MACOSX")) for s in p)]
    prefix = ""
    if not any(len(p) > 1 and p[0] == "train" for p, _ in entries):
        tops = {p[0] for p, _ in entries}
        if len(tops) != 1:
            raise DataError(f"{source}: expected train/<class>/<image> and test/<class>/<image> folders")
        prefix = tops.pop() + "/"
        entries = [(p[1:], is_dir) for p, is_dir in entries if len(p) > 1]
    class_dirs: dict[str, set[str]] = {"train": set(), "test": set()}
    images: dict[str, list[tuple[str, str]]] = {"train": [], "test": []}
    for p, is_dir in entries:
        if p[0] in images and (len(p) >= 3 or (len(p) == 2 and is_dir)):
            class_dirs[p[0]].add(p[1])
            if not is_dir and len(p) == 3 and p[2].lower().endswith(IMAGE_EXTENSIONS):
                images[p[0]].append((p[1], prefix + "/".join(p)))
    for split in ("train", "test"):
        if not class_dirs[split]:
            raise DataError(f"{source}: no {prefix}{split}/<class>/ folders")
    names = tuple(sorted(class_dirs["train"])) if classes is None else tuple(classes)
    unknown = sorted((class_dirs["train"] | class_dirs["test"]) - set(names))
    if unknown:
        raise DataError(f"{source}: class folders {unknown} are not among the classes {list(names)}")
    label = {c: i for i, c in enumerate(names)}
    files = {}
    for split in ("train", "test"):
        used = {c for c, _ in images[split]}
        empty = sorted(class_dirs[split] - used)
        if empty:
            raise DataError(f"{source}: class folder {prefix}{split}/{empty[0]}/ holds no .png/.jpg/.jpeg images")
        files[split] = sorted((path, label[c]) for c, path in images[split])
    return ImageFolderIndex(source, names, files, source.is_file())


def _decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode one image to (H, W) uint8 when it is grayscale, else (H, W, 3)."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            mode = "L" if im.mode in GRAYSCALE_MODES else "RGB"
            return np.asarray(im if im.mode == mode else im.convert(mode))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{name}: cannot decode image ({e})") from e


def _decode_all(items: list[tuple[bytes, str]]) -> list[np.ndarray]:
    return [_decode_image(data, name) for data, name in items]


def _read_all(index: ImageFolderIndex, names: list[str]) -> list[tuple[bytes, str]]:
    """The encoded bytes of the images, each with its user-facing name."""
    if not index.is_zip:
        return [((index.source / n).read_bytes(), index.describe(n)) for n in names]
    items = []
    with zipfile.ZipFile(index.source) as z:
        for n in names:
            try:
                items.append((z.read(n), index.describe(n)))
            except (zipfile.BadZipFile, zlib.error, OSError) as e:  # bad CRC, bad compression, ...
                raise DataError(f"{index.describe(n)}: cannot read from the zip ({e})") from e
    return items


def _pool_context() -> multiprocessing.context.BaseContext:
    # Workers only run PIL and numpy, so forking is safe and avoids re-importing torch in each worker.
    return multiprocessing.get_context("fork" if sys.platform == "linux" else None)


def decode_images(index: ImageFolderIndex, names: list[str], workers: int | None = None) -> np.ndarray:
    """Decode images of an image folder into one uint8 array (N, C, H, W).

    All images must have the same size. The result is grayscale (C = 1) when every image is, else RGB (C = 3).

    Args:
        index: where the images are.
        names: the relative paths of the images (as in ``index.files``).
        workers: decoding processes; default: the number of CPUs (at most 8) when there are many images.

    Returns:
        The images, in the order of ``names``.
    """
    if workers is None:
        workers = min(os.cpu_count() or 1, 8) if len(names) >= 4096 else 1
    items = _read_all(index, names)
    if workers > 1:
        step = -(-len(items) // (4 * workers))
        with _pool_context().Pool(workers) as pool:
            parts = pool.map(_decode_all, [items[i : i + step] for i in range(0, len(items), step)])
        arrays = [a for part in parts for a in part]
    else:
        arrays = _decode_all(items)
    if not arrays:
        raise DataError(f"{index.source}: no images")
    size = arrays[0].shape[:2]
    for name, a in zip(names, arrays):
        if a.shape[:2] != size:
            raise DataError(
                f"{index.describe(name)}: image size {a.shape[:2]} differs from {size} of {index.describe(names[0])}"
            )
    if any(a.ndim == 3 for a in arrays):
        arrays = [a if a.ndim == 3 else np.repeat(a[:, :, None], 3, axis=2) for a in arrays]
        return np.ascontiguousarray(np.stack(arrays).transpose(0, 3, 1, 2))
    return np.stack(arrays)[:, None]
