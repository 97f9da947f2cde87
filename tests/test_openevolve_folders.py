"""Task folders written for OpenEvolve run as shipped: its result type, its score
fallback, its cascade switch, sync and async stages, relative paths, import-time output,
other seed names, its config.yaml (`tests/tasks/openevolve_style` follows its examples)."""

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from rayevolve.config import FeatureConfig, SelectionConfig, TaskConfig
from rayevolve.islands.features import BuiltIn, feature_value, unreported_features
from rayevolve.islands.population import Population
from rayevolve.mutation.offline import OfflineBackend
from rayevolve.openevolve_config import OpenEvolveConfigError, find, read
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult
from rayevolve.sandbox.forkserver import ForkServerError
from rayevolve.sandbox.runner import Sandbox, SandboxLimits
from rayevolve.tasks import TaskError, load_task
from tests.conftest import TASKS, run_cli

FOLDER = TASKS / "openevolve_style"
LIMITS = SandboxLimits(
    timeout_s=10.0, memory_limit_mb=1024, output_limit_bytes=4096, file_limit_bytes=1 << 20
)
PROGRAM = (FOLDER / "initial_program.py").read_text()


def judge(sandbox, folder: Path, code: str, **kwargs) -> EvalResult:
    return sandbox(
        code,
        suffix=".py",
        evaluator=folder / "evaluator.py",
        task_dir=folder,
        limits=LIMITS,
        **kwargs,
    )


def test_evaluation_result_async_stage_relative_path_and_mean_score(sandbox):
    """EvaluationResult (from the stand-in package: OpenEvolve is not installed here),
    bytes artifacts, an async stage 2, data read by relative path, no combined_score:
    the score is the mean of the numeric metrics that are not features."""
    result = judge(sandbox, FOLDER, PROGRAM.replace("1.0", "3.1"), feature_names=("spread",))
    assert result.status == Outcome.OK and result.stage == 2, result.artifacts
    closeness = 1 / (1 + 0.1)
    assert result.metrics == pytest.approx({"closeness": closeness, "spread": 3.1, "exact": 1.0})
    assert result.score == pytest.approx((closeness + 1.0) / 2)
    assert result.artifacts["stage1"] == "guessed"
    assert result.artifacts["openevolve_module"] == "openevolve.evaluation_result"
    assert result.stage_metrics == (("closeness", "spread"), ("closeness", "exact", "spread"))
    assert "evaluator: ready" in result.artifacts["stdout"]  # printed, not lost or harmful


def test_cascade_off_calls_evaluate(sandbox):
    result = judge(sandbox, FOLDER, PROGRAM, cascade=False)
    assert result.status == Outcome.OK and result.stage == 1
    assert result.artifacts["called"] == "evaluate" and result.score == 0.0


def test_cascade_threshold_applies_to_the_fallback_score(sandbox):
    far = judge(sandbox, FOLDER, PROGRAM.replace("1.0", "-50.0"), cascade_thresholds=(0.3,))
    assert far.status == Outcome.OK and far.stage == 1 and "threshold" in far.artifacts["cascade"]


@pytest.mark.parametrize(
    "returned, status, message",
    [
        ("{'note': 'no numbers'}", Outcome.REJECTED, "no numeric metric"),
        ("{'combined_score': 'high'}", Outcome.REJECTED, "non-numeric"),
        ("['a list']", Outcome.REJECTED, "neither a dict nor an EvaluationResult"),
        ("'0.93'", Outcome.REJECTED, "returned str '0.93', neither a dict"),  # says what it got
        ("{'timeout': True, 'flag': True}", Outcome.REJECTED, "no numeric metric"),
    ],
)
def test_results_without_a_score_are_rejected(sandbox, tmp_path, returned, status, message):
    (tmp_path / "evaluator.py").write_text(f"def evaluate(p):\n    return {returned}\n")
    result = judge(sandbox, tmp_path, "x = 1\n")
    assert result.status == status and message in result.artifacts["error"]


def test_the_real_package_wins_over_the_stand_in(sandbox, tmp_path):
    """An `openevolve` the evaluator's folder (or the environment) provides is the one
    imported; the stand-in only fills its absence."""
    package = tmp_path / "openevolve"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "evaluation_result.py").write_text(
        "class EvaluationResult:\n"
        "    def __init__(self, metrics, artifacts=None):\n"
        "        self.metrics, self.artifacts = metrics, artifacts or {}\n"
        "REAL = 'yes'\n"
    )
    (tmp_path / "evaluator.py").write_text(
        "from openevolve.evaluation_result import EvaluationResult, REAL\n"
        "def evaluate(p):\n"
        "    return EvaluationResult({'combined_score': 2.0}, {'real': REAL})\n"
    )
    result = judge(sandbox, tmp_path, "x = 1\n")
    assert result.score == 2.0 and result.artifacts["real"] == "yes"


def test_a_candidate_writes_beside_the_task_files_but_not_into_them(sandbox, tmp_path):
    """The working directory shows the task's files by relative path and takes new files;
    a task file rewritten through it is back for the next candidate."""
    (tmp_path / "data.txt").write_text("7")
    (tmp_path / "evaluator.py").write_text(
        "import os\n"
        "def evaluate(p):\n"
        "    exec(open(p).read(), {})\n"
        "    return {'combined_score': float(open('data.txt').read()),\n"
        "            'own': float(os.path.exists('made.txt'))}\n"
    )
    writer = (
        "open('made.txt', 'w').write('mine')\n"
        "try:\n    open('data.txt', 'w').write('1000')\nexcept OSError:\n    pass\n"
    )
    first = judge(sandbox, tmp_path, writer)
    assert first.status == Outcome.OK and first.metrics["own"] == 1.0
    second = judge(sandbox, tmp_path, "x = 1\n")
    assert second.score == 7.0 and second.metrics["own"] == 0.0
    assert (tmp_path / "data.txt").read_text() == "7"


def test_fork_server_that_dies_at_import_is_a_start_error_with_its_output(tmp_path):
    (tmp_path / "evaluator.py").write_text(
        "import os\nprint('loading the dataset')\nos._exit(3)\n"
        "def evaluate(p):\n    return {'combined_score': 1.0}\n"
    )
    with pytest.raises(ForkServerError, match="loading the dataset"):
        Sandbox.of_folder(tmp_path, limits=LIMITS, launcher="forkserver", hidden=(str(tmp_path),))


# --- the folder as a task ----------------------------------------------------------------
def test_initial_program_by_name_and_helpful_errors(tmp_path):
    (tmp_path / "evaluator.py").write_text("def evaluate(p):\n    return {}\n")
    (tmp_path / "initial_prompt.txt").write_text("# EVOLVE-BLOCK-START\nx 1\n# EVOLVE-BLOCK-END\n")
    config = TaskConfig(name="t", path=str(tmp_path))
    with pytest.raises(TaskError, match=r"task.initial_program=NAME \(found initial_prompt.txt\)"):
        load_task(config, [])
    config = TaskConfig(name="t", path=str(tmp_path), initial_program="initial_prompt.txt")
    spec = load_task(config, [])
    assert spec.initial_program == "initial_prompt.txt" and spec.suffix == ".txt"
    with pytest.raises(TaskError, match="no such file"):
        load_task(TaskConfig(name="t", path=str(tmp_path), initial_program="nope.py"), [])
    (tmp_path / "evaluator.py").rename(tmp_path / "evaluator_stub.py")
    with pytest.raises(TaskError, match="found evaluator_stub.py: set task.evaluator=NAME"):
        load_task(config, [])
    spec = load_task(
        TaskConfig(
            name="t",
            path=str(tmp_path),
            initial_program="initial_prompt.txt",
            evaluator="evaluator_stub.py",
        ),
        [],
    )
    assert spec.evaluator == "evaluator_stub.py"


def test_offline_mutator_says_when_it_can_change_nothing():
    assert OfflineBackend.cannot_change(PROGRAM, "python") is None
    nothing = "# EVOLVE-BLOCK-START\ndef f(x):\n    return x\n# EVOLVE-BLOCK-END\nY = 3\n"
    assert "only changes numeric literals" in OfflineBackend.cannot_change(nothing, "python")


# --- MAP-Elites features -------------------------------------------------------------------
def _program(code: str, score: float, **metrics: float) -> Program:
    program = Program.create(code, language="python", parent=None, island=0)
    return program.with_result(EvalResult(status=Outcome.OK, score=score, metrics=metrics))


def test_builtin_features():
    a, b = _program("x = 1\n", 1.0), _program("y = 22222\n", 2.0)
    assert feature_value(a, BuiltIn.COMPLEXITY) == len("x = 1\n")
    assert feature_value(a, BuiltIn.DIVERSITY) == 0.0  # nothing to compare with
    assert 0 < feature_value(a, BuiltIn.DIVERSITY, [b]) <= 1
    assert feature_value(a, BuiltIn.DIVERSITY, [a]) == 0.0  # itself is not a reference


def test_learned_ranges_redraw_the_grid():
    population = Population(
        island=0,
        capacity=50,
        archive_size=5,
        features=[FeatureConfig(name="size", min=None, max=None, bins=4)],
        selection=SelectionConfig(),
        maximize=True,
        rng=np.random.default_rng(0),
    )
    cells = [population.add(_program(f"x = {v}\n", v, size=v)).cell for v in (1.0, 2.0, 5.0)]
    assert cells == [(0,), (3,), (3,)]  # the range grew with each new maximum
    stats = population.stats()
    assert stats.cells_filled == 3  # 1 -> bin 0, 2 -> bin 0.25*4=1, 5 -> bin 3 after redraw
    assert population.add(_program("x = 3\n", 3.0, size=3.0)).cell == (2,)


def test_features_the_evaluator_does_not_report_are_named_with_the_fix():
    result = EvalResult(
        status=Outcome.OK,
        score=1.0,
        metrics={"closeness": 0.5, "exact": 1.0},
        stage=2,
        stage_metrics=(("closeness",), ("closeness", "exact")),
    )
    eval_time = [FeatureConfig(name="eval_time", min=0, max=1)]
    assert "'eval_time' is not among the metrics" in unreported_features(eval_time, result, ())
    exact = [FeatureConfig(name="exact"), FeatureConfig(name="complexity", min=None, max=None)]
    assert unreported_features(exact, result, ()) is None  # no threshold: every stage runs
    late = unreported_features(exact, result, (0.3,))
    assert "'exact' is returned only by a later cascade stage" in late
    assert unreported_features([FeatureConfig(name="closeness")], result, (0.3,)) is None


# --- config.yaml -----------------------------------------------------------------------------
def test_config_yaml_mapping_and_what_is_left_out():
    mapped = read(FOLDER / "config.yaml", backend="offline")
    settings = mapped.settings
    assert settings["stop.max_evaluations"] == 16 and settings["seed"] == 7
    assert settings["task.timeout_s"] == 20.0 and settings["task.cascade_thresholds"] == [0.3]
    assert settings["task.cascade"] is True  # OpenEvolve's default, said as such
    assert "OpenEvolve's default" in mapped.sources["task.cascade"]
    assert settings["islands.count"] == 3 and settings["islands.capacity"] == 10
    assert settings["islands.archive_size"] == 2 and settings["evaluation.num_evaluators"] == 2
    assert settings["task.description"] == "Find the hidden number."
    assert (settings["islands.selection.exploit"], settings["islands.selection.explore"]) == (
        0.6,
        0.3,
    )
    assert settings["islands.selection.random"] == pytest.approx(0.1)
    assert settings["task.features"] == [
        {"name": "spread", "min": None, "max": None, "bins": 4},
        {"name": "complexity", "min": None, "max": None, "bins": 4},
    ]
    assert settings["mutation.mode"] == "diff"
    for key in ("checkpoint_interval", "max_code_length", "llm.primary_model", "llm.api_base"):
        assert key in mapped.ignored, key
    assert "offline mutator" in mapped.ignored["llm.api_base"]
    lines = mapped.describe({"islands.count"})
    assert lines[0].startswith(f"from {FOLDER / 'config.yaml'}: ")
    assert any("islands.count kept" in line for line in lines)
    online = read(FOLDER / "config.yaml", backend="openai")
    assert online.settings["mutation.base_url"] == "https://api.example.invalid/v1"
    assert online.settings["mutation.models"] == [{"name": "some-model", "weight": 1.0}]


def test_config_yaml_defaults_and_bad_values(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("evaluator:\n  cascade_evaluation: false\nsomething_new: 1\n")
    mapped = read(path, backend="offline")
    assert mapped.settings["task.timeout_s"] == 300  # OpenEvolve's own default
    assert mapped.settings["task.memory_limit_mb"] == 0  # OpenEvolve sets no memory limit
    assert mapped.settings["task.cascade"] is False
    assert "task.cascade_thresholds" not in mapped.settings
    assert mapped.settings["task.features"][1] == {
        "name": "diversity",
        "min": 0.0,
        "max": 1.0,
        "bins": 10,
    }
    assert mapped.ignored["something_new"] == "not supported by rayevolve"
    path.write_text("evaluator:\n  timeout: soon\n")
    with pytest.raises(OpenEvolveConfigError, match="evaluator.timeout: expected a number"):
        read(path, backend="offline")
    path.write_text("database:\n  feature_dimensions: [a, b, c, d]\n")
    with pytest.raises(OpenEvolveConfigError, match="at most 3"):
        read(path, backend="offline")
    assert find(tmp_path, "none") is None and find(tmp_path, None) == path
    with pytest.raises(OpenEvolveConfigError, match="no such file"):
        find(tmp_path, "other.yaml")


def test_the_mapping_is_valid_for_openevolve_itself():
    """Every key the test folder's config.yaml uses is one OpenEvolve knows (its schema,
    as far as its defaults go, mirrored by the rules or the ignore list)."""
    raw = yaml.safe_load((FOLDER / "config.yaml").read_text())
    mapped = read(FOLDER / "config.yaml", backend="offline")
    known = set(mapped.ignored) | {source for s in mapped.sources.values() for source in [s]}
    leaves = [k for k, v in raw.items() if not isinstance(v, dict)] + [
        f"{k}.{sub}" for k, v in raw.items() if isinstance(v, dict) for sub in v
    ]
    for key in leaves:
        assert any(key in entry for entry in known), key


# --- through the command line ------------------------------------------------------------------
@pytest.mark.e2e
def test_a_folder_runs_as_shipped_with_its_config(ray_cluster, tmp_path):
    """`task.path=FOLDER` alone: neutral task defaults (not circle_packing's features),
    the folder's config.yaml applied under the command line and said once, its name as the
    task name; the run scores by OpenEvolve's fallback and improves."""
    folder = tmp_path / "openevolve_style"
    shutil.copytree(FOLDER, folder)
    run_dir = tmp_path / "run"
    done = run_cli(
        f"task.path={folder}",
        "islands.count=2",
        "evaluation.num_evaluators=1",
        f"run_dir={run_dir}",
        f"cluster.address={ray_cluster[0].address}",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said = [line for line in done.stderr.splitlines() if "config.yaml" in line]
    assert said[0].startswith(f"rayevolve: from {folder / 'config.yaml'}: ")
    assert "task.timeout_s=20.0 (evaluator.timeout)" in said[0]
    kept = [line for line in said if "the command line's" in line]
    assert "islands.count" in kept[0] and "evaluation.num_evaluators" in kept[0]
    assert any("checkpoint_interval" in line for line in said)
    saved = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert saved["task"]["name"] == "openevolve_style" and saved["islands"]["count"] == 2
    assert [f["name"] for f in saved["task"]["features"]] == ["spread", "complexity"]
    assert saved["seed"] == 7 and saved["stop"]["max_evaluations"] == 16
    assert "evaluations   16" in done.stdout, done.stdout


@pytest.mark.e2e
def test_a_seed_the_offline_mutator_cannot_change_stops_at_start(tmp_path):
    (tmp_path / "initial_program.py").write_text(
        "# EVOLVE-BLOCK-START\ndef f(x):\n    return x\n# EVOLVE-BLOCK-END\n"
    )
    (tmp_path / "evaluator.py").write_text("def evaluate(p):\n    return {'combined_score': 1}\n")
    done = run_cli(
        f"task.path={tmp_path}",
        f"run_dir={tmp_path / 'run'}",
        f"hydra.run.dir={tmp_path}",
        timeout=120,
    )
    assert done.returncode == 1
    assert "only changes numeric literals inside EVOLVE-BLOCKs" in done.stderr.splitlines()[-1]
    assert "Traceback" not in done.stderr


@pytest.mark.e2e
def test_a_folder_config_error_is_one_line(tmp_path):
    shutil.copytree(FOLDER, tmp_path / "t")
    (tmp_path / "t" / "config.yaml").write_text("evaluator:\n  timeout: soon\n")
    done = run_cli(
        f"task.path={tmp_path / 't'}",
        f"run_dir={tmp_path / 'run'}",
        f"hydra.run.dir={tmp_path}",
        timeout=120,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .endswith("evaluator.timeout: expected a number, got 'soon'")
    )
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())


def test_readme_table_names_every_mapped_key():
    """The README's mapping table and the rules cannot drift apart."""
    from rayevolve.openevolve_config import HANDLED_TOGETHER, LLM_RULES, RULES

    readme = (TASKS.parent.parent / "README.md").read_text()
    table = readme[readme.index("| OpenEvolve `config.yaml` key |") :]
    table = table[: table.index("\n\n")]
    for key in [*RULES, *LLM_RULES, *HANDLED_TOGETHER]:
        leaf = key.rsplit(".", 1)[-1]
        assert f"`{key}`" in table or f"`{leaf}`" in table, key
    for target, _ in [*RULES.values(), *LLM_RULES.values()]:
        leaf = target.rsplit(".", 1)[-1]
        assert f"`{target}`" in table or f"`{leaf}`" in table, target


def test_the_fallback_score_is_over_every_stage_so_far(sandbox, tmp_path):
    """As OpenEvolve merges a cascade's metrics before scoring: stage 2's own numbers
    alone would give 3.0; stage 1's `a` counts too (stage 2's `a` would win over it)."""
    (tmp_path / "evaluator.py").write_text(
        "def evaluate_stage1(p):\n    return {'a': 1.0, 'flag': True}\n"
        "def evaluate_stage2(p):\n    return {'b': 3.0}\n"
    )
    result = judge(sandbox, tmp_path, "x = 1\n")
    assert result.stage == 2 and result.score == 2.0
