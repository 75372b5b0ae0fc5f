"""Shared timing helpers for the benchmarks.

Other work may load the machine while a benchmark runs, so absolute times are noisy: every
benchmark measures the things it compares side by side, interleaved (A B A B ...), and reports
the ratio of medians. Torch's default thread count is kept.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping

import torch

__all__ = ["Timing", "common_parser", "compare", "print_header", "print_ratio", "sync"]


class Timing(float):
    """Median seconds of one case (a float), with ``.iqr`` (seconds) and ``.samples``."""

    iqr: float
    samples: list

    def __new__(cls, samples):
        samples = sorted(samples)
        obj = super().__new__(cls, statistics.median(samples))
        if len(samples) >= 4:
            q = statistics.quantiles(samples, n=4)
            obj.iqr = q[2] - q[0]
        else:
            obj.iqr = samples[-1] - samples[0]
        obj.samples = samples
        return obj


def sync(device=None) -> None:
    """Wait for the device (a no-op on CPU)."""
    dev = torch.device(device) if device is not None else None
    if (dev is None or dev.type == "cuda") and torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize(dev)


def compare(
    cases: Mapping[str, Callable[[], object]], repeats: int = 30, warmup: int = 3, device=None, inner: int = 1
) -> dict[str, Timing]:
    """Time each callable, interleaved round by round, and return the median seconds per call.

    Args:
        cases: name -> zero-argument callable.
        repeats: timed rounds; each round calls every case once (``inner`` times), in turn.
        warmup: untimed rounds first.
        device: the device to synchronize before and after each timed call (CUDA only).
        inner: calls per timed sample (for very short cases); the sample is divided by it.

    Returns:
        name -> :class:`Timing` (a float: median seconds per call, with ``.iqr``).
    """
    names = list(cases)
    for _ in range(warmup):
        for name in names:
            cases[name]()
    sync(device)
    samples: dict[str, list] = {name: [] for name in names}
    for r in range(repeats):
        # alternate the order every round so neither case always runs right after the other
        order = names if r % 2 == 0 else names[::-1]
        for name in order:
            fn = cases[name]
            sync(device)
            t0 = time.perf_counter()
            for _ in range(inner):
                fn()
            sync(device)
            samples[name].append((time.perf_counter() - t0) / inner)
    return {name: Timing(samples[name]) for name in names}


def fmt_time(seconds: float) -> str:
    if seconds >= 1.0:
        return f"{seconds:.3f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3f} ms"
    return f"{seconds * 1e6:.1f} us"


def print_times(times: Mapping[str, float]) -> None:
    """One line per case: median and IQR."""
    width = max(len(n) for n in times)
    for name, t in times.items():
        iqr = getattr(t, "iqr", None)
        extra = f"  (IQR {fmt_time(iqr)}, n={len(t.samples)})" if iqr is not None else ""
        if iqr is not None and iqr > t:
            extra += "  UNSTABLE"
        print(f"    {name:<{width}}  {fmt_time(t):>12}{extra}")


def print_ratio(label: str, value: float, target: float, better: str = "lower") -> bool:
    """Print ``label: value  target < t  OK|MISS`` and return whether the target is met.

    ``better="lower"``: met when ``value <= target``; ``"higher"``: when ``value >= target``.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', got {better!r}")
    ok = value <= target if better == "lower" else value >= target
    sign = "<=" if better == "lower" else ">="
    print(f"{label}: {value:.4g}  target {sign} {target:g}  {'OK' if ok else 'MISS'}")
    return ok


def print_header(title: str, device=None) -> None:
    dev = torch.device(device) if device is not None else torch.device("cpu")
    print(f"== {title}")
    print(
        f"   torch {torch.__version__}, python {platform.python_version()}, {platform.machine()}, "
        f"cpu_count {os.cpu_count()}, torch threads {torch.get_num_threads()}, device {dev}",
        end="",
    )
    if dev.type == "cuda" and torch.cuda.is_available():
        print(f" ({torch.cuda.get_device_name(dev)})", end="")
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = None
    print(f", loadavg {load:.2f}" if load is not None else "")
    cores = os.cpu_count() or 1
    if load is not None and load > 0.75 * cores:
        print(
            f"   WARNING: the machine is busy (load {load:.2f} on {cores} cores): other processes compete "
            "for the CPU; ratios of interleaved medians are the numbers to read, absolute times are not. "
            "With several torch threads, small parallel ops can then stall for a scheduler tick (~1000x "
            "slower, huge IQRs); bench_core --threads 1 gives steadier numbers"
        )


def common_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The arguments every benchmark accepts: ``--device``, ``--repeats``, ``--quick``."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--repeats", type=int, default=None, help="timed rounds per comparison")
    p.add_argument("--quick", action="store_true", help="fewer repetitions and smaller workloads")
    return p
