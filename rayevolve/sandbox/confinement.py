"""Isolation levels: what a judged process can see and reach, and the command that
confines it.

* ``namespaces`` (Linux): `bubblewrap <https://github.com/containers/bubblewrap>`_
  (``bwrap``, Debian package ``bubblewrap``; unprivileged through user namespaces), or,
  where it is missing, util-linux's ``unshare`` with `nsinit.py` building the same view,
  starts the process in new user, PID, network, mount, IPC and UTS namespaces. It sees no
  process but its own sandbox's (no ancestor's ``/proc/PID/environ``, nothing to
  signal; everything it starts dies with the sandbox, ``setsid`` or not), no network
  but its own loopback (no Ray GCS, no model server, no internet), and a file system
  built from an allow-list: the system's programs and libraries, Python and its
  packages, read-only; the task's checked copy, read-only; its work area and a private
  ``/tmp``, writable. ``$HOME``, the run directory, the user's task folder, ``~/.ray``
  and Ray's session files are simply not there.
* ``seatbelt`` (macOS): ``sandbox-exec`` with a generated profile (`seatbelt.py`).
* ``none``: a plain child process (limits and a private directory only). Only when asked
  for by name, or by ``auto`` where neither of the above works, and then said plainly.

`resolve` turns a setting (``auto`` or a level's name) into a `Confinement`, after
probing that the level really works on this node (a level asked for by name that does
not is an `IsolationUnavailable`, never a silent downgrade).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from rayevolve.result import ISOLATION_SETTINGS, Isolation
from rayevolve.sandbox.view import SCRATCH_DIRS, SYSTEM_DIRS, View, system_view

PROBE_TIMEOUT_S = 30.0


class IsolationUnavailable(RuntimeError):
    """The isolation level asked for cannot be given on this node."""


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def bwrap_argv(view: View, cwd: str, disable_userns: bool = True) -> list[str]:
    """bubblewrap's command line for `view` (the command to confine follows it)."""
    argv = ["bwrap", "--unshare-all", "--unshare-user", "--die-with-parent", "--new-session"]
    argv += ["--cap-drop", "ALL"]  # bwrap run by root keeps every capability otherwise
    # the confined command is the namespace's init: no bwrap process inside holding its
    # stdio (a candidate could write to it through /proc/1/fd), and unkillable from inside
    argv.append("--as-pid-1")
    if disable_userns:
        argv.append("--disable-userns")
    argv += ["--hostname", "rayevolve-sandbox"]
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    shown = []
    for path in sorted(set(view.read_only), key=lambda p: (p.count("/"), p)):
        if any(_inside(path, top) for top in SYSTEM_DIRS if os.path.isdir(top)) or any(
            _inside(path, s) for s in shown
        ):
            continue  # already shown with a folder that holds it
        if not any(_inside(path, s) for s in SCRATCH_DIRS):
            argv += ["--ro-bind-try", path, path]
            shown.append(path)
    argv += ["--proc", "/proc", "--dev", "/dev"]
    for scratch in SCRATCH_DIRS:
        argv += ["--tmpfs", scratch]
    devices = sorted({d for pattern in view.devices for d in glob.glob(pattern)})
    for device in devices:
        argv += ["--dev-bind-try", device, device]
    if view.devices:  # GPU drivers read their devices' attributes there
        argv += ["--ro-bind-try", "/sys", "/sys"]
    later = [(p, "--ro-bind") for p in view.read_only if any(_inside(p, s) for s in SCRATCH_DIRS)]
    later += [(p, "--bind") for p in view.writable]
    for path, flag in sorted(later, key=lambda item: (item[0].count("/"), item[0])):
        argv += [flag, path, path]
        shown.append(path)
    for hidden in view.hidden:
        if os.path.isdir(hidden) and any(_inside(hidden, s) and hidden != s for s in shown):
            argv += ["--tmpfs", hidden]
    # the root and /dev are bwrap's own tmpfs: read-only, so that the scratch folders
    # (emptied between candidates) and the work area are the only places to write
    argv += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", cwd, "--"]
    return argv


NSINIT_SCRIPT = Path(__file__).with_name("nsinit.py")


def unshare_argv(view: View, cwd: str) -> list[str]:
    """util-linux's unshare and `nsinit.py` (where bubblewrap is missing): the same
    namespaces and the same view (the command to confine follows)."""
    described = {
        "read_only": list(view.read_only),
        "writable": list(view.writable),
        "hidden": list(view.hidden),
        "devices": list(view.devices),
        "cwd": cwd,
    }
    return [
        "unshare",
        "--user",
        "--map-root-user",
        "--mount",
        "--pid",
        "--fork",
        "--net",
        "--ipc",
        "--uts",
        "--kill-child",
        sys.executable,
        str(NSINIT_SCRIPT),
        json.dumps(described),
        "--",
    ]


@dataclass(frozen=True)
class Confinement:
    """A resolved isolation level and how to apply it.

    Attributes:
      level: the `Isolation` level given.
      tool: what gives it (``bwrap 0.8.0``, ``sandbox-exec``; empty for ``none``).
      requested: the setting it was resolved from (``auto`` or a level's name).
      note: why ``auto`` fell to a weaker level, if it did.
      options: tool-specific switches found by the probe.
    """

    level: Isolation
    tool: str = ""
    requested: str = "auto"
    note: str = ""
    options: dict[str, bool] = field(default_factory=dict)

    @property
    def private_pids(self) -> bool:
        """Whether every judged process lives in a PID namespace of its own (so that its
        supervisor may kill everything else it sees there)."""
        return self.level == Isolation.NAMESPACES

    def wrap(self, argv: list[str], view: View, cwd: str) -> list[str]:
        """`argv` confined to `view`, starting in `cwd`."""
        if self.level == Isolation.NAMESPACES and self.options.get("unshare"):
            return unshare_argv(view, cwd) + argv
        if self.level == Isolation.NAMESPACES:
            return bwrap_argv(view, cwd, self.options.get("disable_userns", True)) + argv
        if self.level == Isolation.SEATBELT:
            from rayevolve.sandbox.seatbelt import seatbelt_argv

            return seatbelt_argv(view, cwd) + argv
        return list(argv)

    def describe(self) -> str:
        if self.level == Isolation.NONE:
            why = f" ({self.note})" if self.note else ""
            return f"none: candidates are NOT isolated{why}"
        return f"{self.level} ({self.tool})"


def _probe(confinement: Confinement, python: str) -> str | None:
    """None if a Python starts and runs confined, else what went wrong."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rayevolve-probe-") as work:
        view = system_view(python=python).with_paths(writable=(work,))
        check = "import json, os"
        if confinement.private_pids:  # no capability left, and alone in its PID namespace
            check += (
                "; status = open('/proc/self/status').read()"
                "; assert 'CapEff:\\t0000000000000000' in status, 'capabilities were kept'"
                "; assert os.getpid() == 1, 'not the init of a PID namespace of its own'"
            )
        argv = confinement.wrap([python, "-c", check], view, work)
        try:
            done = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                timeout=PROBE_TIMEOUT_S,
                stdin=subprocess.DEVNULL,
                cwd=work,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"{type(exc).__name__}: {exc}"
        if done.returncode != 0:
            lines = (done.stderr or done.stdout).strip().splitlines()
            return lines[-1] if lines else f"exit status {done.returncode}"
    return None


def _bwrap_version() -> str:
    try:
        out = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, timeout=10)
        return out.stdout.strip() or "bwrap"
    except (OSError, subprocess.TimeoutExpired):
        return "bwrap"


@cache
def _namespaces(python: str) -> tuple[Confinement | None, str]:
    if not sys.platform.startswith("linux"):
        return None, "Linux namespaces exist only on Linux"
    if shutil.which("bwrap") is None:
        missing = (
            "bubblewrap is not installed (Debian/Ubuntu: apt-get install bubblewrap; "
            "Fedora: dnf install bubblewrap)"
        )
        if shutil.which("unshare") is None:
            return None, f"{missing}, nor util-linux's unshare"
        candidate = Confinement(
            Isolation.NAMESPACES, "unshare (util-linux)", options={"unshare": True}
        )
        problem = _probe(candidate, python)
        if problem is None:
            return candidate, ""
        return None, f"{missing}; util-linux's unshare could not make namespaces ({problem})"
    version = _bwrap_version()
    problem = ""
    for disable in (True, False):
        candidate = Confinement(Isolation.NAMESPACES, version, options={"disable_userns": disable})
        problem = _probe(candidate, python)
        if problem is None:
            return candidate, ""
    return None, (
        f"bubblewrap cannot create namespaces here ({problem}); unprivileged user namespaces "
        "may be disabled (sysctl kernel.unprivileged_userns_clone=1, or "
        "kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu 24.04+)"
    )


@cache
def _seatbelt(python: str) -> tuple[Confinement | None, str]:
    if sys.platform != "darwin":
        return None, "Seatbelt (sandbox-exec) exists only on macOS"
    if shutil.which("sandbox-exec") is None:
        return None, "sandbox-exec is not on this Mac's PATH"
    candidate = Confinement(Isolation.SEATBELT, "sandbox-exec")
    problem = _probe(candidate, python)
    if problem:
        return None, f"sandbox-exec refused the profile ({problem})"
    return candidate, ""


def resolve(setting: str, python: str | None = None) -> Confinement:
    """The `Confinement` for an ``evaluation.isolation`` setting on this node."""
    if setting not in ISOLATION_SETTINGS:
        raise IsolationUnavailable(
            f"evaluation.isolation must be one of {', '.join(ISOLATION_SETTINGS)}, got {setting!r}"
        )
    python = python or sys.executable
    if setting == Isolation.NONE:
        return Confinement(Isolation.NONE, requested=setting, note="asked for by name")
    platform_level = Isolation.SEATBELT if sys.platform == "darwin" else Isolation.NAMESPACES
    finder = _seatbelt if platform_level == Isolation.SEATBELT else _namespaces
    if setting == "auto":
        found, problem = finder(python)
        if found is None:
            return Confinement(Isolation.NONE, requested=setting, note=problem)
        return Confinement(found.level, found.tool, setting, options=found.options)
    if setting != platform_level:
        raise IsolationUnavailable(
            f"evaluation.isolation={setting} is not available on {sys.platform}; "
            f"this node offers {platform_level} (or use auto)"
        )
    found, problem = finder(python)
    if found is None:
        raise IsolationUnavailable(
            f"evaluation.isolation={setting} cannot be given on this node: {problem}"
        )
    return Confinement(found.level, found.tool, setting, options=found.options)
