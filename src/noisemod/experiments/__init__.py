"""The paper's experiments as data: YAML specs (``specs/*.yaml``, bundled with the package and found
by name: :mod:`.catalog`) expanded into runs, and a runner that trains them as separate processes
into one output folder with one results table.

>>> from noisemod.experiments import run_sweep
>>> runs = run_sweep("fig3", "sweeps/fig3", budget="cpu", jobs=2, data_root="../shared/data")
"""

from .runner import exit_code, run_sweep, write_results
from .spec import Run, Spec, config_hash, expand, load_spec, readable_id

__all__ = [
    "Run",
    "Spec",
    "config_hash",
    "exit_code",
    "expand",
    "load_spec",
    "readable_id",
    "run_sweep",
    "write_results",
]
