"""The fork server ("zygote"): a warm process that forks one sandboxed child per candidate.

Run by path (``python .../zygote.py CONFIG``) by an evaluator actor (`forkserver.py`).
A fresh interpreter per candidate spends tens of milliseconds starting Python and
importing the evaluator's dependencies (numpy alone takes ~60 ms). This process does
that once: it imports the task's evaluator, forgets the modules that came from the task
folder (each candidate must run its own private copy of them), and keeps the third-party
ones. Each request then costs a ``fork``.

The forked child gives the candidate what the spawned child gets: a new session
(process group), a private working directory, stdin on /dev/null, stdout/stderr in
files, no file descriptor of this server (so it cannot forge a reply), the rebuilt
environment, fresh random state, and the limits that `child.main` sets before loading
the evaluator. Memory is copy-on-write: nothing a candidate does reaches this process
or the next candidate.

Protocol, one JSON object per line: the server says ``{"ready": ...}`` once; for each
request ``{"spec", "cwd", "stdout", "stderr", "env", "timeout_s"}`` it answers
``{"pid": N}`` right after forking and ``{"returncode": R, "timed_out": B}`` once the
child's whole process group is gone. End of input ends the server. Standard library
only until the evaluator is imported.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import select
import signal
import sys
import time
import traceback

import child  # this file's sibling, found because the script's folder leads sys.path

PRELOAD_NAME = "rayevolve_preloaded_evaluator"


def _under(path: str | None, folder: str) -> bool:
    return bool(path) and os.path.realpath(path).startswith(folder + os.sep)


def preload(evaluator: str, task_dir: str) -> str | None:
    """Import the evaluator once for its dependencies; return the error, if any.

    Modules loaded from the task folder are dropped again, so a child imports them
    from its own copy of the folder."""
    folder = os.path.realpath(task_dir)
    sys.path.insert(0, task_dir)
    try:
        spec = importlib.util.spec_from_file_location(PRELOAD_NAME, evaluator)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return None
    except BaseException as exc:  # noqa: BLE001 - the child reports it properly
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.path.remove(task_dir)
        for name, module in list(sys.modules.items()):
            if name == PRELOAD_NAME or _under(getattr(module, "__file__", None), folder):
                del sys.modules[name]


def _reseed() -> None:
    """A forked child inherits its parent's random state; `random` reseeds itself after
    fork, numpy's global generator does not: reseed it, as a new process would be."""
    numpy = sys.modules.get("numpy")
    if numpy is not None:
        numpy.random.seed(int.from_bytes(os.urandom(4), "little"))


def _become_candidate(request: dict) -> None:
    """In the forked child: set up the sandbox and run `child.main`; never returns."""
    code = 1
    try:
        os.setsid()
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for source, target in ((null, 0), (out, 1), (err, 2)):
            os.dup2(source, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX") if hasattr(os, "sysconf") else 65536)
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        _reseed()
        sys.argv = [child.__file__, request["spec"]]
        code = child.main(sys.argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported on the candidate's stderr
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except BaseException:  # noqa: BLE001
                pass
        os._exit(code)


def _exited(pid: int, timeout_s: float) -> bool:
    """Wait until `pid` has exited (without reaping it), at most `timeout_s`."""
    if hasattr(os, "pidfd_open"):  # Linux: sleep until the kernel says so
        fd = os.pidfd_open(pid)
        try:
            return bool(select.select([fd], [], [], timeout_s)[0])
        finally:
            os.close(fd)
    deadline, pause = time.monotonic() + timeout_s, 0.0005
    while True:  # elsewhere: poll without reaping, so the group id stays reserved
        if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)


def _reply(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def serve(config: dict) -> int:
    error = None
    if config.get("evaluator"):
        error = preload(config["evaluator"], config["task_dir"])
    # what is loaded now is shared by every child; the collector must not walk it in a
    # child (touching an object's header copies its page), so it leaves the collector
    gc.freeze()
    _reply({"ready": True, "pid": os.getpid(), "preload_error": error})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become_candidate(request)
        _reply({"pid": pid})
        timed_out = not _exited(pid, float(request["timeout_s"]))
        try:  # the whole group, grandchildren included, before the pid is released
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _, status = os.waitpid(pid, 0)
        _reply({"returncode": os.waitstatus_to_exitcode(status), "timed_out": timed_out})
    return 0


if __name__ == "__main__":
    sys.exit(serve(json.loads(sys.argv[1])))
