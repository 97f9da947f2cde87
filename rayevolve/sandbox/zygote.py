"""The fork server ("zygote"): a warm process that forks one judging child per candidate.

Run by path (``python .../zygote.py CONFIG``) by an evaluator actor (`forkserver.py`),
inside the evaluator's sandbox (one set of namespaces per evaluator under
``namespaces``). A fresh interpreter per candidate spends tens of milliseconds starting
Python and importing the evaluator's dependencies (numpy alone takes ~60 ms). This
process does that once: it imports the task's evaluator, forgets the modules that came
from the task folder (each candidate must run its own copy of them), and keeps the
third-party ones. Each request then costs a ``fork``.

The forked child gives the judge what the spawned child gets: a new session, a private
working directory, stdin on /dev/null, stdout/stderr in files, no descriptor of this
server (so it cannot forge a reply) but the write end of a fresh verdict pipe on
`VERDICT_FD`, the rebuilt environment, fresh random state, and the limits that
`child.main` sets before loading the evaluator. Memory is copy-on-write: nothing a
candidate does reaches this process or the next candidate. This process is not
dumpable, so a candidate cannot reach its descriptors or memory through ``/proc``.

After each candidate: the judge's process group is killed; inside a PID namespace of
its own (``private_pids``: this server is that namespace's init, which a process inside
cannot kill), every other process there is killed too (a ``setsid`` escapee included:
``kill(-1)`` reaches all but this process), every orphan reaped, and the private
scratch folders are emptied, so nothing a candidate started or left reaches the next
one.

Protocol, one JSON object per line: the server says ``{"ready": ...}`` once; for each
request ``{"spec", "cwd", "stdout", "stderr", "env", "timeout_s"}`` it answers
``{"pid": N}`` right after forking and ``{"returncode", "timed_out", "channel",
"truncated"}`` once the judge and everything it started are gone (``channel``: what the
judge wrote on its verdict pipe). End of input ends the server. Standard library only
until the evaluator is imported.
"""

from __future__ import annotations

import gc
import importlib.util
import json
import os
import select
import shutil
import signal
import sys
import time
import traceback

import child  # this file's siblings, found because the script's folder leads sys.path
import verdict

PRELOAD_NAME = "rayevolve_preloaded_evaluator"


def _under(path: str | None, folder: str) -> bool:
    return bool(path) and os.path.realpath(path).startswith(folder + os.sep)


def preload(evaluator: str, task_dir: str) -> str | None:
    """Import the evaluator once for its dependencies; return the error, if any.

    Modules loaded from the task folder are dropped again, so a child imports them
    from its own copy of the folder. Whatever the import prints goes to stderr, never
    into this server's reply pipe."""
    folder = os.path.realpath(task_dir)
    sys.path.insert(0, task_dir)
    saved = os.dup(1)
    os.dup2(2, 1)
    try:
        spec = importlib.util.spec_from_file_location(PRELOAD_NAME, evaluator)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return None
    except BaseException as exc:  # noqa: BLE001 - the child reports it properly
        return f"{type(exc).__name__}: {exc}"
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
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


def _become_judge(request: dict, verdict_w: int) -> None:
    """In the forked child: set up the sandbox and run `child.main`; never returns."""
    code = 1
    try:
        os.setsid()
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        err = os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        for source, target in ((null, 0), (out, 1), (err, 2), (verdict_w, verdict.VERDICT_FD)):
            os.dup2(source, target)
        os.closerange(verdict.VERDICT_FD + 1, os.sysconf("SC_OPEN_MAX"))
        for name in ("SIGINT", "SIGTERM", "SIGHUP"):
            signal.signal(getattr(signal, name), signal.SIG_DFL)
        os.environ.clear()
        os.environ.update(request["env"])
        _reseed()
        sys.argv = [child.__file__]
        code = child.main(request["spec"], verdict.VERDICT_FD)
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


def _wait(pid: int, pipe: verdict.PipeReader, timeout_s: float) -> bool:
    """Wait until `pid` has exited (without reaping it), reading its verdict pipe;
    False if `timeout_s` passed first."""
    deadline = time.monotonic() + timeout_s
    pidfd = os.pidfd_open(pid) if hasattr(os, "pidfd_open") else None
    try:
        while True:
            if pidfd is None:
                if os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                    return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            watched = [pidfd] if pidfd is not None else []
            if not pipe.closed:
                watched.append(pipe.fd)
            wait = remaining if pidfd is not None else min(remaining, 0.02)
            ready = select.select(watched, [], [], wait)[0] if watched else time.sleep(wait)
            if ready and pipe.fd in ready:
                pipe.drain()
            if pidfd is not None and ready and pidfd in ready:
                return True
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill_everyone_else() -> None:
    """As init of our own PID namespace: kill every other process in it, until none is
    left (a process forking while it is being killed is caught by the next round), and
    reap those that were ours."""
    for _ in range(50):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError:
            return
        time.sleep(0.001)
        _reap_zombies()
        others = (int(p) for p in os.listdir("/proc") if p.isdigit())
        if not any(child.running(p) for p in others if p not in (1, os.getpid())):
            return


def _empty(folder: str, keep: list[str]) -> None:
    """Remove what is in `folder`, except the paths in `keep` and the folders above them."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        path = entry.path
        if any(k == path for k in keep):
            continue
        if any(k.startswith(path + os.sep) for k in keep):
            _empty(path, keep)
            continue
        try:
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                os.unlink(path)
        except OSError:
            pass


def _reap_zombies() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _reply(payload: dict) -> None:
    sys.stdout.write(json.dumps(payload) + "\n")
    sys.stdout.flush()


def serve(config: dict) -> int:
    child.make_undumpable()
    private = bool(config.get("private_pids")) and os.getpid() == 1  # our own PID namespace
    if private:  # its init: a signal reaches it only through a handler; keep none
        for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2"):
            signal.signal(getattr(signal, name), signal.SIG_IGN)
    error = None
    if config.get("evaluator"):
        error = preload(config["evaluator"], config["task_dir"])
    # what is loaded now is shared by every child; the collector must not walk it in a
    # child (touching an object's header copies its page), so it leaves the collector
    gc.freeze()
    _reply({"ready": True, "pid": os.getpid(), "preload_error": error, "private_pids": private})
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read_end)
            _become_judge(request, write_end)
        os.close(write_end)
        _reply({"pid": pid})
        pipe = verdict.PipeReader(read_end)
        timed_out = not _wait(pid, pipe, float(request["timeout_s"]))
        try:  # the whole group, grandchildren included, before the pid is released
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        _, status = os.waitpid(pid, 0)
        if private:
            _kill_everyone_else()
            _reap_zombies()
            for folder in config.get("scratch", []):
                _empty(folder, config.get("keep", []))
        pipe.drain()
        os.close(read_end)
        _reply(
            {
                "returncode": os.waitstatus_to_exitcode(status),
                "timed_out": timed_out,
                "channel": pipe.data.decode(errors="replace"),
                "truncated": pipe.truncated,
            }
        )
    return 0


if __name__ == "__main__":
    sys.exit(serve(json.loads(sys.argv[1])))
