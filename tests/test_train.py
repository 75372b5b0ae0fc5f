"""The training loop: every method end to end, run directories, determinism, resume, DDP."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from noisemod.config import ConfigError, TrainConfig
from noisemod.methods import InputGradientRegularized, Modulated, build_method, get_method, list_methods
from noisemod.modulation import NoiseModulation
from noisemod.rundir import METRIC_TIMES, RESULT_FIELDS, RunDir
from noisemod.train import RunDirError, fit, load_model

QUICK = dict(dataset="synthetic", model="lenet", epochs=2, batch_size=32)


def read_metrics(run):
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in row.items() if k not in METRIC_TIMES} for row in csv.DictReader(f)]


def quiet(*_):
    pass


# every registered method at its defaults, and the variants of a method's settings worth a run of their own
CASES = [(m, {}) for m in list_methods()] + [
    ("nm", {"modulate_after_norm": True}),
    ("nm", {"fused_noise": True}),
    ("pgd", {"steps": 2, "norm": "l2", "eps": 0.5, "alpha": 0.2}),
]


@pytest.mark.parametrize("method,extra", CASES, ids=[f"{m}-{'-'.join(e) or 'defaults'}" for m, e in CASES])
def test_every_method_trains_and_writes_a_complete_run(tmp_path, method, extra):
    run = tmp_path / "run"
    result = fit(TrainConfig(method=method, **QUICK, **extra), run, progress=False, log=quiet)
    assert sorted(p.name for p in run.iterdir()) == [
        "best.pt",
        "config.json",
        "last.pt",
        "metrics.csv",
        "result.json",
        "tensorboard",
    ]
    saved = json.loads((run / "result.json").read_text())
    assert saved == json.loads(json.dumps(result))
    optional = {"robust_accuracy", "robust_attack", "stopped_epoch", "stop_reason"}
    robust = get_method(method).family == "adversarial"  # robust accuracy for methods that train against a threat
    assert set(saved) == set(RESULT_FIELDS) - optional | ({"robust_accuracy", "robust_attack"} if robust else set())
    if robust:
        assert 0 <= saved["robust_accuracy"] <= saved["test_accuracy"] + 0.05 and saved["robust_attack"]["steps"] == 50
    assert RunDir(run).read_config() == TrainConfig(method=method, **QUICK, **extra)
    assert 0 <= saved["test_accuracy"] <= 1 and 0 <= saved["vii"] <= 1 and 1 <= saved["best_epoch"] <= 2
    assert saved["test_accuracy"] > 0.2  # ten classes: better than chance after two epochs
    assert saved["train_images"] == 540 and saved["train_device"] == "cpu"
    assert len(read_metrics(run)) == 2
    for name in ("best.pt", "last.pt"):
        ckpt = torch.load(run / name, weights_only=True)
        assert ckpt["config"]["method"] == method and "model_spec" in ckpt
    model = load_model(run)
    assert not model.training
    assert model(torch.rand(3, 1, 16, 16)).shape == (3, 10)


@pytest.mark.parametrize("method", list_methods())
def test_every_method_resumes_exactly(tmp_path, method):
    # interrupted after its first epoch's checkpoint, resumed: the uninterrupted run's metrics and results
    config = TrainConfig(method=method, **{**QUICK, "model": "mlp", "train_size": 256})
    full = fit(config, tmp_path / "full", progress=False, log=quiet)

    def stop_after_epoch_1(msg):
        if msg.startswith("epoch 1/2"):
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(config, tmp_path / "cut", progress=False, log=stop_after_epoch_1)
    resumed = fit(config, tmp_path / "cut", resume=True, progress=False, log=quiet)
    assert read_metrics(tmp_path / "cut") == read_metrics(tmp_path / "full")
    assert {k: resumed[k] for k in ("test_accuracy", "vii", "best_epoch")} == {
        k: full[k] for k in ("test_accuracy", "vii", "best_epoch")
    }


def test_same_command_twice_gives_identical_metrics(tmp_path):
    config = TrainConfig(method="nm", **QUICK)
    a = fit(config, tmp_path / "a", progress=False, log=quiet)
    b = fit(config, tmp_path / "b", progress=False, log=quiet)
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")
    assert (a["test_accuracy"], a["vii"]) == (b["test_accuracy"], b["vii"])
    fit(config.replace(seed=1), tmp_path / "c", progress=False, log=quiet)
    assert read_metrics(tmp_path / "c") != read_metrics(tmp_path / "a")


def test_nm_with_beta_one_is_standard_training(tmp_path):
    a = fit(TrainConfig(method="standard", **QUICK), tmp_path / "a", progress=False, log=quiet)
    b = fit(TrainConfig(method="nm", beta=1.0, **QUICK), tmp_path / "b", progress=False, log=quiet)
    assert read_metrics(tmp_path / "a") == read_metrics(tmp_path / "b")
    assert a["vii"] == b["vii"]


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("fused", [False, True])
def test_resume_after_interruption_equals_uninterrupted_run(tmp_path, fused):
    config = TrainConfig(method="nm", fused_noise=fused, **{**QUICK, "epochs": 3})
    full = fit(config, tmp_path / "full", progress=False, log=quiet)

    def stop_after_epoch_2(msg):
        if msg.startswith("epoch 2/3"):  # logged after epoch 2's checkpoint is written
            raise Interrupt

    with pytest.raises(Interrupt):
        fit(config, tmp_path / "cut", progress=False, log=stop_after_epoch_2)
    assert not (tmp_path / "cut" / "result.json").exists()
    assert len(read_metrics(tmp_path / "cut")) == 2
    resumed = fit(config, tmp_path / "cut", resume=True, progress=False, log=quiet)
    assert read_metrics(tmp_path / "cut") == read_metrics(tmp_path / "full")
    assert (resumed["test_accuracy"], resumed["vii"], resumed["best_epoch"]) == (
        full["test_accuracy"],
        full["vii"],
        full["best_epoch"],
    )


def test_vii_along_training_is_in_metrics_csv_and_is_the_vii_of_that_epochs_model(tmp_path):
    """val_vii: VII of 256 validation images spread over the split (x_bar their mean), every epoch;
    the last epoch's equals VII of last.pt recomputed on those images; without a validation split no column."""
    from noisemod.metrics import vii
    from noisemod.training.build import load_data

    run = tmp_path / "run"
    fit(TrainConfig(**QUICK), run, progress=False, log=quiet)
    rows = RunDir(run).read_metrics()
    assert len(rows) == 2 and all(0 < r["val_vii"] < 1 for r in rows)
    assert rows[0]["val_vii"] != rows[1]["val_vii"]
    val = load_data(TrainConfig(**QUICK))[0].val
    batch = val.spread(256)
    last = RunDir(run).read_checkpoint("last")
    model = load_model(run)  # best.pt; load last.pt's weights into it
    model.load_state_dict(last["model"])
    assert len(batch.labels) == min(256, len(val))
    assert rows[1]["val_vii"] == pytest.approx(vii(model, batch.images.float() / 255, batch.labels), abs=1e-12)
    none = tmp_path / "none"
    fit(TrainConfig(**{**QUICK, "val_size": 0}), none, progress=False, log=quiet)
    assert all("val_vii" not in r or r["val_vii"] is None for r in RunDir(none).read_metrics())


def test_run_directory_is_never_clobbered(tmp_path):
    config = TrainConfig(**{**QUICK, "epochs": 1})
    fit(config, tmp_path / "run", progress=False, log=quiet)
    with pytest.raises(RunDirError, match="already holds a run"):
        fit(config, tmp_path / "run", progress=False, log=quiet)
    with pytest.raises(RunDirError, match="settings differ.*beta"):
        fit(config.replace(beta=0.7), tmp_path / "run", resume=True, progress=False, log=quiet)
    with pytest.raises(RunDirError, match="no checkpoint to resume"):
        fit(config, tmp_path / "empty", resume=True, progress=False, log=quiet)


def test_resume_can_extend_the_number_of_epochs(tmp_path):
    config = TrainConfig(**{**QUICK, "epochs": 1})
    fit(config, tmp_path / "run", progress=False, log=quiet)
    fit(config.replace(epochs=2), tmp_path / "run", resume=True, progress=False, log=quiet)
    assert RunDir(tmp_path / "run").read_config().epochs == 2 and len(read_metrics(tmp_path / "run")) == 2


def test_modulated_wrapper_before_and_after_normalization():
    from noisemod.models import create_model

    model = create_model("lenet", in_channels=1, num_classes=10, input_size=16, mean=[0.3], std=[0.2])
    x = torch.rand(4, 1, 16, 16)
    before = Modulated(model, NoiseModulation(0.5, generator=torch.Generator().manual_seed(0)))
    after = Modulated(model, NoiseModulation(0.5, generator=torch.Generator().manual_seed(0)), after_norm=True)
    for wrapper in (before, after):
        wrapper.eval()
        torch.testing.assert_close(wrapper(x), model(x))  # identity in eval mode
        wrapper.train()
    # same carrier c: before-norm feeds normalize(x * m), after-norm feeds normalize(x) * m
    from noisemod.modulation import modulate, sample_carrier

    c = sample_carrier(x.shape, 0.5, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(before(x), model.net(model.normalize(modulate(x, c))))
    torch.testing.assert_close(after(x), model.net(modulate(model.normalize(x), c)))
    with pytest.raises(ValueError, match="modulate_after_norm"):
        Modulated(torch.nn.Linear(4, 2), NoiseModulation(0.5), after_norm=True)


def test_igr_penalty_is_the_squared_per_sample_input_gradient_norm():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(8, 3), torch.nn.Tanh(), torch.nn.Linear(3, 3))
    x, y = torch.rand(5, 1, 8), torch.randint(0, 3, (5,))
    loss, _ = InputGradientRegularized(igr_lambda=0.5).step(net, x, y)
    ce, penalty = 0.0, 0.0
    for xi, yi in zip(x, y):
        xi = xi[None].clone().requires_grad_(True)
        li = torch.nn.functional.cross_entropy(net(xi), yi[None])
        (gi,) = torch.autograd.grad(li, xi)
        ce, penalty = ce + li / 5, penalty + gi.pow(2).sum() / 5
    torch.testing.assert_close(loss, ce + 0.5 * penalty)
    loss.backward()  # double backpropagation reaches the weights
    assert all(p.grad is not None for p in net.parameters())


def test_attack_settings_come_from_dataset_defaults_and_overrides():
    from noisemod.models import create_model

    model = create_model("mlp", in_channels=1, num_classes=10, input_size=28)
    pgd = build_method(TrainConfig(dataset="mnist", method="pgd"), model).attack
    assert (pgd.eps, pgd.alpha, pgd.steps) == (0.3, 0.01, 40)
    pgd = build_method(TrainConfig(dataset="cifar10", method="pgd", steps=3), model).attack
    assert (pgd.eps, pgd.alpha, pgd.steps) == (8 / 255, 2 / 255, 3)
    fgsm = build_method(TrainConfig(dataset="cifar10", method="fgsm", steps=5), model).attack
    assert (fgsm.eps, fgsm.alpha, fgsm.steps) == (8 / 255, 10 / 255, 1)


@pytest.mark.parametrize(
    "field,value",
    [
        ("beta", 1.5),
        ("beta", -0.1),
        ("noise", "pink"),
        ("method", "magic"),
        ("epochs", 0),
        ("batch_size", -1),
        ("eps", -0.1),
        ("lr", 0.0),
        ("steps", 0),
        ("train_size", 0),
        ("optimizer", "lbfgs"),
    ],
)
def test_config_rejects_bad_values_naming_them(field, value):
    with pytest.raises(ConfigError, match=f"invalid {field}={value!r}"):
        TrainConfig(**{field: value})


def test_config_from_dict_rejects_unknown_keys():
    with pytest.raises(ValueError, match="unknown config key.*betta"):
        TrainConfig.from_dict({"betta": 0.5})
    assert TrainConfig.from_dict(TrainConfig(beta=0.2).to_dict()) == TrainConfig(beta=0.2)


@pytest.mark.slow
def test_torchrun_two_cpu_processes(tmp_path):
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "noisemod",
        "train",
        "--dataset",
        "synthetic",
        "--model",
        "lenet",
        "--method",
        "nm",
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--out",
        str(run),
        "--quiet",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((run / "result.json").read_text())
    assert result["world_size"] == 2 and result["test_accuracy"] > 0.2
    rows = read_metrics(run)
    assert len(rows) == 2


def test_evaluating_on_images_of_another_shape_names_both_shapes(tmp_path):
    from noisemod.data import load_dataset
    from noisemod.train import evaluate

    fit(TrainConfig(**{**QUICK, "epochs": 1}), tmp_path / "run", progress=False, log=quiet)
    other = load_dataset("synthetic", shape=(3, 12, 12))
    with pytest.raises(ValueError, match="takes 1x16x16 inputs but synthetic images are 3x12x12"):
        evaluate(load_model(tmp_path / "run"), other)


def test_evaluate_takes_its_few_options_and_the_old_config_form_still_works(tmp_path):
    from noisemod.data import load_dataset
    from noisemod.train import evaluate

    result = fit(TrainConfig(**{**QUICK, "epochs": 1}), tmp_path / "run", progress=False, log=quiet)
    model, data = load_model(tmp_path / "run"), load_dataset("synthetic")
    new = evaluate(model, data, batch_size=100, robust=True, norm="l2")
    assert (new["test_accuracy"], new["vii"]) == pytest.approx((result["test_accuracy"], result["vii"]))
    assert new["robust_attack"]["norm"] == "l2" and 0 <= new["robust_accuracy"] <= new["test_accuracy"]
    with pytest.warns(DeprecationWarning, match="batch_size= and norm="):
        old = evaluate(model, data, TrainConfig(eval_batch_size=100, norm="l2"), robust=True)
    assert old == new


def test_optimizer_is_fused_where_supported_and_falls_back(monkeypatch):
    from noisemod.train import build_optimizer

    params = [torch.nn.Parameter(torch.ones(3))]
    assert build_optimizer(TrainConfig(optimizer="adam"), params).defaults["fused"]
    real = torch.optim.Adam

    class NoFused(real):
        def __init__(self, params, fused=None, **kwargs):
            if fused:
                raise RuntimeError("fused is not supported here")
            super().__init__(params, **kwargs)

    monkeypatch.setattr(torch.optim, "Adam", NoFused)
    opt = build_optimizer(TrainConfig(optimizer="adam", lr=0.01), params)
    assert isinstance(opt, NoFused) and not opt.defaults["fused"] and opt.defaults["lr"] == 0.01


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_autocast_paths_run(tmp_path, amp):
    # meant for GPUs; on CPU this checks the code path (autocast, fp16 gradient scaler) end to end
    result = fit(TrainConfig(method="nm", amp=amp, **QUICK), tmp_path / amp, progress=False, log=quiet)
    assert 0 <= result["test_accuracy"] <= 1 and 0 <= result["vii"] <= 1
    assert torch.load(tmp_path / amp / "last.pt", weights_only=True)["scaler"] is not None


def test_channels_last_trains_the_same_model(tmp_path):
    # a memory format, not a different computation: same metrics (up to float rounding)
    runs = {
        flag: fit(
            TrainConfig(method="nm", channels_last=flag, **QUICK), tmp_path / str(flag), progress=False, log=quiet
        )
        for flag in (False, True)
    }
    a, b = read_metrics(tmp_path / "False"), read_metrics(tmp_path / "True")
    for row_a, row_b in zip(a, b):
        assert abs(float(row_a["train_loss"]) - float(row_b["train_loss"])) < 1e-4
    assert abs(runs[False]["vii"] - runs[True]["vii"]) < 1e-3
    assert not torch.load(tmp_path / "True" / "last.pt", weights_only=True)["config"]["compile"]


@pytest.mark.slow
def test_compile_trains_nm_to_the_same_losses(tmp_path):
    # torch.compile (inductor on CPU) of the modulated model: the losses of eager training, up to rounding
    config = TrainConfig(dataset="synthetic", model="mlp", method="nm", epochs=1, batch_size=64)
    fit(config, tmp_path / "eager", progress=False, log=quiet)
    fit(config.replace(compile=True), tmp_path / "compiled", progress=False, log=quiet)
    eager, compiled = read_metrics(tmp_path / "eager"), read_metrics(tmp_path / "compiled")
    assert abs(float(eager[0]["train_loss"]) - float(compiled[0]["train_loss"])) < 1e-4
    # a compiled run's checkpoints load into the plain model
    assert load_model(tmp_path / "compiled").spec["name"] == "mlp"


def test_compile_and_channels_last_are_validated():
    with pytest.raises(ConfigError, match="compile"):
        TrainConfig(method="igr", compile=True)
    with pytest.raises(ConfigError, match="channels_last"):
        TrainConfig(channels_last="yes")
    with pytest.raises(ConfigError, match="invalid fused_noise=True.*gaussian"):
        TrainConfig(method="nm", noise="laplace", fused_noise=True)


@pytest.mark.slow
def test_fused_noise_trains_like_nm_and_composes_with_compile(tmp_path):
    # Another random stream, same method: after two epochs the fused run learns as the eager one does;
    # with --compile the fused kernel is traced inside the compiled model and gives its losses.
    config = TrainConfig(method="nm", **QUICK)
    eager = fit(config, tmp_path / "eager", progress=False, log=quiet)
    fused = fit(config.replace(fused_noise=True), tmp_path / "fused", progress=False, log=quiet)
    assert fused["test_accuracy"] > 0.2 and abs(fused["test_accuracy"] - eager["test_accuracy"]) < 0.25
    fit(config.replace(fused_noise=True, compile=True), tmp_path / "both", progress=False, log=quiet)
    a, b = read_metrics(tmp_path / "fused"), read_metrics(tmp_path / "both")
    assert abs(float(a[0]["train_loss"]) - float(b[0]["train_loss"])) < 1e-4


def test_robust_accuracy_attacks_the_first_test_images_in_their_order(tmp_path, monkeypatch):
    """The attack's random starts are drawn batch by batch, so the images must come in test-set
    order, as they do for the accuracy and VII (a shuffled loader gives other starts: a bug the
    train.py split once had, caught by comparing result.json before and after)."""
    import noisemod.attacks
    from noisemod.data import load_dataset
    from noisemod.evaluation import evaluate

    seen = []

    def record(model, loader, *, attack):
        seen.extend((x.clone(), y.clone()) for x, y in loader)
        return 0.5

    monkeypatch.setattr(noisemod.attacks, "robust_accuracy", record)
    data = load_dataset("synthetic")
    model = noisemod.create_model("mlp", in_channels=1, num_classes=10, input_size=16)
    got = evaluate(model, data, batch_size=50, robust=True, eps=0.1, robust_images=150)
    assert got["robust_accuracy"] == 0.5 and got["robust_attack"]["images"] == 150
    assert torch.equal(torch.cat([y for _, y in seen]), data.test.labels[:150])
    assert torch.equal(torch.cat([x for x, _ in seen]), data.test.images[:150].float() / 255)
