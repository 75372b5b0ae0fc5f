"""The paper's "three layer Multi-Layer Perceptron (MLP)" (Section 3.2)."""

from __future__ import annotations

from torch import Tensor, nn

from .registry import register_model

__all__ = ["MLP", "mlp"]


class MLP(nn.Module):
    """flatten -> Linear(C*H*W, hidden) -> ReLU -> Linear(hidden, hidden) -> ReLU -> Linear(hidden, classes)."""

    def __init__(self, in_channels: int, num_classes: int, input_size: tuple[int, int], hidden: int = 256):
        super().__init__()
        self.layers = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * input_size[0] * input_size[1], hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)


@register_model
def mlp(*, in_channels: int, num_classes: int, input_size: tuple[int, int]) -> nn.Module:
    """Three linear layers, hidden width 256."""
    return MLP(in_channels, num_classes, input_size)
