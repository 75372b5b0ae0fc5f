"""The README's main job: standard vs noise-modulated training side by side, in minutes on a CPU."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from .config import TrainConfig
from .figures import gradient_maps
from .plots import save_image_rows
from .rundir import RunDir
from .train import fit

__all__ = ["demo", "format_table"]

DEMO_METHODS = ("standard", "nm")
# The embedded dataset is tiny, so the demo trains it for the paper's 50 epochs; larger data get 1.
DEFAULT_EPOCHS = {"digits": 50, "synthetic": 20}


def format_table(rows: list[dict], columns: tuple[str, ...]) -> str:
    """A plain-text table: one header line, one line per row."""
    cells = [[_fmt(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = [columns] + cells
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip() for line in lines)


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


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
    """Train ``standard`` and ``nm`` on ``dataset``, return the comparison table and write one PNG
    of both models' input-gradients on the same test images. Runs already complete in ``out`` are
    reused unless ``fresh``."""
    out = Path(out)
    epochs = epochs or DEFAULT_EPOCHS.get(dataset, 1)
    rows, runs = [], {}
    for method in DEMO_METHODS:
        config = TrainConfig(
            dataset=dataset, model=model, method=method, beta=beta, epochs=epochs, seed=seed, data_root=data_root
        )
        run = out / f"{dataset}-{model}-{method}"
        if fresh and run.exists():
            shutil.rmtree(run)
        if RunDir(run).is_complete() and RunDir(run).read_config() == config:
            log(f"reusing the finished run {run} (--fresh retrains)")
            result = RunDir(run).read_result()
        else:
            if run.exists():
                shutil.rmtree(run)  # an unfinished or different demo run: the demo owns this folder
            result = fit(config, run, progress=progress, log=log)
        rows.append(
            {
                "method": method,
                "test_accuracy": result["test_accuracy"],
                "vii": result["vii"],
                "train_seconds": f"{result['train_seconds']:.1f}",
                "best_epoch": result["best_epoch"],
            }
        )
        runs[method] = run

    x, y, grads = gradient_maps(list(runs.values()), n=12, data_root=data_root)
    maps = {f"{m}\ngradient": g for m, g in zip(runs, grads)}
    png = save_image_rows(
        {"input": x, **maps},
        out / f"{dataset}-{model}-gradients.png",
        scale=tuple(maps),
        titles=[f"label {int(c)}" for c in y],
        suptitle=f"{model} on {dataset}, {epochs} epoch{'s' if epochs != 1 else ''}: input-gradients scaled to [0, 1]",
    )
    return format_table(rows, ("method", "test_accuracy", "vii", "train_seconds", "best_epoch")), png
