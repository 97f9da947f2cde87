"""A real sweep through the CLI, then the analysis and the report read its logs."""

import re
import shutil
import subprocess
import sys

import numpy as np
import pytest

from rayevolve import analysis, report
from rayevolve.log import read_programs
from tests.conftest import INTERVAL, ROOT, run_cli

pytestmark = pytest.mark.e2e


def test_sweep_runs_every_job_in_its_own_directory(sweep):
    runs = sorted(p.name for p in sweep.iterdir() if (p / "programs").is_dir())
    assert [r[:2] for r in runs] == ["0_", "1_", "2_", "3_"]


def test_analysis_of_a_real_sweep(sweep):
    data = analysis.load(sweep)
    assert len(data.runs) == 4
    curves = analysis.best_so_far(data)
    for _, curve in curves.groupby("run"):
        assert len(curve) == 31  # the seed and 30 children
        assert (np.diff(curve["best"].to_numpy()) >= 0).all()
    table = analysis.sweep_table(data, threshold=2.0)
    assert set(table["seed"]) == {"0", "1"}
    assert (table["evaluations"] == 30).all() and (table["evals_to_threshold"] == 1).all()
    comparison = analysis.compare(table)
    assert comparison["runs"].tolist() == [2, 2] and np.isfinite(comparison["ci95"]).all()
    # only what varies: one row per migration interval, seeds pooled, constants left out
    varying = analysis.compare_varying(table)
    assert list(varying.columns) == [INTERVAL, "runs", "mean", "ci95"]
    assert varying[INTERVAL].tolist() == ["5", "10"] and varying["runs"].tolist() == [2, 2]
    assert analysis.varying_settings(table, "seed") == [INTERVAL]
    assert analysis.constant_settings(table)["islands.count"] == "2"
    labels = analysis.run_labels(table)
    assert len(set(labels.values())) == 4 and all(len(v) <= 48 for v in labels.values())
    breakdown = analysis.failure_breakdown(data)
    assert breakdown["share"].sum() == pytest.approx(1.0)
    best = analysis.best_program(data)
    chain = analysis.lineage(data, best["program_id"])
    assert chain["generation"].iloc[0] == 0 and chain["program_id"].iloc[-1] == best["program_id"]
    assert all(diff.startswith("---") for diff in chain["diff"].iloc[1:])
    marks = analysis.lineage(data, best["program_id"])
    islands = marks["island"].tolist()
    assert marks["hop"].tolist() == [
        i > 0 and islands[i - 1] >= 0 and islands[i] != islands[i - 1] for i in range(len(marks))
    ]
    whole = analysis.seed_to_best_diff(data, best["program_id"])
    assert whole.startswith("--- initial program") or best["generation"] == 0
    messages = analysis.failure_messages(data)
    failed = (data.programs["status"] != "ok").sum()
    assert messages["count"].sum() == failed or len(messages) == 50
    operators = analysis.operator_success(data)
    assert operators["children"].sum() == len(data.programs[data.programs["island"] >= 0])
    flows = analysis.migration_flows(data)
    assert len(flows) and (flows["src_island"] != flows["dst_island"]).all()
    assert len(analysis.island_diversity(data)) > 0


def test_island_curves_never_run_ahead_of_the_run(sweep):
    data = analysis.load(sweep)
    overall = analysis.best_so_far(data)
    islands = analysis.best_so_far(data, per_island=True)
    for (run, _), curve in islands.groupby(["run", "island"]):
        whole = overall[overall["run"] == run].set_index("evaluation")["best"]
        assert (curve["evaluation"] <= whole.index.max()).all()
        assert (curve["best"].to_numpy() <= whole.loc[curve["evaluation"]].to_numpy() + 1e-12).all()


def test_every_actor_logs_where_it_runs(sweep):
    data = analysis.load(sweep)
    placed = analysis.placements(data)
    for run in data.runs:
        roles = placed[placed["run"] == run.name]["role"].value_counts().to_dict()
        assert roles == {"runlog": 1, "mutator": 1, "pool": 1, "island": 2, "evaluator": 2}
    # one host name per node, a different one for each node (two nodes share this machine)
    hosts = placed.groupby("node_id")["host"].nunique()
    assert (hosts == 1).all()
    assert placed.groupby("host")["node_id"].nunique().max() == 1
    rows = data.programs.dropna(subset=["node_id"])
    by_node = dict(zip(placed["node_id"], placed["host"], strict=True))
    assert all(by_node.get(n, h) == h for n, h in zip(rows["node_id"], rows["host"], strict=True))


def test_plots_have_the_expected_axes(sweep, monkeypatch, tmp_path):
    figures = []
    monkeypatch.setattr(report, "_save", lambda fig, path: figures.append((fig, path)) or path)
    data = analysis.load(sweep)
    report.plot_best(data, tmp_path, "evaluation")
    report.plot_best(data, tmp_path, "seconds")
    report.plot_failures(data, tmp_path)
    report.plot_diversity(data, tmp_path)
    report.plot_sweep(analysis.compare_varying(analysis.sweep_table(data)), tmp_path)
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
    assert "Same in every run: " in page and "islands.count=2" in page
    assert "From the initial program to the best" in page and '<span class="add">+' in page
    assert "Grouped by message" in page or "ok" in page
    for png in ("best_vs_evaluations", "best_vs_time", "failures", "diversity", "sweep"):
        data = (tmp_path / f"{png}.png").read_bytes()
        assert data.startswith(b"\x89PNG") and len(data) > 5000


def test_report_of_a_missing_directory_is_a_clear_error(tmp_path):
    assert report.main([str(tmp_path / "nothing")]) == 1


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
    assert len(runs) == 5  # the four jobs of the sweep and the single run
    if name == "pandas":
        assert all(run in done.stdout for run in runs), done.stdout
    if name == "duckdb":  # the first table: island, n, best; its n cover every run
        counted = re.findall(r"│\s*(-?\d+)\s*│\s*(\d+)\s*│\s*[\d.]+\s*│", done.stdout)
        assert sum(int(n) for _, n in counted) == (programs["status"] == "ok").sum(), done.stdout
    if name == "polars":  # one row per run id (the single run is a copy of the first job)
        assert "shape: (4, 3)" in done.stdout, done.stdout


def test_a_crossover_in_the_lineage_is_marked_once(sweep):
    """One step of the best program's lineage made a crossover: only that step names a
    second parent (None elsewhere, not pandas' NaN), the report marks it, and the web
    view draws it alone as a star."""
    from rayevolve.ui import views

    data = analysis.load(sweep)
    best = analysis.best_program(data)
    one = analysis.for_run(data, best["run"])
    chain = analysis.lineage(one, best["program_id"])
    if len(chain) < 2:
        pytest.skip("the best program is the initial one")
    crossed, other = chain["program_id"].iloc[-1], chain["program_id"].iloc[0]
    programs = one.programs.copy()
    at = programs.index[programs["program_id"] == crossed]
    programs.loc[at, "mutation_operator"] = "crossover"
    programs["inspiration_ids"] = [
        [other] if pid == crossed else [] for pid in programs["program_id"]
    ]
    one = analysis.RunData(programs, one.events, one.runs, one.maximize)
    seconds = analysis.lineage(one, best["program_id"])["second_parent"].tolist()
    assert seconds == [None] * (len(chain) - 1) + [other]
    page = "".join(report._lineage_sections(one))
    assert page.count("crossover with") == 1 and f"crossover with {other[:8]}" in page
    figure = views.lineage_figure(one, best["run"], best["program_id"])
    symbols = [
        s
        for trace in figure.data
        if trace.marker and trace.marker.symbol is not None
        for s in trace.marker.symbol
    ]
    assert symbols.count("star") == 1
