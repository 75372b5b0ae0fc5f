"""Interpretability and accuracy metrics: VII (paper, Definition 3) and accuracy."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .gradients import as_batches, batch_to_device, frozen_eval, iter_input_gradients, model_device

__all__ = ["accuracy", "dataset_mean", "vii", "vii_scores"]

REDUCTIONS = ("mean", "none")


def vii_scores(x: Tensor, grad: Tensor, mean: Tensor) -> Tensor:
    """Per-sample VII terms ``|<d, g>| / (||d|| ||g||)`` (Definition 3, Eq. 11).

    ``d = sign(x - mean)`` and ``g = sign(grad)``. The difference is taken in float64 so that a
    pixel equal to the mean (e.g. an always-black MNIST corner) gives exactly 0 whatever affine
    normalization the inputs went through. A sample whose ``d`` or ``g`` is all zeros has no
    direction and scores 0.

    Returns:
        float64 tensor ``(B,)`` with values in [0, 1].
    """
    if grad.shape != x.shape:
        raise ValueError(f"grad shape {tuple(grad.shape)} does not match input shape {tuple(x.shape)}")
    d = torch.sign(x.double() - mean.to(x.device, torch.float64)).flatten(1)
    g = torch.sign(grad).to(torch.float64).flatten(1)
    dot = (d * g).sum(1).abs()
    norms = (d.abs().sum(1) * g.abs().sum(1)).sqrt()  # ||v||^2 = number of non-zero signs
    return torch.where(norms > 0, dot / norms.clamp_min(1.0), torch.zeros_like(dot))


def dataset_mean(batches: Iterable[tuple[Tensor, Tensor]], device: torch.device | None = None) -> Tensor:
    """Per-element mean image over all batches, accumulated in float64."""
    total, count = None, 0
    for x, _ in batches:
        x = x.to(device) if device is not None else x
        s = x.sum(0, dtype=torch.float64)
        total = s if total is None else total + s
        count += x.shape[0]
    if count == 0:
        raise ValueError("cannot compute the mean image of an empty dataset")
    return total / count


def vii(
    model: nn.Module,
    inputs: Tensor | Iterable[tuple[Tensor, Tensor]],
    targets: Tensor | None = None,
    *,
    mean: Tensor | None = None,
    batch_size: int = 256,
    reduction: str = "mean",
) -> float | Tensor:
    """Visual Interpretability of Input-gradients (Definition 3, Eq. 11).

    ``VII = E_(x, y) |<d_x, g_x>| / (||d_x|| ||g_x||)`` with ``d_x = sign(x - x_bar)`` and
    ``g_x = sign(grad_x L(f(x), y))``, L the cross-entropy of the sample.

    Args:
        model: classifier returning logits; evaluated in eval mode and left as it was.
        inputs: ``(N, ...)`` floating tensor with ``targets``, or a re-iterable of ``(x, y)``
            batches (e.g. a list or a DataLoader) with ``targets=None``.
        targets: ``(N,)`` class indices when ``inputs`` is a tensor.
        mean: ``x_bar``, the per-element mean image; computed from ``inputs`` in a first pass
            when not given (so a one-shot iterator needs ``mean``).
        batch_size: samples per pass when ``inputs`` is a tensor.
        reduction: ``"mean"`` returns a float; ``"none"`` the per-sample scores (float64, CPU).

    A sample whose ``d`` (input equal to the mean everywhere) or ``g`` (zero gradient) is all
    zeros scores 0 and still counts in the mean. Because signs ignore positive scales, the score
    does not change when a positive per-channel normalization moves from outside the model to
    inside it.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    batches = as_batches(inputs, targets, batch_size)
    device = model_device(model, inputs.device if isinstance(inputs, Tensor) else None)
    if mean is None:
        if iter(batches) is batches:
            raise ValueError(
                "inputs is a one-shot iterator: pass mean= (the mean image) or a re-iterable "
                "such as a list or a DataLoader, since the mean needs a first pass"
            )
        mean = dataset_mean(batches, device)
    else:
        mean = torch.as_tensor(mean).to(device, torch.float64)
    scores = [vii_scores(x, g, mean).cpu() for x, _, g in iter_input_gradients(model, batches, "loss")]
    if not scores:
        raise ValueError("cannot compute VII of an empty dataset")
    scores = torch.cat(scores)
    return scores if reduction == "none" else float(scores.mean())


@torch.no_grad()
def accuracy(
    model: nn.Module,
    inputs: Tensor | Iterable[tuple[Tensor, Tensor]],
    targets: Tensor | None = None,
    *,
    batch_size: int = 256,
) -> float:
    """Top-1 accuracy in [0, 1], with the model in eval mode (its mode is restored afterwards)."""
    correct, count = torch.zeros((), dtype=torch.long), 0
    with frozen_eval(model):
        device = None
        for x, y in as_batches(inputs, targets, batch_size):
            device = device or model_device(model, x.device)
            x, y = batch_to_device(x, y, device)
            correct = correct.to(device) + (model(x).argmax(1) == y).sum()
            count += len(y)
    if count == 0:
        raise ValueError("cannot compute the accuracy of an empty dataset")
    return int(correct) / count
