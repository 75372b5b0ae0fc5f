"""The method registry: one definition per method, and a method added by this file alone reaches
the command line, spec checks, run ids, training and resume."""

import csv

import pytest
import torch

import noisemod.methods as methods_module
from noisemod.cli import main
from noisemod.config import ConfigError, TrainConfig, run_id_parts
from noisemod.experiments import expand, load_spec
from noisemod.methods import FAMILIES, Method, cross_entropy_step, get_method, list_methods, register_method
from noisemod.rundir import METRIC_TIMES
from noisemod.train import fit


class Blend(Method):
    """A toy objective: cross-entropy on ``beta * x + (1 - beta) * x`` mirrored left-right."""

    def __init__(self, beta: float):
        self.beta = beta

    def step(self, net, x, y):
        return cross_entropy_step(net, self.beta * x + (1 - self.beta) * x.flip(-1), y)


@pytest.fixture
def toy():
    """``toy-blend`` registered for one test (unregistered afterwards)."""

    @register_method(
        "toy-blend", settings=("beta",), family="control", summary="cross-entropy on a blend of x and its mirror"
    )
    def build(config, model, generator):
        return Blend(config.beta)

    yield get_method("toy-blend")
    methods_module.METHODS.unregister("toy-blend")


def metrics(run):
    with open(run / "metrics.csv") as f:
        return [{k: v for k, v in r.items() if k not in METRIC_TIMES} for r in csv.DictReader(f)]


def test_a_method_registered_in_a_test_file_works_everywhere(toy, tmp_path, capsys):
    assert list_methods()[-1] == "toy-blend"
    # the command line lists it, with its summary, and names it on the settings it uses
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "toy-blend cross-entropy on a blend of x and its mirror" in help_text
    assert "modulation-only, toy-blend (default: standard)" in help_text
    assert "nm, gamma-noise, modulation-only, toy-blend: ratio" in help_text
    # a spec validates it, keeps beta for it (reset for standard), and gives every run its own id
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: toy\nfixed: {dataset: synthetic, model: mlp}\n"
        "grids: [{method: [standard, toy-blend], beta: [0.5, 0.8], seed: [0, 1]}]\nbudgets: {paper: {}}\n"
    )
    ids = [r.run_id for r in expand(load_spec(spec), "paper")]
    assert ids == [
        "synthetic-mlp-standard-s0",
        "synthetic-mlp-standard-s1",
        "synthetic-mlp-toy-blend-b0.5-s0",
        "synthetic-mlp-toy-blend-b0.5-s1",
        "synthetic-mlp-toy-blend-b0.8-s0",
        "synthetic-mlp-toy-blend-b0.8-s1",
    ]
    # it trains, and resumes to the uninterrupted run's metrics and results
    config = TrainConfig(dataset="synthetic", model="mlp", method="toy-blend", beta=0.8, epochs=2, train_size=256)
    full = fit(config, tmp_path / "full", progress=False, log=lambda *_: None)
    assert full["test_accuracy"] > 0.2

    class Stop(Exception):
        pass

    def stop_after_epoch_1(msg):
        if msg.startswith("epoch 1/2"):
            raise Stop

    with pytest.raises(Stop):
        fit(config, tmp_path / "cut", progress=False, log=stop_after_epoch_1)
    resumed = fit(config, tmp_path / "cut", resume=True, progress=False, log=lambda *_: None)
    assert metrics(tmp_path / "cut") == metrics(tmp_path / "full")
    assert (resumed["test_accuracy"], resumed["vii"]) == (full["test_accuracy"], full["vii"])


def test_the_toy_is_gone_after_its_test():
    assert "toy-blend" not in list_methods()
    with pytest.raises(ConfigError, match="invalid method='toy-blend'"):
        TrainConfig(method="toy-blend")


def test_registration_errors(toy):
    with pytest.raises(ValueError, match="name is empty or taken"):
        register_method("nm")(lambda *a: None)
    with pytest.raises(ValueError, match="'lr' is not a method setting"):
        register_method("x", settings=("lr",))(lambda *a: None)
    with pytest.raises(ValueError, match="'betta' is not a method setting"):
        register_method("x", settings=("betta",))(lambda *a: None)
    with pytest.raises(ValueError, match="family must be one of"):
        register_method("x", family="magic")(lambda *a: None)


def test_the_builtin_definitions():
    assert list_methods() == [
        "standard",
        "nm",
        "pgd",
        "fgsm",
        "igr",
        "additive-noise",
        "multiplicative-noise",
        "gamma-noise",
        "modulation-only",
    ]
    assert {m.family for m in methods_module.METHODS.values()} <= set(FAMILIES)
    assert get_method("fgsm").settings == ("eps", "alpha", "norm", "eps_warmup", "early_stop")  # one step: no steps
    nm = TrainConfig(method="nm", beta=0.25, noise="laplace", modulate_after_norm=True)
    assert run_id_parts(nm) == ["nm", "b0.25", "laplace", "after-norm"]
    pgd = TrainConfig(method="pgd", eps=8 / 255, steps=3, norm="l2")
    assert run_id_parts(pgd) == ["pgd", "eps0.0313725", "steps3", "l2"]
    assert run_id_parts(TrainConfig(method="igr")) == ["igr", "lambda1"]
    with pytest.raises(ValueError, match="unknown method 'magic'; registered: standard, nm"):
        get_method("magic")


def test_the_docs_table_is_the_registry():
    from pathlib import Path

    from noisemod.config import methods_table, settings_table

    table = methods_table()
    assert table.splitlines()[2].startswith("| `standard` | cross-entropy on `x` |")
    assert "`--beta` (0.5), `--noise` (gaussian), `--modulate-after-norm`, `--fused-noise`" in table
    docs = Path(__file__).resolve().parents[1] / "docs"
    assert table in (docs / "training.md").read_text(), "docs/training.md: paste noisemod.config.methods_table()"
    applies = settings_table()
    assert (
        "| `steps` | `pgd` |" in applies
        and "| `eps`, `alpha`, `norm`, `eps_warmup`, `early_stop` | `pgd`, `fgsm` |" in applies
    )
    assert applies in (docs / "experiments.md").read_text(), "docs/experiments.md: paste config.settings_table()"


def test_adversarial_methods_train_on_the_attack():
    # the fgsm step is the cross-entropy of the attack's output: the same draw of the random start
    from noisemod.methods import build_method
    from noisemod.models import create_model

    torch.manual_seed(0)
    model = create_model("mlp", in_channels=1, num_classes=10, input_size=8)
    x, y = torch.rand(4, 1, 8, 8), torch.randint(0, 10, (4,))
    generator = torch.Generator().manual_seed(0)
    method = build_method(TrainConfig(dataset="synthetic", method="fgsm"), model, generator)
    state = generator.get_state()
    x_adv = method.attack.perturb(x, y)
    generator.set_state(state)
    loss, logits = method.step(model, x, y)
    torch.testing.assert_close(loss, torch.nn.functional.cross_entropy(model(x_adv), y))
    torch.testing.assert_close(logits, model(x_adv))
    assert method.attack.steps == 1 and (x_adv - x).abs().max() > 0
