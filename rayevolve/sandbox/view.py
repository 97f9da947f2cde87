"""What a confined process sees of the host: a `View` (paths shown read-only or
writable, paths hidden, devices), and the system's part of it every sandbox needs.
Each isolation level (`confinement.py`, `seatbelt.py`, `nsinit.py`) builds its own
confinement from a `View`."""

from __future__ import annotations

import os
import shutil
import site
import sys
import sysconfig
from dataclasses import dataclass
from pathlib import Path

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# what programs and libraries read from /etc; never the whole of it (shadow, ssh keys, ...)
ETC_FILES = (
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "gai.conf",
    "resolv.conf",
    "protocols",
    "services",
    "mime.types",
    "os-release",
    "alternatives",
    "ssl/certs",
    "ssl/openssl.cnf",
    "ca-certificates",
    "ca-certificates.conf",
    "fonts",
    "locale.alias",
    "magic",
    "matplotlibrc",
)
SCRATCH_DIRS = (
    "/tmp",
    "/var/tmp",
    "/dev/shm",
)  # private inside a sandbox, emptied between candidates


@dataclass(frozen=True)
class View:
    """What a confined process sees of the host, each path at its own place.

    Attributes:
      read_only: folders and files shown read-only (programs, Python, the task copy).
      writable: folders shown writable (the work area).
      hidden: folders that must not be seen even where they lie inside a shown one
        ($HOME, the run directory, the user's task folder).
      devices: device files shown (a GPU's), beside the minimal /dev every sandbox has.
    """

    read_only: tuple[str, ...] = ()
    writable: tuple[str, ...] = ()
    hidden: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()

    def with_paths(
        self,
        read_only: tuple[str, ...] = (),
        writable: tuple[str, ...] = (),
        devices: tuple[str, ...] = (),
    ) -> View:
        return View(
            self.read_only + tuple(read_only),
            self.writable + tuple(writable),
            self.hidden,
            self.devices + tuple(devices),
        )


def python_paths(python: str | None = None) -> tuple[str, ...]:
    """Where this Python (and `python`, if another interpreter) and its packages live."""
    paths = {
        sys.prefix,
        sys.base_prefix,
        sys.exec_prefix,
        sys.base_exec_prefix,
        sysconfig.get_paths()["stdlib"],
        sysconfig.get_paths()["purelib"],
        sysconfig.get_paths()["platlib"],
        str(Path(__file__).resolve().parents[1]),  # rayevolve itself (an editable install too)
    }
    paths.update(site.getsitepackages())
    user_site = site.getusersitepackages()
    if user_site and os.path.isdir(user_site):
        paths.add(user_site)
    for executable in (sys.executable, python):
        if executable:
            found = Path(shutil.which(executable) or executable).absolute()
            paths.add(str(found.parent.parent))  # a virtual environment's own folder
            paths.add(str(found.resolve().parent.parent))  # the interpreter it links to
    return tuple(sorted(p for p in paths if p and os.path.exists(p)))


def system_view(
    read_paths: tuple[str, ...] = (), hidden: tuple[str, ...] = (), python: str | None = None
) -> View:
    """The read-only base every confined process needs, plus `read_paths`."""
    etc = tuple(f"/etc/{name}" for name in ETC_FILES if os.path.exists(f"/etc/{name}"))
    extra = tuple(str(Path(p).expanduser().resolve()) for p in read_paths)
    home = os.path.expanduser("~")
    hidden_paths = {home, os.path.join(home, ".ray"), *(str(Path(h).resolve()) for h in hidden)}
    return View(
        read_only=etc + python_paths(python) + extra,
        hidden=tuple(sorted(h for h in hidden_paths if h and h != "/")),
    )
