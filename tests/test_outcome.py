"""One vocabulary of outcomes (`rayevolve.outcome`) and one record of counters
(`rayevolve.counts`): what the log, the mutator, the evaluator and the summary share."""

import ast
from collections import Counter
from pathlib import Path

import pytest

import rayevolve
from rayevolve.counts import Counts
from rayevolve.edits import EditError, apply_reply
from rayevolve.log import EventKind, mutation_failure_row, program_row
from rayevolve.log.schema import PROGRAMS_SCHEMA, to_table
from rayevolve.mutation.base import MutationResult
from rayevolve.outcome import MutationFailure, Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult

PACKAGE = Path(rayevolve.__file__).parent
# run by path in the candidate's sandbox, without the package: its statuses are checked
# against `Outcome` where the verdict is read (`sandbox._decode`)
BY_PATH = {PACKAGE / "sandbox" / "child.py"}
SEED = "# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n"


def _spelled_outcomes(path: Path, values: set[str] | None = None) -> list[tuple[int, str]]:
    """String literals equal to an outcome value (or one of `values`), leaving out
    substring searches (``"timeout" in message``), which read text rather than name one."""
    if values is None:
        values = {str(v) for v in Outcome} | {str(v) for v in MutationFailure}
    tree = ast.parse(path.read_text())
    searched = {
        id(node.left)
        for node in ast.walk(tree)
        if isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn)
    }
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in values and id(node) not in searched
    ]


def test_no_module_spells_an_outcome_as_a_bare_string():
    found = {
        f"{path.relative_to(PACKAGE)}:{line} {value!r}"
        for path in PACKAGE.rglob("*.py")
        if path.name not in ("outcome.py",) and path not in BY_PATH
        for line, value in _spelled_outcomes(path)
    }
    assert not found, f"use rayevolve.outcome's enums instead: {sorted(found)}"


def test_no_module_spells_an_event_kind_as_a_bare_string():
    kinds = {str(k) for k in EventKind}
    found = {
        f"{path.relative_to(PACKAGE)}:{line} {value!r}"
        for path in PACKAGE.rglob("*.py")
        if path != PACKAGE / "log" / "schema.py"
        for line, value in _spelled_outcomes(path, kinds)
    }
    assert not found, f"use rayevolve.log.EventKind instead: {sorted(found)}"


def test_the_by_path_child_only_spells_outcomes_the_enum_has():
    for path in BY_PATH:
        assert {value for _, value in _spelled_outcomes(path)} <= {str(v) for v in Outcome}


def test_a_failed_mutation_and_an_evaluation_land_in_the_log_as_outcomes():
    parent = Program.create(SEED, language="python", parent=None, island=-1).with_result(
        EvalResult(Outcome.OK, 1.0)
    )
    with pytest.raises(EditError) as caught:
        apply_reply(SEED, "no edit here", "diff", "python")
    failed = MutationResult(
        child_code=None,
        reply="no edit here",
        model="m",
        operator="m:diff",
        mode="diff",
        seed=0,
        error_kind=caught.value.kind,
        error=caught.value.message,
    )
    child = Program.create(SEED.replace("1", "2"), language="python", parent=parent, island=0)
    rows = [
        mutation_failure_row("run", parent, 0, failed, 0.1),
        program_row("run", child.with_result(EvalResult(Outcome.TIMEOUT))),
    ]
    table = to_table(rows, PROGRAMS_SCHEMA).to_pylist()
    assert [Outcome(r["status"]) for r in table] == [Outcome.MUTATION_FAILED, Outcome.TIMEOUT]
    assert MutationFailure(table[0]["mutation_error_kind"]) is MutationFailure.NO_EDIT_PARSED
    assert not Outcome.MUTATION_FAILED.judged and Outcome.TIMEOUT.judged


def _row(island, status):
    return {"island": island, "status": str(status)}


def test_counts_from_the_log_agree_with_counts_kept_live():
    outcomes = [
        (0, Outcome.OK),
        (0, Outcome.TIMEOUT),
        (1, Outcome.OK),
        (0, Outcome.MUTATION_FAILED),
        (1, Outcome.RUNTIME_ERROR),
    ]
    live = {0: Counts(), 1: Counts()}
    for island, status in outcomes:
        if status.judged:
            live[island].judged(status)
        else:
            live[island].mutation_failures += 1
    rows = [_row(-1, Outcome.OK)] + [_row(i, s) for i, s in outcomes]  # the seed first
    assert Counts.from_rows(rows, island=0) == live[0]
    assert Counts.from_rows(rows) == Counts.total(live.values())
    total = Counts.total(live.values())
    assert (total.evaluations, total.failures, total.mutation_failures) == (4, 2, 1)


def test_counts_travel_as_a_payload_and_copies_are_independent():
    counts = Counts(Counter({Outcome.OK: 3, Outcome.CRASHED: 1}), 2, 5, 1, 4)
    assert Counts.from_payload(counts.to_payload()) == counts
    copy = counts.copy()
    copy.judged(Outcome.OK)
    copy.duplicates += 1
    assert (counts.evaluations, counts.duplicates) == (4, 5)
    with pytest.raises(ValueError):
        counts.judged("not_an_outcome")
