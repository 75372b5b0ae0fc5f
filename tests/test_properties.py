"""Property-based tests (hypothesis) of modulation, input-gradients and VII over random shapes,
dtypes, betas and noises."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from noisemod import NOISES, input_gradients, modulate, sample_carrier, vii

shapes = st.tuples(st.integers(1, 4), st.integers(1, 3), st.integers(1, 6), st.integers(1, 6))
dtypes = st.sampled_from([torch.float32, torch.float64, torch.float16, torch.bfloat16])
betas = st.floats(0.0, 1.0)
noises = st.sampled_from(list(NOISES))
seeds = st.integers(0, 2**31 - 1)
fast = settings(max_examples=60, deadline=None, derandomize=True)  # the same examples in every CI run


@fast
@given(shape=shapes, dtype=dtypes, beta=betas, noise=noises, seed=seeds)
def test_modulation_keeps_shape_dtype_and_mean_factor(shape, dtype, beta, noise, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g).to(dtype)
    before = x.clone()
    c = sample_carrier(shape, beta, noise, generator=g)
    out = modulate(x, c)
    assert out.shape == x.shape and out.dtype == dtype and torch.equal(x, before)
    assert torch.isfinite(out).all() and (out >= 0).all()
    factor = modulate(torch.ones(shape, dtype=torch.float64), c.double())
    torch.testing.assert_close(factor.flatten(1).mean(1), torch.ones(shape[0], dtype=torch.float64))
    if beta == 1.0:
        assert torch.equal(out, x)


@fast
@given(shape=shapes, scale=st.floats(1e-30, 1e30), seed=seeds)
def test_modulation_is_invariant_to_the_scale_of_the_carrier(shape, scale, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    c = sample_carrier(shape, 0.3, generator=g, dtype=torch.float64)
    torch.testing.assert_close(modulate(x, c * scale), modulate(x, c))


def small_net(c, classes, seed):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(c, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.LazyLinear(classes)).double()


@fast
@given(shape=shapes, classes=st.integers(2, 5), seed=seeds, batch_size=st.integers(1, 5))
def test_input_gradients_equal_a_per_sample_loop(shape, classes, seed, batch_size):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (shape[0],), generator=g)
    net = small_net(shape[1], classes, seed)
    net(x)  # materialize the lazy layer
    grads = input_gradients(net, x, y, batch_size=batch_size)
    for i in range(shape[0]):
        xi = x[i : i + 1].clone().requires_grad_(True)
        (gi,) = torch.autograd.grad(nn.functional.cross_entropy(net(xi), y[i : i + 1]), xi)
        torch.testing.assert_close(grads[i : i + 1], gi)


@fast
@given(
    shape=shapes,
    classes=st.integers(2, 5),
    seed=seeds,
    scale=st.lists(st.floats(0.05, 20.0), min_size=3, max_size=3),
    shift=st.lists(st.floats(-2.0, 2.0), min_size=3, max_size=3),
)
def test_vii_is_in_unit_interval_and_invariant_to_normalization_placement(shape, classes, seed, scale, shift):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(shape, generator=g, dtype=torch.float64)
    y = torch.randint(0, classes, (shape[0],), generator=g)
    c = shape[1]
    mean = torch.tensor(shift[:c], dtype=torch.float64).view(1, c, 1, 1)
    std = torch.tensor(scale[:c], dtype=torch.float64).view(1, c, 1, 1)
    net = small_net(c, classes, seed)
    net(x)

    class Inside(nn.Module):
        def forward(self, inp):
            return net((inp - mean) / std)

    scores = vii(Inside(), x, y, reduction="none")
    assert ((scores >= 0) & (scores <= 1)).all()
    outside = vii(net, (x - mean) / std, y, reduction="none")
    torch.testing.assert_close(scores, outside, rtol=0, atol=1e-12)
    assert abs(vii(Inside(), x, y) - float(scores.mean())) < 1e-12
