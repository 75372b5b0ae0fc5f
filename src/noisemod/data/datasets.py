"""The dataset registry and :func:`load_dataset`."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..registry import Registry
from .bundle import DataBundle, DataError, DataNotFoundError, Split, channel_stats, split_indices
from .cache import cached, default_data_root
from .formats import decode_images, index_image_folder, read_cifar_batch, read_idx_pair

MNIST_CLASSES = tuple(str(i) for i in range(10))
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
SYNTHETIC_CLASSES = ("hbar", "vbar", "diagonal", "antidiagonal", "ring", "disc", "square", "cross", "checker", "corner")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED = 360, 0


#: What a dataset may declare about attacks on it (``register_dataset(attack=...)``, read by
#: :func:`noisemod.attacks.attack_defaults` and :func:`~noisemod.attacks.eps_warmup_default`): the keyword
#: arguments of each attack (radius ``eps`` in [0, 1] pixel units, step ``alpha``, ``steps``), and the
#: epochs of eps warm-up, and the radii at which every model's robustness is measured (``robustness_eps``: a
#: small one and the training one, for PGD-50 after training). Each part is optional.
ATTACK_KEYS = {"pgd": ("eps", "alpha", "steps"), "fgsm": ("eps", "alpha"), "eps_warmup": None, "robustness_eps": None}
#: Madry et al.: MNIST, 40 steps of 0.01 in an 0.3 ball; FGSM with random start, Wong et al. 2020:
#: alpha = 1.25 eps; a 2-epoch eps warm-up (the shortest ramp that trained every seed we ran).
MNIST_ATTACK = {
    "pgd": {"eps": 0.3, "alpha": 0.01, "steps": 40},
    "fgsm": {"eps": 0.3, "alpha": 0.375},
    "eps_warmup": 2.0,
    "robustness_eps": (0.1, 0.3),
}
#: Fashion-MNIST: MNIST's attack defaults; robustness at 0.05 and 0.1, the eps our specs train it at.
FASHION_MNIST_ATTACK = {**MNIST_ATTACK, "robustness_eps": (0.05, 0.1)}
#: Madry et al.: CIFAR-10, 7 steps of 2/255 in 8/255; FGSM alpha 10/255 = 1.25 eps; a 1-epoch warm-up.
CIFAR10_ATTACK = {
    "pgd": {"eps": 8 / 255, "alpha": 2 / 255, "steps": 7},
    "fgsm": {"eps": 8 / 255, "alpha": 10 / 255},
    "eps_warmup": 1.0,
    "robustness_eps": (2 / 255, 8 / 255),
}


@dataclass(frozen=True)
class Dataset:
    """One registered dataset: its name, ``load(root, *, download, cache, **options)``, which returns
    the raw dict of :func:`_raw`, and what it declares about attacks (:data:`ATTACK_KEYS`; empty: no
    defaults). Calling it calls ``load``."""

    name: str
    load: Callable[..., dict]
    attack: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, root, **kwargs) -> dict:
        return self.load(root, **kwargs)


#: The registered datasets, by name, in registration order.
DATASETS: Registry[Dataset] = Registry("dataset")


def register_dataset(name: str, *, attack: Mapping[str, Any] | None = None) -> Callable:
    """Decorator adding a loader to :data:`DATASETS` under ``name`` (which must be new).

    A loader is called as ``loader(root: Path | None, *, download: bool, cache: bool, **options)`` and returns
    ``{"train_images", "train_labels", "test_images", "test_labels", "classes"}`` (uint8 NCHW / int64 tensors,
    list of names); :func:`load_dataset` adds the validation split and the statistics. ``attack``: the
    dataset's attack defaults (:data:`ATTACK_KEYS`, e.g. :data:`MNIST_ATTACK`); without them an adversarial
    run on it needs ``eps`` given (:func:`noisemod.attacks.attack_defaults`).
    """
    attack = _attack_table(name, attack or {})

    def add(fn: Callable[..., dict]) -> Callable[..., dict]:
        DATASETS.register(name, Dataset(name, fn, attack))
        return fn

    return add


def _attack_table(name: str, attack: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of a dataset's attack declaration; ``ValueError`` naming the dataset and a key that is wrong."""
    for key, value in attack.items():
        if key not in ATTACK_KEYS:
            raise ValueError(f"dataset {name!r}: unknown attack key {key!r}; known: {', '.join(ATTACK_KEYS)}")
        if ATTACK_KEYS[key] is not None and (not isinstance(value, Mapping) or set(value) != set(ATTACK_KEYS[key])):
            raise ValueError(f"dataset {name!r}: attack {key!r} declares {', '.join(ATTACK_KEYS[key])}, got {value!r}")
    return {k: dict(v) if isinstance(v, Mapping) else v for k, v in attack.items()}


def _raw(train_x, train_y, test_x, test_y, classes) -> dict:
    as_tensor = lambda a, dtype: torch.as_tensor(np.ascontiguousarray(a)).to(dtype)  # noqa: E731
    return {
        "train_images": as_tensor(train_x, torch.uint8),
        "train_labels": as_tensor(train_y, torch.int64),
        "test_images": as_tensor(test_x, torch.uint8),
        "test_labels": as_tensor(test_y, torch.int64),
        "classes": list(classes),
    }


def _find_files(folders: list[Path], names: tuple[str, ...]) -> list[Path] | None:
    """The first folder that holds every name (raw or ``.gz``), as a list of paths."""
    for folder in folders:
        found = [next((p for p in (folder / n, folder / f"{n}.gz") if p.is_file()), None) for n in names]
        if all(found):
            return found
    return None


def _idx_dataset(name: str, root: Path, torchvision_name: str, classes: tuple[str, ...], download: bool, cache: bool):
    folders = [root / name, root / torchvision_name / "raw"]
    files = _find_files(folders, IDX_FILES)
    if files is None and download:
        import torchvision

        getattr(torchvision.datasets, torchvision_name)(str(root), train=True, download=True)
        files = _find_files(folders, IDX_FILES)
    if files is None:
        raise DataNotFoundError(
            f"{name}: expected the IDX files {', '.join(IDX_FILES)} (each optionally .gz) in "
            f"{folders[0]} or {folders[1]}; set root= or NOISEMOD_DATA to the folder that holds {name}/, "
            "or pass download=True (needs internet)"
        )

    def build() -> dict:
        train_x, train_y = read_idx_pair(files[0], files[1])
        test_x, test_y = read_idx_pair(files[2], files[3])
        return _raw(train_x[:, None], train_y, test_x[:, None], test_y, classes)

    return cached(name, files, build, cache)


@register_dataset("mnist", attack=MNIST_ATTACK)
def _mnist(root: Path, *, download: bool, cache: bool) -> dict:
    return _idx_dataset("mnist", root, "MNIST", MNIST_CLASSES, download, cache)


@register_dataset("fashion-mnist", attack=FASHION_MNIST_ATTACK)
def _fashion_mnist(root: Path, *, download: bool, cache: bool) -> dict:
    return _idx_dataset("fashion-mnist", root, "FashionMNIST", FASHION_MNIST_CLASSES, download, cache)


def interleave_classes(labels: torch.Tensor) -> torch.Tensor:
    """The order that deals a split's images out class by class: the first image of each class (in label
    order), then the second of each, and so on, each class keeping its own order. An image-folder tree is
    stored class by class, so without it "the first N test images" would all be airplanes on CIFAR-10."""
    rank = torch.empty_like(labels)
    for c in labels.unique():
        where = (labels == c).nonzero().flatten()
        rank[where] = torch.arange(len(where))
    return torch.argsort(rank * (int(labels.max()) + 1) + labels, stable=True)


def _image_folder(name: str, source: Path, classes: tuple[str, ...] | None, cache: bool) -> dict:
    """The train split in file order (so seeded subsets stay what they were), the test split interleaved
    across classes (:func:`interleave_classes`), so that its first N images cover every class."""
    raw = _image_folder_files(name, source, classes, cache)
    order = interleave_classes(raw["test_labels"])
    return {**raw, "test_images": raw["test_images"][order].contiguous(), "test_labels": raw["test_labels"][order]}


def _image_folder_files(name: str, source: Path, classes: tuple[str, ...] | None, cache: bool) -> dict:
    if not source.exists():
        raise DataNotFoundError(f"{name}: no image-folder tree or zip at {source}")
    sources = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())

    def build() -> dict:
        index = index_image_folder(source, classes)
        files = index.files["train"] + index.files["test"]
        images, labels = decode_images(index, [f for f, _ in files]), [y for _, y in files]
        n = len(index.files["train"])
        return _raw(images[:n], labels[:n], images[n:], labels[n:], index.classes)

    return cached(name, sources, build, cache)


@register_dataset("cifar10", attack=CIFAR10_ATTACK)
def _cifar10(root: Path, *, download: bool, cache: bool) -> dict:
    batches = [root / "cifar-10-batches-py" / f"data_batch_{i}" for i in range(1, 6)]
    batches.append(root / "cifar-10-batches-py" / "test_batch")
    jpeg_zip = root / "cifar10-jpeg.zip"
    if download and not jpeg_zip.is_file() and not all(p.is_file() for p in batches):
        import torchvision

        torchvision.datasets.CIFAR10(str(root), download=True)
    if all(p.is_file() for p in batches):

        def build() -> dict:
            parts = [read_cifar_batch(p) for p in batches]
            train_x, train_y = (np.concatenate(a) for a in zip(*parts[:5]))
            return _raw(train_x, train_y, *parts[5], CIFAR10_CLASSES)

        return cached("cifar10-batches", batches, build, cache)
    if jpeg_zip.is_file():
        return _image_folder("cifar10-jpeg", jpeg_zip, CIFAR10_CLASSES, cache)
    raise DataNotFoundError(
        f"cifar10: expected {batches[0].parent}/ (data_batch_1..5, test_batch) or {jpeg_zip}; set root= or "
        "NOISEMOD_DATA to the folder that holds them, or pass download=True (needs internet)"
    )


@register_dataset("imagefolder")  # any images: no default attack radius (an adversarial run gives eps)
def _imagefolder(root: Path, *, download: bool, cache: bool) -> dict:
    return _image_folder("imagefolder", root, None, cache)


@register_dataset("digits", attack=CIFAR10_ATTACK)  # CIFAR-10's, as digits always had
def _digits(root: Path, *, download: bool, cache: bool) -> dict:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.floor(digits.images * (255 / 16) + 0.5).astype(np.uint8)[:, None]
    train, test = split_indices(len(images), DIGITS_TEST_SIZE, DIGITS_SPLIT_SEED)
    return _raw(images[train], digits.target[train], images[test], digits.target[test], MNIST_CLASSES)


def _pattern(k: int, u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Class ``k``'s pattern at image coordinates ``u`` (columns) and ``v`` (rows) in [0, 1]; values in {0, 1}."""
    du, dv = u - 0.5, v - 0.5
    r, box = (du**2 + dv**2).sqrt(), torch.maximum(du.abs(), dv.abs())
    shapes = [
        dv.abs() < 0.12,  # horizontal bar
        du.abs() < 0.12,  # vertical bar
        (du - dv).abs() < 0.12,  # diagonal
        (du + dv).abs() < 0.12,  # anti-diagonal
        (r - 0.3).abs() < 0.08,  # ring
        r < 0.25,  # disc
        (box > 0.22) & (box < 0.34),  # square outline
        (du.abs() < 0.1) | (dv.abs() < 0.1),  # cross
        ((u * 4).floor() + (v * 4).floor()) % 2 == 0,  # checkerboard
        (du < 0) & (dv < 0),  # top-left corner
    ]
    return shapes[k].float()


@register_dataset("synthetic", attack=CIFAR10_ATTACK)  # CIFAR-10's, as synthetic always had
def _synthetic(
    root: Path,
    *,
    download: bool,
    cache: bool,
    shape: tuple[int, int, int] = (1, 16, 16),
    n_train: int = 600,
    n_test: int = 200,
    num_classes: int = 10,
    data_seed: int = 0,
) -> dict:
    """Seeded images of simple shapes (bars, ring, disc, ...), randomly shifted, tinted and noised.

    Options, through ``load_dataset("synthetic", ...)``: ``shape`` (C, H, W), ``n_train`` and ``n_test`` images
    (classes balanced in each), ``num_classes`` (at most 10) and ``data_seed``, the seed of the images (the
    ``seed`` of :func:`load_dataset` only chooses the validation split).
    """
    c, h, w = shape
    if not 1 <= num_classes <= len(SYNTHETIC_CLASSES) or min(shape) < 1 or min(n_train, n_test) < 1:
        raise ValueError(f"synthetic: invalid {shape=}, {n_train=}, {n_test=}, {num_classes=}")
    g = torch.Generator().manual_seed(data_seed)
    n = n_train + n_test
    labels = torch.cat([(torch.arange(m) % num_classes)[torch.randperm(m, generator=g)] for m in (n_train, n_test)])
    shift = (torch.rand(2, n, 1, 1, generator=g) - 0.5) * 0.2
    v = torch.linspace(0, 1, h).view(1, h, 1) + shift[0]
    u = torch.linspace(0, 1, w).view(1, 1, w) + shift[1]
    images = torch.zeros(n, h, w)
    for k in range(num_classes):
        pick = labels == k
        images[pick] = _pattern(k, u.expand(n, h, w)[pick], v.expand(n, h, w)[pick])
    tint = 0.5 + 0.5 * torch.rand(n, c, 1, 1, generator=g)
    images = images[:, None] * tint + 0.08 * torch.randn(n, c, h, w, generator=g)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return _raw(images[:n_train], labels[:n_train], images[n_train:], labels[n_train:], SYNTHETIC_CLASSES[:num_classes])


def default_val_size(n_train: int) -> int:
    """5,000 images when the training set has at least 50,000 (MNIST, CIFAR-10), else 10% of it."""
    return 5000 if n_train >= 50_000 else n_train // 10


def load_dataset(
    name: str,
    root: str | os.PathLike | None = None,
    *,
    val_size: int | None = None,
    seed: int = 0,
    cache: bool = True,
    download: bool | None = None,
    **options,
) -> DataBundle:
    """Load a dataset as in-memory uint8 tensors, with a validation split carved from the training set.

    Args:
        name: one of :data:`DATASETS`: ``mnist``, ``fashion-mnist``, ``cifar10``, ``imagefolder``, ``digits``,
            ``synthetic`` (``_`` may stand for ``-``).
        root: the data root that holds one entry per dataset (``mnist/``, ``cifar10-jpeg.zip``, ...); default
            ``$NOISEMOD_DATA``, else ``~/.cache/noisemod/data``. For ``imagefolder``: the tree or zip itself.
        val_size: images moved from the training set to the validation set; default
            :func:`default_val_size`; 0 means no validation set.
        seed: seed of the validation split.
        cache: reuse (and write) decoded data under ``<cache_dir()>/datasets/``.
        download: fetch missing MNIST / Fashion-MNIST / CIFAR-10 files with torchvision (needs internet);
            default: ``$NOISEMOD_DOWNLOAD`` is ``1``, else False.
        **options: dataset options, e.g. ``shape=(3, 32, 32), n_train=1000, n_test=200`` for ``synthetic``.

    Returns:
        A :class:`DataBundle`.

    Raises:
        DataNotFoundError: the files are missing (the message says what is expected where).
        DataError: a file is corrupt or inconsistent (the message names it).
    """
    key = name.lower().replace("_", "-")
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    if key == "imagefolder" and root is None:
        raise ValueError("imagefolder needs root= the image-folder tree or zip")
    if download is None:
        download = os.environ.get("NOISEMOD_DOWNLOAD", "").lower() in ("1", "true", "yes")
    root = Path(root).expanduser() if root is not None else default_data_root()
    raw = DATASETS[key].load(root, download=download, cache=cache, **options)
    full_train = Split(raw["train_images"], raw["train_labels"])
    test = Split(raw["test_images"], raw["test_labels"])
    classes = tuple(raw["classes"])
    for split, labels in (("train", full_train.labels), ("test", test.labels)):
        if len(labels) and not 0 <= int(labels.min()) <= int(labels.max()) < len(classes):
            raise DataError(f"{key}: {split} labels outside 0..{len(classes) - 1}")
    n_val = default_val_size(len(full_train)) if val_size is None else val_size
    if not 0 <= n_val < len(full_train):
        raise ValueError(f"val_size must be between 0 and {len(full_train) - 1}, got {n_val}")
    train_idx, val_idx = split_indices(len(full_train), n_val, seed)
    train, val = full_train.take(train_idx), full_train.take(val_idx)
    mean, std = channel_stats(train.images)
    return DataBundle(key, train, val, test, classes, mean, std)
