"""Every hostile candidate of `rayevolve.testing.attacks` fails under the default
isolation, under both launchers, and leaves no trace: each gets a classified result (with
its message when it failed), nothing it started is left running, the user's task folder
and the run log are unchanged byte for byte, a bystander process lives on, no secret
appears in anything that came back, and a later honest candidate is judged honestly.

The same attacks under ``isolation=none`` are in docs/sandbox.md's table
(experiments/sandbox_attacks/table.py), not here: there, several succeed by design.
"""

import sys

import pytest

from rayevolve.result import Isolation
from rayevolve.sandbox.confinement import resolve
from rayevolve.testing.attacks import ATTACKS, FORGED, HONEST, Arena

pytestmark = pytest.mark.sandbox

if not sys.platform.startswith("linux"):
    pytest.skip("the namespaces level is Linux's", allow_module_level=True)
DEFAULT = resolve("auto")
if DEFAULT.level != Isolation.NAMESPACES:
    pytest.skip(
        f"the default isolation here is {DEFAULT.describe()}: install bubblewrap",
        allow_module_level=True,
    )

STATUSES = {"ok", "crashed", "timeout", "runtime_error", "rejected", "incorrect"}


@pytest.fixture(scope="module")
def arena():
    with Arena(persistent=True) as arena:  # one supervisor per setting, as one evaluator
        yield arena


# bubblewrap under both launchers; util-linux's unshare (where bubblewrap is missing)
# under the default launcher
SETTINGS = [("forkserver", ""), ("spawn", ""), ("forkserver", "unshare")]


@pytest.mark.parametrize("launcher, tool", SETTINGS, ids=["forkserver", "spawn", "unshare"])
@pytest.mark.parametrize("attack", ATTACKS, ids=[a.name for a in ATTACKS])
def test_attack_fails_under_the_default_isolation(arena, attack, launcher, tool):
    outcome = arena.run(attack, "auto", launcher, timeout_s=2.5, tool=tool)
    assert outcome.supervisor_ok, outcome.supervisor_error  # its evaluator lived on
    assert not attack.succeeded(outcome), outcome
    assert outcome.isolation == "namespaces"
    assert outcome.status in STATUSES
    if outcome.status == "ok":
        assert outcome.score == HONEST  # the score its code really returned
    else:
        assert outcome.score is None and outcome.artifacts.get("error")
    assert outcome.score != FORGED
    assert outcome.probe_score in (None, HONEST, 0.0)  # later candidates judged honestly
    assert not outcome.leftovers  # nothing it started is running
    assert not outcome.user_task_changed and not outcome.run_log_changed
    assert outcome.sentinel_alive
    assert not outcome.secret_leaked
    assert outcome.connections == {"tcp": 0, "unix": 0}
    assert len(outcome.text()) < 200_000  # every stored text is capped
