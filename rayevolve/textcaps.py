"""Caps on every text rayevolve stores (an error, an artifact, a message): the one rule
the judge's channel, the verdict's record (`EvalResult`) and the log share.

Standard library only, and imported by path where the package is not (the judge's
channel, `sandbox/verdict.py`, run beside `child.py`).
"""

from __future__ import annotations

MAX_TEXT_CHARS = 16_000  # any one stored text (an error, an artifact): head and tail kept
MAX_ARTIFACTS = 64  # artifacts kept per verdict
MAX_KEY_CHARS = 200


def cap_text(text: str, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` if short enough, else its head and tail with the omitted size between."""
    if len(text) <= limit:
        return text
    head = limit // 4
    tail = limit - head
    return f"{text[:head]}\n... [{len(text) - limit} characters omitted] ...\n{text[-tail:]}"


def as_text(value: object, limit: int = MAX_TEXT_CHARS) -> str:
    """Any value as a capped string (a non-string is shown by its repr, itself capped)."""
    if isinstance(value, str):
        return cap_text(value, limit)
    if isinstance(value, bytes):  # e.g. an EvaluationResult's binary artifact
        return cap_text(value.decode("utf-8", errors="replace"), limit)
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a hostile __repr__
        text = f"<unprintable {type(value).__name__}: {type(exc).__name__}>"
    return cap_text(text, limit)


def cap_artifacts(artifacts: dict, limit: int = MAX_TEXT_CHARS) -> dict[str, str]:
    """At most `MAX_ARTIFACTS` entries, every key and value a capped string."""
    capped: dict[str, str] = {}
    for key, value in list(artifacts.items())[:MAX_ARTIFACTS]:
        capped[as_text(key, MAX_KEY_CHARS)] = as_text(value, limit)
    if len(artifacts) > MAX_ARTIFACTS:
        capped["artifacts_omitted"] = f"{len(artifacts) - MAX_ARTIFACTS} more artifacts omitted"
    return capped
