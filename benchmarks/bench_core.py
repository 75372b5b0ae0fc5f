"""Core costs, measured side by side in one run (CPU by default):

a. noise modulation of a batch (draw the Gaussian carrier + ``modulate(check=False)``, i.e.
   ``NoiseModulation(0.5, check=False).train()(x)``, and the fused path, ``fused=True``) relative
   to one LeNet training step (forward, cross-entropy, backward, Adam step) on the same batch.
   Target: < 3%.
b. ``noisemod.vii`` throughput relative to a bare input-gradient pass (eval mode, frozen
   parameters, forward + summed cross-entropy + ``autograd.grad`` w.r.t. the input) over the
   same batches. Target: vii time / bare time <= 1.2 (with the mean-image pass included, and
   also reported with ``mean=`` given).

Run: ``python -m benchmarks.bench_core [--device cpu] [--repeats N] [--quick]``.
"""

from __future__ import annotations

import os
import sys

if __package__ in (None, ""):  # `python benchmarks/bench_core.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as F

import noisemod
from benchmarks.common import common_parser, compare, print_header, print_ratio, print_times
from noisemod.models import create_model
from noisemod.modulation import NoiseModulation, modulate, sample_carrier

MOD_TARGET = 0.03
VII_TARGET = 1.2


# --- a. modulation vs a LeNet step ------------------------------------------------------------


def bench_modulation(shape, device, repeats: int) -> dict:
    B, C, H, _ = shape
    torch.manual_seed(0)
    x = torch.rand(shape, device=device)
    y = torch.randint(0, 10, (B,), device=device)
    model = create_model("lenet", in_channels=C, num_classes=10, input_size=H).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    nm = NoiseModulation(0.5, check=False).train()
    fused = NoiseModulation(0.5, check=False, fused=True).train()
    fused(x)  # compile outside the timed rounds

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    def step_nm():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(nm(x)), y)
        loss.backward()
        opt.step()

    cases = {
        "lenet step (fwd+CE+bwd+Adam)": step,
        "lenet step with NoiseModulation": step_nm,
        "NoiseModulation(0.5, check=False)": lambda: nm(x),
        "NoiseModulation(0.5, check=False, fused=True)": lambda: fused(x),
        "  sample_carrier only": lambda: sample_carrier(x.shape, 0.5, device=x.device, dtype=torch.float32),
        "  torch.randn only (RNG floor)": lambda: torch.randn(x.shape, device=x.device),
    }
    carrier = sample_carrier(x.shape, 0.5, device=x.device, dtype=torch.float32)
    cases["  modulate(x, c, check=False) only"] = lambda: modulate(x, carrier, check=False)
    # the modulation cases are short: time 5 calls per sample (the same for every case, so the
    # rounds stay interleaved at the same granularity)
    times = compare(cases, repeats=repeats, warmup=3, device=device, inner=5)
    label = "x".join(map(str, shape))
    print(f"-- a. modulation vs one LeNet training step, batch {label}, {device}")
    print_times(times)
    step_t = times["lenet step (fwd+CE+bwd+Adam)"]
    ok = print_ratio(
        f"modulation / LeNet step ({label})", times["NoiseModulation(0.5, check=False)"] / step_t, MOD_TARGET
    )
    print_ratio(
        f"fused modulation / LeNet step ({label})",
        times["NoiseModulation(0.5, check=False, fused=True)"] / step_t,
        MOD_TARGET,
    )
    print(
        f"fused / default modulation ({label}): "
        f"{times['NoiseModulation(0.5, check=False, fused=True)'] / times['NoiseModulation(0.5, check=False)']:.3g}"
    )
    print_ratio(
        f"  [end-to-end] (step with NM - step) / step ({label})",
        times["lenet step with NoiseModulation"] / step_t - 1.0,
        MOD_TARGET,
    )
    print_ratio(
        f"  [floor] torch.randn alone / LeNet step ({label})",
        times["  torch.randn only (RNG floor)"] / step_t,
        MOD_TARGET,
    )
    return {"ok": ok, "times": times}


# --- b. VII vs a bare input-gradient pass ----------------------------------------------------


def bare_input_gradients(model, batches):
    """The floor: forward + summed cross-entropy + grad w.r.t. the input, batch by batch."""
    out = []
    for x, y in batches:
        x = x.detach().requires_grad_()
        loss = F.cross_entropy(model(x), y, reduction="sum")
        (g,) = torch.autograd.grad(loss, x)
        out.append(g)
    return out


def bench_vii(device, repeats: int, n: int = 2048, batch_size: int = 256) -> dict:
    torch.manual_seed(0)
    x = torch.rand(n, 1, 28, 28, device=device)
    y = torch.randint(0, 10, (n,), device=device)
    model = create_model("lenet", in_channels=1, num_classes=10, input_size=28).to(device)
    mean = x.double().mean(0)
    batches = [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, n, batch_size)]

    frozen = create_model("lenet", in_channels=1, num_classes=10, input_size=28).to(device)
    frozen.load_state_dict(model.state_dict())
    frozen.eval()
    for p in frozen.parameters():
        p.requires_grad_(False)

    saliency = captum_saliency(model)
    cases = {
        "bare fwd+bwd (input-grad only)": lambda: bare_input_gradients(frozen, batches),
        "vii(model, x, y, batch_size=256)": lambda: noisemod.vii(model, x, y, batch_size=batch_size),
        "vii(..., mean=mean)": lambda: noisemod.vii(model, x, y, mean=mean, batch_size=batch_size),
    }
    if saliency is not None:
        cases["captum Saliency, per-sample loss (grads only)"] = lambda: [saliency(x, y) for x, y in batches]
    times = compare(cases, repeats=repeats, warmup=2, device=device)
    print(f"-- b. VII vs bare input-gradient pass, LeNet 1x28x28, {n} images, batch {batch_size}, {device}")
    print_times(times)
    bare = times["bare fwd+bwd (input-grad only)"]
    for name in ("vii(model, x, y, batch_size=256)", "vii(..., mean=mean)"):
        print(f"    {name}: {n / times[name]:,.0f} samples/s (bare: {n / bare:,.0f} samples/s)")
    ok1 = print_ratio("vii / bare (mean computed)", times["vii(model, x, y, batch_size=256)"] / bare, VII_TARGET)
    ok2 = print_ratio("vii / bare (mean= given)", times["vii(..., mean=mean)"] / bare, VII_TARGET)
    ok3 = True
    if saliency is not None:
        ok3 = print_ratio(
            "vii / captum Saliency gradients",
            times["vii(model, x, y, batch_size=256)"] / times["captum Saliency, per-sample loss (grads only)"],
            1.0,
        )
    return {"ok": ok1 and ok2 and ok3, "times": times}


def captum_saliency(model):
    """Captum's batched ``Saliency`` on a wrapper whose output is the per-sample loss (eval mode,
    as noisemod uses), or None when captum is not installed."""
    try:
        from captum.attr import Saliency
    except ImportError:
        print("    (captum not installed: the Saliency comparison is skipped)")
        return None
    import warnings

    model = model.eval()
    attribution = Saliency(lambda inp, target: F.cross_entropy(model(inp), target, reduction="none"))

    def run(x, y):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Input Tensor 0 did not already require gradients"
            return attribution.attribute(x, additional_forward_args=(y,), abs=False)

    return run


def main(argv=None) -> int:
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch intra-op threads (default: torch's default; 1 gives steadier numbers on a busy machine)",
    )
    args = p.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    rep_a = args.repeats or (15 if args.quick else 60)
    rep_b = args.repeats or (5 if args.quick else 15)
    print_header("bench_core: noise modulation and VII costs", device)
    results = [bench_modulation(shape, device, rep_a) for shape in ((64, 1, 28, 28), (64, 3, 32, 32))]
    results.append(bench_vii(device, rep_b, n=1024 if args.quick else 2048))
    missed = sum(not r["ok"] for r in results)
    print(f"-- bench_core: {len(results) - missed}/{len(results)} targets met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
