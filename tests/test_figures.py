"""Figures from a sweep folder: the data behind each plot, valid PNG/SVG files, and which figures a sweep gets."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

import noisemod
from noisemod import TrainConfig
from noisemod.analysis import figures, tables
from noisemod.config import field_names
from noisemod.image_rows import gradient_maps
from noisemod.rundir import RunDir, SweepDir

# run id -> settings of a tiny fake sweep covering every figure
FAKE_RUNS = {
    "standard-s0": dict(method="standard"),
    "nm-s0": dict(method="nm"),
    "nm-s1": dict(method="nm", seed=1),
    "nm-b08": dict(method="nm", beta=0.8),
    "nm-laplace": dict(method="nm", noise="laplace"),
    "pgd-s0": dict(method="pgd", steps=2),
}


def write_sweep(
    sweep_dir: Path, run_ids, *, spec="fake", budget="tiny", runs_from: Path | None = None, failed=()
) -> Path:
    """A sweep folder in the sweep runner's layout: results.csv (a status column, the settings and
    result.json's scalars), sweep.json and runs/<id>/, trained here or linked from ``runs_from``;
    ``failed`` adds rows of failed runs."""
    rows = []
    for run_id in run_ids:
        run = sweep_dir / "runs" / run_id
        if runs_from is not None:
            run.parent.mkdir(parents=True, exist_ok=True)
            run.symlink_to(runs_from / "runs" / run_id, target_is_directory=True)
        else:
            config = TrainConfig(dataset="synthetic", model="lenet", epochs=1, train_size=120, **FAKE_RUNS[run_id])
            noisemod.fit(config, run, progress=False, log=lambda *a: None)
        config = RunDir(run).read_config().to_dict()
        result = {k: v for k, v in RunDir(run).read_result().items() if not isinstance(v, dict)}
        rows.append({"run_id": run_id, "spec": spec, "budget": budget, "status": "completed", **config, **result})
    for run_id in failed:
        rows.append(
            {
                "run_id": run_id,
                "spec": spec,
                "budget": budget,
                "status": "failed",
                **TrainConfig(dataset="synthetic", method="igr").to_dict(),
            }
        )
    SweepDir(sweep_dir).write_results(rows)
    command = f"noisemod sweep experiments/{spec}.yaml --out {sweep_dir} --budget {budget} --jobs 1"
    (sweep_dir / "sweep.json").write_text(
        json.dumps({"spec": spec, "budget": budget, "runs": list(run_ids), "command": command, "cwd": "/somewhere"})
    )
    return sweep_dir


_TRAINED = {}


def trained_sweep(tmp_path_factory) -> Path:
    """The fake sweep of every FAKE_RUNS run, trained once per test session (also for test_report)."""
    if "sweep" not in _TRAINED:
        _TRAINED["sweep"] = write_sweep(tmp_path_factory.mktemp("sweep"), FAKE_RUNS)
    return _TRAINED["sweep"]


@pytest.fixture(scope="session")
def fake_sweep(tmp_path_factory) -> Path:
    return trained_sweep(tmp_path_factory)


def check_png(path: Path, min_width=300):
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size[0] >= min_width and im.size[1] >= 150
        im.load()


def check_svg(path: Path):
    text = path.read_text()
    assert text.lstrip().startswith("<?xml") and "<svg" in text and text.rstrip().endswith("</svg>")


def test_load_results_types_and_errors(fake_sweep, tmp_path):
    rows = tables.load_results(fake_sweep)
    assert [r["run_id"] for r in rows] == list(FAKE_RUNS)
    assert isinstance(rows[0]["test_accuracy"], float) and rows[0]["epochs"] == 1
    assert rows[0]["modulate_after_norm"] is False and rows[0]["eps"] is None
    failed = write_sweep(tmp_path / "failed", ["nm-s0"], runs_from=fake_sweep, failed=["igr-s0"])
    assert [r["run_id"] for r in tables.load_results(failed)] == ["nm-s0"]
    assert [r["status"] for r in tables.load_results(failed, completed_only=False)] == ["completed", "failed"]
    (failed / "results.csv").write_text("run_id,status\nx,failed\n")
    with pytest.raises(ValueError, match="no completed runs"):
        tables.load_results(failed)
    with pytest.raises(FileNotFoundError, match="results.csv"):
        tables.load_results(tmp_path)
    (tmp_path / "results.csv").write_text("run_id,test_accuracy\n")
    with pytest.raises(ValueError, match="results.csv"):
        tables.load_results(tmp_path)


def test_spectrum_of_a_constant_image_is_one_peak():
    spec = figures.spectrum(torch.full((2, 3, 8, 6), 0.7))
    assert spec.shape == (2, 1, 8, 6)
    peak = torch.zeros(8, 6)
    peak[4, 3] = 1
    assert torch.equal(spec[0, 0].float(), peak) and torch.equal(spec[1, 0].float(), peak)


def test_modulation_pipeline_demodulates_like_modulate():
    x = torch.rand(3, 1, 8, 8)
    c = noisemod.sample_carrier(x.shape, 0.5, generator=torch.Generator().manual_seed(1))
    stages = figures.modulation_pipeline(x, c)
    (inp, _), (carrier, _), (modulated, _), (demodulated, demod_spec) = stages.values()
    assert torch.equal(inp, x) and torch.equal(carrier, c) and torch.allclose(modulated, x * c)
    assert torch.equal(demodulated, noisemod.modulate(x, c))
    assert demod_spec.shape == (3, 1, 8, 8) and 0 <= demod_spec.min() and demod_spec.max() <= 1


def test_fig2_png_and_svg(tmp_path):
    x = torch.rand(2, 3, 16, 16)
    png, svg = figures.fig2(x, [tmp_path / "f2.png", tmp_path / "f2.svg"], beta=0.3, noise="laplace")
    check_png(png, 500)
    check_svg(svg)
    [png] = figures.fig2_from_dataset("synthetic", tmp_path / "f2d.png", n=3)
    check_png(png, 500)


def test_result_figures_png_and_svg(fake_sweep, tmp_path):
    rows = tables.load_results(fake_sweep)
    for name, call in {
        "fig3": lambda p: figures.fig3(rows, p),
        "fig4": lambda p: figures.fig4(rows, fake_sweep, p),
        "fig5": lambda p: figures.fig5(rows, p),
    }.items():
        png, svg = call([tmp_path / f"{name}.png", tmp_path / f"{name}.svg"])
        check_png(png, 500)
        check_svg(svg)
    with pytest.raises(ValueError, match="beta"):
        figures.fig4(rows[:2], fake_sweep, tmp_path / "x.png")
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        figures.fig3(rows, tmp_path / "x.jpg")


def test_bar_panels_keep_negative_scores_in_view():
    """A signed metric (score alignment, a cosine) below 0: its bars stay visible with the zero line;
    where nothing drawn is below 0 the axis starts at 0."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    def panel(values):
        rows = [
            {"label": "standard", "gradient_score_alignment": v, "gradient_score_alignment_floor": 0.001}
            for v in values
        ]
        ax = Figure().subplots()
        figures._interpretability_panel(ax, rows, "score_alignment", ["gradient"])
        return ax.get_ylim()

    bottom, top = panel([-0.012, -0.010])
    assert bottom < -0.012 and top > 0.001
    assert panel([0.02, 0.03])[0] == 0
    # the bars of a figure's metric per condition follow the same rule
    for mean, low in ((-0.05, True), (0.05, False)):
        ax = Figure().subplots()
        figures._bars(ax, [{"noise": "gaussian", "vii_mean": mean, "vii_std": 0.01, "n": 2}], "vii", "noise")
        assert (ax.get_ylim()[0] < mean) if low else ax.get_ylim()[0] == 0


def test_fig1_gradient_grid(fake_sweep, tmp_path):
    runs = {m: fake_sweep / "runs" / f"{m}-s0" for m in ("standard", "nm", "pgd")}
    [png] = figures.fig1(runs, tmp_path / "f1.png", n=5)
    check_png(png)
    x, _, grads = gradient_maps(list(runs.values()), n=5)
    assert x.shape == (5, 1, 16, 16) and len(grads) == 3 and grads[0].shape == x.shape
    assert not torch.equal(grads[0], grads[1])


def test_plan_figures():
    base = {k: None for k in field_names()}

    def rows(*settings):
        return [{**base, "dataset": "mnist", "model": "lenet", "seed": 0, **s} for s in settings]

    methods = rows(dict(method="standard"), dict(method="nm", beta=0.5), dict(method="pgd"))
    assert figures.plan_figures(methods) == ["fig1", "fig2", "fig3"]
    models = rows(dict(method="nm", model="mlp"), dict(method="nm", model="fcnn"))
    assert figures.plan_figures(models) == ["fig2", "fig3"]
    betas = rows(*(dict(method="nm", beta=b) for b in (0.2, 0.5, 0.8)))
    assert figures.plan_figures(betas) == ["fig2", "fig4"]
    assert figures.plan_figures(betas, "fig3-mnist") == ["fig2", "fig3", "fig4"]
    noises = rows(*(dict(method="nm", beta=0.5, noise=n) for n in ("gaussian", "rayleigh")))
    assert figures.plan_figures(noises) == ["fig2", "fig5"]


def test_make_figures(fake_sweep, tmp_path):
    written = figures.make_figures(fake_sweep)
    # nm in three settings beside standard and pgd; VII along training from the runs' metrics.csv
    names = [*(f"fig{i}" for i in range(1, 6)), "tradeoff", "training"]
    assert [p.name for p in written] == [f"{n}.{ext}" for n in names for ext in ("png", "svg")]
    assert all(p.parent == fake_sweep / "figures" for p in written)
    for p in written:
        check_png(p) if p.suffix == ".png" else check_svg(p)
    # a sweep of nm runs that vary beta only: fig2, fig4 and training, written where asked
    betas = write_sweep(tmp_path / "betas", ["nm-s0", "nm-b08"], runs_from=fake_sweep)
    written = figures.make_figures(betas, out_dir=tmp_path / "out")
    assert sorted(p.stem for p in written if p.suffix == ".png") == ["fig2", "fig4", "training"]
    # the same runs archived (no checkpoints): figure 4 drawn without its gradient maps, smaller
    archive = shutil.copytree(betas, tmp_path / "archive", ignore=shutil.ignore_patterns("*.pt"))
    archived = figures.make_figures(archive, out_dir=tmp_path / "archived")
    assert sorted(p.stem for p in archived if p.suffix == ".png") == ["fig2", "fig4", "training"]
    with_maps, curves = (Image.open(d / "fig4.png").size for d in (tmp_path / "out", tmp_path / "archived"))
    assert curves[1] < with_maps[1]
    check_png(tmp_path / "archived" / "fig4.png")


def test_tradeoff_points_are_conditions_and_panels_need_two_methods(tmp_path):
    def row(method, seed, acc, vii, **settings):
        return {
            "dataset": "mnist",
            "model": "lenet",
            "method": method,
            "seed": seed,
            "test_accuracy": acc,
            "vii": vii,
            **settings,
        }

    rows = [row("standard", s, 0.9 + s / 100, 0.1) for s in (0, 1)]
    rows += [row("nm", s, 0.8, 0.2 + s / 10, beta=b) for b in (0.25, 0.5) for s in (0, 1)]
    rows += [row("additive-noise", 0, 0.85, 0.15, sigma=0.1)]
    assert [tables.condition_label(r) for r in rows[1:4]] == ["standard", "nm b0.25 gaussian", "nm b0.25 gaussian"]
    assert tables.condition_label(rows[-1]) == "additive-noise sigma0.1"
    assert figures._tradeoff_panels(rows) == [("mnist", "lenet")]
    assert figures.plan_figures(rows)[-1] == "tradeoff"
    png, svg = figures.tradeoff(rows, [tmp_path / "t.png", tmp_path / "t.svg"])
    check_png(png)
    check_svg(svg)
    # one method, or every method in one setting: nothing to trade off
    assert figures._tradeoff_panels(rows[2:6]) == [] and figures._tradeoff_panels(rows[:2] + rows[-1:]) == []
    with pytest.raises(ValueError, match="trade-off figure needs two methods"):
        figures.tradeoff(rows[:2], tmp_path / "x.png")


def test_the_headline_figure_sets_each_method_against_standard_by_its_training_time(tmp_path, capsys):
    """From a toy archive: each method's VII and alignment gained over standard (Welch, as stats.compare),
    the floor less standard, the robust accuracy at the small radius and the time ratio; drawn the same
    twice; `noisemod figures --headline` draws it from several archives."""
    from noisemod.analysis.stats import compare, ratio
    from noisemod.cli import main

    values = {  # method: (vii, alignment, seconds, robust at eps 0.1), per seed a jitter
        "standard": (0.040, 0.10, 10.0, 0.30),
        "nm": (0.055, 0.13, 12.0, 0.01),
        "fgsm": (0.060, 0.12, 20.0, 0.90),
    }
    rows = []
    for method, (vii, alignment, seconds, robust) in values.items():
        for seed, j in enumerate((-0.002, 0.0, 0.003)):
            rows.append(
                {"run_id": f"{method}-s{seed}", "spec": "p", "budget": "tier1", "status": "completed",
                 "dataset": "mnist", "model": "lenet", "method": method, "seed": seed, "epochs": 50,
                 "test_accuracy": 0.99, "gradient_vii": vii + j, "gradient_vii_floor": 0.03 + j,
                 "gradient_alignment": alignment + 2 * j, "gradient_alignment_floor": 0.06,
                 "train_seconds": seconds + j, "robust_accuracy_eps0.1": robust + j, "robust_accuracy_eps0.3": 0.0}
            )  # fmt: skip
    SweepDir(tmp_path / "p").write_results(rows)
    points = {p["label"].split()[0]: p for p in tables.gains_over_standard(tables.load_results(tmp_path / "p"))}
    assert list(points) == ["standard", "nm", "fgsm"]  # standard first: the reference, at 0 without an interval
    assert points["standard"]["gradient_vii_diff"] == 0 and points["standard"]["gradient_vii_ci"] is None

    def side(method, column):
        return [r[column] for r in rows if r["method"] == method]

    for method in ("nm", "fgsm"):
        for metric in ("gradient_vii", "gradient_alignment"):
            c = compare(side(method, metric), side("standard", metric))
            assert points[method][f"{metric}_diff"] == pytest.approx(c.diff)
            assert points[method][f"{metric}_ci"] == pytest.approx((c.ci_low, c.ci_high))
    assert points["nm"]["gradient_vii_floor_gap"] == pytest.approx(0.03 - 0.040)  # the same for every method
    assert points["fgsm"]["time_ratio"] == pytest.approx(20.0 / 10.0, rel=1e-3)
    t = ratio(side("fgsm", "train_seconds"), side("standard", "train_seconds"))
    assert points["fgsm"]["time_ratio_ci"] == pytest.approx((t.ci_low, t.ci_high))
    assert points["standard"]["time_ratio"] == 1 and points["standard"]["time_ratio_ci"] is None
    assert points["fgsm"]["robust"] == pytest.approx(0.90 + 1 / 3000) and points["fgsm"]["eps"] == 0.1

    png, svg = figures.headline(rows, [tmp_path / "h.png", tmp_path / "h.svg"])
    check_png(png)
    check_svg(svg)
    [again] = figures.headline(rows, tmp_path / "again.png")
    assert again.read_bytes() == png.read_bytes()  # deterministic
    with pytest.raises(ValueError, match="needs standard training and another method"):
        figures.headline([r for r in rows if r["method"] == "standard"], tmp_path / "x.png")

    SweepDir(tmp_path / "q").write_results([dict(r, dataset="fashion-mnist") for r in rows])
    out = tmp_path / "docs" / "headline.png"
    assert main(["figures", str(tmp_path / "p"), str(tmp_path / "q"), "--headline", str(out)]) == 0
    check_png(out)
    assert main(["figures", str(tmp_path / "p"), str(tmp_path / "q")]) == 2
    assert "several only with --headline" in capsys.readouterr().err
