"""Training objectives: standard, noise modulation, adversarial (PGD / FGSM), input-gradient
regularization. Each is a small object with one ``step`` that returns the loss to minimize and
the logits (for the training accuracy); the loop in :mod:`noisemod.train` is shared.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gradients import full_precision
from .modulation import NoiseModulation

__all__ = [
    "Adversarial",
    "InputGradientRegularized",
    "Method",
    "Modulated",
    "NoiseModulated",
    "Standard",
    "build_method",
]


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


class Method:
    """Standard training; the base of the other objectives.

    ``wrap(model)`` returns the module whose forward is trained (the one DDP wraps);
    ``step(net, x, y)`` returns ``(loss, logits)``.
    """

    name = "standard"

    def wrap(self, model: nn.Module) -> nn.Module:
        return model

    def step(self, net: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        logits = net(x)
        return F.cross_entropy(full_precision(logits), y), logits


Standard = Method


class NoiseModulated(Method):
    """Noise modulation (Definition 2): every training input gets a fresh carrier."""

    name = "nm"

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
    forward pass on the adversarial batch."""

    def __init__(self, name: str, attack):
        self.name, self.attack = name, attack

    def step(self, net, x, y):
        return super().step(net, self.attack.perturb(x, y), y)


class InputGradientRegularized(Method):
    """Input-gradient regularization (Ross & Doshi-Velez 2018) by double backpropagation:
    ``mean_i CE_i + lambda * mean_i ||grad_x CE_i||^2``."""

    name = "igr"

    def __init__(self, igr_lambda: float):
        self.igr_lambda = igr_lambda

    def step(self, net, x, y):
        x = x.detach().requires_grad_(True)
        logits = net(x)
        losses = F.cross_entropy(full_precision(logits), y, reduction="none")
        (grad,) = torch.autograd.grad(losses.sum(), x, create_graph=True)
        penalty = grad.pow(2).flatten(1).sum(1).mean()
        return losses.mean() + self.igr_lambda * penalty, logits


def build_method(config, model: nn.Module, generator: torch.Generator | None = None) -> Method:
    """The objective of ``config.method`` for ``model`` (the raw classifier, which attacks use)."""
    if config.method == "standard":
        return Standard()
    if config.method == "nm":
        return NoiseModulated(config.beta, config.noise, generator, config.modulate_after_norm, config.fused_noise)
    if config.method == "igr":
        return InputGradientRegularized(config.igr_lambda)
    from .attacks import PGD, attack_defaults

    settings = attack_defaults(config.method, config.dataset)
    for key in ("eps", "alpha", "steps"):
        if getattr(config, key) is not None:
            settings[key] = getattr(config, key)
    if config.method == "fgsm":
        settings["steps"] = 1
    attack = PGD(model, norm=config.norm, random_start=True, generator=generator, **settings)
    return Adversarial(config.method, attack)
