"""Input-gradients: finite differences, per-sample autograd loop, Captum, model state untouched."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisemod import input_gradients


def tiny_model(dtype=torch.float64):
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 3 * 3, 4)).to(dtype)


def bn_model():
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5), nn.Flatten(), nn.Linear(4 * 3 * 3, 3)
    )


def test_equals_central_finite_differences():
    model = tiny_model().eval()
    x = torch.rand(3, 1, 5, 5, dtype=torch.float64)
    y = torch.tensor([0, 3, 1])
    grads = input_gradients(model, x, y)
    h = 1e-6
    for i in range(len(x)):
        fd = torch.zeros_like(x[i])
        for idx in range(x[i].numel()):
            e = torch.zeros(x[i].numel(), dtype=torch.float64)
            e[idx] = h
            e = e.view_as(x[i])
            lp = F.cross_entropy(model((x[i] + e)[None]), y[i : i + 1])
            lm = F.cross_entropy(model((x[i] - e)[None]), y[i : i + 1])
            fd.view(-1)[idx] = (lp - lm) / (2 * h)
        torch.testing.assert_close(grads[i], fd, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize("of", ["loss", "logit"])
def test_equals_per_sample_autograd_loop_and_is_not_scaled_by_batch(of):
    model = bn_model()
    x = torch.rand(10, 1, 5, 5)
    y = torch.randint(0, 3, (10,))
    model.eval()
    expected = []
    for xi, yi in zip(x, y):
        xi = xi[None].clone().requires_grad_(True)
        out = model(xi)
        obj = F.cross_entropy(out, yi[None]) if of == "loss" else out[0, yi]
        expected.append(torch.autograd.grad(obj, xi)[0])
    expected = torch.cat(expected)
    model.train()
    for bs in (1, 3, 256):
        torch.testing.assert_close(input_gradients(model, x, y, batch_size=bs, of=of), expected)


def test_logit_gradient_matches_captum_saliency():
    captum_attr = pytest.importorskip("captum.attr")
    model = bn_model().eval()
    x = torch.rand(6, 1, 5, 5)
    y = torch.randint(0, 3, (6,))
    ours = input_gradients(model, x, y, of="logit")
    theirs = captum_attr.Saliency(model).attribute(x, target=y, abs=False)
    torch.testing.assert_close(ours, theirs)


def test_model_state_untouched():
    model = bn_model().train()
    model[0].bias.requires_grad_(False)
    model[5].weight.grad = torch.full_like(model[5].weight, 7.0)
    model[3].eval()  # a submodule in a different mode than its parent
    state = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.rand(8, 1, 5, 5), torch.randint(0, 3, (8,))
    g1 = input_gradients(model, x, y)
    g2 = input_gradients(model, x, y)
    torch.testing.assert_close(g1, g2)  # eval mode: dropout off, BN running stats used
    assert model.training and model[1].training and not model[3].training
    assert [p.requires_grad for p in model.parameters()] == [True, False, True, True, True, True]
    assert torch.equal(model[5].weight.grad, torch.full_like(model[5].weight, 7.0))
    assert all(p.grad is None for n, p in model.named_parameters() if n != "5.weight")
    for k, v in model.state_dict().items():
        assert torch.equal(v, state[k]), k


def test_state_restored_on_error():
    model = bn_model().train()
    with pytest.raises(RuntimeError):
        input_gradients(model, torch.rand(2, 2, 5, 5), torch.tensor([0, 1]))  # wrong channels
    assert model.training and all(p.requires_grad for p in model.parameters())


def test_works_under_no_grad_and_keeps_input_dtype_device():
    model = tiny_model(torch.float32)
    x = torch.rand(4, 1, 5, 5)
    with torch.no_grad():
        g = input_gradients(model, x, torch.tensor([0, 1, 2, 3]))
    assert g.shape == x.shape and g.dtype == x.dtype and g.abs().sum() > 0


def test_bad_arguments():
    model = tiny_model(torch.float32)
    x = torch.rand(4, 1, 5, 5)
    with pytest.raises(ValueError, match="of must be one of"):
        input_gradients(model, x, torch.zeros(4, dtype=torch.long), of="prob")
    with pytest.raises(ValueError, match=r"targets must have shape \(4,\)"):
        input_gradients(model, x, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match="batch_size"):
        input_gradients(model, x, torch.zeros(4, dtype=torch.long), batch_size=0)
    with pytest.raises(ValueError, match="floating"):
        input_gradients(model, x.to(torch.uint8), torch.zeros(4, dtype=torch.long))
