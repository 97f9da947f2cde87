"""macOS: a Seatbelt profile for ``sandbox-exec``, generated from a `View`.

NOT YET RUN ON A MAC. The profile and the command line are generated and tested on
Linux (tests/test_confinement.py); whether MLX's Metal path works under it is to be
confirmed on the first Mac that runs it (``python -m rayevolve.sandbox.seatbelt``
prints the profile for the current Python).

The profile denies by default, then allows: reading the system, Python, the task copy,
the work area and the read paths; writing only the work area and the private temp dir;
no network at all; process creation and signals only within the sandbox; and what a
Metal compute process needs (IOKit user clients of the GPU, the Metal compiler service,
shared memory). `sandbox-exec` is deprecated by Apple but still shipped and used (it is
how Bazel and Chromium sandbox builds on macOS).
"""

from __future__ import annotations

import sys

from rayevolve.sandbox.view import View, system_view

SYSTEM_READ = (
    "/usr",
    "/bin",
    "/sbin",
    "/System",
    "/Library",
    "/private/etc",
    "/private/var/db/timezone",
    "/dev",
    "/opt/homebrew",
    "/Applications/Xcode.app",
)
METAL_SERVICES = (
    "com.apple.MTLCompilerService",
    "com.apple.CARenderServer",
    "com.apple.gpumemd.source",
    "com.apple.PowerManagement.control",
    "com.apple.system.opendirectoryd.libinfo",
    "com.apple.system.logger",
    "com.apple.cvmsServ",
)


def _quote(path: str) -> str:
    return '"' + path.replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile(view: View) -> str:
    """The Seatbelt profile (SBPL) that confines a judged process to `view`."""
    reads = sorted(set(SYSTEM_READ) | set(view.read_only) | set(view.writable))
    lines = [
        "(version 1)",
        "(deny default)",
        "(allow process-fork)",
        "(allow process-exec)",
        "(allow signal (target same-sandbox))",
        "(allow sysctl-read)",
        "(allow file-read-metadata)",
        "(allow ipc-posix-shm-read-data ipc-posix-shm-write-data ipc-posix-shm-write-create)",
        '(allow iokit-open (iokit-user-client-class "AGXDeviceUserClient" "IOSurfaceRootUserClient"))',
        "(allow mach-lookup (global-name "
        + " ".join(_quote(name) for name in METAL_SERVICES)
        + "))",
        "(deny network*)",
        '(allow file-read* (literal "/") '
        + " ".join(f"(subpath {_quote(p)})" for p in reads)
        + ")",
        '(allow file-write* (literal "/dev/null") '
        + " ".join(f"(subpath {_quote(p)})" for p in sorted(set(view.writable)))
        + ")",
    ]
    for hidden in view.hidden:
        lines.append(f"(deny file-read* file-write* (subpath {_quote(hidden)}))")
    # a later rule wins in SBPL: the work area stays reachable even inside a hidden folder
    if view.writable:
        lines.append(
            "(allow file-read* file-write* "
            + " ".join(f"(subpath {_quote(p)})" for p in sorted(set(view.writable)))
            + ")"
        )
    return "\n".join(lines) + "\n"


def seatbelt_argv(view: View, cwd: str) -> list[str]:
    """``sandbox-exec -p PROFILE`` (the command follows); `cwd` is set by the launcher."""
    del cwd  # sandbox-exec has no --chdir: the launcher starts it in the work directory
    return ["sandbox-exec", "-p", profile(view)]


if __name__ == "__main__":
    sys.stdout.write(profile(system_view()))
