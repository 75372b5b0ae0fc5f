"""The paper's "six layer Fully Convolutional Neural Networks (FCNN)" (Section 3.2)."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model

__all__ = ["FCNN", "fcnn"]


class FCNN(nn.Module):
    """Six convolutions, no linear layer, global average pooling of the last one's class maps.

    3x3 convs (padding 1) with widths 32, 32/2, 64, 64/2, 128 ("/2": stride 2, which
    downsamples instead of pooling, as in the all-convolutional net of Springenberg et al.),
    each followed by ReLU; then a 1x1 conv to ``num_classes`` maps averaged over space.
    Works for any input size (a stride-2 conv keeps a 1x1 map 1x1).
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = (32, 32, 64, 64, 128)):
        super().__init__()
        layers: list[nn.Module] = []
        for i, width in enumerate(widths):
            stride = 2 if i in (1, 3) else 1
            layers += [nn.Conv2d(in_channels, width, 3, stride=stride, padding=1), nn.ReLU()]
            in_channels = width
        layers += [nn.Conv2d(in_channels, num_classes, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@register_model
def fcnn(*, in_channels: int, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    """Six conv layers ending in ``num_classes`` maps, global average pooled to logits."""
    return FCNN(in_channels, num_classes)
