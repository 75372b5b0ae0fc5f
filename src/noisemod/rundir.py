"""The run directory and the sweep folder: their layout, and the only code that names their files.

A run directory (written by :func:`noisemod.fit`)::

    config.json      the resolved TrainConfig (settings live here and only here)
    metrics.csv      one row per epoch (:data:`METRIC_FIELDS`)
    last.pt          everything needed to resume (model, optimizer, scheduler, RNG states, progress)
    best.pt          the model with the best validation accuracy, with its config and model spec
    result.json      results only (:data:`RESULT_FIELDS`): test accuracy, VII, timings, versions
    evaluation.json  the last ``noisemod evaluate``
    interpretability.json, robustness.json, yardsticks.json  what ``noisemod evaluate`` measured after training
    timings.json     in a sweep: the wall seconds of each step's processes (:meth:`RunDir.read_timings`)
    error.log        why the run failed, when a sweep ran it
    gradients.png    ``noisemod explain``'s default output

A sweep folder (written by :func:`noisemod.experiments.run_sweep`)::

    sweep.json       spec name, budget, run ids, the command that reproduces the sweep
    results.csv      one row per finished run: run_id, spec, budget, status, every setting, every result
    runs/<run_id>/   a run directory
    figures/, report.html, report.md

Every file is written atomically; checkpoints load with ``torch.load(weights_only=True)``. A file
that exists but cannot be read is an error naming it. Reading a finished run needs only this
module, the config and the model zoo, not the trainer.
"""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .config import TrainConfig, field_names, settings
from .io import CorruptFileError, atomic_write, load_checkpoint, read_json, save_checkpoint, write_json

__all__ = [
    "METRIC_FIELDS",
    "METRIC_TIMES",
    "RESULT_FIELDS",
    "ROW_FIELDS",
    "RunDir",
    "RunDirError",
    "SweepDir",
    "load_model",
]

CHECKPOINT_FORMAT = "noisemod-checkpoint/1"

#: metrics.csv: one row per epoch; after these, ``val_vii`` (VII of 256 validation images spread over the
#: split, x_bar their mean; runs with a validation split, from this column's introduction on) and a
#: method's columns (adversarial training: ``attack_eps``, the eps at the epoch's last step, and
#: ``probe_robust_accuracy``).
METRIC_FIELDS = ("epoch", "train_loss", "train_accuracy", "val_accuracy", "seconds", "samples_per_s", "lr")
#: metrics.csv's columns that time an epoch (the only ones that differ between two identical runs)
METRIC_TIMES = ("seconds", "samples_per_s", "end_seconds")

#: result.json: name -> (type, meaning). No name is also a setting's: settings are in config.json.
RESULT_FIELDS: dict[str, tuple[type, str]] = {
    "test_accuracy": (float, "accuracy of best.pt on the test set"),
    "vii": (float, "VII (Definition 3) of best.pt on the test set, x_bar the mean test image"),
    "val_accuracy": (float, "validation accuracy of best.pt (NaN without a validation split)"),
    "best_epoch": (int, "the epoch of best.pt"),
    "best_eligible": (
        bool,
        "whether best.pt's epoch ended at the method's full strength (False only when every epoch was in the eps "
        "warm-up or the run stopped inside it); runs before this field chose best.pt among warm-up epochs too",
    ),
    "train_seconds": (float, "seconds spent in training epochs (not evaluation, not the one-time costs below)"),
    "setup_seconds": (float, "one-time: loading (and caching) the data, building the model, method and optimizer"),
    "compile_seconds": (float, "one-time: compiling the trained module and the fused noise kernel (a warm-up step)"),
    "train_images": (int, "training images used (train_size, or the whole training split)"),
    "robust_accuracy": (
        float,
        "accuracy of best.pt under attack (robust_attack) on the first robust_images test images",
    ),
    "robust_attack": (dict, "the attack of robust_accuracy: method, eps, alpha, steps, norm, images"),
    "stopped_epoch": (int, "the epoch after which training stopped early (early_stop), when it did"),
    "stop_reason": (str, "why training stopped early"),
    "train_device": (str, "the device the run trained on"),
    "world_size": (int, "processes (torchrun)"),
    "git_sha": (str, "commit of the noisemod source tree, when it is a git checkout"),
    "versions": (dict, "noisemod, torch, torchvision, numpy and python versions"),
}
# result.json before 0.1.0's architecture change repeated settings and named two results like settings
_OLD_RESULT_NAMES = {"train_size": "train_images", "device": "train_device"}

#: results.csv: the columns before the settings and the results.
ROW_FIELDS: dict[str, tuple[type, str]] = {
    "run_id": (str, "the run's directory name under runs/"),
    "spec": (str, "the spec's name"),
    "budget": (str, "the budget the sweep ran"),
    "status": (str, "completed or failed"),
}
FIRST_RESULTS = ("test_accuracy", "vii", "val_accuracy", "best_epoch", "train_seconds")


class RunDirError(ValueError):
    """The run directory cannot be used as asked (exists already, or is not a run)."""


def results_only(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without settings, with the result names of today (reads result.json files and
    results.csv rows written before settings left result.json)."""
    names = set(field_names())
    out = {}
    for key, value in result.items():
        key = _OLD_RESULT_NAMES.get(key, key)
        if key not in names:
            out[key] = value
    return out


_REQUIRED = object()


def _read_object(path: Path, what: str, missing: Any = _REQUIRED) -> dict[str, Any]:
    """The JSON object in ``path``; ``missing`` when the file does not exist (when given). A file
    that is not valid JSON, or not an object, raises :class:`CorruptFileError` saying it should hold ``what``."""
    if missing is not _REQUIRED and not path.is_file():
        return missing
    value = read_json(path)
    if not isinstance(value, dict):
        raise CorruptFileError(f"{path} does not hold {what}")
    return value


class _Folder:
    """A folder whose files are named by its class's constants: ``folder.file(folder.CONFIG)``."""

    def __init__(self, path):
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.path == self.path

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.path))

    def file(self, name: str) -> Path:
        return self.path / name


class RunDir(_Folder):
    """One run directory: ``RunDir(path).read_config()``, ``.read_result()``, ``.load_model()``, ..."""

    CONFIG, METRICS, LAST, BEST = "config.json", "metrics.csv", "last.pt", "best.pt"
    RESULT, EVALUATION, ERROR_LOG, GRADIENTS = "result.json", "evaluation.json", "error.log", "gradients.png"
    INTERPRETABILITY, TENSORBOARD, ROBUSTNESS = "interpretability.json", "tensorboard", "robustness.json"
    YARDSTICKS, TIMINGS = "yardsticks.json", "timings.json"
    MEAN_OF = "test set"  # the x_bar of interpretability.json's scores (see has_interpretability)

    # -- state

    def is_complete(self) -> bool:
        """Finished: its result is written."""
        return self.file(self.RESULT).is_file()

    def has_checkpoint(self) -> bool:
        return self.file(self.LAST).is_file()

    def clear_outputs(self) -> None:
        """Remove what training and the measurements after it wrote, keeping config.json: the run
        is new again (to be trained afresh with the same settings)."""
        outputs = (self.RESULT, self.METRICS, self.EVALUATION, self.ERROR_LOG, self.GRADIENTS, self.LAST, self.BEST)
        for name in (*outputs, self.INTERPRETABILITY, self.ROBUSTNESS, self.YARDSTICKS, self.TIMINGS):
            self.file(name).unlink(missing_ok=True)
        shutil.rmtree(self.file(self.TENSORBOARD), ignore_errors=True)

    def status(self) -> str:
        """``complete`` (result.json), ``interrupted`` (last.pt, no result.json) or ``new``."""
        if self.is_complete():
            return "complete"
        return "interrupted" if self.has_checkpoint() else "new"

    # -- config and results

    def read_config(self) -> TrainConfig:
        """The TrainConfig the run was trained with; a setting added since takes its default."""
        path = self.file(self.CONFIG)
        if not path.is_file():
            raise RunDirError(f"{self.path} is not a noisemod run directory: {path} is missing")
        values = _read_object(path, "a config (a JSON object of settings)")
        try:
            return TrainConfig.from_dict(values, saved=True)
        except ValueError as e:
            raise CorruptFileError(f"{path}: {e}") from None

    def write_config(self, config: TrainConfig) -> Path:
        return write_json(self.file(self.CONFIG), config.to_dict())

    def read_result(self) -> dict[str, Any]:
        """result.json's results (older files: without their copies of the settings)."""
        path = self.file(self.RESULT)
        if not path.is_file():
            raise RunDirError(f"{self.path} is not a finished noisemod run: {path} is missing")
        return results_only(_read_object(path, "a result (a JSON object)"))

    def write_result(self, result: dict[str, Any]) -> Path:
        unknown = sorted(set(result) - set(RESULT_FIELDS))
        if unknown:
            raise ValueError(f"result fields {', '.join(unknown)} are not described in RESULT_FIELDS")
        return write_json(self.file(self.RESULT), result)

    def write_evaluation(self, evaluation: dict[str, Any]) -> Path:
        return write_json(self.file(self.EVALUATION), evaluation)

    def read_interpretability(self) -> dict[str, dict]:
        """interpretability.json: explainer name -> its last evaluation (settings and scores); ``{}`` if absent."""
        return _read_object(self.file(self.INTERPRETABILITY), "interpretability results (a JSON object)", {})

    def write_interpretability(self, explainer: str, entry: dict[str, Any]) -> Path:
        """Set one explainer's entry in interpretability.json, keeping the others'."""
        return write_json(self.file(self.INTERPRETABILITY), {**self.read_interpretability(), explainer: entry})

    @staticmethod
    def cascading_key(explainer: str, absolute: bool) -> str:
        """interpretability.json's key of a cascading randomization test (signed or of absolute values)."""
        return f"{explainer}/cascading" + ("-absolute" if absolute else "")

    def has_cascading(self, explainer: str, *, absolute: bool, n: int) -> bool:
        """Whether interpretability.json holds this randomization test of ``explainer`` on the first ``n`` images."""
        return self.read_interpretability().get(self.cascading_key(explainer, absolute), {}).get("n") == n

    def has_interpretability(
        self, explainer: str, *, metrics, n: int | None, floor: bool, score_sigma: float | None = None
    ) -> bool:
        """Whether interpretability.json already holds these metrics of ``explainer`` on the same images,
        with ``x_bar`` the test set's mean (entries without ``"mean"`` used the mean of the ``n``
        images scored, before 2026-12-01, and are computed again), and for a score alignment at
        ``score_sigma`` (None: the default, :data:`noisemod.denoiser.DEFAULT_SCORE_SIGMA`)."""
        entry = self.read_interpretability().get(explainer)
        return (
            entry is not None
            and entry.get("mean") == self.MEAN_OF
            and entry.get("n_requested") == n
            and (entry.get("floor") or not floor)
            and set(metrics) <= set(entry.get("metrics", ()))
            and _same_score_sigma(entry, metrics, score_sigma)
        )

    def interpretability_columns(self) -> dict[str, float]:
        """interpretability.json as results.csv columns: ``<explainer>_<metric>`` (and ``_floor``) and
        ``<explainer>_ms_per_image``."""
        out = {}
        for explainer, entry in self.read_interpretability().items():
            if "scores" not in entry:  # e.g. a cascading randomization: layers, not scores
                continue
            out.update({interpretability_column(explainer, k): v for k, v in entry["scores"].items()})
            out[interpretability_column(explainer, "ms_per_image")] = entry.get("ms_per_image")
        return out

    def read_robustness(self) -> dict[str, dict]:
        """robustness.json: one entry per attack after training (``robust_accuracy``, ``robust_attack``); ``{}``."""
        return _read_object(self.file(self.ROBUSTNESS), "robustness results (a JSON object)", {})

    def write_robustness(self, evaluation: dict[str, Any]) -> Path:
        """Add (or replace) the entry of one robust evaluation (``robust_accuracy``, ``robust_attack``)."""
        attack = evaluation["robust_attack"]
        entry = {"robust_accuracy": evaluation["robust_accuracy"], "robust_attack": attack}
        return write_json(self.file(self.ROBUSTNESS), {**self.read_robustness(), robustness_key(attack): entry})

    def has_robustness(self, eps: float, images: int, norm: str = "linf") -> bool:
        """Whether robustness.json holds the attack at ``eps`` on ``images`` test images."""
        return robustness_key({"eps": eps, "images": images, "norm": norm}) in self.read_robustness()

    def read_yardsticks(self) -> dict[str, Any]:
        """yardsticks.json: ``{"n", "seed", "denoiser", "values": {name: value, name_floor: value}}``, or {}."""
        return _read_object(self.file(self.YARDSTICKS), "yardstick values (a JSON object)", {})

    def write_yardsticks(self, entry: dict[str, Any]) -> Path:
        """Replace yardsticks.json with ``entry`` (every yardstick measured at once)."""
        return write_json(self.file(self.YARDSTICKS), entry)

    def has_yardsticks(self, n: int, names: Iterable[str]) -> bool:
        """Whether yardsticks.json holds every yardstick of ``names`` measured on ``n`` test images."""
        entry = self.read_yardsticks()
        return entry.get("n") == n and set(names) <= set(entry.get("values", {}))

    def read_timings(self) -> dict[str, float]:
        """timings.json: step -> wall seconds of the sweep's processes for this run (``train``, the
        training process whole; ``interpretability``, ``robustness``, ``randomization``,
        ``yardsticks``: the measurements after it, each summed over its processes); ``{}`` if absent."""
        return _read_object(self.file(self.TIMINGS), "step timings (a JSON object)", {})

    def add_timing(self, step: str, seconds: float) -> Path:
        """Add ``seconds`` to ``step`` in timings.json."""
        timings = self.read_timings()
        return write_json(self.file(self.TIMINGS), {**timings, step: timings.get(step, 0.0) + seconds})

    def robustness_columns(self) -> dict[str, float]:
        """robustness.json as results.csv columns: ``robust_accuracy_eps<eps>`` (Linf)."""
        return {
            robustness_column(e["robust_attack"]["eps"]): e["robust_accuracy"]
            for e in self.read_robustness().values()
            if e["robust_attack"].get("norm") == "linf"
        }

    # -- metrics

    def read_metrics(self) -> list[dict[str, float | None]]:
        """metrics.csv's rows: numbers, None for an empty cell (a column some epochs lack)."""
        path = self.file(self.METRICS)
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))

        def number(k, v):
            return None if v in (None, "") else int(v) if k == "epoch" else float(v)

        try:
            return [{k: number(k, v) for k, v in row.items()} for row in rows]
        except (TypeError, ValueError) as e:
            raise CorruptFileError(f"{path} is not a metrics table: {e}") from None

    def write_metrics(self, rows: list[dict]) -> Path:
        extra = sorted({k for row in rows for k in row} - set(METRIC_FIELDS))

        def write(f):
            w = csv.DictWriter(f, fieldnames=[*METRIC_FIELDS, *extra])
            w.writeheader()
            w.writerows(rows)

        return atomic_write(self.file(self.METRICS), write, "w")

    # -- checkpoints

    def read_checkpoint(self, which: str = "last") -> dict:
        """``last.pt`` or ``best.pt`` (``which``: ``"last"`` or ``"best"``), safely."""
        return load_checkpoint(self._checkpoint(which))

    def write_checkpoint(self, which: str, record: dict) -> Path:
        return save_checkpoint(record, self._checkpoint(which))

    def _checkpoint(self, which: str) -> Path:
        if which not in ("last", "best"):
            raise ValueError(f"checkpoint must be 'last' or 'best', got {which!r}")
        return self.file(self.LAST if which == "last" else self.BEST)

    @staticmethod
    def model_record(config: TrainConfig, model, epoch: int, val_accuracy: float) -> dict:
        """A checkpoint that rebuilds its model alone: format, config, model spec, weights, epoch."""
        return {
            "format": CHECKPOINT_FORMAT,
            "config": config.to_dict(),
            "model_spec": model.spec,
            "model": model.state_dict(),
            "epoch": epoch,
            "val_accuracy": val_accuracy,
        }

    def load_model(self, *, checkpoint: str = "best", device=None):
        """The model of ``best.pt`` (or ``last.pt``), in eval mode, taking inputs in [0, 1]."""
        from .models import create_model

        path = self._checkpoint(checkpoint)
        if not path.is_file():
            raise RunDirError(f"{self.path} is not a finished noisemod run: {path} is missing")
        ckpt = load_checkpoint(path)
        model = create_model(**ckpt["model_spec"])
        model.load_state_dict(ckpt["model"])
        return model.to(device or "cpu").eval()

    # -- a sweep's view

    def write_error_log(self, text: str) -> Path:
        return atomic_write(self.file(self.ERROR_LOG), lambda f: f.write(text), "w")

    def clear_error_log(self) -> None:
        self.file(self.ERROR_LOG).unlink(missing_ok=True)

    def has_error_log(self) -> bool:
        return self.file(self.ERROR_LOG).is_file()


def robustness_key(attack: dict) -> str:
    """robustness.json's key of one attack: ``pgd-linf-eps0.1-n1000``."""
    return f"pgd-{attack.get('norm', 'linf')}-eps{float(attack['eps']):g}-n{attack['images']}"


def robustness_column(eps: float) -> str:
    """The results.csv column of the robust accuracy at ``eps`` (Linf), e.g. ``robust_accuracy_eps0.1``."""
    return f"robust_accuracy_eps{float(eps):g}"


def interpretability_column(explainer: str, score: str) -> str:
    """The results.csv column of one interpretability score, e.g. ``smoothgrad_deletion_floor``."""
    return f"{explainer}_{score}"


def _interpretability_types() -> dict[str, type]:
    from .explainers import EXPLAINERS
    from .metrics import METRICS

    scores = [*METRICS, *(m + "_floor" for m in METRICS), "ms_per_image"]
    return {interpretability_column(e, s): float for e in EXPLAINERS for s in scores}


def load_model(run_dir, *, checkpoint: str = "best", device=None):
    """The model of a run directory (its best checkpoint by default), in eval mode, taking inputs
    in [0, 1]. Needs nothing but the run directory and the library: not the trainer."""
    return RunDir(run_dir).load_model(checkpoint=checkpoint, device=device)


def _parse(text: str, typ: type, path: Path, line: int, column: str):
    """One results.csv cell as ``typ``; '' is None. A cell that is not a ``typ`` names the file and the cell."""
    if text is None or text == "":
        return None
    try:
        if typ is bool:
            if text not in ("True", "False"):
                raise ValueError(f"expected True or False, got {text!r}")
            return text == "True"
        return typ(text)
    except (TypeError, ValueError) as e:
        raise CorruptFileError(f"{path}, line {line}, column {column}: {e}") from None


class SweepDir(_Folder):
    """One sweep folder: its runs, results table, sweep.json, figures and report."""

    RESULTS, SWEEP, RUNS, FIGURES = "results.csv", "sweep.json", "runs", "figures"
    REPORT_HTML, REPORT_MD, REPORT_JSON = "report.html", "report.md", "report.json"

    def run(self, run_id: str) -> RunDir:
        return RunDir(self.path / self.RUNS / str(run_id))

    @property
    def figures_dir(self) -> Path:
        return self.path / self.FIGURES

    # -- sweep.json

    def read_sweep(self) -> dict:
        """sweep.json (spec name, budget, run ids, reproduce command), ``{}`` if absent."""
        return _read_object(self.file(self.SWEEP), "a sweep's description (a JSON object)", {})

    def write_sweep(self, info: dict) -> Path:
        return write_json(self.file(self.SWEEP), info)

    @property
    def runs_dir(self) -> Path:
        return self.path / self.RUNS

    # -- results.csv

    def write_results(self, rows: list[dict]) -> Path:
        return write_results_table(self.file(self.RESULTS), rows)

    def read_results(self, *, completed_only: bool = True) -> list[dict]:
        return read_results_table(self.file(self.RESULTS), completed_only=completed_only)


def write_results_table(path, rows: list[dict]) -> Path:
    """The rows as CSV, atomically (a reader, or a crash, sees the old table or the new one):
    the row fields, every setting, the first results, then the other columns sorted."""
    head = [*ROW_FIELDS, *field_names()]
    rest = sorted({k for row in rows for k in row} - set(head) - set(FIRST_RESULTS))
    columns = head + [k for k in FIRST_RESULTS if any(k in row for row in rows)] + rest

    def write(f):
        w = csv.DictWriter(f, fieldnames=columns)
        w.writeheader()
        w.writerows(rows)

    return atomic_write(path, write, "w")


def read_results_table(path, *, completed_only: bool = True) -> list[dict]:
    """The rows of a results table, each value typed by its description (:data:`ROW_FIELDS`, the
    settings, :data:`RESULT_FIELDS`; a column none describes stays text). By default only
    completed runs. A missing file, one without a completed run, or a cell of the wrong type is
    an error naming the file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no results to report: {path} does not exist (run `noisemod sweep` first)")
    types = {k: t for k, (t, _) in ROW_FIELDS.items()}
    types.update({s.name: s.type for s in settings()})
    types.update({k: t for k, (t, _) in RESULT_FIELDS.items() if t is not dict})
    types.update(_interpretability_types())
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            raw, header = list(reader), reader.fieldnames or ()
    except (UnicodeDecodeError, csv.Error) as e:
        raise CorruptFileError(f"{path} is not a results table: {e}") from None
    names = _column_names(header)
    types.update({c: float for c in header if c.startswith(robustness_column(0).partition("eps")[0] + "eps")})
    rows = []
    for line, row in enumerate(raw, start=2):
        if None in row:  # more cells than the header has columns: a broken line
            raise CorruptFileError(f"{path}, line {line}: more cells than the header has columns")
        rows.append({names[k]: _parse(v, types.get(names[k], str), path, line, k) for k, v in row.items() if names[k]})
    done = [r for r in rows if r.get("status") in (None, "completed")]
    if not done:
        raise ValueError(f"no results to report: {path} has no completed runs")
    return done if completed_only else rows


def _column_names(columns) -> dict[str, str | None]:
    """Column -> today's name, None to drop. Tables written before settings left result.json have
    ``result_<name>`` columns: the two results named like settings get today's names, the copies
    of settings are dropped."""
    settings_ = set(field_names())
    out = {}
    for column in columns:
        name = column
        if column.startswith("result_") and column[len("result_") :] in settings_:
            name = _OLD_RESULT_NAMES.get(column[len("result_") :])
        out[column] = name
    return out


def _same_score_sigma(entry: dict, metrics, score_sigma: float | None) -> bool:
    """Whether an interpretability entry's score alignments (if asked) were computed at ``score_sigma``."""
    if not any(m.endswith("score_alignment") for m in metrics):
        return True
    from .denoiser import DEFAULT_SCORE_SIGMA

    return entry.get("score_sigma") == (DEFAULT_SCORE_SIGMA if score_sigma is None else float(score_sigma))
