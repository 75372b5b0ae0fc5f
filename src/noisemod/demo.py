"""The README's main job: standard training, noise modulation and adversarial training side by
side, with what each costs, in minutes on a CPU."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .config import TrainConfig
from .image_rows import gradient_maps, save_image_rows
from .rundir import RunDir
from .train import fit

__all__ = ["demo", "demo_configs", "format_table"]

# The embedded dataset is tiny, so the demo trains it for the paper's 50 epochs; larger data get 1.
DEFAULT_EPOCHS = {"digits": 50, "synthetic": 20}
# The adversarial reference: PGD-7 with Madry et al.'s step rule (7 steps of 2.5 eps / 7). The
# 8x8 digits have 17 grey levels, so their eps is 0.1 (about two levels) rather than CIFAR-10's 8/255.
ADVERSARIAL_STEPS = 7
DEMO_EPS = {"digits": 0.1}
#: printed under the table: what its numbers are, and are not
NOTE = (
    "(one seed: the CPU type, the thread count and the torch version change the last digits; "
    "several seeds, with intervals and verdicts: docs/RESULTS.md)"
)
COLUMNS = ("method", "test_accuracy", "vii", "robust_accuracy", "train_seconds", "time_vs_standard", "best_epoch")


def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """A plain-text table: one header line, one line per row."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [columns, *cells]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def _fmt(v) -> str:
    return "-" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)


def demo_configs(
    dataset: str, *, model: str, epochs: int, beta: float, seed: int, data_root: str | None
) -> dict[str, TrainConfig]:
    """The three runs of the demo: ``standard``, ``nm`` (beta) and ``pgd`` (PGD-7, the dataset's
    eps, a warm-up of at most half the epochs, robust accuracy on up to 1,000 test images)."""
    from .attacks import attack_defaults, eps_warmup_default

    base = TrainConfig(dataset=dataset, model=model, epochs=epochs, seed=seed, data_root=data_root)
    eps = DEMO_EPS.get(dataset, attack_defaults("pgd", dataset)["eps"])
    pgd = base.replace(
        method="pgd",
        eps=eps,
        alpha=2.5 * eps / ADVERSARIAL_STEPS,
        steps=ADVERSARIAL_STEPS,
        eps_warmup=min(eps_warmup_default(dataset), epochs / 2),
    )
    return {"standard": base, "nm": base.replace(method="nm", beta=beta), "pgd": pgd}


def demo(
    dataset: str = "digits",
    *,
    model: str = "lenet",
    data_root: str | None = None,
    out="demo-out",
    epochs: int | None = None,
    beta: float = 0.5,
    seed: int = 0,
    fresh: bool = False,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> tuple[str, Path]:
    """Train standard, nm and PGD (:func:`demo_configs`) on ``dataset``, return the comparison table
    (accuracy, VII, robust accuracy, train time and its ratio to standard's) and write one PNG of the
    three models' input-gradients on the same test images. Runs already complete in ``out`` are
    reused unless ``fresh``."""
    out = Path(out)
    epochs = epochs or DEFAULT_EPOCHS.get(dataset, 1)
    configs = demo_configs(dataset, model=model, epochs=epochs, beta=beta, seed=seed, data_root=data_root)
    rows, runs = [], {}
    for method, config in configs.items():
        run = RunDir(out / f"{dataset}-{model}-{method}")
        if fresh and run.path.exists():
            shutil.rmtree(run.path)
        if run.is_complete() and run.read_config() == config:
            log(f"reusing the finished run {run.path} (--fresh retrains)")
            result = run.read_result()
        else:
            if run.path.exists():
                shutil.rmtree(run.path)  # an unfinished or different demo run: the demo owns this folder
            result = fit(config, run.path, progress=progress, log=log)
        rows.append({"method": method, **result})
        runs[method] = run.path
    standard_seconds = rows[0]["train_seconds"]
    for row in rows:
        row["time_vs_standard"] = f"{row['train_seconds'] / standard_seconds:.1f}x"
        row["train_seconds"] = f"{row['train_seconds']:.1f}"

    x, y, grads = gradient_maps(list(runs.values()), n=12, data_root=data_root)
    maps = {f"{m}\ngradient": g for m, g in zip(runs, grads)}
    plural = "s" if epochs != 1 else ""
    png = save_image_rows(
        {"input": x, **maps},
        out / f"{dataset}-{model}-gradients.png",
        scale=tuple(maps),
        titles=[f"label {int(c)}" for c in y],
        suptitle=f"{model} on {dataset}, {epochs} epoch{plural}: input-gradients scaled to [0, 1]",
    )
    return format_table(rows, COLUMNS) + "\n" + NOTE, png
