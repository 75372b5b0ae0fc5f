"""Compiled kernels that are built once and then load in milliseconds in every process.

``torch.compile`` traces and compiles again in every new process: even with a warm inductor
cache its start-up for one small function is about 2 s on CPU (importing dynamo and inductor,
tracing, guards, loading the cached code), more than the whole noise overhead of a short
training run. :func:`aot_kernel` instead exports a function once with a dynamic batch dimension
(``torch.export``), compiles it with AOTInductor into a package stored under
``<cache_dir()>/kernels/`` (``$NOISEMOD_CACHE``), and loads that package directly with
``torch._C._aoti.AOTIModelPackageLoader`` (a few ms; without importing inductor) in every later
process. The package is keyed on everything its machine code depends on: the function's source
file, the arguments' dtypes and per-sample shapes, the device (type, CUDA capability, CPU
instruction set), torch's version and :data:`KERNEL_FORMAT`. The numbers are those of
``torch.compile`` (both run inductor's code).

A kernel takes and returns plain tensors and has no autograd; where it cannot be built or loaded
(no C++ compiler, an export error), :func:`aot_kernel` warns once and returns None, and the
caller uses ``torch.compile``.
"""

from __future__ import annotations

import hashlib
import platform
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from .io import atomic_write, cache_dir

__all__ = ["KERNEL_FORMAT", "aot_kernel", "clear_loaded", "kernel_dir"]

KERNEL_FORMAT = 1  # bump when the way kernels are exported or called changes

_loaded: dict[tuple, Callable[..., Tensor] | None] = {}  # per process: (fn, device, shapes) -> kernel


def kernel_dir() -> Path:
    """Where kernel packages are stored: ``<cache_dir()>/kernels``."""
    return cache_dir() / "kernels"


def _cpu_signature() -> str:
    # The packages are built with -march=native: key them on the CPU's instruction set, so a
    # cache shared by different machines (a cluster's home folder) never runs foreign code.
    flags = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return f"{platform.machine()} {torch.backends.cpu.get_cpu_capability()} {flags}"


def _device_signature(device: torch.device) -> str:
    if device.type == "cuda":
        major, minor = torch.cuda.get_device_capability(device)
        return f"cuda sm{major}{minor} {torch.version.cuda}"
    return f"{device.type} {_cpu_signature()}"


def _shapes(args: tuple[Tensor, ...], batched: tuple[bool, ...]) -> tuple:
    """What a kernel is specialized on besides the device: each argument's dtype and its shape
    without the batch dimension where it has one."""
    return tuple((a.dtype, tuple(a.shape[1:]) if b else tuple(a.shape), b) for a, b in zip(args, batched, strict=True))


def _key(fn: Callable, args: tuple[Tensor, ...], batched: tuple[bool, ...]) -> str:
    import inspect

    source = Path(inspect.getsourcefile(fn)).read_bytes()
    h = hashlib.sha256(f"noisemod-kernel-{KERNEL_FORMAT} {torch.__version__} {fn.__qualname__}\n".encode())
    h.update(hashlib.sha256(source).digest())
    h.update(_device_signature(args[0].device).encode())
    for dtype, shape, b in _shapes(args, batched):
        h.update(f"\n{dtype} {shape} {b}".encode())
    return f"{fn.__name__.strip('_')}-{h.hexdigest()[:20]}"


class _Module(torch.nn.Module):
    def __init__(self, fn: Callable):
        super().__init__()
        self.fn = fn

    def forward(self, *args):
        return self.fn(*args)


def _build(fn: Callable, args: tuple[Tensor, ...], batched: tuple[bool, ...], path: Path, max_batch: int) -> None:
    from torch._inductor import aoti_compile_and_package
    from torch.export import Dim, export

    batch = Dim("batch", min=1, max=max(2, max_batch))
    shapes = tuple({0: batch} if b else None for b in batched)
    program = export(_Module(fn), args, dynamic_shapes={"args": shapes})
    with tempfile.TemporaryDirectory(prefix="noisemod-kernel-") as tmp:
        built = aoti_compile_and_package(program, package_path=str(Path(tmp) / path.name))
        atomic_write(path, lambda f: f.write(Path(built).read_bytes()))


def _load(path: Path, device: torch.device) -> Callable[..., Tensor]:
    index = device.index if device.type == "cuda" and device.index is not None else -1
    try:  # direct: a few ms, and inductor is never imported
        loader = torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, index)
    except (AttributeError, TypeError):  # another torch's signature: the public loader
        from torch._inductor import aoti_load_package

        return aoti_load_package(str(path))
    return lambda *args: loader.boxed_run(list(args))[0]


def aot_kernel(
    fn: Callable[..., Tensor], args: tuple[Tensor, ...], batched: tuple[bool, ...], *, max_batch: int = 2**20
) -> Callable[..., Tensor] | None:
    """``fn`` compiled ahead of time for arguments like ``args``, or None where that fails here.

    Args:
        fn: a function of tensors returning one tensor, traceable by ``torch.export`` (no Python
            ints taken from shapes, no data-dependent control flow).
        args: example arguments, on the device the kernel runs on.
        batched: for each argument, whether its first dimension is the batch (dynamic: any
            size from 1 to ``max_batch``); the other dimensions, the dtypes and the device are
            fixed, and another combination gets another kernel.
        max_batch: the largest batch the kernel accepts.

    Returns:
        A callable taking tensors like ``args`` (contiguous, batch of any allowed size) and
        returning ``fn``'s result. The first call for a new combination on a machine builds the
        package (tens of seconds on CPU); every later one, in any process, loads it. None, with
        one warning, when the kernel cannot be exported, compiled or loaded.
    """
    fast = (fn, args[0].device, _shapes(args, batched))
    if fast in _loaded:
        return _loaded[fast]
    kernel = None
    try:
        path = kernel_dir() / f"{_key(fn, args, batched)}.pt2"
        if path.is_file():
            try:
                kernel = _load(path, args[0].device)
            except Exception:  # unreadable: build it again
                path.unlink(missing_ok=True)
        if kernel is None:
            _build(fn, args, batched, path, max_batch)
            kernel = _load(path, args[0].device)
    except Exception as e:  # no compiler, no source file, an export error, a package torch cannot read
        warnings.warn(f"no ahead-of-time kernel for {fn.__qualname__}, using torch.compile: {e}", stacklevel=3)
    _loaded[fast] = kernel
    return kernel


def clear_loaded() -> None:
    """Forget the kernels loaded in this process (tests)."""
    _loaded.clear()
