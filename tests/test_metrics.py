"""VII (Definition 3): hand-computed values, invariances, Captum cross-check; accuracy."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisemod import accuracy, vii
from noisemod.metrics import dataset_mean, vii_scores


def test_vii_scores_hand_computed():
    mean = torch.zeros(4)
    x = torch.tensor(
        [
            [1.0, 2.0, -1.0, 3.0],  # d = + + - +
            [1.0, 1.0, 1.0, 1.0],  # d = + + + +
            [0.0, 0.0, 0.0, 0.0],  # d = 0: no direction
            [1.0, -1.0, 1.0, -1.0],
        ]
    )  # d = + - + -
    g = torch.tensor(
        [
            [5.0, 0.1, -2.0, 9.0],  # aligned: 1
            [1.0, 1.0, -1.0, 0.0],  # <d,g> = 1, ||d|| = 2, ||g|| = sqrt(3)
            [1.0, 1.0, 1.0, 1.0],  # zero-norm d: 0
            [1.0, 1.0, 1.0, 1.0],
        ]
    )  # orthogonal: 0
    scores = vii_scores(x, g, mean)
    torch.testing.assert_close(scores, torch.tensor([1.0, 1 / (2 * math.sqrt(3)), 0.0, 0.0], dtype=torch.float64))
    # anti-aligned counts as aligned (absolute value), zero gradient scores 0
    torch.testing.assert_close(vii_scores(x[:1], -g[:1], mean), torch.ones(1, dtype=torch.float64))
    torch.testing.assert_close(vii_scores(x[:1], torch.zeros(1, 4), mean), torch.zeros(1, dtype=torch.float64))


class SignModel(nn.Module):
    """Two logits (0, w.x): for target 0, dL/dx = p1 * w, so sign(grad) = sign(w)."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w.flatten().clone())

    def forward(self, x):
        z = x.flatten(1) @ self.w
        return torch.stack([torch.zeros_like(z), z], 1)


def test_vii_end_to_end_aligned_orthogonal_and_zero():
    x = torch.tensor([[[1.0, 0.0], [1.0, 0.0]], [[0.0, 1.0], [0.0, 1.0]]])[:, None]  # mean 0.5 everywhere
    y = torch.tensor([0, 1])
    d = torch.sign(x - 0.5)
    assert vii(SignModel(d[0]), x, y) == pytest.approx(1.0)  # d0 = -d1, so both samples align
    ortho = torch.tensor([[1.0, 1.0], [-1.0, -1.0]])  # orthogonal to both d's
    assert vii(SignModel(ortho), x, y) == pytest.approx(0.0)
    # zero weights: p1 = 1/2, grad = p1 * 0 = 0 -> each sample scores 0 and counts
    assert vii(SignModel(torch.zeros(2, 2)), x, y) == 0.0
    # d0 = (+,-,+,-), sign(w) = (+,0,-,0): <d0,g> = 1 - 1 = 0; d1 = -d0 -> 0
    half = torch.tensor([[1.0, 0.0], [-1.0, 0.0]])
    assert vii(SignModel(half), x, y) == pytest.approx(0.0)
    quarter = torch.tensor([[1.0, 0.0], [0.0, 0.0]])  # sign(w) = (+,0,0,0): |<d,g>| = 1, ||d|| = 2, ||g|| = 1
    assert vii(SignModel(quarter), x, y) == pytest.approx(0.5)


def test_sample_equal_to_mean_scores_zero_and_counts():
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])  # mean (0.5, 0.5): third sample has d = 0
    model = SignModel(torch.tensor([1.0, -1.0]))
    scores = vii(model, x, torch.tensor([0, 0, 0]), reduction="none")
    assert scores.tolist() == [1.0, 1.0, 0.0]
    assert vii(model, x, torch.tensor([0, 0, 0])) == pytest.approx(2 / 3)


def conv_net(in_ch=3):
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(in_ch, 4, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(4, 4, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4, 5),
    )


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


def images_with_constant_pixels(n=40):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, 6, 6, generator=g)
    x[:, :, 0, :] = 0.0  # always-black rows, as MNIST corners
    x[:, 1, :, 0] = 1.0
    return x, torch.randint(0, 5, (n,), generator=g)


def test_invariant_to_moving_normalization_inside_the_model():
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    x, y = images_with_constant_pixels()
    net = conv_net()
    inside = nn.Sequential(Normalize(mean, std), net)
    outside_inputs = Normalize(mean, std)(x)
    a = vii(inside, x, y, reduction="none")
    b = vii(net, outside_inputs, y, reduction="none")
    torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    assert 0 < a.mean() < 1


def test_tensor_and_batch_iterable_agree_and_mean_argument():
    x, y = images_with_constant_pixels(30)
    net = conv_net()
    batches = [(x[i : i + 7], y[i : i + 7]) for i in range(0, 30, 7)]
    ref = vii(net, x, y)
    assert vii(net, batches) == pytest.approx(ref, abs=1e-12)
    assert vii(net, x, y, batch_size=4) == pytest.approx(ref, abs=1e-12)
    assert vii(net, x, y, mean=x.double().mean(0)) == pytest.approx(ref, abs=1e-12)
    assert vii(net, iter(batches), mean=dataset_mean(batches)) == pytest.approx(ref, abs=1e-12)
    with pytest.raises(ValueError, match="one-shot iterator"):
        vii(net, iter(batches))
    scores = vii(net, x, y, reduction="none")
    assert scores.shape == (30,) and ((scores >= 0) & (scores <= 1)).all()
    assert float(scores.mean()) == pytest.approx(ref)


def test_matches_captum_saliency_on_per_sample_loss():
    captum_attr = pytest.importorskip("captum.attr")
    x, y = images_with_constant_pixels(20)
    net = conv_net().eval()

    def per_sample_loss(inp, target):
        return F.cross_entropy(net(inp), target, reduction="none")

    grads = captum_attr.Saliency(per_sample_loss).attribute(x, additional_forward_args=(y,), abs=False).numpy()
    xn = x.numpy().astype(np.float64)
    d = np.sign(xn - xn.mean(0)).reshape(len(xn), -1)
    g = np.sign(grads).astype(np.float64).reshape(len(xn), -1)
    norms = np.linalg.norm(d, axis=1) * np.linalg.norm(g, axis=1)
    expected = np.where(norms > 0, np.abs((d * g).sum(1)) / np.where(norms > 0, norms, 1), 0)
    np.testing.assert_allclose(vii(net, x, y, reduction="none").numpy(), expected, rtol=0, atol=1e-12)
    assert vii(net, x, y) == pytest.approx(expected.mean(), abs=1e-12)


def test_leaves_model_state_untouched():
    net = conv_net().train()
    x, y = images_with_constant_pixels(8)
    vii(net, x, y)
    assert net.training and all(p.requires_grad and p.grad is None for p in net.parameters())


def test_bad_arguments():
    net = conv_net()
    x, y = images_with_constant_pixels(4)
    with pytest.raises(ValueError, match="reduction"):
        vii(net, x, y, reduction="sum")
    with pytest.raises(ValueError, match="targets are required"):
        vii(net, x)
    with pytest.raises(ValueError, match="empty"):
        vii(net, [])
    bad = x.clone()
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN or Inf"):
        vii(net, bad, y)
    with pytest.raises(ValueError, match="NaN or Inf"):
        accuracy(net, bad, y)
    with pytest.raises(ValueError, match="grad shape"):
        vii_scores(x, x[:, :1], x.mean(0))


def test_accuracy():
    model = SignModel(torch.tensor([1.0, -1.0]))  # predicts 1 when x0 > x1
    x = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 0.0], [0.0, 3.0]])
    assert accuracy(model, x, torch.tensor([1, 0, 1, 1])) == 0.75
    assert accuracy(model, [(x[:2], torch.tensor([1, 0])), (x[2:], torch.tensor([0, 1]))]) == 0.5
