"""The one training configuration: a frozen dataclass, validated once, saved in every run."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Any

from .modulation import NOISES

__all__ = ["METHODS", "ConfigError", "TrainConfig"]

METHODS = ("standard", "nm", "pgd", "fgsm", "igr")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "cosine", "step")
AMP = ("none", "bf16", "fp16")
#: Settings that say where and how fast a run goes, not what it computes: a run may be resumed
#: with others, and they do not tell sweep runs apart.
RUNTIME_FIELDS = ("data_root", "device", "compile", "channels_last")
NORMS = ("linf", "l2")


class ConfigError(ValueError):
    """An invalid option value; ``option``, ``value`` and ``expected`` say which and why."""

    def __init__(self, option: str, value: Any, expected: str):
        super().__init__(f"invalid {option}={value!r}: expected {expected}")
        self.option, self.value, self.expected = option, value, expected


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults follow the paper (Section 3.2): Adam,
    lr 1e-3, batch 64, 50 epochs, seed 0, beta 0.5, Gaussian noise.

    Attack settings left as ``None`` take the per-dataset defaults of
    :func:`noisemod.attacks.attack_defaults`.
    """

    dataset: str = "digits"
    model: str = "lenet"
    method: str = "standard"
    # noise modulation
    beta: float = 0.5
    noise: str = "gaussian"
    modulate_after_norm: bool = False
    fused_noise: bool = (
        False  # gaussian noise from a counter-based generator, sampled and applied in one compiled kernel
    )
    # adversarial training (pgd, fgsm) and input-gradient regularization (igr)
    eps: float | None = None
    alpha: float | None = None
    steps: int | None = None
    norm: str = "linf"
    igr_lambda: float = 1.0
    # optimization
    epochs: int = 50
    batch_size: int = 64
    lr: float = 1e-3
    optimizer: str = "adam"
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "constant"
    seed: int = 0
    # data
    data_root: str | None = None
    train_size: int | None = None
    val_size: int | None = None
    eval_batch_size: int = 512
    # hardware
    device: str | None = None
    amp: str = "none"
    compile: bool = False  # torch.compile the trained module (not with igr: no double backward)
    channels_last: bool = False  # channels-last memory format for the model and its 4-D inputs

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """Build from a mapping, rejecting unknown keys (a typo must not be silently ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise ``ValueError`` naming the first invalid option and its value."""

        def bad(name, expected):
            raise ConfigError(name, getattr(self, name), expected)

        def is_int(v):
            return isinstance(v, int) and not isinstance(v, bool)

        def is_num(v):
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        if self.method not in METHODS:
            bad("method", "one of " + ", ".join(METHODS))
        if not is_num(self.beta) or not 0 <= self.beta <= 1:
            bad("beta", "a number in [0, 1]")
        if self.noise not in NOISES:
            bad("noise", "one of " + ", ".join(NOISES))
        for name in ("epochs", "batch_size", "eval_batch_size"):
            if not is_int(getattr(self, name)) or getattr(self, name) < 1:
                bad(name, "a positive integer")
        if not is_num(self.lr) or self.lr <= 0:
            bad("lr", "a positive number")
        for name in ("momentum", "weight_decay", "igr_lambda"):
            if not is_num(getattr(self, name)) or getattr(self, name) < 0:
                bad(name, "a non-negative number")
        if self.eps is not None and (not is_num(self.eps) or self.eps < 0):
            bad("eps", "a non-negative number")
        if self.alpha is not None and (not is_num(self.alpha) or self.alpha <= 0):
            bad("alpha", "a positive number")
        if self.steps is not None and (not is_int(self.steps) or self.steps < 1):
            bad("steps", "a positive integer")
        if self.norm not in NORMS:
            bad("norm", "one of " + ", ".join(NORMS))
        if self.optimizer not in OPTIMIZERS:
            bad("optimizer", "one of " + ", ".join(OPTIMIZERS))
        if self.schedule not in SCHEDULES:
            bad("schedule", "one of " + ", ".join(SCHEDULES))
        if self.amp not in AMP:
            bad("amp", "one of " + ", ".join(AMP))
        for name in ("modulate_after_norm", "fused_noise", "compile", "channels_last"):
            if not isinstance(getattr(self, name), bool):
                bad(name, "true or false")
        if self.fused_noise and self.noise != "gaussian":
            bad("fused_noise", f"false with noise {self.noise!r} (the fused path draws gaussian noise only)")
        if self.compile and self.method == "igr":
            bad("compile", "false with method igr (torch.compile has no double backward)")
        if not is_int(self.seed) or self.seed < 0:
            bad("seed", "a non-negative integer")
        if self.train_size is not None and (not is_int(self.train_size) or self.train_size < 1):
            bad("train_size", "a positive integer")
        if self.val_size is not None and (not is_int(self.val_size) or self.val_size < 0):
            bad("val_size", "a non-negative integer")
        for name in ("dataset", "model"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                bad(name, "a non-empty name")
