"""Memory: peak resident memory (RSS) of a LeNet/MNIST training run and of a VII evaluation, and
the RSS after each epoch (no growth expected). Each measurement runs in a fresh process.

Run: ``python -m benchmarks.bench_memory --data-root ../shared/data [--epochs 3]``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

if __package__ in (None, ""):  # `python benchmarks/bench_memory.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.common import common_parser, print_header, print_ratio

GROWTH_TARGET = 1.05  # RSS after the last epoch / after the first

CHILD = r"""
import json, os, resource, sys
import noisemod

def rss_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

def peak_mb():
    # VmHWM: this process image's own peak. getrusage's ru_maxrss survives exec, so a child
    # started by a big parent (python -m benchmarks after bench_data) would report the parent's.
    try:
        with open("/proc/self/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

mode, root, epochs, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
per_epoch = []
if mode == "train":
    config = noisemod.TrainConfig(dataset="mnist", model="lenet", method="nm", epochs=epochs, data_root=root)
    def log(message: str) -> None:
        if message.startswith("epoch"):
            per_epoch.append(rss_mb())

    noisemod.fit(config, out, progress=False, log=log)
else:
    data = noisemod.load_dataset("mnist", root=root)
    model = noisemod.create_model("lenet", in_channels=1, num_classes=10, input_size=28, mean=data.mean, std=data.std)
    loader = noisemod.BatchLoader(data.test.images, data.test.labels, 512, shuffle=False)
    before = rss_mb()
    noisemod.vii(model, loader)
    per_epoch = [before, rss_mb()]
print(json.dumps({"per_epoch_mb": per_epoch, "peak_mb": peak_mb()}))
"""


def measure(mode: str, data_root: str, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = subprocess.run(
            [sys.executable, "-c", CHILD, mode, data_root, str(epochs), os.path.join(tmp, "run")],
            capture_output=True,
            text=True,
            check=True,
        )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("NOISEMOD_DATA", "../shared/data"))
    p.add_argument("--epochs", type=int, default=3)
    args = p.parse_args(argv)
    data_root = os.path.abspath(args.data_root)
    print_header("bench_memory: peak RSS of training and VII evaluation", "cpu")
    train = measure("train", data_root, 1 if args.quick else args.epochs)
    rss = train["per_epoch_mb"]
    print(
        f"-- LeNet/MNIST nm training, {len(rss)} epoch(s): peak RSS {train['peak_mb']:.0f} MiB; "
        f"RSS after each epoch: {', '.join(f'{v:.0f}' for v in rss)} MiB"
    )
    ok = print_ratio("RSS after the last epoch / after the first", rss[-1] / rss[0], GROWTH_TARGET)
    evaluation = measure("vii", data_root, 0)
    before, after = evaluation["per_epoch_mb"]
    print(
        f"-- VII of LeNet on the 10,000 MNIST test images: peak RSS {evaluation['peak_mb']:.0f} MiB "
        f"(RSS {before:.0f} MiB before, {after:.0f} MiB after)"
    )
    print(f"-- bench_memory: {int(ok)}/1 targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
