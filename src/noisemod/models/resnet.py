"""ResNet-18 (He et al. 2016; the paper's "ResNet [12]"), the CIFAR variant."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model

__all__ = ["BasicBlock", "ResNet", "resnet18"]


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv-BN when the shape changes), then ReLU."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet(nn.Module):
    """3x3 stem conv (stride 1, no max-pool) -> four stages of BasicBlocks (64, 128, 256, 512
    planes; strides 1, 2, 2, 2) -> global average pool -> Linear(512, classes).

    Works for any input size (a stride-2 conv keeps a 1x1 map 1x1).
    """

    def __init__(self, num_blocks: tuple[int, ...], in_channels: int, num_classes: int):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        stages, in_planes = [], 64
        for i, n in enumerate(num_blocks):
            planes = 64 * 2**i
            blocks = []
            for j in range(n):
                blocks.append(BasicBlock(in_planes, planes, stride=2 if i > 0 and j == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(in_planes, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))))


@register_model
def resnet18(*, in_channels: int, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    """ResNet-18 (BasicBlock x [2, 2, 2, 2]), CIFAR variant."""
    return ResNet((2, 2, 2, 2), in_channels, num_classes)
