"""The model zoo: every registered model on every input shape, the Classifier contract
(normalization inside, spec round trip), argument validation, torchvision and custom models."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from noisemod.models import MODELS, Classifier, Normalize, create_model, list_models, register_model, wrap_model

SHAPES = [(1, 28, 28), (1, 8, 8), (3, 32, 32)]

# Parameter counts with 10 classes; must match the table in docs/models.md.
EXPECTED_PARAMS = {
    ("mlp", (1, 28, 28)): 269_322,
    ("mlp", (3, 32, 32)): 855_050,
    ("mlp", (1, 8, 8)): 85_002,
    ("fcnn", (1, 28, 28)): 140_138,
    ("fcnn", (3, 32, 32)): 140_714,
    ("fcnn", (1, 8, 8)): 140_138,
    ("lenet", (1, 28, 28)): 61_706,
    ("lenet", (3, 32, 32)): 83_126,
    ("lenet", (1, 8, 8)): 21_386,
    ("vgg11", (1, 28, 28)): 9_229_962,
    ("vgg11", (3, 32, 32)): 9_231_114,
    ("vgg11", (1, 8, 8)): 9_229_962,
    ("vgg16", (1, 28, 28)): 14_727_114,
    ("vgg16", (3, 32, 32)): 14_728_266,
    ("vgg16", (1, 8, 8)): 14_727_114,
    ("resnet18", (1, 28, 28)): 11_172_810,
    ("resnet18", (3, 32, 32)): 11_173_962,
    ("resnet18", (1, 8, 8)): 11_172_810,
}


def build(name, shape, num_classes=10, **kwargs):
    c, h, w = shape
    return create_model(name, in_channels=c, num_classes=num_classes, input_size=(h, w), **kwargs)


def test_registry_lists_the_paper_models():
    assert list_models() == ["fcnn", "lenet", "mlp", "resnet18", "vgg11", "vgg16"]
    assert set(MODELS) == set(list_models())


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list_models())
def test_forward_backward_every_model(name, shape):
    torch.manual_seed(0)
    model = build(name, shape, num_classes=7).train()
    x = torch.rand(2, *shape, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 7)
    assert torch.isfinite(out).all()
    out.square().sum().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, pname
        assert torch.isfinite(p.grad).all(), pname
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("key", list(EXPECTED_PARAMS), ids=lambda k: f"{k[0]}-{'x'.join(map(str, k[1]))}")
def test_parameter_counts_match_docs(key):
    name, shape = key
    assert sum(p.numel() for p in build(name, shape).parameters()) == EXPECTED_PARAMS[key]


@pytest.mark.parametrize("name", list_models())
def test_normalization_is_inside_the_model(name):
    torch.manual_seed(0)
    mean, std = [0.49, 0.48, 0.45], [0.25, 0.24, 0.26]
    model = build(name, (3, 32, 32), mean=mean, std=std).eval()
    x = torch.rand(2, 3, 32, 32)
    by_hand = (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.net(by_hand))
        torch.testing.assert_close(model.normalize(x), by_hand)


def test_no_mean_std_is_the_identity():
    model = build("mlp", (1, 8, 8))
    x = torch.rand(2, 1, 8, 8)
    assert torch.equal(model.normalize(x), x)
    assert model.spec["mean"] is None and model.spec["std"] is None


@pytest.mark.parametrize("name", list_models())
def test_spec_round_trip(name):
    torch.manual_seed(0)
    model = build(name, (1, 28, 28), mean=[0.1307], std=[0.3081])
    spec = json.loads(json.dumps(model.spec))
    assert spec == {
        "name": name,
        "in_channels": 1,
        "num_classes": 10,
        "input_size": [28, 28],
        "mean": [0.1307],
        "std": [0.3081],
    }
    rebuilt = create_model(**spec)
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), rebuilt.eval()(x))


def test_spec_is_a_copy():
    model = build("mlp", (1, 8, 8), mean=[0.5], std=[0.5])
    model.spec["mean"][0] = 9.0
    assert model.spec["mean"] == [0.5]


def test_input_size_int_or_pair_and_non_square():
    assert (
        build("lenet", (1, 28, 28)).spec["input_size"]
        == create_model("lenet", in_channels=1, num_classes=10, input_size=28).spec["input_size"]
        == [28, 28]
    )
    model = create_model("lenet", in_channels=2, num_classes=4, input_size=(12, 20))
    assert model(torch.rand(2, 2, 12, 20)).shape == (2, 4)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="resnet18.*vgg16"):
        create_model("resnet19", in_channels=3, num_classes=10, input_size=32)
    with pytest.raises(ValueError, match="unknown torchvision"):
        create_model("tv:no_such_model", in_channels=3, num_classes=10, input_size=32)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0},
        {"in_channels": -1},
        {"in_channels": 1.5},
        {"in_channels": True},
        {"in_channels": "3"},
        {"num_classes": 0},
        {"num_classes": 2.0},
        {"input_size": 0},
        {"input_size": (28,)},
        {"input_size": (28, 0)},
        {"input_size": "28"},
        {"input_size": (28, 28, 1)},
        {"mean": [0.5, 0.5]},
        {"std": [0.5, 0.5]},
        {"std": [0.0]},
        {"std": [-1.0]},
        {"mean": [float("nan")]},
        {"mean": 0.5},
        {"mean": ["a"]},
    ],
    ids=str,
)
def test_bad_arguments_raise_value_error(kwargs):
    args = {"in_channels": 1, "num_classes": 10, "input_size": 28, **kwargs}
    with pytest.raises(ValueError):
        create_model("mlp", **args)


def test_error_names_the_bad_value():
    with pytest.raises(ValueError, match=r"std.*-0\.3"):
        create_model("mlp", in_channels=1, num_classes=10, input_size=28, std=[-0.3])
    with pytest.raises(ValueError, match=r"in_channels.*-2"):
        create_model("mlp", in_channels=-2, num_classes=10, input_size=28)


def test_wrong_input_shape_is_a_clear_error():
    model = build("fcnn", (3, 32, 32))
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.rand(2, 1, 32, 32))


def test_register_model_rejects_taken_names():
    def mlp(**kwargs):
        return nn.Identity()

    with pytest.raises(ValueError, match="mlp"):
        register_model(mlp)
    assert list_models() == ["fcnn", "lenet", "mlp", "resnet18", "vgg11", "vgg16"]


def test_wrap_model_custom_module():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    model = wrap_model(net, mean=[0.5, 0.5, 0.5], std=[0.2, 0.2, 0.2])
    assert isinstance(model, Classifier) and isinstance(model.normalize, Normalize) and model.net is net
    x = torch.rand(2, 3, 2, 2)
    torch.testing.assert_close(model(x), net((x - 0.5) / 0.2))
    spec = json.loads(json.dumps(model.spec))
    assert spec["name"] == "custom" and spec["in_channels"] == 3
    with pytest.raises(ValueError, match="wrap_model"):
        create_model(**spec)
    x = torch.rand(2, 5, 2, 2)
    assert torch.equal(wrap_model(nn.Identity())(x), x)  # no mean/std: identity, any channel count


@pytest.mark.parametrize("shape", [(3, 32, 32), (1, 28, 28)], ids=lambda s: "x".join(map(str, s)))
def test_torchvision_resnet18(shape):
    torch.manual_seed(0)
    model = build("tv:resnet18", shape, mean=[0.5] * shape[0], std=[0.25] * shape[0])
    assert model.spec["name"] == "tv:resnet18"
    out = model.train()(torch.rand(2, *shape))
    assert out.shape == (2, 10) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_torchvision_channel_adapter_and_tiny_input_error():
    model = build("tv:squeezenet1_0", (2, 64, 64))
    assert model(torch.rand(2, 2, 64, 64)).shape == (2, 10)
    with pytest.raises(ValueError, match="squeezenet1_0.*1x8x8"):
        build("tv:squeezenet1_0", (1, 8, 8))
