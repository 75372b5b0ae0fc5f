"""Training cost per method, measured with the real loop (``noisemod.fit``), side by side.

a. nm overhead: epoch time of ``nm`` / ``standard``, same model, data and run (targets: 1.03
   for LeNet/MNIST and FCNN/CIFAR-10, 1.05 for the MLP/MNIST), for the default noise path and
   for ``--fused-noise`` (the target applies to the latter).
b. adversarial cost for reference: ``pgd`` (7 and 40 steps), ``fgsm``, ``igr`` epoch time /
   ``standard`` on LeNet/MNIST (target for PGD-7: at most 6.5).
c. time outside the model: the share of a standard epoch not spent in forward, backward and the
   optimizer step (data, bookkeeping), against a bare loop over the same batches already in
   memory as float tensors (target: at most 5%).
d. where nm's extra time goes (no target): per call, a training step on a clean and on a
   modulated batch, torch's draw alone, draw + modulation, and the fused kernel (MLP, LeNet).
e. one idea for hiding nm's cost, measured (no target): 20 training steps with nm's work done
   inline, and with the next batch's draw, or its whole modulation, done on a second thread
   while the current step trains (MLP, LeNet; torch's generator, and the fused kernel).

Each case trains one epoch on a seeded subset (``--train-size``) and reads ``train_seconds``
from the result (evaluation excluded); cases are interleaved round by round and the ratio of
medians is printed. Run: ``python -m benchmarks.bench_train --data-root ../shared/data``
(``--parts d`` for one part, ``--parts e`` for the other).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

if __package__ in (None, ""):  # `python benchmarks/bench_train.py`
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import torch
import torch.nn.functional as F

from benchmarks.common import common_parser, compare, print_header, print_ratio, print_times
from noisemod import TrainConfig, fit, load_dataset
from noisemod.data import BatchLoader
from noisemod.gradients import batch_input_gradients, frozen_eval
from noisemod.models import create_model
from noisemod.modulation import NoiseModulation, modulate, sample_carrier
from noisemod.train import build_model, build_optimizer

NM_TARGETS = {("mnist", "lenet"): 1.03, ("cifar10", "fcnn"): 1.03, ("mnist", "mlp"): 1.05}
PGD7_TARGET = 6.5
OUTSIDE_TARGET = 0.05


def epoch_seconds(configs: dict, rounds: int, data_root: str) -> dict:
    """Median ``train_seconds`` of one epoch per named config, interleaved over ``rounds``."""
    samples = {name: [] for name in configs}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            names = list(configs) if r % 2 == 0 else list(configs)[::-1]
            for name in names:
                out = Path(tmp) / f"{name}-{r}"
                result = fit(configs[name].replace(data_root=data_root), out, progress=False, log=lambda *_: None)
                samples[name].append(result["train_seconds"])
    return {name: statistics.median(v) for name, v in samples.items()}


def bench_nm_overhead(data_root, rounds, train_size) -> bool:
    """The target applies to the fast path, ``--fused-noise``; the default path (torch's generator,
    then the modulation) is printed for reference."""
    ok = True
    for (dataset, model), target in NM_TARGETS.items():
        base = TrainConfig(dataset=dataset, model=model, epochs=1, train_size=train_size)
        nm = base.replace(method="nm")
        t = epoch_seconds({"standard": base, "nm": nm, "nm-fused": nm.replace(fused_noise=True)}, rounds, data_root)
        print(f"-- a. {model} on {dataset}, {train_size} images: " + ", ".join(f"{k} {v:.3f} s" for k, v in t.items()))
        print(f"nm / standard epoch ({model}, {dataset}), torch generator: {t['nm'] / t['standard']:.4g}")
        ok &= print_ratio(
            f"nm --fused-noise / standard epoch ({model}, {dataset})", t["nm-fused"] / t["standard"], target
        )
    return ok


def bench_adversarial(data_root, rounds, train_size) -> bool:
    base = TrainConfig(dataset="mnist", model="lenet", epochs=1, train_size=train_size)
    configs = {
        "standard": base,
        "nm": base.replace(method="nm"),
        "fgsm": base.replace(method="fgsm"),
        "pgd-7": base.replace(method="pgd", steps=7),
        "pgd-40": base.replace(method="pgd", steps=40),
        "igr": base.replace(method="igr"),
    }
    t = epoch_seconds(configs, rounds, data_root)
    print(f"-- b. lenet on mnist, {train_size} images: " + ", ".join(f"{k} {v:.3f} s" for k, v in t.items()))
    ok = True
    for name in configs:
        if name == "standard":
            continue
        target = PGD7_TARGET if name == "pgd-7" else None
        ratio = t[name] / t["standard"]
        if target is None:
            print(f"{name} / standard epoch: {ratio:.4g}")
        else:
            ok &= print_ratio(f"{name} / standard epoch", ratio, target)
    return ok


def attack_step_breakdown(repeats: int) -> None:
    """Why PGD-k costs more than 1 + 2k/3 steps here: an attack step's backward computes the
    input-gradient, a training step's the weight gradients; time each pass of LeNet, batch 64."""
    torch.manual_seed(0)
    model = create_model("lenet", in_channels=1, num_classes=10, input_size=(28, 28))
    opt = torch.optim.Adam(model.parameters(), fused=True)
    x, y = torch.rand(64, 1, 28, 28), torch.randint(0, 10, (64,))

    def forward():
        with torch.no_grad():
            model(x)

    def weight_backward():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()

    def training_step():
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        opt.step()

    def attack_step():  # what PGD does per step: forward + input-gradient, parameters frozen
        with frozen_eval(model):
            batch_input_gradients(model, x, y)

    t = compare(
        {
            "forward": forward,
            "forward + weight backward": weight_backward,
            "forward + input backward (attack step)": attack_step,
            "training step": training_step,
        },
        repeats=repeats,
    )
    print("-- b. LeNet passes, batch 64:")
    print_times(t)
    print(
        f"attack step / training step: {t['forward + input backward (attack step)'] / t['training step']:.3g} "
        "(the 1 + 2k/3 estimate assumes 2/3)"
    )


def mnist_training_step(name: str, y: torch.Tensor):
    """A training step (forward, cross-entropy on ``y``, backward, fused Adam) of a fresh seeded
    ``name`` model on MNIST-shaped batches: ``step(batch)``."""
    torch.manual_seed(0)
    model = create_model(name, in_channels=1, num_classes=10, input_size=(28, 28))
    opt = torch.optim.Adam(model.parameters(), fused=True)

    def step(batch):
        opt.zero_grad(set_to_none=True)
        F.cross_entropy(model(batch), y).backward()
        opt.step()

    return step


def nm_step_breakdown(repeats: int, fused: bool = True) -> None:
    """Where nm's extra time goes, MLP and LeNet on MNIST-shaped batches of 64: a training step
    on a clean batch and on an already modulated one (is the model itself slower on modulated
    inputs?), and nm's own work alone, torch's generator (the draw, then draw + modulation) and
    the fused kernel (built first if it is not cached: tens of seconds, once per machine)."""
    gen = torch.Generator().manual_seed(0)
    default = NoiseModulation(0.5, generator=gen, check=False)
    kernel = NoiseModulation(0.5, generator=gen, check=False, fused=True) if fused else None
    x, y = torch.rand(64, 1, 28, 28, generator=gen), torch.randint(0, 10, (64,), generator=gen)
    modulated = default(x)
    for name in ("mlp", "lenet"):
        step = mnist_training_step(name, y)
        cases = {
            "training step, clean batch": lambda step=step: step(x),
            "training step, modulated batch": lambda step=step: step(modulated),
            "nm, torch generator: the draw alone": lambda: sample_carrier(x.shape, 0.5, generator=gen),
            "nm, torch generator: draw + modulation": lambda: default(x),
        }
        if kernel is not None:
            kernel(x)  # builds or loads the kernel outside the timing
            cases["nm --fused-noise: the kernel"] = lambda: kernel(x)
        t = compare(cases, repeats=repeats)
        print(f"-- d. {name}: nm's work next to a training step, batch 64x1x28x28:")
        print_times(t)
        clean = t["training step, clean batch"]
        print(f"modulated / clean training step ({name}): {t['training step, modulated batch'] / clean:.4g}")
        for case in list(cases)[2:]:
            print(f"{case} / training step ({name}): {t[case] / clean:.4g}")


def nm_overlap(repeats: int, steps: int = 20) -> None:
    """Can a second thread hide nm's work? ``steps`` training steps (MLP, LeNet, batches of 64
    MNIST-shaped images) clean, with nm inline, with the next batch's carrier drawn on a second
    thread while the current step trains, and with the next batch's whole modulation there; the
    same two for the fused kernel (``--fused-noise``), inline and on the second thread; and the
    floor of any noise generator: each batch times one fixed factor (no draw, no C0), the one
    elementwise product every modulation does. The per-step ratio to the clean loop is printed;
    the threaded loops use the same generator in the same order, so they draw the same numbers
    as the inline one (batches of one shape)."""
    gen = torch.Generator().manual_seed(0)
    xs = torch.rand(steps, 64, 1, 28, 28, generator=gen).unbind()
    y = torch.randint(0, 10, (64,), generator=gen)
    pool = ThreadPoolExecutor(1)

    def carrier(x):
        return sample_carrier(x.shape, 0.5, generator=gen)

    modulated = NoiseModulation(0.5, generator=gen, check=False)  # the default path: carrier, then modulate
    fused = NoiseModulation(0.5, generator=gen, check=False, fused=True)  # another stream, same cost to compare
    fused(xs[0])  # builds or loads the kernel outside the timing
    factor = modulated(torch.ones_like(xs[0]))  # one draw's N c**2 / C0, fixed
    for name in ("mlp", "lenet"):
        step = mnist_training_step(name, y)

        def ahead(work, finish, step=step):  # ``work`` for batch i + 1 runs on the pool while batch i trains
            pending = pool.submit(work, xs[0])
            for i, x in enumerate(xs):
                done = pending.result()
                if i + 1 < len(xs):
                    pending = pool.submit(work, xs[i + 1])
                step(finish(x, done))

        cases = {
            "clean": lambda step=step: [step(x) for x in xs],
            "nm inline": lambda step=step: [step(modulated(x)) for x in xs],
            "nm, draw on a second thread": lambda: ahead(carrier, lambda x, c: modulate(x, c, check=False)),
            "nm, modulation on a second thread": lambda: ahead(modulated, lambda x, m: m),
            "nm --fused-noise inline": lambda step=step: [step(fused(x)) for x in xs],
            "nm --fused-noise, on a second thread": lambda: ahead(fused, lambda x, m: m),
            "floor: x times a fixed factor, no draw": lambda step=step: [step(x * factor) for x in xs],
        }
        t = compare(cases, repeats=repeats)
        print(f"-- e. {name}: {steps} training steps, torch.get_num_threads() {torch.get_num_threads()}:")
        print_times(t)
        for case in list(cases)[1:]:
            print(f"{case} / clean ({name}): {t[case] / t['clean']:.4g}")
    pool.shutdown()


def bench_outside_model(data_root, rounds, train_size) -> bool:
    """Trainer epoch vs a bare loop (forward, loss, backward, step) over the same float batches."""
    config = TrainConfig(dataset="mnist", model="lenet", epochs=1, train_size=train_size, data_root=data_root)
    data = load_dataset("mnist", root=data_root)
    split = data.train.subset(train_size, seed=0)
    loader = BatchLoader(split.images, split.labels, config.batch_size, seed=0)
    batches = list(loader)  # already float, already in memory

    def bare() -> float:
        torch.manual_seed(0)
        model = build_model(config, data, torch.device("cpu"))
        opt = build_optimizer(config, model.parameters())
        t0 = time.perf_counter()
        for x, y in batches:
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return time.perf_counter() - t0

    trainer, plain = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            plain.append(bare())
            trainer.append(fit(config, Path(tmp) / str(r), progress=False, log=lambda *_: None)["train_seconds"])
    t_trainer, t_bare = statistics.median(trainer), statistics.median(plain)
    print(f"-- c. lenet on mnist, {train_size} images: trainer epoch {t_trainer:.3f} s, bare loop {t_bare:.3f} s")
    return print_ratio(
        "share of a standard epoch outside forward/backward/step", 1 - t_bare / t_trainer, OUTSIDE_TARGET
    )


def main(argv=None) -> int:
    p = common_parser(__doc__.splitlines()[0])
    p.add_argument("--data-root", default=os.environ.get("NOISEMOD_DATA", "../shared/data"))
    p.add_argument("--train-size", type=int, default=None, help="images per timed epoch (default 12800; quick 3200)")
    p.add_argument("--parts", default="abcde", help="which parts to run, e.g. 'ad' (default: all)")
    args = p.parse_args(argv)
    if not args.parts or set(args.parts) - set("abcde"):
        p.error(f"--parts takes letters among a, b, c, d, e; got {args.parts!r}")
    rounds = args.repeats or (3 if args.quick else 5)
    size = args.train_size or (3200 if args.quick else 12800)
    print_header("bench_train: epoch time per method with noisemod.fit", "cpu")
    results = []
    if "a" in args.parts:
        results.append(bench_nm_overhead(args.data_root, rounds, size))
    if "b" in args.parts:
        results.append(bench_adversarial(args.data_root, rounds, max(640, size // 4)))
        attack_step_breakdown(10 * rounds)
    if "c" in args.parts:
        results.append(bench_outside_model(args.data_root, rounds, size))
    if "d" in args.parts:
        nm_step_breakdown(20 * rounds)
    if "e" in args.parts:
        nm_overlap(2 * rounds)
    if results:
        print(f"-- bench_train: {sum(results)}/{len(results)} target groups met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
