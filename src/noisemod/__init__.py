"""noisemod: noise modulation (Li & Wang), a cheap training method that makes a model's
input-gradients interpretable, with the tools to train, compare and measure it.

>>> import noisemod
>>> nm = noisemod.NoiseModulation(beta=0.5)           # Definition 2, as a layer
>>> score = noisemod.vii(model, images, labels)        # Definition 3

The names below are imported on first use, so that e.g. reading a finished run
(:func:`load_model`) does not load the trainer.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "PGD": "attacks",
    "L2Step": "attacks",
    "LinfStep": "attacks",
    "attack_defaults": "attacks",
    "fgsm": "attacks",
    "robust_accuracy": "attacks",
    "ConfigError": "config",
    "TrainConfig": "config",
    "DATASETS": "data",
    "BatchLoader": "data",
    "DataBundle": "data",
    "DataError": "data",
    "DataNotFoundError": "data",
    "Split": "data",
    "TensorImageDataset": "data",
    "load_dataset": "data",
    "input_gradients": "gradients",
    "accuracy": "metrics",
    "vii": "metrics",
    "METHODS": "methods",
    "list_methods": "methods",
    "register_method": "methods",
    "Classifier": "models",
    "Normalize": "models",
    "create_model": "models",
    "list_models": "models",
    "wrap_model": "models",
    "NOISES": "modulation",
    "NoiseModulation": "modulation",
    "modulate": "modulation",
    "sample_carrier": "modulation",
    "RunDir": "rundir",
    "SweepDir": "rundir",
    "load_model": "rundir",
    "evaluate": "evaluation",
    "fit": "train",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value  # import once
        return value
    raise AttributeError(f"module 'noisemod' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
