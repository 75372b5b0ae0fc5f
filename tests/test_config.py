"""Settings described once: every TrainConfig field's description, and what is derived from it
(validation, the command line, --config files, roles, identities and hashes)."""

import json
import math

import pytest

from noisemod.cli import build_parser, main
from noisemod.config import (
    ConfigError,
    TrainConfig,
    condition_names,
    field_names,
    get_setting,
    hash_values,
    identity,
    read_config_file,
    settings,
)
from noisemod.experiments.spec import config_hash
from noisemod.methods import METHODS, methods_using


def test_every_field_is_described():
    described = settings()
    assert [s.name for s in described] == list(TrainConfig.__dataclass_fields__)
    for s in described:
        assert s.help and s.type in (bool, int, float, str) and s.role in ("condition", "repeat", "runtime")
        assert s.group in ("experiment", "method", "optimization", "data", "evaluation", "hardware")
        s.validate(s.default)  # the default is valid
        assert (s.group == "method") == s.method
        if s.method:  # a method setting is used by some method and knows its run-id tag
            assert methods_using(s.name) and s.tag is not None, s.name
    # the roles as documented: the seed repeats a condition; these four do not change what a run computes
    assert [s.name for s in described if s.role == "repeat"] == ["seed"]
    assert [s.name for s in described if s.runtime] == [
        "data_root",
        "device",
        "compile",
        "channels_last",
        "tensorboard",
    ]
    assert [s.name for s in described if s.resume_may_change] == ["epochs"]
    assert "seed" not in condition_names() and "compile" not in condition_names() and "beta" in condition_names()


def test_types_come_from_the_annotations():
    assert (get_setting("eps").type, get_setting("eps").optional) == (float, True)
    assert (get_setting("steps").type, get_setting("steps").optional) == (int, True)
    assert (get_setting("compile").type, get_setting("compile").optional) == (bool, False)
    assert get_setting("dataset").type is str


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("beta", 1.5, "a number in [0, 1]"),
        ("beta", math.nan, "a number in [0, 1]"),
        ("beta", True, "a number in [0, 1]"),
        ("noise", "pink", "one of gaussian, uniform"),
        ("method", "magic", "one of standard, nm, pgd, fgsm, igr, additive-noise, multiplicative-noise"),
        ("dataset", "mnits", "one of cifar10, digits"),
        ("model", "vgg", "tv:<torchvision name>"),
        ("model", "tv:", "tv:<torchvision name>"),
        ("device", "tpu", "cpu, cuda, cuda:N or auto"),
        ("epochs", 0, "a positive integer"),
        ("epochs", 2.0, "a positive integer"),
        ("seed", -1, "a non-negative integer"),
        ("lr", 0.0, "a positive number"),
        ("alpha", 0, "a positive number"),
        ("eps", -0.1, "a non-negative number"),
        ("compile", "yes", "true or false"),
        ("data_root", "", "a non-empty string"),
    ],
)
def test_each_value_is_checked_by_its_description(field, value, expected):
    with pytest.raises(ConfigError, match=f"invalid {field}=") as e:
        TrainConfig(**{field: value})
    assert expected in str(e.value) and e.value.option == field


def test_cross_setting_checks():
    with pytest.raises(ConfigError, match="invalid compile=True: expected False with method igr"):
        TrainConfig(method="igr", compile=True)
    with pytest.raises(ConfigError, match="invalid fused_noise=True.*gaussian"):
        TrainConfig(method="nm", noise="laplace", fused_noise=True)
    assert TrainConfig(model="tv:resnet18", device="cuda:1").device == "cuda:1"  # availability is checked at run time


def test_identity_leaves_out_runtime_settings_and_hashes_stay_stable():
    a = TrainConfig(dataset="synthetic", model="mlp", lr=0.003, epochs=3, train_size=300)
    b = a.replace(compile=True, channels_last=True, device="cpu", data_root="/data")
    assert identity(a) == identity(b) and config_hash(a) == config_hash(b)
    assert set(identity(a)) == set(field_names()) - {"data_root", "device", "compile", "channels_last", "tensorboard"}
    assert config_hash(a) != config_hash(a.replace(seed=1))
    # the hash a sweep written before settings described themselves gave this run (its run id suffix)
    assert config_hash(a) == "0f9c25"
    # the settings added since are left out of the hash at their defaults
    later = {s.name for s in settings() if s.since is not None}
    assert later == {"eps_warmup", "early_stop", "sigma", "robust_images", "tensorboard", "shuffle_labels"}
    assert hash_values(a) == {k: v for k, v in identity(a).items() if k not in later}
    assert "eps_warmup" in hash_values(a.replace(method="pgd", eps_warmup=1.0))


def test_a_setting_added_later_enters_the_hash_only_away_from_its_default(monkeypatch):
    import dataclasses

    import noisemod.config as config_module

    real = settings()
    later = tuple(dataclasses.replace(s, since="0.2.0") if s.name == "weight_decay" else s for s in real)
    monkeypatch.setattr(config_module, "settings", lambda: later)
    a = TrainConfig(dataset="synthetic", model="mlp", lr=0.003, epochs=3, train_size=300)
    assert "weight_decay" not in hash_values(a) and "weight_decay" in hash_values(a.replace(weight_decay=0.1))


def test_every_setting_is_a_train_option_with_its_help():
    text = build_parser().parse_args(["train", "--out", "x"])  # parses with nothing given
    assert all(getattr(text, s.name) is None for s in settings())
    parser = build_parser()
    train = parser._subparsers._group_actions[0].choices["train"]
    options = {a.dest: a for a in train._actions}
    for s in settings():
        assert s.option in options[s.name].option_strings and s.help.replace("%", "%%") in options[s.name].help
    assert options["beta"].help.startswith("nm, gamma-noise, modulation-only: ") and options["eps"].help.startswith(
        "pgd, fgsm: "
    )
    assert "one of: standard, nm, pgd, fgsm, igr, additive-noise, multiplicative-noise" in options["method"].help


def test_booleans_can_be_turned_off_on_the_command_line(tmp_path):
    from noisemod.cli import _config

    path = tmp_path / "c.yaml"
    path.write_text("method: nm\nmodulate_after_norm: true\ncompile: true\n")
    args = build_parser().parse_args(["train", "--out", "x", "--config", str(path), "--no-compile"])
    config = _config(args)
    assert config.modulate_after_norm and not config.compile


def test_train_config_file_json_and_yaml_with_overrides(tmp_path, capsys):
    from noisemod.cli import _config

    saved = TrainConfig(dataset="synthetic", model="mlp", method="nm", beta=0.25, epochs=1, lr=1 / 3)
    json_path = tmp_path / "config.json"
    json_path.write_text(json.dumps(saved.to_dict()))
    args = build_parser().parse_args(["train", "--out", "x", "--config", str(json_path), "--beta", "0.75"])
    assert _config(args) == saved.replace(beta=0.75)
    yaml_path = tmp_path / "c.yml"
    yaml_path.write_text("dataset: synthetic\nmodel: mlp\nepochs: 1\n")
    assert read_config_file(yaml_path) == {"dataset": "synthetic", "model": "mlp", "epochs": 1}
    run = tmp_path / "run"
    assert main(["train", "--config", str(yaml_path), "--batch-size", "128", "--out", str(run), "--quiet"]) == 0
    assert (
        json.loads((run / "config.json").read_text())
        == TrainConfig(dataset="synthetic", model="mlp", epochs=1, batch_size=128).to_dict()
    )


@pytest.mark.parametrize(
    "name,text,needle",
    [
        ("c.yaml", "betta: 0.5\n", "unknown setting(s) betta"),
        ("c.yaml", "beta: 2\n", "invalid beta=2"),
        ("c.yaml", "[1, 2]\n", "expected a mapping of settings"),
        ("c.yaml", "beta: [0.5\n", "not valid YAML"),
        ("c.json", '{"beta": 0.5', "is not valid JSON"),
        ("c.txt", "beta: 0.5\n", "a config file is .json, .yaml or .yml"),
    ],
)
def test_bad_config_file_exits_2_naming_the_file(tmp_path, capsys, name, text, needle):
    path = tmp_path / name
    path.write_text(text)
    run = tmp_path / "run"
    assert main(["train", "--config", str(path), "--out", str(run), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0] and str(path) in err[0], err
    assert not run.exists()
    assert main(["train", "--config", str(tmp_path / "missing.json"), "--out", str(run)]) == 2
    assert "--config=" in capsys.readouterr().err and not run.exists()


def test_the_options_given_win_and_their_errors_name_the_option(tmp_path, capsys):
    path = tmp_path / "c.yaml"
    path.write_text("beta: 0.5\n")
    assert main(["train", "--config", str(path), "--beta", "3", "--out", str(tmp_path / "r")]) == 2
    assert "invalid --beta=3.0" in capsys.readouterr().err


def test_methods_use_only_method_settings():
    for m in METHODS.values():
        assert all(get_setting(s).method for s in m.settings), m.name


def test_the_docs_name_every_runtime_setting_where_they_say_what_a_resume_may_change():
    """The three places that list the runtime settings (what --resume and a rerun sweep may change)
    list them all, so that a new runtime setting cannot go unmentioned."""
    from pathlib import Path

    from noisemod.config import settings

    docs = Path(__file__).resolve().parents[1] / "docs"
    runtime = [s for s in settings() if s.runtime]
    assert {"device", "tensorboard"} <= {s.name for s in runtime}
    resume = (docs / "training.md").read_text().split("`--resume` may also raise")[1].split("any other changed")[0]
    sweep = (docs / "experiments.md").read_text().split("The runtime settings (")[1].split(")")[0]
    roles = (docs / "architecture.md").read_text().split("`runtime` (")[1].split(")")[0]
    for s in runtime:
        assert f"`{s.option}`" in resume, f"docs/training.md: name {s.option} among what --resume may change"
        assert f"`{s.name}`" in sweep, f"docs/experiments.md: name {s.name} among the runtime settings"
        assert s.name in roles.split(", "), f"docs/architecture.md: name {s.name} in the roles row"
