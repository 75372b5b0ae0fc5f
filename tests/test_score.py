"""Score alignment: the denoiser (denoising score matching, Tweedie's score), its cache, and the
``score_alignment`` metric, against closed forms."""

import json
import math

import pytest
import torch
from torch import nn

from noisemod.cli import main
from noisemod.config import TrainConfig
from noisemod.denoiser import (
    DEFAULT_SCORE_SIGMA,
    Denoiser,
    DenoiserConfig,
    DenoiserError,
    build_denoiser,
    denoiser_score,
    find_denoiser,
    fit_denoiser,
    psnr_table,
    score_function,
)
from noisemod.metrics import interpretability, score_alignment_scores
from noisemod.train import fit


def gmm_score(x: torch.Tensor, means: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """The exact score of an equal-weight mixture of Gaussians ``N(mean_k, cov)`` at ``x`` ``(B, D)``:
    ``sum_k r_k(x) cov^-1 (mean_k - x)``, ``r_k`` the posterior of component k. Smoothing by noise of
    std sigma is the same mixture with ``cov + sigma^2 I``."""
    prec = torch.linalg.inv(cov)
    diff = means[None] - x[:, None]  # (B, K, D)
    log_r = -0.5 * torch.einsum("bkd,de,bke->bk", diff, prec, diff)
    r = torch.softmax(log_r, dim=1)
    return torch.einsum("bk,de,bke->bd", r, prec, diff)


def gmm_sample(means: torch.Tensor, chol: torch.Tensor, n: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    k = torch.randint(len(means), (n,), generator=g)
    return means[k] + torch.randn(n, means.shape[1], generator=g, dtype=means.dtype) @ chol.T, k


# ----------------------------------------------------------------------------- the denoiser


def _mixture(classes: int):
    """An 8-D mixture of 4 isotropic Gaussians (std 0.3, means ~N(0, 4 I)), and a denoiser trained on
    20,000 of its samples by ``fit_denoiser`` (the code that trains the image denoisers): an MLP,
    class-conditional on the component when ``classes``."""
    torch.manual_seed(0)
    dim = 8
    means = 2 * torch.randn(4, dim, generator=torch.Generator().manual_seed(1))
    chol = 0.3 * torch.eye(dim)
    data, labels = gmm_sample(means, chol, 20000, seed=2)
    spec = {"kind": "mlp", "shape": [dim], "width": 128, "center": float(data.mean()), "sigma_data": float(data.std())}
    denoiser = Denoiser({**spec, "classes": classes})
    fit_denoiser(denoiser, data, SIGMAS, steps=1500, batch_size=256, seed=0, labels=labels if classes else None)
    x, y = gmm_sample(means, chol, 2000, seed=3)
    return denoiser, means, x, y


SIGMAS = (0.25, 0.5, 1.0)


def test_the_trained_denoiser_recovers_the_closed_form_score_of_a_gaussian_mixture():
    """The score of the mixture smoothed at sigma is known exactly; the denoiser's gives it by
    Tweedie's formula with mean cosine >= 0.95 at every trained level, on fresh samples (printed;
    docs/metrics.md has the values)."""
    denoiser, means, x, _ = _mixture(classes=0)
    cosines = {}
    for sigma in SIGMAS:
        exact = gmm_score(x, means, (0.3**2 + sigma**2) * torch.eye(x.shape[1]))
        cosines[sigma] = float(score_alignment_scores(denoiser_score(denoiser, x, sigma), exact).mean())
    print("Gaussian mixture, mean cosine of the denoiser's score with the exact one:", cosines)
    assert min(cosines.values()) >= 0.95, cosines
    with pytest.raises(ValueError, match="unconditional: it takes no labels"):
        denoiser(x, 0.5, torch.zeros(len(x), dtype=torch.long))


def test_the_class_conditional_denoiser_recovers_each_components_score():
    """The class-conditional score of component y smoothed at sigma is ``(mean_y - x) / (0.3^2 +
    sigma^2)``; the class-conditional denoiser gives it with mean cosine >= 0.95 at every level."""
    denoiser, means, x, y = _mixture(classes=4)
    cosines = {}
    for sigma in SIGMAS:
        exact = (means[y] - x) / (0.3**2 + sigma**2)
        cosines[sigma] = float(score_alignment_scores(denoiser_score(denoiser, x, sigma, y), exact).mean())
    print("Gaussian mixture, mean cosine of the class-conditional score with the exact one:", cosines)
    assert min(cosines.values()) >= 0.95, cosines


def test_psnr_table_of_the_identity():
    class Identity(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def forward(self, x, sigma):
            return x

    images = torch.rand(500, 1, 8, 8)
    table = psnr_table(Identity(), images, [0.1, 0.5])
    assert set(table) == {"0.1", "0.5"}
    for sigma, row in zip((0.1, 0.5), table.values(), strict=True):
        assert row["noisy_psnr"] == pytest.approx(-20 * math.log10(sigma), abs=0.2)
        assert row["gain"] == pytest.approx(0.0, abs=1e-9)


# ----------------------------------------------------------------------------- the metric


def _bayes_linear(means: torch.Tensor, cov: torch.Tensor) -> nn.Linear:
    """The Bayes classifier of equal-prior Gaussian classes with a shared covariance: logits
    ``mean_k^T cov^-1 x - mean_k^T cov^-1 mean_k / 2``."""
    prec = torch.linalg.inv(cov)
    net = nn.Linear(means.shape[1], len(means)).double()
    with torch.no_grad():
        net.weight.copy_(means @ prec)
        net.bias.copy_(-0.5 * torch.einsum("kd,de,ke->k", means, prec, means))
    return net


def test_score_alignment_of_the_bayes_classifier_is_what_the_formula_says():
    """Classes ``N(mean_k, cov)``: the loss gradient's evidence ``-grad CE = grad log p(y|x)`` is
    ``cov^-1 (mean_y - sum_j p_j mean_j)`` and the target logit's gradient ``cov^-1 mean_y``; the
    data's score at sigma is the mixture's (:func:`gmm_score`). The metric is their mean cosine,
    exact even where a confident sample's loss gradient is tiny (``F.cosine_similarity``'s eps would
    call those 0)."""
    g = torch.Generator().manual_seed(0)
    dim, sigma = 6, 0.5
    means = torch.randn(3, dim, generator=g, dtype=torch.float64)
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64) * 0.3
    cov = a @ a.T + 0.2 * torch.eye(dim, dtype=torch.float64)
    x, y = gmm_sample(means, torch.linalg.cholesky(cov), 300, seed=1)
    net = _bayes_linear(means, cov)
    smoothed = cov + sigma**2 * torch.eye(dim, dtype=torch.float64)

    def score(v, labels=None):  # the mixture's score, or class y's: cov_sigma^-1 (mean_y - x)
        return gmm_score(v, means, smoothed) if labels is None else (means[labels] - v) @ torch.linalg.inv(smoothed)

    prec = torch.linalg.inv(cov)
    p = torch.softmax(net(x).detach(), dim=1)
    expected = {
        "gradient": (means[y] - p @ means) @ prec,  # prec is symmetric
        "saliency": means[y] @ prec,
    }
    metrics = {"score_alignment": score(x), "class_score_alignment": score(x, y)}
    for explainer, evidence in expected.items():
        got = interpretability(net, x, y, metrics=list(metrics), explainer=explainer, score=score)
        for metric, s in metrics.items():
            want = float(((evidence * s).sum(1) / (evidence.norm(dim=1) * s.norm(dim=1))).mean())
            assert got[metric] == pytest.approx(want, abs=1e-6), (explainer, metric)
            print(f"Bayes classifier, {explainer}: {metric} {want:.4f}")


def test_a_random_network_scores_near_its_floor_and_a_missing_score_is_an_error():
    """A freshly initialized convnet and its floor (another fresh one) score alike, near 0, against
    the exact score of a mixture over 1x8x8 images."""
    dim = 64
    means = torch.rand(4, dim, generator=torch.Generator().manual_seed(0))
    x, _ = gmm_sample(means, 0.1 * torch.eye(dim), 400, seed=1)
    images = x.clamp(0, 1).view(-1, 1, 8, 8)
    labels = torch.randint(3, (400,), generator=torch.Generator().manual_seed(2))
    cov = (0.01 + 0.25**2) * torch.eye(dim)
    score = lambda v: gmm_score(v.flatten(1), means, cov).view_as(v)  # noqa: E731
    torch.manual_seed(5)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 3))
    out = interpretability(net, images, labels, metrics=["score_alignment"], floor=True, seed=1, score=score)
    print("random network:", out)
    assert abs(out["score_alignment"] - out["score_alignment_floor"]) < 0.1
    assert abs(out["score_alignment"]) < 0.2 and abs(out["score_alignment_floor"]) < 0.2
    for metric in ("score_alignment", "class_score_alignment"):
        with pytest.raises(ValueError, match=f"{metric} needs the data's score"):
            interpretability(net, images, labels, metrics=[metric])


def test_score_alignment_scores_by_hand():
    e = torch.tensor([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])
    s = torch.tensor([[2.0, 0.0], [1.0, 1.0], [-1.0, -1.0]])
    assert score_alignment_scores(e, s).tolist() == pytest.approx([1.0, 0.0, -1.0])
    with pytest.raises(ValueError, match="score shape"):
        score_alignment_scores(e, s[:, :1])


# ----------------------------------------------------------------------------- the cache


TINY = DenoiserConfig(sigmas=(0.1, 0.5), steps=3, batch_size=8, width=8)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NOISEMOD_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_the_cache_is_keyed_reused_and_rebuilt_when_corrupt(cache):
    _, record = build_denoiser("digits", TINY)
    assert not record["cached"] and set(record["psnr"]) == {"0.1", "0.5"} and record["build_seconds"] > 0
    assert set(record["psnr"]["0.5"]) == {"noisy_psnr", "denoised_psnr", "gain", "denoised_psnr_given_class"}
    _, again = build_denoiser("digits", TINY)
    assert again["cached"] and again["path"] == record["path"]
    _, other = build_denoiser("digits", DenoiserConfig(sigmas=(0.1, 0.5), steps=4, batch_size=8, width=8))
    assert other["path"] != record["path"]  # another setting, another file
    path = record["path"]
    with open(path, "wb") as f:
        f.write(b"not a checkpoint")
    with pytest.warns(UserWarning, match="rebuilding the denoiser"):
        _, rebuilt = build_denoiser("digits", TINY)
    assert not rebuilt["cached"] and rebuilt["path"] == path
    loaded, info = find_denoiser("digits", 0.5)
    assert list(info["config"]["sigmas"]) == [0.1, 0.5] and loaded.spec["kind"] == "conv"
    x = torch.rand(3, 1, 8, 8)
    assert score_function("digits", 0.5)(x).shape == x.shape
    assert not list(cache.rglob("*.tmp"))  # atomic writes leave nothing behind


def test_a_missing_denoiser_and_an_untrained_sigma_are_errors_naming_the_fix(cache):
    with pytest.raises(DenoiserError, match="no denoiser built for dataset 'digits'.*denoiser train --dataset digits"):
        find_denoiser("digits", 0.5)
    build_denoiser("digits", DenoiserConfig(sigmas=(0.1, 0.5), steps=3, batch_size=8, width=8, conditional=False))
    with pytest.raises(DenoiserError, match="no class-conditional denoiser built for dataset 'digits'"):
        find_denoiser("digits", 0.5, conditional=True)
    assert find_denoiser("digits", 0.5)[0].classes == 0
    build_denoiser("digits", TINY)
    assert find_denoiser("digits", 0.5, conditional=True)[0].classes == 10
    with pytest.raises(DenoiserError, match=r"sigma 0.3 is not a trained noise level.*trained: 0.1, 0.5.*--sigma 0.3"):
        find_denoiser("digits", 0.3)
    for path in (cache / "denoisers").glob("*.pt"):
        path.write_bytes(b"garbage")
    with pytest.raises(DenoiserError, match="2 unreadable"):
        find_denoiser("digits", 0.5)


# ----------------------------------------------------------------------------- the command line


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["--dataset", "nope"], "invalid --dataset='nope'"),
        (["--dataset", "digits", "--sigma", "0.1,-1"], "invalid --sigma='0.1,-1'"),
        (["--dataset", "digits", "--steps", "0"], "invalid --steps=0"),
    ],
)
def test_denoiser_train_bad_input_exits_2(cache, capsys, argv, needle):
    assert main(["denoiser", "train", *argv]) == 2
    assert needle in capsys.readouterr().err
    assert not (cache / "denoisers").exists()


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("score") / "run"
    fit(TrainConfig(dataset="synthetic", model="lenet", epochs=1, batch_size=32), out, progress=False, log=print)
    return out


def test_evaluate_score_alignment_end_to_end(run, cache, capsys):
    argv = ["evaluate", str(run), "--metrics", "score_alignment,class_score_alignment,vii", "--n", "40", "--json", "-q"]
    assert main(argv) == 2
    assert "noisemod denoiser train --dataset synthetic" in capsys.readouterr().err
    assert not (run / "interpretability.json").exists()
    assert main(["denoiser", "train", "--dataset", "synthetic", "--steps", "3", "--width", "8", "--json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["sigmas"] == [0.1, 0.25, 0.5]
    assert main([*argv, "--floor"]) == 0
    scores = json.loads(capsys.readouterr().out)
    names = ("score_alignment", "class_score_alignment", "vii")
    assert set(scores) == {*names, *(m + "_floor" for m in names)}
    assert -1 <= scores["score_alignment"] <= 1 and -1 <= scores["class_score_alignment"] <= 1
    saved = json.loads((run / "interpretability.json").read_text())["gradient"]
    assert saved["score_sigma"] == DEFAULT_SCORE_SIGMA and saved["denoiser"].startswith("synthetic-")
    assert main([*argv, "--score-sigma", "0.3"]) == 2
    assert "sigma 0.3 is not a trained noise level" in capsys.readouterr().err
    assert main(["evaluate", str(run), "--metrics", "vii", "--score-sigma", "0.1"]) == 2
    assert "--score-sigma" in capsys.readouterr().err


# ----------------------------------------------------------------------------- sweeps


def test_a_specs_score_sigma_reaches_the_evaluate_command_and_the_skip_check(tmp_path):
    from noisemod.experiments import load_spec
    from noisemod.experiments.task import interpret_command, missing_explainers
    from noisemod.rundir import RunDir

    path = tmp_path / "spec.yaml"
    path.write_text("name: x\ngrids: [{}]\ninterpretability: {metrics: [vii, score_alignment], score_sigma: 0.5}\n")
    settings = load_spec(path).interpretability
    assert settings["score_sigma"] == 0.5
    cmd = interpret_command("run", "gradient", settings)
    assert cmd[cmd.index("--score-sigma") + 1] == "0.5"
    assert "--score-sigma" not in interpret_command("run", "gradient", {**settings, "metrics": ["vii"]})
    path.write_text("name: x\ngrids: [{}]\ninterpretability: {score_sigma: -1}\n")
    with pytest.raises(ValueError, match="interpretability.score_sigma: expected a positive number"):
        load_spec(path)
    run = RunDir(tmp_path / "run")
    entry = {"n": None, "n_requested": None, "metrics": ["vii", "score_alignment"], "floor": True}
    entry.update(mean=RunDir.MEAN_OF, score_sigma=0.25, scores={})
    run.write_interpretability("gradient", entry)
    assert missing_explainers(run, settings) == ["gradient"]  # computed at 0.25, asked at 0.5
    assert missing_explainers(run, {**settings, "score_sigma": None}) == []  # the default, 0.25
    assert missing_explainers(run, {**settings, "metrics": ["vii"]}) == []
