"""What one run trains with: its data, model, method, optimizer and schedule (:class:`Training`)."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import torch
from torch import nn

from ..config import TrainConfig
from ..methods import Method, build_method

__all__ = [
    "Training",
    "build_model",
    "build_optimizer",
    "build_scheduler",
    "build_training",
    "load_data",
]


def load_data(config: TrainConfig):
    """``(data, train_split)``: the dataset of ``config`` and the training images used (a seeded
    subset of ``train_size`` images, or the whole training split)."""
    from ..data import load_dataset

    data = load_dataset(config.dataset, root=config.data_root, val_size=config.val_size)
    train = data.train.subset(config.train_size, seed=config.seed) if config.train_size else data.train
    if config.shuffle_labels:
        train = train.with_labels(train.labels[torch.randperm(len(train), generator=_label_generator(config.seed))])
    return data, train


def _label_generator(seed: int) -> torch.Generator:
    """The source of the shuffled labels' permutation: seeded by the run's seed, apart from every other draw."""
    return torch.Generator().manual_seed(10_007 * (seed + 1))


def build_model(config: TrainConfig, data, device) -> nn.Module:
    """The zoo model of ``config`` for ``data`` (its channels, classes, size and normalization), on ``device``."""
    from ..models import create_model

    model = create_model(
        config.model,
        in_channels=data.in_channels,
        num_classes=data.num_classes,
        input_size=data.input_size,
        mean=data.mean,
        std=data.std,
    )
    return model.to(device)


def build_optimizer(config: TrainConfig, params):
    """The configured optimizer, fused (one kernel for all parameters) where this torch supports
    it on this device: the same update rule, measured 12% faster per LeNet step on CPU."""
    params = list(params)
    if config.optimizer == "sgd":
        cls, kwargs = torch.optim.SGD, dict(momentum=config.momentum)
    else:
        cls, kwargs = (torch.optim.Adam if config.optimizer == "adam" else torch.optim.AdamW), {}
    kwargs.update(lr=config.lr, weight_decay=config.weight_decay)
    try:
        return cls(params, fused=True, **kwargs)
    except (RuntimeError, TypeError, ValueError):  # older torch, or a device without a fused kernel
        return cls(params, **kwargs)


def build_scheduler(config: TrainConfig, optimizer):
    """The learning-rate schedule, stepped once per epoch."""
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0)


@dataclass
class Training:
    """What one run trains with (built by :func:`build_training`).

    ``model`` is the plain classifier (checkpoints, attacks and evaluation use it), ``net`` the
    module trained (the method's wrapper, under DDP and ``torch.compile`` when asked), and
    ``generator`` the source of all training noise (carriers, attack starts).
    """

    config: TrainConfig
    model: nn.Module
    net: nn.Module
    method: Method
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler
    generator: torch.Generator
    device: torch.device

    def __post_init__(self):
        amp = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.config.amp)
        self._autocast = torch.autocast(self.device.type, dtype=amp) if amp is not None else contextlib.nullcontext()

    def _loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.config.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._autocast:
            return self.method.step(self.net, x, y)

    def step(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimization step on a batch; returns ``(loss, logits)`` without waiting for the device."""
        loss, logits = self._loss(x, y)
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler.is_enabled():  # fp16
            self.scaler.scale(loss).backward()
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            loss.backward()
            self.optimizer.step()
        return loss, logits

    def warm_up(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """Compile what training compiles (``compile``, ``fused_noise``) on one batch, then put
        everything back: the weights, batch-norm statistics, gradients and RNG states are as before,
        so the run computes exactly what it would have. Returns the seconds it took."""
        t0 = time.perf_counter()
        model_state = {k: v.clone() for k, v in self.model.state_dict().items()}
        rng = (torch.get_rng_state(), self.generator.get_state())
        cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
        self.net.train()
        loss, _ = self._loss(x, y)
        loss.backward()
        self.optimizer.zero_grad(set_to_none=True)
        self.model.load_state_dict(model_state)
        torch.set_rng_state(rng[0])
        self.generator.set_state(rng[1])
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - t0

    def state_dict(self) -> dict:
        """The states a checkpoint keeps besides the model: optimizer, scheduler, scaler, RNGs."""
        rng = {"torch": torch.get_rng_state(), "noise": self.generator.get_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        parts = {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}
        return {**{k: v.state_dict() for k, v in parts.items()}, "rng": rng}

    def load_state_dict(self, ckpt: dict) -> None:
        """Restore a checkpoint of :meth:`state_dict` plus ``ckpt["model"]``."""
        for key, obj in (("model", self.model), ("optimizer", self.optimizer), ("scheduler", self.scheduler)):
            obj.load_state_dict(ckpt[key])
        self.scaler.load_state_dict(ckpt["scaler"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        self.generator.set_state(ckpt["rng"]["noise"])
        if "cuda" in ckpt["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])


def build_training(config: TrainConfig, data, *, device, rank: int = 0, world_size: int = 1) -> Training:
    """Model (seeded with ``config.seed``), method, optimizer, schedule and gradient scaler of a run.
    Under several processes the trained module is wrapped in DistributedDataParallel, and each
    rank draws its own noise (its generator is seeded with the seed and the rank)."""
    device = torch.device(device)
    torch.manual_seed(config.seed)
    model = build_model(config, data, device)
    if config.channels_last:
        model = model.to(memory_format=torch.channels_last)
    generator = torch.Generator(device=device).manual_seed((config.seed << 16) + rank)
    method = build_method(config, model, generator)
    net = method.wrap(model)
    if world_size > 1:
        net = nn.parallel.DistributedDataParallel(net, device_ids=[device] if device.type == "cuda" else None)
    if config.compile:  # the module trained; checkpoints, attacks and evaluation use the plain model
        net = torch.compile(net)
    optimizer = build_optimizer(config, model.parameters())
    scheduler = build_scheduler(config, optimizer)
    scaler = torch.amp.GradScaler(device.type, enabled=config.amp == "fp16")
    return Training(config, model, net, method, optimizer, scheduler, scaler, generator, device)
