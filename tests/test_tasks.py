import pytest

from rayevolve.config import TaskConfig
from rayevolve.tasks import TaskError, load_task
from tests.conftest import ROOT


def load(path, **kw):
    return load_task(TaskConfig(name="t", path=str(path), **kw), search_roots=[ROOT])


@pytest.mark.parametrize("name", ["circle_packing", "function_minimization"])
def test_shipped_tasks_load(name):
    spec = load(f"experiments/{name}")
    assert spec.language == "python" and spec.suffix == ".py"
    assert "evaluator.py" in spec.files and "initial_program.py" in spec.files
    assert "EVOLVE-BLOCK-START" in spec.initial_code
    assert spec.description  # from README.md


def test_bundle_unpacks_to_an_identical_folder(tmp_path):
    from rayevolve.tasks import write_bundle

    spec = load("experiments/circle_packing")
    target = tmp_path / "copy"
    write_bundle(spec.files, target)
    assert (target / "evaluator.py").read_bytes() == (
        ROOT / "experiments/circle_packing/evaluator.py"
    ).read_bytes()


def test_missing_folder_lists_where_it_looked():
    with pytest.raises(TaskError, match="not found.*looked in"):
        load("experiments/no_such_task")


def test_folder_without_evaluate(tmp_path):
    (tmp_path / "initial_program.py").write_text(
        "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n"
    )
    (tmp_path / "evaluator.py").write_text("def score(path):\n    return 1\n")
    with pytest.raises(TaskError, match="no top-level evaluate"):
        load(tmp_path)


def test_folder_without_evaluator(tmp_path):
    (tmp_path / "initial_program.py").write_text("x = 1\n")
    with pytest.raises(TaskError, match="no evaluator.py"):
        load(tmp_path)


def test_folder_with_two_initial_programs(tmp_path):
    (tmp_path / "initial_program.py").write_text("x = 1\n")
    (tmp_path / "initial_program.metal").write_text("x = 1\n")
    (tmp_path / "evaluator.py").write_text("def evaluate(p):\n    return {}\n")
    with pytest.raises(TaskError, match="exactly one"):
        load(tmp_path)


def test_malformed_markers_in_initial_program(tmp_path):
    (tmp_path / "initial_program.py").write_text("# EVOLVE-BLOCK-START\nx = 1\n")
    (tmp_path / "evaluator.py").write_text("def evaluate(p):\n    return {}\n")
    with pytest.raises(TaskError, match="never closed"):
        load(tmp_path)


def test_metal_language_from_suffix(tmp_path):
    (tmp_path / "initial_program.metal").write_text(
        "// EVOLVE-BLOCK-START\nuint x = 1;\n// EVOLVE-BLOCK-END\n"
    )
    (tmp_path / "evaluator.py").write_text("def evaluate(p):\n    return {}\n")
    assert load(tmp_path).language == "metal"
