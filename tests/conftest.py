"""Shared fixtures: the real-data folder (../shared/data, skipped when absent), an isolated cache, and
folders built once per session; under pytest-xdist, each worker on its own share of the CPU cores."""

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

# Decoded-dataset caches and compiled kernels go to one temporary folder per test session, never to the
# user's cache. Under xdist the workers inherit the folder the controller made here, so they share it
# (entries are written atomically: io.atomic_write); the process that made it removes it at the end.
_MADE_CACHE = None
if "NOISEMOD_CACHE" not in os.environ:
    _MADE_CACHE = os.environ["NOISEMOD_CACHE"] = tempfile.mkdtemp(prefix="noisemod-test-cache-")


def pytest_unconfigure(config):
    if _MADE_CACHE is not None:
        shutil.rmtree(_MADE_CACHE, ignore_errors=True)


def pytest_configure(config):
    """An xdist worker runs on its share of the cores (worker i of n: every n-th core from the i-th) with
    one torch thread per core, and so do the processes it starts (they inherit the affinity; a sweep's
    local executor gives each run ``cores // jobs`` threads). Without this each worker and each
    training child would start a thread per core of the machine: on 2 cores, 4 spinning OpenMP threads
    or more, several times slower than one thread each."""
    workerinput = getattr(config, "workerinput", None)
    if workerinput is None or not hasattr(os, "sched_setaffinity"):
        return
    index, count = int(workerinput["workerid"].removeprefix("gw")), int(workerinput["workercount"])
    cores = sorted(os.sched_getaffinity(0))
    mine = cores[index::count] if count <= len(cores) else [cores[index % len(cores)]]
    os.sched_setaffinity(0, mine)
    threads = str(len(mine))
    os.environ.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads)
    import torch

    torch.set_num_threads(len(mine))


def pytest_collection_modifyitems(config, items):
    """Under xdist, the tests marked slow first (in their order), so that no worker is left with a long one
    at the end while the others are idle. Every worker sorts its collection the same way."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session")
def build_once(tmp_path_factory) -> Callable[[str, Callable[[Path], None]], Path]:
    """``build_once(name, build)``: a folder that ``build(folder)`` filled, once per test session. Under
    xdist the workers share it: the first one to ask builds it, holding a lock that the others wait on.
    Tests only read it (a test that changes it copies it to its tmp_path first)."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the test run's folder, above those of its workers

    def once(name: str, build: Callable[[Path], None]) -> Path:
        folder = base / f"once-{name}"
        with open(base / f"once-{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
            if not (folder / ".built").is_file():
                shutil.rmtree(folder, ignore_errors=True)  # what a failed build left
                folder.mkdir()
                build(folder)
                (folder / ".built").touch()
        return folder

    return once


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The offline datasets folder; tests using it are skipped when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA}")
    return SHARED_DATA
