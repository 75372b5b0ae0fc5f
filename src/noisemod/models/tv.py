"""Any torchvision classification model, as ``create_model("tv:<name>", ...)``."""

from __future__ import annotations

import torch
import torchvision
from torch import Tensor, nn

__all__ = ["TV_PREFIX", "torchvision_model"]

TV_PREFIX = "tv:"

# Models whose train-mode forward would return auxiliary outputs instead of logits.
_EXTRA_KWARGS = {
    "googlenet": {"aux_logits": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "init_weights": True},
}


class RepeatChannels(nn.Module):
    """(B, 1, H, W) -> (B, n, H, W) by repeating the single channel (no parameters)."""

    def __init__(self, n: int = 3):
        super().__init__()
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        return x.expand(-1, self.n, -1, -1)

    def extra_repr(self) -> str:
        return f"n={self.n}"


def torchvision_model(name: str, *, in_channels: int, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    """``torchvision.models.get_model(name, weights=None, num_classes=num_classes)``, randomly
    initialized, behind a channel adapter when ``in_channels != 3``: a 1-channel input is
    repeated to 3 channels, any other count goes through a learned 1x1 convolution to 3.

    A dry forward pass (batch 1, eval mode, on CPU) checks that the model accepts
    ``input_size``; many torchvision models downsample 32x or need a fixed size (ViT: 224),
    and fail on small inputs such as 8x8. That failure is raised here as a ValueError.
    """
    valid = torchvision.models.list_models(module=torchvision.models)
    if name not in valid:
        raise ValueError(f"unknown torchvision classification model {name!r}; valid names: {', '.join(valid)}")
    net = torchvision.models.get_model(name, weights=None, num_classes=num_classes, **_EXTRA_KWARGS.get(name, {}))
    if in_channels == 1:
        net = nn.Sequential(RepeatChannels(3), net)
    elif in_channels != 3:
        net = nn.Sequential(nn.Conv2d(in_channels, 3, kernel_size=1, bias=False), net)
    net.eval()
    try:
        with torch.no_grad():
            net(torch.zeros(1, in_channels, *input_size))
    except (RuntimeError, AssertionError, ValueError) as e:
        raise ValueError(
            f"torchvision model {name!r} does not accept {in_channels}x{input_size[0]}x{input_size[1]} "
            f"inputs ({e}); use a larger input_size or another model"
        ) from e
    return net.train()
