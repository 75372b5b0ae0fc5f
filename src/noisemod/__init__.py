"""noisemod: noise modulation (Li & Wang), a cheap training method that makes a model's
input-gradients interpretable, with the tools to train, compare and measure it.

>>> import noisemod
>>> nm = noisemod.NoiseModulation(beta=0.5)           # Definition 2, as a layer
>>> score = noisemod.vii(model, images, labels)        # Definition 3
"""

__version__ = "0.1.0"

from .attacks import PGD, L2Step, LinfStep, attack_defaults, fgsm, robust_accuracy
from .config import ConfigError, TrainConfig
from .data import (
    DATASETS,
    BatchLoader,
    DataBundle,
    DataError,
    DataNotFoundError,
    Split,
    TensorImageDataset,
    load_dataset,
)
from .gradients import input_gradients
from .metrics import accuracy, vii
from .models import Classifier, Normalize, create_model, list_models, wrap_model
from .modulation import NOISES, NoiseModulation, modulate, sample_carrier
from .train import evaluate, fit, load_model

__all__ = [
    "DATASETS",
    "NOISES",
    "PGD",
    "BatchLoader",
    "Classifier",
    "ConfigError",
    "DataBundle",
    "DataError",
    "DataNotFoundError",
    "L2Step",
    "LinfStep",
    "NoiseModulation",
    "Normalize",
    "Split",
    "TensorImageDataset",
    "TrainConfig",
    "__version__",
    "accuracy",
    "attack_defaults",
    "create_model",
    "evaluate",
    "fgsm",
    "fit",
    "input_gradients",
    "list_models",
    "load_dataset",
    "load_model",
    "modulate",
    "robust_accuracy",
    "sample_carrier",
    "vii",
    "wrap_model",
]
