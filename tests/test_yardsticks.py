"""Yardsticks: every way the validation measures perceptual alignment (explainer, metric, score
pairing, sigma, point, pixels), against hand-computed values; shuffled labels; the sweep's step."""

import json

import pytest
import torch
from test_score import _bayes_linear, gmm_sample, gmm_score
from torch import nn

from noisemod.cli import main
from noisemod.config import TrainConfig
from noisemod.metrics import SCORE_METRICS, Yardstick, measure_yardsticks, yardsticks


def _cos(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double().flatten(1), b.double().flatten(1)
    return float(((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))).mean())


def test_names_read_back_and_bad_ones_are_refused():
    sticks = yardsticks()
    assert len(sticks) == 3 * 4 + 3 * 3 * 3 * 2 * 2
    assert len({s.name for s in sticks}) == len(sticks)
    for s in sticks:
        assert Yardstick.parse(s.name) == s
    assert Yardstick("logit-sum", "score_alignment", 0.25, "noisy").name == "logit-sum/score_alignment@0.25,noisy"
    for bad in ("gradient/vii@0.25", "gradient/score_alignment", "nope/vii", "gradient/nope", "saliency/vii@x"):
        with pytest.raises(ValueError):
            Yardstick.parse(bad)
    with pytest.raises(ValueError, match="only the score alignments"):
        Yardstick("gradient", "vii", None, "noisy")


def test_the_three_pairings_of_the_bayes_classifier_are_what_the_formulas_say():
    """Gaussian classes ``N(mean_k, cov)``: the data's scores at sigma are closed forms (the mixture's
    and each class's, smoothed), so ``s(x|y) - s(x)`` is too; each pairing is the mean cosine of the
    explainer's evidence with it. The target logit's gradient of the Bayes classifier of the
    smoothed data is ``cov_sigma^-1 mean_y``, and its posterior pairing is high: the gradient of
    ``log p(y|x) = logit_y - logsumexp`` is the target gradient minus the softmax-weighted mean."""
    g = torch.Generator().manual_seed(0)
    dim, sigma = 6, 0.5
    means = torch.randn(3, dim, generator=g, dtype=torch.float64)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.3
    cov = a @ a.T + 0.2 * torch.eye(dim, dtype=torch.float64)
    smoothed = cov + sigma**2 * torch.eye(dim, dtype=torch.float64)
    x, y = gmm_sample(means, torch.linalg.cholesky(cov), 200, seed=1)
    net = _bayes_linear(means, smoothed)
    sprec = torch.linalg.inv(smoothed)

    def score(v, labels=None):
        return gmm_score(v, means, smoothed) if labels is None else (means[labels] - v) @ sprec

    p = torch.softmax(net(x).detach(), dim=1)
    evidence = {"gradient": (means[y] - p @ means) @ sprec, "saliency": means[y] @ sprec}
    pairings = {
        "score_alignment": score(x),
        "class_score_alignment": score(x, y),
        "posterior_score_alignment": score(x, y) - score(x),
    }
    sticks = [Yardstick(e, m, sigma) for e in evidence for m in SCORE_METRICS]
    got = measure_yardsticks(net, x, y, sticks, mean=x.mean(0), scores=lambda s: score, floor=False)
    for e, ev in evidence.items():
        for m, s in pairings.items():
            assert got[f"{e}/{m}@0.5"] == pytest.approx(_cos(ev, s), abs=1e-6), (e, m)
    # the loss gradient of the Bayes classifier of the smoothed data is grad log p_sigma(y|x) itself
    assert got["gradient/posterior_score_alignment@0.5"] == pytest.approx(1.0, abs=1e-9)


def _linear_images():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    x = torch.rand(30, 1, 4, 4)
    x[:, :, 0, :2] = 0.0  # saturated: black
    x[:, :, 3, 3] = 1.0  # saturated: white
    y = torch.randint(0, 3, (30,))
    return net, x, y


def test_unsaturated_pixels_and_the_noisy_point_by_hand():
    """``unsaturated``: the cosine over the elements strictly inside (0, 1) of the clean image;
    ``noisy``: explanation and score at ``x + sigma n`` (n seeded), the mask still the clean image's."""
    net, x, y = _linear_images()
    weights = net[1].weight.detach()
    fixed = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(5))

    def score(v, labels=None):  # depends on the point, so a wrong point changes the value
        return fixed + v

    sticks = [
        Yardstick("saliency", "score_alignment", 0.5),
        Yardstick("saliency", "score_alignment", 0.5, pixels="unsaturated"),
        Yardstick("saliency", "score_alignment", 0.5, point="noisy"),
        Yardstick("saliency", "score_alignment", 0.5, point="noisy", pixels="unsaturated"),
    ]
    got = measure_yardsticks(net, x, y, sticks, mean=x.mean(0), scores=lambda s: score, floor=False, seed=3)
    target = weights[y].view(-1, 1, 4, 4)  # the target logit's gradient of a linear model
    mask = ((x > 0) & (x < 1)).double()
    noisy = x + 0.5 * torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    assert got[sticks[0].name] == pytest.approx(_cos(target, score(x)), abs=1e-9)
    assert got[sticks[1].name] == pytest.approx(_cos(target * mask, score(x) * mask), abs=1e-9)
    assert got[sticks[2].name] == pytest.approx(_cos(target, score(noisy)), abs=1e-9)
    assert got[sticks[3].name] == pytest.approx(_cos(target * mask, score(noisy) * mask), abs=1e-9)
    assert len({round(v, 9) for v in got.values()}) == 4


def test_every_yardstick_has_a_floor_and_the_floor_is_the_fresh_model():
    net, x, y = _linear_images()
    with torch.no_grad():
        net[1].weight.copy_(torch.randn(3, 16, generator=torch.Generator().manual_seed(9)))  # "trained"
    out = measure_yardsticks(net, x, y, yardsticks(), mean=x.mean(0), scores=lambda s: lambda v, labels=None: v)
    names = [s.name for s in yardsticks()]
    assert set(out) == {*names, *(n + "_floor" for n in names)}
    assert out["saliency/vii"] != out["saliency/vii_floor"]
    assert all(-1 <= v <= 1 for k, v in out.items() if "deletion" not in k and "insertion" not in k)
    with pytest.raises(ValueError, match="scores="):
        measure_yardsticks(net, x, y, yardsticks(), mean=x.mean(0))


def test_shuffled_labels_permute_the_training_labels_only():
    from noisemod.training.build import load_data

    config = TrainConfig(dataset="digits", train_size=300, seed=1)
    _, plain = load_data(config)
    _, shuffled = load_data(config.replace(shuffle_labels=True))
    _, again = load_data(config.replace(shuffle_labels=True))
    _, other_seed = load_data(config.replace(shuffle_labels=True, seed=2))
    assert torch.equal(shuffled.images, plain.images)
    assert torch.equal(shuffled.labels.sort().values, plain.labels.sort().values)
    assert (shuffled.labels == plain.labels).float().mean() < 0.3
    assert torch.equal(again.labels, shuffled.labels)
    assert not torch.equal(other_seed.labels[:50], shuffled.labels[:50])


def test_the_spec_section_the_sweep_step_and_its_run_ids(tmp_path):
    from noisemod.experiments import load_spec
    from noisemod.experiments.spec import expand, yardsticks_for
    from noisemod.experiments.task import missing_post
    from noisemod.rundir import RunDir

    path = tmp_path / "spec.yaml"
    text = "name: x\ngrids: [{dataset: [digits], shuffle_labels: [false, true]}]\nyardsticks: {images: 50}\n"
    path.write_text(text)
    path.write_text(text + "budgets: {quick: {epochs: 1}}\n")
    spec = load_spec(path)
    runs = expand(spec, "quick")
    assert [r.run_id for r in runs] == ["digits-lenet-standard-s0", "digits-lenet-standard-shuffled-labels-s0"]
    assert yardsticks_for(spec, runs[0].config) == {"images": 50}
    run = RunDir(tmp_path / "run")
    run.path.mkdir()
    (command,) = missing_post(run, {"yardsticks": {"images": 50}})
    assert command[3:] == ["evaluate", str(run.path), "--yardsticks", "--n", "50", "--json", "--quiet"]
    run.write_yardsticks({"n": 50, "values": {s.name: 0.0 for s in yardsticks()}})
    assert missing_post(run, {"yardsticks": {"images": 50}}) == []
    assert missing_post(run, {"yardsticks": {"images": 60}}) != []
    path.write_text("name: x\ngrids: [{}]\nyardsticks: {images: 0}\n")
    with pytest.raises(ValueError, match="yardsticks.images: expected a positive integer"):
        load_spec(path)


@pytest.mark.slow
def test_evaluate_yardsticks_end_to_end(tmp_path, monkeypatch, capsys):
    from noisemod.train import fit

    monkeypatch.setenv("NOISEMOD_CACHE", str(tmp_path / "cache"))
    run = tmp_path / "run"
    fit(TrainConfig(dataset="synthetic", model="lenet", epochs=1, batch_size=32), run, progress=False, log=print)
    argv = ["evaluate", str(run), "--yardsticks", "--n", "20", "--json", "-q"]
    assert main(argv) == 2
    assert "noisemod denoiser train --dataset synthetic" in capsys.readouterr().err
    assert not (run / "yardsticks.json").exists()
    assert main(["denoiser", "train", "--dataset", "synthetic", "--steps", "3", "--width", "8", "--json", "-q"]) == 0
    capsys.readouterr()
    assert main(argv) == 0
    values = json.loads(capsys.readouterr().out)
    saved = json.loads((run / "yardsticks.json").read_text())
    assert saved["n"] == 20 and saved["values"] == values and saved["denoiser"][0].startswith("synthetic-")
    assert len(values) == 2 * len(yardsticks())
    assert main([*argv[:-2], "--metrics", "vii"]) == 2
    assert main(["evaluate", str(run), "--yardsticks", "--n", "0"]) == 2
