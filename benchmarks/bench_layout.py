"""How a sweep should split the CPU cores: every core to one run, or one run per core.

``noisemod sweep --jobs J`` runs J runs at once, each with cores // J torch threads (the local
executor's environment, reused here). This benchmark times both ends on the protocol's costliest
run, the FCNN on CIFAR-10 with nm: one ``noisemod train`` command of one epoch with every core,
and as many one-thread commands at once as there are cores, interleaved over rounds. Reported per
layout: the median epoch time of a run (``train_seconds``), the wall time of the whole layout
(fresh processes: start-up and data loading included), and the training images per second of the
layout; then the throughput of one run per core over that of one run with every core.

Target: one run per core trains at least as many images per second as one run with every core
(the protocol's sweeps use ``--jobs`` equal to the cores).

Run: ``python -m benchmarks.bench_layout --data-root ../shared/data [--quick]``.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_layout.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.bench_cli import run_once
from benchmarks.common import common_parser, print_header, print_ratio


def command(out: Path, data_root: str, train_size: int, seed: int) -> list[str]:
    return [
        sys.executable, "-m", "noisemod", "train", "--dataset", "cifar10", "--data-root", data_root,
        "--model", "fcnn", "--method", "nm", "--optimizer", "adam", "--lr", "0.001", "--batch-size", "64",
        "--epochs", "1", "--train-size", str(train_size), "--seed", str(seed), "--no-tensorboard", "--quiet",
        "--out", str(out),
    ]  # fmt: skip


def run_layout(jobs: int, cores: int, tmp: Path, tag: str, data_root: str, size: int) -> dict:
    """``jobs`` commands at once, each in the environment the local executor gives its slot."""
    from noisemod.experiments.executors import LocalExecutor

    executor = LocalExecutor(jobs, gpus=0)
    envs = [{**os.environ, **executor.slot_env(slot, jobs)} for slot in range(jobs)]
    cmds = [command(tmp / f"{tag}-{slot}", data_root, size, seed=slot) for slot in range(jobs)]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        runs = list(pool.map(run_once, cmds, envs))
    wall = time.perf_counter() - t0
    epoch = statistics.median(r["train"] for r in runs)
    return {"epoch": epoch, "wall": wall, "images_per_s": jobs * size / epoch, "threads": executor.threads(jobs)}


def main(argv=None) -> int:
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("NOISEMOD_DATA", "../shared/data"))
    p.add_argument("--train-size", type=int, default=None, help="training images (default 10000; quick 2000)")
    args = p.parse_args(argv)
    rounds = args.repeats or (2 if args.quick else 3)
    size = args.train_size or (2000 if args.quick else 10000)
    from noisemod.experiments.executors import LocalExecutor

    cores = LocalExecutor(1, gpus=0).threads(1)  # the executor's count of this machine's cores: one run gets them all
    layouts = {"one run, every core": 1, "one run per core": cores}
    print_header(f"bench_layout: FCNN/CIFAR-10 nm, 1 epoch on {size} images, {cores} cores, {rounds} rounds", "cpu")
    with tempfile.TemporaryDirectory() as tmp:
        run_once(command(Path(tmp) / "warm-up", args.data_root, size, seed=0), dict(os.environ))  # decode, cache
        samples = {name: [] for name in layouts}
        for r in range(rounds):
            for name in list(layouts) if r % 2 == 0 else list(layouts)[::-1]:
                samples[name].append(
                    run_layout(layouts[name], cores, Path(tmp), f"{r}-{layouts[name]}", args.data_root, size)
                )
    med = {name: {k: statistics.median(s[k] for s in v) for k in v[0]} for name, v in samples.items()}
    for name, m in med.items():
        print(
            f"    {name:<20} {layouts[name]} run(s) x {m['threads']:.0f} thread(s): epoch {m['epoch']:6.2f} s  "
            f"layout wall {m['wall']:6.2f} s  {m['images_per_s']:7.1f} images/s"
        )
    ratio = med["one run per core"]["images_per_s"] / med["one run, every core"]["images_per_s"]
    ok = print_ratio("one run per core / one run with every core, training images per second", ratio, 1.0, "higher")
    print(f"-- bench_layout: {'one run per core' if ok else 'one run with every core'} trains faster")
    return 0


if __name__ == "__main__":
    sys.exit(main())
