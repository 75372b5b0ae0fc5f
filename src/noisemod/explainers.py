"""Attribution methods, one registry: the paper's loss input-gradient, and Captum's explainers.

An explainer maps ``(model, x, y)`` to an attribution of ``x``'s shape, for the class ``y``:

- ``gradient``: the gradient of the sample's own cross-entropy (the paper's input-gradient,
  :func:`noisemod.input_gradients`); the default.
- ``saliency``: Captum ``Saliency``, the gradient of the target logit (``abs=False``: signed, so
  VII and alignment can read its direction; Simonyan et al. 2014 show its magnitude).
- ``smoothgrad``: Captum ``NoiseTunnel`` over ``Saliency``: the mean gradient of the target logit
  over ``samples`` noisy copies, Gaussian noise of std ``sigma``. Defaults from Smilkov et al.
  2017: 50 samples, noise 15% of the input range (inputs in [0, 1]: sigma 0.15).
- ``integrated-gradients``: Captum ``IntegratedGradients`` from a black image (0), 50 steps.
- ``input-x-gradient``: Captum ``InputXGradient``, input times the target logit's gradient.
- ``logit-sum``: the gradient of the sum of all logits, what Srinivas, Bordt & Lakkaraju (2023)
  compare with an unconditional score (the ``score_alignment`` metric); it ignores ``y``.

Every explainer runs the model in eval mode with frozen parameters and restores both
(:func:`noisemod.gradients.frozen_eval`), batch by batch on the model's device.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from .gradients import batch_input_gradients, batch_to_device, frozen_eval, model_device
from .registry import Registry

__all__ = ["EXPLAINERS", "Explainer", "explain", "get_explainer", "list_explainers", "register_explainer"]


@dataclass(frozen=True)
class Explainer:
    """One registered explainer: ``fn(model, x, y, **options) -> attribution`` for one batch (the model
    already frozen in eval mode, ``x`` on its device), its default ``options`` and a one-line summary.
    ``evidence``: the sign that turns the attribution into evidence *for* the class (+1; -1 for the
    loss gradient, which points where the true class loses), which pixel flipping ranks by."""

    name: str
    fn: Callable[..., Tensor]
    summary: str
    options: dict = field(default_factory=dict)
    evidence: int = 1


#: The registered explainers, by name, in registration order.
EXPLAINERS: Registry[Explainer] = Registry("explainer")


def register_explainer(name: str, summary: str, *, evidence: int = 1, **options) -> Callable:
    """Decorator: register ``fn(model, x, y, **options)`` as explainer ``name`` with default ``options``."""

    def add(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        EXPLAINERS.register(name, Explainer(name, fn, summary, dict(options), evidence))
        return fn

    return add


def list_explainers() -> list[str]:
    """The registered explainer names, in registration order."""
    return EXPLAINERS.names()


def get_explainer(name: str) -> Explainer:
    """The explainer ``name``; ``ValueError`` listing the registered ones when unknown."""
    return EXPLAINERS.get(name)


def explain(
    model: nn.Module, inputs: Tensor, targets: Tensor, explainer: str = "gradient", *, batch_size: int = 256, **options
) -> Tensor:
    """Attributions of ``inputs`` ``(N, ...)`` for the classes ``targets`` ``(N,)`` by ``explainer``.

    ``options`` override the explainer's defaults (``samples`` and ``sigma`` for ``smoothgrad``,
    ``steps`` and ``baseline`` for ``integrated-gradients``); an unknown option or explainer name
    is a ``ValueError`` naming it. Returns a tensor of ``inputs``' shape on the model's device.
    """
    spec = get_explainer(explainer)
    unknown = sorted(set(options) - set(spec.options))
    if unknown:
        valid = ", ".join(spec.options) or "none"
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for explainer {explainer!r}; valid: {valid}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if len(inputs) != len(targets):
        raise ValueError(f"{len(inputs)} inputs but {len(targets)} targets")
    values = {**spec.options, **options}
    out = []
    with frozen_eval(model):
        device = model_device(model, inputs.device)
        for i in range(0, len(inputs), batch_size):
            x, y = batch_to_device(inputs[i : i + batch_size], targets[i : i + batch_size], device)
            out.append(spec.fn(model, x, y, **values).detach())
    return torch.cat(out) if out else torch.empty_like(inputs)


def _leaf(x: Tensor) -> Tensor:
    """A copy of ``x`` that requires grad, as Captum expects its inputs."""
    return x.detach().requires_grad_(True)


@register_explainer("gradient", "gradient of the sample's cross-entropy (the paper's input-gradient)", evidence=-1)
def _gradient(model, x, y):
    return batch_input_gradients(model, x, y, "loss")


@register_explainer("saliency", "Captum Saliency: gradient of the target logit (signed)")
def _saliency(model, x, y):
    from captum.attr import Saliency

    with torch.enable_grad():
        return Saliency(model).attribute(_leaf(x), target=y, abs=False)


@register_explainer(
    "smoothgrad", "Captum NoiseTunnel(Saliency): SmoothGrad, mean over noisy copies", samples=50, sigma=0.15
)
def _smoothgrad(model, x, y, *, samples: int, sigma: float):
    from captum.attr import NoiseTunnel, Saliency

    with torch.enable_grad():
        tunnel = NoiseTunnel(Saliency(model))
        return tunnel.attribute(
            x,
            nt_type="smoothgrad",
            nt_samples=samples,
            nt_samples_batch_size=samples,
            stdevs=sigma,
            target=y,
            abs=False,
        )


@register_explainer("integrated-gradients", "Captum IntegratedGradients from a black image", steps=50, baseline=0.0)
def _integrated_gradients(model, x, y, *, steps: int, baseline: float):
    from captum.attr import IntegratedGradients

    with torch.enable_grad():
        return IntegratedGradients(model).attribute(_leaf(x), baselines=baseline, target=y, n_steps=steps)


@register_explainer("input-x-gradient", "Captum InputXGradient: input times the target logit's gradient")
def _input_x_gradient(model, x, y):
    from captum.attr import InputXGradient

    with torch.enable_grad():
        return InputXGradient(model).attribute(_leaf(x), target=y)


@register_explainer(
    "logit-sum", "gradient of the sum of all logits (Srinivas et al. 2023: against an unconditional score)"
)
def _logit_sum(model, x, y):
    with torch.enable_grad():
        x = _leaf(x)
        (grad,) = torch.autograd.grad(model(x).sum(), x)
    return grad
