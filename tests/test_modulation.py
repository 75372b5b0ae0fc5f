"""Noise modulation (Definitions 1 and 2): properties, hand-computed values, errors."""

import math

import pytest
import torch

from noisemod import NOISES, NoiseModulation, modulate, sample_carrier
from noisemod.modulation import sample_noise

FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_hand_computed_single_sample():
    x = torch.tensor([[1.0, 2.0, 3.0, 4.0]])
    c = torch.tensor([[1.0, 0.0, 1.0, 2.0]])  # c^2 = 1, 0, 1, 4; C0 = 6; N = 4
    expected = x * 4 * torch.tensor([[1.0, 0.0, 1.0, 4.0]]) / 6
    torch.testing.assert_close(modulate(x, c), expected)
    torch.testing.assert_close(expected, torch.tensor([[2 / 3, 0.0, 2.0, 32 / 3]]))


def test_c0_is_per_sample_not_per_batch():
    x = torch.ones(2, 1, 2)
    c = torch.tensor([[[1.0, 1.0]], [[3.0, 1.0]]])  # second sample: c^2 = 9, 1; C0 = 10; N = 2
    out = modulate(x, c)
    torch.testing.assert_close(out[0], torch.ones(1, 2))
    torch.testing.assert_close(out[1], torch.tensor([[1.8, 0.2]]))


def test_beta_one_is_exactly_identity():
    x = torch.rand(8, 3, 5, 5)
    c = sample_carrier(x.shape, beta=1.0)
    assert torch.equal(c, torch.ones_like(x))
    assert torch.equal(modulate(x, c), x)
    nm = NoiseModulation(beta=1.0).train()
    assert torch.equal(nm(x), x)


@pytest.mark.parametrize("noise", list(NOISES))
def test_factor_has_per_sample_mean_one(noise):
    shape = (16, 3, 7, 7)
    c = sample_carrier(shape, beta=0.5, noise=noise, generator=torch.Generator().manual_seed(0))
    factor = modulate(torch.ones(shape), c)
    torch.testing.assert_close(factor.flatten(1).mean(1), torch.ones(16), atol=1e-5, rtol=0)
    assert (factor >= 0).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_shape_dtype_device_kept_and_input_untouched(dtype, device):
    x = torch.rand(4, 3, 6, 5, device=device).to(dtype)
    before = x.clone()
    c = sample_carrier(x.shape, 0.5, device=device, dtype=dtype)
    out = modulate(x, c)
    assert out.shape == x.shape and out.dtype == dtype and out.device == x.device
    assert torch.equal(x, before)
    assert out.data_ptr() != x.data_ptr()
    ref = modulate(x.double(), c.double())
    tol = {torch.float16: 1e-2, torch.bfloat16: 5e-2}.get(dtype, 1e-5)
    torch.testing.assert_close(out.double(), ref.to(device), atol=tol, rtol=tol)


def test_half_precision_c0_does_not_overflow():
    # 4096 elements of c = 300: c^2 = 9e4 overflows float16 (max 65504) if squared in place.
    x = torch.rand(2, 1, 64, 64).half()
    c = torch.full_like(x, 300.0)
    c[0, 0, 0, 0] = 600.0
    out = modulate(x, c)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), modulate(x.float(), c.float()), atol=1e-2, rtol=1e-2)


@pytest.mark.parametrize("scale", [1e-30, 1e-20, 1.0, 1e20, 1e30])
def test_c0_guard_tiny_and_huge_carriers(scale):
    x = torch.rand(3, 10)
    c = sample_carrier(x.shape, beta=0.0, generator=torch.Generator().manual_seed(1))
    ref = modulate(x, c)
    out = modulate(x, c * scale)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)


def test_all_zero_carrier_leaves_sample_unchanged():
    x = torch.rand(2, 4)
    c = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 0.0, 1.0]])
    out = modulate(x, c)
    assert torch.equal(out[0], x[0])
    torch.testing.assert_close(out[1], x[1] * 4 * c[1] ** 2 / 6)


def test_seeded_generator_is_reproducible():
    a = sample_carrier((4, 1, 8, 8), 0.5, generator=torch.Generator().manual_seed(7))
    b = sample_carrier((4, 1, 8, 8), 0.5, generator=torch.Generator().manual_seed(7))
    c = sample_carrier((4, 1, 8, 8), 0.5, generator=torch.Generator().manual_seed(8))
    assert torch.equal(a, b) and not torch.equal(a, c)
    x = torch.rand(4, 1, 8, 8)
    m1 = NoiseModulation(0.5, generator=torch.Generator().manual_seed(3)).train()
    m2 = NoiseModulation(0.5, generator=torch.Generator().manual_seed(3)).train()
    assert torch.equal(m1(x), m2(x))


# mean and variance of each noise (Section 3.4: every scale 1)
MOMENTS = {
    "gaussian": (0.0, 1.0),
    "uniform": (0.5, 1 / 12),
    "laplace": (0.0, 2.0),
    "gamma": (1.0, 1.0),
    "exponential": (1.0, 1.0),
    "rayleigh": (math.sqrt(math.pi / 2), (4 - math.pi) / 2),
}


@pytest.mark.parametrize("noise", list(NOISES))
def test_noise_moments(noise):
    n = 400_000
    delta = sample_noise((n,), noise, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, var = MOMENTS[noise]
    # ~6 standard errors: the mean's s.e. is sqrt(var/n); the variance's is < 3 var / sqrt(n) for these tails
    assert abs(delta.mean().item() - mean) < 6 * math.sqrt(var / n)
    assert abs(delta.var().item() - var) < 6 * 3 * var / math.sqrt(n)
    if noise in ("uniform", "gamma", "exponential", "rayleigh"):
        assert delta.min() >= 0
    if noise == "uniform":
        assert delta.max() < 1


@pytest.mark.parametrize("noise", list(NOISES))
def test_carrier_mixes_beta_and_noise(noise):
    n, beta = 200_000, 0.3
    c = sample_carrier((n,), beta, noise, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, var = MOMENTS[noise]
    assert abs(c.mean().item() - (beta + (1 - beta) * mean)) < 6 * (1 - beta) * math.sqrt(var / n)
    assert abs(c.var().item() - (1 - beta) ** 2 * var) < 6 * 3 * (1 - beta) ** 2 * var / math.sqrt(n)


def test_custom_noise_callable():
    def ones(shape, generator, device, dtype):
        return torch.ones(shape, device=device, dtype=dtype)

    c = sample_carrier((2, 3), beta=0.2, noise=ones)
    torch.testing.assert_close(c, torch.ones(2, 3))
    x = torch.rand(2, 3)
    torch.testing.assert_close(NoiseModulation(0.2, ones).train()(x), x)


def test_eval_mode_is_identity_and_train_mode_modulates():
    nm = NoiseModulation(0.5)
    x = torch.rand(4, 1, 8, 8)
    assert not torch.equal(nm.train()(x), x)
    assert nm.eval()(x) is x


def test_works_as_first_layer_and_for_precomputing_a_dataset():
    model = torch.nn.Sequential(
        NoiseModulation(0.5, generator=torch.Generator().manual_seed(0)), torch.nn.Flatten(), torch.nn.Linear(16, 3)
    )
    x = torch.rand(5, 1, 4, 4)
    model.train()
    assert model(x).shape == (5, 3)
    model.eval()
    torch.testing.assert_close(model(x), model[2](model[1](x)))
    nm = NoiseModulation(0.5, generator=torch.Generator().manual_seed(0)).train()
    dataset = torch.rand(10, 1, 4, 4)
    copy = torch.cat([nm(b) for b in dataset.split(4)])
    assert copy.shape == dataset.shape and not torch.equal(copy, dataset)
    # the modulation rescales each element; the sum over a sample is preserved only on average
    assert (copy >= 0).all()


def test_repr():
    assert repr(NoiseModulation(0.3, "laplace")) == "NoiseModulation(beta=0.3, noise='laplace')"


@pytest.mark.parametrize("beta", [-0.1, 1.5, float("nan"), float("inf"), "0.5", None, True])
def test_bad_beta(beta):
    with pytest.raises(ValueError, match="beta"):
        sample_carrier((2, 2), beta)
    with pytest.raises(ValueError, match="beta"):
        NoiseModulation(beta)


def test_unknown_noise_lists_valid_ones():
    with pytest.raises(ValueError, match="'pink'.*gaussian, uniform, laplace, gamma, exponential, rayleigh"):
        sample_carrier((2, 2), 0.5, "pink")
    with pytest.raises(ValueError, match="pink"):
        NoiseModulation(0.5, "pink")


def test_noise_callable_of_wrong_shape():
    with pytest.raises(ValueError, match=r"expected a tensor of shape \(2, 2\)"):
        sample_carrier((2, 2), 0.5, lambda shape, g, d, t: torch.ones(3))


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input(bad):
    x = torch.rand(2, 3)
    x[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or Inf"):
        modulate(x, torch.ones(2, 3))
    with pytest.raises(ValueError, match="NaN or Inf"):
        NoiseModulation(0.5).train()(x)


def test_carrier_shape_mismatch():
    with pytest.raises(ValueError, match=r"carrier shape \(2, 4\) does not match input shape \(2, 3\)"):
        modulate(torch.rand(2, 3), torch.ones(2, 4))


def test_non_batch_and_integer_inputs():
    with pytest.raises(ValueError, match="batch"):
        modulate(torch.rand(3), torch.ones(3))
    with pytest.raises(ValueError, match="floating"):
        modulate(torch.ones(2, 3, dtype=torch.uint8), torch.ones(2, 3))


@pytest.mark.parametrize("beta", [0.0, 0.3, 1.0])
def test_gaussian_carrier_is_beta_plus_scaled_noise_from_the_same_stream(beta):
    # sample_carrier draws N(beta, (1 - beta)^2) in one pass; it must equal Definition 2's
    # beta + (1 - beta) * delta with delta drawn from the same generator state.
    from noisemod.modulation import sample_noise

    c = sample_carrier((5, 3, 7), beta, "gaussian", generator=torch.Generator().manual_seed(3))
    delta = sample_noise((5, 3, 7), "gaussian", generator=torch.Generator().manual_seed(3))
    torch.testing.assert_close(c, beta + (1 - beta) * delta, rtol=1e-6, atol=1e-6)


# ---- The fused path: counter-based Gaussian noise, sampled and applied in one compiled kernel ----

from noisemod.modulation import _mix32, counter_gaussian, fused_modulate  # noqa: E402


def _lowbias32(v: int) -> int:  # the reference hash on Python integers (unsigned 32-bit)
    v ^= v >> 16
    v = (v * 0x7FEB352D) & 0xFFFFFFFF
    v ^= v >> 15
    v = (v * 0x846CA68B) & 0xFFFFFFFF
    return v ^ (v >> 16)


@pytest.mark.parametrize("compiled", [False, True])
def test_mix32_is_lowbias32_on_int32_lanes(compiled):
    values = [0, 1, 2, 12345, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xDEADBEEF] + list(range(1000, 1100))
    signed = torch.tensor([v - (1 << 32) if v >= 1 << 31 else v for v in values], dtype=torch.int32)
    fn = torch.compile(_mix32) if compiled else _mix32
    got = [v & 0xFFFFFFFF for v in fn(signed).tolist()]
    assert got == [_lowbias32(v) for v in values]
    assert _lowbias32(0) == 0 and _lowbias32(1) != 1  # the known fixed point of lowbias32, and mixing


def test_counter_gaussian_is_standard_normal_and_independent():
    n = 2_000_000
    z = counter_gaussian(n, torch.tensor([7, -11], dtype=torch.int32)).double()
    assert z.dtype == torch.float64 and z.shape == (n,)
    se = 1 / math.sqrt(n)
    assert abs(z.mean().item()) < 6 * se
    assert abs(z.var().item() - 1) < 6 * math.sqrt(2) * se
    assert abs((z**4).mean().item() - 3) < 6 * math.sqrt(96) * se  # kurtosis of N(0, 1); var(z^4) = 96
    # Kolmogorov-Smirnov distance to the normal CDF: 1.95 / sqrt(n) is the 0.1% critical value
    cdf = torch.special.ndtr(z.sort().values)
    i = torch.arange(1, n + 1, dtype=torch.float64)
    ks = torch.maximum(i / n - cdf, cdf - (i - 1) / n).max().item()
    assert ks < 1.95 * se
    # neighbours (cos/sin halves are split, so test both a shift of 1 and of n/2) are uncorrelated
    for a, b in ((z[:-1], z[1:]), (z[: n // 2], z[n // 2 :])):
        assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 6 * se
    assert z.abs().max().item() <= math.sqrt(-2 * math.log(0.5 * 2**-24)) + 1e-4  # the 24-bit tail, 5.9


def test_counter_gaussian_depends_only_on_key_and_index():
    key = torch.tensor([1, 2], dtype=torch.int32)
    torch.testing.assert_close(counter_gaussian(1000, key), counter_gaussian(1000, key), rtol=0, atol=0)
    a, b = counter_gaussian(100_000, key), counter_gaussian(100_000, torch.tensor([1, 3], dtype=torch.int32))
    assert abs(torch.corrcoef(torch.stack([a, b]))[0, 1].item()) < 6 / math.sqrt(100_000)
    assert counter_gaussian(7, key).shape == (7,)  # odd counts
    with pytest.raises(ValueError, match="key"):
        counter_gaussian(10, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="2\\*\\*31"):
        counter_gaussian(0, key)


@pytest.mark.parametrize("beta", [0.0, 0.5, 0.9])
def test_fused_modulate_is_modulate_with_the_counter_carrier(beta):
    # Definition 1 with Definition 2's carrier c = beta + (1 - beta) delta, delta = counter_gaussian
    # under the key fused_modulate draws from the generator: eager and compiled.
    x = torch.rand(6, 3, 5, 5, dtype=torch.float64).float()
    key = torch.randint(-(2**31), 2**31, (2,), dtype=torch.int32, generator=torch.Generator().manual_seed(4))
    expected = modulate(x, beta + (1 - beta) * counter_gaussian(x.numel(), key).view(x.shape))
    for compiled in (False, True):
        got = fused_modulate(x, beta, generator=torch.Generator().manual_seed(4), compiled=compiled)
        torch.testing.assert_close(got, expected, rtol=2e-5, atol=1e-6)
    factor = fused_modulate(torch.ones(6, 3, 5, 5), beta, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(factor.flatten(1).mean(1), torch.ones(6))


@pytest.mark.parametrize("dtype", FLOAT_DTYPES)
def test_fused_modulation_layer(dtype):
    nm = NoiseModulation(0.5, fused=True, generator=torch.Generator().manual_seed(0))
    x = torch.rand(4, 1, 6, 6).to(dtype)  # the per-sample shape of test_kernels.py: the same kernels
    out = nm(x)
    assert out.dtype == dtype and out.shape == x.shape and not torch.equal(out, x)
    assert not torch.equal(nm(x), out)  # a fresh key per call
    assert torch.equal(nm.eval()(x), x) and repr(nm) == "NoiseModulation(beta=0.5, noise='gaussian', fused=True)"
    assert torch.equal(NoiseModulation(1.0, fused=True)(x), x)
    with pytest.raises(ValueError, match="fused=True needs noise='gaussian'"):
        NoiseModulation(0.5, "laplace", fused=True)
    with pytest.raises(ValueError, match="NaN"):
        NoiseModulation(0.5, fused=True)(torch.full((2, 3), float("nan")))
