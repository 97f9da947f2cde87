"""Driver kills, measured: what a SIGKILL of a running driver costs in evaluations.

A run of the ``witnessed`` test task (its evaluator appends each finished evaluation's
time and program hash to a witness file, outside the run log) is started as a user
starts one, its driver is SIGKILLed at a chosen moment, and the run is resumed to its
budget. `KillOutcome` then compares the witness with the log: evaluations that finished
more than `GRACE_S` before the kill and are missing from the log are lost; the log must
hold exactly the budget, with no program twice. Used by ``tests/test_faults.py`` (a few
kills) and ``experiments/fault_injection/kill.py`` (many, seeded, with a table).
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from rayevolve.outcome import Outcome
from rayevolve.sandbox.child import running

ROOT = Path(__file__).resolve().parents[2]
TASK = ROOT / "tests" / "tasks" / "witnessed"
GRACE_S = 0.5  # an evaluation this close to the kill may be in flight to the log


@dataclass(frozen=True)
class KillOutcome:
    """One kill and its resume.

    Attributes:
      witnessed_before: evaluations that finished more than GRACE_S before the kill.
      lost: of those, how many the log lacks after the resume.
      resumed: the resume ended with exit status 0.
      evaluations: children the log holds at the end (the budget, if nothing is off).
      duplicates: program ids the log holds more than once.
      resume_error: the resume's last line of stderr when it failed.
      resume_summary: what the resume printed (its summary).
    """

    kill_after_s: float
    witnessed_before: int
    lost: int
    resumed: bool
    evaluations: int
    duplicates: int
    resume_error: str = ""
    resume_summary: str = ""


def kill_session(sid: int, timeout: float = 30) -> None:
    """SIGKILL every process of session `sid` and wait until they are gone: a crash of
    the driver's machine. Killing the driver's process group is not enough: Ray starts
    each worker in its own group, and orphaned actors go on evaluating and logging for
    seconds until they notice."""
    deadline = time.monotonic() + timeout
    while True:
        members = []
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    if os.getsid(int(entry)) == sid and running(int(entry)):
                        members.append(int(entry))
                except (ProcessLookupError, PermissionError):
                    pass
        if not members:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {members} outlived SIGKILL")
        for pid in members:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.1)


def command(run_dir: Path, witness: Path, *overrides: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rayevolve",
        f"task.path={TASK}",
        "task.features=[{name:code_length,min:0,max:200,bins:4}]",
        "evaluation.isolation=none",
        f"+task.env.WITNESS={witness}",
        "islands.count=2",
        "progress=false",
        f"run_dir={run_dir}",
        f"hydra.run.dir={run_dir.parent / 'hydra'}",
        *overrides,
    ]


def witnessed(witness: Path) -> list[tuple[float, str]]:
    if not witness.exists():
        return []
    entries = []
    for line in witness.read_text().splitlines():
        stamp, _, digest = line.partition(" ")
        if digest:
            entries.append((float(stamp), digest))
    return entries


def logged(run_dir: Path, before: float) -> tuple[set[str], int, int]:
    """(hashes of the code of programs created before the epoch time `before`, evaluated
    children, duplicated ids) in the log. Only rows from before the kill count: a lost
    row's program may be generated again, identically, after the resume."""
    from rayevolve.log import read_programs

    columns = ["program_id", "island", "code", "status", "created_at"]
    table = read_programs(run_dir, columns=columns).to_pandas()
    old = table[table["created_at"].map(lambda t: t.timestamp()) < before]
    codes = {hashlib.sha256(c.encode()).hexdigest() for c in old["code"].dropna()}
    children = table[(table["island"] >= 0) & table["status"].notna()]
    children = children[children["status"] != Outcome.MUTATION_FAILED]
    return codes, len(children), int(table["program_id"].duplicated().sum())


def kill_and_resume(
    work: Path,
    *,
    after_evaluations: int,
    delay_s: float,
    budget: int,
    eval_s: float = 0.02,
    timeout_s: float = 300,
    overrides: tuple[str, ...] = (),
    session: bool = False,
) -> KillOutcome:
    """Start a run of `budget` evaluations, SIGKILL its driver `delay_s` after the
    witness shows `after_evaluations` finished evaluations (the seed is the first), then
    resume it to its budget and compare. `overrides` go to the first run (and so, through
    its saved configuration, to the resume). `session`: kill the driver's whole session
    (its local Ray and every actor with it: the machine crashing) instead of the driver
    alone (whose orphaned actors go on for seconds)."""
    run_dir, witness = work / "run", work / "witness.txt"
    env = {**os.environ, "EVAL_S": str(eval_s), "RAY_USAGE_STATS_ENABLED": "0"}
    driver = subprocess.Popen(
        command(run_dir, witness, f"stop.max_evaluations={budget}", *overrides),
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    started, started_wall = time.monotonic(), time.time()
    try:
        while len(witnessed(witness)) < after_evaluations:
            if driver.poll() is not None or time.monotonic() - started > timeout_s:
                raise RuntimeError(
                    f"the run ended or stalled before {after_evaluations} evaluations"
                )
            time.sleep(0.01)
        time.sleep(delay_s)
        killed_at = time.time()
        if session:
            kill_session(driver.pid)
        else:
            os.kill(driver.pid, signal.SIGKILL)  # the driver only: Ray reaps its job's actors
    finally:
        if driver.poll() is None:
            os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    before = {d for t, d in witnessed(witness) if t < killed_at - GRACE_S}
    resume = [sys.executable, "-m", "rayevolve", f"resume={run_dir}", "progress=false"]
    done = subprocess.run(
        [*resume, f"hydra.run.dir={run_dir.parent / 'hydra'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    codes, children, duplicates = logged(run_dir, killed_at)
    return KillOutcome(
        kill_after_s=killed_at - started_wall,
        witnessed_before=len(before),
        lost=len(before - codes),
        resumed=done.returncode == 0,
        evaluations=children,
        duplicates=duplicates,
        resume_error="" if done.returncode == 0 else (done.stderr.strip().splitlines() or [""])[-1],
        resume_summary=done.stdout,
    )
