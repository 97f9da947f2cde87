"""`TaskCopy`: whatever a candidate does to the task folder it sees, the next one sees
the original."""

import os
import stat

import pytest

from rayevolve.sandbox.taskcopy import TaskCopy


@pytest.fixture
def task(tmp_path):
    source = tmp_path / "source"
    (source / "data").mkdir(parents=True)
    (source / "evaluator.py").write_text("def evaluate(p):\n    return {'combined_score': 1.0}\n")
    (source / "data" / "ref.txt").write_text("reference")
    copy = TaskCopy.of_folder(source)
    yield source, copy
    copy.close()
    assert not copy.root.exists()


def test_an_untouched_copy_is_kept(task):
    _, copy = task
    assert copy.rebuilds == 1
    assert not copy.ensure_pristine()
    assert copy.rebuilds == 1


def rewrite(path):
    path.write_text("def evaluate(p):\n    return {'combined_score': 100.0}\n")


def add_file(path):
    (path.parent / "extra.py").write_text("x = 1")


def plant_bytecode(path):
    (path.parent / "__pycache__").mkdir()
    (path.parent / "__pycache__" / "evaluator.cpython-311.pyc").write_bytes(b"\0" * 16)


def replace_with_link(path):
    target = path.parent.parent / "elsewhere.py"
    target.write_text(path.read_text())
    path.unlink()
    path.symlink_to(target)


def make_unreadable(path):
    path.chmod(0)


def lock_folder(path):
    (path.parent / "data").chmod(0)


def remove_everything(path):
    import shutil

    shutil.rmtree(path.parent)


@pytest.mark.parametrize(
    "tamper",
    [rewrite, add_file, plant_bytecode, replace_with_link, make_unreadable, lock_folder,
     remove_everything],
)  # fmt: skip
def test_any_change_is_undone_before_the_next_candidate(task, tamper):
    source, copy = task
    tamper(copy.path / "evaluator.py")
    assert copy.ensure_pristine()
    assert (copy.path / "evaluator.py").read_text() == (source / "evaluator.py").read_text()
    assert (copy.path / "data" / "ref.txt").read_text() == "reference"
    assert sorted(os.listdir(copy.path)) == ["data", "evaluator.py"]
    assert stat.S_ISREG(os.lstat(copy.path / "evaluator.py").st_mode)
    assert not copy.ensure_pristine()  # and now it holds


def test_the_original_is_never_touched(task):
    source, copy = task
    rewrite(copy.path / "evaluator.py")
    copy.ensure_pristine()
    assert "1.0" in (source / "evaluator.py").read_text()


def test_a_changed_original_does_not_reach_the_copy(task):
    """The copy is written from the bytes read at the start: a candidate that finds and
    rewrites the folder the task came from changes nothing candidates see."""
    source, copy = task
    rewrite(source / "evaluator.py")
    rewrite(copy.path / "evaluator.py")
    assert copy.ensure_pristine()
    assert "1.0" in (copy.path / "evaluator.py").read_text()
