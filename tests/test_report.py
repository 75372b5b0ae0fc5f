"""`write_report`: a self-contained HTML page and a Markdown twin with the tables, figures and commands."""

import json
import re

import pytest
from test_figures import trained_sweep, write_sweep

from noisemod.analysis import tables
from noisemod.analysis.report import write_report


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    # standard, nm (two seeds) and pgd: fig1, fig2 and fig3
    return write_sweep(
        tmp_path_factory.mktemp("report"),
        ["standard-s0", "nm-s0", "nm-s1", "pgd-s0"],
        spec="fig3-tiny",
        budget="smoke",
        runs_from=trained_sweep(tmp_path_factory),
        failed=["igr-s0"],
    )


def test_write_report(sweep):
    html_path, md_path = write_report(sweep)
    assert (html_path, md_path) == (sweep / "report.html", sweep / "report.md")
    page, md = html_path.read_text(encoding="utf-8"), md_path.read_text(encoding="utf-8")
    rows = tables.load_results(sweep)
    [nm] = [g for g in tables.aggregate(rows) if g["method"] == "nm"]
    nm_cell = f"{nm['test_accuracy_mean']:.4f} ± {nm['test_accuracy_std']:.4f}"
    command = (
        f"cd /somewhere\nnoisemod sweep experiments/fig3-tiny.yaml --out {sweep} --budget smoke --jobs 1\n"
        f"noisemod report {sweep}"
    )
    for text in (page, md):
        assert "fig3-tiny" in text and "smoke" in text
        assert nm_cell in text  # the mean ± std table
        assert all(f"{r['vii']:.4f}" in text and r["run_id"] in text for r in rows)  # every run
        assert command in text
        assert "4 completed, 1 failed (igr-s0)" in text and "| igr-s0 | failed |" in md
        assert "torch" in text and rows[0]["git_sha"] in text  # hardware and versions from result.json
    assert page.count('<img src="data:image/png;base64,') == 4  # fig1, fig2, fig3 and training
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:|//)|url\(|@import|<script|<link""", page)
    header = "| dataset | model | method | steps | runs | test_accuracy | robust_accuracy | vii | train_seconds |"
    assert header in md  # robust accuracy because a pgd run is in the sweep
    [pgd] = [r for r in rows if r["method"] == "pgd"]
    assert f"| pgd | 2 | 1 | {pgd['test_accuracy']:.4f} | {pgd['robust_accuracy']:.4f} |" in md
    low, high = nm["test_accuracy_ci"]  # two seeds: the mean's 95% t interval beside mean ± std
    assert f"| 2 | {nm_cell} [{low:.4f}, {high:.4f}] | - |" in md  # nm has no robust accuracy
    # nm against standard training, and the same statistics as JSON
    assert "## Against standard training" in md
    assert "| synthetic | lenet | nm b0.5 gaussian | vii |" in md and "| pgd steps2 | test_accuracy |" in md
    stats = json.loads((sweep / "report.json").read_text())
    assert {c["metric"] for c in stats["comparisons"]} == {"test_accuracy", "vii"}
    assert [g["n"] for g in stats["conditions"] if g["method"] == "nm"] == [2]
    assert "| --- |" in md and "](figures/fig1.png)" in md and "](figures/fig3.png)" in md
    assert sorted(p.name for p in (sweep / "figures").iterdir()) == [
        "fig1.png",
        "fig1.svg",
        "fig2.png",
        "fig2.svg",
        "fig3.png",
        "fig3.svg",
        "training.png",
        "training.svg",
    ]


def test_report_needs_results(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"results\.csv"):
        write_report(tmp_path)
    (tmp_path / "results.csv").write_text("")
    with pytest.raises(ValueError, match=r"results\.csv"):
        write_report(tmp_path)
    assert not (tmp_path / "report.html").exists()


def test_a_report_of_an_archive_needs_no_checkpoints(sweep, tmp_path):
    import shutil

    archive = tmp_path / "archive"
    shutil.copytree(sweep, archive)
    for checkpoint in archive.rglob("*.pt"):
        checkpoint.unlink()
    html_path, md_path = write_report(archive)
    assert html_path.is_file()
    md = md_path.read_text(encoding="utf-8")
    assert "an archive (no checkpoints): the figures that are gradient maps (fig1) are left out, and figure 4" in md
    assert "fig3" in md and "figures/fig1.png" not in md
    assert all(f"{r['vii']:.4f}" in md for r in tables.load_results(archive))
