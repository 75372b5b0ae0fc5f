"""Explanations of trained runs: gradient maps beside their inputs, and interpretability metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from .plots import save_image_rows

__all__ = ["cascade_run", "explain_run", "interpret_run", "load_images", "measure_run", "test_images"]


def load_images(paths: Sequence, channels: int, size: tuple[int, int]) -> Tensor:
    """Decode image files into a float ``(N, channels, H, W)`` batch in [0, 1]; an image of another
    size is an error naming the file and both shapes (no silent resizing)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    images = []
    for p in paths:
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
            raise ValueError(f"cannot read image {p}: {e}") from None
        t = torch.from_numpy(arr.copy())
        t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
        if tuple(t.shape[1:]) != tuple(size):
            raise ValueError(
                f"image {p} is {t.shape[2]}x{t.shape[1]} (WxH) but the model takes "
                f"{channels}x{size[0]}x{size[1]} (CxHxW)"
            )
        images.append(t)
    return torch.stack(images).float().div_(255)


def test_images(data, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` seeded test images (float in [0, 1]) with their labels."""
    idx = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(seed))[:n]
    return data.test.images[idx].float().div_(255), data.test.labels[idx]


def explain_run(
    run_dir,
    images: Sequence | None = None,
    *,
    out=None,
    n: int = 12,
    data_root: str | None = None,
    explainers: Sequence[str] = ("gradient",),
) -> Path:
    """Write a PNG of the best model's explanations beside their inputs: one row per explainer
    (:mod:`noisemod.explainers`; default the loss input-gradient), each map scaled to [0, 1].

    Without ``images``, ``n`` seeded test images with their true labels; with image files, the
    explanation of the model's own prediction (no label is known).
    """
    from .explainers import explain, get_explainer

    for name in explainers:
        get_explainer(name)  # an unknown name fails before anything is computed
    from .data import load_dataset
    from .rundir import RunDir

    run = RunDir(run_dir)
    config = run.read_config()
    model = run.load_model()
    spec = model.spec
    if images:
        x = load_images(images, spec["in_channels"], tuple(spec["input_size"]))
        with torch.no_grad():
            y = model(x).argmax(1)
        titles = [f"{Path(p).name}: pred {int(c)}" for p, c in zip(images, y)]
    else:
        data = load_dataset(config.dataset, root=data_root or config.data_root, val_size=config.val_size)
        x, y = test_images(data, n)
        with torch.no_grad():
            pred = model(x).argmax(1)
        titles = [f"y={int(a)} p={int(b)}" for a, b in zip(y, pred)]
    maps = {f"{config.method}\n{name}": explain(model, x, y, name) for name in explainers}
    out = Path(out) if out else run.file(run.GRADIENTS)
    what = "input-gradients" if list(explainers) == ["gradient"] else "explanations"
    return save_image_rows(
        {"input": x, **maps},
        out,
        titles=titles,
        scale=tuple(maps),
        suptitle=f"{config.model} on {config.dataset}: {what}, each scaled to [0, 1]",
    )


def interpret_run(
    run_dir,
    *,
    metrics=None,
    explainer: str = "gradient",
    floor: bool = False,
    n: int | None = None,
    data_root: str | None = None,
    device=None,
    score_sigma: float | None = None,
) -> dict[str, float]:
    """Interpretability metrics (:func:`noisemod.metrics.interpretability`) of the explanations of a
    run's best model on its first ``n`` test images (default: all), with the randomization floor
    (a fresh model from the run's seed) when ``floor``. ``x_bar`` (VII, alignment) is the mean of
    the whole test set whatever ``n`` (Definition 3: "the average of x over the whole dataset"),
    so a score on the first ``n`` images estimates the score on all of them. The scores, with the explainer's cost in
    ms per image and the settings, go into the run's interpretability.json under the explainer's
    name; result.json is not touched. Returns the scores (metric -> mean, ``<metric>_floor``).
    ``metrics``: names of :data:`noisemod.metrics.METRICS`, default :func:`~noisemod.metrics.default_metrics`.

    ``score_alignment`` (``class_score_alignment``) compares with the (class-conditional) score of
    the run's dataset smoothed at ``score_sigma`` (default
    :data:`~noisemod.denoiser.DEFAULT_SCORE_SIGMA`), from its cached denoiser.

    Raises ``ValueError`` for an unknown metric or explainer, or ``n`` outside 1..test images,
    and :class:`~noisemod.denoiser.DenoiserError` when ``score_alignment`` has no denoiser at
    ``score_sigma``, before anything is computed or written.
    """
    import time

    from .data import load_dataset
    from .explainers import explain, get_explainer
    from .metrics import check_metrics, default_metrics, interpretability
    from .rundir import RunDir

    metrics = check_metrics(default_metrics() if metrics is None else metrics)
    get_explainer(explainer)
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        raise ValueError(f"invalid n={n!r}: expected a positive integer")
    run = RunDir(run_dir)
    config = run.read_config()
    score, scored_with = _score(config.dataset, metrics, score_sigma, device)
    data = load_dataset(config.dataset, root=data_root or config.data_root, val_size=config.val_size)
    if n is not None and n > len(data.test):
        raise ValueError(f"invalid n={n}: the test set of {config.dataset} has {len(data.test)} images")
    model = run.load_model(device=device)
    count = len(data.test) if n is None else n
    x, y = data.test.images[:count].float().div_(255), data.test.labels[:count]
    t0 = time.perf_counter()
    attributions = explain(model, x, y, explainer)
    ms_per_image = 1000 * (time.perf_counter() - t0) / count
    mean = data.test.images.double().mean(0).div_(255)
    scores = interpretability(
        model,
        x,
        y,
        metrics=metrics,
        explainer=explainer,
        floor=floor,
        seed=config.seed,
        mean=mean,
        attributions=attributions,
        score=score,
    )
    entry = {"n": count, "n_requested": n, "metrics": metrics, "floor": floor, "seed": config.seed}
    entry.update(scored_with)
    entry["mean"] = RunDir.MEAN_OF
    entry["ms_per_image"] = ms_per_image
    run.write_interpretability(explainer, {**entry, "scores": scores})
    return scores


def measure_run(run_dir, *, n: int = 500, data_root: str | None = None, device=None, sticks=None) -> dict[str, float]:
    """Every yardstick (:func:`noisemod.metrics.yardsticks`, or ``sticks``) of a run's best model on
    its first ``n`` test images, and their floor (a fresh model from the run's seed): what the
    validation of the metrics reads. ``x_bar`` is the mean test image; the scores come from the
    most recent class-conditional denoiser of the run's dataset at each sigma (one denoiser for
    all). Written to the run's yardsticks.json with ``n``, the seed and the denoiser's file name.

    Raises ``ValueError`` for ``n`` outside 1..test images and
    :class:`~noisemod.denoiser.DenoiserError` when a sigma has no denoiser, before computing.
    """
    from .data import load_dataset
    from .denoiser import find_denoiser, score_of
    from .metrics import measure_yardsticks, yardsticks
    from .rundir import RunDir

    sticks = yardsticks() if sticks is None else list(sticks)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"invalid n={n!r}: expected a positive integer")
    run = RunDir(run_dir)
    config = run.read_config()
    found = {s: find_denoiser(config.dataset, s, device, conditional=True) for s in {t.sigma for t in sticks} - {None}}
    data = load_dataset(config.dataset, root=data_root or config.data_root, val_size=config.val_size)
    if n > len(data.test):
        raise ValueError(f"invalid n={n}: the test set of {config.dataset} has {len(data.test)} images")
    model = run.load_model(device=device)
    x, y = data.test.images[:n].float().div_(255), data.test.labels[:n]
    mean = data.test.images.double().mean(0).div_(255)
    values = measure_yardsticks(
        model, x, y, sticks, mean=mean, scores=lambda s: score_of(found[s][0], s), seed=config.seed
    )
    denoisers = sorted({Path(info["path"]).name for _, info in found.values()})
    run.write_yardsticks({"n": n, "seed": config.seed, "denoiser": denoisers, "mean": RunDir.MEAN_OF, "values": values})
    return values


def _score(dataset: str, metrics, sigma: float | None, device):
    """``(score function, {"score_sigma", "denoiser"})`` when a score alignment is asked (the
    denoiser's cache file name recorded), else ``(None, {})``; a class-conditional denoiser for
    ``class_score_alignment``."""
    if not any(m.endswith("score_alignment") for m in metrics):
        return None, {}
    from .denoiser import DEFAULT_SCORE_SIGMA, find_denoiser, score_of

    sigma = DEFAULT_SCORE_SIGMA if sigma is None else float(sigma)
    conditional = any(m.endswith("score_alignment") and m != "score_alignment" for m in metrics)
    denoiser, info = find_denoiser(dataset, sigma, device, conditional=conditional)
    return score_of(denoiser, sigma), {"score_sigma": sigma, "denoiser": Path(info["path"]).name}


def cascade_run(
    run_dir,
    *,
    explainer: str = "gradient",
    n: int = 100,
    seed: int = 42,
    absolute: bool = False,
    data_root: str | None = None,
    device=None,
) -> list[tuple[str, float]]:
    """:func:`noisemod.metrics.cascading_randomization` of a run's best model on its first ``n`` test
    images: the Spearman correlation between the explanations of the model and of the model with its
    modules re-initialized from the top down, one more at a time (of the attributions' absolute
    values with ``absolute``). Saved in interpretability.json under ``"<explainer>/cascading"``
    (``"<explainer>/cascading-absolute"``)."""
    from .data import load_dataset
    from .explainers import get_explainer
    from .metrics import cascading_randomization
    from .rundir import RunDir

    get_explainer(explainer)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"invalid n={n!r}: expected a positive integer")
    run = RunDir(run_dir)
    config = run.read_config()
    data = load_dataset(config.dataset, root=data_root or config.data_root, val_size=config.val_size)
    if n > len(data.test):
        raise ValueError(f"invalid n={n}: the test set of {config.dataset} has {len(data.test)} images")
    model = run.load_model(device=device)
    x, y = data.test.images[:n].float().div_(255), data.test.labels[:n]
    layers = cascading_randomization(model, x, y, explainer, seed=seed, absolute=absolute)
    run.write_interpretability(
        run.cascading_key(explainer, absolute), {"n": n, "seed": seed, "absolute": absolute, "layers": layers}
    )
    return layers
