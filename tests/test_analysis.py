"""A real sweep through the CLI, then the analysis and the report read its logs."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rayevolve import analysis, report
from rayevolve.log import read_programs
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def sweep(ray_cluster, tmp_path_factory):
    cluster, _ = ray_cluster
    sweep_dir = tmp_path_factory.mktemp("sweep")
    done = run_cli(
        "seed=0,1",
        "islands.count=2",
        "stop.max_evaluations=30",
        "islands.migration.interval=5",
        "log.stats_interval_s=1",
        f"cluster.address={cluster.address}",
        f"hydra.sweep.dir={sweep_dir}",
        multirun=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return sweep_dir


def test_sweep_runs_every_job_in_its_own_directory(sweep):
    runs = sorted(p.name for p in sweep.iterdir() if (p / "programs").is_dir())
    assert len(runs) == 2 and runs[0].startswith("0_") and runs[1].startswith("1_")


def test_analysis_of_a_real_sweep(sweep):
    data = analysis.load(sweep)
    assert len(data.runs) == 2
    curves = analysis.best_so_far(data)
    for _, curve in curves.groupby("run"):
        assert len(curve) == 31  # the seed and 30 children
        assert (np.diff(curve["best"].to_numpy()) >= 0).all()
    table = analysis.sweep_table(data, threshold=2.0)
    assert set(table["seed"]) == {"0", "1"}
    assert (table["evaluations"] == 30).all() and (table["evals_to_threshold"] == 1).all()
    comparison = analysis.compare(table)
    assert comparison["runs"].tolist() == [2] and np.isfinite(comparison["ci95"].iloc[0])
    breakdown = analysis.failure_breakdown(data)
    assert breakdown["share"].sum() == pytest.approx(1.0)
    best = analysis.best_program(data)
    chain = analysis.lineage(data, best["program_id"])
    assert chain["generation"].iloc[0] == 0 and chain["program_id"].iloc[-1] == best["program_id"]
    assert all(diff.startswith("---") for diff in chain["diff"].iloc[1:])
    operators = analysis.operator_success(data)
    assert operators["children"].sum() == len(data.programs[data.programs["island"] >= 0])
    flows = analysis.migration_flows(data)
    assert len(flows) and (flows["src_island"] != flows["dst_island"]).all()
    assert len(analysis.island_diversity(data)) > 0


def test_plots_have_the_expected_axes(sweep, monkeypatch, tmp_path):
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append((fig, path)) or path)
    data = analysis.load(sweep)
    report.plot_best(data, tmp_path, "evaluation")
    report.plot_best(data, tmp_path, "seconds")
    report.plot_failures(data, tmp_path)
    report.plot_diversity(data, tmp_path)
    report.plot_sweep(analysis.compare(analysis.sweep_table(data)), tmp_path)
    labels = [(fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()) for fig, _ in figures]
    assert labels == [
        ("evaluations", "best score"),
        ("wall time (s)", "best score"),
        ("candidates", "status"),
        ("evaluations (island)", "MAP-Elites cells filled"),
        ("setting", "final best score (mean, 95% CI over seeds)"),
    ]
    assert all(fig.axes[0].has_data() for fig, _ in figures)


def test_report_cli_writes_a_self_contained_page_and_images(sweep, tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rayevolve.report",
            str(sweep),
            "--out",
            str(tmp_path),
            "--threshold",
            "2.3",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "report.html" in done.stdout and "ok" in done.stdout
    page = (tmp_path / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 5
    assert "http://" not in page and "https://" not in page  # nothing to fetch
    for png in ("best_vs_evaluations", "best_vs_time", "failures", "diversity", "sweep"):
        data = (tmp_path / f"{png}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_report_of_a_missing_directory_is_a_clear_error(tmp_path):
    assert report.main([str(tmp_path / "nothing")]) == 1


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="needs Debian's chromium (.ci/run installs it)"
)
def test_report_renders_in_headless_chromium_without_console_errors(sweep, tmp_path):
    page = report.build(sweep, tmp_path / "report")
    shot = tmp_path / "shot.png"
    done = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1100,3000",
            f"--screenshot={shot}",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert console == []
    assert shot.read_bytes().startswith(b"\x89PNG") and shot.stat().st_size > 20_000


def test_optuna_preset_runs_trials_and_maximises_the_best_score(ray_cluster, tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cluster, _ = ray_cluster
    done = run_cli(
        "+experiment=optuna_islands",
        "hydra.sweeper.n_trials=2",
        "stop.max_evaluations=12",
        f"cluster.address={cluster.address}",
        f"hydra.sweep.dir={tmp_path}",
        multirun=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Best value" in done.stdout + done.stderr
    assert len(analysis.load(tmp_path).runs) == 2


def readme_recipes() -> dict[str, str]:
    """The README's analysis recipes: the python block after each `<!-- recipe: NAME -->`."""
    text = (ROOT / "README.md").read_text()
    recipes = {}
    for part in text.split("<!-- recipe: ")[1:]:
        name, _, rest = part.partition(" -->")
        recipes[name] = rest.split("```python\n", 1)[1].split("```", 1)[0]
    return recipes


@pytest.mark.parametrize("name", ["pandas", "duckdb", "polars"])
def test_the_readme_recipes_run_as_written_on_a_sweep(sweep, tmp_path, name):
    """Run from a folder whose runs/ holds a sweep (runs/sweeps/<time>/<job>/) and a
    single run beside it (runs/<run>/), as `make run` and `-m` leave them."""
    jobs = sorted(p for p in sweep.iterdir() if (p / "programs").is_dir())
    shutil.copytree(sweep, tmp_path / "runs" / "sweeps" / "2026-11-28_00-00-00")
    shutil.copytree(jobs[0], tmp_path / "runs" / "2026-11-28_00-00-01_circle_packing")
    recipe = readme_recipes()[name]
    done = subprocess.run(
        [sys.executable, "-c", recipe], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    programs = read_programs(tmp_path / "runs").to_pandas()
    runs = set(programs["run"])
    assert len(runs) == 3  # both jobs of the sweep and the single run
    if name == "pandas":
        assert all(run in done.stdout for run in runs), done.stdout
    if name == "duckdb":  # the first table: island, n, best; its n cover every run
        counted = re.findall(r"│\s*(-?\d+)\s*│\s*(\d+)\s*│\s*[\d.]+\s*│", done.stdout)
        assert sum(int(n) for _, n in counted) == (programs["status"] == "ok").sum(), done.stdout
    if name == "polars":  # one row per run id (the single run is a copy of the first job)
        assert "shape: (2, 3)" in done.stdout, done.stdout
