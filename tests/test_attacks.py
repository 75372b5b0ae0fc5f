import pytest
import torch
import torch.nn.functional as F
from torch import nn

from noisemod.attacks import (
    ATTACK_DEFAULTS,
    FGSM_DEFAULTS,
    PGD,
    L2Step,
    LinfStep,
    attack_defaults,
    fgsm,
    robust_accuracy,
)
from noisemod.metrics import accuracy

torchattacks = pytest.importorskip("torchattacks")


def small_cnn(seed=0, dtype=torch.float32, batchnorm=False):
    torch.manual_seed(seed)
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    layers += [nn.BatchNorm2d(4)] if batchnorm else []
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Dropout(0.1), nn.Linear(4 * 4 * 4, 5)]
    return nn.Sequential(*layers).to(dtype)


def data(n=16, seed=1, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g, dtype=dtype), torch.randint(0, 5, (n,), generator=g)


def summed_loss(model, x, y):
    with torch.no_grad():
        return F.cross_entropy(model.eval()(x), y, reduction="sum").item()


# --- cross-checks against torchattacks -------------------------------------------------------


def test_pgd_matches_torchattacks():
    model = small_cnn(dtype=torch.float64).eval()
    x, y = data(dtype=torch.float64)
    eps, alpha, steps = 0.1, 0.02, 10
    ours = PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False).perturb(x, y)
    theirs = torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False)(x, y)
    assert (ours - x).abs().max() > eps / 2  # the attack did move
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


def test_fgsm_matches_torchattacks():
    model = small_cnn(dtype=torch.float64).eval()
    x, y = data(dtype=torch.float64)
    ours = fgsm(model, eps=0.1, alpha=0.1, random_start=False).perturb(x, y)
    theirs = torchattacks.FGSM(model, eps=0.1)(x, y)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-6)


# --- hand-computed single steps on a linear model --------------------------------------------


def linear_model():
    model = nn.Linear(4, 2, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.5, 0.0], [-1.0, 1.0, 0.0, 3.0]]))
    return model


def loss_gradient(model, x, y):
    # d/dx CE(Wx, y) = W^T (softmax(Wx) - onehot(y)), by hand
    p = torch.softmax(x @ model.weight.T, dim=1)
    return (p - F.one_hot(y, 2).double()) @ model.weight


def test_one_linf_step_by_hand():
    model = linear_model()
    x = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.95, 0.05, 0.3, 0.7]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    alpha = 0.1
    expected = (x + alpha * loss_gradient(model, x, y).sign()).clamp(0, 1)
    out = fgsm(model, eps=0.2, alpha=alpha, random_start=False).perturb(x, y)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert out[1, 0] == 1.0 and out[1, 1] == 0.0  # clamped to the bounds


def test_one_l2_step_by_hand():
    model = linear_model()
    x = torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.4, 0.6, 0.3, 0.5]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    g = loss_gradient(model, x, y)
    alpha = 0.05
    expected = x + alpha * g / g.norm(dim=1, keepdim=True)
    out = fgsm(model, eps=1.0, alpha=alpha, norm="l2", random_start=False).perturb(x, y)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-7)  # the loss is taken in float32


# --- the step classes -------------------------------------------------------------------------


def test_step_classes():
    delta = torch.tensor([[3.0, -4.0], [0.1, 0.0]])
    torch.testing.assert_close(LinfStep(0.5).project(delta), torch.tensor([[0.5, -0.5], [0.1, 0.0]]))
    torch.testing.assert_close(L2Step(1.0).project(delta), torch.tensor([[0.6, -0.8], [0.1, 0.0]]))
    zero = torch.zeros(2, 2)
    grad = torch.tensor([[0.0, 0.0], [-3.0, 4.0]])  # first sample: zero gradient, does not move
    torch.testing.assert_close(L2Step(1.0).step(zero, grad, 0.5), torch.tensor([[0.0, 0.0], [-0.3, 0.4]]))
    torch.testing.assert_close(LinfStep(1.0).step(zero, grad, 0.5), torch.tensor([[0.0, 0.0], [-0.5, 0.5]]))


def test_random_init_in_ball_and_reproducible():
    x = torch.zeros(64, 3, 4, 4)
    linf = LinfStep(0.1).random_init(x, torch.Generator().manual_seed(0))
    assert linf.abs().max() <= 0.1 and linf.abs().max() > 0.09 and linf.min() < 0 < linf.max()
    l2 = L2Step(0.5).random_init(x, torch.Generator().manual_seed(0))
    norms = l2.flatten(1).norm(dim=1)
    assert norms.max() <= 0.5 + 1e-6 and norms.min() > 0.4  # uniform in a 48-d ball: near the sphere
    again = L2Step(0.5).random_init(x, torch.Generator().manual_seed(0))
    assert torch.equal(l2, again)


# --- properties of PGD ------------------------------------------------------------------------


@pytest.mark.parametrize("norm,eps,alpha", [("linf", 0.05, 0.02), ("l2", 0.5, 0.2)])
def test_pgd_stays_in_ball_and_bounds_and_increases_loss(norm, eps, alpha):
    model = small_cnn()
    x, y = data(32)
    attack = PGD(model, eps=eps, alpha=alpha, steps=5, norm=norm, generator=torch.Generator().manual_seed(0))
    x_adv = attack.perturb(x, y)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    diff = (x_adv - x).flatten(1)
    size = diff.abs().max(dim=1).values if norm == "linf" else diff.norm(dim=1)
    assert size.max() <= eps + 1e-6
    assert size.max() >= 0.9 * eps  # it uses the budget
    assert summed_loss(model, x_adv, y) > summed_loss(model, x, y)


def test_more_steps_do_not_hurt_the_attack():
    model = small_cnn()
    x, y = data(32)
    one = fgsm(model, eps=0.05, alpha=0.05, random_start=False).perturb(x, y)
    many = PGD(model, eps=0.05, alpha=0.01, steps=20, random_start=False).perturb(x, y)
    clean, after_one, after_many = (summed_loss(model, v, y) for v in (x, one, many))
    assert clean < after_one <= after_many


def test_perturb_leaves_model_state_untouched():
    model = small_cnn(batchnorm=True).train()
    model[-1].eval()  # a mixed-mode model: modes must come back module by module
    model[0].weight.requires_grad_(False)
    model[-1].weight.grad = torch.full_like(model[-1].weight, 7.0)
    modes = [m.training for m in model.modules()]
    flags = [p.requires_grad for p in model.parameters()]
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    bn = model[1]
    stats = [t.clone() for t in (bn.running_mean, bn.running_var, bn.num_batches_tracked)]
    x, y = data(16)
    PGD(model, eps=0.1, alpha=0.05, steps=3).perturb(x, y)
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == flags
    for p, g in zip(model.parameters(), grads):
        assert (p.grad is None) if g is None else torch.equal(p.grad, g)
    for t, s in zip((bn.running_mean, bn.running_var, bn.num_batches_tracked), stats):
        assert torch.equal(t, s)


def test_attack_runs_the_model_in_eval_mode():
    seen = []
    model = small_cnn(batchnorm=True).train()
    model.register_forward_hook(lambda m, i, o: seen.append(m.training))
    PGD(model, eps=0.1, alpha=0.05, steps=2).perturb(*data(4))
    assert seen == [False, False] and model.training


def test_seeded_generator_is_reproducible():
    model = small_cnn()
    x, y = data(8)
    runs = [
        PGD(model, eps=0.1, alpha=0.01, steps=1, generator=torch.Generator().manual_seed(s)).perturb(x, y)
        for s in (3, 3, 4)
    ]
    assert torch.equal(runs[0], runs[1]) and not torch.equal(runs[0], runs[2])


def test_eps_zero_returns_inputs():
    model = small_cnn()
    x, y = data(8)
    assert torch.equal(PGD(model, eps=0.0, alpha=0.01, steps=2).perturb(x, y), x)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(eps=-0.1), "eps"),
        (dict(eps=float("nan")), "eps"),
        (dict(alpha=0), "alpha"),
        (dict(steps=0), "steps"),
        (dict(steps=2.0), "steps"),
        (dict(steps=True), "steps"),
        (dict(norm="l1"), "l1"),
        (dict(bounds=(1.0, 0.0)), "bounds"),
    ],
)
def test_errors(kwargs, match):
    args = dict(eps=0.1, alpha=0.01, steps=1) | kwargs
    with pytest.raises(ValueError, match=match):
        PGD(small_cnn(), **args)


def test_integer_inputs_rejected():
    with pytest.raises(ValueError, match="floating"):
        PGD(small_cnn(), eps=0.1, alpha=0.1, steps=1).perturb(
            torch.zeros(2, 1, 8, 8, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
        )


# --- robust accuracy and defaults -------------------------------------------------------------


def trained_model():
    """A linear classifier trained a little on two well-separated classes of 4x4 images in [0, 1]."""
    torch.manual_seed(0)
    n = 128
    y = torch.randint(0, 2, (n,))
    x = (0.3 + 0.4 * y.float()).view(-1, 1, 1, 1) + 0.1 * torch.rand(n, 1, 4, 4) - 0.05
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    for _ in range(50):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model, x, y


def test_robust_accuracy_below_clean_accuracy():
    model, x, y = trained_model()
    clean = accuracy(model, x, y)
    weak = robust_accuracy(model, x, y, attack=PGD(model, eps=0.01, alpha=0.005, steps=3), batch_size=50)
    strong = robust_accuracy(model, x, y, attack=PGD(model, eps=0.3, alpha=0.05, steps=10), batch_size=50)
    assert clean > 0.9
    assert 0 <= strong < weak <= clean
    batches = [(x[i : i + 32], y[i : i + 32]) for i in range(0, len(x), 32)]
    attack = PGD(model, eps=0.3, alpha=0.05, steps=10, random_start=False)
    assert robust_accuracy(model, batches, attack=attack) == robust_accuracy(model, x, y, attack=attack)


def test_robust_accuracy_errors():
    model, x, y = trained_model()
    with pytest.raises(ValueError, match="different model"):
        robust_accuracy(model, x, y, attack=PGD(small_cnn(), eps=0.1, alpha=0.1, steps=1))
    with pytest.raises(ValueError, match="empty"):
        robust_accuracy(model, [], attack=PGD(model, eps=0.1, alpha=0.1, steps=1))


def test_attack_defaults():
    assert attack_defaults("pgd", "mnist") == dict(eps=0.3, alpha=0.01, steps=40)
    assert attack_defaults("pgd", "fashion-mnist") == ATTACK_DEFAULTS["mnist"]
    # a dataset that declares none (or an unknown name) no longer gets CIFAR-10's in silence
    with pytest.raises(ValueError, match="dataset 'svhn' declares no default attack radius"):
        attack_defaults("pgd", "svhn")
    assert attack_defaults("pgd", "svhn", eps=0.1) == dict(eps=0.1, alpha=0.025, steps=7)
    assert attack_defaults("fgsm", "cifar10") == FGSM_DEFAULTS["cifar10"] == dict(eps=8 / 255, alpha=10 / 255)
    assert attack_defaults("fgsm", "mnist")["alpha"] == 0.375
    attack_defaults("pgd", "mnist")["eps"] = 1.0  # a copy: the table is unchanged
    assert ATTACK_DEFAULTS["mnist"]["eps"] == 0.3
    with pytest.raises(ValueError, match="cw"):
        attack_defaults("cw", "mnist")
    model = small_cnn()
    assert fgsm(model, **attack_defaults("fgsm", "mnist")).steps == 1
    assert PGD(model, **attack_defaults("pgd", "cifar10")).steps == 7


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_inputs_with_cpu_generator():
    model = small_cnn(batchnorm=True).cuda()
    x, y = data(8)
    attack = PGD(model, eps=0.1, alpha=0.05, steps=2, norm="l2", generator=torch.Generator().manual_seed(0))
    x_adv = attack.perturb(x.cuda(), y.cuda())
    assert x_adv.device == x.cuda().device and (x_adv.cpu() - x).flatten(1).norm(dim=1).max() <= 0.1 + 1e-6
    assert 0 <= robust_accuracy(model, x, y, attack=attack) <= 1
