"""The ``namespaces`` level without bubblewrap: util-linux's ``unshare`` creates the
namespaces, and this script (standard library only, run by path as the new PID
namespace's first process) builds the same view bubblewrap would, then becomes the
command.

``unshare --user --map-root-user --mount --pid --fork --net --ipc --uts --kill-child
python nsinit.py VIEW_JSON -- COMMAND...``:

1. the mount namespace's propagation is made private;
2. a tmpfs becomes the new root; the system folders, Python, the task copy and the read
   paths are bind-mounted into it read-only (keeping the flags the host locks on them),
   the work area read-write, a new ``/proc``, a minimal ``/dev`` (null, zero, full,
   random, urandom, tty, and any device the task names), private tmpfs ``/tmp``,
   ``/var/tmp`` and ``/dev/shm``; hidden folders inside shown ones are covered;
3. ``pivot_root`` into it, the old root detached, the root and /dev remounted read-only;
4. the loopback interface brought up (the only network there is);
5. every capability dropped (bounding set included, and no_new_privs), so nothing inside
   can undo a mount;
6. ``execve`` of the command, which stays PID 1 of the namespace: a process inside cannot
   kill it, and when it exits, everything inside dies.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import glob
import json
import os
import socket
import struct
import sys

MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_NODIRATIME = 2048
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_RELATIME = 1 << 21
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
SYS_CAPSET = {"x86_64": 126, "aarch64": 91}
NEW_ROOT = "/mnt" if os.path.isdir("/mnt") else "/tmp/.rayevolve-root"  # covered, in here only
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None):
    _check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {source} on {target}",
    )


def _locked_flags(path: str) -> int:
    """The flags a remount must keep (the kernel refuses to clear those the host set)."""
    found = os.statvfs(path).f_flag
    flags = 0
    for st, ms in (
        (os.ST_NOSUID, MS_NOSUID),
        (os.ST_NODEV, MS_NODEV),
        (os.ST_NOEXEC, MS_NOEXEC),
        (os.ST_NOATIME, MS_NOATIME),
        (os.ST_NODIRATIME, MS_NODIRATIME),
        (getattr(os, "ST_RELATIME", 4096), MS_RELATIME),
    ):
        if found & st:
            flags |= ms
    return flags


def _place(target: str, like: str) -> None:
    if os.path.isdir(like) and not os.path.islink(like):
        os.makedirs(target, exist_ok=True)
    else:
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.exists(target):
            open(target, "w").close()


def bind(source: str, relative: str, read_only: bool) -> None:
    target = NEW_ROOT + relative
    if not os.path.exists(source):
        return
    _place(target, source)
    mount(source, target, None, MS_BIND | MS_REC)
    if read_only:
        mount(None, target, None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags(target))


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def build(view: dict) -> None:
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    os.makedirs(NEW_ROOT, exist_ok=True)
    mount("tmpfs", NEW_ROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    shown = []
    for top in SYSTEM_DIRS:
        if os.path.islink(top):
            os.symlink(os.readlink(top), NEW_ROOT + top)
        elif os.path.isdir(top):
            bind(top, top, True)
            shown.append(top)
    scratch = ("/tmp", "/var/tmp")
    early = [p for p in view["read_only"] if not any(_inside(p, s) for s in scratch)]
    for path in sorted(set(early), key=lambda p: (p.count("/"), p)):
        if not any(_inside(path, s) for s in shown):
            bind(path, path, True)
            shown.append(path)
    os.makedirs(NEW_ROOT + "/proc", exist_ok=True)
    mount("proc", NEW_ROOT + "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.makedirs(NEW_ROOT + "/dev", exist_ok=True)
    mount("tmpfs", NEW_ROOT + "/dev", "tmpfs", MS_NOSUID, "mode=0755")
    for name in DEVICES:
        bind(f"/dev/{name}", f"/dev/{name}", False)
    for pattern in view.get("devices", []):
        for device in glob.glob(pattern):
            bind(device, device, False)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        os.symlink(target, f"{NEW_ROOT}/dev/{name}")
    for private in (*scratch, "/dev/shm"):
        os.makedirs(NEW_ROOT + private, exist_ok=True)
        mount("tmpfs", NEW_ROOT + private, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    later = [(p, True) for p in view["read_only"] if any(_inside(p, s) for s in scratch)]
    later += [(p, False) for p in view["writable"]]
    for path, read_only in sorted(later, key=lambda item: (item[0].count("/"), item[0])):
        bind(path, path, read_only)
        shown.append(path)
    for hidden in view.get("hidden", []):
        if os.path.isdir(hidden) and any(_inside(hidden, s) and hidden != s for s in shown):
            mount("tmpfs", NEW_ROOT + hidden, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    if view.get("devices"):
        bind("/sys", "/sys", True)
    machine = os.uname().machine
    os.makedirs(NEW_ROOT + "/.old", exist_ok=True)
    _check(
        libc.syscall(SYS_PIVOT_ROOT[machine], NEW_ROOT.encode(), (NEW_ROOT + "/.old").encode()),
        "pivot_root",
    )
    os.chdir("/")
    _check(libc.umount2(b"/.old", MNT_DETACH), "umount the old root")
    os.rmdir("/.old")
    mount(None, "/dev", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | _locked_flags("/dev"))
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | _locked_flags("/"))


def loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH14s", b"lo", 0, b"")
        flags = struct.unpack("16sH14s", fcntl.ioctl(sock, SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack("16sH14s", b"lo", flags | IFF_UP, b""))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def drop_capabilities() -> None:
    for cap in range(64):
        if libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() != errno.EINVAL:
            _check(-1, f"drop capability {cap} from the bounding set")
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3
    data = (_CapData * 2)()
    _check(libc.syscall(SYS_CAPSET[os.uname().machine], ctypes.byref(header), data), "capset")


def main(argv: list[str]) -> None:
    view = json.loads(argv[1])
    command = argv[argv.index("--") + 1 :]
    build(view)
    loopback_up()
    drop_capabilities()
    os.chdir(view.get("cwd", "/"))
    os.execv(command[0], command)


if __name__ == "__main__":
    try:
        main(sys.argv)
    except OSError as exc:
        sys.stderr.write(f"rayevolve sandbox (unshare): {exc}\n")
        sys.exit(125)
