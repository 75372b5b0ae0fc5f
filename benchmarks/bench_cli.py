"""What a user waits for: whole ``noisemod train`` commands, interleaved, end to end.

For the MLP and LeNet on a seeded subset of MNIST, one epoch, three ways: standard, nm (torch's
generator) and nm ``--fused-noise`` (the compiled counter-based path). Each command is a fresh
process: Python and torch start-up, data loading, the fused kernel's compilation (with
``--fused-noise``), the epoch, and the evaluation. Round 1 runs with empty caches (the fused
kernel's package, ``NOISEMOD_CACHE``, and torch.compile's, ``TORCHINDUCTOR_CACHE_DIR``, in a new
folder), the later rounds with what the first left, which is what a second run on the same
machine sees. Reported: median wall time per command,
``train_seconds`` and ``compile_seconds`` from result.json, and the ratios to standard.

Target: ``--fused-noise`` never slower end to end than the default nm path with a warm cache.

Run: ``python -m benchmarks.bench_cli --data-root ../shared/data [--quick]``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_cli.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import common_parser, print_header, print_ratio

CASES = {
    "standard": ["--method", "standard"],
    "nm": ["--method", "nm"],
    "nm-fused": ["--method", "nm", "--fused-noise"],
}


def command(model: str, case: str, out: Path, data_root: str, train_size: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "noisemod",
        "train",
        "--dataset",
        "mnist",
        "--data-root",
        data_root,
        "--model",
        model,
        *CASES[case],
        "--epochs",
        "1",
        "--train-size",
        str(train_size),
        "--no-tensorboard",
        "--quiet",
        "--out",
        str(out),
    ]


def run_once(cmd: list[str], env: dict) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {proc.stderr[-1000:]}")
    result = json.loads((Path(cmd[-1]) / "result.json").read_text())
    return {"wall": wall, "train": result["train_seconds"], "compile": result["compile_seconds"]}


def main(argv=None) -> int:
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("NOISEMOD_DATA", "../shared/data"))
    p.add_argument("--train-size", type=int, default=None, help="training images (default 20000; quick 5000)")
    args = p.parse_args(argv)
    rounds = args.repeats or (2 if args.quick else 4)
    size = args.train_size or (5000 if args.quick else 20000)
    print_header(f"bench_cli: noisemod train end to end, 1 epoch on {size} MNIST images, {rounds} rounds", "cpu")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "TORCHINDUCTOR_CACHE_DIR": str(Path(tmp) / "inductor-cache"),
            "NOISEMOD_CACHE": str(Path(tmp) / "noisemod-cache"),
        }
        # one untimed command decodes MNIST into the new cache folder, so round 1 times no decoding
        run_once(command("mlp", "standard", Path(tmp) / "fill-data-cache", args.data_root, size), env)
        for model in ("mlp", "lenet"):
            samples = {case: [] for case in CASES}
            for r in range(rounds):
                order = list(CASES) if r % 2 == 0 else list(CASES)[::-1]
                for case in order:
                    out = Path(tmp) / f"{model}-{case}-{r}"
                    samples[case].append(run_once(command(model, case, out, args.data_root, size), env))
            cold = samples["nm-fused"][0]
            warm = {case: [s for s in v[1:]] or v for case, v in samples.items()}  # round 1 filled the cache
            med = {
                case: {k: statistics.median(s[k] for s in v) for k in ("wall", "train", "compile")}
                for case, v in warm.items()
            }
            print(f"-- {model}: cold cache, --fused-noise: wall {cold['wall']:.2f} s, compile {cold['compile']:.2f} s")
            for case, m in med.items():
                print(
                    f"    {case:<9} wall {m['wall']:6.2f} s  train {m['train']:6.2f} s  compile {m['compile']:5.2f} s  "
                    f"wall / standard {m['wall'] / med['standard']['wall']:.3f}  "
                    f"train / standard {m['train'] / med['standard']['train']:.3f}"
                )
            ok &= print_ratio(
                f"{model}: --fused-noise / nm wall time, warm cache", med["nm-fused"]["wall"] / med["nm"]["wall"], 1.0
            )
    print(f"-- bench_cli: {'the fused path never lost' if ok else 'the fused path lost somewhere'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
