"""Result tables read and grouped (noisemod.analysis.tables): groups over seeds, series, main conditions."""

import math

import pytest

from noisemod.analysis import tables
from noisemod.config import field_names


def test_aggregate_mean_and_std_over_seeds():
    rows = [
        dict(dataset="mnist", model="mlp", method="nm", seed=0, test_accuracy=0.90, vii=0.20),
        dict(dataset="mnist", model="mlp", method="nm", seed=1, test_accuracy=0.80, vii=0.30),
        dict(dataset="mnist", model="mlp", method="standard", seed=0, test_accuracy=0.95, vii=0.10),
        dict(dataset="mnist", model="mlp", method="standard", seed=1, test_accuracy=math.nan, vii=0.12),
    ]
    nm, standard = tables.aggregate(rows)
    assert (nm["method"], nm["n"], nm["seeds"]) == ("nm", 2, [0, 1])
    assert nm["test_accuracy_mean"] == pytest.approx(0.85)
    assert nm["test_accuracy_std"] == pytest.approx(math.sqrt(0.005))  # sample std: sqrt(((.05)^2 * 2) / 1)
    assert nm["vii_mean"] == pytest.approx(0.25) and nm["vii_std"] == pytest.approx(math.sqrt(0.005))
    # a NaN is left out; one value has std 0
    assert standard["test_accuracy_mean"] == pytest.approx(0.95) and standard["test_accuracy_std"] == 0.0
    assert standard["vii_mean"] == pytest.approx(0.11)


def test_series_picks_runs_that_differ_in_one_setting():
    base = {k: None for k in field_names()}
    rows = [
        {**base, "method": "nm", "beta": b, "noise": n, "seed": s, "run_id": i}
        for i, (b, n, s) in enumerate(
            [(0.5, "gaussian", 0), (0.5, "gaussian", 1), (0.8, "gaussian", 0), (0.5, "laplace", 0)]
        )
    ]
    assert [r["run_id"] for r in tables.series(rows, "beta")] == [0, 1, 2]
    assert [r["run_id"] for r in tables.series(rows, "noise")] == [0, 1, 3]
    assert tables.series(rows[:2], "beta") == []


def test_main_conditions_keep_one_condition_per_method():
    base = {k: None for k in field_names()}
    rows = [
        {
            **base,
            "dataset": "d",
            "model": "m",
            "method": method,
            "beta": beta,
            "noise": "gaussian",
            "seed": seed,
            "run_id": i,
        }
        for i, (method, beta, seed) in enumerate(
            [("nm", 0.8, 0), ("nm", 0.5, 0), ("nm", 0.5, 1), ("standard", 0.5, 0), ("nm", 0.3, 0)]
        )
    ]
    assert [r["run_id"] for r in tables.main_conditions(rows)] == [1, 2, 3]
    [nm, standard] = tables.aggregate(tables.main_conditions(rows))
    assert (nm["method"], nm["n"], standard["n"]) == ("nm", 2, 1)
