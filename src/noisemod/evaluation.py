"""Test-set evaluation of a trained model: accuracy, VII (Definition 3) and robust accuracy.

Shared by :func:`noisemod.fit` (result.json) and ``noisemod evaluate`` (evaluation.json).
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

from .metrics import accuracy, vii
from .progress import progress_per_pass as _progress

__all__ = ["evaluate"]


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
