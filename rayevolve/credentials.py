"""What counts as a secret in an environment, and removing it from the driver's own.

A candidate must never see an API key. The sandbox rebuilds each judge's environment
from an allow-list without secret-looking names; and the driver, once it has read the
keys it needs (handed to the mutator actor in memory), removes every secret-looking
variable from its own environment before it starts Ray, so the raylet and every worker
(evaluators included) start without them. With a PID namespace a candidate cannot read
an ancestor's ``/proc/PID/environ`` anyway; this keeps keys out of reach under
``evaluation.isolation=none`` too, and out of every Ray process.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH", re.IGNORECASE)
# Ray's own authentication (token auth is on by default since Ray 2.52): a driver needs it
# to start or join its cluster, so it stays; a candidate sees it only under isolation=none
RAY_OWN = frozenset({"RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"})


def is_secret(name: str) -> bool:
    return bool(SECRET_NAME.search(name))


def scrub(environ: MutableMapping[str, str] | None = None) -> list[str]:
    """Remove secret-looking variables (but Ray's own) from `environ` (default: this
    process's); return their names."""
    environ = os.environ if environ is None else environ
    removed = sorted(n for n in environ if is_secret(n) and n not in RAY_OWN)
    for name in removed:
        del environ[name]
    return removed
