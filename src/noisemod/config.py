"""The one training configuration: a frozen dataclass whose fields describe themselves.

Each field of :class:`TrainConfig` is declared with :func:`setting`, which puts everything known
about it on the field: its type (the annotation), default, help text, validation, whether a
method uses it, its role and its run-id tag. Everything else is derived from these
descriptions, through :func:`settings`:

- the options of ``noisemod train`` (:mod:`noisemod.cli`),
- the checks of experiment specs and the settings each method keeps (:mod:`noisemod.experiments`),
- the settings a resumed run or a rerun sweep may change (:attr:`Setting.runtime`),
- run ids and hashes (:func:`identity`), and the experimental conditions of figures and reports
  (:func:`condition_names`).

Which methods use a method setting is said once, by the method's registered definition
(:mod:`noisemod.methods`, the layer below: it does not import this module). This module holds
the registry to its rule (a method's settings are method settings), asks it what a method
cannot do, and derives run ids and the docs tables from both (:func:`run_id_parts`,
:func:`methods_table`, :func:`settings_table`). Adding a setting: one ``setting(...)`` line
here, then use it where it acts (see docs/architecture.md).
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from functools import cache
from typing import Any

from .methods import METHODS, get_method, methods_using
from .modulation import NOISES

__all__ = [
    "ConfigError",
    "Setting",
    "TrainConfig",
    "condition_names",
    "field_names",
    "get_setting",
    "identity",
    "methods_table",
    "read_config_file",
    "run_id_parts",
    "settings",
    "settings_table",
]

ROLES = ("condition", "repeat", "runtime")


class ConfigError(ValueError):
    """An invalid option value; ``option``, ``value`` and ``expected`` say which and why."""

    def __init__(self, option: str, value: Any, expected: str):
        super().__init__(f"invalid {option}={value!r}: expected {expected}")
        self.option, self.value, self.expected = option, value, expected


# ----------------------------------------------------------------------------- checks


@dataclass(frozen=True)
class Check:
    """How one setting's values are checked: ``ok(value)`` is True for a valid value,
    ``describe()`` says what is valid (error messages), ``choices()`` lists the valid names of a
    closed set (``--help``). They are called at each use, so registries may grow after import."""

    ok: Callable[[Any], bool]
    describe: Callable[[], str]
    choices: Callable[[], Iterable[str]] | None = None

    @property
    def expected(self) -> str:
        return self.describe()


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def integer(minimum: int) -> Check:
    word = {0: "a non-negative integer", 1: "a positive integer"}.get(minimum, f"an integer >= {minimum}")
    return Check(lambda v: _is_int(v) and v >= minimum, lambda: word)


def number(low: float = -math.inf, high: float = math.inf, *, open_low: bool = False) -> Check:
    if (low, high, open_low) == (0, math.inf, True):
        word = "a positive number"
    elif (low, high) == (0, math.inf):
        word = "a non-negative number"
    else:
        word = f"a number in [{low:g}, {high:g}]"
    return Check(lambda v: _is_num(v) and (v > low if open_low else v >= low) and v <= high, lambda: word)


def one_of(names: Callable[[], Iterable[str]]) -> Check:
    """A name from ``names()``."""
    return Check(lambda v: isinstance(v, str) and v in tuple(names()), lambda: "one of " + ", ".join(names()), names)


def flag() -> Check:
    return Check(lambda v: isinstance(v, bool), lambda: "true or false")


def optional(check: Check) -> Check:
    """``None`` (the component's default behaviour) or a value ``check`` accepts."""
    return Check(lambda v: v is None or check.ok(v), check.describe, check.choices)


def text() -> Check:
    return Check(lambda v: isinstance(v, str) and bool(v), lambda: "a non-empty string")


def _method_names() -> list[str]:
    return METHODS.names()


def _dataset_names() -> list[str]:
    from .data import DATASETS

    return sorted(DATASETS)


def _model_names() -> list[str]:
    from .models import list_models

    return [*list_models(), "tv:<torchvision name>"]


def model_name() -> Check:
    """A registered model, or any torchvision classifier as ``tv:<name>`` (checked when built)."""

    def ok(v) -> bool:
        return isinstance(v, str) and (v in _model_names()[:-1] or (v.startswith("tv:") and v != "tv:"))

    return Check(ok, lambda: "one of " + ", ".join(_model_names()[:-1]) + " or tv:<torchvision name>", _model_names)


def device_name() -> Check:
    """``auto``, or a name ``torch.device`` parses (``cpu``, ``cuda``, ``cuda:1``); whether the device
    exists is checked when a run starts, so configs of GPU runs still load on a CPU machine."""

    def ok(v) -> bool:
        if not isinstance(v, str) or v == "auto":
            return v == "auto"
        import torch

        try:
            torch.device(v)
        except (RuntimeError, TypeError):
            return False
        return True

    return Check(ok, lambda: "cpu, cuda, cuda:N or auto")


# ----------------------------------------------------------------------------- run-id tags


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def always(pattern: str) -> Callable[[Any, Any], str | None]:
    """A run-id tag written for every value: ``always("b{}")`` gives ``b0.5``."""
    return lambda value, default: pattern.format(_fmt(value))


def unless_default(pattern: str) -> Callable[[Any, Any], str | None]:
    """A run-id tag written only when the value is not the default (``"l2"``, ``"fused"``, ``eps0.1``)."""
    return lambda value, default: None if value == default else pattern.format(_fmt(value))


# ----------------------------------------------------------------------------- the description

_SAME = object()  # legacy: the default


def setting(
    default,
    help: str,
    *,
    check: Check,
    group: str | None = None,
    method: bool = False,
    role: str = "condition",
    tag: Callable[[Any, Any], str | None] | None = None,
    resume_may_change: bool = False,
    since: str | None = None,
    legacy: Any = _SAME,
):
    """A :class:`TrainConfig` field with its description (see :class:`Setting` for the arguments).
    A general setting names its ``group``; a method setting (``method=True``) is in group ``method``."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if method == (group is not None):
        raise ValueError("a method setting has no group; a general setting needs one")
    meta = dict(help=help, check=check, group=group or "method", method=method, role=role, tag=tag)
    if legacy is not _SAME and since is None:
        raise ValueError("only a setting added later (since=...) has a legacy value")
    meta.update(resume_may_change=resume_may_change, since=since, legacy=default if legacy is _SAME else legacy)
    return dataclasses.field(default=default, metadata={"noisemod": meta})


@dataclass(frozen=True)
class Setting:
    """What is known about one :class:`TrainConfig` field.

    Attributes:
        name: the field name (``--name-with-dashes`` on the command line).
        type: the value type (``bool``, ``int``, ``float`` or ``str``); ``optional`` when ``None``
            is allowed (meaning "the component's default", e.g. per-dataset attack settings).
        default: the default value.
        help: one line for ``--help`` and the docs.
        check: the validation (:class:`Check`).
        group: where ``--help`` lists a general setting (method settings: ``"method"``).
        method: a method setting: only the methods whose registered definition lists it use it;
            specs reset it to its default for the others.
        role: ``condition`` (changes what a run computes: it tells runs apart, and a resume or
            a rerun sweep must keep it), ``repeat`` (the seed: tells runs apart, but runs that
            differ only in it are repeats of one condition) or ``runtime`` (where and how fast a
            run goes: not in ids or hashes, and free to change on resume and in reruns).
        tag: for a method setting, its part of a run id, ``tag(value, default) -> str | None``.
        resume_may_change: a condition that ``--resume`` may change (``epochs``: continue a run).
        since: the noisemod version that added the setting (None: from the start). A later
            setting enters run hashes only away from its default, so older sweep ids stay valid.
        legacy: the value a config saved before the setting existed had in effect, when that is
            not the default (``eps_warmup``: 0, no warm-up, while the default is per dataset); a
            method setting takes it only for the methods that use it.
    """

    name: str
    type: type
    optional: bool
    default: Any
    help: str
    check: Check
    group: str
    method: bool
    role: str
    tag: Callable[[Any, Any], str | None] | None
    resume_may_change: bool
    since: str | None
    legacy: Any

    @property
    def runtime(self) -> bool:
        return self.role == "runtime"

    @property
    def option(self) -> str:
        return "--" + self.name.replace("_", "-")

    def validate(self, value) -> None:
        if not self.check.ok(value):
            raise ConfigError(self.name, value, self.check.expected)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run. Defaults follow the paper (Section 3.2): Adam,
    lr 1e-3, batch 64, 50 epochs, seed 0, beta 0.5, Gaussian noise.

    Attack settings left as ``None`` take the per-dataset defaults of
    :func:`noisemod.attacks.attack_defaults`. Each field's description: :func:`settings`.
    """

    # what is trained
    dataset: str = setting(
        "digits",
        "dataset name (digits is embedded; the others read --data-root)",
        check=one_of(_dataset_names),
        group="experiment",
    )
    model: str = setting("lenet", "model name", check=model_name(), group="experiment")
    method: str = setting("standard", "training method", check=one_of(_method_names), group="experiment")
    # noise modulation
    beta: float = setting(
        0.5,
        "ratio of the constant component of the carrier, in [0, 1]",
        check=number(0, 1),
        method=True,
        tag=always("b{}"),
    )
    noise: str = setting("gaussian", "carrier noise", check=one_of(lambda: NOISES), method=True, tag=always("{}"))
    modulate_after_norm: bool = setting(
        False,
        "modulate the normalized input instead of the [0, 1] input",
        check=flag(),
        method=True,
        tag=unless_default("after-norm"),
    )
    fused_noise: bool = setting(
        False,
        "gaussian noise from a counter-based generator, sampled and applied in one compiled kernel (several times "
        "faster on CPU; another random stream)",
        check=flag(),
        method=True,
        tag=unless_default("fused"),
    )
    # adversarial training (pgd, fgsm) and input-gradient regularization (igr)
    eps: float | None = setting(
        None,
        "attack radius (default per dataset)",
        check=optional(number(0)),
        method=True,
        tag=unless_default("eps{}"),
    )
    alpha: float | None = setting(
        None,
        "attack step size (default per dataset)",
        check=optional(number(0, open_low=True)),
        method=True,
        tag=unless_default("alpha{}"),
    )
    steps: int | None = setting(
        None,
        "attack steps (default per dataset)",
        check=optional(integer(1)),
        method=True,
        tag=unless_default("steps{}"),
    )
    norm: str = setting(
        "linf",
        "threat model",
        check=one_of(lambda: ("linf", "l2")),
        method=True,
        tag=unless_default("{}"),
    )
    igr_lambda: float = setting(
        1.0,
        "weight of the squared input-gradient norm",
        check=number(0),
        method=True,
        tag=always("lambda{}"),
    )
    eps_warmup: float | None = setting(
        None,
        "epochs over which eps and alpha rise linearly from 0 to their values, step by step (default per "
        "dataset, see noisemod.attacks.eps_warmup_default; 0: none)",
        check=optional(number(0)),
        method=True,
        tag=unless_default("warmup{}"),
        since="0.2.0",
        legacy=0,
    )
    early_stop: bool = setting(
        False,
        "stop when PGD accuracy on 256 fixed training images (evenly spaced) falls more than 0.2 below its best so far "
        "(catastrophic overfitting, Wong et al. 2020); the best checkpoint is then of an epoch before",
        check=flag(),
        method=True,
        tag=unless_default("early-stop"),
        since="0.2.0",
    )
    sigma: float | None = setting(
        None,
        "standard deviation of the input noise (default per method)",
        check=optional(number(0)),
        method=True,
        tag=unless_default("sigma{}"),
        since="0.2.0",
    )
    # optimization
    epochs: int = setting(50, "training epochs", check=integer(1), group="optimization", resume_may_change=True)
    batch_size: int = setting(
        64, "training batch size (per process under torchrun)", check=integer(1), group="optimization"
    )
    lr: float = setting(1e-3, "learning rate", check=number(0, open_low=True), group="optimization")
    optimizer: str = setting("adam", "optimizer", check=one_of(lambda: ("adam", "adamw", "sgd")), group="optimization")
    momentum: float = setting(0.9, "sgd momentum", check=number(0), group="optimization")
    weight_decay: float = setting(0.0, "weight decay", check=number(0), group="optimization")
    schedule: str = setting(
        "constant",
        "learning-rate schedule",
        check=one_of(lambda: ("constant", "cosine", "step")),
        group="optimization",
    )
    seed: int = setting(0, "random seed", check=integer(0), group="optimization", role="repeat")
    # data
    data_root: str | None = setting(
        None,
        "folder holding the datasets (default: $NOISEMOD_DATA, else ~/.cache/noisemod/data)",
        check=optional(text()),
        group="data",
        role="runtime",
    )
    train_size: int | None = setting(
        None, "train on a seeded subset of N training images", check=optional(integer(1)), group="data"
    )
    shuffle_labels: bool = setting(
        False,
        "train on the training labels permuted at random (seeded; validation and test labels untouched): "
        "a negative control, a model that fits labels unrelated to the images (Zhang et al. 2017)",
        check=flag(),
        group="data",
        since="0.3.0",
    )
    val_size: int | None = setting(
        None,
        "validation images carved from the training set (default: 5000, or 10% of small sets)",
        check=optional(integer(0)),
        group="data",
    )
    eval_batch_size: int = setting(512, "batch size for evaluation", check=integer(1), group="evaluation")
    robust_images: int | None = setting(
        None,
        "test images attacked for the result's robust_accuracy (PGD-50, random start; default: 1000 for "
        "adversarial methods, 0 for the others)",
        check=optional(integer(0)),
        group="evaluation",
        since="0.2.0",
    )
    # hardware
    device: str | None = setting(
        None,
        "cpu, cuda, cuda:N or auto (default: CUDA when present)",
        check=optional(device_name()),
        group="hardware",
        role="runtime",
    )
    amp: str = setting(
        "none", "mixed precision on GPU", check=one_of(lambda: ("none", "bf16", "fp16")), group="hardware"
    )
    compile: bool = setting(
        False,
        "torch.compile the training forward/backward (a one-time compilation cost; not with igr)",
        check=flag(),
        group="hardware",
        role="runtime",
    )
    channels_last: bool = setting(
        False,
        "channels-last memory format for the model and its inputs (faster convolutions on GPU)",
        check=flag(),
        group="hardware",
        role="runtime",
    )
    tensorboard: bool = setting(
        True,
        "TensorBoard event files in RUN_DIR/tensorboard: loss, accuracy and VII per epoch, gradient maps",
        check=flag(),
        group="hardware",
        role="runtime",
        since="0.2.0",
    )

    def __post_init__(self):
        self.validate()

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, saved: bool = False) -> TrainConfig:
        """Build from a mapping, rejecting unknown keys (a typo must not be silently ignored); a
        setting missing from ``values`` takes its default. ``saved``: ``values`` is a config a run
        saved, so a setting added since takes its legacy value (:attr:`Setting.legacy`), the one
        that run had in effect."""
        known = field_names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown config key(s): {', '.join(unknown)}; valid keys: {', '.join(sorted(known))}")
        return cls(**{**(_legacy_values(values) if saved else {}), **values})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)

    def validate(self) -> None:
        """Raise :class:`ConfigError` naming the first invalid option and its value."""
        for s in settings():
            s.validate(getattr(self, s.name))
        if self.fused_noise and self.noise != "gaussian":
            raise ConfigError(
                "fused_noise", True, f"false with noise {self.noise!r} (the fused path draws gaussian noise only)"
            )
        problem = get_method(self.method).problem(self) or _robust_problem(self)
        if problem is not None:
            name, expected = problem
            raise ConfigError(name, getattr(self, name), expected)


def _robust_problem(config: TrainConfig) -> tuple[str, str] | None:
    """Robust accuracy of a method without a radius of its own is measured at the dataset's PGD radius
    (:func:`noisemod.train.evaluate`): refuse it, before training, on a dataset that declares none."""
    from .attacks import declares_defaults

    if config.robust_images and "eps" not in get_method(config.method).settings:
        if not declares_defaults("pgd", config.dataset):
            return "robust_images", f"0 (dataset {config.dataset} declares no default attack radius to attack at)"
    return None


def _legacy_values(values: dict[str, Any]) -> dict[str, Any]:
    """The legacy values of the settings missing from ``values`` whose legacy is not their default
    (for a method setting: when the config's method uses it)."""
    method = METHODS.get(values.get("method", get_setting("method").default), None)
    out = {}
    for s in settings():
        if s.name not in values and s.legacy != s.default:
            if not s.method or (method is not None and s.name in method.settings):
                out[s.name] = s.legacy
    return out


@cache
def settings() -> tuple[Setting, ...]:
    """The description of every :class:`TrainConfig` field, in declaration order."""
    hints = typing.get_type_hints(TrainConfig)
    out = []
    for f in fields(TrainConfig):
        meta = f.metadata["noisemod"]
        kinds = [t for t in typing.get_args(hints[f.name]) if t is not type(None)] or [hints[f.name]]
        out.append(Setting(f.name, kinds[0], len(kinds) < len(typing.get_args(hints[f.name])), f.default, **meta))
    return tuple(out)


def field_names() -> tuple[str, ...]:
    """The :class:`TrainConfig` field names, in declaration order."""
    return tuple(s.name for s in settings())


def get_setting(name: str) -> Setting:
    for s in settings():
        if s.name == name:
            return s
    raise KeyError(f"no setting {name!r}; settings: {', '.join(field_names())}")


def _check_method_settings(name: str, method) -> None:
    """The rule every registered method is held to: the settings it lists are method settings."""
    for s in method.settings:
        if s not in field_names() or not get_setting(s).method:
            raise ValueError(f"method {name!r}: {s!r} is not a method setting of TrainConfig")


METHODS.add_check(_check_method_settings)


def condition_names() -> tuple[str, ...]:
    """The settings that define an experimental condition: runs that differ only in the others
    (the seed, and the runtime settings) are repeats of one condition in figures and reports."""
    return tuple(s.name for s in settings() if s.role == "condition")


def identity(config: TrainConfig) -> dict[str, Any]:
    """What a run computes: every setting but the runtime ones. Two configs with the same
    identity are the same run (one run id, one run directory)."""
    return {s.name: getattr(config, s.name) for s in settings() if not s.runtime}


def hash_values(config: TrainConfig) -> dict[str, Any]:
    """:func:`identity` without the settings added later (``since``) that are at their default:
    the input of sweep hashes, so that adding a setting does not change the ids of older sweeps."""
    later = {s.name: s.default for s in settings() if s.since is not None}
    return {k: v for k, v in identity(config).items() if not (k in later and v == later[k])}


def run_id_parts(config) -> list[str]:
    """A run's method part of its id: the method's tag, then the tags of the settings it uses at
    their values in ``config`` (a :class:`TrainConfig`, or any object with ``method`` and those
    settings as attributes), e.g. ``["nm", "b0.5", "gaussian"]``."""
    method = get_method(config.method)
    parts = [method.tag or method.name]
    for name in method.settings:
        s = get_setting(name)
        part = s.tag(getattr(config, name), s.default) if s.tag is not None else None
        if part:
            parts.append(part)
    return parts


def methods_table() -> str:
    """The Markdown table of docs/training.md: each method, its objective, and its options with defaults."""

    def option(name: str) -> str:
        s = get_setting(name)
        shown = "" if s.default is None or s.type is bool else f" ({s.default})"
        return f"`{s.option}`{shown}"

    lines = ["| method | objective per batch | options |", "| --- | --- | --- |"]
    for m in METHODS.values():
        summary = m.summary.replace("|", "\\|")  # a table cell
        lines.append(f"| `{m.name}` | {summary} | {', '.join(option(s) for s in m.settings)} |")
    return "\n".join(lines)


def settings_table() -> str:
    """The Markdown table of docs/experiments.md: each method setting and the methods that use it
    (specs reset a method setting to its default for the other methods)."""
    groups: dict[tuple[str, ...], list[str]] = {}
    for s in settings():
        if s.method:
            groups.setdefault(tuple(methods_using(s.name)), []).append(s.name)
    lines = ["| setting | used by |", "| --- | --- |"]
    for methods, names in groups.items():
        lines.append(f"| {', '.join(f'`{n}`' for n in names)} | {', '.join(f'`{m}`' for m in methods)} |")
    return "\n".join(lines)


def read_config_file(path) -> dict[str, Any]:
    """The settings in a config file: a ``config.json`` of a run, or any JSON or YAML mapping of
    :class:`TrainConfig` fields (``.json``, ``.yaml``, ``.yml``). Values are checked when the
    config is built; unknown keys, a file that is not a mapping, or one that cannot be parsed
    raise ``ValueError`` naming the file."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() not in (".json", ".yaml", ".yml"):
        raise ValueError(f"{path}: a config file is .json, .yaml or .yml")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    if path.suffix.lower() == ".json":
        from .io import read_json

        values = read_json(path)
    else:
        import yaml

        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from None
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping of settings, got {type(values).__name__}")
    unknown = sorted(set(map(str, values)) - set(field_names()))
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; valid: {', '.join(field_names())}")
    return values
