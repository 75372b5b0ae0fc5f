"""One prepared command for a GPU machine: ``python -m benchmarks.gpu --data-root DIR --out DIR``.

Made for short GPU slots (about 15 minutes, the machine's start-up included): it finishes in under
8 minutes and writes ``OUT/gpu.json`` and ``OUT/gpu.md`` (rewritten after every step, so a slot cut
short still leaves what was measured). Each step runs in its own process under its own time limit;
a step that fails or runs out of time is recorded with the end of its output, and the others run.

Steps:

``cuda-tests``
    the tests that run on CUDA when it is there (attacks, data, modulation, kernels, training)
``epoch-ratio``
    nm / standard time of a training step of ResNet-18 on CIFAR-shaped tensors already on the GPU,
    at batch 64 and at a GPU-sized batch (512), for the default noise path and ``fused``, with
    bf16 autocast and channels-last as extra rows
``fused-kernel``
    the fused modulation kernel built for CUDA: its build time, and its output equal to the
    reference modulation with the same counter-based carrier (max abs difference)
``ray-sweep``
    a 2-run sweep with ``--executor ray``: where each run trained (``train_device``)
``protocol``
    the paper's ResNet-18 protocol (Adam 1e-3, batch 64) for standard and nm on the CIFAR-10 under
    ``--data-root``, as many epochs as fit in the time left, and the projected time of 50 epochs

The GPU machine receives the repository only. Make the data it needs here, once, and carry it
(``gpu-data/`` is ignored by git; about 30 MB)::

    python -m benchmarks.gpu --make-data gpu-data --data-root ../shared/data
    # then, on the GPU machine (device tool: carry ["gpu-data"], timeout 540 s):
    python -m benchmarks.gpu --data-root gpu-data --out gpu-out

``--dry-run`` walks every step on the CPU at tiny sizes (a test runs it). Without CUDA (and
without ``--dry-run``) the command says so and exits 2; a data root without CIFAR-10 is named
and exits 2, before anything is written.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/gpu.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

REPO = Path(__file__).resolve().parents[1]
CIFAR_ZIP = "cifar10-jpeg.zip"
TOTAL_S = 480  # the whole command, under 8 minutes
#: step -> its time limit in seconds (the protocol gets what is left of TOTAL_S)
LIMITS = {"cuda-tests": 150, "epoch-ratio": 90, "fused-kernel": 60, "ray-sweep": 120, "protocol": None}
CUDA_TESTS = ["tests/test_attacks.py", "tests/test_data.py", "tests/test_modulation.py", "tests/test_train.py"]


class GpuCommandError(Exception):
    """Bad input to the command: the message names it (exit 2)."""


# ----------------------------------------------------------------------------- steps (one process each)


def step_cuda_tests(args) -> dict:
    cmd = [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider", "-k", "cuda", *CUDA_TESTS]
    if args.dry_run:
        cmd.append("--collect-only")
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    if proc.returncode not in (0, 5):  # 5: nothing collected
        raise RuntimeError("\n".join(lines[-20:]))
    return {"returncode": proc.returncode, "summary": lines[-1] if lines else ""}


def _step_seconds(
    device, batch: int, method: str, *, model="resnet18", fused=False, bf16=False, channels_last=False, steps=20
) -> float:
    """Median seconds of one training step (forward, loss, backward, Adam) of ``model`` on random
    CIFAR-shaped inputs already on the device, for ``standard`` or ``nm`` (beta 0.5, Gaussian)."""
    import statistics

    import torch

    from noisemod import TrainConfig
    from noisemod.methods import build_method
    from noisemod.models import create_model

    torch.manual_seed(0)
    model = create_model(model, in_channels=3, num_classes=10, input_size=32)
    config = TrainConfig(method=method, fused_noise=fused if method == "nm" else False)
    net = build_method(config, model, torch.Generator(device=device).manual_seed(0))
    trained = net.wrap(model).to(device)
    if channels_last:
        trained = trained.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam(trained.parameters(), lr=1e-3)
    x = torch.rand(batch, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (batch,), device=device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    times = []
    for i in range(steps + 3):  # 3 warm-up steps (kernel choice, allocator)
        _sync(device)
        start = time.perf_counter()
        with torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16, enabled=bf16):
            loss, _ = net.step(trained, x, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(device)
        if i >= 3:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def _sync(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def step_epoch_ratio(args) -> dict:
    device = "cpu" if args.dry_run else "cuda"
    # a dry run: LeNet instead of ResNet-18 (a ResNet-18 step in bf16 takes seconds on a CPU)
    batches, steps, model = ((4,), 2, "lenet") if args.dry_run else ((64, 512), 20, "resnet18")
    variants = {
        "default": {},
        "fused": {"fused": True},
        "bf16 autocast": {"bf16": True},
        "channels-last": {"channels_last": True},
    }
    if args.dry_run:  # the fused path would build its C++ kernel (~30 s) on the CPU
        del variants["fused"]
    rows = []
    for batch in batches:
        for name, options in variants.items():
            standard = _step_seconds(device, batch, "standard", model=model, steps=steps, **{**options, "fused": False})
            nm = _step_seconds(device, batch, "nm", model=model, steps=steps, **options)
            rows.append(
                {"batch": batch, "path": name, "standard_ms": 1e3 * standard, "nm_ms": 1e3 * nm, "ratio": nm / standard}
            )
    return {"device": device, "model": model, "rows": rows}


def step_fused_kernel(args) -> dict:
    """The fused kernel on a cold cache (first call: build), warm, and against the eager computation of
    the same draw (``compiled=False``: modulate() with the counter-based carrier)."""
    import torch

    device = "cpu" if args.dry_run else "cuda"
    shape = (8, 3, 32, 32) if args.dry_run else (512, 3, 32, 32)
    x = torch.rand(shape, device=device)
    with tempfile.TemporaryDirectory() as cache:
        os.environ["NOISEMOD_CACHE"] = cache  # a cold kernel cache: the first call pays the build
        from noisemod.modulation import fused_modulate

        def draw(compiled: bool):
            _sync(device)
            start = time.perf_counter()
            out = fused_modulate(x, 0.5, generator=torch.Generator(device=device).manual_seed(0), compiled=compiled)
            _sync(device)
            return out, time.perf_counter() - start

        compiled = not args.dry_run  # a dry run on the CPU skips the ~30 s C++ build
        first, build = draw(compiled)
        _, warm = draw(compiled)
        eager, eager_s = draw(False)
    return {
        "device": device,
        "compiled": compiled,
        "shape": list(shape),
        "first_call_s": build,
        "warm_call_s": warm,
        "eager_call_s": eager_s,
        "max_abs_diff_vs_eager": (first - eager).abs().max().item(),
    }


SPEC = """name: gpu-ray
grids: [{{dataset: [synthetic], model: [lenet], method: [standard, nm], seed: [0]}}]
fixed: {{device: {device}}}
budgets: {{gpu: {{epochs: {epochs}, train_size: {size}}}}}
"""


def step_ray_sweep(args) -> dict:
    device, epochs, size = ("cpu", 1, 64) if args.dry_run else ("cuda", 2, 512)
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.yaml"
        spec.write_text(SPEC.format(device=device, epochs=epochs, size=size))
        out = Path(tmp) / "sweep"
        cmd = [sys.executable, "-m", "noisemod", "sweep", str(spec), "--out", str(out), "--budget", "gpu"]
        cmd += ["--executor", "ray", "--jobs", "2"]
        proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "RAY_ADDRESS": ""})
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        runs = {}
        for run in sorted((out / "runs").iterdir()):
            result = json.loads((run / "result.json").read_text())
            runs[run.name] = {"train_device": result.get("train_device"), "test_accuracy": result.get("test_accuracy")}
    return {"runs": runs}


def step_protocol(args) -> dict:
    """Standard and nm, each with half the time left: epochs done, seconds per epoch, projection."""
    limit = max(30.0, args.time_left / 2 - 10)
    out = {}
    for method in ("standard", "nm"):
        with tempfile.TemporaryDirectory() as tmp:
            run = Path(tmp) / method
            if args.dry_run:
                data = ["--dataset", "synthetic", "--model", "lenet", "--train-size", "64", "--device", "cpu"]
            else:
                data = ["--dataset", "cifar10", "--data-root", str(args.data_root), "--model", "resnet18"]
                data += ["--device", "cuda"]
            epochs = "1" if args.dry_run else "50"
            cmd = [sys.executable, "-m", "noisemod", "train", *data, "--method", method, "--epochs", epochs]
            cmd += ["--out", str(run), "--quiet"]
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            try:
                proc.communicate(timeout=limit)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGTERM)  # a resumable checkpoint, then exit
                proc.communicate(timeout=60)
            out[method] = _epochs_done(run)
    return out


def _epochs_done(run: Path) -> dict:
    import csv

    metrics = run / "metrics.csv"
    rows = list(csv.DictReader(metrics.open())) if metrics.is_file() else []
    seconds = [float(r["seconds"]) for r in rows]
    per_epoch = sum(seconds) / len(seconds) if seconds else None
    return {
        "epochs": len(rows),
        "seconds_per_epoch": per_epoch,
        "projected_50_epochs_min": per_epoch * 50 / 60 if per_epoch else None,
        "val_accuracy": [float(r["val_accuracy"]) for r in rows],
    }


STEPS = {
    "cuda-tests": step_cuda_tests,
    "epoch-ratio": step_epoch_ratio,
    "fused-kernel": step_fused_kernel,
    "ray-sweep": step_ray_sweep,
    "protocol": step_protocol,
}


# ----------------------------------------------------------------------------- the command


def check_inputs(args) -> None:
    """Refuse, before anything is written: no CUDA (unless --dry-run), no CIFAR-10 under the data root."""
    import torch

    if not args.dry_run and not torch.cuda.is_available():
        raise GpuCommandError("no CUDA device: this command is for a GPU machine (--dry-run walks it on the CPU)")
    if not args.dry_run and not (Path(args.data_root) / CIFAR_ZIP).is_file():
        raise GpuCommandError(
            f"no {CIFAR_ZIP} under --data-root {args.data_root}: make the carried subset with "
            f"`python -m benchmarks.gpu --make-data gpu-data --data-root ../shared/data`"
        )


def run_step(name: str, args, time_left: float) -> dict:
    """One step in its own process under its limit: status ok / failed / timeout, seconds, result or error."""
    limit = LIMITS[name] or time_left
    with tempfile.TemporaryDirectory() as tmp:
        result_file = Path(tmp) / "step.json"
        cmd = [sys.executable, "-m", "benchmarks.gpu", "--step", name, "--step-out", str(result_file)]
        cmd += ["--data-root", str(args.data_root), "--time-left", str(limit)] + (["--dry-run"] if args.dry_run else [])
        start = time.perf_counter()
        try:
            proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=limit + 30)
            status = "ok" if proc.returncode == 0 else "failed"
            tail = (proc.stdout + proc.stderr)[-3000:]
        except subprocess.TimeoutExpired as e:
            output = e.stderr or b""
            status, tail = "timeout", (output.decode() if isinstance(output, bytes) else output)[-3000:]
        entry = {"step": name, "status": status, "seconds": round(time.perf_counter() - start, 1), "limit_s": limit}
        if status == "ok":
            entry["result"] = json.loads(result_file.read_text())
        else:
            entry["error"] = tail
    return entry


def markdown(summary: dict) -> str:
    lines = [f"# GPU command ({'dry run, CPU' if summary['dry_run'] else 'CUDA'})", ""]
    lines += [f"- {k}: {summary['environment'][k]}" for k in summary["environment"]]
    lines += ["", "| step | status | seconds | limit s |", "| --- | --- | --- | --- |"]
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['limit_s']:.0f} |" for s in summary["steps"]]
    for s in summary["steps"]:
        if s["step"] == "epoch-ratio" and s["status"] == "ok":
            lines += [
                "",
                f"nm / standard, {s['result']['model']} training step on {s['result']['device']}:",
                "",
                "| batch | path | standard ms | nm ms | ratio |",
            ]
            lines += ["| --- | --- | --- | --- | --- |"]
            for r in s["result"]["rows"]:
                lines.append(
                    f"| {r['batch']} | {r['path']} | {r['standard_ms']:.2f} | {r['nm_ms']:.2f} | {r['ratio']:.3f} |"
                )
        elif s["status"] == "ok":
            lines += ["", f"{s['step']}: `{json.dumps(s['result'])}`"]
        else:
            lines += ["", f"{s['step']} {s['status']}:", "", "```", s.get("error", "").strip()[-1500:], "```"]
    return "\n".join(lines) + "\n"


def write_summary(out: Path, summary: dict) -> None:
    from noisemod.io import atomic_write

    atomic_write(out / "gpu.json", lambda f: f.write(json.dumps(summary, indent=1) + "\n"), "w")
    atomic_write(out / "gpu.md", lambda f: f.write(markdown(summary)), "w")


def make_data(dest: Path, data_root: Path, per_class: int = 2000) -> Path:
    """A CIFAR-10 subset in the data root's layout (the first ``per_class`` training images of each
    class, every test image): about 30 MB, to carry to a machine without ../shared."""
    source = data_root / CIFAR_ZIP
    if not source.is_file():
        raise GpuCommandError(f"no {CIFAR_ZIP} under --data-root {data_root}")
    dest.mkdir(parents=True, exist_ok=True)
    kept: dict[str, int] = {}
    tmp = dest / (CIFAR_ZIP + ".part")
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as dst:
        for info in sorted(src.infolist(), key=lambda i: i.filename):
            parts = info.filename.strip("/").split("/")
            if info.is_dir() or (parts[-3:-2] == ["train"] and kept.get(parts[-2], 0) >= per_class):
                continue
            if "train" in parts:
                kept[parts[-2]] = kept.get(parts[-2], 0) + 1
            dst.writestr(info, src.read(info))
    tmp.replace(dest / CIFAR_ZIP)
    return dest / CIFAR_ZIP


def parse(argv=None):
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--data-root", type=Path, default=REPO.parent / "shared" / "data")
    p.add_argument("--out", type=Path, default=Path("gpu-out"))
    p.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes")
    p.add_argument("--only", nargs="+", choices=list(STEPS), help="run these steps only")
    p.add_argument("--make-data", type=Path, metavar="DIR", help="write the CIFAR-10 subset to carry, then exit")
    p.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)
    p.add_argument("--step-out", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--time-left", type=float, default=TOTAL_S, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse(argv)
    try:
        if args.step:  # inside one step's process
            args.step_out.write_text(json.dumps(STEPS[args.step](args)))
            return 0
        if args.make_data:
            print(make_data(args.make_data, args.data_root))
            return 0
        check_inputs(args)
    except GpuCommandError as e:
        print(f"benchmarks.gpu: error: {e}", file=sys.stderr)
        return 2
    import torch

    env = {"torch": torch.__version__, "cuda": torch.version.cuda, "device": _device_name(args.dry_run)}
    summary = {"dry_run": args.dry_run, "environment": env, "steps": []}
    args.out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + TOTAL_S
    for name in args.only or STEPS:
        left = deadline - time.perf_counter()
        entry = run_step(name, args, max(30.0, left - 15))
        summary["steps"].append(entry)
        write_summary(args.out, summary)
        print(f"{name}: {entry['status']} in {entry['seconds']} s", flush=True)
    print(args.out / "gpu.md")
    return 0 if all(s["status"] == "ok" for s in summary["steps"]) else 1


def _device_name(dry_run: bool) -> str:
    import platform

    import torch

    if not dry_run and torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return f"cpu ({platform.processor() or platform.machine()})"


if __name__ == "__main__":
    sys.exit(main())
