"""Input-gradients: the gradient of each sample's own loss with respect to its input.

Batched (no Python loop over samples), and leaves the model exactly as it found it: its
train/eval mode, its parameters' ``requires_grad`` and ``.grad``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = [
    "as_batches",
    "batch_input_gradients",
    "batch_to_device",
    "frozen_eval",
    "input_gradients",
    "iter_input_gradients",
    "model_device",
]

GRADIENT_OF = ("loss", "logit")

Batches = Tensor | Iterable[tuple[Tensor, Tensor]]


def model_device(model: nn.Module, fallback: torch.device | None = None) -> torch.device:
    """The device of the model's first parameter or buffer (``fallback`` for stateless models)."""
    for t in model.parameters():
        return t.device
    for t in model.buffers():
        return t.device
    return fallback if fallback is not None else torch.device("cpu")


@contextmanager
def frozen_eval(model: nn.Module):
    """Put ``model`` in eval mode with ``requires_grad=False`` on every parameter, and restore
    each module's mode and each parameter's flag afterwards (also on error).

    Parameters that do not require grad make the backward pass compute the input-gradient only,
    and leave every ``.grad`` untouched.
    """
    modes = [(m, m.training) for m in model.modules()]
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        model.eval()
        for p, _ in flags:
            p.requires_grad_(False)
        yield model
    finally:
        for m, mode in modes:
            m.training = mode
        for p, flag in flags:
            p.requires_grad_(flag)


def full_precision(t: Tensor) -> Tensor:
    """``t`` in float32 when it is a half-precision (autocast) tensor; float32/float64 kept."""
    return t if t.dtype in (torch.float32, torch.float64) else t.float()


def _check_of(of: str) -> str:
    if of not in GRADIENT_OF:
        raise ValueError(f"of must be one of {GRADIENT_OF}, got {of!r}")
    return of


def batch_input_gradients(model: nn.Module, x: Tensor, y: Tensor, of: str = "loss") -> Tensor:
    """Input-gradients of one batch, with the model as it is (call inside :func:`frozen_eval`).

    ``of="loss"``: gradient of each sample's own cross-entropy loss (summed over the batch, so
    not scaled by 1/B; samples do not interact in eval mode). ``of="logit"``: gradient of the
    target logit (Captum ``Saliency`` semantics).
    """
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        out = model(x)
        if out.dim() != 2 or out.shape[0] != x.shape[0]:
            raise ValueError(f"model output must be logits of shape (B, classes), got {tuple(out.shape)}")
        if of == "loss":
            objective = F.cross_entropy(full_precision(out), y, reduction="sum")
        else:
            objective = out.gather(1, y.view(-1, 1)).sum()
        (grad,) = torch.autograd.grad(objective, x)
    return grad


def as_batches(inputs: Batches, targets: Tensor | None, batch_size: int) -> Iterable[tuple[Tensor, Tensor]]:
    """Turn ``(inputs, targets)`` tensors, or an iterable of ``(x, y)`` batches, into batches."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    if isinstance(inputs, Tensor):
        if targets is None:
            raise ValueError("targets are required when inputs is a tensor")
        targets = torch.as_tensor(targets)
        if targets.dim() != 1 or len(targets) != len(inputs):
            raise ValueError(f"targets must have shape ({len(inputs)},), got {tuple(targets.shape)}")
        return [(inputs[i : i + batch_size], targets[i : i + batch_size]) for i in range(0, len(inputs), batch_size)]
    if targets is not None:
        raise ValueError("targets must be None when inputs is an iterable of (x, y) batches")
    return inputs


def batch_to_device(x: Tensor, y: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    if not x.is_floating_point():
        raise ValueError(f"inputs must be floating tensors (images in [0, 1]), got dtype {x.dtype}")
    if not bool(torch.isfinite(x).all()):  # evaluation only: one sync per batch is acceptable here
        raise ValueError("inputs contain NaN or Inf values")
    return x.to(device, non_blocking=True), y.to(device, dtype=torch.long, non_blocking=True)


def iter_input_gradients(
    model: nn.Module, batches: Iterable[tuple[Tensor, Tensor]], of: str = "loss"
) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
    """Yield ``(x, y, grad)`` per batch, on the model's device, with the model frozen in eval mode."""
    _check_of(of)
    with frozen_eval(model):
        device = None
        for x, y in batches:
            device = device or model_device(model, x.device)
            x, y = batch_to_device(x, y, device)
            yield x, y, batch_input_gradients(model, x, y, of)


def input_gradients(
    model: nn.Module, inputs: Tensor, targets: Tensor, *, batch_size: int = 256, of: str = "loss"
) -> Tensor:
    """Gradient of each sample's own loss with respect to its input.

    Args:
        model: classifier returning logits ``(B, classes)``; run in eval mode for this, and
            left afterwards with exactly its previous mode, ``requires_grad`` and ``.grad``.
        inputs: ``(N, ...)`` floating tensor, any device (moved to the model's device batch by batch).
        targets: ``(N,)`` class indices.
        batch_size: samples per forward/backward pass.
        of: ``"loss"`` (cross-entropy of the sample, the paper's input-gradient, Definition 3) or
            ``"logit"`` (the target logit, Captum ``Saliency`` semantics).

    Returns:
        Tensor shaped like ``inputs``, on ``inputs``' device and dtype.
    """
    if not isinstance(inputs, Tensor):
        raise ValueError("inputs must be a tensor; use noisemod.vii for iterables of batches")
    grads = [
        g.to(inputs.device, inputs.dtype)
        for _, _, g in iter_input_gradients(model, as_batches(inputs, targets, batch_size), of)
    ]
    return torch.cat(grads) if grads else torch.empty_like(inputs)
