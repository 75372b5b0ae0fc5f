"""Interpretability metrics and explainers: cost on 1,000 MNIST test images, side by side.

a. Each explainer (``noisemod.explainers``) on a LeNet: ms per image.
b. Each metric of ``noisemod.metrics.interpretability`` given the gradient's attributions: ms per image
   (``score_alignment``, ``class_score_alignment`` with the cached class-conditional MNIST denoiser
   at its default sigma, its forward included;
   skipped when none is built: ``noisemod denoiser train --dataset mnist``).
c. Deletion (pixel flipping, 16 steps of 49 pixels, black baseline) against Quantus 0.6.0's
   ``PixelFlipping`` on the same model, images and attributions, interleaved; the curves must agree
   (max difference printed). Target: noisemod at least 20x faster.

Captum has no pixel-flipping, alignment or VII metric to compare with (its ``captum.metrics`` are
infidelity and max-sensitivity), so the Captum side is the explainers themselves (a.).

Run: ``python -m benchmarks.bench_metrics --data-root ../shared/data [--quick]``.
"""

from __future__ import annotations

import os
import sys
import time
import warnings

if __package__ in (None, ""):  # `python benchmarks/bench_metrics.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np
import torch

from benchmarks.common import common_parser, compare, print_header, print_ratio, print_times
from noisemod.data import load_dataset
from noisemod.explainers import explain, list_explainers
from noisemod.metrics import METRICS, flip_curves, interpretability
from noisemod.models import create_model

QUANTUS_TARGET = 20.0
STEPS = 16  # 784 = 16 x 49: Quantus needs whole steps


def lenet(data):
    torch.manual_seed(0)
    model = create_model("lenet", in_channels=1, num_classes=10, input_size=28, mean=data.mean, std=data.std)
    return model.eval()


def once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_explainers(model, x, y) -> None:
    print(f"-- a. explainers on {len(x)} images, LeNet: ms per image")
    for name in list_explainers():
        explain(model, x[:16], y[:16], name)  # warm up
        seconds = min(once(lambda name=name: explain(model, x, y, name)) for _ in range(2))
        print(f"    {name:<22} {1000 * seconds / len(x):8.3f}")


def _mnist_score():
    from noisemod.denoiser import DEFAULT_SCORE_SIGMA, DenoiserError, score_function

    try:
        return score_function("mnist", DEFAULT_SCORE_SIGMA, conditional=True)
    except DenoiserError as e:
        print(f"    score_alignment, class_score_alignment skipped: {e}")
        return None


def bench_metrics(model, x, y) -> None:
    a = explain(model, x, y, "gradient")
    print(f"-- b. metrics on {len(x)} images, attributions given: ms per image")
    score = _mnist_score()
    for metric in METRICS:
        if metric.endswith("score_alignment") and score is None:
            continue
        seconds = min(
            once(lambda metric=metric: interpretability(model, x, y, metrics=[metric], attributions=a, score=score))
            for _ in range(2)
        )
        print(f"    {metric:<22} {1000 * seconds / len(x):8.3f}")


def bench_quantus(model, x, y, repeats: int) -> bool:
    try:
        import quantus
    except ImportError:
        print("-- c. skipped: quantus is not installed (pip install quantus==0.6.0)")
        return True
    warnings.filterwarnings("ignore")
    a = explain(model, x, y, "gradient").neg()  # evidence for the class, as noisemod's deletion ranks by
    metric = quantus.PixelFlipping(
        features_in_step=x[0].numel() // STEPS, perturb_baseline="black", normalise=False, disable_warnings=True
    )
    xs, ys, As = x.numpy(), y.numpy(), a.numpy()

    def theirs():
        return np.array(metric(model=model, x_batch=xs, y_batch=ys, a_batch=As, device="cpu", softmax=True))

    def ours():
        return flip_curves(model, x, y, a, steps=STEPS)

    diff = np.abs(ours()[:, 1:].numpy() - theirs()).max()
    times = compare({"noisemod deletion": ours, "quantus PixelFlipping": theirs}, repeats=repeats, warmup=1)
    print(f"-- c. deletion curves of {len(x)} images, {STEPS} steps: max |noisemod - quantus| = {diff:.2e}")
    print_times(times)
    return print_ratio(
        "quantus / noisemod time", times["quantus PixelFlipping"] / times["noisemod deletion"], QUANTUS_TARGET, "higher"
    )


def main(argv=None) -> int:
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("NOISEMOD_DATA", "../shared/data"))
    args = p.parse_args(argv)
    n = 200 if args.quick else 1000
    print_header(f"bench_metrics: interpretability metrics and explainers, {n} MNIST test images", "cpu")
    data = load_dataset("mnist", root=args.data_root)
    model = lenet(data)
    x, y = data.test.images[:n].float() / 255, data.test.labels[:n]
    bench_explainers(model, x, y)
    bench_metrics(model, x, y)
    ok = bench_quantus(model, x, y, args.repeats or (2 if args.quick else 3))
    print(f"-- bench_metrics: {int(ok)}/1 target groups met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
