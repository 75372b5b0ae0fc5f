"""noisemod: noise modulation (Li & Wang), a cheap training method that makes a model's
input-gradients interpretable, with the tools to train, compare and measure it."""

from .gradients import input_gradients
from .metrics import accuracy, vii
from .modulation import NOISES, NoiseModulation, modulate, sample_carrier

__version__ = "0.1.0"

__all__ = [
    "NOISES",
    "NoiseModulation",
    "accuracy",
    "input_gradients",
    "modulate",
    "sample_carrier",
    "vii",
    "__version__",
]
