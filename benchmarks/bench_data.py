"""Data pipeline: one MNIST epoch of LeNet training (Adam, lr 1e-3, batch 64), end to end,

with noisemod's in-memory pipeline (``load_dataset`` + ``BatchLoader``) against torchvision's
``MNIST`` + ``DataLoader(ToTensor, Normalize)`` with ``num_workers`` 0, 1 and 2, measured side by
side and interleaved in one run. Both train on all 60,000 training images (no validation split)
with the same model, seed and torch's default thread count. Target: noisemod at least 2x faster
than the fastest torchvision setting. Also reports the cost of the data alone (an epoch of
batches without training) and cold / warm ``load_dataset`` times.

End to end (the issue's figure): the training time of one epoch of ``noisemod.fit`` (the whole
trainer: its loader, fused optimizer and bookkeeping; ``train_seconds``, evaluation excluded)
against the plain loop above over torchvision at its best ``num_workers`` (default Adam),
interleaved, with the default memory format and with ``channels_last=True``. Target: at least 2x.

Run: ``python benchmarks/bench_data.py --data-root ../shared/data [--repeats N] [--quick]``.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_data.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from benchmarks.common import common_parser, compare, fmt_time, print_header, print_ratio, print_times
from noisemod import TrainConfig, fit
from noisemod.data import BatchLoader, load_dataset
from noisemod.models import create_model

TARGET = 2.0
BATCH_SIZE = 64
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def torchvision_root(data_root: Path, folder: Path) -> Path:
    """Lay out ``folder/MNIST/raw/`` with the uncompressed IDX files, where torchvision's ``MNIST`` finds them.

    Its ``_check_exists`` only checks that the uncompressed files are there, so nothing is downloaded (the
    ``.gz`` files here differ from the originals, so their md5 would not match a download check).
    """
    raw = folder / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in IDX_FILES:
        with gzip.open(data_root / "mnist" / f"{name}.gz") as src, open(raw / name, "wb") as dst:
            shutil.copyfileobj(src, dst)
    return folder


def train_epoch(batches, mean, std, max_batches: int | None, device) -> int:
    """Train a fresh LeNet for one pass over ``batches``; returns the number of steps."""
    torch.manual_seed(0)
    model = create_model("lenet", in_channels=1, num_classes=10, input_size=28, mean=mean, std=std).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    model.train()
    steps = 0
    for x, y in batches:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()
        steps += 1
        if steps == max_batches:
            break
    return steps


def data_only(batches, max_batches: int | None, device) -> None:
    for i, (x, _) in enumerate(batches, 1):
        x.to(device)
        if i == max_batches:
            break


def timed(fn):
    t0 = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - t0


def main() -> None:
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument(
        "--data-root",
        type=Path,
        default=Path(os.environ.get("NOISEMOD_DATA", "../shared/data")),
        help="folder holding mnist/ (default: $NOISEMOD_DATA, else ../shared/data)",
    )
    args = p.parse_args()
    repeats = args.repeats or (1 if args.quick else 3)
    max_batches = 150 if args.quick else None
    device = torch.device(args.device)
    print_header("data pipeline: one MNIST epoch of LeNet training, batch 64", device)

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NOISEMOD_CACHE"] = str(Path(tmp) / "cache")  # cold, then warm, in a cache of our own
        _, cold = timed(lambda: load_dataset("mnist", root=args.data_root, val_size=0))
        data, warm = timed(lambda: load_dataset("mnist", root=args.data_root, val_size=0))
        print(f"load_dataset('mnist'): cold (decode + cache write) {fmt_time(cold)}, warm (cache) {fmt_time(warm)}")
        tv_set, tv_load = timed(
            lambda: datasets.MNIST(
                str(torchvision_root(args.data_root, Path(tmp) / "tv")),
                train=True,
                transform=transforms.Compose([transforms.ToTensor(), transforms.Normalize(data.mean, data.std)]),
            )
        )
        print(f"torchvision MNIST(train=True) construction (raw files present): {fmt_time(tv_load)}")

        ours = BatchLoader.from_split(data.train, BATCH_SIZE, shuffle=True, seed=0, device=device)
        pin = device.type == "cuda"
        tv = {
            w: DataLoader(tv_set, BATCH_SIZE, shuffle=True, num_workers=w, pin_memory=pin, persistent_workers=w > 0)
            for w in (0, 1, 2)
        }
        epochs = iter(range(10**6))

        def run_ours():
            ours.set_epoch(next(epochs))
            return train_epoch(ours, data.mean, data.std, max_batches, device)

        cases = {"noisemod BatchLoader": run_ours}
        for w, loader in tv.items():  # torchvision normalizes in the transform, so the model's is the identity
            cases[f"torchvision DataLoader num_workers={w}"] = lambda loader=loader: train_epoch(
                loader, None, None, max_batches, device
            )
        steps = run_ours()
        print(f"\ntraining: {steps} steps per epoch, {repeats} interleaved round(s)")
        times = compare(cases, repeats=repeats, warmup=0, device=device)
        print_times(times)
        best_tv = min((n for n in times if n.startswith("torchvision")), key=times.get)

        data_cases = {
            "noisemod BatchLoader": lambda: data_only(ours, max_batches, device),
            best_tv: lambda: data_only(tv[int(best_tv[-1])], max_batches, device),
        }
        print("\ndata only (the same epoch of batches, no training):")
        print_times(compare(data_cases, repeats=repeats, warmup=0, device=device))
        ours_time = times["noisemod BatchLoader"]
        ours_total, tv_total = warm + ours_time, tv_load + times[best_tv]
        print(
            f"\nwith setup (warm load_dataset / torchvision MNIST construction): noisemod {fmt_time(ours_total)}, "
            f"{best_tv} {fmt_time(tv_total)}: {tv_total / ours_total:.3g}x"
        )
        print_ratio(f"speed-up of one training epoch vs {best_tv}", times[best_tv] / ours_time, TARGET, better="higher")

        if max_batches is None and device.type == "cpu":
            config = TrainConfig(dataset="mnist", model="lenet", epochs=1, val_size=0, data_root=str(args.data_root))
            fits = {"noisemod.fit": config, "noisemod.fit --channels-last": config.replace(channels_last=True)}
            samples = {name: [] for name in (*fits, "plain")}
            for r in range(repeats):
                for i, (name, c) in enumerate(fits.items()):
                    run = fit(c, Path(tmp) / f"fit-{r}-{i}", progress=False, log=lambda *_: None)
                    samples[name].append(run["train_seconds"])
                samples["plain"].append(timed(lambda: train_epoch(tv[int(best_tv[-1])], None, None, None, device))[1])
            t = {name: sorted(v)[len(v) // 2] for name, v in samples.items()}
            print(
                f"\nend to end, one epoch: plain loop over {best_tv} {fmt_time(t['plain'])}; "
                + ", ".join(f"{name} (train_seconds) {fmt_time(t[name])}" for name in fits)
            )
            for name in fits:
                print_ratio(
                    f"speed-up of {name} vs a plain loop over {best_tv}", t["plain"] / t[name], TARGET, better="higher"
                )


if __name__ == "__main__":
    main()
