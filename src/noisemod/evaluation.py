"""Evaluation of a trained model and of a finished run.

:func:`evaluate`: test accuracy, VII (Definition 3) and robust accuracy of a model, shared by
:func:`noisemod.fit` (result.json) and :func:`evaluate_run`.

:func:`evaluate_run`: what ``noisemod evaluate`` does to a finished run, recorded in its run
directory: test accuracy, VII and robust accuracy of its best model (evaluation.json,
robustness.json), the interpretability metrics of an explainer's attributions
(:func:`interpret_run`), or the cascading randomization test (:func:`cascade_run`; both in
interpretability.json). A sweep runs it on each finished run, in a ``noisemod evaluate`` child
process per measurement (:mod:`noisemod.experiments.task`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .metrics import accuracy, vii
from .progress import progress_per_pass as _progress

__all__ = ["RunEvaluation", "cascade_run", "evaluate", "evaluate_run", "interpret_run", "measure_run"]


def _loader(split, batch_size: int, device):
    from .data import BatchLoader

    return BatchLoader.from_split(split, batch_size, shuffle=False, device=device)


def evaluate(
    model: nn.Module,
    data,
    config=None,
    *,
    batch_size: int = 512,
    robust: bool = False,
    norm: str = "linf",
    eps: float | None = None,
    robust_images: int | None = None,
    device=None,
    progress: bool = False,
) -> dict:
    """Test accuracy and VII (x_bar = the mean test image) of ``model`` on ``data.test``.

    Args:
        model: a classifier taking [0, 1] inputs of the data's shape.
        data: a :class:`~noisemod.data.DataBundle`.
        config: deprecated; give ``batch_size`` and ``norm`` instead.
        batch_size: evaluation batch size.
        robust: also the accuracy under :func:`noisemod.attacks.evaluation_attack` (PGD-50,
            random start) in the threat model ``norm`` with radius ``eps`` (default: the
            dataset's PGD eps, :func:`noisemod.attacks.attack_defaults`), on the first
            ``robust_images`` test images (default: all).
        device: where to evaluate (default: the model's device).
        progress: show progress bars.

    Returns:
        ``{"test_accuracy", "vii"}``, and with ``robust`` ``"robust_accuracy"`` and ``"robust_attack"``.
    """
    from .gradients import model_device

    if config is not None:
        warnings.warn(
            "evaluate(model, data, config) is deprecated: pass batch_size= and norm=", DeprecationWarning, stacklevel=2
        )
        batch_size, norm = config.eval_batch_size, config.norm
    device = device or model_device(model)
    _check_shape(model, data)
    test = _loader(data.test, batch_size, device)
    result = {
        "test_accuracy": accuracy(model, _progress(test, progress, "test accuracy")),
        "vii": vii(model, _progress(test, progress, "VII")),
    }
    if robust:
        attacked = dict(norm=norm, eps=eps, images=robust_images, batch_size=batch_size, device=device)
        result.update(_robust(model, data, **attacked, progress=progress))
    return result


def _robust(model: nn.Module, data, *, norm: str, eps: float | None, images: int | None, batch_size, device, progress):
    from .attacks import attack_defaults, evaluation_attack, robust_accuracy

    eps = attack_defaults("pgd", data.name)["eps"] if eps is None else eps
    n = len(data.test) if images is None else min(images, len(data.test))
    described = {"method": "pgd", "norm": norm, "eps": eps, "steps": None, "alpha": None, "images": n}
    if eps <= 0 or n == 0:  # no attack: nothing to measure
        return {"robust_accuracy": None, "robust_attack": described}
    attack = evaluation_attack(model, eps=eps, norm=norm, generator=torch.Generator(device=device).manual_seed(0))
    split = data.test if n == len(data.test) else data.test.take(torch.arange(n))
    loader = _loader(split, batch_size, device)
    accuracy_ = robust_accuracy(model, _progress(loader, progress, "PGD"), attack=attack)
    return {"robust_accuracy": accuracy_, "robust_attack": {**described, "steps": attack.steps, "alpha": attack.alpha}}


def _check_shape(model: nn.Module, data) -> None:
    spec = getattr(model, "spec", {})
    expected = (spec.get("in_channels"), *(spec.get("input_size") or ()))
    actual = (data.in_channels, *data.input_size)
    if spec.get("name") not in (None, "custom") and expected != actual:
        raise ValueError(
            f"the model takes {'x'.join(map(str, expected))} inputs but {data.name} images are "
            f"{'x'.join(map(str, actual))}"
        )


@dataclass(frozen=True)
class RunEvaluation:
    """What :func:`evaluate_run` measured: ``kind`` (``"evaluation"``, ``"interpretability"`` or
    ``"cascading"``, ``"yardsticks"``) and ``values``: :func:`evaluate`'s dict, :func:`interpret_run`'s
    scores, :func:`cascade_run`'s ``(module, correlation)`` pairs, or :func:`measure_run`'s values."""

    kind: str
    values: dict | list


def evaluate_run(
    run_dir,
    *,
    robust: bool = False,
    robust_images: int | None = None,
    eps: float | None = None,
    metrics=None,
    explainer: str | None = None,
    floor: bool = False,
    n: int | None = None,
    score_sigma: float | None = None,
    cascading: bool = False,
    absolute: bool = False,
    yardsticks: bool = False,
    data_root: str | None = None,
    device=None,
    progress: bool = False,
) -> RunEvaluation:
    """Evaluate a finished run's best model and record the result in its run directory (what
    ``noisemod evaluate`` does; each argument is the option of the same name). One of:

    - ``yardsticks``: every yardstick of the metrics' validation and its floor on the first ``n``
      test images (default 500) (:func:`measure_run`, into yardsticks.json);
    - ``cascading``: the cascading randomization test of ``explainer`` (default: the loss gradient)
      on the first ``n`` test images (default 100), of the absolute attributions with
      ``absolute`` (:func:`cascade_run`, into interpretability.json);
    - with ``metrics``, ``explainer``, ``floor`` or ``n``: the interpretability ``metrics``
      (default: :func:`~noisemod.metrics.default_metrics`) of ``explainer`` on the first ``n`` test
      images (default: all), with their randomization floor when ``floor``, and score alignments at
      ``score_sigma`` (:func:`interpret_run`, into interpretability.json);
    - otherwise test accuracy and VII, and with ``robust`` the accuracy under PGD-50 at ``eps``
      (default: the run's, else the dataset's) on the first ``robust_images`` test images
      (:func:`evaluate`, into evaluation.json and, for the robust accuracy, robustness.json).

    ``data_root`` (default: the run's) and ``device`` (default: CPU) say where the data and the
    model are. Raises ``ValueError`` for arguments that do not go together, a run directory that
    is not a finished run, or an ``n`` outside the test set, before anything is computed."""
    if absolute and not cascading:
        raise ValueError("absolute applies to cascading only")
    if eps is not None and not robust:
        raise ValueError(f"invalid eps={eps!r}: it applies to robust only")
    if yardsticks:  # every metric, explainer and sigma: none is named
        if metrics is not None or explainer is not None or score_sigma is not None or cascading:
            raise ValueError("yardsticks take no metrics, explainer, score_sigma or cascading")
        return RunEvaluation("yardsticks", measure_run(run_dir, n=n or 500, data_root=data_root, device=device))
    if cascading:
        n = 100 if n is None else n
        layers = cascade_run(
            run_dir, explainer=explainer or "gradient", n=n, absolute=absolute, data_root=data_root, device=device
        )
        return RunEvaluation("cascading", layers)
    if score_sigma is not None and not any(m.endswith("score_alignment") for m in metrics or ()):
        raise ValueError(f"invalid score_sigma={score_sigma!r}: it applies to the metrics [class_]score_alignment only")
    from .rundir import RunDir

    RunDir(run_dir).read_config()  # not a run: an error before anything is computed
    if metrics is not None or explainer is not None or floor or n is not None:
        scores = interpret_run(
            run_dir,
            metrics=metrics,
            explainer=explainer or "gradient",
            floor=floor,
            n=n,
            data_root=data_root,
            device=device,
            score_sigma=score_sigma,
        )
        return RunEvaluation("interpretability", scores)
    return RunEvaluation("evaluation", _evaluate_best(run_dir, robust, robust_images, eps, data_root, device, progress))


def _evaluate_best(run_dir, robust: bool, robust_images, eps, data_root, device, progress: bool) -> dict:
    """:func:`evaluate` of the run's best model in the run's threat model (if its method has one),
    written to evaluation.json and, for a robust accuracy, robustness.json."""
    from .data import load_dataset
    from .methods import build_method
    from .rundir import RunDir

    run = RunDir(run_dir)
    config = run.read_config()
    model = run.load_model(device=device)
    data = load_dataset(config.dataset, root=data_root or config.data_root, val_size=config.val_size)
    run_eps, norm = build_method(config, model).threat or (None, "linf")  # the run's threat model, if it has one
    result = evaluate(
        model,
        data,
        batch_size=config.eval_batch_size,
        eps=run_eps if eps is None else eps,
        norm=norm,
        device=device,
        robust=robust,
        robust_images=robust_images,
        progress=progress,
    )
    run.write_evaluation(result)
    if robust and result["robust_accuracy"] is not None:
        run.write_robustness(result)
    return result


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
    ``class_score_alignment`` and ``posterior_score_alignment``."""
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
