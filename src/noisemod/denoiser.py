"""Denoisers trained by denoising score matching, and the score of the data they estimate.

The score ``s(x) = grad_x log p_sigma(x)`` of the data distribution smoothed by Gaussian noise of
std ``sigma`` is what the perceptually-aligned-gradients literature compares input-gradients with
(Srinivas, Bordt & Lakkaraju, NeurIPS 2023). Tweedie's formula gives it from the minimum-MSE
denoiser ``D(x, sigma) = E[x0 | x0 + sigma n = x]``: ``s(x) = (D(x, sigma) - x) / sigma^2``.

noisemod trains its own small denoisers (nothing is downloaded): one sigma-conditioned network per
dataset, trained on its training split at a few noise levels with the loss of Karras et al. 2022
(EDM: the network's input, output and skip connection scaled by sigma, the loss weighted so every
level counts alike), and caches it under ``<cache_dir()>/denoisers/`` keyed by the dataset, the
settings and a digest of the training images (an atomic write; an unreadable file is rebuilt).

- :class:`Denoiser`: ``D(x, sigma[, y])`` around a backbone (:class:`ConvDenoiserNet` for images,
  :class:`MLPDenoiserNet` for vectors, e.g. the Gaussian-mixture test); class-conditional ones
  also estimate ``E[x0 | x, y]``, so one network gives ``s(x)`` and ``s(x | y)``.
- :func:`fit_denoiser`: the training loop (denoising score matching), shared by both.
- :func:`denoiser_score`: Tweedie's score; :func:`psnr_table`: denoising quality per sigma.
- :func:`build_denoiser`: ``noisemod denoiser train``; :func:`find_denoiser`, :func:`score_of` and
  :func:`score_function`: the cached denoiser of a dataset and its score, for the
  ``score_alignment`` and ``class_score_alignment`` metrics.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .io import CorruptFileError, cache_dir, load_checkpoint, save_checkpoint

__all__ = [
    "DEFAULT_SCORE_SIGMA",
    "DENOISER_FORMAT",
    "ConvDenoiserNet",
    "Denoiser",
    "DenoiserConfig",
    "DenoiserError",
    "MLPDenoiserNet",
    "build_denoiser",
    "denoiser_dir",
    "denoiser_score",
    "find_denoiser",
    "fit_denoiser",
    "psnr_table",
    "score_function",
    "score_of",
]

DENOISER_FORMAT = 1  # bump when the network, its preconditioning or the file's layout changes
DEFAULT_SIGMAS = (0.1, 0.25, 0.5)  # noise std in units of [0, 1] images
PSNR_IMAGES = 2000  # the first test images the PSNR table of a built denoiser is measured on
DEFAULT_SCORE_SIGMA = 0.25  # the score_alignment metric's: Srinivas et al.'s 0.5 on images in [-1, 1]


class DenoiserError(ValueError):
    """No usable denoiser: none built for the dataset, or none trained at the sigma asked (the
    message says which, and the command that builds one)."""


def _build_command(dataset: str, sigmas: Sequence[float] | None = None) -> str:
    """The command that builds the (class-conditional, by default) denoiser of ``dataset``."""
    extra = f" --sigma {','.join(f'{s:g}' for s in sigmas)}" if sigmas else ""
    return f"noisemod denoiser train --dataset {dataset}{extra}"


# ----------------------------------------------------------------------------- networks


class MLPDenoiserNet(nn.Module):
    """The backbone for vectors ``(B, dim)``: an MLP on the input, ``c_noise`` and, with ``classes``,
    the one-hot label (index ``classes``: no label) (3 hidden layers)."""

    def __init__(self, dim: int, width: int = 128, classes: int = 0):
        super().__init__()
        self.classes = classes
        self.net = nn.Sequential(
            nn.Linear(dim + 1 + (classes + 1 if classes else 0), width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, width),
            nn.SiLU(),
            nn.Linear(width, dim),
        )

    def forward(self, x: Tensor, c_noise: Tensor, label: Tensor | None = None) -> Tensor:
        parts = [x, c_noise.view(-1, 1).to(x.dtype)]
        if self.classes:
            parts.append(nn.functional.one_hot(label, self.classes + 1).to(x.dtype))
        return self.net(torch.cat(parts, dim=1))


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1)
    )


class ConvDenoiserNet(nn.Module):
    """The backbone for images ``(B, C, H, W)`` with even H and W: a two-level U-Net (full and half
    resolution, one skip connection), ``c_noise`` given as an extra constant input channel and
    added to the bottleneck, and with ``classes`` a learned embedding of the label too (index
    ``classes``: no label)."""

    def __init__(self, in_channels: int, width: int = 32, classes: int = 0):
        super().__init__()
        self.label = nn.Embedding(classes + 1, 2 * width) if classes else None
        self.enc = _block(in_channels + 1, width)
        self.down = nn.Conv2d(width, 2 * width, 3, stride=2, padding=1)
        self.mid = _block(2 * width, 2 * width)
        self.noise = nn.Linear(1, 2 * width)
        self.up = nn.ConvTranspose2d(2 * width, width, 2, stride=2)
        self.dec = _block(2 * width, width)
        self.out = nn.Conv2d(width, in_channels, 1)
        self.act = nn.SiLU()

    def forward(self, x: Tensor, c_noise: Tensor, label: Tensor | None = None) -> Tensor:
        c = c_noise.view(-1, 1).to(x.dtype)
        h1 = self.act(self.enc(torch.cat([x, c.view(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])], dim=1)))
        h2 = self.act(self.down(h1)) + self.noise(c)[:, :, None, None]
        if self.label is not None:
            h2 = h2 + self.label(label)[:, :, None, None]
        h2 = self.act(self.mid(h2))
        h = self.act(self.dec(torch.cat([self.act(self.up(h2)), h1], dim=1)))
        return self.out(h)


class Denoiser(nn.Module):
    """``D(x, sigma)``, the estimate of the clean ``x0`` from ``x = x0 + sigma n`` (EDM preconditioning).

    ``D = c_skip x' + c_out F(c_in x', c_noise) + center`` with ``x' = x - center``,
    ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
    ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = log(sigma) / 4`` (``sd``: the data's std).
    A class-conditional denoiser (``classes`` > 0) estimates ``E[x0 | x, y]`` given labels ``y``
    and ``E[x0 | x]`` without (trained with labels dropped at random, as classifier-free guidance is).

    Args:
        spec: ``{"kind": "conv" | "mlp", "shape": per-sample shape, "width": int, "center": float,
            "sigma_data": float, "classes": int (0: unconditional, the default)}``.
    """

    def __init__(self, spec: dict):
        super().__init__()
        self.spec = dict(spec)
        shape, width, self.classes = tuple(spec["shape"]), int(spec["width"]), int(spec.get("classes", 0))
        if spec["kind"] == "conv":
            self.net = ConvDenoiserNet(shape[0], width, self.classes)
        elif spec["kind"] == "mlp":
            self.net = MLPDenoiserNet(shape[0], width, self.classes)
        else:
            raise ValueError(f"unknown denoiser kind {spec['kind']!r}; known: conv, mlp")
        self.center, self.sigma_data = float(spec["center"]), float(spec["sigma_data"])

    def forward(self, x: Tensor, sigma: Tensor | float, y: Tensor | None = None) -> Tensor:
        if y is not None and not self.classes:
            raise ValueError("this denoiser is unconditional: it takes no labels")
        label = None
        if self.classes:  # the label, or the index that means "none"
            label = torch.full((x.shape[0],), self.classes, device=x.device) if y is None else y.to(x.device)
        sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(x.shape[0])
        s = sigma.view(-1, *([1] * (x.dim() - 1)))
        sd2 = self.sigma_data**2
        c_skip, c_out, c_in = sd2 / (s**2 + sd2), s * self.sigma_data / (s**2 + sd2).sqrt(), 1 / (s**2 + sd2).sqrt()
        xc = x - self.center
        return c_skip * xc + c_out * self.net(c_in * xc, sigma.log() / 4, label) + self.center

    def __repr__(self) -> str:
        return f"Denoiser({self.spec['kind']}, shape={tuple(self.spec['shape'])}, width={self.spec['width']})"


def denoiser_score(denoiser: nn.Module, x: Tensor, sigma: float, y: Tensor | None = None) -> Tensor:
    """Tweedie's estimate of ``grad_x log p_sigma(x)``: ``(D(x, sigma) - x) / sigma^2``, no autograd;
    with labels ``y`` (a class-conditional denoiser) that of ``grad_x log p_sigma(x | y)``."""
    with torch.no_grad():
        return (denoiser(x, sigma, y) - x) / sigma**2


# ----------------------------------------------------------------------------- training


def _check_sigmas(sigmas) -> tuple[float, ...]:
    out = tuple(float(s) for s in sigmas)
    if not out or any(not math.isfinite(s) or s <= 0 for s in out):
        raise ValueError(f"invalid sigmas {list(sigmas)!r}: expected positive noise levels")
    return tuple(sorted(set(out)))


LABEL_DROP = 0.2  # a class-conditional denoiser sees no label for this share of its training samples


def dsm_loss(
    denoiser: Denoiser, x0: Tensor, sigmas: Tensor, generator: torch.Generator, y: Tensor | None = None
) -> Tensor:
    """Denoising score matching on one batch: each sample gets one of ``sigmas`` at random, and the
    squared error of ``D`` is weighted by ``1 / c_out^2`` (EDM), so every level has unit scale.
    Labels ``y`` (class-conditional): each is replaced by "no label" with probability :data:`LABEL_DROP`."""
    if y is not None:
        drop = torch.rand(y.shape, generator=generator).to(y.device) < LABEL_DROP
        y = torch.where(drop, torch.full_like(y, denoiser.classes), y)
    pick = torch.randint(len(sigmas), (x0.shape[0],), generator=generator).to(x0.device)
    sigma = sigmas[pick]
    s = sigma.view(-1, *([1] * (x0.dim() - 1)))
    noise = torch.randn(x0.shape, generator=generator).to(x0.device)
    sd2 = denoiser.sigma_data**2
    weight = (s**2 + sd2) / (s * denoiser.sigma_data) ** 2
    return (weight * (denoiser(x0 + s * noise, sigma, y) - x0) ** 2).flatten(1).sum(1).mean() / x0[0].numel()


def fit_denoiser(
    denoiser: Denoiser,
    data: Tensor,
    sigmas: Sequence[float],
    *,
    steps: int,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
    labels: Tensor | None = None,
) -> Denoiser:
    """Train ``denoiser`` by :func:`dsm_loss` on ``data`` ``(N, ...)`` (floats; images in [0, 1]),
    with their ``labels`` ``(N,)`` for a class-conditional denoiser.

    ``steps`` Adam steps on batches drawn with replacement, the learning rate decayed by a cosine to
    zero; seeded by ``seed``. ``log`` gets one line after the first 20 steps with the estimated
    total time. Returns the denoiser, in eval mode.
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"invalid steps={steps!r}: expected a positive integer")
    generator = torch.Generator().manual_seed(seed)
    device = next(denoiser.parameters()).device
    levels = torch.tensor(_check_sigmas(sigmas), device=device)
    optimizer = torch.optim.Adam(denoiser.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda t: 0.5 * (1 + math.cos(math.pi * t / steps)))
    denoiser.train()
    iterator = range(steps)
    if progress:
        from .progress import progress_bar

        iterator = progress_bar(iterator, "denoiser")
    t0 = time.perf_counter()
    for step in iterator:
        idx = torch.randint(len(data), (batch_size,), generator=generator)
        y = None if labels is None else labels[idx].to(device)
        loss = dsm_loss(denoiser, data[idx].to(device), levels, generator, y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        if log is not None and step == 19:
            estimate = (time.perf_counter() - t0) / 20 * steps
            log(f"denoiser: {steps} steps, about {estimate / 60:.1f} min at this speed")
    return denoiser.eval()


def psnr_table(
    denoiser: nn.Module,
    images: Tensor,
    sigmas: Sequence[float],
    *,
    labels: Tensor | None = None,
    seed: int = 0,
    batch_size: int = 500,
) -> dict[str, dict[str, float]]:
    """Denoising quality per sigma on ``images`` in [0, 1]: PSNR (peak 1) of the noisy input
    ``x0 + sigma n`` (not clipped) and of ``D``'s output, and the gain, in dB; with ``labels`` (a
    class-conditional denoiser) also ``D``'s given the class, ``denoised_psnr_given_class``.

    Returns ``{f"{sigma:g}": {"noisy_psnr", "denoised_psnr", "gain"[, "denoised_psnr_given_class"]}}``.
    """
    generator = torch.Generator().manual_seed(seed)
    device = next(denoiser.parameters()).device
    out = {}
    for sigma in _check_sigmas(sigmas):
        se = {"noisy_psnr": 0.0, "denoised_psnr": 0.0, "denoised_psnr_given_class": 0.0}
        for i in range(0, len(images), batch_size):
            x0 = images[i : i + batch_size].to(device)
            noisy = x0 + sigma * torch.randn(x0.shape, generator=generator).to(device)
            with torch.no_grad():
                se["noisy_psnr"] += float(((noisy - x0) ** 2).sum())
                se["denoised_psnr"] += float(((denoiser(noisy, sigma) - x0) ** 2).sum())
                if labels is not None:
                    y = labels[i : i + batch_size].to(device)
                    se["denoised_psnr_given_class"] += float(((denoiser(noisy, sigma, y) - x0) ** 2).sum())
        row = {k: -10 * math.log10(v / images.numel()) for k, v in se.items() if v > 0}
        out[f"{sigma:g}"] = {**row, "gain": row["denoised_psnr"] - row["noisy_psnr"]}
    return out


# ----------------------------------------------------------------------------- the cache


@dataclass(frozen=True)
class DenoiserConfig:
    """What a cached denoiser is trained with (its key, with the dataset and the data's digest).

    Attributes:
        sigmas: the noise levels trained (std, images in [0, 1]); the metric accepts only these.
        steps: Adam steps; batch_size: images per step; lr: Adam's initial learning rate.
        width: channels of the U-Net's first level; seed: initialization and batches.
        conditional: also given the class (``class_score_alignment``); it then estimates both the
            class-conditional score and, without a label, the unconditional one.
    """

    sigmas: tuple[float, ...] = DEFAULT_SIGMAS
    steps: int = 2000
    batch_size: int = 64
    lr: float = 2e-3
    width: int = 16
    seed: int = 0
    conditional: bool = True

    def __post_init__(self):
        object.__setattr__(self, "sigmas", _check_sigmas(self.sigmas))
        for name in ("steps", "batch_size", "width"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"invalid {name}={value!r}: expected a positive integer")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ValueError(f"invalid lr={self.lr!r}: expected a positive number")


def denoiser_dir() -> Path:
    """Where denoisers are cached: ``<cache_dir()>/denoisers``."""
    return cache_dir() / "denoisers"


def data_digest(images: Tensor) -> str:
    """A digest of the training images (uint8 tensor): the denoiser's source."""
    h = hashlib.sha256(f"{tuple(images.shape)} {images.dtype}\n".encode())
    h.update(images.contiguous().numpy().tobytes())
    return h.hexdigest()[:20]


def denoiser_path(dataset: str, config: DenoiserConfig, source: str) -> Path:
    """The cache file of a denoiser: ``<denoiser_dir()>/<dataset>-<key>.pt``, the key a digest of
    the format, the settings and the source."""
    text = json.dumps({"format": DENOISER_FORMAT, "dataset": dataset, "config": asdict(config), "source": source})
    return denoiser_dir() / f"{dataset}-{hashlib.sha256(text.encode()).hexdigest()[:16]}.pt"


def _load(path: Path, device=None) -> tuple[Denoiser, dict]:
    """The denoiser in ``path`` and its record; :class:`~noisemod.io.CorruptFileError` if unreadable."""
    entry = load_checkpoint(path)
    try:
        if entry.get("format") != DENOISER_FORMAT:
            raise ValueError(f"format {entry.get('format')!r}, expected {DENOISER_FORMAT}")
        denoiser = Denoiser(entry["spec"])
        denoiser.load_state_dict(entry["model"])
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise CorruptFileError(f"{path} is not a usable noisemod denoiser: {e}") from None
    info = {k: v for k, v in entry.items() if k != "model"}
    return denoiser.to(device or "cpu").eval(), {**info, "path": str(path)}


def build_denoiser(
    dataset: str,
    config: DenoiserConfig | None = None,
    *,
    data_root=None,
    rebuild: bool = False,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> tuple[Denoiser, dict]:
    """The denoiser of ``dataset`` trained with ``config``: loaded from the cache when there, else
    trained on the whole training split (no validation split carved out) and cached, with its
    :func:`psnr_table` on the first :data:`PSNR_IMAGES` test images and its build time.

    A cached file that cannot be read is rebuilt (with a warning); ``rebuild`` retrains anyway.
    Returns ``(denoiser, record)``; the record holds ``config``, ``psnr``, ``build_seconds``,
    ``path`` and ``cached`` (whether it was loaded).
    """
    from .data import load_dataset

    config = config or DenoiserConfig()
    data = load_dataset(dataset, root=data_root, val_size=0)
    source = data_digest(data.train.images)
    path = denoiser_path(data.name, config, source)
    if path.is_file() and not rebuild:
        try:
            denoiser, info = _load(path)
            return denoiser, {**info, "cached": True}
        except CorruptFileError as e:
            warnings.warn(f"rebuilding the denoiser: {e}", stacklevel=2)
    images = data.train.images.float().div_(255)
    spec = {"kind": "conv", "shape": list(images.shape[1:]), "width": config.width}
    spec.update(center=float(images.mean()), sigma_data=float(images.std()))
    spec["classes"] = data.num_classes if config.conditional else 0
    with torch.random.fork_rng(devices=[]):  # seeded weights, the caller's random state untouched
        torch.manual_seed(config.seed)
        denoiser = Denoiser(spec)
    t0 = time.perf_counter()
    fit = dict(steps=config.steps, batch_size=config.batch_size, lr=config.lr, seed=config.seed)
    labels = data.train.labels if config.conditional else None
    fit_denoiser(denoiser, images, config.sigmas, **fit, progress=progress, log=log, labels=labels)
    seconds = time.perf_counter() - t0
    test, test_labels = data.test.images[:PSNR_IMAGES].float().div_(255), data.test.labels[:PSNR_IMAGES]
    psnr = psnr_table(denoiser, test, config.sigmas, labels=test_labels if config.conditional else None)
    record = {"format": DENOISER_FORMAT, "dataset": data.name, "config": asdict(config), "spec": spec}
    record.update(source=source, psnr=psnr, build_seconds=seconds, torch=str(torch.__version__))
    save_checkpoint({**record, "model": denoiser.state_dict()}, path)
    return denoiser, {**record, "path": str(path), "cached": False}


def find_denoiser(dataset: str, sigma: float, device=None, *, conditional: bool = False) -> tuple[Denoiser, dict]:
    """The most recently built cached denoiser of ``dataset`` trained at noise level ``sigma``
    (a class-conditional one with ``conditional``).

    Raises:
        DenoiserError: none built for ``dataset`` (or only unreadable ones), or none trained at
            ``sigma`` (the message names it and the trained levels); each message gives the
            ``noisemod denoiser train`` command that builds one. Nothing is downloaded or trained.
    """
    sigma = float(sigma)
    from .data.datasets import DATASETS

    name = dataset.replace("_", "-") if dataset.replace("_", "-") in DATASETS else dataset
    files = sorted(denoiser_dir().glob(f"{name}-*.pt"), key=lambda p: p.stat().st_mtime, reverse=True)
    levels, broken = set(), []
    for path in files:
        try:
            denoiser, info = _load(path, device)
        except CorruptFileError:
            broken.append(path.name)
            continue
        if conditional and not denoiser.classes:
            continue
        trained = info["config"]["sigmas"]
        if any(math.isclose(sigma, s, rel_tol=1e-9) for s in trained):
            return denoiser, info
        levels.update(trained)
    if not levels:
        note = f" ({len(broken)} unreadable: {', '.join(broken)})" if broken else ""
        kind = "class-conditional denoiser" if conditional else "denoiser"
        raise DenoiserError(
            f"no {kind} built for dataset {name!r}{note} in {denoiser_dir()}; build it with `{_build_command(name)}`"
        )
    raise DenoiserError(
        f"sigma {sigma:g} is not a trained noise level of the {name} denoiser (trained: "
        f"{', '.join(f'{s:g}' for s in sorted(levels))}); build one with `{_build_command(name, [sigma])}`"
    )


def score_of(denoiser: Denoiser, sigma: float) -> Callable[..., Tensor]:
    """``(x, y=None) -> s``: :func:`denoiser_score` of ``denoiser`` at ``sigma`` on the denoiser's
    device, returned on ``x``'s: ``grad_x log p_sigma(x)``, or with labels ``grad_x log p_sigma(x | y)``."""
    where = next(denoiser.parameters()).device

    def score(x: Tensor, y: Tensor | None = None) -> Tensor:
        return denoiser_score(denoiser, x.to(where), sigma, None if y is None else y.to(where)).to(x.device)

    return score


def score_function(dataset: str, sigma: float, device=None, *, conditional: bool = False) -> Callable[..., Tensor]:
    """:func:`score_of` the cached denoiser of ``dataset`` at ``sigma`` (:func:`find_denoiser`, which
    raises :class:`DenoiserError` when there is none; a class-conditional one with ``conditional``)."""
    denoiser, _ = find_denoiser(dataset, sigma, device, conditional=conditional)
    return score_of(denoiser, sigma)
