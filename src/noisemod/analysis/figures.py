"""The paper's figures from a sweep folder (Figures 1-5), as PNG or SVG (by suffix): drawing only.

The rows they draw are read and grouped by :mod:`noisemod.analysis.tables` (results.csv, the
runs' metrics.csv); which runs a figure shows comes from the setting descriptions (conditions,
repeats) and the method registry (which methods use a setting, each method's family).

- :func:`fig1`: inputs and the input-gradients of several runs (standard / nm / pgd) on the same images.
- :func:`fig2`: the modulation pipeline (input, carrier, modulated, demodulated) in space and spectrum.
- :func:`fig3`: test accuracy and VII per model and method, one row of panels per dataset.
- :func:`fig4`: accuracy and VII against beta, with the gradient map of one test image per beta.
- :func:`fig5`: accuracy and VII per noise, with each noise's histogram (scaled to [0, 1]).
- :func:`training`: VII and validation accuracy against epoch (metrics.csv), per method, mean ± std.
- :func:`headline`: each method's VII and alignment gained over standard training against its training
  time, with the floor and the robust accuracy at the small radius (the docs' headline figure).
- :func:`make_figures`: the figures that apply to a sweep, in ``DIR/figures/`` as PNG and SVG.

Every figure function takes ``path``, one file or a list of files (the same figure in each
format), writes them atomically and returns the written paths. Figures are drawn on
``matplotlib.figure.Figure`` objects directly, so pyplot's global state is never touched.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..image_rows import gradient_maps, save_image_rows, scale01, test_images, to_numpy_image
from ..io import atomic_write
from ..rundir import RunDir, SweepDir
from .tables import (
    CURVES,
    GAINS,
    METRICS,
    aggregate,
    condition_label,
    gains_over_standard,
    has_checkpoints,
    interpretability_scores,
    is_number,
    load_results,
    main_conditions,
    read_sweep,
    representative,
    run_path,
    series,
    training_rows,
    unique,
)

__all__ = [
    "NEED_CHECKPOINTS",
    "fig1",
    "fig2",
    "fig2_from_dataset",
    "fig3",
    "fig4",
    "fig5",
    "headline",
    "interpretability_figure",
    "make_figures",
    "modulation_pipeline",
    "plan_figures",
    "spectrum",
    "tradeoff",
    "training",
]

PathLike = str | os.PathLike
Paths = PathLike | Sequence[PathLike]

HIST_SAMPLES = 100_000


# ----------------------------------------------------------------------------- data behind the plots


def spectrum(x: Tensor) -> Tensor:
    """The 2-D DFT magnitude of each image of ``(B, C, H, W)`` for display: ``log1p|fftshift(fft2)|``,
    averaged over channels and scaled to [0, 1] per image; ``(B, 1, H, W)``, the constant
    component at the centre ``(H // 2, W // 2)``."""
    mag = torch.fft.fftshift(torch.fft.fft2(x.double()), dim=(-2, -1)).abs().log1p()
    return scale01(mag.mean(1, keepdim=True))


def modulation_pipeline(x: Tensor, c: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """The stages of Figure 2 for inputs ``x`` and carrier ``c`` (same shape): name ->
    ``(images, spectrum(images))`` for the input, the carrier ``c``, the modulated input ``x * c``
    and the demodulated input ``x * N c**2 / C0`` (:func:`noisemod.modulate`)."""
    from ..modulation import modulate

    stages = {"input": x, "carrier c": c, "modulated x·c": x * c, "demodulated x·Nc²/C0": modulate(x, c)}
    return {name: (t, spectrum(t)) for name, t in stages.items()}


# ----------------------------------------------------------------------------- drawing


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _save(fig, path: Paths) -> list[Path]:
    """Write ``fig`` to each path (PNG or SVG by suffix), atomically."""
    paths = [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
    written = []
    for p in paths:
        fmt = p.suffix.lstrip(".").lower()
        if fmt not in ("png", "svg"):
            raise ValueError(f"cannot write {p}: figures are .png or .svg")
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=100, metadata={"Date": None} if fmt == "svg" else None)
        data = buf.getvalue()
        written.append(atomic_write(p, lambda f, data=data: f.write(data)))
    return written


def _show(ax, image: Tensor, title: str = "", *, dotted: bool = False) -> None:
    """One image in [0, 1] without ticks; ``dotted`` frames it as an input (the paper's marking)."""
    ax.imshow(to_numpy_image(image), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    if dotted:
        for spine in ax.spines.values():
            spine.set_linestyle(":")
            spine.set_linewidth(1.5)


def _bars(
    ax, agg: Sequence[Mapping], metric: str, x_key: str, hue_key: str | None = None, hues: Sequence | None = None
) -> None:
    """Bars of ``<metric>_mean`` per ``x_key`` value, one colour per ``hue_key`` value (``hues``
    fixes their order and colours across panels) or per bar without a hue; error bars are the
    std where a group has several runs."""
    xs = unique(r[x_key] for r in agg)
    hues = list(hues or unique(r[hue_key] for r in agg)) if hue_key else [None]
    width = 0.8 / len(hues)
    for j, hue in enumerate(hues):
        sub = [(xs.index(r[x_key]), r) for r in agg if hue_key is None or r[hue_key] == hue]
        if not sub:
            continue
        pos = [i + (j - (len(hues) - 1) / 2) * width for i, _ in sub]
        means = [r[f"{metric}_mean"] for _, r in sub]
        errs = [r[f"{metric}_std"] for _, r in sub] if any(r["n"] > 1 for _, r in sub) else None
        color = f"C{j}" if hue_key else [f"C{i}" for i, _ in sub]
        ax.bar(pos, means, width, yerr=errs, capsize=3, color=color, label=None if hue is None else str(hue))
    ax.set_xticks(range(len(xs)), [str(x) for x in xs], fontsize=8)
    ax.set_ylabel(METRICS[metric])
    _from_zero(ax)


def _from_zero(ax) -> None:
    """Bars' axis from 0 up, unless something drawn is below 0 (a bar of a signed metric, e.g. a
    cosine, an error bar or a floor's line): then the axis keeps it in view and a grey line marks 0."""
    if ax.dataLim.y0 >= 0:
        ax.set_ylim(bottom=0)
    else:
        ax.axhline(0, color="0.6", linewidth=0.8)


def _curve(ax, agg: Sequence[Mapping], metric: str, x_key: str) -> None:
    """``<metric>_mean`` against ``x_key`` with std error bars."""
    agg = sorted(agg, key=lambda r: r[x_key])
    ax.errorbar(
        [r[x_key] for r in agg],
        [r[f"{metric}_mean"] for r in agg],
        yerr=[r[f"{metric}_std"] for r in agg],
        marker="o",
        capsize=3,
    )
    ax.set_xlabel(x_key)
    ax.set_ylabel(METRICS[metric])
    ax.grid(alpha=0.3)


def _setting(rows: Sequence[Mapping], *keys: str) -> str:
    return ", ".join(f"{k} {rows[0].get(k)}" for k in keys)


# ----------------------------------------------------------------------------- the figures


def fig1(run_dirs: Mapping[str, PathLike], path: Paths, n: int = 8, data_root: str | None = None) -> list[Path]:
    """Figure 1: ``n`` test inputs and, per labelled run (e.g. standard / nm / pgd), the input-gradients
    of the same images, each scaled to [0, 1] per image."""
    labels = list(run_dirs)
    x, y, grads = gradient_maps([run_dirs[k] for k in labels], n, data_root)
    rows = {"input": x, **dict(zip(labels, grads))}
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    return [
        save_image_rows(
            rows, p, titles=[f"y={int(v)}" for v in y], scale=labels, suptitle="input-gradients, each scaled to [0, 1]"
        )
        for p in paths
    ]


def fig2(images: Tensor, path: Paths, beta: float = 0.5, noise: str = "gaussian", seed: int = 0) -> list[Path]:
    """Figure 2: noise modulation of ``images`` ``(B, C, H, W)`` in [0, 1] with a seeded carrier:
    one row per image; input, carrier, modulated and demodulated, each in space (scaled to [0, 1]
    per image) and as its DFT magnitude (:func:`spectrum`)."""
    from ..modulation import sample_carrier

    images = images.float()
    c = sample_carrier(images.shape, beta, noise, generator=torch.Generator().manual_seed(seed))
    stages = modulation_pipeline(images, c)
    fig = _figure(1.3 * 2 * len(stages), 1.4 * len(images) + 0.5)
    axes = fig.subplots(len(images), 2 * len(stages), squeeze=False)
    for s, (name, (space, spec)) in enumerate(stages.items()):
        space = scale01(space)
        for i in range(len(images)):
            top = i == 0
            _show(axes[i, 2 * s], space[i], name if top else "", dotted=s == 0)
            _show(axes[i, 2 * s + 1], spec[i], "spectrum" if top else "", dotted=s == 0)
    fig.suptitle(
        f"noise modulation, {noise} noise, beta {beta}: space and DFT magnitude (log, scaled to [0, 1])", fontsize=9
    )
    return _save(fig, path)


def fig2_from_dataset(dataset: str, path: Paths, n: int = 4, data_root: str | None = None, **kwargs) -> list[Path]:
    """:func:`fig2` on ``n`` seeded test images of ``dataset``; ``kwargs`` go to :func:`fig2`."""
    from ..data import load_dataset

    x, _ = test_images(load_dataset(dataset, root=data_root), n)
    return fig2(x, path, **kwargs)


def fig3(results_rows: Sequence[Mapping], path: Paths) -> list[Path]:
    """Figure 3: test accuracy and VII (mean ± std over seeds) per method, one colour per model,
    one row of panels per dataset; one condition per model and method (:func:`main_conditions`)."""
    agg = aggregate(main_conditions(results_rows))
    datasets = unique(r["dataset"] for r in agg)
    models = unique(r["model"] for r in agg)
    fig = _figure(9, 2.8 * len(datasets))
    axes = fig.subplots(len(datasets), len(METRICS), squeeze=False)
    for i, dataset in enumerate(datasets):
        sub = [r for r in agg if r["dataset"] == dataset]
        for j, metric in enumerate(METRICS):
            _bars(axes[i, j], sub, metric, "method", "model", hues=models)
            axes[i, j].set_title(f"{dataset}: {METRICS[metric]}", fontsize=10)
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), title="model", fontsize=7, title_fontsize=7, loc="outside right upper")
    return _save(fig, path)


def fig4(
    results_rows: Sequence[Mapping],
    sweep_dir: PathLike,
    path: Paths,
    data_root: str | None = None,
    maps: bool = True,
) -> list[Path]:
    """Figure 4: accuracy and VII against beta for the nm runs that vary only beta (:func:`series`),
    and below, one fixed test image and its gradient map for each beta (one run per beta); without
    ``maps`` (an archive keeps no checkpoints), the curves alone."""
    runs = series(results_rows, "beta")
    if not runs:
        raise ValueError("figure 4 needs nm runs that differ in beta only")
    agg = aggregate(runs, keys=("beta",))
    betas = sorted(r["beta"] for r in agg)
    fig = _figure(max(8, 1.2 * (len(betas) + 1)), 5.5 if maps else 3.8)
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.2, 1]) if maps else (fig, None)
    for ax, metric in zip(top.subplots(1, len(METRICS)), METRICS):
        _curve(ax, agg, metric, "beta")
    top.suptitle(f"nm: {_setting(runs, 'dataset', 'model', 'noise')}", fontsize=10)
    if bottom is None:
        return _save(fig, path)
    chosen = [representative([r for r in runs if r["beta"] == b]) for b in betas]
    x, _, grads = gradient_maps([run_path(sweep_dir, r) for r in chosen], 1, data_root)
    strip = bottom.subplots(1, len(betas) + 1, squeeze=False)[0]
    _show(strip[0], x[0], "input", dotted=True)
    for ax, b, g in zip(strip[1:], betas, grads):
        _show(ax, scale01(g)[0], f"beta={b}")
    return _save(fig, path)


def fig5(results_rows: Sequence[Mapping], path: Paths) -> list[Path]:
    """Figure 5: accuracy and VII per noise for the nm runs that vary only the noise (:func:`series`),
    and each noise's histogram (100k samples, min-max scaled to [0, 1]) in the same colour."""
    from ..modulation import sample_noise

    runs = series(results_rows, "noise")
    if not runs:
        raise ValueError("figure 5 needs nm runs that differ in noise only")
    agg = aggregate(runs, keys=("noise",))
    fig = _figure(12, 3.2)
    axes = fig.subplots(1, len(METRICS) + 1)
    for ax, metric in zip(axes, METRICS):
        _bars(ax, agg, metric, "noise")
        ax.tick_params(axis="x", labelrotation=30)
    hist = axes[-1]
    for i, r in enumerate(agg):
        delta = sample_noise((1, HIST_SAMPLES), r["noise"], generator=torch.Generator().manual_seed(0))
        hist.hist(scale01(delta)[0].numpy(), bins=60, density=True, histtype="step", color=f"C{i}", label=r["noise"])
    hist.set_title("noises scaled to [0, 1]", fontsize=9)
    hist.legend(fontsize=7)
    fig.suptitle(f"nm: {_setting(runs, 'dataset', 'model', 'beta')}", fontsize=10)
    return _save(fig, path)


def _tradeoff_panels(rows: Sequence[Mapping]) -> list[tuple]:
    """The (dataset, model) pairs with at least two methods, one of them in several conditions."""
    keep = []
    for pair in unique((r.get("dataset"), r.get("model")) for r in rows):
        same = [r for r in rows if (r.get("dataset"), r.get("model")) == pair]
        labels = {(r.get("method"), condition_label(r)) for r in same}
        methods = {m for m, _ in labels}
        if len(methods) >= 2 and len(labels) > len(methods):
            keep.append(pair)
    return keep


def tradeoff(results_rows: Sequence[Mapping], path: Paths) -> list[Path]:
    """Test accuracy against VII, one point per condition (mean ± std over seeds), one colour per
    method with a line through its settings (e.g. nm's betas, a control's sigmas): methods compare
    at equal accuracy cost. One panel per dataset and model (:func:`_tradeoff_panels`)."""
    from ..methods import METHODS

    panels = _tradeoff_panels(results_rows)
    if not panels:
        raise ValueError("the trade-off figure needs two methods on one dataset and model, one in several settings")
    order = list(METHODS)
    fig = _figure(4.2 * min(3, len(panels)), 3.6 * ((len(panels) + 2) // 3))
    axes = list(fig.subplots((len(panels) + 2) // 3, min(3, len(panels)), squeeze=False).flat)
    for ax, (dataset, model) in zip(axes, panels):
        here = [r for r in results_rows if (r.get("dataset"), r.get("model")) == (dataset, model)]
        agg = aggregate([dict(r, label=condition_label(r)) for r in here], keys=("method", "label"))
        for method in sorted({g["method"] for g in agg}, key=lambda m: order.index(m) if m in order else len(order)):
            points = sorted((g for g in agg if g["method"] == method), key=lambda g: g["test_accuracy_mean"])
            color = f"C{order.index(method) % 10}" if method in order else "k"
            xs, ys = [g["test_accuracy_mean"] for g in points], [g["vii_mean"] for g in points]
            xerr, yerr = [g["test_accuracy_std"] for g in points], [g["vii_std"] for g in points]
            ax.errorbar(xs, ys, xerr=xerr, yerr=yerr, marker="o", ms=4, capsize=2, color=color, label=method)
            for g, x, y in zip(points, xs, ys):
                setting = g["label"].split(" ", 1)[1] if " " in g["label"] else ""
                ax.annotate(setting, (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(METRICS["test_accuracy"])
        ax.set_ylabel(METRICS["vii"])
        ax.set_title(f"{dataset}, {model}", fontsize=10)
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    handles = {label: h for ax in fig.axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="outside right upper")
    return _save(fig, path)


def training(results_rows: Sequence[Mapping], sweep_dir: PathLike, path: Paths) -> list[Path]:
    """VII (of the fixed validation batch) and validation accuracy against epoch, one line per
    condition with a band of ± one std over seeds, one row of panels per dataset and model: where
    along training a method's VII departs from standard's (:func:`training_rows`)."""
    from ..methods import METHODS

    points = training_rows(sweep_dir, results_rows)
    if not points:
        raise ValueError(f"no run of {sweep_dir} has val_vii in its {RunDir.METRICS} (runs before VII along training)")
    agg = aggregate(points, keys=("dataset", "model", "method", "label", "epoch"), metrics=tuple(CURVES))
    pairs = unique((g["dataset"], g["model"]) for g in agg)
    order = list(METHODS)
    fig = _figure(9, 3.2 * len(pairs))
    axes = fig.subplots(len(pairs), len(CURVES), squeeze=False)
    for row, pair in zip(axes, pairs):
        here = [g for g in agg if (g["dataset"], g["model"]) == pair]
        for ax, (column, name) in zip(row, CURVES.items()):
            for label in unique(g["label"] for g in here):
                line = sorted((g for g in here if g["label"] == label), key=lambda g: g["epoch"])
                method = line[0]["method"]
                color = f"C{order.index(method) % 10}" if method in order else "k"
                xs = [g["epoch"] for g in line]
                mean = [g[f"{column}_mean"] for g in line]
                std = [g[f"{column}_std"] for g in line]
                ax.plot(xs, mean, color=color, lw=1.2, label=label)
                ax.fill_between(
                    xs,
                    [m - s for m, s in zip(mean, std)],
                    [m + s for m, s in zip(mean, std)],
                    color=color,
                    alpha=0.15,
                    lw=0,
                )
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            ax.set_title(f"{pair[0]}, {pair[1]}", fontsize=10)
            ax.grid(alpha=0.3)
    handles = {label: h for ax in fig.axes for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="outside right upper")
    return _save(fig, path)


MARKERS = "osD^v<>Ph*X"  # one per registered method (by its order), so that colours need not carry it alone


def headline(results_rows: Sequence[Mapping], path: Paths) -> list[Path]:
    """The headline figure: per dataset and model (a column of panels), each condition's VII (top row) and
    alignment (middle row) gained over standard training, the difference of seed means with its 95%
    Welch interval, and its robust accuracy at the dataset's small radius (PGD-50, bottom row, mean with
    its 95% t interval), against its training time as a multiple of standard's (log scale); standard
    training at 1x, its gain 0; the dashed line: a freshly initialized model's score less standard's
    (the floor) (:func:`gains_over_standard`)."""
    from ..methods import METHODS

    points = gains_over_standard(results_rows)
    pairs = unique((p["dataset"], p["model"]) for p in points)
    if not [p for p in points if p["label"] != "standard"]:
        raise ValueError("the headline figure needs standard training and another method on one dataset and model")
    order = list(METHODS)
    rows = [*GAINS, "robust"]
    fig = _figure(2.9 * len(pairs) + 1.8, 2.4 * len(rows) + 0.7)
    axes = fig.subplots(len(rows), len(pairs), squeeze=False, sharex=True)
    for col, pair in enumerate(pairs):
        here = [p for p in points if (p["dataset"], p["model"]) == pair]
        for ax, metric in zip(axes[:, col], rows):
            _headline_panel(ax, here, metric, order)
            if col == 0:
                ax.set_ylabel(f"{GAINS[metric]} gained over standard" if metric in GAINS else "robust accuracy")
        axes[0, col].set_title(f"{pair[0]}, {pair[1]}", fontsize=10)
        eps = here[0]["eps"]
        axes[-1, col].set_title(f"PGD-50 at eps {eps:.3g}" if eps else "no robust accuracy measured", fontsize=8)
        axes[-1, col].set_xlabel("training time / standard's")
    _time_ticks(axes.flat)
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="outside right upper")
    fig.suptitle(
        "Each method against standard training, by its training time\nVII and alignment gained (difference of seed "
        "means, 95% Welch interval); robust accuracy at the dataset's small radius (mean, 95% interval)",
        fontsize=9,
    )
    return _save(fig, path)


def _headline_panel(ax, points: Sequence[Mapping], metric: str, order: Sequence[str]) -> None:
    """One panel of :func:`headline`: a metric's gain (or the robust accuracy) of each condition of one
    dataset and model, with standard's level and, for a gain, the floor."""
    standard = points[0]  # gains_over_standard puts standard training first
    if metric in GAINS:
        ax.axhline(0, color="k", lw=0.8)
        if (gap := standard[f"{metric}_floor_gap"]) is not None:
            ax.axhline(gap, color="0.4", lw=1, ls="--", label="floor: untrained model less standard")
    elif standard["robust"] is not None:
        ax.axhline(standard["robust"], color="k", lw=0.8, ls=":")
        ax.set_ylim(-0.03, 1.03)
    for p in points:
        value, ci = (p["robust"], p["robust_ci"]) if metric == "robust" else (p[f"{metric}_diff"], p[f"{metric}_ci"])
        if value is None:
            continue
        k = order.index(p["method"]) if p["method"] in order else len(order)
        color, marker = ("k", "x") if p["label"] == "standard" else (f"C{k % 10}", MARKERS[k % len(MARKERS)])
        yerr = [[value - ci[0]], [ci[1] - value]] if ci and ci[0] is not None else None
        label = "standard training" if p["label"] == "standard" else p["method"]
        tci = p.get("time_ratio_ci")
        xerr = [[p["time_ratio"] - tci[0]], [tci[1] - p["time_ratio"]]] if tci and tci[0] is not None else None
        ax.errorbar(
            [p["time_ratio"]], [value], xerr=xerr, yerr=yerr, fmt=marker, color=color, ms=5, capsize=2, label=label
        )
    ax.set_xscale("log")
    ax.grid(alpha=0.3)


def _time_ticks(axes, ticks: Sequence[float] = (0.5, 1, 2, 4)) -> None:
    """Ticks of a log axis of time ratios at ``ticks``, written ``2x``."""
    from matplotlib.ticker import FixedLocator, NullLocator

    for ax in axes:
        ax.xaxis.set_major_locator(FixedLocator(ticks))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t:g}x" for t in ticks])


def interpretability_figure(results_rows: Sequence[Mapping], path: Paths) -> list[Path]:
    """Each interpretability metric per method (x) and explainer (colour), mean ± std over seeds, with
    the floor (the same architecture freshly initialized) as a black bar over each bar and, for
    deletion and insertion, the random-order reference as a dashed line; one row per dataset and model."""
    from ..metrics import METRICS
    from ..rundir import interpretability_column

    found = interpretability_scores(results_rows)
    if not found:
        raise ValueError("no interpretability scores in the results (a spec's interpretability section makes them)")
    explainers = list(found)
    references = {m.reference for m in METRICS.values()}  # drawn beside the metric they are the reference of
    metrics = [m for m in METRICS if m not in references and any(m in v for v in found.values())]

    def scored(r) -> bool:
        return any(is_number(r.get(interpretability_column(e, m))) for e in explainers for m in metrics)

    rows = [dict(r, label=condition_label(r)) for r in results_rows if scored(r)]
    pairs = unique((r.get("dataset"), r.get("model")) for r in rows)
    fig = _figure(3.6 * len(metrics), 3.0 * len(pairs))
    axes = fig.subplots(len(pairs), len(metrics), squeeze=False)
    for i, pair in enumerate(pairs):
        here = [r for r in rows if (r.get("dataset"), r.get("model")) == pair]
        for j, metric in enumerate(metrics):
            _interpretability_panel(axes[i, j], here, metric, explainers)
            axes[i, j].set_title(f"{pair[0]}, {pair[1]}: {metric}", fontsize=9)
    handles = {label: h for ax in axes.flat for h, label in zip(*ax.get_legend_handles_labels())}
    fig.legend(handles.values(), handles.keys(), fontsize=7, loc="outside right upper")
    return _save(fig, path)


def _interpretability_panel(ax, rows: Sequence[Mapping], metric: str, explainers: Sequence[str]) -> None:
    """One metric's bars per condition and explainer, the floors over them, the random-order line."""
    from ..metrics import get_metric
    from ..rundir import interpretability_column

    labels = unique(r["label"] for r in rows)
    width = 0.8 / len(explainers)
    for k, e in enumerate(explainers):
        score, floor = interpretability_column(e, metric), interpretability_column(e, metric + "_floor")
        agg = aggregate(rows, keys=("label",), metrics=(score, floor))
        pos = [labels.index(g["label"]) + (k - (len(explainers) - 1) / 2) * width for g in agg]
        means, stds = [g[score + "_mean"] for g in agg], [g[score + "_std"] for g in agg]
        ax.bar(pos, means, width, yerr=stds, capsize=2, color=f"C{k}", label=e)
        floors = [g[floor + "_mean"] for g in agg]
        left, right = [p - width / 2 for p in pos], [p + width / 2 for p in pos]
        ax.hlines(floors, left, right, colors="k", linewidth=2, label="floor (fresh model)")
    if get_metric(metric).reference is not None:
        random = interpretability_column(explainers[0], get_metric(metric).reference)
        for g in aggregate(rows, keys=("label",), metrics=(random,)):
            if is_number(g[random + "_mean"]):
                x = labels.index(g["label"])
                ax.hlines(g[random + "_mean"], x - 0.45, x + 0.45, colors="0.4", linestyles="--", label="random order")
    ax.set_xticks(range(len(labels)), labels, fontsize=7, rotation=20)
    _from_zero(ax)


# ----------------------------------------------------------------------------- a sweep's figures


FIG1_FAMILIES = ("baseline", "nm", "adversarial")  # Figure 1's rows: one method of each family


def _fig1_runs(rows: Sequence[Mapping]) -> dict[str, Mapping]:
    """Figure 1's runs, by method name: the baseline (standard), nm and (when present) an
    adversarial method (the first registered: pgd before fgsm) of one dataset and model, the
    pair with the most of these; ``{}`` without a baseline and an nm run of one model."""
    from ..methods import METHODS

    best: dict[str, Mapping] = {}
    for dataset, model in unique((r.get("dataset"), r.get("model")) for r in rows):
        same = [r for r in rows if r.get("dataset") == dataset and r.get("model") == model]
        found: dict[str, Mapping] = {}
        for family in FIG1_FAMILIES:
            for m in (m for m in METHODS.values() if m.family == family):
                if rs := [r for r in same if r.get("method") == m.name]:
                    found[m.name] = representative(rs)
                    break
        families = {METHODS[m].family for m in found}
        if {"baseline", "nm"} <= families and len(found) > len(best):
            best = found
    return best


#: the figures that are gradient maps, so need the runs' checkpoints (an archive has none; figure 4
#: is drawn without its strip of maps there)
NEED_CHECKPOINTS = ("fig1",)


def plan_figures(rows: Sequence[Mapping], spec: str = "", *, checkpoints: bool = True) -> list[str]:
    """Which figures apply to a sweep: fig1 when standard and nm runs of one model exist, fig2 always,
    fig3 when there are several (model, method) pairs (or the spec is named like fig3), fig4 and
    fig5 when nm runs vary beta or the noise alone, tradeoff when methods compare over settings.
    Without ``checkpoints`` (an archive), not those of :data:`NEED_CHECKPOINTS`."""
    plan = [name for name in _applicable(rows, spec) if checkpoints or name not in NEED_CHECKPOINTS]
    return plan


def _applicable(rows: Sequence[Mapping], spec: str) -> list[str]:
    plan = []
    if _fig1_runs(rows):
        plan.append("fig1")
    plan.append("fig2")
    if len(unique((r.get("model"), r.get("method")) for r in rows)) >= 2 or "fig3" in spec:
        plan.append("fig3")
    if series(rows, "beta"):
        plan.append("fig4")
    if series(rows, "noise"):
        plan.append("fig5")
    if _tradeoff_panels(rows):
        plan.append("tradeoff")
    if interpretability_scores(rows):
        plan.append("interpretability")
    return plan


def make_figures(sweep_dir: PathLike, out_dir: PathLike | None = None, data_root: str | None = None) -> list[Path]:
    """Make the figures that apply to a sweep (:func:`plan_figures`) as PNG and SVG in
    ``out_dir`` (default ``sweep_dir/figures``); ``data_root`` overrides the runs' data root for
    the gradient maps. Returns the written files."""
    sweep_dir = Path(sweep_dir)
    rows = load_results(sweep_dir)
    out = Path(out_dir) if out_dir is not None else SweepDir(sweep_dir).figures_dir
    root = data_root or rows[0].get("data_root")
    written: list[Path] = []
    checkpoints = has_checkpoints(sweep_dir, rows)
    names = plan_figures(rows, str(read_sweep(sweep_dir).get("spec", "")), checkpoints=checkpoints)
    if training_rows(sweep_dir, rows):
        names.append("training")
    for name in names:
        paths = [out / f"{name}.png", out / f"{name}.svg"]
        if name == "fig1":
            written += fig1({m: run_path(sweep_dir, r) for m, r in _fig1_runs(rows).items()}, paths, data_root=root)
        elif name == "fig2":
            written += fig2_from_dataset(rows[0]["dataset"], paths, data_root=root)
        elif name == "fig3":
            written += fig3(rows, paths)
        elif name == "fig4":
            written += fig4(rows, sweep_dir, paths, data_root=root, maps=checkpoints)
        elif name == "fig5":
            written += fig5(rows, paths)
        elif name == "tradeoff":
            written += tradeoff(rows, paths)
        elif name == "interpretability":
            written += interpretability_figure(rows, paths)
        elif name == "training":
            written += training(rows, sweep_dir, paths)
    return written
