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
each run is built as a :class:`~noisemod.config.TrainConfig`. The method settings a run's method
does not use (its registered definition says which it does) are reset to their defaults, and
runs with the same :func:`~noisemod.config.identity` are one run. Runtime settings (``device``,
``compile``, ...) do not tell runs apart, so a grid cannot vary them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import (
    ConfigError,
    TrainConfig,
    field_names,
    get_setting,
    hash_values,
    identity,
    run_id_parts,
    settings,
)
from ..io import YamlFile, read_yaml
from ..methods import get_method

__all__ = ["Run", "Spec", "config_hash", "expand", "load_spec", "readable_id"]

SPEC_KEYS = (
    "name",
    "description",
    "grids",
    "fixed",
    "budgets",
    "interpretability",
    "robustness",
    "randomization",
    "yardsticks",
)
INTERPRETABILITY_KEYS = ("metrics", "explainers", "n", "floor", "only", "score_sigma")
ROBUSTNESS_KEYS = ("images", "only")
RANDOMIZATION_KEYS = ("images", "explainers", "only")
YARDSTICKS_KEYS = ("images", "only")
BUDGET_KEYS = ("datasets", "cases", "only")
CASE_KEYS = ("when", "set")
DEFAULTS = TrainConfig()


@dataclass(frozen=True)
class Spec:
    """A parsed, validated spec file."""

    path: Path
    name: str
    description: str
    grids: tuple[dict[str, list], ...]
    fixed: dict[str, Any]
    budgets: dict[str, dict[str, Any]]
    interpretability: dict[str, Any] | None = None  # metrics, explainers, n, floor: computed after training
    robustness: dict[str, Any] | None = None  # images, only: PGD-50 at the dataset's radii, after training
    randomization: dict[str, Any] | None = None  # images, explainers, only: the cascading test, after training
    yardsticks: dict[str, Any] | None = None  # images, only: every yardstick and its floor, after training


@dataclass(frozen=True)
class Run:
    """One run of a sweep: a readable, unique id and its resolved config."""

    run_id: str
    config: TrainConfig


class _Checker:
    """Raises ``ValueError("<file>, line <n>: <where>: <problem>")`` for one spec file (the line of
    the part at ``where`` when the file's :class:`~noisemod.io.YamlFile` is given)."""

    def __init__(self, path: Path, doc: YamlFile | None = None):
        self.path, self.doc = path, doc

    def fail(self, where: str, problem: str):
        raise ValueError(f"{self.doc.where(where) if self.doc is not None else self.path}: {where}: {problem}")

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
        if key not in field_names():
            self.fail(where, f"unknown TrainConfig field {key!r}; valid fields: {', '.join(field_names())}")

    def value(self, where: str, key: str, value) -> None:
        """``value``, written at ``where``, must be a valid value of the TrainConfig field ``key``."""
        try:
            get_setting(key).validate(value)
        except ConfigError as e:
            hint = ""
            if isinstance(value, str) and re.fullmatch(r"[-+]?\d+(\.\d*)?[eE][-+]?\d+", value):
                hint = " (YAML reads 1e-3 as a string: write 0.001 or 1.0e-3)"
            self.fail(where, f"{e}{hint}")

    def fields(self, where: str, values) -> dict:
        for key, value in self.mapping(where, values).items():
            self.key(where, key)
            self.value(f"{where}.{key}", key, value)
        return values


def load_spec(path) -> Spec:
    """Read and validate a spec file (``yaml.safe_load``); errors name the file, the line and the key."""
    path = Path(path)
    doc = read_yaml(path)  # not valid YAML: a CorruptFileError (a ValueError) naming the file and the line
    raw = doc.value
    check = _Checker(path, doc)
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
            if get_setting(key).runtime:
                check.fail(
                    f"{where}.{key}",
                    "a runtime setting does not change what a run computes, so it cannot tell runs apart: "
                    "set it in 'fixed' or in a budget",
                )
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
        _check_interpretability(check, raw.get("interpretability")),
        _check_robustness(check, raw.get("robustness")),
        _check_randomization(check, raw.get("randomization")),
        _check_yardsticks(check, raw.get("yardsticks")),
    )


def _check_only(check: _Checker, where: str, only) -> None:
    for key, allowed in check.mapping(where, only).items():
        check.key(where, key)
        for j, value in enumerate(check.nonempty_list(f"{where}.{key}", allowed)):
            check.value(f"{where}.{key}[{j}]", key, value)


def _check_robustness(check: _Checker, section) -> dict[str, Any] | None:
    """``robustness: {images: N, only: {...}}``: PGD-50 (Linf, random start) on the first N test images
    (default 1000) at each radius the run's dataset declares (:func:`noisemod.attacks.robustness_eps`),
    after training, for every finished run (or those ``only`` lists)."""
    return _check_images_section(check, "robustness", section, ROBUSTNESS_KEYS, 1000)


def _check_yardsticks(check: _Checker, section) -> dict[str, Any] | None:
    """``yardsticks: {images: N, only: {...}}``: every yardstick of the metrics' validation and its floor
    (``noisemod evaluate --yardsticks``) on the first N test images (default 500), after training,
    for every finished run (or those ``only`` lists)."""
    return _check_images_section(check, "yardsticks", section, YARDSTICKS_KEYS, 500)


def _check_images_section(check: _Checker, name: str, section, keys, images: int) -> dict[str, Any] | None:
    """A section of the form ``{images: N, only: {...}}`` (``images`` defaulting to ``images``), or None."""
    if section is None:
        return None
    check.mapping(name, section, keys)
    values = {"images": images, "only": {}, **section}
    _check_only(check, f"{name}.only", values["only"])
    n = values["images"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        check.fail(f"{name}.images", f"expected a positive integer, got {n!r}")
    return values


def _check_randomization(check: _Checker, section) -> dict[str, Any] | None:
    """``randomization: {images: N, explainers: [...], only: {...}}``: the cascading model parameter
    randomization test (``noisemod evaluate --cascading``, signed and ``--absolute``) of each explainer
    (default: the gradient) on the first N test images (default 100), after training, for every
    finished run (or those ``only`` lists)."""
    if section is None:
        return None
    from ..explainers import EXPLAINERS

    check.mapping("randomization", section, RANDOMIZATION_KEYS)
    values = {"images": 100, "explainers": ["gradient"], "only": {}, **section}
    _check_only(check, "randomization.only", values["only"])
    for j, name in enumerate(check.nonempty_list("randomization.explainers", values["explainers"])):
        if name not in EXPLAINERS:
            check.fail(f"randomization.explainers[{j}]", f"unknown explainer {name!r}; known: {', '.join(EXPLAINERS)}")
    n = values["images"]
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        check.fail("randomization.images", f"expected a positive integer, got {n!r}")
    return values


def _check_interpretability(check: _Checker, section) -> dict[str, Any] | None:
    """``interpretability: {metrics: [...], explainers: [...], n: N, floor: true, only: {...},
    score_sigma: S}``: what the runner computes for every finished run (``noisemod evaluate
    --metrics``), or for the runs whose settings ``only`` lists (as a budget's ``only``); defaults:
    the default metrics (:func:`noisemod.metrics.default_metrics`) of the gradient on all test
    images, with the floor; ``score_sigma`` (``--score-sigma``): the score alignments' noise level."""
    if section is None:
        return None
    from ..explainers import EXPLAINERS
    from ..metrics import METRICS, default_metrics

    check.mapping("interpretability", section, INTERPRETABILITY_KEYS)
    values = {
        "metrics": default_metrics(),
        "explainers": ["gradient"],
        "n": None,
        "floor": True,
        "only": {},
        **section,
    }
    _check_only(check, "interpretability.only", values["only"])
    for key, known in (("metrics", METRICS), ("explainers", EXPLAINERS)):
        for j, name in enumerate(check.nonempty_list(f"interpretability.{key}", values[key])):
            if name not in known:
                check.fail(f"interpretability.{key}[{j}]", f"unknown {key[:-1]} {name!r}; known: {', '.join(known)}")
    n = values["n"]
    if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
        check.fail("interpretability.n", f"expected a positive integer, got {n!r}")
    if not isinstance(values["floor"], bool):
        check.fail("interpretability.floor", f"expected true or false, got {values['floor']!r}")
    sigma = values.get("score_sigma")  # absent: the default; kept out of the settings of specs without it
    if sigma is not None and (isinstance(sigma, bool) or not isinstance(sigma, int | float) or not sigma > 0):
        check.fail("interpretability.score_sigma", f"expected a positive number, got {sigma!r}")
    return values


def _check_budget(check: _Checker, where: str, budget) -> None:
    check.mapping(where, budget, field_names() + BUDGET_KEYS)
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


def interpreted(spec: Spec, config: TrainConfig) -> bool:
    """Whether the spec's interpretability section applies to a run."""
    return _applies(spec.interpretability, config)


def robustness_for(spec: Spec, config: TrainConfig) -> dict[str, Any] | None:
    """The robust evaluations the spec asks of a run: ``{"eps": [...], "images": N}`` (the radii its
    dataset declares), or None."""
    from ..attacks import robustness_eps

    section = spec.robustness
    if not _applies(section, config):
        return None
    return {"eps": list(robustness_eps(config.dataset)), "images": section["images"]}


def randomization_for(spec: Spec, config: TrainConfig) -> dict[str, Any] | None:
    """The randomization tests the spec asks of a run: ``{"images": N, "explainers": [...]}``, or None."""
    section = spec.randomization
    return {"images": section["images"], "explainers": section["explainers"]} if _applies(section, config) else None


def yardsticks_for(spec: Spec, config: TrainConfig) -> dict[str, Any] | None:
    """The yardsticks the spec asks of a run: ``{"images": N}``, or None."""
    return {"images": spec.yardsticks["images"]} if _applies(spec.yardsticks, config) else None


def _applies(section: dict | None, config: TrainConfig) -> bool:
    """Whether a section of the spec (with its ``only``) applies to a run."""
    return section is not None and all(getattr(config, k) in v for k, v in section["only"].items())


def normalize(values: dict[str, Any]) -> dict[str, Any]:
    """Reset the method settings that the run's method does not use to their defaults."""
    used = get_method(values.get("method", DEFAULTS.method)).settings
    method_settings = {s.name for s in settings() if s.method}
    return {k: getattr(DEFAULTS, k) if k in method_settings and k not in used else v for k, v in values.items()}


def expand(spec: Spec, budget: str) -> list[Run]:
    """The runs of ``spec`` under ``budget``, in spec order, deduplicated, with unique ids.

    Each run's settings: ``fixed``, then the grid point, then the budget (``datasets``
    replacement, its fields, the ``set`` of each matching case), then :func:`normalize`;
    ``only`` filters. Runs with the same :func:`~noisemod.config.identity` are one run; if
    they disagree on a runtime setting, that is an error naming it.
    """
    if budget not in spec.budgets:
        raise ValueError(
            f"{spec.path}: budgets: no budget {budget!r}; this spec has: {', '.join(spec.budgets) or 'none'}"
        )
    b = spec.budgets[budget]
    overrides = {k: v for k, v in b.items() if k not in BUDGET_KEYS}
    runs: dict[str, TrainConfig] = {}  # identity (as JSON) -> config, in order
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
            where = f"{spec.path}: grids[{i}] {dict(zip(keys, point))}"
            try:
                config = TrainConfig.from_dict(normalize(values))
            except ValueError as e:  # fields are checked one by one on loading; this is a safety net
                raise ValueError(f"{where}: {e}") from None
            if not all(getattr(config, k) in allowed for k, allowed in b.get("only", {}).items()):
                continue
            key = json.dumps(identity(config), sort_keys=True)
            seen = runs.setdefault(key, config)
            if seen != config:
                diff = ", ".join(f"{k} {getattr(seen, k)!r} and {v!r}" for k, v in _runtime_diff(seen, config))
                raise ValueError(f"{where}: the same run as an earlier one but with other runtime settings ({diff})")
    return _with_ids(list(runs.values()))


def _runtime_diff(a: TrainConfig, b: TrainConfig) -> list[tuple[str, Any]]:
    return [(s.name, getattr(b, s.name)) for s in settings() if s.runtime and getattr(a, s.name) != getattr(b, s.name)]


def readable_id(config: TrainConfig) -> str:
    """``dataset-model-<method part>-s<seed>``, e.g. ``mnist-lenet-nm-b0.5-gaussian-s0``; the method
    part is the method's tag and its settings' tags (:func:`~noisemod.config.run_id_parts`), then
    ``shuffled-labels`` for a run on shuffled labels."""
    labels = ["shuffled-labels"] if config.shuffle_labels else []
    parts = [config.dataset, config.model, *run_id_parts(config), *labels, f"s{config.seed}"]
    return re.sub(r"[^\w.-]", "_", "-".join(parts))


def config_hash(config: TrainConfig) -> str:
    """Six hex digits of a hash of what the run computes (:func:`~noisemod.config.hash_values`)."""
    return hashlib.sha1(json.dumps(hash_values(config), sort_keys=True).encode()).hexdigest()[:6]


def _with_ids(configs: list[TrainConfig]) -> list[Run]:
    """Readable ids; where several configs share one (they differ in e.g. lr), a hash suffix."""
    ids = [readable_id(c) for c in configs]
    shared = {i for i in ids if ids.count(i) > 1}
    return [Run(f"{i}-{config_hash(c)}" if i in shared else i, c) for i, c in zip(ids, configs)]
