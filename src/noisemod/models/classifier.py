"""The model wrapper every noisemod model shares: ``Classifier = net ∘ Normalize``.

Models take inputs in [0, 1] (pixel space), so input-gradients, attacks and noise modulation
all live in the same space as the image. The dataset's channel normalization is the first
module of the model, ``model.normalize``; the architecture is ``model.net``. A trainer that
modulates after normalization calls ``model.net(modulate(model.normalize(x)))``.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

__all__ = ["Classifier", "Normalize", "wrap_model"]


def _channel_values(name: str, value, channels: int | None) -> list[float] | None:
    """``value`` (a sequence or 1-D tensor of finite numbers, or None) as a list of floats."""
    if value is None:
        return None
    try:
        values = torch.as_tensor(value, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"{name} must be a sequence of numbers, got {value!r}") from None
    if values.dim() != 1 or values.numel() == 0:
        raise ValueError(f"{name} must be a non-empty 1-D sequence (one value per channel), got {value!r}")
    if channels is not None and values.numel() != channels:
        raise ValueError(f"{name} has {values.numel()} values but the model has {channels} input channels: {value!r}")
    out = values.tolist()
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    return out


def _short(t: Tensor) -> str:
    return "[" + ", ".join(f"{v:.4g}" for v in t.flatten().tolist()) + "]"


class Normalize(nn.Module):
    """Channel normalization ``(x - mean) / std`` as a module, so the model takes [0, 1] inputs.

    Args:
        mean: one value per channel, or None for 0 (no shift).
        std: one value per channel, all > 0, or None for 1 (no scaling).
        channels: the number of input channels, checked against ``mean``/``std`` and against
            each input; None infers it from ``mean``/``std`` (and accepts any channel count
            when both are None).

    The values are float32 buffers ``mean`` and ``std`` shaped (1, C, 1, 1), saved in the
    state dict. Inputs are image batches (B, C, H, W).
    """

    def __init__(
        self,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        channels: int | None = None,
    ):
        super().__init__()
        mean_values = _channel_values("mean", mean, channels)
        std_values = _channel_values("std", std, channels)
        if std_values is not None and min(std_values) <= 0:
            raise ValueError(f"std must be > 0 in every channel, got {std!r}")
        if mean_values is not None and std_values is not None and len(mean_values) != len(std_values):
            raise ValueError(f"mean and std must have the same length, got mean={mean!r} and std={std!r}")
        given = mean_values if mean_values is not None else std_values
        self.channels = channels if channels is not None else (len(given) if given is not None else None)
        c = self.channels or 1
        self.register_buffer("mean", torch.tensor(mean_values or [0.0] * c).view(1, c, 1, 1))
        self.register_buffer("std", torch.tensor(std_values or [1.0] * c).view(1, c, 1, 1))

    def forward(self, x: Tensor) -> Tensor:
        if x.dim() != 4 or (self.channels is not None and x.shape[1] != self.channels):
            expected = f"(B, {self.channels}, H, W)" if self.channels is not None else "(B, C, H, W)"
            raise ValueError(f"expected an image batch shaped {expected}, got {tuple(x.shape)}")
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        return f"mean={_short(self.mean)}, std={_short(self.std)}"


class Classifier(nn.Module):
    """``forward(x) = net(normalize(x))`` for inputs ``x`` in [0, 1]; returns logits (B, classes).

    Args:
        net: the architecture, taking normalized inputs.
        normalize: the ``Normalize`` module applied first.
        spec: a JSON-serializable dict (``name``, ``in_channels``, ``num_classes``,
            ``input_size``, ``mean``, ``std``). For models from ``create_model``,
            ``create_model(**model.spec)`` rebuilds the same architecture, ready for
            ``load_state_dict``.
    """

    def __init__(self, net: nn.Module, normalize: Normalize, spec: dict[str, Any]):
        super().__init__()
        self.normalize = normalize
        self.net = net
        self._spec = copy.deepcopy(spec)

    @property
    def spec(self) -> dict[str, Any]:
        """A copy of the dict that rebuilds this model (see the class docstring)."""
        return copy.deepcopy(self._spec)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(self.normalize(x))


def wrap_model(
    module: nn.Module, mean: Sequence[float] | None = None, std: Sequence[float] | None = None
) -> Classifier:
    """Wrap any user ``nn.Module`` (taking normalized image batches) as a ``Classifier``.

    Args:
        module: the network; it receives ``(x - mean) / std``.
        mean, std: the dataset's channel mean and std, or None for no normalization.

    Returns:
        A ``Classifier`` whose ``spec["name"]`` is ``"custom"``. Such a spec cannot rebuild the
        module: to restore a checkpoint, rebuild the module yourself, call ``wrap_model`` with
        the same mean/std, then ``load_state_dict``.
    """
    if not isinstance(module, nn.Module):
        raise TypeError(f"wrap_model expects an nn.Module, got {type(module).__name__}")
    normalize = Normalize(mean, std)
    spec = {
        "name": "custom",
        "in_channels": normalize.channels,
        "num_classes": None,
        "input_size": None,
        "mean": _channel_values("mean", mean, None),
        "std": _channel_values("std", std, None),
    }
    return Classifier(module, normalize, spec)
