"""One run of a sweep, wherever an executor runs it (:func:`run_task`): ``noisemod train --config``
in a child process, then a ``noisemod evaluate`` child process for each measurement the spec asks
for after training (:func:`noisemod.evaluation.evaluate_run` with the arguments of
:func:`evaluate_command`: each explainer's interpretability metrics, each robustness radius, each
randomization test).

Each run gets its settings as a file: ``runs/<run_id>/config.json`` is written first, and
``noisemod train --config runs/<run_id>/config.json --out runs/<run_id>`` reads it, so no setting is
re-serialized as a flag. A run decides whether it resumes where it executes (``last.pt`` without
``result.json``), so a task retried after its worker died continues the run instead of starting over.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from ..config import TrainConfig
from ..rundir import RunDir

__all__ = [
    "cascade_command",
    "evaluate_command",
    "interpret_command",
    "missing_explainers",
    "missing_post",
    "post_run",
    "robust_command",
    "run_task",
    "step_of",
    "train_command",
    "train_run",
    "yardsticks_command",
]


def train_command(config, run_dir, resume: bool) -> list[str]:
    """The ``noisemod train`` process of one run. It reads its settings from the run's config.json,
    which :func:`train_run` writes first from ``config``."""
    run = RunDir(run_dir)
    cmd = [sys.executable, "-m", "noisemod", "train", "--config", str(run.file(run.CONFIG)), "--out", str(run.path)]
    return [*cmd, "--quiet"] + (["--resume"] if resume else [])


def evaluate_command(run_dir, **options) -> list[str]:
    """The ``noisemod evaluate`` process that runs :func:`noisemod.evaluation.evaluate_run` on a
    finished run with these keyword arguments, each given as the option of the same name (True: the
    flag; False or None: left out; a list: comma-separated; a float: its repr, which reads back exactly),
    quietly, printing JSON."""
    cmd = [sys.executable, "-m", "noisemod", "evaluate", str(run_dir)]
    for name, value in options.items():
        if value is None or value is False:
            continue
        cmd.append("--" + name.replace("_", "-"))
        if value is not True:
            text = (
                ",".join(value)
                if isinstance(value, (list, tuple))
                else repr(value)
                if isinstance(value, float)
                else value
            )
            cmd.append(str(text))
    return cmd + ["--json", "--quiet"]


def interpret_command(run_dir, explainer: str, settings: dict) -> list[str]:
    """The ``noisemod evaluate --metrics`` process that adds one explainer's scores to a finished run."""
    sigma = settings.get("score_sigma")
    if not any(m.endswith("score_alignment") for m in settings["metrics"]):
        sigma = None
    return evaluate_command(
        run_dir,
        metrics=list(settings["metrics"]),
        explainer=explainer,
        floor=settings["floor"],
        n=settings["n"],
        score_sigma=None if sigma is None else float(sigma),
    )


def robust_command(run_dir, eps: float, images: int) -> list[str]:
    """The ``noisemod evaluate --robust`` process that adds one radius to the run's robustness.json."""
    return evaluate_command(run_dir, robust=True, eps=float(eps), robust_images=images)


def cascade_command(run_dir, explainer: str, absolute: bool, images: int) -> list[str]:
    """The ``noisemod evaluate --cascading`` process that adds one randomization test to interpretability.json."""
    return evaluate_command(run_dir, cascading=True, explainer=explainer, n=images, absolute=absolute)


def yardsticks_command(run_dir, images: int) -> list[str]:
    """The ``noisemod evaluate --yardsticks`` process that writes the run's yardsticks.json."""
    return evaluate_command(run_dir, yardsticks=True, n=images)


def missing_post(run_dir: RunDir, post: dict | None) -> list[list[str]]:
    """The commands still to run after training (``post``: the spec's interpretability, robustness
    and randomization for this run), for what the run's files do not hold yet."""
    if post is None:
        return []
    commands = []
    if post.get("interpretability") is not None:
        settings = post["interpretability"]
        commands += [interpret_command(run_dir.path, e, settings) for e in missing_explainers(run_dir, settings)]
    if post.get("robustness") is not None:
        r = post["robustness"]
        commands += [
            robust_command(run_dir.path, e, r["images"]) for e in r["eps"] if not run_dir.has_robustness(e, r["images"])
        ]
    if post.get("randomization") is not None:
        r = post["randomization"]
        for explainer, absolute in itertools.product(r["explainers"], (False, True)):
            if not run_dir.has_cascading(explainer, absolute=absolute, n=r["images"]):
                commands.append(cascade_command(run_dir.path, explainer, absolute, r["images"]))
    if post.get("yardsticks") is not None:
        from ..metrics import yardsticks

        n = post["yardsticks"]["images"]
        if not run_dir.has_yardsticks(n, [s.name for s in yardsticks()]):
            commands.append(yardsticks_command(run_dir.path, n))
    return commands


def needs_retraining(run_dir: RunDir, post: dict | None) -> bool:
    """Whether a complete run must be trained again: the spec asks for measurements it lacks (e.g.
    yardsticks added to a spec after the run was archived) and its model (best.pt) is gone."""
    return run_dir.is_complete() and not run_dir.file(run_dir.BEST).is_file() and bool(missing_post(run_dir, post))


def missing_explainers(run_dir: RunDir, settings: dict) -> list[str]:
    """The spec's explainers whose metrics are not yet in the run's interpretability.json."""
    return [
        e
        for e in settings["explainers"]
        if not run_dir.has_interpretability(
            e,
            metrics=settings["metrics"],
            n=settings["n"],
            floor=settings["floor"],
            score_sigma=settings.get("score_sigma"),
        )
    ]


def _die_with_parent() -> None:
    """In a child process: get SIGKILL when the parent dies (Linux), so that a killed worker leaves
    no run training on, and the run resumes from its last checkpoint."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def child_process(command: list[str], env: dict) -> subprocess.CompletedProcess:
    """Run ``command`` to its end with ``env``, capturing its output; it dies with this process."""
    preexec = _die_with_parent if sys.platform.startswith("linux") else None
    return subprocess.run(command, env=env, capture_output=True, text=True, preexec_fn=preexec)


def _failed(run_dir: RunDir, proc: subprocess.CompletedProcess) -> None:
    tail = "\n".join((proc.stderr or proc.stdout or "").splitlines()[-40:])
    run_dir.write_error_log(f"exit status {proc.returncode}\n{shlex.join(proc.args)}\n{tail}\n")


#: the option of a ``noisemod evaluate`` command -> the step its time counts for in timings.json
STEPS = {"--yardsticks": "yardsticks", "--cascading": "randomization", "--robust": "robustness"}


def step_of(command: list[str]) -> str:
    """The step of timings.json a sweep's child process counts for: ``train`` for ``noisemod
    train``; for ``noisemod evaluate``, ``yardsticks``, ``randomization``, ``robustness`` or else
    ``interpretability``."""
    if "train" in command[:4]:
        return "train"
    return next((step for option, step in STEPS.items() if option in command), "interpretability")


def _timed(run_dir: RunDir, command: list[str], env: dict, child: Callable) -> subprocess.CompletedProcess:
    """``child(command, env)``, its wall time (process start, imports and data loading included)
    added to the run's timings.json under :func:`step_of` when it succeeds."""
    t0 = time.perf_counter()
    proc = child(command, env)
    if proc.returncode == 0:
        run_dir.add_timing(step_of(command), time.perf_counter() - t0)
    return proc


def train_run(config: TrainConfig, run_dir: RunDir, resume: bool, env: dict, child: Callable) -> tuple[bool, int]:
    """Train one run in its own process (``child(command, env)``); on failure its output's tail goes to error.log."""
    run_dir.clear_error_log()
    run_dir.write_config(config)  # the process reads its settings from here
    proc = _timed(run_dir, train_command(config, run_dir.path, resume), env, child)
    ok = proc.returncode == 0 and run_dir.is_complete()
    if not ok:
        _failed(run_dir, proc)
    return ok, proc.returncode


def post_run(run_dir: RunDir, post: dict | None, env: dict, child: Callable) -> tuple[bool, int]:
    """What the spec asks of a finished run after training (interpretability metrics of each
    explainer, robust accuracy at each radius), what is not done yet, one process each; on
    failure the output's tail goes to error.log."""
    for command in missing_post(run_dir, post):
        proc = _timed(run_dir, command, env, child)
        if proc.returncode != 0:
            _failed(run_dir, proc)
            return False, proc.returncode
    return True, 0


def run_task(config: dict, run_dir: str, post: dict | None, env: dict) -> tuple[bool, int, bool]:
    """One run of a sweep, wherever it executes: train it unless it is complete (resuming it when
    interrupted), then what the spec asks after training (``post``: ``{"interpretability",
    "robustness"}``, see :func:`missing_post`). Returns ``(ok, exit code, resumed)``; on failure the
    child's output tail is in the run's error.log."""
    run = RunDir(run_dir)
    resumed = run.status() == "interrupted"
    ok, code = True, 0
    full_env = {**os.environ, **env}
    if needs_retraining(run, post):  # the archive keeps the finished run until this one replaces it
        run.clear_outputs()
    if not run.is_complete():
        ok, code = train_run(TrainConfig.from_dict(config), run, resumed, full_env, child_process)
    if ok and post is not None:
        ok, code = post_run(run, post, full_env, child_process)
    return ok, code, resumed
