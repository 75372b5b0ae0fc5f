"""One registry of architectures and one factory, ``create_model`` (like timm's ``_registry``).

A builder is a function ``builder(*, in_channels, num_classes, input_size) -> nn.Module``
registered under its own name with ``@register_model``; ``input_size`` is (H, W).
"""

from __future__ import annotations

import numbers
from collections.abc import Callable, Sequence

from torch import nn

from ..registry import Registry
from .classifier import Classifier, Normalize, _channel_values
from .tv import TV_PREFIX, torchvision_model

__all__ = ["MODELS", "create_model", "list_models", "register_model"]

Builder = Callable[..., nn.Module]

#: name -> builder, in registration order.
MODELS: Registry[Builder] = Registry("model")


def register_model(fn: Builder) -> Builder:
    """Decorator: register ``fn`` in ``MODELS`` under ``fn.__name__`` (which must be new; ``custom`` and
    names with ``:`` are reserved for wrapped modules and ``tv:<name>``)."""
    name = fn.__name__
    if ":" in name or name == "custom":
        raise ValueError(f"cannot register model {name!r}: the name is reserved")
    MODELS.register(name, fn)
    return fn


def list_models() -> list[str]:
    """The registered model names, sorted. Any torchvision classifier is also available as
    ``"tv:<name>"`` (``torchvision.models.list_models(module=torchvision.models)``)."""
    return sorted(MODELS.names())


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _input_size(value) -> tuple[int, int]:
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"input_size must be a positive int or a pair (H, W), got {value!r}")
    return _positive_int("input_size[0]", value[0]), _positive_int("input_size[1]", value[1])


def create_model(
    name: str,
    *,
    in_channels: int,
    num_classes: int,
    input_size: int | Sequence[int],
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
) -> Classifier:
    """Build model ``name`` for inputs in [0, 1], with the dataset's normalization inside.

    Args:
        name: a registered name (``list_models()``) or ``"tv:<torchvision name>"``.
        in_channels: channels of the input images.
        num_classes: number of logits.
        input_size: H = W as an int, or (H, W).
        mean, std: the dataset's channel mean and std (one value per channel), or None for
            mean 0 / std 1.

    Returns:
        A ``Classifier`` (``.normalize``, ``.net``, ``.spec``); ``create_model(**model.spec)``
        rebuilds the same architecture.

    Raises:
        ValueError: unknown name (the message lists the valid ones) or invalid argument.
    """
    if name == "custom":
        raise ValueError(
            "a 'custom' model cannot be rebuilt from its spec: rebuild the module "
            "yourself and call wrap_model(module, mean, std)"
        )
    if not isinstance(name, str) or not (name in MODELS or name.startswith(TV_PREFIX)):
        raise ValueError(
            f"unknown model {name!r}; valid names: {', '.join(list_models())}, "
            f"or '{TV_PREFIX}<name>' for a torchvision classification model"
        )
    in_channels = _positive_int("in_channels", in_channels)
    num_classes = _positive_int("num_classes", num_classes)
    size = _input_size(input_size)
    normalize = Normalize(mean, std, channels=in_channels)  # validates mean/std first: cheap
    if name.startswith(TV_PREFIX):
        net = torchvision_model(
            name[len(TV_PREFIX) :], in_channels=in_channels, num_classes=num_classes, input_size=size
        )
    else:
        net = MODELS[name](in_channels=in_channels, num_classes=num_classes, input_size=size)
    spec = {
        "name": name,
        "in_channels": in_channels,
        "num_classes": num_classes,
        "input_size": list(size),
        "mean": _channel_values("mean", mean, in_channels),
        "std": _channel_values("std", std, in_channels),
    }
    return Classifier(net, normalize, spec)
