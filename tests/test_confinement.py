"""The pieces of isolation that need no sandbox to test: command lines, profiles, the
verdict channel's parsing and caps, secrets, temporary folders, task fingerprints."""

import fcntl
import os
import shutil
import subprocess
import sys
import time

import pytest

from rayevolve import textcaps
from rayevolve.credentials import scrub
from rayevolve.outcome import Outcome
from rayevolve.result import EvalResult, Isolation
from rayevolve.sandbox import confinement, scratch, verdict
from rayevolve.sandbox.confinement import (
    Confinement,
    IsolationUnavailable,
    bwrap_argv,
    resolve,
)
from rayevolve.sandbox.seatbelt import profile, seatbelt_argv
from rayevolve.sandbox.view import View, system_view
from rayevolve.tasks import bundle_hash, changes, file_hashes


def pairs(argv, flag):
    return [(argv[i + 1], argv[i + 2]) for i, a in enumerate(argv) if a == flag]


def test_bwrap_shows_an_allow_list_and_hides_the_rest():
    home = os.path.expanduser("~")
    view = system_view(read_paths=("/opt/models",), hidden=("/work/runs/x",)).with_paths(
        read_only=("/tmp/rayevolve-task-abc/task",), writable=("/tmp/rayevolve-eval-abc",)
    )
    argv = bwrap_argv(view, "/tmp/rayevolve-eval-abc/candidate-1")
    assert argv[0] == "bwrap" and argv[-1] == "--"
    for flag in ("--unshare-all", "--unshare-user", "--die-with-parent", "--as-pid-1"):
        assert flag in argv
    assert ("--cap-drop", "ALL") == tuple(
        argv[argv.index("--cap-drop") : argv.index("--cap-drop") + 2]
    )
    shown = {src for src, _ in pairs(argv, "--ro-bind") + pairs(argv, "--ro-bind-try")}
    assert home not in shown and "/" not in shown and "/etc" not in shown
    assert "/etc/shadow" not in shown and not any(p.startswith("/etc/ssl/private") for p in shown)
    assert "/opt/models" in shown and "/tmp/rayevolve-task-abc/task" in shown
    assert ("/tmp/rayevolve-eval-abc", "/tmp/rayevolve-eval-abc") in pairs(argv, "--bind")
    # the task copy and the work area are mounted after the private /tmp that holds them
    assert argv.index("/tmp/rayevolve-eval-abc") > argv.index("--tmpfs")
    assert argv[argv.index("--chdir") + 1] == "/tmp/rayevolve-eval-abc/candidate-1"
    assert argv.index("--remount-ro") > argv.index("--bind")  # the root goes read-only last


def test_a_hidden_folder_inside_a_shown_one_is_covered():
    view = View(read_only=("/usr",), hidden=("/usr/share/secret-runs",))
    assert "/usr/share/secret-runs" not in bwrap_argv(view, "/tmp")  # absent: not covered
    view = View(read_only=(sys.prefix,), hidden=(os.path.join(sys.prefix, "lib"),))
    argv = bwrap_argv(view, "/tmp")
    assert os.path.join(sys.prefix, "lib") in [
        argv[i + 1] for i, a in enumerate(argv) if a == "--tmpfs"
    ]


def test_python_and_rayevolve_are_shown():
    view = system_view()
    import rayevolve

    assert any(os.path.dirname(rayevolve.__file__).startswith(p) for p in view.read_only)
    assert any(
        sys.base_prefix.startswith(p) or p.startswith(sys.base_prefix) for p in view.read_only
    )


def test_another_virtual_environment_as_the_judges_python_is_shown(tmp_path):
    """`evaluation.python` naming a venv: its own folder (a link to the base interpreter
    and its packages) is in the view, not only the interpreter the link points to."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(tmp_path / "venv")], check=True
    )
    python = str(tmp_path / "venv" / "bin" / "python")
    view = system_view(python=python)
    assert str(tmp_path / "venv") in view.read_only
    if shutil.which("bwrap"):  # and a confined process starts with it
        assert confinement.resolve("auto", python).level == Isolation.NAMESPACES


def test_seatbelt_profile_denies_network_and_writes_outside_the_work_area():
    view = View(
        read_only=("/opt/venv",),
        writable=("/private/tmp/rayevolve-eval-x",),
        hidden=("/Users/me",),
    )
    text = profile(view)
    assert text.startswith("(version 1)\n(deny default)")
    assert "(deny network*)" in text
    assert (
        '(allow file-write* (literal "/dev/null") (subpath "/private/tmp/rayevolve-eval-x"))'
        in text
    )
    assert '(deny file-read* file-write* (subpath "/Users/me"))' in text
    assert "com.apple.MTLCompilerService" in text  # Metal's compiler service
    argv = seatbelt_argv(view, "/private/tmp/rayevolve-eval-x")
    assert argv[:2] == ["sandbox-exec", "-p"] and argv[2] == text


def test_seatbelt_quotes_paths():
    assert '(subpath "/a \\"b\\"")' in profile(View(read_only=('/a "b"',)))


def test_none_is_given_when_asked_and_a_foreign_level_is_refused():
    assert resolve("none").level == Isolation.NONE
    foreign = "seatbelt" if sys.platform.startswith("linux") else "namespaces"
    with pytest.raises(IsolationUnavailable, match="not available on"):
        resolve(foreign)
    with pytest.raises(IsolationUnavailable, match="must be one of"):
        resolve("docker")


def test_auto_falls_back_to_none_with_the_reason(monkeypatch):
    monkeypatch.setattr(confinement.shutil, "which", lambda name: None)
    confinement._namespaces.cache_clear()
    try:
        if sys.platform.startswith("linux"):
            found = resolve("auto")
            assert found.level == Isolation.NONE and "apt-get install bubblewrap" in found.note
            assert "NOT isolated" in found.describe()
            with pytest.raises(IsolationUnavailable, match="bubblewrap is not installed"):
                resolve("namespaces")
    finally:
        confinement._namespaces.cache_clear()


def test_without_bubblewrap_auto_takes_utillinux_unshare(monkeypatch):
    if not sys.platform.startswith("linux") or shutil.which("unshare") is None:
        pytest.skip("util-linux's unshare is Linux's")
    real = shutil.which
    monkeypatch.setattr(confinement.shutil, "which", lambda n: None if n == "bwrap" else real(n))
    confinement._namespaces.cache_clear()
    try:
        found = resolve("auto")
    finally:
        confinement._namespaces.cache_clear()
    assert found.level == Isolation.NAMESPACES and found.tool.startswith("unshare")
    argv = found.wrap(["python", "-c", "pass"], View(read_only=("/usr",)), "/tmp")
    assert argv[:3] == ["unshare", "--user", "--map-root-user"] and "--pid" in argv
    assert argv[-3:] == ["python", "-c", "pass"] and argv[-4] == "--"


def test_confinement_none_wraps_nothing():
    assert Confinement(Isolation.NONE).wrap(["python", "x"], View(), "/tmp") == ["python", "x"]


def test_the_verdict_channel_believes_one_verdict_and_remembers_taint():
    one = verdict.message(verdict={"status": "ok", "score": 1.0})
    assert verdict.parse(one).verdict == {"status": "ok", "score": 1.0}
    two = verdict.parse(one + one)
    assert two.verdict is None and "2 verdicts" in two.refusal()
    junk = verdict.parse(one + b"not json\n")
    assert junk.verdict is None and "not JSON" in junk.refusal()
    tainted = verdict.parse(verdict.message(taint="ran the program") + one)
    assert tainted.tainted == ["ran the program"] and tainted.verdict is not None
    assert verdict.parse(one, truncated=True).verdict is None


def test_texts_are_capped_head_and_tail():
    text = "HEAD" + "x" * 100_000 + "TAIL"
    capped = textcaps.cap_text(text)
    assert capped.startswith("HEAD") and capped.endswith("TAIL") and "omitted" in capped
    assert len(capped) < textcaps.MAX_TEXT_CHARS + 100
    many = textcaps.cap_artifacts({f"k{i}": i for i in range(200)})
    assert len(many) == textcaps.MAX_ARTIFACTS + 1 and many["k3"] == "3"
    failure = EvalResult.failure(Outcome.RUNTIME_ERROR, "x" * 10_000_000)
    assert len(failure.artifacts["error"]) < textcaps.MAX_TEXT_CHARS + 100
    assert EvalResult.failure(Outcome.CRASHED, "").artifacts["error"]  # never empty


def test_scrub_removes_secrets_but_rays_own():
    environ = {
        "OPENAI_API_KEY": "k",
        "HF_TOKEN": "t",
        "AWS_SECRET_ACCESS_KEY": "s",
        "DB_PASSWORD": "p",
        "RAY_AUTH_TOKEN": "r",
        "PATH": "/usr/bin",
    }
    removed = scrub(environ)
    assert environ == {"RAY_AUTH_TOKEN": "r", "PATH": "/usr/bin"}
    assert removed == ["AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "HF_TOKEN", "OPENAI_API_KEY"]


def test_folders_of_a_dead_owner_are_swept_and_a_live_ones_kept(tmp_path):
    live = scratch.OwnedDir("eval", root=tmp_path)
    (live.path / "file").write_text("x")
    # a dead owner: another process made the folder and its lock, then died
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "from rayevolve.sandbox.scratch import OwnedDir;"
        "d = OwnedDir('task', root=sys.argv[2]); (d.path / 'f').write_text('x');"
        "import os; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, os.getcwd(), str(tmp_path)], check=True)
    dead = [p for p in tmp_path.glob("rayevolve-task-*") if p.is_dir()]
    assert len(dead) == 1
    assert scratch.sweep(tmp_path) == []  # too fresh: its owner may not have locked it yet
    old = time.time() - 2 * scratch.FRESH_S
    for lock in tmp_path.glob("*.lock"):
        os.utime(lock, (old, old))
    removed = scratch.sweep(tmp_path)
    assert removed == dead and not dead[0].exists()
    assert live.path.exists() and (live.path / "file").exists()
    live.close()
    assert not live.path.exists() and not live.lock_path.exists()


def test_a_held_lock_is_what_keeps_a_folder(tmp_path):
    folder = tmp_path / "rayevolve-eval-held"
    folder.mkdir()
    lock = tmp_path / "rayevolve-eval-held.lock"
    fd = os.open(lock, os.O_CREAT | os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_EX)
    old = time.time() - 2 * scratch.FRESH_S
    os.utime(lock, (old, old))
    try:
        assert scratch.sweep(tmp_path) == [] and folder.exists()
    finally:
        os.close(fd)
    assert scratch.sweep(tmp_path) == [folder]


def test_task_changes_name_the_files():
    before = {"evaluator.py": b"a", "data.txt": b"1"}
    after = {"evaluator.py": b"b", "new.py": b"2"}
    recorded = {"bundle_hash": bundle_hash(before), "files": file_hashes(before)}
    now = {"bundle_hash": bundle_hash(after), "files": file_hashes(after)}
    assert changes(recorded, now) == ["evaluator.py changed", "new.py added", "data.txt removed"]
    assert changes(recorded, recorded) == []
