"""A second opinion on interpretability: alignment, deletion / insertion (pixel flipping) with a
random-order reference, the randomization floor, cascading randomization, and the explainers;
hand-computed cases and cross-checks against Quantus and Captum."""

import json
import math
import re
import shutil
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from noisemod.cli import main
from noisemod.config import TrainConfig
from noisemod.data import load_dataset
from noisemod.explainers import EXPLAINERS, explain, list_explainers
from noisemod.gradients import input_gradients
from noisemod.metrics import (
    alignment_scores,
    cascading_randomization,
    curve_auc,
    flip_curves,
    interpretability,
    randomized_model,
    spearman,
    vii,
)
from noisemod.models import create_model
from noisemod.rundir import RunDir
from noisemod.train import fit


def lenet(seed=0):
    torch.manual_seed(seed)
    return create_model("lenet", in_channels=1, num_classes=10, input_size=16).eval()


class SumModel(nn.Module):
    """Two logits: ``[sum(x), 0]``, so p(class 0) = sigmoid(sum x): curves by hand."""

    def forward(self, x):
        s = x.flatten(1).sum(1)
        return torch.stack([s, torch.zeros_like(s)], dim=1)


def sigmoid(v):
    return 1 / (1 + math.exp(-v))


# ----------------------------------------------------------------------------- hand-computed


def test_alignment_by_hand():
    x = torch.tensor([[1.0, 0.0], [0.5, 0.5], [2.0, 0.0]])
    mean = torch.tensor([0.0, 0.0])
    a = torch.tensor([[1.0, 1.0], [3.0, -1.0], [0.0, 0.0]])
    got = alignment_scores(x, a, mean)
    # cos([1, 0], [1, 1]) = 1/sqrt(2); |cos([.5, .5], [3, -1])| = 1/sqrt(5); a zero attribution scores 0
    assert got.tolist() == pytest.approx([1 / math.sqrt(2), 1 / math.sqrt(5), 0.0])
    assert alignment_scores(x, a, x).tolist() == [0.0, 0.0, 0.0]  # x equal to the mean: no direction
    with pytest.raises(ValueError, match="does not match"):
        alignment_scores(x, a[:, :1], mean)


def test_flip_curves_by_hand():
    x = torch.tensor([[0.4, 0.3, 0.2, 0.1]])
    a = torch.tensor([[1.0, 4.0, 3.0, 2.0]])  # removal order: 0.3, 0.2, 0.1, 0.4
    y = torch.tensor([0])
    deletion = flip_curves(SumModel(), x, y, a, steps=4)
    assert deletion[0].tolist() == pytest.approx([sigmoid(s) for s in (1.0, 0.7, 0.5, 0.4, 0.0)])
    insertion = flip_curves(SumModel(), x, y, a, mode="insertion", steps=4)
    assert insertion[0].tolist() == pytest.approx([sigmoid(s) for s in (0.0, 0.3, 0.5, 0.6, 1.0)])
    # the area by the trapezoid rule, points 1/4 apart
    pts = [sigmoid(s) for s in (1.0, 0.7, 0.5, 0.4, 0.0)]
    assert float(curve_auc(deletion)[0]) == pytest.approx(0.25 * (sum(pts) - (pts[0] + pts[-1]) / 2))
    # a baseline of 1 (white) and two steps of two elements
    white = flip_curves(SumModel(), x, y, a, steps=2, baseline=1.0)
    assert white[0].tolist() == pytest.approx([sigmoid(1.0), sigmoid(0.5 + 2), sigmoid(4.0)])
    with pytest.raises(ValueError, match="mode must be"):
        flip_curves(SumModel(), x, y, a, mode="both")
    with pytest.raises(ValueError, match="steps must be a positive integer"):
        flip_curves(SumModel(), x, y, a, steps=0)


def test_spearman_and_randomized_model():
    a = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 2.0, 3.0]])
    assert spearman(a, a).tolist() == pytest.approx([1.0, 1.0])
    assert spearman(a, -a).tolist() == pytest.approx([-1.0, -1.0])
    model = lenet(seed=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # "train" it
    fresh = randomized_model(model, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(fresh.parameters(), lenet(seed=3).parameters()))
    assert not fresh.training and fresh.spec == model.spec


# ----------------------------------------------------------------------------- cross-checks


def quantus():
    q = pytest.importorskip("quantus")
    warnings.filterwarnings("ignore", module="quantus")
    return q


def test_deletion_curve_matches_quantus_pixel_flipping():
    q = quantus()
    model = lenet()
    torch.manual_seed(1)
    x = torch.rand(6, 1, 16, 16)
    x[:, :, 0, 0] = 0  # Quantus's "black" baseline is each image's minimum: 0 here, as ours
    y, a = torch.randint(0, 10, (6,)), torch.randn(6, 1, 16, 16)  # continuous: no ties in the order
    ours = flip_curves(model, x, y, a, steps=16)
    metric = q.PixelFlipping(features_in_step=16, perturb_baseline="black", normalise=False, disable_warnings=True)
    theirs = np.array(
        metric(model=model, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=a.numpy(), device="cpu", softmax=True)
    )
    assert theirs.shape == (6, 16)
    np.testing.assert_allclose(ours[:, 1:].numpy(), theirs, atol=1e-6)  # Quantus leaves out the intact point


def test_cascading_randomization_matches_quantus_mprt():
    q = quantus()
    model = lenet()
    x, y = torch.rand(6, 1, 16, 16), torch.randint(0, 10, (6,))

    def explain_func(model, inputs, targets, **kwargs):
        return explain(model, torch.as_tensor(inputs), torch.as_tensor(targets), "gradient").numpy()

    metric = q.MPRT(
        similarity_func=q.similarity_func.correlation_spearman,
        layer_order="top_down",
        seed=42,
        return_average_correlation=False,
        normalise=False,
        abs=False,
        disable_warnings=True,
    )
    theirs = metric(
        model=model,
        x_batch=x.numpy(),
        y_batch=y.numpy(),
        a_batch=None,
        explain_func=explain_func,
        device="cpu",
        softmax=False,
    )
    ours = cascading_randomization(model, x, y, "gradient", seed=42)
    assert [name for name, _ in ours] == [k for k in theirs if k != "original"]
    for name, value in ours:
        assert value == pytest.approx(float(np.mean(theirs[name])), abs=1e-9)


def test_absolute_cascading_keeps_the_ranking_of_zeros_that_the_input_dictates():
    # input x gradient is 0 wherever the input is: the absolute values keep that ranking under any
    # model (fails the test), the signed values put those zeros in the middle (correlation near 0)
    torch.manual_seed(0)
    model = lenet()
    x = torch.rand(8, 1, 16, 16) * (torch.rand(1, 1, 16, 16) < 0.25)  # 3/4 of the pixels black in every image
    y = torch.randint(0, 10, (8,))
    signed = dict(cascading_randomization(model, x, y, "input-x-gradient"))
    absolute = dict(cascading_randomization(model, x, y, "input-x-gradient", absolute=True))
    last = list(signed)[-1]  # every module re-initialized
    assert absolute[last] > 0.5 and abs(signed[last]) < 0.3


def test_explainers_agree_with_their_definitions():
    from captum.attr import IntegratedGradients

    model = lenet()
    x, y = torch.rand(5, 1, 16, 16), torch.randint(0, 10, (5,))
    assert list_explainers() == [
        "gradient",
        "saliency",
        "smoothgrad",
        "integrated-gradients",
        "input-x-gradient",
        "logit-sum",
    ]
    torch.testing.assert_close(explain(model, x, y, "gradient"), input_gradients(model, x, y))
    saliency = explain(model, x, y, "saliency")
    torch.testing.assert_close(saliency, input_gradients(model, x, y, of="logit"))  # signed target-logit gradient
    torch.testing.assert_close(explain(model, x, y, "input-x-gradient"), x * saliency)
    every_class = sum(input_gradients(model, x, torch.full_like(y, k), of="logit") for k in range(10))
    torch.testing.assert_close(explain(model, x, y, "logit-sum"), every_class)
    ig = explain(model, x, y, "integrated-gradients", steps=64)
    with torch.no_grad():  # completeness: the attributions sum to f(x) - f(baseline) for the target logit
        gap = model(x).gather(1, y[:, None]) - model(torch.zeros_like(x)).gather(1, y[:, None])
    torch.testing.assert_close(ig.flatten(1).sum(1), gap.squeeze(1), atol=1e-3, rtol=1e-2)
    _, delta = IntegratedGradients(model).attribute(
        x, baselines=0.0, target=y, n_steps=64, return_convergence_delta=True
    )
    assert delta.abs().max() < 1e-3
    torch.manual_seed(0)
    smooth = explain(model, x, y, "smoothgrad", samples=8, sigma=0.0)  # no noise: the saliency itself
    torch.testing.assert_close(smooth, saliency)
    assert EXPLAINERS["smoothgrad"].options == {"samples": 50, "sigma": 0.15}
    assert model.training is False and all(p.requires_grad and p.grad is None for p in model.parameters())


def test_vii_of_the_gradient_explainer_is_the_paper_vii():
    model = lenet()
    x, y = torch.rand(40, 1, 16, 16), torch.randint(0, 10, (40,))
    scores = interpretability(model, x, y, metrics=["vii"], batch_size=16)
    assert scores["vii"] == pytest.approx(vii(model, x, y))


def test_interpretability_floor_random_reference_and_bad_input():
    model = lenet(seed=5)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(3.0)
    x, y = torch.rand(20, 1, 16, 16), torch.randint(0, 10, (20,))
    every = ["vii", "alignment", "deletion", "insertion", "deletion_random", "insertion_random"]
    scores = interpretability(model, x, y, metrics=every, floor=True, seed=5, steps=8)
    assert set(scores) == {*every, *(m + "_floor" for m in every)}
    floor = interpretability(randomized_model(model, 5), x, y, metrics=every, seed=5, steps=8)
    assert all(scores[m + "_floor"] == pytest.approx(floor[m]) for m in every)
    assert all(0 <= v <= 1 for v in scores.values())
    for bad, message in ([["vii", "faithfulness"], "unknown metric"], [[], "none given"]):
        with pytest.raises(ValueError, match=message):
            interpretability(model, x, y, metrics=bad)
    with pytest.raises(ValueError, match="unknown explainer 'lime'"):
        interpretability(model, x, y, explainer="lime")
    with pytest.raises(ValueError, match="takes 1x16x16 inputs, got images of shape 3x16x16"):
        interpretability(model, torch.rand(2, 3, 16, 16), y[:2])
    nan = x.clone()
    nan[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        interpretability(model, nan, y)
    with pytest.raises(ValueError, match="unknown option"):
        explain(model, x, y, "smoothgrad", samplez=3)


# ----------------------------------------------------------------------------- the command line


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("interp") / "run"
    fit(
        TrainConfig(dataset="synthetic", model="lenet", epochs=2, batch_size=32),
        out,
        progress=False,
        log=lambda *_: None,
    )
    return out


def test_evaluate_metrics_json_and_saved_file(run, capsys):
    argv = [
        "evaluate",
        str(run),
        "--metrics",
        "vii,alignment,deletion,insertion",
        "--explainer",
        "smoothgrad",
        "--floor",
        "--n",
        "30",
        "--json",
    ]
    assert main(argv) == 0
    scores = json.loads(capsys.readouterr().out)
    assert set(scores) == {
        "vii",
        "alignment",
        "deletion",
        "insertion",
        *(f"{m}_floor" for m in ("vii", "alignment", "deletion", "insertion")),
    }
    assert all(isinstance(v, float) for v in scores.values())
    saved = RunDir(run).read_interpretability()["smoothgrad"]
    assert saved["scores"] == scores and saved["n"] == 30 and saved["floor"] and saved["ms_per_image"] > 0
    result = json.loads((run / "result.json").read_text())
    assert main(["evaluate", str(run), "--metrics", "vii", "--json"]) == 0  # all test images: result.json's VII
    assert json.loads(capsys.readouterr().out)["vii"] == pytest.approx(result["vii"])
    assert set(RunDir(run).read_interpretability()) == {"smoothgrad", "gradient"}
    assert json.loads((run / "result.json").read_text()) == result  # untouched


def test_evaluate_on_the_first_n_images_uses_the_test_sets_mean(run, capsys):
    # Definition 3's x_bar is the mean over the whole dataset: scoring the first n images must not
    # swap in the mean of those n (which zeroes every pixel that none of them lights, raising VII)
    data = load_dataset("synthetic", val_size=RunDir(run).read_config().val_size)
    images, labels = data.test.images.float() / 255, data.test.labels
    model = RunDir(run).load_model()
    full_mean = data.test.images.double().mean(0) / 255
    assert main(["evaluate", str(run), "--metrics", "vii,alignment", "--n", "20", "--json"]) == 0
    scores = json.loads(capsys.readouterr().out)
    assert scores["vii"] == pytest.approx(vii(model, images[:20], labels[:20], mean=full_mean))
    assert scores["vii"] != pytest.approx(vii(model, images[:20], labels[:20]), abs=1e-6)
    grads = input_gradients(model, images[:20], labels[:20])
    assert scores["alignment"] == pytest.approx(float(alignment_scores(images[:20], grads, full_mean).mean()))
    entry = RunDir(run).read_interpretability()["gradient"]
    assert entry["mean"] == "test set"
    assert RunDir(run).has_interpretability("gradient", metrics=["vii"], n=20, floor=False)
    # an entry written before (no "mean": the subset's) is not taken as done, so a sweep redoes it
    RunDir(run).write_interpretability("gradient", {k: v for k, v in entry.items() if k != "mean"})
    assert not RunDir(run).has_interpretability("gradient", metrics=["vii"], n=20, floor=False)


@pytest.mark.parametrize(
    "argv,needle",
    [
        (["--metrics", "vii,faithfulness"], "--metrics='vii,faithfulness': unknown metric 'faithfulness'"),
        (["--metrics", ""], "unknown metric ''"),
        (["--explainer", "lime"], "--explainer='lime': unknown explainer 'lime'"),
        (["--n", "0"], "--n=0"),
        (["--n", "100000"], "--n=100000: the test set of synthetic has 200 images"),
        (["--n", "ten"], "--n='ten'"),
    ],
)
def test_evaluate_metrics_bad_input_exits_2_writing_nothing(run, capsys, argv, needle):
    before = sorted(p.name for p in run.iterdir())
    saved = RunDir(run).read_interpretability()
    assert main(["evaluate", str(run), *argv, "--json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err
    assert sorted(p.name for p in run.iterdir()) == before and RunDir(run).read_interpretability() == saved


# ----------------------------------------------------------------------------- sweeps, report, maps


@pytest.mark.slow
def test_a_sweep_computes_the_specs_interpretability_and_reports_it(tmp_path, capsys):
    from noisemod.analysis import tables
    from noisemod.analysis.report import write_report
    from noisemod.experiments import load_spec, run_sweep

    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "name: second-opinion\ngrids: [{dataset: [synthetic], model: [mlp], method: [standard, nm], seed: [0, 1]}]\n"
        "budgets: {cpu: {epochs: 1, train_size: 128}}\n"
        "interpretability: {metrics: [vii, deletion, deletion_random], explainers: [gradient, saliency], n: 20,\n"
        "                   only: {seed: [0]}}\n"
    )
    assert load_spec(spec).interpretability == {
        "metrics": ["vii", "deletion", "deletion_random"],
        "explainers": ["gradient", "saliency"],
        "n": 20,
        "floor": True,
        "only": {"seed": [0]},
    }
    out = tmp_path / "sweep"
    run_sweep(spec, out, budget="cpu", log=lambda *_: None)
    rows = tables.load_results(out)
    scored = [r for r in rows if r["seed"] == 0]
    assert all(isinstance(r["saliency_deletion_floor"], float) for r in scored)
    assert all(r.get("gradient_vii") is None for r in rows if r["seed"] == 1)  # `only` left them out
    assert tables.interpretability_scores(rows) == {
        "gradient": ["vii", "deletion", "deletion_random"],
        "saliency": ["vii", "deletion", "deletion_random"],
    }
    _, md = write_report(out)
    text = md.read_text()
    assert "## Interpretability" in text and "| synthetic | mlp | nm b0.5 gaussian | saliency | 1 |" in text
    # deletion's bar is the same model with a random order (deletion_random), not the floor: its own column is gone
    assert "| dataset | model | condition | explainer | runs | vii ↑ | deletion ↓ |" in text
    [row] = [line for line in text.splitlines() if line.startswith("| synthetic | mlp | nm b0.5 gaussian | saliency")]
    assert row.count("[random order ") == 1 and row.count("[floor ") == 1  # vii beside its floor, deletion random
    assert (out / "figures" / "interpretability.png").is_file()
    # a rerun starts nothing: every entry is there
    lines = []
    run_sweep(spec, out, budget="cpu", log=lines.append)
    assert not any("start" in line or "fail" in line for line in lines)
    # an entry that is missing (or outdated) is planned, and a dry run says so
    run_dir = out / "runs" / scored[0]["run_id"]
    saved = json.loads((run_dir / "interpretability.json").read_text())
    (run_dir / "interpretability.json").write_text(json.dumps({"gradient": saved["gradient"]}))
    lines = []
    run_sweep(spec, out, budget="cpu", log=lines.append, dry_run=True)
    assert "4 runs, 0 to run, 1 finished to interpret" in lines[0]
    assert sum(line.startswith(f"  interp {scored[0]['run_id']}:") for line in lines) == 1
    lines = []  # the run counts as complete only once it is interpreted
    run_sweep(spec, out, budget="cpu", log=lines.append)
    assert "4 runs, 3 complete already, 0 to run, 1 trained to interpret," in lines[0]
    assert set(json.loads((run_dir / "interpretability.json").read_text())) == {"gradient", "saliency"}
    # a run trained but not interpreted goes first, before the runs still to train (its archived row
    # lacks its columns until then, however long the training of the others takes)
    from noisemod.experiments.plan import plan_sweep
    from noisemod.rundir import SweepDir

    (run_dir / "interpretability.json").write_text(json.dumps({"gradient": saved["gradient"]}))
    untrained = next(r["run_id"] for r in rows if r["seed"] == 1)
    shutil.rmtree(out / "runs" / untrained)
    plan = plan_sweep(load_spec(spec), "cpu", SweepDir(out))
    assert [(p.run.run_id, p.interpret) for p in plan.work] == [(scored[0]["run_id"], True), (untrained, False)]


# ----------------------------------------------------------------------------- the metric registry


def test_the_builtin_metric_definitions():
    from noisemod.metrics import METRICS, default_metrics, get_metric, list_metrics

    assert list_metrics() == [
        "vii",
        "alignment",
        "deletion",
        "insertion",
        "deletion_random",
        "insertion_random",
        "score_alignment",
        "class_score_alignment",
        "posterior_score_alignment",
    ]
    assert default_metrics() == ["vii", "alignment", "deletion", "insertion"]
    assert {m.name for m in METRICS.values() if m.higher_is_better} == {
        "vii",
        "alignment",
        "insertion",
        "insertion_random",
        "score_alignment",
        "class_score_alignment",
        "posterior_score_alignment",
    }
    assert {m.name for m in METRICS.values() if not m.needs_attribution} == {"deletion_random", "insertion_random"}
    assert get_metric("deletion").reference == "deletion_random" and get_metric("vii").reference is None
    assert all(m.summary for m in METRICS.values())
    with pytest.raises(ValueError, match="unknown metric 'sharpness'; registered: vii, alignment"):
        get_metric("sharpness")


def _register_toy_metric():
    """``toy_energy``: the mean absolute attribution, lower taken as better."""
    from noisemod.metrics import register_metric

    @register_metric("toy_energy", higher_is_better=False, summary="mean absolute attribution")
    def energy(batch):
        return batch.attribution.abs().flatten(1).mean(1).double()


def _toy_rows():
    """Two seeds of one condition as results.csv rows with gradient scores, the toy metric's among them."""
    row = {"dataset": "synthetic", "model": "mlp", "method": "standard", "gradient_vii": 0.5, "gradient_vii_floor": 0.1}
    return [dict(row, seed=s, gradient_toy_energy=0.2 + s / 10, gradient_toy_energy_floor=0.3) for s in (0, 1)]


def test_a_metric_registered_in_a_test_file_works_everywhere(run, tmp_path, capsys):
    import shutil

    from noisemod.analysis import figures, tables
    from noisemod.analysis.report import _interpretability_table
    from noisemod.experiments import load_spec
    from noisemod.metrics import METRICS, default_metrics

    copy = shutil.copytree(run, tmp_path / "run")
    spec = tmp_path / "spec.yaml"
    spec.write_text("name: toy\ngrids: [{}]\ninterpretability: {metrics: [vii, toy_energy]}\n")
    rows = _toy_rows()
    _register_toy_metric()
    try:
        # the command line lists it, and computes it on a run
        with pytest.raises(SystemExit):
            main(["evaluate", "--help"])
        assert "posterior_score_alignment, toy_energy (saved in" in " ".join(capsys.readouterr().out.split())
        assert main(["evaluate", str(copy), "--metrics", "vii,toy_energy", "--n", "10", "--json"]) == 0
        scores = json.loads(capsys.readouterr().out)
        data = load_dataset("synthetic", val_size=RunDir(copy).read_config().val_size)
        x, y = data.test.images[:10].float() / 255, data.test.labels[:10]
        grads = input_gradients(RunDir(copy).load_model(), x, y)
        assert scores["toy_energy"] == pytest.approx(float(grads.abs().flatten(1).mean(1).double().mean()))
        assert default_metrics() == ["vii", "alignment", "deletion", "insertion"]  # not in the default set
        # a spec's interpretability section accepts it
        assert load_spec(spec).interpretability["metrics"] == ["vii", "toy_energy"]
        # the report's table and the figures show it, with its direction
        assert tables.interpretability_scores(rows) == {"gradient": ["vii", "toy_energy"]}
        header, body = _interpretability_table(rows)
        assert (
            header[-2:] == ["vii ↑", "toy_energy ↓"]
            and body[0][-1] == "0.2500 ± 0.0707 [-0.3853, 0.8853] [floor 0.3000]"
        )
        assert figures.interpretability_figure(rows, [tmp_path / "interpretability.png"])[0].is_file()
    finally:
        METRICS.unregister("toy_energy")
    # gone once unregistered
    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    assert "toy_energy" not in capsys.readouterr().out
    with pytest.raises(ValueError, match="unknown metric 'toy_energy'"):
        load_spec(spec)
    assert tables.interpretability_scores(rows) == {"gradient": ["vii"]}
    assert main(["evaluate", str(copy), "--metrics", "toy_energy"]) == 2
    assert "unknown metric 'toy_energy'" in capsys.readouterr().err


@pytest.mark.parametrize(
    "section,needle",
    [
        ("{metrics: [vii, sharpness]}", "interpretability.metrics[1]: unknown metric 'sharpness'"),
        ("{explainers: [lime]}", "interpretability.explainers[0]: unknown explainer 'lime'"),
        ("{n: 0}", "interpretability.n: expected a positive integer"),
        ("{floor: maybe}", "interpretability.floor: expected true or false"),
        ("{only: {methd: [nm]}}", "interpretability.only: unknown TrainConfig field 'methd'"),
        ("{sample: 3}", "interpretability: unknown key(s) sample"),
    ],
)
def test_spec_interpretability_errors_name_the_key(tmp_path, section, needle):
    from noisemod.experiments import load_spec

    path = tmp_path / "spec.yaml"
    path.write_text(f"name: x\ngrids: [{{}}]\ninterpretability: {section}\n")
    with pytest.raises(ValueError, match=re.escape(needle)):
        load_spec(path)


def test_explain_draws_one_row_per_explainer(run, capsys):
    from PIL import Image

    out = run.parent / "maps.png"
    assert (
        main(
            [
                "explain",
                str(run),
                "-n",
                "4",
                "--explainers",
                "gradient,smoothgrad,integrated-gradients",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    with Image.open(out) as im:
        tall = im.size[1]
    assert main(["explain", str(run), "-n", "4", "--out", str(out)]) == 0
    with Image.open(out) as im:
        assert im.size[1] < tall  # input + one row against input + three rows
    assert main(["explain", str(run), "--explainers", "gradient,lime"]) == 2
    assert "unknown explainer 'lime'" in capsys.readouterr().err


def test_evaluate_cascading_prints_and_saves_layers(run, capsys):
    assert main(["evaluate", str(run), "--cascading", "--explainer", "input-x-gradient", "--n", "10", "--json"]) == 0
    layers = json.loads(capsys.readouterr().out)
    assert next(iter(layers)) == "net.classifier.5" and all(-1 <= v <= 1 for v in layers.values())
    saved = RunDir(run).read_interpretability()["input-x-gradient/cascading"]
    assert saved["n"] == 10 and [name for name, _ in saved["layers"]] == list(layers)
    assert "input-x-gradient/cascading_ms_per_image" not in RunDir(run).interpretability_columns()
    assert main(["evaluate", str(run), "--cascading", "--n", "0"]) == 2
    assert main(["evaluate", str(run), "--cascading", "--absolute", "--n", "10", "--json"]) == 0
    assert RunDir(run).read_interpretability()["gradient/cascading-absolute"]["absolute"] is True
    capsys.readouterr()
    assert main(["evaluate", str(run), "--absolute"]) == 2
    assert "--absolute applies to --cascading only" in capsys.readouterr().err
