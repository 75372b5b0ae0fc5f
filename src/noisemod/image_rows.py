"""Rows of images: inputs beside their gradient maps (each map scaled to [0, 1], as in the paper's
figures), one row per model or explainer and one column per image. ``noisemod explain`` draws a
run's explanations this way (:func:`explain_run`), and so do the demo, Figure 1 and the gradient
maps along training; :func:`gradient_maps` computes the maps of several runs on the same test images.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .io import atomic_write

__all__ = ["explain_run", "gradient_maps", "load_images", "save_image_rows", "scale01", "test_images", "to_numpy_image"]


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


def load_images(paths: Sequence, channels: int, size: tuple[int, int]) -> Tensor:
    """Decode image files into a float ``(N, channels, H, W)`` batch in [0, 1]; an image of another
    size is an error naming the file and both shapes (no silent resizing)."""
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    images = []
    for p in paths:
        try:
            with Image.open(p) as im:
                arr = np.asarray(im.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
        except (FileNotFoundError, UnidentifiedImageError, OSError) as e:
            raise ValueError(f"cannot read image {p}: {e}") from None
        t = torch.from_numpy(arr.copy())
        t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
        if tuple(t.shape[1:]) != tuple(size):
            raise ValueError(
                f"image {p} is {t.shape[2]}x{t.shape[1]} (WxH) but the model takes "
                f"{channels}x{size[0]}x{size[1]} (CxHxW)"
            )
        images.append(t)
    return torch.stack(images).float().div_(255)


def test_images(data, n: int, seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` seeded test images (float in [0, 1]) with their labels."""
    idx = torch.randperm(len(data.test), generator=torch.Generator().manual_seed(seed))[:n]
    return data.test.images[idx].float().div_(255), data.test.labels[idx]


def gradient_maps(
    run_dirs: Sequence, n: int = 8, data_root: str | None = None, seed: int = 0
) -> tuple[Tensor, Tensor, list[Tensor]]:
    """``n`` seeded test images of the runs' dataset, their labels, and each run's best model's
    loss input-gradients of them (``noisemod.input_gradients``). The runs must share a dataset."""
    from .data import load_dataset
    from .gradients import input_gradients
    from .rundir import RunDir

    configs = [RunDir(d).read_config() for d in run_dirs]
    datasets = list(dict.fromkeys(c.dataset for c in configs))
    if len(datasets) != 1:
        raise ValueError(f"gradient maps of runs on different datasets: {', '.join(datasets)}")
    data = load_dataset(datasets[0], root=data_root or configs[0].data_root, val_size=configs[0].val_size)
    x, y = test_images(data, n, seed)
    return x, y, [input_gradients(RunDir(d).load_model(), x, y) for d in run_dirs]


def explain_run(
    run_dir,
    images: Sequence | None = None,
    *,
    out=None,
    n: int = 12,
    data_root: str | None = None,
    explainers: Sequence[str] = ("gradient",),
) -> Path:
    """Write a PNG of the best model's explanations beside their inputs: one row per explainer
    (:mod:`noisemod.explainers`; default the loss input-gradient), each map scaled to [0, 1].

    Without ``images``, ``n`` seeded test images with their true labels; with image files, the
    explanation of the model's own prediction (no label is known).
    """
    from .explainers import explain, get_explainer

    for name in explainers:
        get_explainer(name)  # an unknown name fails before anything is computed
    from .data import load_dataset
    from .rundir import RunDir

    run = RunDir(run_dir)
    config = run.read_config()
    model = run.load_model()
    spec = model.spec
    if images:
        x = load_images(images, spec["in_channels"], tuple(spec["input_size"]))
        with torch.no_grad():
            y = model(x).argmax(1)
        titles = [f"{Path(p).name}: pred {int(c)}" for p, c in zip(images, y)]
    else:
        data = load_dataset(config.dataset, root=data_root or config.data_root, val_size=config.val_size)
        x, y = test_images(data, n)
        with torch.no_grad():
            pred = model(x).argmax(1)
        titles = [f"y={int(a)} p={int(b)}" for a, b in zip(y, pred)]
    maps = {f"{config.method}\n{name}": explain(model, x, y, name) for name in explainers}
    out = Path(out) if out else run.file(run.GRADIENTS)
    what = "input-gradients" if list(explainers) == ["gradient"] else "explanations"
    return save_image_rows(
        {"input": x, **maps},
        out,
        titles=titles,
        scale=tuple(maps),
        suptitle=f"{config.model} on {config.dataset}: {what}, each scaled to [0, 1]",
    )
