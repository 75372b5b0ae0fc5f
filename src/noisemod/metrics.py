"""Interpretability and accuracy metrics: VII (paper, Definition 3) and accuracy.

The interpretability metrics of an explainer's attributions are one registry, :data:`METRICS`:
each is one :func:`register_metric` definition (name, direction, whether it needs an
attribution, whether it is in the default set, a one-line summary, its per-batch scores). The
command line's ``--metrics``, spec checks, results.csv columns, the report and the figures
derive from it (:func:`list_metrics`, :func:`default_metrics`, :func:`get_metric`).
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .gradients import as_batches, batch_to_device, frozen_eval, iter_input_gradients, model_device
from .registry import Registry

__all__ = [
    "METRICS",
    "Metric",
    "MetricBatch",
    "Yardstick",
    "accuracy",
    "alignment_scores",
    "cascading_randomization",
    "check_metrics",
    "curve_auc",
    "dataset_mean",
    "default_metrics",
    "flip_curves",
    "get_metric",
    "interpretability",
    "list_metrics",
    "measure_yardsticks",
    "randomized_model",
    "register_metric",
    "score_alignment_scores",
    "spearman",
    "vii",
    "vii_scores",
    "yardsticks",
]

REDUCTIONS = ("mean", "none")


def vii_scores(x: Tensor, grad: Tensor, mean: Tensor) -> Tensor:
    """Per-sample VII terms ``|<d, g>| / (||d|| ||g||)`` (Definition 3, Eq. 11).

    ``d = sign(x - mean)`` and ``g = sign(grad)``. The difference is taken in float64 so that a
    pixel equal to the mean (e.g. an always-black MNIST corner) gives exactly 0 whatever affine
    normalization the inputs went through. A sample whose ``d`` or ``g`` is all zeros has no
    direction and scores 0.

    Returns:
        float64 tensor ``(B,)`` with values in [0, 1].
    """
    if grad.shape != x.shape:
        raise ValueError(f"grad shape {tuple(grad.shape)} does not match input shape {tuple(x.shape)}")
    d = torch.sign(x.double() - mean.to(x.device, torch.float64)).flatten(1)
    g = torch.sign(grad).to(torch.float64).flatten(1)
    dot = (d * g).sum(1).abs()
    norms = (d.abs().sum(1) * g.abs().sum(1)).sqrt()  # ||v||^2 = number of non-zero signs
    return torch.where(norms > 0, dot / norms.clamp_min(1.0), torch.zeros_like(dot))


def dataset_mean(batches: Iterable[tuple[Tensor, Tensor]], device: torch.device | None = None) -> Tensor:
    """Per-element mean image over all batches, accumulated in float64."""
    total, count = None, 0
    for x, _ in batches:
        x = x.to(device) if device is not None else x
        s = x.sum(0, dtype=torch.float64)
        total = s if total is None else total + s
        count += x.shape[0]
    if count == 0:
        raise ValueError("cannot compute the mean image of an empty dataset")
    return total / count


def vii(
    model: nn.Module,
    inputs: Tensor | Iterable[tuple[Tensor, Tensor]],
    targets: Tensor | None = None,
    *,
    mean: Tensor | None = None,
    batch_size: int = 256,
    reduction: str = "mean",
) -> float | Tensor:
    """Visual Interpretability of Input-gradients (Definition 3, Eq. 11).

    ``VII = E_(x, y) |<d_x, g_x>| / (||d_x|| ||g_x||)`` with ``d_x = sign(x - x_bar)`` and
    ``g_x = sign(grad_x L(f(x), y))``, L the cross-entropy of the sample.

    Args:
        model: classifier returning logits; evaluated in eval mode and left as it was.
        inputs: ``(N, ...)`` floating tensor with ``targets``, or a re-iterable of ``(x, y)``
            batches (e.g. a list or a DataLoader) with ``targets=None``.
        targets: ``(N,)`` class indices when ``inputs`` is a tensor.
        mean: ``x_bar``, the per-element mean image; computed from ``inputs`` in a first pass
            when not given (so a one-shot iterator needs ``mean``).
        batch_size: samples per pass when ``inputs`` is a tensor.
        reduction: ``"mean"`` returns a float; ``"none"`` the per-sample scores (float64, CPU).

    A sample whose ``d`` (input equal to the mean everywhere) or ``g`` (zero gradient) is all
    zeros scores 0 and still counts in the mean. Because signs ignore positive scales, the score
    does not change when a positive per-channel normalization moves from outside the model to
    inside it.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    batches = as_batches(inputs, targets, batch_size)
    device = model_device(model, inputs.device if isinstance(inputs, Tensor) else None)
    if mean is None:
        if iter(batches) is batches:
            raise ValueError(
                "inputs is a one-shot iterator: pass mean= (the mean image) or a re-iterable "
                "such as a list or a DataLoader, since the mean needs a first pass"
            )
        mean = dataset_mean(batches, device)
    else:
        mean = torch.as_tensor(mean).to(device, torch.float64)
    scores = [vii_scores(x, g, mean).cpu() for x, _, g in iter_input_gradients(model, batches, "loss")]
    if not scores:
        raise ValueError("cannot compute VII of an empty dataset")
    scores = torch.cat(scores)
    return scores if reduction == "none" else float(scores.mean())


@torch.no_grad()
def accuracy(
    model: nn.Module,
    inputs: Tensor | Iterable[tuple[Tensor, Tensor]],
    targets: Tensor | None = None,
    *,
    batch_size: int = 256,
) -> float:
    """Top-1 accuracy in [0, 1], with the model in eval mode (its mode is restored afterwards)."""
    correct, count = torch.zeros((), dtype=torch.long), 0
    with frozen_eval(model):
        device = None
        for x, y in as_batches(inputs, targets, batch_size):
            device = device or model_device(model, x.device)
            x, y = batch_to_device(x, y, device)
            correct = correct.to(device) + (model(x).argmax(1) == y).sum()
            count += len(y)
    if count == 0:
        raise ValueError("cannot compute the accuracy of an empty dataset")
    return int(correct) / count


# ----------------------------------------------------------------------------- a second opinion
# Attribution metrics beyond VII. Each takes the attributions of some explainer
# (noisemod.explainers); interpretability() computes them together, with their randomization floor.

FLIP_STEPS = 20  # pixel flipping: the curve has 21 points, 5% of the features more at each


def alignment_scores(x: Tensor, attribution: Tensor, mean: Tensor) -> Tensor:
    """Per-sample ``|cos(x - x_bar, a)|``: VII without the signs, the alignment of Etmann et al.
    2019. ``x - x_bar`` is taken in float64 (a pixel equal to the mean gives exactly 0); a sample
    whose ``x - x_bar`` or attribution is all zeros scores 0. Returns float64 ``(B,)`` in [0, 1]."""
    if attribution.shape != x.shape:
        raise ValueError(f"attribution shape {tuple(attribution.shape)} does not match input shape {tuple(x.shape)}")
    d = (x.double() - mean.to(x.device, torch.float64)).flatten(1)
    a = attribution.double().flatten(1)
    dot = (d * a).sum(1).abs()
    norms = d.norm(dim=1) * a.norm(dim=1)
    return torch.where(norms > 0, dot / norms.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(dot))


def score_alignment_scores(evidence: Tensor, score: Tensor) -> Tensor:
    """Per-sample ``cos(e, s)``, signed: the evidence for the class ``e`` (the attribution times the
    explainer's evidence sign) against the data's score ``s = grad_x log p_sigma(x)`` (Srinivas,
    Bordt & Lakkaraju 2023). In float64; a sample whose ``e`` or ``s`` is all zeros scores 0.
    Returns float64 ``(B,)`` in [-1, 1]."""
    if score.shape != evidence.shape:
        raise ValueError(f"score shape {tuple(score.shape)} does not match attribution shape {tuple(evidence.shape)}")
    e, s = evidence.double().flatten(1), score.to(evidence.device).double().flatten(1)
    norms = e.norm(dim=1) * s.norm(dim=1)
    dot = (e * s).sum(1)
    return torch.where(norms > 0, dot / norms.clamp_min(torch.finfo(torch.float64).tiny), torch.zeros_like(dot))


def flip_curves(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    attribution: Tensor,
    *,
    mode: str = "deletion",
    steps: int = FLIP_STEPS,
    baseline: float = 0.0,
) -> Tensor:
    """Pixel flipping (Bach et al. 2015; deletion and insertion, Petsiuk et al. 2018), batched.

    The input elements (every channel of every pixel) are ranked by ``attribution``, largest
    first (a stable sort: ties keep their position). At point ``j`` of ``0..steps`` the first
    ``round(j * F / steps)`` of ``F`` elements are replaced by ``baseline`` (``mode="deletion"``),
    or all the others are (``"insertion"``: the image is built up from the baseline). The curve is
    the model's softmax probability of the true class ``y`` at each point.

    Returns:
        float64 ``(B, steps + 1)``: point 0 is the intact input (deletion) or the baseline
        image (insertion); the last point the reverse.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be 'deletion' or 'insertion', got {mode!r}")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if attribution.shape != x.shape:
        raise ValueError(f"attribution shape {tuple(attribution.shape)} does not match input shape {tuple(x.shape)}")
    flat = x.flatten(1)
    n = flat.shape[1]
    order = torch.argsort(attribution.flatten(1).to(x.device), dim=1, descending=True, stable=True)
    rank = torch.empty_like(order).scatter_(1, order, torch.arange(n, device=x.device).expand_as(order))
    base = torch.full_like(flat, float(baseline))
    curve = []
    with frozen_eval(model), torch.no_grad():
        for j in range(steps + 1):
            first = rank < round(j * n / steps)  # the j-th point's top elements
            keep = ~first if mode == "deletion" else first
            probs = torch.softmax(model(torch.where(keep, flat, base).view_as(x)).double(), dim=1)
            curve.append(probs.gather(1, y.view(-1, 1).to(x.device)).squeeze(1))
    return torch.stack(curve, dim=1)


def curve_auc(curve: Tensor) -> Tensor:
    """Area under each curve of :func:`flip_curves`, the points ``1 / steps`` apart: in [0, 1]."""
    return torch.trapezoid(curve, dx=1.0 / (curve.shape[1] - 1), dim=1)


def randomized_model(model: nn.Module, seed: int = 0) -> nn.Module:
    """The same architecture with freshly initialized weights (Adebayo et al. 2018's model
    parameter randomization): a zoo model is rebuilt from its spec after ``torch.manual_seed(seed)``
    (so with a run's seed, the weights that run started from); any other module is copied and each
    submodule's ``reset_parameters`` called under that seed. Eval mode, on the model's device."""
    import copy

    from .models import create_model

    device = model_device(model)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        spec = getattr(model, "spec", None)
        if spec is not None and spec.get("name") != "custom":
            fresh = create_model(**spec)
        else:
            fresh = copy.deepcopy(model)
            for module in fresh.modules():
                if hasattr(module, "reset_parameters"):
                    module.reset_parameters()
    return fresh.to(device).eval()


def _ranks(t: Tensor) -> Tensor:
    """Per-row average ranks (ties share their mean rank), as Spearman's correlation uses."""
    from scipy.stats import rankdata

    return torch.from_numpy(rankdata(t.detach().cpu().double().numpy(), axis=1))


def spearman(a: Tensor, b: Tensor) -> Tensor:
    """Per-sample Spearman rank correlation of two attributions (flattened); NaN for a constant one."""
    ra, rb = _ranks(a.flatten(1)), _ranks(b.flatten(1))
    ra, rb = ra - ra.mean(1, keepdim=True), rb - rb.mean(1, keepdim=True)
    return (ra * rb).sum(1) / (ra.norm(dim=1) * rb.norm(dim=1))


def cascading_randomization(
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    explainer: str = "gradient",
    *,
    seed: int = 42,
    absolute: bool = False,
    **options,
) -> list[tuple[str, float]]:
    """Adebayo et al. 2018's cascading model parameter randomization test, from the top layer down.

    Starting from the last module that has ``reset_parameters``, one more module at a time is
    re-initialized (``torch.manual_seed(seed + 1)`` before each, as Quantus's ``MPRT`` does), and
    after each the explanations of the partly randomized model are compared with the original
    model's: the mean over samples of their Spearman rank correlation, of the signed attributions
    or, with ``absolute=True``, of their absolute values (Adebayo et al. show both; the absolute
    one is the harder test: an attribution that is zero wherever the input is, like
    input x gradient on a black background, keeps its ranking). An explanation that depends
    on what the model learned falls towards 0 (passes the sanity check); one that stays high
    explains the input or the architecture rather than the model.

    Returns:
        ``[(module name, mean correlation), ...]`` from the top module down.
    """
    import copy

    from .explainers import explain

    prepare = torch.abs if absolute else (lambda a: a)
    original = prepare(explain(model, x, y, explainer, **options))
    randomized = copy.deepcopy(model)
    modules = [(name, m) for name, m in randomized.named_modules() if hasattr(m, "reset_parameters")]
    out = []
    with torch.random.fork_rng(devices=[]):
        for name, module in reversed(modules):
            torch.manual_seed(seed + 1)
            module.reset_parameters()
            after = prepare(explain(randomized, x, y, explainer, **options))
            out.append((name, float(torch.nanmean(spearman(original, after)))))
    return out


def _check_input_shape(model: nn.Module, x: Tensor) -> None:
    spec = getattr(model, "spec", None) or {}
    if spec.get("name") in (None, "custom"):
        return
    expected = (spec["in_channels"], *spec["input_size"])
    if tuple(x.shape[1:]) != expected:
        raise ValueError(
            f"the model takes {'x'.join(map(str, expected))} inputs, got images of shape "
            f"{'x'.join(map(str, x.shape[1:]))}"
        )


def _check_images(model: nn.Module, images: Tensor, attributions: Tensor | None) -> None:
    if attributions is not None and attributions.shape != images.shape:
        raise ValueError(f"attributions of shape {tuple(attributions.shape)} for images of shape {tuple(images.shape)}")
    if not images.is_floating_point() or not bool(torch.isfinite(images).all()):
        raise ValueError("images must be finite floating tensors (NaN or Inf found, or an integer dtype)")
    _check_input_shape(model, images)


# ----------------------------------------------------------------------------- the metric registry


@dataclass(frozen=True)
class MetricBatch:
    """One batch as an interpretability metric sees it.

    Attributes:
        net: the model scored (the trained one, or the randomized one for the floor).
        x: images ``(B, ...)`` in [0, 1], on the model's device; ``y``: their classes ``(B,)``.
        attribution: the explainer's attribution of ``x`` (None when no metric asked needs one).
        random: uniform random values of ``x``'s shape, a random order of the elements.
        mean: ``x_bar``, the per-element mean image (float64).
        evidence: the sign that turns the attribution into evidence for the class (the explainer's).
        steps, baseline: pixel flipping's points and replacement value (:func:`flip_curves`).
        score: ``(x, y=None) -> grad_x log p_sigma(x [| y])``, the data's score (``score_alignment``
            without labels, ``class_score_alignment`` with), or None.
        mask: the elements the score alignments compare (bool, ``x``'s shape), or None: all of them.
    """

    net: nn.Module
    x: Tensor
    y: Tensor
    attribution: Tensor | None
    random: Tensor
    mean: Tensor
    evidence: int
    steps: int
    baseline: float
    score: Callable[..., Tensor] | None = None
    mask: Tensor | None = None


@dataclass(frozen=True)
class Metric:
    """One registered interpretability metric.

    Attributes:
        name: the ``--metrics`` value, and the ``<explainer>_<name>`` column of results.csv.
        score: ``score(batch: MetricBatch) -> Tensor``, the per-sample scores ``(B,)``; the metric is
            their mean over all images.
        higher_is_better: the direction (the report marks it).
        summary: one line for docs and ``--help``.
        needs_attribution: whether ``score`` reads ``batch.attribution``.
        default: in the default set (:func:`default_metrics`).
        reference: the metric that scores a random order the same way, the reference this one must
            beat (the figures draw it beside this one).
    """

    name: str
    score: Callable[[MetricBatch], Tensor]
    higher_is_better: bool
    summary: str
    needs_attribution: bool = True
    default: bool = False
    reference: str | None = None


#: The registered interpretability metrics, by name, in registration order.
METRICS: Registry[Metric] = Registry("metric")


def register_metric(
    name: str,
    *,
    higher_is_better: bool,
    summary: str,
    needs_attribution: bool = True,
    default: bool = False,
    reference: str | None = None,
) -> Callable:
    """Decorator: register ``score(batch: MetricBatch) -> Tensor`` (per-sample scores) as metric ``name``
    (see :class:`Metric` for the arguments). Raises ``ValueError`` for an empty or taken name."""

    def add(score: Callable[[MetricBatch], Tensor]) -> Callable[[MetricBatch], Tensor]:
        METRICS.register(name, Metric(name, score, higher_is_better, summary, needs_attribution, default, reference))
        return score

    return add


def list_metrics() -> list[str]:
    """The registered metric names, in registration order."""
    return METRICS.names()


def default_metrics() -> list[str]:
    """The metrics computed when none are named (``--metrics``, a spec's interpretability section)."""
    return [m.name for m in METRICS.values() if m.default]


def get_metric(name: str) -> Metric:
    """The metric ``name``; ``ValueError`` listing the registered ones when unknown."""
    return METRICS.get(name)


def check_metrics(names: Iterable[str]) -> list[str]:
    """``names`` as a list; ``ValueError`` naming the unknown ones (or none given) and the known ones."""
    names = list(names)
    unknown = [m for m in names if m not in METRICS]
    if unknown or not names:
        raise ValueError(
            f"unknown metric(s) {', '.join(map(repr, unknown)) or '(none given)'}; known: {', '.join(METRICS)}"
        )
    return names


def _flip_auc(batch: MetricBatch, mode: str, order: Tensor) -> Tensor:
    curve = flip_curves(batch.net, batch.x, batch.y, order, mode=mode, steps=batch.steps, baseline=batch.baseline)
    return curve_auc(curve)


@register_metric("vii", higher_is_better=True, default=True, summary="Definition 3 on the attribution")
def _vii(batch: MetricBatch) -> Tensor:
    return vii_scores(batch.x, batch.attribution, batch.mean)


@register_metric(
    "alignment", higher_is_better=True, default=True, summary="`|cos(x - x_bar, a)|`, VII without the signs"
)
def _alignment(batch: MetricBatch) -> Tensor:
    return alignment_scores(batch.x, batch.attribution, batch.mean)


@register_metric(
    "deletion",
    higher_is_better=False,
    default=True,
    reference="deletion_random",
    summary="area under the true class's probability as the elements with the most evidence for it go first",
)
def _deletion(batch: MetricBatch) -> Tensor:
    return _flip_auc(batch, "deletion", batch.evidence * batch.attribution)


@register_metric(
    "insertion",
    higher_is_better=True,
    default=True,
    reference="insertion_random",
    summary="area under the true class's probability as the elements with the most evidence for it come first",
)
def _insertion(batch: MetricBatch) -> Tensor:
    return _flip_auc(batch, "insertion", batch.evidence * batch.attribution)


@register_metric(
    "deletion_random", higher_is_better=False, needs_attribution=False, summary="deletion in a random order"
)
def _deletion_random(batch: MetricBatch) -> Tensor:
    return _flip_auc(batch, "deletion", batch.random)


@register_metric(
    "insertion_random", higher_is_better=True, needs_attribution=False, summary="insertion in a random order"
)
def _insertion_random(batch: MetricBatch) -> Tensor:
    return _flip_auc(batch, "insertion", batch.random)


@register_metric(
    "score_alignment",
    higher_is_better=True,
    summary="`cos(e, s)`: the evidence for the class against the data's score, estimated by a denoiser",
)
def _score_alignment(batch: MetricBatch) -> Tensor:
    return _masked_alignment(batch, _data_score(batch, "score_alignment"))


@register_metric(
    "class_score_alignment",
    higher_is_better=True,
    summary="`cos(e, s(x|y))`: the evidence for the class against the class-conditional score",
)
def _class_score_alignment(batch: MetricBatch) -> Tensor:
    return _masked_alignment(batch, _data_score(batch, "class_score_alignment", batch.y))


@register_metric(
    "posterior_score_alignment",
    higher_is_better=True,
    summary="`cos(e, s(x|y) - s(x))`: the evidence for the class against `grad log p(y|x)` of the data",
)
def _posterior_score_alignment(batch: MetricBatch) -> Tensor:
    name = "posterior_score_alignment"
    return _masked_alignment(batch, _data_score(batch, name, batch.y) - _data_score(batch, name))


def _masked_alignment(batch: MetricBatch, score: Tensor) -> Tensor:
    evidence = batch.evidence * batch.attribution
    if batch.mask is not None:
        evidence, score = evidence * batch.mask, score * batch.mask.to(score.device)
    return score_alignment_scores(evidence, score)


def _data_score(batch: MetricBatch, metric: str, *labels: Tensor) -> Tensor:
    if batch.score is None:
        raise ValueError(
            f"{metric} needs the data's score: pass score= ((x, y=None) -> grad log p(x [| y])), e.g. "
            "noisemod.denoiser.score_function(dataset, sigma, conditional=True), to interpretability()"
        )
    return batch.score(batch.x, *labels)


def interpretability(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    *,
    metrics: Iterable[str] | None = None,
    explainer: str = "gradient",
    floor: bool = False,
    seed: int = 0,
    mean: Tensor | None = None,
    steps: int = FLIP_STEPS,
    baseline: float = 0.0,
    batch_size: int = 256,
    attributions: Tensor | None = None,
    score: Callable[..., Tensor] | None = None,
    **explainer_options,
) -> dict[str, float]:
    """Several interpretability metrics of one explainer on ``images`` ``(N, ...)`` in [0, 1].

    Metrics: names of :data:`METRICS` (default :func:`default_metrics`), each the mean over the
    images of its per-sample scores (see docs/metrics.md):

    - ``vii``: Definition 3 on the explainer's attribution (the paper's: ``explainer="gradient"``).
    - ``alignment``: ``|cos(x - x_bar, a)|`` (:func:`alignment_scores`).
    - ``deletion``, ``insertion``: the area under :func:`flip_curves` (``steps``, ``baseline``),
      the elements ranked by the evidence for the class (the attribution times the explainer's
      ``evidence`` sign: the negative loss gradient for ``gradient``); deletion lower is better,
      insertion higher.
    - ``deletion_random``, ``insertion_random``: the same curves for a random order (seeded with
      ``seed``, one ``torch.rand`` draw per batch), the reference a useful attribution must beat.
    - ``score_alignment``, ``class_score_alignment``: ``cos(evidence * a, score(x [, y]))`` (``score``).

    ``x_bar`` is the mean of ``images`` unless ``mean`` is given. With ``floor``, every metric is
    also computed for :func:`randomized_model` (same architecture, fresh weights from ``seed``),
    as ``<metric>_floor``: what a model that learned nothing scores. ``attributions``: the
    explainer's attributions of ``images`` for ``model``, when already computed (not for the floor);
    ``score``: ``(x, y=None) -> grad_x log p_sigma(x [| y])``, e.g. :func:`noisemod.denoiser.score_function`.

    Raises:
        ValueError: an unknown metric or explainer, images the model cannot take, NaN inputs.
    """
    from .explainers import explain, get_explainer

    metrics = check_metrics(default_metrics() if metrics is None else metrics)
    evidence = get_explainer(explainer).evidence
    _check_images(model, images, attributions)
    device = model_device(model, images.device)
    mean = images.double().mean(0) if mean is None else torch.as_tensor(mean, dtype=torch.float64)
    scored = {"": model, "_floor": randomized_model(model, seed)} if floor else {"": model}
    needs_attribution = any(METRICS[m].needs_attribution for m in metrics)
    out: dict[str, float] = {}
    for suffix, net in scored.items():
        sums = dict.fromkeys(metrics, 0.0)
        random_order = torch.Generator().manual_seed(seed)
        for i in range(0, len(images), batch_size):
            x, y = images[i : i + batch_size].to(device), labels[i : i + batch_size].to(device)
            if attributions is not None and suffix == "":
                a = attributions[i : i + batch_size].to(device)
            elif needs_attribution:
                a = explain(net, x, y, explainer, batch_size=batch_size, **explainer_options)
            else:
                a = None
            r = torch.rand(x.shape, generator=random_order).to(device)  # the random order of the references
            batch = MetricBatch(net, x, y, a, r, mean, evidence, steps, baseline, score)
            for m in metrics:
                sums[m] += float(METRICS[m].score(batch).sum())
        out.update({m + suffix: sums[m] / len(images) for m in metrics})
    return out


# ----------------------------------------------------------------------------- yardsticks

#: The explainers the yardsticks measure: the paper's loss gradient, the target logit's gradient
#: (against the class-conditional score in Srinivas et al. 2023) and the logit sum's gradient
#: (against the unconditional one).
YARDSTICK_EXPLAINERS = ("gradient", "saliency", "logit-sum")
#: The pairings with the data's score: ``s(x)``, ``s(x | y)`` and ``s(x | y) - s(x) = grad log p(y | x)``.
SCORE_METRICS = ("score_alignment", "class_score_alignment", "posterior_score_alignment")
#: Where a score alignment is taken: at the test image, or at the image plus Gaussian noise of the
#: score's sigma (explanation, score and cosine all there).
POINTS = ("clean", "noisy")
#: Which elements a score alignment compares: all, or those strictly inside (0, 1) in the clean image.
PIXELS = ("all", "unsaturated")


@dataclass(frozen=True)
class Yardstick:
    """One way of measuring whether an explanation is perceptually aligned: ``metric`` on the
    attributions of ``explainer``; for a score alignment also the score's noise level ``sigma``,
    the ``point`` where it is taken and the ``pixels`` it compares.

    Its :attr:`name` (``explainer/metric[@sigma[,noisy][,unsaturated]]``, e.g.
    ``logit-sum/score_alignment@0.25,noisy``) is how archives, validation tables and claims name it;
    :meth:`parse` reads one back."""

    explainer: str
    metric: str
    sigma: float | None = None
    point: str = "clean"
    pixels: str = "all"

    def __post_init__(self):
        from .explainers import get_explainer

        get_explainer(self.explainer)
        check_metrics([self.metric])
        scored = self.metric in SCORE_METRICS
        if scored != (self.sigma is not None) or (self.sigma is not None and not self.sigma > 0):
            raise ValueError(f"yardstick {self.name!r}: a positive sigma for the score alignments, none for the others")
        if self.point not in POINTS or self.pixels not in PIXELS:
            raise ValueError(f"yardstick {self.name!r}: point one of {POINTS}, pixels one of {PIXELS}")
        if not scored and (self.point, self.pixels) != ("clean", "all"):
            raise ValueError(f"yardstick {self.name!r}: only the score alignments take a point and pixels")

    @property
    def name(self) -> str:
        if self.sigma is None:
            return f"{self.explainer}/{self.metric}"
        options = [f"{self.sigma:g}"] + [o for o in (self.point, self.pixels) if o not in ("clean", "all")]
        return f"{self.explainer}/{self.metric}@{','.join(options)}"

    @property
    def higher_is_better(self) -> bool:
        return METRICS[self.metric].higher_is_better

    @classmethod
    def parse(cls, name: str) -> Yardstick:
        """The yardstick called ``name``; ``ValueError`` naming it when it is not one."""
        head, _, options = name.partition("@")
        explainer, _, metric = head.partition("/")
        parts = options.split(",") if options else []
        try:
            sigma = float(parts[0]) if parts else None
            point = "noisy" if "noisy" in parts[1:] else "clean"
            pixels = "unsaturated" if "unsaturated" in parts[1:] else "all"
            if set(parts[1:]) - {"noisy", "unsaturated"}:
                raise ValueError(f"unknown options {parts[1:]}")
            return cls(explainer, metric, sigma, point, pixels)
        except ValueError as e:
            raise ValueError(f"not a yardstick: {name!r} ({e})") from None


def yardsticks(sigmas: Iterable[float] = (0.1, 0.25, 0.5)) -> list[Yardstick]:
    """Every yardstick the validation scores: VII, alignment, deletion and insertion of each of
    :data:`YARDSTICK_EXPLAINERS`, and each score pairing at each of ``sigmas``, point and pixels."""
    out = [Yardstick(e, m) for e in YARDSTICK_EXPLAINERS for m in ("vii", "alignment", "deletion", "insertion")]
    for e, m, sigma, point, pixels in itertools.product(YARDSTICK_EXPLAINERS, SCORE_METRICS, sigmas, POINTS, PIXELS):
        out.append(Yardstick(e, m, float(sigma), point, pixels))
    return out


def measure_yardsticks(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    sticks: Iterable[Yardstick],
    *,
    mean: Tensor,
    scores: Callable[[float], Callable[..., Tensor]] | None = None,
    floor: bool = True,
    seed: int = 0,
    batch_size: int = 256,
) -> dict[str, float]:
    """Each yardstick's mean over ``images`` (``(N, ...)`` in [0, 1]) for ``model``, by name, and with
    ``floor`` the same for :func:`randomized_model` (``seed``) as ``<name>_floor``.

    ``mean``: ``x_bar`` (the mean test image). ``scores``: ``sigma -> ((x, y=None) -> score)``, the
    data's score at each sigma asked (e.g. :func:`noisemod.denoiser.score_of` of a class-conditional
    denoiser). A noisy point adds ``sigma * n`` (``n`` standard normal, seeded with ``seed``, the
    same for the model and its floor) and is not clipped. Scores are computed once for all
    explainers and both models; attributions once per model, point and explainer.
    """
    from .explainers import explain, get_explainer

    sticks = list(sticks)
    _check_images(model, images, None)
    device = model_device(model, images.device)
    mean = torch.as_tensor(mean, dtype=torch.float64)
    if scores is None and any(s.sigma is not None for s in sticks):
        raise ValueError("the score alignments need scores= (sigma -> score function)")
    points = {_point(s): _at(images, *_point(s), seed) for s in sticks}
    unsaturated = (images > 0) & (images < 1)
    cache: dict[tuple, Tensor] = {}

    def data_score(point, sigma, conditional: bool) -> Tensor:
        key = (point, sigma, conditional)
        if key not in cache:
            fn = scores(sigma)
            x = points[point]
            parts = [
                fn(x[i : i + batch_size].to(device), *([labels[i : i + batch_size].to(device)] if conditional else []))
                for i in range(0, len(x), batch_size)
            ]
            cache[key] = torch.cat(parts).detach()
        return cache[key]

    nets = {"": model, "_floor": randomized_model(model, seed)} if floor else {"": model}
    out: dict[str, float] = {}
    for suffix, net in nets.items():
        for (point, explainer), group in _grouped(sticks).items():
            x_all = points[point]
            a_all = explain(net, x_all, labels, explainer, batch_size=batch_size)
            evidence = get_explainer(explainer).evidence
            for stick in group:
                total = 0.0
                for i in range(0, len(x_all), batch_size):
                    j = slice(i, i + batch_size)
                    x, y = x_all[j].to(device), labels[j].to(device)
                    score = None
                    if stick.sigma is not None:
                        score = _cached_score(data_score, point, stick.sigma, j)
                    mask = unsaturated[j].to(device) if stick.pixels == "unsaturated" else None
                    batch = MetricBatch(net, x, y, a_all[j], torch.zeros_like(x), mean, evidence, FLIP_STEPS, 0.0)
                    batch = dataclasses.replace(batch, score=score, mask=mask)
                    total += float(METRICS[stick.metric].score(batch).sum())
                out[stick.name + suffix] = total / len(images)
    return out


def _point(stick: Yardstick) -> tuple[str, float | None]:
    return ("noisy", stick.sigma) if stick.point == "noisy" else ("clean", None)


def _at(images: Tensor, point: str, sigma: float | None, seed: int) -> Tensor:
    if point == "clean":
        return images
    noise = torch.randn(images.shape, generator=torch.Generator().manual_seed(seed), dtype=images.dtype)
    return images + sigma * noise.to(images.device)


def _grouped(sticks: list[Yardstick]) -> dict[tuple, list[Yardstick]]:
    groups: dict[tuple, list[Yardstick]] = {}
    for s in sticks:
        groups.setdefault((_point(s), s.explainer), []).append(s)
    return groups


def _cached_score(data_score: Callable, point: tuple, sigma: float, rows: slice) -> Callable[..., Tensor]:
    def score(x: Tensor, *labels: Tensor) -> Tensor:
        return data_score(point, sigma, bool(labels))[rows]

    return score
