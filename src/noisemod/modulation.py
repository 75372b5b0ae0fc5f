"""Noise modulation: the carrier and the modulation (paper, Definitions 1 and 2).

An input x of N values (one sample) is fed to the model as

    x * N * c**2 / C0,        C0 = sum_n c_n**2,        c = beta + (1 - beta) * delta   (Eq. 7, 10)

with a fresh noise ``delta`` for every input. ``modulate`` is the pure function,
``sample_carrier`` draws ``c``, and ``NoiseModulation`` wraps both as an ``nn.Module`` that is
active in training mode and the identity in eval mode, like Dropout.

``NoiseModulation(fused=True)`` is the fast path for Gaussian noise: ``counter_gaussian`` draws
the noise from a counter-based generator (a hash of a per-call key and the element's index, then
Box-Muller), so sampling and modulation compile into one parallel kernel instead of torch's
serial CPU generator followed by four passes. Same definitions, same noise distribution, a
different random stream. The kernel is built ahead of time once per sample shape, dtype and
device and cached on disk (:mod:`noisemod.kernels`), so a new process loads it in milliseconds
instead of paying ``torch.compile``'s start-up again.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

__all__ = [
    "NOISES",
    "NoiseModulation",
    "counter_gaussian",
    "fused_modulate",
    "modulate",
    "sample_carrier",
    "sample_noise",
]

NoiseFn = Callable[..., Tensor]  # (shape, generator, device, dtype) -> Tensor of that shape


def _exponential(shape, generator, device, dtype):
    return torch.empty(shape, device=device, dtype=dtype).exponential_(1.0, generator=generator)


def _gaussian(shape, generator, device, dtype):
    return torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _uniform(shape, generator, device, dtype):
    return torch.rand(shape, generator=generator, device=device, dtype=dtype)


def _laplace(shape, generator, device, dtype):
    # Laplace(0, 1) is the difference of two independent Exp(1) variables.
    return _exponential(shape, generator, device, dtype).sub_(_exponential(shape, generator, device, dtype))


def _rayleigh(shape, generator, device, dtype):
    # Rayleigh(sigma=1) = sqrt(2 E) with E ~ Exp(1).
    return _exponential(shape, generator, device, dtype).mul_(2.0).sqrt_()


# The paper's six noises (Section 3.4). Gamma(shape=1, scale=1) is the same distribution as
# Exponential(scale=1); both names are kept because the paper compares them as two noises.
NOISES: dict[str, NoiseFn] = {
    "gaussian": _gaussian,
    "uniform": _uniform,
    "laplace": _laplace,
    "gamma": _exponential,
    "exponential": _exponential,
    "rayleigh": _rayleigh,
}


def _check_beta(beta) -> float:
    if (
        isinstance(beta, bool)
        or not isinstance(beta, (int, float))
        or not math.isfinite(beta)
        or not 0.0 <= beta <= 1.0
    ):
        raise ValueError(f"beta must be a number in [0, 1], got {beta!r}")
    return float(beta)


def _check_noise(noise) -> NoiseFn:
    if callable(noise):
        return noise
    if isinstance(noise, str) and noise in NOISES:
        return NOISES[noise]
    raise ValueError(
        f"unknown noise {noise!r}; valid noises: {', '.join(NOISES)} or a callable "
        "(shape, generator, device, dtype) -> Tensor"
    )


def _float_dtype(dtype) -> torch.dtype:
    """``dtype``, or the default dtype for None; it must be floating."""
    dtype = dtype or torch.get_default_dtype()
    if not dtype.is_floating_point:
        raise ValueError(f"dtype must be a floating dtype, got {dtype}")
    return dtype


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    # Noise is drawn in float32 (float64 when asked for) and cast: half-precision sampling is
    # not supported by every distribution on every device, and loses resolution in the tails.
    return torch.float64 if dtype == torch.float64 else torch.float32


def sample_noise(shape, noise: str | NoiseFn = "gaussian", *, generator=None, device=None, dtype=None) -> Tensor:
    """Draw the noise ``delta`` of Definition 2 (before mixing with ``beta``).

    Args:
        shape: output shape, e.g. ``x.shape``.
        noise: one of :data:`NOISES` or a callable ``(shape, generator, device, dtype) -> Tensor``.
        generator: optional ``torch.Generator`` on ``device``, for reproducibility.
        device, dtype: where and in which floating dtype to return it (default: the default dtype).
    """
    fn = _check_noise(noise)
    shape = torch.Size(shape)
    dtype = _float_dtype(dtype)
    work = dtype if callable(noise) and not isinstance(noise, str) else _work_dtype(dtype)
    delta = fn(shape, generator, device, work)
    if not isinstance(delta, Tensor) or delta.shape != shape:
        got = tuple(delta.shape) if isinstance(delta, Tensor) else type(delta).__name__
        raise ValueError(f"noise {noise!r} returned {got}, expected a tensor of shape {tuple(shape)}")
    return delta.to(dtype)


def sample_carrier(
    shape, beta: float = 0.5, noise: str | NoiseFn = "gaussian", *, generator=None, device=None, dtype=None
) -> Tensor:
    """Draw a carrier ``c = beta + (1 - beta) * delta`` (Definition 2, Eq. 10).

    Args:
        shape: the shape of the batch to modulate, ``(B, ...)``: one independent carrier element
            per input element.
        beta: ratio of the constant component, in [0, 1]; ``beta=1`` gives ``c = 1``
            (standard training).
        noise: ``"gaussian"`` (N(0, 1), default), ``"uniform"`` (U[0, 1)), ``"laplace"``
            (loc 0, scale 1), ``"gamma"`` (shape 1, scale 1), ``"exponential"`` (scale 1),
            ``"rayleigh"`` (scale 1), or a callable ``(shape, generator, device, dtype) -> Tensor``.
        generator: optional ``torch.Generator`` (on ``device``) making the draw reproducible.
        device, dtype: sampled directly there, in that floating dtype.

    Returns:
        Tensor ``c`` of ``shape``.
    """
    beta = _check_beta(beta)
    dtype = _float_dtype(dtype)
    if noise == "gaussian":  # c ~ N(beta, (1 - beta)^2): one pass instead of three
        c = torch.empty(torch.Size(shape), device=device, dtype=_work_dtype(dtype))
        return c.normal_(beta, 1.0 - beta, generator=generator).to(dtype)
    delta = sample_noise(shape, noise, generator=generator, device=device, dtype=_work_dtype(dtype))
    return delta.mul_(1.0 - beta).add_(beta).to(dtype)


def modulate(x: Tensor, carrier: Tensor, *, check: bool = True) -> Tensor:
    """Modulate and demodulate a batch: ``x * N * c**2 / C0`` per sample (Definition 1, Eq. 7).

    Dim 0 is the batch; ``N`` is the number of elements of one sample and ``C0`` the sum of
    ``c**2`` over that sample, so the factor ``N c**2 / C0`` has mean exactly 1 over each sample.

    The factor is computed in float32 (float64 for float64 inputs) whatever the input dtype, so
    float16/bfloat16 inputs do not lose C0 to overflow or rounding. ``C0`` itself is guarded:
    the factor is scale-invariant in ``c``, so when some sample's ``C0`` is too small for full
    precision or overflows (tiny or huge carriers, ``beta=0`` with small N), and always on
    accelerators (where checking C0 would cost a device sync), each sample's carrier is first
    divided by its largest magnitude, which makes ``C0 >= 1``. A carrier that is zero everywhere
    (excluded by Definition 1, ``c != 0``) leaves its sample unchanged, as the constant carrier
    ``c = 1`` does.

    Args:
        x: input batch ``(B, ...)``, a floating tensor; never modified in place.
        carrier: tensor of the same shape as ``x`` (see :func:`sample_carrier`).
        check: validate that ``x`` is finite (costs one device sync; training loops that
            validated their data once pass ``False``).

    Returns:
        The modulated batch, same shape, dtype and device as ``x``.
    """
    if not isinstance(carrier, Tensor):
        raise ValueError("modulate expects tensors x and carrier")
    _check_batch(x, check)
    if carrier.shape != x.shape:
        raise ValueError(f"carrier shape {tuple(carrier.shape)} does not match input shape {tuple(x.shape)}")
    work = _work_dtype(x.dtype)
    c = carrier.to(device=x.device, dtype=work).flatten(1)
    c2 = None
    if x.device.type == "cpu":  # checking B numbers costs nothing on CPU (on CUDA it would sync)
        c2 = c.square()
        c0 = c2.sum(dim=1, keepdim=True)
        if not _safe_c0(c0, c.shape[1]):
            c2 = None
    if c2 is None:
        c2, c0 = _rescaled_square(c)
    factor = c2.mul_(c.shape[1] / c0).view_as(x)
    return factor.mul_(x) if x.dtype == work else (x.to(work) * factor).to(x.dtype)


def _check_batch(x, check: bool) -> None:
    if not isinstance(x, Tensor):
        raise ValueError(f"expected a tensor batch x, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"x must be a batch (B, ...) with at least 2 dims, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating tensor, got dtype {x.dtype}")
    if check and not bool(torch.isfinite(x).all()):
        raise ValueError("x contains NaN or Inf values; noise modulation needs finite inputs")


def _safe_c0(c0: Tensor, n: int) -> bool:
    """True when every C0 is finite and large enough that c**2 keeps full precision on average."""
    info = torch.finfo(c0.dtype)
    return bool(((c0 >= info.tiny / info.eps * n) & (c0 <= info.max)).all())


def _rescaled_square(c: Tensor) -> tuple[Tensor, Tensor]:
    """``(c / max|c|)**2`` per sample and its sum, which is then >= 1: no underflow or overflow
    whatever the scale of ``c`` (the factor ``N c**2 / C0`` does not depend on it). An all-zero
    carrier becomes all ones, i.e. the identity."""
    scale = c.abs().amax(dim=1, keepdim=True)
    zero = (scale == 0).to(c.dtype)
    c2 = (c / (scale + zero)).square_().add_(zero)
    return c2, c2.sum(dim=1, keepdim=True)


def _mix32(v: Tensor) -> Tensor:
    """lowbias32 (C. Wellons' 32-bit integer hash, a bijection) on int32 lanes: products wrap
    modulo 2**32 and the right shifts are made logical by masking off the sign extension."""
    v = v ^ ((v >> 16) & 0xFFFF)
    v = v * 0x7FEB352D
    v = v ^ ((v >> 15) & 0x1FFFF)
    v = v * (0x846CA68B - (1 << 32))
    return v ^ ((v >> 16) & 0xFFFF)


def _keyed_hash(counter: Tensor, key: Tensor) -> Tensor:
    return _mix32(_mix32(counter ^ key[0]) ^ key[1])


def _unit_interval(bits: Tensor, offset: float) -> Tensor:
    # The top 24 bits, as float32 exactly: multiples of 2**-24 in [0, 1), shifted by ``offset``.
    return (((bits >> 8) & 0xFFFFFF).to(torch.float32) + offset) * 2.0**-24


def counter_gaussian(numel: int, key: Tensor) -> Tensor:
    """``numel`` independent N(0, 1) float32 values from a counter-based generator.

    Value ``i`` depends only on ``key`` (two int32) and ``i``: pair ``j`` takes two 32-bit words,
    ``h(h(2j ^ key[0]) ^ key[1])`` and ``h(h(2j + 1 ^ key[0]) ^ key[1])`` with ``h`` the
    lowbias32 bijection, turns their top 24 bits into uniforms ``u1`` in (0, 1) and ``u2`` in
    [0, 1) and returns Box-Muller's ``r cos(2 pi u2)`` (first half) and ``r sin(2 pi u2)``
    (second half), ``r = sqrt(-2 log u1)``. With 24-bit uniforms the largest value is 5.9, the
    tail of torch's own CPU ``randn`` (5.8). Element-wise integer and float ops only, so it
    runs in parallel and fuses under ``torch.compile``; draw a fresh key for fresh noise.
    """
    if not isinstance(key, Tensor) or key.shape != (2,) or key.dtype != torch.int32:
        raise ValueError(f"key must be an int32 tensor of shape (2,), got {key!r}")
    if not 0 < int(numel) <= _MAX_COUNTER_VALUES:
        raise ValueError(f"counter_gaussian draws between 1 and 2**31 - 2 values, got {numel}")
    return _counter_gaussian(int(numel), key)


_MAX_COUNTER_VALUES = 2**31 - 2


def _counter_gaussian(numel, key: Tensor) -> Tensor:
    # counter_gaussian without the checks; ``numel`` may be symbolic (torch.export), so no int().
    counter = torch.arange(0, 2 * ((numel + 1) // 2), 2, dtype=torch.int32, device=key.device)
    u1 = _unit_interval(_keyed_hash(counter, key), 0.5)
    u2 = _unit_interval(_keyed_hash(counter + 1, key), 0.0)
    radius = torch.sqrt(-2.0 * torch.log(u1))
    angle = (2.0 * math.pi) * u2
    return torch.cat([radius * torch.cos(angle), radius * torch.sin(angle)])[:numel]


def _fused_modulate(x: Tensor, key: Tensor, beta: Tensor) -> Tensor:
    """``modulate(x, beta + (1 - beta) * counter_gaussian(...))`` in one expression. A sample
    whose C0 is 0 (all of its carrier exactly 0) is left unchanged, as in :func:`modulate`.
    ``modulate``'s rescaling against tiny C0 is not needed here (it would cost a second pass):
    C0 can underflow only if every ``|c|`` of a sample is below about 1e-19."""
    work = _work_dtype(x.dtype)
    n = x[0].numel()
    c = _counter_gaussian(x.numel(), key).to(work).view(x.shape[0], n) * (1.0 - beta) + beta
    c2 = c * c
    c0 = c2.sum(dim=1, keepdim=True)
    factor = torch.where(c0 > 0, c2 * (n / c0), 1.0)
    return (x.to(work) * factor.view(x.shape)).to(x.dtype)


_compiled_fused_modulate = None


def fused_modulate(
    x: Tensor, beta: float = 0.5, *, generator=None, check: bool = True, compiled: bool = True
) -> Tensor:
    """Noise modulation with Gaussian noise in one compiled kernel (see the module docstring).

    Draws a fresh 64-bit key from ``generator`` (or the global RNG) on ``x``'s device, so calls
    are reproducible from the generator's state, and returns
    ``modulate(x, beta + (1 - beta) * counter_gaussian(x.numel(), key))``.

    Args:
        x: input batch ``(B, ...)``, floating; never modified in place.
        beta: ratio of the constant component, in [0, 1].
        generator: optional ``torch.Generator`` on ``x``'s device.
        check: validate that ``x`` is finite (one device sync).
        compiled: run compiled (the point of this function; it needs a C++ compiler on CPU and
            Triton on CUDA): an ahead-of-time kernel built once per sample shape, dtype and
            device and cached across processes (:mod:`noisemod.kernels`, loads in ms) for a
            contiguous ``x`` that needs no gradient and has an even number of values per sample,
            else ``torch.compile``; both give the same numbers. ``False`` runs the same code eagerly, for tests.
    """
    global _compiled_fused_modulate
    beta = _check_beta(beta)
    _check_batch(x, check)
    if beta == 1.0:
        return x
    if x.numel() > _MAX_COUNTER_VALUES:
        raise ValueError(f"fused noise modulation takes at most 2**31 - 2 values a batch, got shape {tuple(x.shape)}")
    key = torch.randint(-(2**31), 2**31, (2,), dtype=torch.int32, generator=generator, device=x.device)
    beta_t = torch.full((), beta, dtype=_work_dtype(x.dtype), device=x.device)
    if not compiled or torch.compiler.is_compiling():  # eager, or traced into a compiled model
        return _fused_modulate(x, key, beta_t)
    # The kernel: for a contiguous x needing no gradient, with an even number of values per sample
    # (for an odd one, torch.export cannot show that the batch's values fill the last Box-Muller pair)
    if x[0].numel() % 2 == 0 and x.is_contiguous() and not (x.requires_grad and torch.is_grad_enabled()):
        from .kernels import aot_kernel

        args = (x, key, beta_t)
        kernel = aot_kernel(_fused_modulate, args, (True, False, False), max_batch=_MAX_COUNTER_VALUES // x[0].numel())
        if kernel is not None:
            return kernel(*args)
    if _compiled_fused_modulate is None:
        _compiled_fused_modulate = torch.compile(_fused_modulate)
    try:
        return _compiled_fused_modulate(x, key, beta_t)
    except Exception as e:  # a missing compiler surfaces here, at the first call
        raise RuntimeError(
            "fused noise modulation needs torch.compile to work on this machine (a C++ "
            f"compiler on CPU, Triton on CUDA); it failed with: {e}. Use fused=False "
            "(or leave --fused-noise off)"
        ) from e


class NoiseModulation(nn.Module):
    """Noise modulation as a layer (Definition 2): a fresh carrier per input in training mode,
    the identity in eval mode (like ``nn.Dropout``).

    Use it as the first layer of any model (``nn.Sequential(NoiseModulation(0.5), model)``), as
    a batch transform in a training loop (``x = nm(x)`` with ``nm.train()``), or to precompute a
    modulated copy of a dataset batch by batch.

    Args:
        beta: ratio of the constant component of the carrier, in [0, 1]; ``beta=1`` is exactly
            the identity.
        noise: noise name (see :data:`NOISES`) or a callable ``(shape, generator, device, dtype)``.
        generator: optional ``torch.Generator`` on the device of the inputs; the global RNG
            otherwise.
        check: raise ``ValueError`` on NaN/Inf inputs (one device sync per call; a training
            loop whose data was validated once turns it off).
        fused: Gaussian noise only: sample it with :func:`counter_gaussian` and modulate in one
            compiled kernel (:func:`fused_modulate`); several times faster on CPU.
    """

    def __init__(
        self,
        beta: float = 0.5,
        noise: str | NoiseFn = "gaussian",
        generator=None,
        *,
        check: bool = True,
        fused: bool = False,
    ):
        super().__init__()
        self.check = bool(check)
        self.beta = _check_beta(beta)
        _check_noise(noise)
        if fused and noise != "gaussian":
            raise ValueError(f"fused=True needs noise='gaussian', got {noise!r}")
        self.fused = bool(fused)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise ValueError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
        self.noise = noise
        self.generator = generator

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.beta == 1.0:
            return x
        if self.fused:
            return fused_modulate(x, self.beta, generator=self.generator, check=self.check)
        carrier = sample_carrier(
            x.shape, self.beta, self.noise, generator=self.generator, device=x.device, dtype=_work_dtype(x.dtype)
        )
        return modulate(x, carrier, check=self.check)

    def extra_repr(self) -> str:
        noise = self.noise if isinstance(self.noise, str) else getattr(self.noise, "__name__", repr(self.noise))
        return f"beta={self.beta}, noise={noise!r}" + (", fused=True" if self.fused else "")
