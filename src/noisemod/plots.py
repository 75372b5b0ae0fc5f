"""Figures: gradient maps beside their inputs, each scaled to [0, 1] as in the paper's figures."""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .io import atomic_write

__all__ = ["save_image_rows", "scale01", "to_numpy_image"]


def scale01(t: Tensor) -> Tensor:
    """Min-max scale each sample of ``(B, ...)`` to [0, 1] (over all its channels together);
    a constant sample becomes 0.5 everywhere."""
    flat = t.detach().float().flatten(1)
    lo, hi = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
    span = hi - lo
    scaled = torch.where(span > 0, (flat - lo) / span.clamp_min(1e-30), torch.full_like(flat, 0.5))
    return scaled.view_as(t)


def to_numpy_image(img: Tensor):
    """A ``(C, H, W)`` image as a numpy array for ``imshow``: ``(H, W)`` for one channel, else ``(H, W, C)``."""
    img = img.detach().cpu().float()
    return img[0].numpy() if img.shape[0] == 1 else img.permute(1, 2, 0).clamp(0, 1).numpy()


def save_image_rows(
    rows: Mapping[str, Tensor],
    path,
    *,
    titles: Sequence[str] | None = None,
    suptitle: str | None = None,
    scale: Sequence[str] = (),
) -> Path:
    """Save a PNG (or SVG, by suffix) with one row per entry of ``rows`` (label -> ``(B, C, H, W)``)
    and one column per sample. Rows named in ``scale`` are min-max scaled per sample first
    (gradient maps); the others are shown as they are (inputs in [0, 1])."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {k: (scale01(v) if k in scale else v) for k, v in rows.items()}
    n = min(len(v) for v in rows.values())
    if n == 0:
        raise ValueError("no images to plot")
    fig, axes = plt.subplots(len(rows), n, figsize=(1.1 * n + 1.2, 1.2 * len(rows) + 0.4), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(to_numpy_image(images[c]), cmap="gray", vmin=0, vmax=1, interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
            if r == 0 and titles is not None:
                ax.set_title(str(titles[c]), fontsize=7)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format=path.suffix.lstrip(".") or "png", dpi=100)
    plt.close(fig)
    return atomic_write(path, lambda f: f.write(buf.getvalue()))
