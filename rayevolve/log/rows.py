"""Rows of the run log: the only place a `Program` (with its mutation and verdict)
becomes a programs-table row, and a row becomes a `Program` again; event rows."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence

from rayevolve.log.schema import SCHEMA_VERSION
from rayevolve.mutation.base import MutationResult
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult


def program_row(
    run_id: str,
    program: Program,
    *,
    mutation: MutationResult | None = None,
    inspiration_ids: Sequence[str] = (),
    mutation_s: float | None = None,
    eval_call_s: float | None = None,
) -> dict:
    """The programs-table row of an evaluated program (or the seed, without mutation)."""
    result = program.result
    row = {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "program_id": program.id,
        "parent_id": program.parent_id,
        "island": program.island,
        "generation": program.generation,
        "created_at": program.created_at * 1000.0,
        "language": program.language,
        "code": program.code,
        "code_hash": program.code_hash,
        "inspiration_ids": list(inspiration_ids),
        "mutation_s": mutation_s,
        "eval_call_s": eval_call_s,
    }
    if mutation is not None:
        row.update(_mutation_columns(mutation))
    else:
        row["mutation_operator"] = "seed"
    if result is not None:
        row.update(
            status=str(result.status),
            score=result.score,
            metrics=list(result.metrics.items()),
            artifacts=list(result.artifacts.items()),
            cascade_stage=result.stage,
            eval_s=result.wall_s,
            attempts=result.attempts,
            evaluator_id=result.evaluator_id,
            node_id=result.node_id,
            host=result.host,
            platform=result.platform,
            isolation=result.isolation or None,
        )
    return row


def mutation_failure_row(
    run_id: str,
    parent: Program,
    island: int,
    mutation: MutationResult,
    mutation_s: float,
    inspiration_ids: Sequence[str] = (),
) -> dict:
    """A programs-table row for a reply that produced no child (no code, no score)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "program_id": uuid.uuid4().hex,
        "parent_id": parent.id,
        "island": island,
        "generation": parent.generation + 1,
        "created_at": time.time() * 1000.0,
        "language": parent.language,
        "status": Outcome.MUTATION_FAILED,
        "inspiration_ids": list(inspiration_ids),
        "mutation_s": mutation_s,
        **_mutation_columns(mutation),
    }


def _mutation_columns(m: MutationResult) -> dict:
    return {
        "mutation_operator": m.operator,
        "mutation_mode": m.mode,
        "mutation_error_kind": m.error_kind,
        "mutation_error": m.error or None,
        "mutation_seed": m.seed,
        "model": m.model,
        "edit": m.edit or None,
        "reply": m.reply if not m.ok or m.reply != m.edit else None,  # diff replies equal the edit
        "prompt_tokens": m.prompt_tokens,
        "completion_tokens": m.completion_tokens,
        "temperature": m.temperature,
        "finish_reason": m.finish_reason,
        "model_latency_s": m.latency_s,
        "prompt_hash": m.prompt_hash,
        "repairs": m.repairs,
        "request_retries": m.retries,
        "prompt": m.prompt,  # moved to the prompts table by the log actor
    }


def event_row(run_id: str, kind: str, **fields) -> dict:
    payload = fields.pop("payload", None)
    return {
        "schema_version": SCHEMA_VERSION,
        "run_id": run_id,
        "time": time.time() * 1000.0,
        "kind": kind,
        "payload": json.dumps(payload, default=str) if payload is not None else None,
        **fields,
    }


def _none_if_nan(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def program_from_row(row: dict) -> Program:
    """The `Program` (with its `EvalResult`) a programs-table row records."""
    status = Outcome(row["status"])
    score = _none_if_nan(row.get("score"))
    result = EvalResult(
        status=status,
        score=float(score) if status == Outcome.OK else None,
        metrics={k: float(v) for k, v in (row.get("metrics") or [])},
        artifacts={k: v for k, v in (row.get("artifacts") or [])},
        wall_s=float(_none_if_nan(row.get("eval_s")) or 0.0),
        node_id=row.get("node_id") or "",
        host=row.get("host") or "",
        platform=row.get("platform") or "",
        evaluator_id=row.get("evaluator_id") or "",
        attempts=int(_none_if_nan(row.get("attempts")) or 1),
        stage=int(_none_if_nan(row.get("cascade_stage")) or 0),
        isolation=row.get("isolation") or "",
    )
    created_s = time_ms(row["created_at"]) / 1000.0
    return Program(
        id=row["program_id"],
        code=row["code"],
        language=row["language"],
        parent_id=row.get("parent_id"),
        island=int(row["island"]),
        generation=int(row["generation"]),
        created_at=created_s,
        code_hash=row["code_hash"],
        result=result,
    )


def time_ms(value) -> float:
    """Milliseconds since the epoch of a log timestamp: a datetime read from Parquet, or
    the float a not-yet-written row holds."""
    return value.timestamp() * 1000.0 if hasattr(value, "timestamp") else float(value)
