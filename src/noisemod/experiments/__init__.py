"""The paper's experiments as data: YAML specs (``experiments/*.yaml``) expanded into runs, and a
runner that trains them as separate processes into one output folder with one results table.

>>> from noisemod.experiments import run_sweep
>>> runs = run_sweep("experiments/fig3.yaml", "sweeps/fig3", budget="cpu", jobs=2, data_root="../shared/data")
"""

from .runner import exit_code, run_sweep, write_results
from .spec import RELEVANT, Run, Spec, expand, load_spec

__all__ = ["RELEVANT", "Run", "Spec", "exit_code", "expand", "load_spec", "run_sweep", "write_results"]
