"""Adversarial attacks: PGD (Madry et al. 2018) and FGSM with random start (Wong et al. 2020).

One attack, :class:`PGD`, with a threat-model step (:class:`LinfStep` or :class:`L2Step`) that
knows how to start at random, take a step along the gradient and project back onto the
``eps``-ball. FGSM is PGD with a single step (:func:`fgsm`). The same object serves inside
adversarial training (``x_adv = attack.perturb(x, y)``) and for robust-accuracy evaluation
(:func:`robust_accuracy`).

Model state: the attack runs the model inside :func:`noisemod.gradients.frozen_eval`, i.e. in
eval mode with every parameter's ``requires_grad`` off, and restores each module's mode and each
flag afterwards. So an attack never updates batch-norm running statistics, never uses dropout,
never computes weight gradients and leaves every parameter's ``.grad`` untouched; a training loop
then trains on ``x_adv`` in its own (train) mode.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from numbers import Real

import torch
from torch import Tensor, nn

from .gradients import Batches, as_batches, batch_input_gradients, batch_to_device, frozen_eval, model_device

__all__ = [
    "ATTACK_DEFAULTS",
    "DEFAULT_EPS_WARMUP",
    "EPS_WARMUP_DEFAULTS",
    "EVAL_STEPS",
    "FGSM_DEFAULTS",
    "NORMS",
    "PGD",
    "RELATIVE_DEFAULTS",
    "L2Step",
    "LinfStep",
    "attack_defaults",
    "declares_defaults",
    "eps_warmup_default",
    "evaluation_attack",
    "fgsm",
    "robust_accuracy",
    "robustness_eps",
]

#: The attack behind ``robust_accuracy`` in result.json: PGD-50 with Madry et al.'s step rule.
EVAL_STEPS = 50
#: For a dataset that declares no attack defaults, once eps is given: the step rules of CIFAR-10's
#: defaults, relative to eps (PGD: alpha = eps / 4, 7 steps, Madry et al.; FGSM: alpha = 1.25 eps,
#: Wong et al. 2020), and its warm-up of 1 epoch (:data:`DEFAULT_EPS_WARMUP`).
RELATIVE_DEFAULTS: dict[str, dict] = {"pgd": {"alpha": 0.25, "steps": 7}, "fgsm": {"alpha": 1.25}}
DEFAULT_EPS_WARMUP = 1.0


def _declared(dataset: str) -> Mapping:
    """What ``dataset`` declares about attacks (``register_dataset(attack=...)``); {} for none or an unknown name."""
    from .data.datasets import DATASETS

    entry = DATASETS.get(dataset, None)
    return entry.attack if entry is not None else {}


class _Declared(Mapping):
    """dataset -> what it declares under one key (``pgd``, ``fgsm``, ``eps_warmup``): a live, read-only
    view of the dataset registry, for the datasets that declare it."""

    def __init__(self, key: str):
        self._key = key

    def _table(self) -> dict:
        from .data.datasets import DATASETS

        return {name: d.attack[self._key] for name, d in DATASETS.items() if self._key in d.attack}

    def __getitem__(self, dataset: str):
        value = self._table()[dataset]
        return dict(value) if isinstance(value, Mapping) else value

    def __iter__(self):
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())

    def __repr__(self) -> str:
        return repr(dict(self.items()))


#: dataset -> its PGD defaults (``eps``, ``alpha``, ``steps``), as declared with the dataset.
ATTACK_DEFAULTS: Mapping[str, dict] = _Declared("pgd")
#: dataset -> its FGSM-with-random-start defaults (``eps``, ``alpha``), as declared with the dataset.
FGSM_DEFAULTS: Mapping[str, dict] = _Declared("fgsm")
#: dataset -> its epochs of linear eps warm-up (see :func:`eps_warmup_default`), as declared with the dataset.
EPS_WARMUP_DEFAULTS: Mapping[str, float] = _Declared("eps_warmup")


def declares_defaults(method: str, dataset: str) -> bool:
    """Whether ``dataset`` declares defaults for ``method`` (``"pgd"`` or ``"fgsm"``): else an attack on
    it needs ``eps`` given."""
    return method in _declared(dataset)


def attack_defaults(method: str, dataset: str, eps: float | None = None) -> dict:
    """Default attack settings for a dataset, as declared with it (``register_dataset(attack=...)``):
    ``mnist`` and ``fashion-mnist`` MNIST's (Madry et al.), ``cifar10``, ``digits`` and ``synthetic``
    CIFAR-10's.

    Args:
        method: ``"pgd"`` (``eps``, ``alpha``, ``steps``) or ``"fgsm"`` (``eps``, ``alpha``).
        dataset: a registered dataset name.
        eps: the radius the attack will use, read only for a dataset that declares no defaults (as
            ``imagefolder``): alpha and steps then follow from it (:data:`RELATIVE_DEFAULTS`).

    Returns:
        A new dict of keyword arguments for :class:`PGD` or :func:`fgsm`.

    Raises:
        ValueError: an unknown method, or a dataset that declares no defaults and no ``eps``.
    """
    if method not in RELATIVE_DEFAULTS:
        raise ValueError(f"method must be 'pgd' or 'fgsm', got {method!r}")
    declared = _declared(dataset).get(method)
    if declared is not None:
        return dict(declared)
    if eps is None:
        raise ValueError(f"dataset {dataset!r} declares no default attack radius: give eps")
    rule = RELATIVE_DEFAULTS[method]
    return {"eps": eps, **rule, "alpha": rule["alpha"] * eps}


def robustness_eps(dataset: str) -> tuple[float, ...]:
    """The radii (Linf, [0, 1] pixel units) at which every model of ``dataset`` is attacked after
    training when a spec asks for robustness, as declared with the dataset: a small one and the
    training one (MNIST 0.1 and 0.3, Fashion-MNIST 0.05 and 0.1, CIFAR-10 2/255 and 8/255)."""
    declared = _declared(dataset).get("robustness_eps")
    if not declared:
        raise ValueError(f"dataset {dataset!r} declares no robustness radii (register_dataset(attack=...))")
    return tuple(float(e) for e in declared)


def eps_warmup_default(dataset: str) -> float:
    """Epochs over which adversarial training ramps eps (and alpha) from 0 to their values when
    ``eps_warmup`` is not set, as declared with the dataset: ``mnist`` and ``fashion-mnist`` 2, the
    others 1 (:data:`DEFAULT_EPS_WARMUP` for a dataset that declares none).

    A large eps from the first step can push a small model into predicting one class for good
    (measured: LeNet, MNIST, eps 0.3, seeds 0 and 2; tests/test_adversarial.py reproduces it); a linear eps ramp
    avoids it, as in Wong & Kolter 2018 (``convex_adversarial``: eps ramped over the first half of
    training) and Andriushchenko & Flammarion 2020 (``understanding-fast-adv-training``: 5 epochs
    on SVHN). The values are the shortest ramps that trained every seed we ran; 0 turns the
    warm-up off.
    """
    return _declared(dataset).get("eps_warmup", DEFAULT_EPS_WARMUP)


def evaluation_attack(model: nn.Module, *, eps: float, norm: str = "linf", generator=None) -> PGD:
    """The attack behind ``robust_accuracy`` in result.json: PGD with :data:`EVAL_STEPS` (50)
    steps of ``2.5 * eps / 50`` (Madry et al.'s rule: the steps can cross the ball 2.5 times) from
    a random start, stronger than the training attacks (PGD-40 at most, by default)."""
    return PGD(model, eps=eps, alpha=2.5 * eps / EVAL_STEPS, steps=EVAL_STEPS, norm=norm, generator=generator)


def _per_sample(norms: Tensor, like: Tensor) -> Tensor:
    """Reshape per-sample values ``(B,)`` to broadcast against ``like`` ``(B, ...)``."""
    return norms.view(-1, *([1] * (like.dim() - 1)))


def _check_eps(eps) -> float:
    if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(eps) or eps < 0:
        raise ValueError(f"eps must be a finite number >= 0, got {eps!r}")
    return float(eps)


def _noise(sample, shape, like: Tensor, generator: torch.Generator | None) -> Tensor:
    """``sample(shape)`` (``torch.rand`` or ``torch.randn``) in ``like``'s dtype, drawn on the
    generator's device (so a CPU generator also seeds CUDA attacks) and moved to ``like``'s."""
    device = generator.device if generator is not None else like.device
    return sample(shape, generator=generator, device=device, dtype=like.dtype).to(like.device)


class LinfStep:
    """L-infinity threat model: perturbations ``delta`` with ``max_i |delta_i| <= eps``.

    Args:
        eps: radius of the ball (same units as the inputs, e.g. 8/255 for images in [0, 1]).
    """

    def __init__(self, eps: float):
        self.eps = _check_eps(eps)

    def random_init(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A perturbation uniform in ``[-eps, eps]`` per element, shaped like ``x``."""
        return (2 * _noise(torch.rand, x.shape, x, generator) - 1) * self.eps

    def step(self, delta: Tensor, grad: Tensor, alpha: float) -> Tensor:
        """Steepest ascent step: returns ``delta + alpha * sign(grad)``."""
        return delta + alpha * grad.sign()

    def project(self, delta: Tensor) -> Tensor:
        """Nearest point of the ball: clamp each element to ``[-eps, eps]``."""
        return delta.clamp(-self.eps, self.eps)


class L2Step:
    """L2 threat model: perturbations with per-sample ``||delta||_2 <= eps``.

    Args:
        eps: radius of the ball.
    """

    def __init__(self, eps: float):
        self.eps = _check_eps(eps)

    def random_init(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """A perturbation uniform in the ball, per sample: a Gaussian direction (uniform on the
        sphere) scaled to the radius ``eps * U^(1/d)``, ``d`` the number of elements of a sample
        (so in high dimension it lies close to the sphere, as volume does)."""
        direction = _noise(torch.randn, x.shape, x, generator)
        norms = direction.flatten(1).norm(dim=1).clamp_min(torch.finfo(x.dtype).tiny)
        radius = self.eps * _noise(torch.rand, (len(x),), x, generator).pow(1.0 / max(x.shape[1:].numel(), 1))
        return direction * _per_sample(radius / norms, x)

    def step(self, delta: Tensor, grad: Tensor, alpha: float) -> Tensor:
        """Steepest ascent step: returns ``delta + alpha * grad / ||grad||_2`` per sample (a sample
        with zero gradient does not move)."""
        norms = grad.flatten(1).norm(dim=1)
        norms = torch.where(norms > 0, norms, torch.ones_like(norms))
        return delta + alpha * grad / _per_sample(norms, grad)

    def project(self, delta: Tensor) -> Tensor:
        """Nearest point of the ball: rescale each sample whose norm exceeds ``eps`` to norm ``eps``."""
        norms = delta.flatten(1).norm(dim=1)
        scale = (self.eps / norms.clamp_min(torch.finfo(delta.dtype).tiny)).clamp(max=1.0)
        return delta * _per_sample(scale, delta)


NORMS = {"linf": LinfStep, "l2": L2Step}


class PGD:
    """Projected gradient descent attack (untargeted, cross-entropy), L-infinity or L2.

    Each call of :meth:`perturb` starts from ``x`` (plus a random point of the ball when
    ``random_start``), then ``steps`` times: computes the gradient of the summed cross-entropy with
    respect to the current adversarial input, steps along it (``alpha * sign(grad)`` for linf,
    ``alpha * grad / ||grad||`` for l2), projects the perturbation onto the ``eps``-ball and clamps
    the input to ``bounds``.

    The model runs inside :func:`noisemod.gradients.frozen_eval`: in eval mode, with parameters'
    ``requires_grad`` off (no weight gradients are computed; ``.grad`` stays as it was), and its
    modes and flags are restored afterwards. Batch-norm running statistics are never updated by the
    attack; the training loop then trains on the returned ``x_adv`` in train mode.

    Args:
        model: classifier returning logits ``(B, classes)``, on the device of the inputs.
        eps: radius of the threat model's ball (>= 0).
        alpha: step size (> 0).
        steps: number of gradient steps (integer >= 1).
        norm: ``"linf"`` or ``"l2"``.
        random_start: start from a random point of the ball (uniform, see the step classes).
        bounds: ``(low, high)`` valid input range; adversarial inputs are clamped to it.
        generator: ``torch.Generator`` for the random start (reproducible attacks); any device.
    """

    def __init__(
        self,
        model: nn.Module,
        *,
        eps: float,
        alpha: float,
        steps: int,
        norm: str = "linf",
        random_start: bool = True,
        bounds: tuple[float, float] = (0.0, 1.0),
        generator: torch.Generator | None = None,
    ):
        if norm not in NORMS:
            raise ValueError(f"norm must be one of {tuple(NORMS)}, got {norm!r}")
        if isinstance(alpha, bool) or not isinstance(alpha, Real) or not math.isfinite(alpha) or alpha <= 0:
            raise ValueError(f"alpha must be a finite number > 0, got {alpha!r}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        low, high = bounds
        if not low < high:
            raise ValueError(f"bounds must be (low, high) with low < high, got {bounds!r}")
        self.model = model
        self.threat = NORMS[norm](eps)
        self.eps, self.alpha, self.steps, self.norm = self.threat.eps, float(alpha), steps, norm
        self.full_eps, self.full_alpha = self.eps, self.alpha  # the strength set_strength scales
        self.random_start = bool(random_start)
        self.bounds = (float(low), float(high))
        self.generator = generator

    def perturb(self, x: Tensor, y: Tensor) -> Tensor:
        """Adversarial examples for one batch.

        Args:
            x: ``(B, ...)`` floating inputs within ``bounds``, on the model's device.
            y: ``(B,)`` class indices.

        Returns:
            Detached ``x_adv`` with ``x``'s shape, dtype and device, within ``eps`` of ``x`` under
            the norm and within ``bounds``.
        """
        if not x.is_floating_point():
            raise ValueError(f"inputs must be a floating tensor, got dtype {x.dtype}")
        x = x.detach()
        y = y.to(x.device, torch.long)
        low, high = self.bounds
        delta = self.threat.random_init(x, self.generator) if self.random_start else torch.zeros_like(x)
        x_adv = (x + delta).clamp(low, high)
        with frozen_eval(self.model):
            for _ in range(self.steps):
                grad = batch_input_gradients(self.model, x_adv, y, "loss")
                delta = self.threat.project(self.threat.step(x_adv - x, grad, self.alpha))
                x_adv = (x + delta).clamp(low, high)
        return x_adv.detach()

    def set_strength(self, fraction: float) -> None:
        """Scale ``eps`` and ``alpha`` to ``fraction`` (in [0, 1]) of the values the attack was built
        with, e.g. for a warm-up that ramps the threat up from 0."""
        if isinstance(fraction, bool) or not isinstance(fraction, Real) or not 0 <= fraction <= 1:
            raise ValueError(f"fraction must be a number in [0, 1], got {fraction!r}")
        self.eps = self.threat.eps = self.full_eps * fraction
        self.alpha = self.full_alpha * fraction

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(norm={self.norm!r}, eps={self.eps:g}, alpha={self.alpha:g}, "
            f"steps={self.steps}, random_start={self.random_start}, bounds={self.bounds})"
        )


def fgsm(
    model: nn.Module,
    *,
    eps: float,
    alpha: float,
    norm: str = "linf",
    random_start: bool = True,
    bounds: tuple[float, float] = (0.0, 1.0),
    generator: torch.Generator | None = None,
) -> PGD:
    """FGSM: PGD with a single step. With ``random_start`` and ``alpha = 1.25 eps`` this is the
    "fast adversarial training" attack of Wong et al. (2020); with no random start and
    ``alpha = eps`` it is Goodfellow et al.'s original FGSM.

    Args: as :class:`PGD`, without ``steps``.

    Returns:
        A :class:`PGD` with ``steps=1``.
    """
    return PGD(
        model, eps=eps, alpha=alpha, steps=1, norm=norm, random_start=random_start, bounds=bounds, generator=generator
    )


def robust_accuracy(
    model: nn.Module, inputs: Batches, targets: Tensor | None = None, *, attack: PGD, batch_size: int = 256
) -> float:
    """Top-1 accuracy on adversarial examples, in [0, 1].

    Args:
        model: classifier returning logits; the attack must attack this same model. Evaluated in
            eval mode and left as it was.
        inputs: ``(N, ...)`` floating tensor with ``targets``, or an iterable of ``(x, y)`` batches
            with ``targets=None``; moved batch by batch to the model's device.
        targets: ``(N,)`` class indices when ``inputs`` is a tensor.
        attack: e.g. a :class:`PGD`; its ``perturb(x, y)`` makes the adversarial batch.
        batch_size: samples per batch when ``inputs`` is a tensor.

    Returns:
        Fraction of samples still classified correctly after the attack.
    """
    if getattr(attack, "model", model) is not model:
        raise ValueError("attack was built for a different model than the one evaluated")
    correct, count = 0, 0
    device = None
    for x, y in as_batches(inputs, targets, batch_size):
        device = device or model_device(model, x.device)
        x, y = batch_to_device(x, y, device)
        x_adv = attack.perturb(x, y)
        with frozen_eval(model), torch.no_grad():
            correct += int((model(x_adv).argmax(1) == y).sum())
        count += len(y)
    if count == 0:
        raise ValueError("cannot compute the robust accuracy of an empty dataset")
    return correct / count
