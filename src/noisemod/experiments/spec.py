"""Experiment specs: YAML files that describe a sweep of training runs, and their expansion.

A spec (see ``docs/experiments.md``)::

    name: fig3
    description: VII and accuracy of standard, nm and pgd training
    fixed: {optimizer: adam, lr: 0.001, batch_size: 64, seed: 0}    # every run
    grids:                                                          # union of Cartesian products
      - {dataset: [mnist], model: [mlp, fcnn, lenet], method: [standard, nm, pgd]}
      - {dataset: [cifar10], model: [mlp, fcnn, vgg11, resnet18], method: [standard, nm, pgd]}
    budgets:                                                        # applied last, one chosen per sweep
      paper: {epochs: 50}
      cpu:
        epochs: 3                       # any TrainConfig field: set on every run
        datasets: {cifar10: fashion-mnist}           # replace a dataset by another (first)
        cases:                                       # set fields on the runs that match, in order
          - {when: {dataset: mnist}, set: {train_size: 10000}}
          - {when: {dataset: mnist, method: pgd}, set: {steps: 10, alpha: 0.04}}
        only: {model: [mlp, lenet]}                  # keep only the runs with these values (last)

Every value is checked where it is written (a ``ValueError`` names the file and the key), and
each run is built as a :class:`~noisemod.config.TrainConfig`. Runs whose configs are equal once
the fields irrelevant to their method are reset to their defaults are one run.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import yaml

from ..config import RUNTIME_FIELDS, ConfigError, TrainConfig

__all__ = ["RELEVANT", "Run", "Spec", "expand", "load_spec"]

SPEC_KEYS = ("name", "description", "grids", "fixed", "budgets")
BUDGET_KEYS = ("datasets", "cases", "only")
CASE_KEYS = ("when", "set")
CONFIG_FIELDS = tuple(f.name for f in fields(TrainConfig))
DEFAULTS = TrainConfig()

# Method-specific fields and the methods they apply to; elsewhere they are reset to the default.
# FGSM always takes one step, so `steps` is PGD's only.
RELEVANT = {
    "beta": ("nm",),
    "noise": ("nm",),
    "modulate_after_norm": ("nm",),
    "fused_noise": ("nm",),
    "eps": ("pgd", "fgsm"),
    "alpha": ("pgd", "fgsm"),
    "norm": ("pgd", "fgsm"),
    "steps": ("pgd",),
    "igr_lambda": ("igr",),
}


@dataclass(frozen=True)
class Spec:
    """A parsed, validated spec file."""

    path: Path
    name: str
    description: str
    grids: tuple[dict[str, list], ...]
    fixed: dict[str, Any]
    budgets: dict[str, dict[str, Any]]


@dataclass(frozen=True)
class Run:
    """One run of a sweep: a readable, unique id and its resolved config."""

    run_id: str
    config: TrainConfig


class _Checker:
    """Raises ``ValueError("<file>: <where>: <problem>")`` for one spec file."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, problem: str):
        raise ValueError(f"{self.path}: {where}: {problem}")

    def mapping(self, where: str, value, allowed=None) -> dict:
        if not isinstance(value, dict):
            self.fail(where, f"expected a mapping, got {value!r}")
        unknown = sorted(set(map(str, value)) - set(allowed)) if allowed is not None else []
        if unknown:
            self.fail(where, f"unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(allowed)}")
        return value

    def nonempty_list(self, where: str, value) -> list:
        if not isinstance(value, list) or not value:
            self.fail(where, f"expected a non-empty list, got {value!r}")
        return value

    def key(self, where: str, key) -> None:
        """``key``, a key of the mapping at ``where``, must be a TrainConfig field."""
        if key not in CONFIG_FIELDS:
            self.fail(where, f"unknown TrainConfig field {key!r}; valid fields: {', '.join(CONFIG_FIELDS)}")

    def value(self, where: str, key: str, value) -> None:
        """``value``, written at ``where``, must be a valid value of the TrainConfig field ``key``."""
        try:
            TrainConfig(**{key: value})
        except ConfigError as e:
            hint = ""
            if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value):
                hint = " (YAML reads 1e-3 as a string: write 0.001 or 1.0e-3)"
            self.fail(where, f"{e}{hint}")
        if key == "dataset":
            from ..data import DATASETS

            if value not in DATASETS:
                self.fail(where, f"unknown dataset {value!r}; known: {', '.join(sorted(DATASETS))}")
        if key == "model":
            from ..models import list_models

            if value not in list_models() and not value.startswith("tv:"):
                self.fail(where, f"unknown model {value!r}; known: {', '.join(list_models())}, tv:<name>")

    def fields(self, where: str, values) -> dict:
        for key, value in self.mapping(where, values).items():
            self.key(where, key)
            self.value(f"{where}.{key}", key, value)
        return values


def load_spec(path) -> Spec:
    """Read and validate a spec file (``yaml.safe_load``); errors name the file and the key."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ValueError(f"{path}: not valid YAML: {e}") from None
    check = _Checker(path)
    check.mapping("top level", raw, SPEC_KEYS)
    for key in ("name", "grids"):
        if key not in raw:
            check.fail("top level", f"missing key {key!r}")
    if not isinstance(raw["name"], str) or not re.fullmatch(r"[\w.-]+", raw["name"]):
        check.fail("name", f"expected a name of letters, digits, '.', '-', '_', got {raw['name']!r}")
    fixed = check.fields("fixed", raw.get("fixed") or {})
    grids = []
    for i, grid in enumerate(check.nonempty_list("grids", raw["grids"])):
        where = f"grids[{i}]"
        for key, values in check.mapping(where, grid).items():
            check.key(where, key)
            for j, value in enumerate(check.nonempty_list(f"{where}.{key}", values)):
                check.value(f"{where}.{key}[{j}]", key, value)
            if key in fixed:
                check.fail(f"{where}.{key}", "also set in 'fixed'; set it in one place")
        grids.append(grid)
    budgets = check.mapping("budgets", raw.get("budgets") or {})
    for name, budget in budgets.items():
        _check_budget(check, f"budgets.{name}", budget if budget is not None else {})
    return Spec(
        path,
        raw["name"],
        str(raw.get("description") or ""),
        tuple(grids),
        fixed,
        {str(k): v or {} for k, v in budgets.items()},
    )


def _check_budget(check: _Checker, where: str, budget) -> None:
    check.mapping(where, budget, CONFIG_FIELDS + BUDGET_KEYS)
    check.fields(where, {k: v for k, v in budget.items() if k not in BUDGET_KEYS})
    for i, case in enumerate(check.nonempty_list(f"{where}.cases", budget.get("cases", [{"when": {}, "set": {}}]))):
        check.mapping(f"{where}.cases[{i}]", case, CASE_KEYS)
        for key in CASE_KEYS:
            check.fields(f"{where}.cases[{i}].{key}", case.get(key, {}))
    for source, target in check.mapping(f"{where}.datasets", budget.get("datasets", {})).items():
        check.value(f"{where}.datasets.{source}", "dataset", source)
        check.value(f"{where}.datasets.{source}", "dataset", target)
    for key, values in check.mapping(f"{where}.only", budget.get("only", {})).items():
        check.key(f"{where}.only", key)
        for j, value in enumerate(check.nonempty_list(f"{where}.only.{key}", values)):
            check.value(f"{where}.only.{key}[{j}]", key, value)


def normalize(values: dict[str, Any]) -> dict[str, Any]:
    """Reset the fields irrelevant to the run's method to their defaults."""
    method = values.get("method", DEFAULTS.method)
    return {k: (getattr(DEFAULTS, k) if method not in RELEVANT.get(k, (method,)) else v) for k, v in values.items()}


def expand(spec: Spec, budget: str) -> list[Run]:
    """The runs of ``spec`` under ``budget``, in spec order, deduplicated, with unique ids.

    Each run's settings: ``fixed``, then the grid point, then the budget (``datasets``
    replacement, its fields, the ``set`` of each matching case), then :func:`normalize`;
    ``only`` filters.
    """
    if budget not in spec.budgets:
        raise ValueError(
            f"{spec.path}: budgets: no budget {budget!r}; this spec has: {', '.join(spec.budgets) or 'none'}"
        )
    b = spec.budgets[budget]
    overrides = {k: v for k, v in b.items() if k not in BUDGET_KEYS}
    configs: dict[TrainConfig, None] = {}  # ordered set
    for i, grid in enumerate(spec.grids):
        keys = list(grid)
        for point in itertools.product(*(grid[k] for k in keys)):
            values = {**spec.fixed, **dict(zip(keys, point))}
            dataset = b.get("datasets", {}).get(values.get("dataset", DEFAULTS.dataset))
            if dataset is not None:
                values["dataset"] = dataset
            values.update(overrides)
            for case in b.get("cases", []):
                if all(values.get(k, getattr(DEFAULTS, k)) == v for k, v in case.get("when", {}).items()):
                    values.update(case.get("set", {}))
            try:
                config = TrainConfig.from_dict(normalize(values))
            except ValueError as e:  # fields are checked one by one on loading; this is a safety net
                raise ValueError(f"{spec.path}: grids[{i}] {dict(zip(keys, point))}: {e}") from None
            if all(getattr(config, k) in allowed for k, allowed in b.get("only", {}).items()):
                configs[config] = None
    return _with_ids(list(configs))


def _fmt(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def readable_id(config: TrainConfig) -> str:
    """``dataset-model-method[-method settings]-s<seed>``, e.g. ``mnist-lenet-nm-b0.5-gaussian-s0``."""
    parts = [config.dataset, config.model, config.method]
    if config.method == "nm":
        parts += (
            [f"b{_fmt(config.beta)}", config.noise]
            + (["after-norm"] if config.modulate_after_norm else [])
            + (["fused"] if config.fused_noise else [])
        )
    if config.method in ("pgd", "fgsm"):
        parts += [f"{k}{_fmt(getattr(config, k))}" for k in ("eps", "alpha", "steps") if getattr(config, k) is not None]
        parts += ["l2"] if config.norm == "l2" else []
    if config.method == "igr":
        parts.append(f"lambda{_fmt(config.igr_lambda)}")
    parts.append(f"s{config.seed}")
    return re.sub(r"[^\w.-]", "_", "-".join(parts))


def config_hash(config: TrainConfig) -> str:
    """Six hex digits of a hash of the config without :data:`~noisemod.config.RUNTIME_FIELDS`."""
    values = {k: v for k, v in config.to_dict().items() if k not in RUNTIME_FIELDS}
    return hashlib.sha1(json.dumps(values, sort_keys=True).encode()).hexdigest()[:6]


def _with_ids(configs: list[TrainConfig]) -> list[Run]:
    """Readable ids; where several configs share one (they differ in e.g. lr), a hash suffix."""
    ids = [readable_id(c) for c in configs]
    shared = {i for i in ids if ids.count(i) > 1}
    return [Run(f"{i}-{config_hash(c)}" if i in shared else i, c) for i, c in zip(ids, configs)]
