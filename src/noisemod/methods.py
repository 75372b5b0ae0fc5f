"""Training objectives, one registered definition each (like the model and dataset registries).

A method is a :class:`Method` object with ``wrap(model)`` (the module that is trained) and
``step(net, x, y) -> (loss, logits)``; the loop in :mod:`noisemod.train` is shared. Its
definition (:class:`MethodDef`, made by :func:`register_method`) says everything else once: its
name, the method settings it uses (fields of :class:`~noisemod.config.TrainConfig` declared with
``method=True``), its family, a one-line summary, its run-id tag and its builder. The command
line, spec checks, run ids, figures and the docs table derive from the registry.

This module does not import :mod:`noisemod.config`: the config is the layer above, which asks
the registry for method names, the settings a method uses and what it cannot do, and derives run
ids and the docs tables (``config.run_id_parts``, ``config.methods_table``). A builder takes the
config as an argument and reads its fields.

Adding a method::

    @register_method("my-method", settings=("beta",), family="control", summary="cross-entropy on ...")
    def _build(config, model, generator):
        return MyMethod(config.beta, generator)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gradients import full_precision
from .modulation import NoiseModulation
from .registry import Registry

__all__ = [
    "CONTROL_SIGMA",
    "FAMILIES",
    "METHODS",
    "Adversarial",
    "CarrierOnly",
    "EpochCheck",
    "InputGradientRegularized",
    "InputNoise",
    "Method",
    "MethodDef",
    "Modulated",
    "NoiseAugmented",
    "NoiseModulated",
    "Standard",
    "build_method",
    "cross_entropy_step",
    "get_method",
    "list_methods",
    "methods_using",
    "nm_factor_spread",
    "register_method",
    "sample_gamma",
]

#: What a method is, for figures and reports: the baseline, noise modulation, adversarial
#: training, a gradient regularizer, or a control (a cheap alternative nm must beat).
FAMILIES = ("baseline", "nm", "adversarial", "regularizer", "control")

Builder = Callable[..., "Method"]


@dataclass(frozen=True)
class MethodDef:
    """One registered training method.

    Attributes:
        name: the ``--method`` value.
        build: ``build(config, model, generator) -> Method``; ``model`` is the plain classifier
            (attacks use it), ``generator`` the run's seeded generator for all training noise.
        settings: the method settings it uses, in run-id order.
        family: one of :data:`FAMILIES`.
        summary: the objective in one line (``--help`` and docs/training.md).
        tag: its part of run ids (default: the name).
        requires: settings it needs at given values, ``{"compile": False}``: a config with
            another value is refused, naming the setting.
        check: ``check(config) -> (setting, what it expects) | None``, any other need of the
            method (pgd: a radius, given or declared by the dataset).
    """

    name: str
    build: Builder
    settings: tuple[str, ...] = ()
    family: str = "baseline"
    summary: str = ""
    tag: str = ""
    requires: tuple[tuple[str, object, str], ...] = ()  # (setting, value, why)
    check: Callable[..., tuple[str, str] | None] | None = None

    def problem(self, config) -> tuple[str, str] | None:
        """What is wrong when ``config`` asks for what this method cannot do: ``(setting, what it
        expects)``, which :class:`~noisemod.config.TrainConfig` raises as a ``ConfigError``; else None."""
        for name, value, why in self.requires:
            if getattr(config, name) != value:
                return name, f"{value!r} with method {self.name} ({why})"
        return self.check(config) if self.check is not None else None


#: The registered methods, by name, in registration order.
METHODS: Registry[MethodDef] = Registry("method")


def register_method(
    name: str,
    *,
    settings: tuple[str, ...] = (),
    family: str = "baseline",
    summary: str = "",
    tag: str = "",
    requires: dict[str, tuple[object, str]] | None = None,
    check: Callable[..., tuple[str, str] | None] | None = None,
) -> Callable[[Builder], Builder]:
    """Decorator: register ``build(config, model, generator) -> Method`` as method ``name``.

    ``settings`` must be method settings of :class:`~noisemod.config.TrainConfig` (``method=True``):
    :mod:`noisemod.config`, which imports this module, holds :data:`METHODS` to that rule
    (``Registry.add_check``). ``requires`` maps a setting to ``(value, why)``; ``check`` is any other
    need (:class:`MethodDef`). Raises ``ValueError`` for an empty or taken name, an unknown family or setting.
    """
    if family not in FAMILIES:
        raise ValueError(f"method {name!r}: family must be one of {', '.join(FAMILIES)}, got {family!r}")
    needs = tuple((k, v, why) for k, (v, why) in (requires or {}).items())

    def add(build: Builder) -> Builder:
        METHODS.register(name, MethodDef(name, build, tuple(settings), family, summary, tag, needs, check))
        return build

    return add


def list_methods() -> list[str]:
    """The registered method names, in registration order."""
    return METHODS.names()


def get_method(name: str) -> MethodDef:
    """The definition of method ``name``; ``ValueError`` listing the registered ones when unknown."""
    return METHODS.get(name)


def methods_using(setting: str) -> list[str]:
    """The methods whose definition lists ``setting``."""
    return [m.name for m in METHODS.values() if setting in m.settings]


def build_method(config, model: nn.Module, generator: torch.Generator | None = None) -> Method:
    """The objective of ``config.method`` for ``model`` (the raw classifier, which attacks use)."""
    return get_method(config.method).build(config, model, generator)


# ----------------------------------------------------------------------------- the objectives


def cross_entropy_step(net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    """``(mean cross-entropy of net(x), logits)``, the loss in full precision under autocast."""
    logits = net(x)
    return F.cross_entropy(full_precision(logits), y), logits


@dataclass
class EpochCheck:
    """What a method says after an epoch: extra metrics.csv columns, a reason to stop (or None), and
    whether the epoch ended with the method at full strength (``eligible``; False while a warm-up
    still ramps it up). best.pt prefers eligible epochs: a warm-up epoch is kept only while no
    eligible one exists."""

    metrics: dict = field(default_factory=dict)
    stop: str | None = None
    eligible: bool = True


class Method:
    """A training objective: ``wrap(model)`` returns the module whose forward is trained (the one
    DDP wraps); ``step(net, x, y)`` returns ``(loss, logits)`` for one batch.

    Optional hooks, called by the trainer: ``set_progress(epochs)`` before each step (a schedule
    over training), ``end_epoch(model, probe, history)`` after each epoch, and ``threat``, the
    ``(eps, norm)`` a method trains to resist (robust accuracy is measured against it). Each is a
    function of its arguments only, so a resumed run computes what an uninterrupted one does.
    """

    threat: tuple[float, str] | None = None

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def step(self, net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def set_progress(self, epochs: float) -> None:
        """Called before each training step with the epochs completed at its end, ``epoch + (step + 1) / steps``."""

    def end_epoch(self, model: nn.Module, probe: tuple[Tensor, Tensor], history: list[dict]) -> EpochCheck:
        """Called after each epoch with the plain model, a fixed batch of training images (``probe``)
        and the metrics rows of the epochs before."""
        return EpochCheck()


class Standard(Method):
    """Cross-entropy on the clean batch."""

    def step(self, net, x, y):
        return cross_entropy_step(net, x, y)


class Modulated(nn.Module):
    """A classifier with noise modulation in front of it (default) or right after its own
    normalization (``after_norm=True``, for models built by :func:`noisemod.create_model`,
    which have ``.normalize`` and ``.net``). In eval mode it is exactly the classifier."""

    def __init__(self, classifier: nn.Module, modulation: NoiseModulation, after_norm: bool = False):
        super().__init__()
        if after_norm and not (hasattr(classifier, "normalize") and hasattr(classifier, "net")):
            raise ValueError(
                "modulate_after_norm needs a model with .normalize and .net "
                "(built by noisemod.create_model or noisemod.models.wrap_model)"
            )
        self.classifier, self.modulation, self.after_norm = classifier, modulation, after_norm

    def forward(self, x: Tensor) -> Tensor:
        if self.after_norm:
            return self.classifier.net(self.modulation(self.classifier.normalize(x)))
        return self.classifier(self.modulation(x))


class NoiseModulated(Standard):
    """Noise modulation (Definition 2): every training input gets a fresh carrier; the loss is
    the cross-entropy of the modulated model (:class:`Modulated`)."""

    def __init__(
        self,
        beta: float,
        noise: str,
        generator: torch.Generator | None,
        after_norm: bool = False,
        fused: bool = False,
    ):
        # Inputs are validated once when the data is loaded, so no per-step finiteness check (a sync).
        self.modulation = NoiseModulation(beta, noise, generator, check=False, fused=fused)
        self.after_norm = after_norm

    def wrap(self, model: nn.Module) -> nn.Module:
        return Modulated(model, self.modulation, self.after_norm)


class Adversarial(Method):
    """Adversarial training (Madry et al.; FGSM with random start is PGD with one step): train on
    ``attack.perturb(x, y)``. The attack runs the model in eval mode with frozen parameters
    (see :mod:`noisemod.attacks`), so batch-norm statistics are updated only by the training
    forward pass on the adversarial batch.

    ``warmup`` epochs: eps and alpha rise linearly from 0 to the attack's values, step by step
    (``set_progress``); an epoch that ends below the full eps is not eligible for best.pt
    (:class:`EpochCheck`), since on clean validation accuracy a half-eps model often beats every
    model trained at the full eps. After each epoch the PGD-10 accuracy (step eps/4, at the full eps) of the
    probe batch goes into metrics.csv; with ``early_stop``, a fall of more than
    :attr:`COLLAPSE` below its best so far stops training (catastrophic overfitting, Wong et al.
    2020: a single-step attack stops being one the model cannot fit).
    """

    COLLAPSE = 0.2

    def __init__(self, attack, warmup: float = 0.0, early_stop: bool = False):
        self.attack, self.warmup, self.early_stop = attack, warmup, early_stop
        self.threat = (attack.full_eps, attack.norm)

    def step(self, net, x, y):
        return cross_entropy_step(net, self.attack.perturb(x, y), y)

    def set_progress(self, epochs: float) -> None:
        self.attack.set_strength(1.0 if self.warmup <= 0 else min(1.0, epochs / self.warmup))

    def end_epoch(self, model, probe, history) -> EpochCheck:
        from .attacks import PGD, robust_accuracy

        eps, norm = self.threat
        generator = torch.Generator(device=probe[0].device).manual_seed(0)  # the same attack every epoch
        attack = PGD(model, eps=eps, alpha=eps / 4, steps=10, norm=norm, generator=generator) if eps > 0 else None
        probe_acc = robust_accuracy(model, *probe, attack=attack) if attack is not None else float("nan")
        check = EpochCheck(
            {"attack_eps": self.attack.eps, "probe_robust_accuracy": probe_acc},
            eligible=self.attack.eps >= self.attack.full_eps,
        )
        best = max(
            (r["probe_robust_accuracy"] for r in history if r.get("probe_robust_accuracy") is not None), default=None
        )
        if self.early_stop and best is not None and probe_acc < best - self.COLLAPSE:
            check.stop = (
                f"catastrophic overfitting: PGD accuracy on the probe images fell from {best:.3f} to {probe_acc:.3f}"
            )
        return check


class InputNoise(nn.Module):
    """Noise on the input in train mode, nothing in eval mode (like Dropout), per element, drawn from
    ``generator``: ``x + sigma * e`` (``additive``) or ``x * (1 + sigma * e)`` (``multiplicative``),
    ``e ~ N(0, 1)``; or ``x * g`` (``gamma``), ``g ~ Gamma(1 / sigma^2, sigma^2)``: mean 1, standard
    deviation ``sigma``, never negative."""

    KINDS = ("additive", "multiplicative", "gamma")

    def __init__(self, kind: str, sigma: float, generator: torch.Generator | None = None):
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind must be one of {', '.join(self.KINDS)}, got {kind!r}")
        self.kind, self.sigma, self.generator = kind, float(sigma), generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.sigma == 0:
            return x
        device = self.generator.device if self.generator is not None else x.device
        if self.kind == "gamma":
            k = 1.0 / self.sigma**2
            g = sample_gamma(x.shape, k, generator=self.generator, device=device, dtype=x.dtype) / k
            return x * g.to(x.device)
        e = torch.randn(x.shape, generator=self.generator, device=device, dtype=x.dtype).to(x.device)
        return x + self.sigma * e if self.kind == "additive" else x * (1 + self.sigma * e)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, sigma={self.sigma:g}"


def sample_gamma(shape, k: float, *, generator=None, device=None, dtype=torch.float32) -> Tensor:
    """Gamma(shape ``k``, scale 1) draws from ``generator``: Marsaglia & Tsang (2000), with their
    boost ``G(k) = G(k + 1) U^(1/k)`` for ``k < 1``; the rejection loop repeats only for the few
    rejected elements (about 2-5% at k >= 1)."""
    a = k + 1.0 if k < 1 else k
    d = a - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    n = math.prod(shape)
    out = torch.empty(n, device=device, dtype=torch.float64)
    todo = torch.arange(n, device=device)
    while todo.numel():
        z = torch.randn(todo.numel(), generator=generator, device=device, dtype=torch.float64)
        u = torch.rand(todo.numel(), generator=generator, device=device, dtype=torch.float64)
        v = (1.0 + c * z) ** 3
        ok = (v > 0) & (torch.log(u) < 0.5 * z * z + d - d * v + d * torch.log(v.clamp_min(1e-300)))
        out[todo[ok]] = d * v[ok]
        todo = todo[~ok]
    if k < 1:
        out *= torch.rand(n, generator=generator, device=device, dtype=torch.float64) ** (1.0 / k)
    return out.view(shape).to(dtype)


def nm_factor_spread(beta: float) -> float:
    """The spread of nm's per-element factor ``N c^2 / C0 ~ c^2 / E[c^2]`` for the Gaussian carrier
    ``c ~ N(beta, (1 - beta)^2)``: ``sqrt(Var c^2) / E[c^2] = sqrt(4 b^2 s^2 + 2 s^4) / (b^2 + s^2)``
    with ``b = beta``, ``s = 1 - beta`` (1.2247 at beta 0.5, 0 at beta 1, sqrt(2) at beta 0)."""
    b, s = beta, 1.0 - beta
    return math.sqrt(4 * b * b * s * s + 2 * s**4) / (b * b + s * s)


class CarrierOnly(nn.Module):
    """Modulation without demodulation, in train mode: ``x * c / beta``, the carrier of nm
    (``c = beta + (1 - beta) delta``, Gaussian ``delta``, :func:`~noisemod.modulation.sample_carrier`)
    divided by its mean ``E[c] = beta`` so the factor's mean is 1; sign flips and all (at beta 0.5 a
    factor is negative with probability 16%). Dividing by ``E[c]`` rather than the sample's
    ``sum(c) / N`` keeps the factor defined for every beta > 0 (``sum(c)`` can be 0 for a small beta).
    The identity in eval mode."""

    def __init__(self, beta: float, generator: torch.Generator | None = None):
        super().__init__()
        if not 0 < beta <= 1:
            raise ValueError(f"beta must be in (0, 1] (the factor c / beta is undefined at 0), got {beta!r}")
        self.beta, self.generator = float(beta), generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.beta == 1:
            return x
        from .modulation import sample_carrier

        device = self.generator.device if self.generator is not None else x.device
        c = sample_carrier(x.shape, self.beta, "gaussian", generator=self.generator, device=device, dtype=x.dtype)
        return x * (c.to(x.device) / self.beta)

    def extra_repr(self) -> str:
        return f"beta={self.beta:g}"


class NoiseAugmented(Standard):
    """Cross-entropy on the input with a noise module in front of the model (active in train mode
    only: :class:`InputNoise`, :class:`CarrierOnly`): the controls that tell noise modulation from
    plain noise augmentation."""

    def __init__(self, noise: nn.Module):
        self.noise = noise

    def wrap(self, model: nn.Module) -> nn.Module:
        return nn.Sequential(self.noise, model)


class InputGradientRegularized(Method):
    """Input-gradient regularization (Ross & Doshi-Velez 2018) by double backpropagation:
    ``mean_i CE_i + lambda * mean_i ||grad_x CE_i||^2``."""

    def __init__(self, igr_lambda: float):
        self.igr_lambda = igr_lambda

    def step(self, net, x, y):
        x = x.detach().requires_grad_(True)
        logits = net(x)
        losses = F.cross_entropy(full_precision(logits), y, reduction="none")
        (grad,) = torch.autograd.grad(losses.sum(), x, create_graph=True)
        penalty = grad.pow(2).flatten(1).sum(1).mean()
        return losses.mean() + self.igr_lambda * penalty, logits


# ----------------------------------------------------------------------------- the registry


@register_method("standard", family="baseline", summary="cross-entropy on `x`")
def _standard(config, model, generator):
    return Standard()


@register_method(
    "nm",
    settings=("beta", "noise", "modulate_after_norm", "fused_noise"),
    family="nm",
    summary="cross-entropy on `x * N c^2 / C0`, a fresh carrier `c = beta + (1 - beta) delta` per input (Definition 2)",
)
def _nm(config, model, generator):
    return NoiseModulated(config.beta, config.noise, generator, config.modulate_after_norm, config.fused_noise)


def _attack(config, model, generator, method: str):
    from .attacks import PGD, attack_defaults, eps_warmup_default

    values = attack_defaults(method, config.dataset, eps=config.eps)
    for key in ("eps", "alpha", "steps"):
        if key in values and getattr(config, key) is not None:
            values[key] = getattr(config, key)
    values.setdefault("steps", 1)  # FGSM: PGD with one step
    attack = PGD(model, norm=config.norm, random_start=True, generator=generator, **values)
    warmup = config.eps_warmup if config.eps_warmup is not None else eps_warmup_default(config.dataset)
    return Adversarial(attack, warmup, config.early_stop)


def _radius(method: str) -> Callable[..., tuple[str, str] | None]:
    """The check of an attack ``method``: eps given, or a default radius declared by the dataset."""

    def check(config) -> tuple[str, str] | None:
        from .attacks import declares_defaults

        if config.eps is None and not declares_defaults(method, config.dataset):
            return "eps", f"an attack radius (dataset {config.dataset} declares no default one)"
        return None

    return check


@register_method(
    "pgd",
    settings=("eps", "alpha", "steps", "norm", "eps_warmup", "early_stop"),
    family="adversarial",
    summary="cross-entropy on PGD adversarial examples, random start (Madry et al.)",
    check=_radius("pgd"),
)
def _pgd(config, model, generator):
    return _attack(config, model, generator, "pgd")


@register_method(
    "fgsm",
    settings=("eps", "alpha", "norm", "eps_warmup", "early_stop"),
    family="adversarial",
    summary="PGD with one step and random start (Wong et al. 2020)",
    check=_radius("fgsm"),
)
def _fgsm(config, model, generator):
    return _attack(config, model, generator, "fgsm")


@register_method(
    "igr",
    settings=("igr_lambda",),
    family="regularizer",
    summary="`mean CE_i + lambda * mean ||grad_x CE_i||^2`, by double backpropagation (Ross & Doshi-Velez 2018)",
    requires={"compile": (False, "torch.compile has no double backward")},
)
def _igr(config, model, generator):
    return InputGradientRegularized(config.igr_lambda)


#: The controls' default sigma. Additive: 0.25, the middle noise level of randomized smoothing
#: (Cohen et al. 2019 train with 0.12, 0.25, 0.5, 1.0). Multiplicative: the spread of nm's own
#: factor N c^2 / C0 at beta 0.5 with Gaussian noise, its standard deviation over a sample's
#: elements: sqrt(Var(c^2)) / E[c^2] = sqrt(1.5) = 1.2247 for many elements; measured 1.224 on
#: 1x28x28 and 1.225 on 3x32x32 inputs (tests/test_methods.py). So both perturb the input as strongly.
CONTROL_SIGMA = {"additive-noise": 0.25, "multiplicative-noise": 1.225}


@register_method(
    "additive-noise",
    settings=("sigma",),
    family="control",
    summary="cross-entropy on `x + sigma e`, `e ~ N(0, 1)` per element: Gaussian data augmentation "
    f"(default sigma {CONTROL_SIGMA['additive-noise']})",
)
def _additive(config, model, generator):
    sigma = config.sigma if config.sigma is not None else CONTROL_SIGMA["additive-noise"]
    return NoiseAugmented(InputNoise("additive", sigma, generator))


@register_method(
    "multiplicative-noise",
    settings=("sigma",),
    family="control",
    summary="cross-entropy on `x (1 + sigma e)`: Gaussian dropout on the input, nm's factor's mean and spread "
    f"(default sigma {CONTROL_SIGMA['multiplicative-noise']}, nm's at beta 0.5) but a sign flip on 21% of the pixels",
)
def _multiplicative(config, model, generator):
    sigma = config.sigma if config.sigma is not None else CONTROL_SIGMA["multiplicative-noise"]
    return NoiseAugmented(InputNoise("multiplicative", sigma, generator))


@register_method(
    "gamma-noise",
    settings=("beta",),
    family="control",
    summary="cross-entropy on `x g`, `g ~ Gamma` per element with mean 1 and nm's factor's spread at `--beta` "
    "(1.225 at 0.5): multiplicative noise that, like nm's factor, is never negative",
)
def _gamma(config, model, generator):
    return NoiseAugmented(InputNoise("gamma", nm_factor_spread(config.beta), generator))


def _positive_beta(config) -> tuple[str, str] | None:
    if config.beta <= 0:
        return "beta", "a number in (0, 1] for modulation-only (its factor c / beta is undefined at 0)"
    return None


@register_method(
    "modulation-only",
    settings=("beta",),
    family="control",
    summary="cross-entropy on `x c / beta` with nm's carrier `c = beta + (1 - beta) delta`: the paper's modulation "
    "without the demodulation `c^2 / C0`, sign flips and all",
    check=_positive_beta,
)
def _modulation_only(config, model, generator):
    return NoiseAugmented(CarrierOnly(config.beta, generator))
