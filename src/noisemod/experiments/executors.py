"""Where a sweep's runs execute: a local process pool (default) or a Ray cluster.

Both run the same per-run work, :func:`noisemod.experiments.task.run_task`: ``noisemod train
--config`` in a child process (then ``noisemod evaluate --metrics`` when the spec asks), in the run's
directory. What the executor decides is where and with which resources:

- ``local``: ``jobs`` runs at a time on this machine, each with ``cores // jobs`` CPU threads; on a
  machine with K GPUs the concurrent runs take GPUs round-robin (``CUDA_VISIBLE_DEVICES``), one each.
- ``ray``: one Ray task per run, asking for one GPU when the cluster has GPUs, else
  ``cluster CPUs // jobs`` CPUs (its thread count). ``address`` (or ``RAY_ADDRESS``) names the
  cluster; none starts a local Ray instance. The sweep folder must be on a filesystem every node
  sees: a probe task checks it before any run starts.

Adding an executor: a class with ``name``, ``describe(runs)``, ``check_folder(folder)`` and
``run(tasks, on_start, on_end)``, listed in :data:`EXECUTORS` and built by :func:`make_executor`.
"""

from __future__ import annotations

import os
import queue
import socket
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .task import run_task

__all__ = ["EXECUTORS", "ExecutorError", "LocalExecutor", "RayExecutor", "check_executor", "make_executor", "run_task"]

EXECUTORS = ("local", "ray")


class ExecutorError(ValueError):
    """The executor cannot run this sweep (unknown name, unreachable cluster, unwritable folder)."""


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _local_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


class LocalExecutor:
    """``jobs`` runs at a time on this machine; with K GPUs, concurrent run ``s`` gets GPU ``s % K``."""

    name = "local"

    def __init__(self, jobs: int, *, gpus: int | None = None):
        self.jobs = jobs
        self.gpus = _local_gpus() if gpus is None else gpus

    def describe(self, runs: int) -> str:
        gpus = f", one of {self.gpus} GPUs each" if self.gpus else ""
        return f"{self.jobs} at a time with {self.threads(runs)} thread(s) each{gpus}"

    def threads(self, runs: int) -> int:
        return max(1, _cores() // max(1, min(self.jobs, runs)))

    def slot_env(self, slot: int, runs: int) -> dict[str, str]:
        threads = str(self.threads(runs))
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        if self.gpus:
            env["CUDA_VISIBLE_DEVICES"] = str(slot % self.gpus)
        return env

    def check_folder(self, folder: Path) -> None:
        """The folder is local: writing sweep.json there is the check."""

    def run(self, tasks: Sequence[tuple], on_start: Callable, on_end: Callable) -> None:
        """``tasks``: ``(key, config dict, run dir, post)`` (post: what to do after training); calls
        ``on_start(key)`` and ``on_end(key, ok, code, resumed)`` (from worker threads) as runs start and end."""
        slots: queue.Queue[int] = queue.Queue()
        for s in range(self.jobs):
            slots.put(s)

        def one(task):
            key, config, run_dir, post = task
            slot = slots.get()
            try:
                on_start(key)
                on_end(key, *run_task(config, run_dir, post, self.slot_env(slot, len(tasks))))
            finally:
                slots.put(slot)

        pool = ThreadPoolExecutor(max_workers=self.jobs)
        try:
            for future in [pool.submit(one, t) for t in tasks]:
                future.result()
        finally:  # on Ctrl-C start nothing new; the running runs stop too (same process group) and resume later
            pool.shutdown(wait=True, cancel_futures=True)


def _reachable(address: str, timeout: float = 5.0) -> bool:
    """Whether ``host:port`` (or ``ray://host:port``) accepts a TCP connection: Ray itself waits
    minutes before giving up on a wrong address."""
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return False
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def _probe(folder: str, name: str) -> str:
    """A Ray task: write and remove a file in the sweep folder; returns the node's address or the error."""
    path = Path(folder) / name
    try:
        path.write_text("noisemod: can this node write here?\n")
    except OSError as e:
        return f"error: {e}"
    return socket.gethostname()


class RayExecutor:
    """One Ray task per run: 1 GPU each when the cluster has GPUs, else ``cluster CPUs // jobs`` CPUs."""

    name = "ray"

    def __init__(self, jobs: int, *, address: str | None = None):
        try:
            import ray
        except ImportError:
            raise ExecutorError("--executor ray needs Ray: pip install 'noisemod[ray]'") from None
        self.ray, self.jobs = ray, jobs
        self.address = address if address is not None else os.environ.get("RAY_ADDRESS") or None
        if self.address not in (None, "auto", "local") and not _reachable(self.address):
            raise ExecutorError(f"cannot reach the Ray cluster at {self.address!r} (RAY_ADDRESS or --ray-address)")
        try:
            if not ray.is_initialized():
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as e:
            raise ExecutorError(f"cannot start or join a Ray cluster at {self.address!r}: {e}") from None
        resources = ray.cluster_resources()
        self.gpus, self.cpus = int(resources.get("GPU", 0)), int(resources.get("CPU", 1))

    def describe(self, runs: int) -> str:
        where = f"Ray cluster {self.address}" if self.address else "a local Ray instance"
        each = "1 GPU" if self.gpus else f"{self.task_cpus()} CPU(s)"
        return f"on {where} ({self.cpus} CPUs, {self.gpus} GPUs), {each} per run"

    def task_cpus(self) -> int:
        return max(1, self.cpus // self.jobs)

    def check_folder(self, folder: Path) -> None:
        """A probe task writes a file in the sweep folder, which the driver must then see."""
        name = f".noisemod-probe-{uuid.uuid4().hex}"
        answer = self.ray.get(self.ray.remote(num_cpus=0)(_probe).remote(str(folder), name))
        probe = folder / name
        seen = probe.is_file()
        probe.unlink(missing_ok=True)
        if answer.startswith("error:") or not seen:
            detail = answer if answer.startswith("error:") else f"the file written on node {answer} is not visible here"
            raise ExecutorError(
                f"a Ray worker cannot write to the sweep folder {folder} ({detail}); put it on a filesystem every "
                "node sees"
            )

    def run(self, tasks: Sequence[tuple], on_start: Callable, on_end: Callable) -> None:
        ray = self.ray
        options = {"num_gpus": 1, "num_cpus": 1} if self.gpus else {"num_cpus": self.task_cpus()}
        threads = str(1 if self.gpus else self.task_cpus())
        remote = ray.remote(**options)(run_task)
        env = {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
        pending = {}
        for key, config, run_dir, post in tasks:
            on_start(key)
            pending[remote.remote(config, run_dir, post, env)] = key
        lock = threading.Lock()
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    key = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayError as e:  # the task itself failed (worker lost past its retries)
                        result = (False, -1, False)
                        print(f"noisemod: Ray task for {key} failed: {type(e).__name__}", file=sys.stderr)
                    with lock:
                        on_end(key, *result)
        finally:
            for ref in pending:  # Ctrl-C: cancel what has not finished; the runs resume on a rerun
                ray.cancel(ref, force=True)


def check_executor(name: str) -> None:
    """Raise :class:`ExecutorError` unless ``name`` is one of :data:`EXECUTORS`."""
    if name not in EXECUTORS:
        raise ExecutorError(f"invalid executor={name!r}: expected one of {', '.join(EXECUTORS)}")


def make_executor(name: str, jobs: int, *, ray_address: str | None = None):
    """The executor ``name`` (:data:`EXECUTORS`) for ``jobs`` concurrent runs."""
    check_executor(name)
    if name == "ray":
        return RayExecutor(jobs, address=ray_address)
    if ray_address is not None:
        raise ExecutorError("--ray-address goes with --executor ray")
    return LocalExecutor(jobs)
