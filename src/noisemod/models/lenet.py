"""LeNet-5 (LeCun et al. 1998; the paper's "LeNet [17]", used on MNIST)."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model

__all__ = ["LeNet", "lenet"]


def _pooled(n: int) -> int:
    return (n + 1) // 2  # MaxPool2d(2, ceil_mode=True): never shrinks a map below 1


class LeNet(nn.Module):
    """conv5(6) -> ReLU -> maxpool2 -> conv5(16) -> ReLU -> maxpool2 -> fc120 -> ReLU -> fc84 -> ReLU -> fc(classes).

    conv1 pads by 2, so a 28x28 MNIST digit is seen as LeNet-5 saw its 32x32 padded inputs
    (28 -> 28 -> 14 -> 10 -> 5: 16*5*5 = 400 features, the original layout). conv2 is unpadded
    when its input map is at least 5 pixels, else padded by 2 so small inputs (8x8) still work;
    fc1's input size follows from ``input_size``.
    """

    def __init__(self, in_channels: int, num_classes: int, input_size: tuple[int, int]):
        super().__init__()
        after_pool1 = [_pooled(n) for n in input_size]
        pad2 = tuple(0 if n >= 5 else 2 for n in after_pool1)
        after_pool2 = [_pooled(n + 2 * p - 4) for n, p in zip(after_pool1, pad2)]
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 6, 5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
            nn.Conv2d(6, 16, 5, padding=pad2),
            nn.ReLU(),
            nn.MaxPool2d(2, ceil_mode=True),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(16 * after_pool2[0] * after_pool2[1], 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x))


@register_model
def lenet(*, in_channels: int, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    """LeNet-5 with ReLU and max-pooling."""
    return LeNet(in_channels, num_classes, input_size)
