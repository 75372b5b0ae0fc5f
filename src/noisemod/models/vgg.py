"""VGG (Simonyan & Zisserman 2015; the paper's "VGG [25]"), the CIFAR variant with batch norm."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model

__all__ = ["VGG", "VGG_CFGS", "vgg11", "vgg16"]

# Conv widths, "M" = 2x2 max-pool: configurations A (VGG-11) and D (VGG-16) of the paper.
VGG_CFGS: dict[str, list] = {
    "vgg11": [64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M"],
    "vgg16": [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"],
}


class VGG(nn.Module):
    """conv3x3-BN-ReLU stacks with five 2x2 max-pools, then global average pool -> Linear(512, classes).

    The pools use ``ceil_mode=True``, so a map never shrinks below 1x1 (a 1x1 map stays 1x1 and
    28 -> 14 -> 7 -> 4 -> 2 -> 1); the final adaptive average pool reduces any remaining map
    (inputs above 32x32) to 1x1 and is the identity at 32x32 and below.
    """

    def __init__(self, cfg: list, in_channels: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        for v in cfg:
            if v == "M":
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            else:
                layers += [nn.Conv2d(in_channels, v, 3, padding=1), nn.BatchNorm2d(v), nn.ReLU()]
                in_channels = v
        self.features = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(in_channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model
def vgg11(*, in_channels: int, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    """VGG-11 (configuration A) with batch norm, CIFAR classifier."""
    return VGG(VGG_CFGS["vgg11"], in_channels, num_classes)


@register_model
def vgg16(*, in_channels: int, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    """VGG-16 (configuration D) with batch norm, CIFAR classifier."""
    return VGG(VGG_CFGS["vgg16"], in_channels, num_classes)
