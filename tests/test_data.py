"""Tests of noisemod.data: formats, errors, splits, statistics, cache and BatchLoader."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import pickle
import struct
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import noisemod.data.cache as cache_module
from noisemod.data import (
    BatchLoader,
    DataError,
    DataNotFoundError,
    Split,
    TensorImageDataset,
    cache_dir,
    channel_stats,
    default_val_size,
    load_dataset,
)
from noisemod.data.datasets import interleave_classes
from noisemod.data.formats import load_pickle

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SESSION_CACHE = cache_dir()  # real data is decoded once per session (conftest.py's cache), not once per test
realdata = pytest.mark.realdata


@pytest.fixture(autouse=True)
def tmp_cache(tmp_path, monkeypatch):
    """Every test gets its own empty cache folder."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("NOISEMOD_CACHE", str(folder))
    monkeypatch.delenv("NOISEMOD_DATA", raising=False)
    monkeypatch.delenv("NOISEMOD_DOWNLOAD", raising=False)
    return folder


# ------------------------------------------------------------------------------------------------- IDX / MNIST


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write a uint8 IDX file (gzipped when the name ends in .gz)."""
    data = struct.pack(">I", 0x800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if path.suffix == ".gz" else data)
    return path


def make_mnist(folder: Path, ext: str = ".gz", n_train: int = 40, n_test: int = 12, seed: int = 0) -> dict:
    """Tiny random MNIST-like IDX files (5x4 images) in ``folder``; returns the arrays."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 5, 4), dtype=np.uint8),
        "train-labels-idx1-ubyte": (np.arange(n_train) % 10).astype(np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 5, 4), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": (np.arange(n_test) % 10).astype(np.uint8),
    }
    for name, a in arrays.items():
        write_idx(folder / f"{name}{ext}", a)
    return arrays


@pytest.mark.parametrize(
    ("name", "folder", "ext"),
    [
        ("mnist", "mnist", ".gz"),
        ("mnist", "mnist", ""),
        ("mnist", "MNIST/raw", ""),
        ("fashion-mnist", "FashionMNIST/raw", ".gz"),
    ],
)
def test_idx_round_trip(tmp_path, name, folder, ext):
    arrays = make_mnist(tmp_path / folder, ext)
    data = load_dataset(name, root=tmp_path, val_size=0)
    assert data.name == name and data.num_classes == 10 and data.in_channels == 1 and data.input_size == (5, 4)
    assert torch.equal(data.train.images[:, 0], torch.from_numpy(arrays["train-images-idx3-ubyte"]))
    assert torch.equal(data.test.images[:, 0], torch.from_numpy(arrays["t10k-images-idx3-ubyte"]))
    assert data.train.labels.dtype == torch.int64
    assert data.test.labels.tolist() == arrays["t10k-labels-idx1-ubyte"].tolist()
    assert data.train.images.is_contiguous() and len(data.val) == 0


def test_data_root_from_environment(tmp_path, monkeypatch):
    make_mnist(tmp_path / "mnist")
    monkeypatch.setenv("NOISEMOD_DATA", str(tmp_path))
    assert len(load_dataset("mnist", val_size=0).train) == 40


def test_missing_files_say_what_is_expected_where(tmp_path):
    with pytest.raises(DataNotFoundError, match="t10k-labels-idx1-ubyte") as e:
        load_dataset("mnist", root=tmp_path)
    assert str(tmp_path / "mnist") in str(e.value) and "MNIST/raw" in str(e.value)
    with pytest.raises(DataNotFoundError, match="cifar10-jpeg.zip"):
        load_dataset("cifar10", root=tmp_path)


def corrupt_truncated_gzip(folder: Path) -> Path:
    path = folder / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-30])
    return path


def corrupt_short_idx(folder: Path) -> Path:
    path = folder / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-7]))
    return path


def corrupt_magic(folder: Path) -> Path:
    path = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(path.read_bytes()))
    data[2] = 0x0D  # int32 instead of uint8
    path.write_bytes(gzip.compress(bytes(data)))
    return path


def corrupt_count(folder: Path) -> Path:
    return write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (corrupt_truncated_gzip, "gzip"),
        (corrupt_short_idx, "truncated"),
        (corrupt_magic, "magic"),
        (corrupt_count, "11 labels"),
    ],
)
def test_idx_corruption_names_the_file(tmp_path, corrupt, message):
    make_mnist(tmp_path / "mnist")
    path = corrupt(tmp_path / "mnist")
    with pytest.raises(DataError, match=message) as e:
        load_dataset("mnist", root=tmp_path)
    assert path.name in str(e.value)


def test_labels_out_of_range(tmp_path):
    make_mnist(tmp_path / "mnist")
    write_idx(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(DataError, match="labels outside"):
        load_dataset("mnist", root=tmp_path)


# ------------------------------------------------------------------------------------------------- image folders


def image_bytes(array: np.ndarray, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def make_tree_files(rgb: bool = True, size=(6, 5)) -> dict[str, np.ndarray]:
    """{relative path: pixels} of a small two-class image-folder tree."""
    rng = np.random.default_rng(1)
    shape = (*size, 3) if rgb else size
    layout = {"train/cat": 3, "train/ant": 2, "test/cat": 1, "test/ant": 2}
    return {
        f"{folder}/{i:02d}.png": rng.integers(0, 256, shape, dtype=np.uint8)
        for folder, n in layout.items()
        for i in range(n)
    }


def write_tree(root: Path, files: dict[str, np.ndarray | bytes]) -> Path:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content if isinstance(content, bytes) else image_bytes(content))
    return root


def write_zip(path: Path, files: dict[str, np.ndarray | bytes], prefix: str = "") -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for name, content in files.items():
            z.writestr(prefix + name, content if isinstance(content, bytes) else image_bytes(content))
    return path


def expected_split(files: dict[str, np.ndarray], split: str) -> tuple[torch.Tensor, list[int]]:
    """train: sorted by path; test: dealt out class by class (the first of each class, then the second, ...)."""
    names = sorted(n for n in files if n.startswith(f"{split}/"))
    if split == "test":
        names = sorted(
            names, key=lambda n: (sorted(m for m in names if m.split("/")[1] == n.split("/")[1]).index(n), n)
        )
    images = np.stack([files[n] if files[n].ndim == 3 else files[n][..., None] for n in names])
    return torch.from_numpy(images).permute(0, 3, 1, 2), [0 if "/ant/" in n else 1 for n in names]


@pytest.mark.parametrize("kind", ["tree", "zip", "zip-with-top-folder"])
def test_imagefolder(tmp_path, kind):
    files = make_tree_files()
    junk = {"train/cat/.DS_Store": b"junk", "test/notes.txt": b"junk"}  # ignored
    if kind == "tree":
        source = write_tree(tmp_path / "tree", {**files, **junk})
    else:
        source = write_zip(tmp_path / "data.zip", {**files, **junk}, prefix="mydata/" if kind != "zip" else "")
        with zipfile.ZipFile(source, "a") as z:
            z.writestr("__MACOSX/mydata/._x.png", b"junk")
    data = load_dataset("imagefolder", root=source, val_size=0)
    assert data.classes == ("ant", "cat") and data.in_channels == 3 and data.input_size == (6, 5)
    for split in ("train", "test"):
        images, labels = expected_split(files, split)
        assert torch.equal(getattr(data, split).images, images)
        assert getattr(data, split).labels.tolist() == labels


def test_interleave_classes_by_hand():
    labels = torch.tensor([0, 0, 0, 1, 2, 2])
    assert interleave_classes(labels).tolist() == [0, 3, 4, 1, 5, 2]  # 0 1 2, then 0 2, then 0
    assert interleave_classes(torch.tensor([3, 1, 3, 1])).tolist() == [1, 0, 3, 2]


def test_imagefolder_test_split_starts_with_every_class(tmp_path):
    # 3 classes stored class by class: the test split's first 3 images are one of each, in label order
    rng = np.random.default_rng(0)
    files = {f"{s}/{c}/{i}.png": rng.integers(0, 256, (4, 4), dtype=np.uint8) for s in ("train", "test")
             for c in ("a", "b", "c") for i in range(4)}  # fmt: skip
    data = load_dataset("imagefolder", root=write_tree(tmp_path / "t", files), val_size=0)
    assert data.test.labels.tolist() == [0, 1, 2] * 4
    assert data.train.labels.tolist() == [0] * 4 + [1] * 4 + [2] * 4  # training keeps its order (and subsets)
    assert torch.equal(data.test.images[1, 0], torch.from_numpy(files["test/b/0.png"]))


def test_spread_is_evenly_spaced_and_covers_a_sorted_split():
    split = Split(torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1), torch.arange(12) // 4)
    assert split.spread(3).images.flatten().tolist() == [0, 4, 8]
    assert split.spread(3).labels.tolist() == [0, 1, 2]
    assert split.spread(5).images.flatten().tolist() == [0, 2, 4, 7, 9]
    assert len(split.spread(100)) == 12


def test_imagefolder_grayscale_and_mixed_modes(tmp_path):
    gray = make_tree_files(rgb=False)
    assert load_dataset("imagefolder", root=write_tree(tmp_path / "gray", gray), val_size=0).in_channels == 1
    mixed = dict(gray, **{"train/cat/99.png": np.zeros((6, 5, 3), np.uint8)})
    data = load_dataset("imagefolder", root=write_tree(tmp_path / "mixed", mixed), val_size=0)
    first = data.train.images[0]  # train/ant/00.png, grayscale, repeated over the three channels
    assert data.in_channels == 3 and torch.equal(first, torch.from_numpy(gray["train/ant/00.png"]).expand(3, 6, 5))


def test_imagefolder_errors_name_the_file(tmp_path):
    files = make_tree_files()
    broken = dict(files, **{"train/cat/07.jpg": image_bytes(files["train/cat/00.png"], "JPEG")[:40]})
    with pytest.raises(DataError, match="train/cat/07.jpg") as e:
        load_dataset("imagefolder", root=write_zip(tmp_path / "broken.zip", broken))
    assert "broken.zip" in str(e.value)

    mixed = dict(files, **{"test/ant/05.png": np.zeros((7, 5, 3), np.uint8)})
    with pytest.raises(DataError, match=r"test/ant/05.png.*\(7, 5\).*\(6, 5\)"):
        load_dataset("imagefolder", root=write_tree(tmp_path / "mixed", mixed))

    empty = write_tree(tmp_path / "empty", files)
    (empty / "train" / "dog").mkdir()
    with pytest.raises(DataError, match="train/dog"):
        load_dataset("imagefolder", root=empty)

    with pytest.raises(DataError, match="train/<class>"):
        load_dataset("imagefolder", root=write_tree(tmp_path / "flat", {"a/b.png": files["train/cat/00.png"]}))


def test_imagefolder_parallel_decoding_matches(tmp_path):
    from noisemod.data.formats import decode_images, index_image_folder

    index = index_image_folder(write_zip(tmp_path / "d.zip", make_tree_files()))
    names = [n for n, _ in index.files["train"] + index.files["test"]]
    assert np.array_equal(decode_images(index, names, workers=2), decode_images(index, names, workers=1))


# ------------------------------------------------------------------------------------------------- CIFAR-10 batches


def make_cifar_batches(folder: Path, protocol: int, n: int = 4) -> np.ndarray:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(2)
    data = rng.integers(0, 256, (6, n, 3072), dtype=np.uint8)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        batch = {b"batch_label": name.encode(), b"labels": [i] * n, b"data": data[i], b"filenames": [b"x.png"] * n}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=protocol))
    return data.reshape(6, n, 3, 32, 32)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar_batches(tmp_path, protocol):
    data = make_cifar_batches(tmp_path / "cifar-10-batches-py", protocol)
    write_zip(tmp_path / "cifar10-jpeg.zip", {})  # the batches are preferred
    bundle = load_dataset("cifar10", root=tmp_path, val_size=0)
    assert bundle.classes[0] == "airplane" and bundle.num_classes == 10
    assert torch.equal(bundle.train.images, torch.from_numpy(data[:5].reshape(-1, 3, 32, 32)))
    assert torch.equal(bundle.test.images, torch.from_numpy(data[5]))
    assert bundle.train.labels.tolist() == [i for i in range(5) for _ in range(4)]


def test_unpickler_refuses_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Evil()}))
    with pytest.raises(DataError, match="data_batch_1.*system"):
        load_pickle(path)


# ------------------------------------------------------------------------------------------------- built-in sets


def test_digits():
    from sklearn.datasets import load_digits

    data = load_dataset("digits")
    assert (len(data.train), len(data.val), len(data.test)) == (1437 - 143, 143, 360)
    assert data.train.images.shape[1:] == (1, 8, 8) and data.num_classes == 10
    pixels = torch.cat([data.train.images, data.val.images, data.test.images]).flatten()
    assert set(pixels.unique().tolist()) <= {round(v * 255 / 16) for v in range(17)} and pixels.max() == 255
    assert sorted(pixels.tolist()) == sorted(round(v * 255 / 16) for v in load_digits().images.flatten().tolist())
    assert torch.equal(load_dataset("digits", seed=5).test.images, data.test.images)  # test split ignores seed


def test_synthetic_shapes_and_determinism():
    data = load_dataset("synthetic", shape=(3, 12, 10), n_train=50, n_test=20)
    assert data.train.images.shape == (45, 3, 12, 10) and len(data.val) == 5 and len(data.test) == 20
    again = load_dataset("synthetic", shape=(3, 12, 10), n_train=50, n_test=20)
    assert torch.equal(data.train.images, again.train.images)
    default = load_dataset("synthetic")
    assert default.train.images.shape[1:] == (1, 16, 16) and len(default.test) == 200
    assert sorted(Counter(default.test.labels.tolist()).values()) == [20] * 10


def test_synthetic_is_learnable():
    """A linear model separates the classes well above chance: the patterns carry the label."""
    data = load_dataset("synthetic")
    torch.manual_seed(0)
    model = torch.nn.Linear(256, 10)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    x, y = data.train.images.flatten(1).float() / 255, data.train.labels
    for _ in range(30):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    accuracy = (model(data.test.images.flatten(1).float() / 255).argmax(1) == data.test.labels).float().mean()
    assert accuracy > 0.8


def test_unknown_dataset_and_bad_options():
    with pytest.raises(ValueError, match="known: .*mnist"):
        load_dataset("imagenet")
    with pytest.raises(ValueError, match="imagefolder needs root"):
        load_dataset("imagefolder")
    with pytest.raises(TypeError):
        load_dataset("digits", shape=(1, 8, 8))


# ------------------------------------------------------------------------------------------------- splits, stats


def rows(split: Split) -> list[bytes]:
    return [bytes(r) for r in split.images.flatten(1).numpy()]


def test_val_split_disjoint_deterministic_and_sized():
    full = load_dataset("synthetic", val_size=0).train
    data = load_dataset("synthetic", val_size=100, seed=3)
    assert (len(data.train), len(data.val)) == (500, 100)
    assert not set(rows(data.train)) & set(rows(data.val))
    assert sorted(rows(data.train) + rows(data.val)) == sorted(rows(full))
    assert sorted(data.train.labels.tolist() + data.val.labels.tolist()) == sorted(full.labels.tolist())
    assert torch.equal(load_dataset("synthetic", val_size=100, seed=3).val.images, data.val.images)
    assert not torch.equal(load_dataset("synthetic", val_size=100, seed=4).val.images, data.val.images)
    assert len(load_dataset("synthetic").val) == 60
    assert (default_val_size(60_000), default_val_size(50_000), default_val_size(49_999)) == (5000, 5000, 4999)
    for bad in (-1, 600):
        with pytest.raises(ValueError, match="val_size"):
            load_dataset("synthetic", val_size=bad)


def test_mean_std_match_direct_computation():
    data = load_dataset("synthetic", shape=(3, 8, 8), n_train=300, n_test=10)
    x = data.train.images.double() / 255
    assert data.mean == pytest.approx(x.mean((0, 2, 3)).tolist(), abs=1e-12)
    assert data.std == pytest.approx(x.std((0, 2, 3), correction=0).tolist(), abs=1e-12)
    mean, std = channel_stats(data.train.images, chunk=7)
    assert mean == pytest.approx(data.mean) and std == pytest.approx(data.std)


def test_subset():
    split = load_dataset("synthetic", val_size=0).train
    small, large = split.subset(10, seed=1), split.subset(100, seed=1)
    assert len(small) == 10 and set(rows(small)) <= set(rows(large))
    assert torch.equal(split.subset(10, seed=1).images, small.images)
    assert not torch.equal(split.subset(10, seed=2).images, small.images)
    for bad in (0, len(split) + 1):
        with pytest.raises(ValueError, match="subset size"):
            split.subset(bad)


def test_split_validates():
    with pytest.raises(ValueError, match="uint8"):
        Split(torch.zeros(2, 1, 3, 3), torch.zeros(2, dtype=torch.int64))
    with pytest.raises(ValueError, match="labels"):
        Split(torch.zeros(2, 1, 3, 3, dtype=torch.uint8), torch.zeros(3, dtype=torch.int64))


# ------------------------------------------------------------------------------------------------- cache


def test_cache_hit_returns_identical_tensors(tmp_path, tmp_cache, monkeypatch):
    make_mnist(tmp_path / "mnist")
    first = load_dataset("mnist", root=tmp_path)
    assert len(list((tmp_cache / "datasets").glob("mnist-*.pt"))) == 1

    def fail(*args):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr("noisemod.data.datasets.read_idx_pair", fail)
    second = load_dataset("mnist", root=tmp_path)
    for split in ("train", "val", "test"):
        assert torch.equal(getattr(first, split).images, getattr(second, split).images)
        assert torch.equal(getattr(first, split).labels, getattr(second, split).labels)
    assert first.mean == second.mean
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("mnist", root=tmp_path, cache=False)
    # a changed source file is a cache miss
    stat = (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").stat()
    os.utime(tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz", ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("mnist", root=tmp_path)


def test_cache_write_is_atomic(tmp_path, tmp_cache, monkeypatch):
    make_mnist(tmp_path / "mnist")
    real_save = torch.save

    def crash(obj, f):
        f.write(b"half a cache entry")
        raise KeyboardInterrupt

    monkeypatch.setattr(cache_module.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("mnist", root=tmp_path)
    assert not list((tmp_cache / "datasets").iterdir())  # neither an entry nor a temporary file is left

    monkeypatch.setattr(cache_module.torch, "save", real_save)
    load_dataset("mnist", root=tmp_path)
    (entry,) = (tmp_cache / "datasets").iterdir()
    entry.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="rebuilding unreadable"):
        assert len(load_dataset("mnist", root=tmp_path).train) == 36
    assert torch.load(entry, weights_only=True)["train_images"].shape == (40, 1, 5, 4)


# ------------------------------------------------------------------------------------------------- BatchLoader


def index_split(n: int) -> Split:
    """Images whose pixels store their own index (n <= 65536): image i is (i // 256, i % 256)."""
    i = torch.arange(n)
    return Split(torch.stack([i // 256, i % 256], 1).to(torch.uint8).view(n, 2, 1, 1), i)


def seen(loader: BatchLoader) -> list[list[int]]:
    return [y.tolist() for _, y in loader]


def test_batch_loader_covers_every_index_once_and_keeps_last_batch():
    loader = BatchLoader.from_split(index_split(103), 10, seed=1)
    batches = seen(loader)
    assert len(loader) == len(batches) == 11 and len(batches[-1]) == 3
    assert sorted(sum(batches, [])) == list(range(103))
    drop = BatchLoader.from_split(index_split(103), 10, drop_last=True)
    assert len(drop) == 10 == len(seen(drop)) and {len(b) for b in seen(drop)} == {10}
    assert sum(seen(BatchLoader.from_split(index_split(103), 10, shuffle=False)), []) == list(range(103))


def test_batch_loader_values_and_dtypes():
    for x, y in BatchLoader.from_split(index_split(300), 64):
        assert x.dtype == torch.float32 and y.dtype == torch.int64 and x.shape[1:] == (2, 1, 1)
        assert 0 <= x.min() and x.max() <= 1
        assert torch.equal((x[:, 0, 0, 0] * 255).round() * 256 + (x[:, 1, 0, 0] * 255).round(), y.double().float())


def test_batch_loader_order_depends_on_seed_and_epoch():
    def order(seed: int, epoch: int) -> list[list[int]]:
        loader = BatchLoader.from_split(index_split(200), 16, seed=seed)
        loader.set_epoch(epoch)
        return seen(loader)

    assert order(0, 3) == order(0, 3)
    assert order(0, 3) != order(0, 4)
    assert order(0, 3) != order(1, 3)
    loader = BatchLoader.from_split(index_split(200), 16)
    assert seen(loader) == seen(loader)  # the epoch does not advance by itself


@pytest.mark.parametrize("drop_last", [False, True])
def test_batch_loader_rank_shards(drop_last):
    n, world = 103, 4
    shards = []
    for rank in range(world):
        loader = BatchLoader.from_split(index_split(n), 8, rank=rank, world_size=world, drop_last=drop_last)
        loader.set_epoch(2)
        shards.append(sum(seen(loader), []))
        assert len(seen(loader)) == len(loader)
    assert len({len(s) for s in shards}) == 1  # same work on every rank
    everything = sum(shards, [])
    if drop_last:  # 25 indices per rank, of which three full batches of 8
        assert len(everything) == len(set(everything)) == 4 * 24
    else:
        assert set(everything) == set(range(n)) and len(everything) == 104  # one index padded
        assert len(set(everything)) == n


@pytest.mark.parametrize(
    "device",
    ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))],
)
def test_batch_loader_resident_and_device_paths_agree(device):
    split = index_split(300)
    reference = BatchLoader.from_split(split, 32, seed=5)
    for resident in (False, True):
        loader = BatchLoader.from_split(split, 32, seed=5, device=device, resident=resident)
        for (x, y), (x_ref, y_ref) in zip(loader, reference, strict=True):
            assert x.device.type == device and y.device.type == device
            assert torch.equal(x.cpu(), x_ref) and torch.equal(y.cpu(), y_ref)


def test_tensor_image_dataset():
    split = index_split(300)
    dataset = TensorImageDataset(split)
    x, y = dataset[257]
    assert len(dataset) == 300 and y == 257 and isinstance(y, int)
    assert x.dtype == torch.float32 and torch.equal(x.flatten(), torch.tensor([1.0, 1.0]) / 255)


# ------------------------------------------------------------------------------------------------- real data


@realdata
@pytest.mark.skipif(not (SHARED_DATA / "mnist").is_dir(), reason="needs ../shared/data/mnist")
def test_real_mnist(monkeypatch):
    monkeypatch.setenv("NOISEMOD_CACHE", str(SESSION_CACHE))
    data = load_dataset("mnist", root=SHARED_DATA)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert data.train.images.shape[1:] == (1, 28, 28) and data.input_size == (28, 28)
    counts = Counter(data.train.labels.tolist()) + Counter(data.val.labels.tolist())
    assert [counts[i] for i in range(10)] == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    header = struct.pack(">IIII", 2051, 10000, 28, 28)
    assert hashlib.md5(header + data.test.images.numpy().tobytes()).hexdigest() == "2646ac647ad5339dbf082846283269ea"
    assert data.mean[0] == pytest.approx(0.1307, abs=2e-3) and data.std[0] == pytest.approx(0.3081, abs=2e-3)


@pytest.mark.slow
@realdata
@pytest.mark.skipif(not (SHARED_DATA / "cifar10-jpeg.zip").is_file(), reason="needs ../shared/data/cifar10-jpeg.zip")
def test_real_cifar10_jpeg(monkeypatch):
    monkeypatch.setenv("NOISEMOD_CACHE", str(SESSION_CACHE))
    data = load_dataset("cifar10", root=SHARED_DATA)
    assert (len(data.train), len(data.val), len(data.test)) == (45000, 5000, 10000)
    assert data.train.images.shape[1:] == (3, 32, 32) and data.classes[0] == "airplane"
    assert Counter(data.test.labels.tolist()) == {i: 1000 for i in range(10)}
