"""What became of one attempt at a child: the names the log, the mutator and the
evaluator share (the ``status`` and ``mutation_error_kind`` columns of the programs table).

`Outcome` is a row's ``status``: ``ok`` or a classified evaluation failure (what the
judge said of the candidate), or ``mutation_failed`` when the model's reply gave no child
to judge. `MutationFailure` then says why (``mutation_error_kind``). Both are fed back to
the model; analysis groups by them. No other module spells these values.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """Why a candidate got (or did not get) a score.

    Only `OK` carries a score. Every other value is a classified failure whose
    artifacts (or, for `MUTATION_FAILED`, the mutation error) are fed back to the model.
    """

    OK = "ok"
    INCORRECT = "incorrect"  # ran, but the evaluator judged the output wrong
    COMPILE_ERROR = "compile_error"  # candidate did not parse/compile
    RUNTIME_ERROR = "runtime_error"  # candidate or evaluator raised
    TIMEOUT = "timeout"  # wall-clock limit hit; whole process group killed
    MEMORY_LIMIT = "memory_limit"  # address-space limit hit (MemoryError or OOM kill)
    CRASHED = "crashed"  # died by a signal or exited without a result
    TOO_SLOW = "too_slow"  # correct, but so slow that timing it further is pointless
    UNSUPPORTED_PLATFORM = "unsupported_platform"  # e.g. Metal task on a node without Metal
    REJECTED = "rejected"  # evaluator contract broken: no/non-finite score, bad return type
    INFRA_ERROR = "infra_error"  # the evaluator itself failed (not the candidate's fault)
    MUTATION_FAILED = "mutation_failed"  # the reply gave no child (see MutationFailure)

    @property
    def judged(self) -> bool:
        """Whether an evaluator ran on a candidate (every value but MUTATION_FAILED)."""
        return self is not Outcome.MUTATION_FAILED


class MutationFailure(StrEnum):
    """Why a model's reply (or the request for one) gave no child program."""

    EMPTY_REPLY = "empty_reply"
    NO_EDIT_PARSED = "no_edit_parsed"
    SEARCH_NOT_FOUND = "search_not_found"
    OUTSIDE_EVOLVE_BLOCK = "outside_evolve_block"
    NO_CHANGE = "no_change"
    MALFORMED_PROGRAM = "malformed_program"
    TRUNCATED_REPLY = "truncated_reply"  # cut off at the token limit before it was complete
    BACKEND_ERROR = "backend_error"  # the model call failed (after its retries)
    NO_MUTATION = "no_mutation"  # the operator has nothing it can change in this parent
