"""The ahead-of-time kernel of the fused noise path: built once, loaded by later processes without
compiling, the same numbers as torch.compile, and a fallback to it wherever it cannot be built."""

import os
import subprocess
import sys
import warnings

import pytest
import torch

from noisemod import kernels
from noisemod.modulation import _fused_modulate, _work_dtype, fused_modulate

pytestmark = pytest.mark.filterwarnings("ignore:No CUDA runtime")


@pytest.fixture
def kernel_cache():
    """The test run's kernel folder (conftest.py's NOISEMOD_CACHE), shared with the other tests and xdist
    workers: each build takes ~10 s, so a package is built once per session. A test that changes a
    package, or needs none there, uses a folder of its own."""
    kernels.clear_loaded()
    yield kernels.kernel_dir()
    kernels.clear_loaded()


def _package(kernel_cache, x):
    """The package fused_modulate(x, beta) runs (the key and beta are fixed-shape arguments)."""
    beta = torch.tensor(0.5, dtype=_work_dtype(x.dtype))
    return kernel_cache / f"{kernels._key(_fused_modulate, (x, _key_of(0), beta), (True, False, False))}.pt2"


@pytest.fixture
def builds(monkeypatch):
    """The names of the packages built from now on in this process."""
    names, build = [], kernels._build

    def record(fn, args, batched, path, max_batch):
        names.append(path.name)
        return build(fn, args, batched, path, max_batch)

    monkeypatch.setattr(kernels, "_build", record)
    return names


def _key_of(seed):
    return torch.randint(-(2**31), 2**31, (2,), dtype=torch.int32, generator=torch.Generator().manual_seed(seed))


@pytest.mark.slow
def test_one_kernel_for_every_batch_size_equal_to_torch_compile(kernel_cache, builds):
    compiled = torch.compile(_fused_modulate)
    outs = {}
    for b in (64, 1, 7):  # one package with a dynamic batch: built at the first call, reused after
        x = torch.rand(b, 1, 6, 6, generator=torch.Generator().manual_seed(b))
        outs[b] = fused_modulate(x, 0.5, generator=torch.Generator().manual_seed(b))
        assert torch.equal(outs[b], compiled(x, _key_of(b), torch.tensor(0.5)))  # bit for bit
        torch.testing.assert_close(
            outs[b], fused_modulate(x, 0.5, generator=torch.Generator().manual_seed(b), compiled=False)
        )
    package = _package(kernel_cache, x)
    assert package.is_file() and set(builds) <= {package.name}  # one package, built at most once (none if before)
    double = torch.rand(3, 1, 6, 6, dtype=torch.float64)
    fused_modulate(double, 0.5)  # another dtype: another kernel
    assert _package(kernel_cache, double) != package and _package(kernel_cache, double).is_file()
    assert set(builds) <= {package.name, _package(kernel_cache, double).name}


def test_a_new_process_loads_the_package_without_compiling(kernel_cache, tmp_path):
    x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    here = fused_modulate(x, 0.25, generator=torch.Generator().manual_seed(1))
    package = _package(kernel_cache, x)
    mtime = package.stat().st_mtime_ns
    child = (
        "import sys, torch\n"
        "from noisemod.modulation import fused_modulate\n"
        "x = torch.rand(5, 1, 6, 6, generator=torch.Generator().manual_seed(0))\n"
        "y = fused_modulate(x, 0.25, generator=torch.Generator().manual_seed(1))\n"
        "assert 'torch._inductor' not in sys.modules and 'torch._dynamo' not in sys.modules, 'compiled'\n"
        "torch.save(y, sys.argv[1])\n"
    )
    out = tmp_path / "child.pt"
    env = {**os.environ, "NOISEMOD_CACHE": str(kernel_cache.parent)}
    proc = subprocess.run([sys.executable, "-c", child, str(out)], env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert torch.equal(torch.load(out), here)
    assert package.stat().st_mtime_ns == mtime  # loaded, not rebuilt


@pytest.mark.slow
def test_a_corrupt_package_is_rebuilt(kernel_cache, tmp_path, monkeypatch):
    x = torch.rand(2, 1, 6, 6)
    first = fused_modulate(x, 0.5, generator=torch.Generator().manual_seed(2))
    # the same package, corrupt, in a cache of this test's own (the test run's is shared)
    monkeypatch.setenv("NOISEMOD_CACHE", str(tmp_path))
    package = _package(kernels.kernel_dir(), x)
    package.parent.mkdir()
    package.write_bytes(b"not a package")
    kernels.clear_loaded()
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # no fallback warning: rebuilt and loaded
        again = fused_modulate(x, 0.5, generator=torch.Generator().manual_seed(2))
    assert torch.equal(again, first) and package.stat().st_size > 1000


def test_where_no_kernel_can_be_built_it_warns_once_and_torch_compile_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEMOD_CACHE", str(tmp_path))
    kernels.clear_loaded()
    kernel_cache = tmp_path / "kernels"

    def fail(*args, **kwargs):
        raise RuntimeError("no C++ compiler here")

    monkeypatch.setattr(kernels, "_build", fail)
    x = torch.rand(3, 1, 6, 6)
    expected = torch.compile(_fused_modulate)(x, _key_of(5), torch.tensor(0.5))
    with pytest.warns(UserWarning, match="no ahead-of-time kernel.*using torch.compile: no C\\+\\+ compiler here"):
        got = fused_modulate(x, 0.5, generator=torch.Generator().manual_seed(5))
    assert torch.equal(got, expected)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # once per process and shape
        fused_modulate(x, 0.5)
    assert not kernel_cache.exists() or not list(kernel_cache.glob("*.pt2"))
    kernels.clear_loaded()


def test_inputs_the_kernel_cannot_take_go_through_torch_compile(kernel_cache):
    # a kernel has no autograd and fixed strides: an input that needs a gradient, or a
    # non-contiguous one, takes the torch.compile path, with the same numbers
    x = torch.rand(4, 1, 6, 6, requires_grad=True)
    out = fused_modulate(x, 0.5, generator=torch.Generator().manual_seed(6))
    out.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        kernel_out = fused_modulate(x.detach(), 0.5, generator=torch.Generator().manual_seed(6))
    assert torch.equal(out.detach(), kernel_out)
    wide = torch.rand(4, 1, 6, 12)[..., ::2]
    assert not wide.is_contiguous()
    assert torch.equal(
        fused_modulate(wide, 0.5, generator=torch.Generator().manual_seed(7)),
        fused_modulate(wide.contiguous(), 0.5, generator=torch.Generator().manual_seed(7)),
    )


def test_the_key_names_what_the_machine_code_depends_on():
    args = (torch.rand(4, 1, 6, 6), _key_of(0), torch.tensor(0.5))
    key = kernels._key(_fused_modulate, args, (True, False, False))
    assert key == kernels._key(_fused_modulate, (torch.rand(9, 1, 6, 6), *args[1:]), (True, False, False))
    assert key != kernels._key(_fused_modulate, (torch.rand(4, 1, 6, 7), *args[1:]), (True, False, False))
    assert key != kernels._key(_fused_modulate, (args[0].double(), *args[1:]), (True, False, False))
    assert key != kernels._key(_fused_modulate, (torch.rand(4, 1, 6, 6), *args[1:]), (False, False, False))
    assert key.startswith("fused_modulate-")


def test_inside_a_compiled_model_the_modulation_is_traced_not_loaded(kernel_cache):
    # `--compile --fused-noise`: torch.compile traces into the modulation and fuses it with the
    # model; the numbers are those of the uncompiled model with the kernel
    from torch import nn

    from noisemod.modulation import NoiseModulation

    def model():
        torch.manual_seed(0)
        return nn.Sequential(NoiseModulation(0.5, fused=True, check=False), nn.Flatten(), nn.Linear(36, 3))

    x = torch.rand(8, 1, 6, 6, generator=torch.Generator().manual_seed(9))
    plain, compiled = model(), torch.compile(model())
    torch.manual_seed(1)  # the key is drawn from the global generator
    expected = plain(x)
    torch.manual_seed(1)
    torch.testing.assert_close(compiled(x), expected)
