"""A task folder for one Python function (what `rayevolve.evolve_function` evolves),
written from the function's source and the source of its judge.

``initial_program.py`` holds the function between EVOLVE-BLOCK markers, after what it
uses (imports, plain-data constants, helper functions of its module); ``evaluator.py``
holds the judge: the user's ``evaluate(candidate)`` (or test cases) and an entry point
that hands it a `candidate` callable. Each call of ``candidate`` runs the evolved
function in a fresh child process (`call_isolated_data`) and returns plain data only, so
the judging stays in a process no candidate code ran in.

Only what can be written as source travels: a closure, a lambda, or a global that is
neither a module, plain data nor a function with source is refused with its name.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from collections.abc import Callable, Sequence
from pathlib import Path

from rayevolve.config import ConfigError

PROGRAM = "initial_program.py"
EVALUATOR = "evaluator.py"
CANDIDATE_TIMEOUT_S = 60.0  # one call of the candidate; a timeout fails the candidate

ENTRY = '''

# --- written by rayevolve.evolve_function ------------------------------------------
from rayevolve.evaluators.candidate_call import (  # noqa: E402
    CandidateFailed as _CandidateFailed,
    call_isolated_data as _call_isolated_data,
    load_module as _load_module,
)

_JUDGE = {judge}
_FUNCTION = {function!r}
_CALL_TIMEOUT_S = {timeout!r}


class _Candidate:
    """The evolved function: each call runs it in a fresh child process; only plain data
    (numbers, strings, lists, dicts) comes back."""

    def __init__(self, program_path):
        self.program_path = program_path

    def __call__(self, *args, **kwargs):
        def call():
            return getattr(_load_module(self.program_path), _FUNCTION)(*args, **kwargs)

        return _call_isolated_data(call, _CALL_TIMEOUT_S)


def evaluate(program_path):
    try:
        score = _JUDGE(_Candidate(program_path))
    except _CandidateFailed as exc:
        return {{"status": exc.kind, "error": str(exc)}}
    if isinstance(score, bool) or not isinstance(score, (dict, int, float)):
        return {{
            "status": "rejected",
            "error": f"{{_JUDGE.__name__}} returned {{type(score).__name__}} {{score!r:.100}}: "
            "return a number (the score) or a dict with combined_score",
        }}
    if isinstance(score, dict):
        if "combined_score" not in score:
            return {{
                "status": "runtime_error",
                "error": "evaluate returned a dict without combined_score (the score): "
                + ", ".join(map(str, score)),
            }}
        return score
    return {{"combined_score": float(score)}}
'''

CASES_JUDGE = '''
import json as _json
import math as _math

CASES = {cases}
_FATAL = ("timeout", "memory_limit", "crashed")


def _same(got, expected):
    if isinstance(expected, float) or isinstance(got, float):
        try:
            return _math.isclose(float(got), float(expected), rel_tol=1e-9, abs_tol=1e-12)
        except (TypeError, ValueError):
            return False
    if isinstance(expected, list) and isinstance(got, list):
        return len(got) == len(expected) and all(map(_same, got, expected))
    if isinstance(expected, dict) and isinstance(got, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in got)
    return got == expected


def test_cases(candidate):
    """The fraction of cases whose result equals the expected one (a case that raises
    fails; a timeout, memory limit or crash fails the candidate)."""
    passed, failed = 0, []
    for i, (args, expected) in enumerate(CASES):
        try:
            got = candidate(*args)
        except _CandidateFailed as exc:
            if exc.kind in _FATAL:
                raise
            failed.append(f"case {{i}} {{args!r:.80}}: {{str(exc).strip().splitlines()[-1]:.200}}")
            continue
        if _same(got, _json.loads(_json.dumps(expected))):
            passed += 1
        else:
            failed.append(f"case {{i}} {{args!r:.80}}: got {{got!r:.80}}, expected {{expected!r:.80}}")
    result = {{"combined_score": passed / len(CASES), "passed": passed, "cases": len(CASES)}}
    if failed:  # the first few, said in the row's artifacts (and to a model, as feedback)
        result["failed_cases"] = "\\n".join(failed[:5])
    return result
'''


def write_function_task(folder: Path, fn: Callable, evaluate: Callable | Sequence) -> None:
    """Write the task folder for `fn` judged by `evaluate` (see the module docstring)."""
    name = _function_name(fn, "fn")
    program = _module_source(fn, "the function to evolve", block=True)
    if callable(evaluate):
        judge_source = _module_source(evaluate, "evaluate", block=False)
        judge = _function_name(evaluate, "evaluate")
    else:
        judge_source = CASES_JUDGE.format(cases=_cases_literal(evaluate))
        judge = "test_cases"
    evaluator = (
        f'"""Judges {name}() (written by rayevolve.evolve_function)."""\n\n'
        + judge_source
        + ENTRY.format(judge=judge, function=name, timeout=CANDIDATE_TIMEOUT_S)
    )
    for text, what in ((program, PROGRAM), (evaluator, EVALUATOR)):
        try:
            ast.parse(text)
        except SyntaxError as exc:  # a source inspect could not cut cleanly
            raise ConfigError(f"the {what} written for {name}() does not parse: {exc}") from None
    folder.mkdir(parents=True)
    (folder / PROGRAM).write_text(program)
    (folder / EVALUATOR).write_text(evaluator)


def _function_name(fn: Callable, role: str) -> str:
    if not isinstance(fn, types.FunctionType):
        raise ConfigError(f"{role} must be a Python function defined with def, not {fn!r}")
    if fn.__name__ == "<lambda>":
        raise ConfigError(f"{role} is a lambda: define it with def (its source is what runs)")
    return fn.__name__


def _source(fn: types.FunctionType, role: str) -> str:
    try:
        return textwrap.dedent(inspect.getsource(fn))
    except (OSError, TypeError):
        raise ConfigError(
            f"{role} {fn.__name__}() has no source to read: define it in a file or a notebook cell"
        ) from None


def _names(code: types.CodeType) -> set[str]:
    """Global names a code object and the code objects inside it (comprehensions,
    nested functions) use."""
    names = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _names(const)
    return names


def _module_source(fn: Callable, role: str, *, block: bool) -> str:
    """`fn`'s source after what it uses from its module: imports, constants, helper
    functions (theirs too); between EVOLVE-BLOCK markers when `block`."""
    _function_name(fn, role)
    if fn.__closure__:
        free = ", ".join(fn.__code__.co_freevars)
        raise ConfigError(
            f"{role} {fn.__name__}() uses variables of an enclosing function ({free}): "
            "define it at the top level of a file or a notebook cell"
        )
    imports: list[str] = []
    definitions: list[str] = []
    seen = {fn.__name__}
    pending = [fn]
    while pending:
        current = pending.pop()
        for name in sorted(_names(current.__code__)):
            if name in seen or name not in current.__globals__:
                continue
            seen.add(name)
            value = current.__globals__[name]
            own = getattr(value, "__module__", None) == fn.__module__
            line = None if own else _import_line(name, value)
            if line is not None:
                imports.append(line)
            elif isinstance(value, types.FunctionType) and own:
                if value.__closure__:
                    raise ConfigError(
                        f"{role} {fn.__name__}() calls {name}(), which uses variables of an "
                        "enclosing function: define it at the top level"
                    )
                definitions.append(_source(value, "the helper"))
                pending.append(value)
            elif _is_literal(value):
                definitions.append(f"{name} = {value!r}\n")
            else:
                raise ConfigError(
                    f"{role} {fn.__name__}() uses the global {name!r} "
                    f"({type(value).__name__}), which cannot be written as source: import it "
                    "inside the function, or make it plain data"
                )
    body = _source(fn, role)
    if block:
        body = f"# EVOLVE-BLOCK-START\n{body}# EVOLVE-BLOCK-END\n"
    parts = [
        "\n".join(sorted(set(imports))) + "\n" if imports else "",
        "\n\n".join(definitions),
        body,
    ]
    return "\n\n".join(p for p in parts if p)


def _import_line(name: str, value: object) -> str | None:
    if isinstance(value, types.ModuleType):
        module = value.__name__
        return f"import {module}" if module == name else f"import {module} as {name}"
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if (
        module
        and qualname
        and module not in ("__main__", "builtins")
        and not module.startswith("__")
        and "." not in qualname
        and inspect.getmodule(value) is not None
        and getattr(inspect.getmodule(value), qualname, None) is value
    ):
        return f"from {module} import {qualname}" + ("" if qualname == name else f" as {name}")
    return None


def _is_literal(value: object) -> bool:
    try:
        return ast.literal_eval(repr(value)) == value
    except (ValueError, SyntaxError, TypeError, RecursionError, MemoryError):
        return False


def _holds_a_set(value: object) -> bool:
    """Sets do not travel as JSON: a result can never equal one."""
    if isinstance(value, set | frozenset):
        return True
    if isinstance(value, dict):
        return any(_holds_a_set(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_holds_a_set(v) for v in value)
    return False


def _cases_literal(cases: Sequence) -> str:
    """Test cases ``[(args, expected), ...]`` as a literal (args a tuple or list of
    arguments, or one argument)."""
    try:
        pairs = [(a if isinstance(a, tuple | list) else (a,), e) for a, e in cases]
    except (TypeError, ValueError):
        raise ConfigError(
            "evaluate must be a function evaluate(candidate) or test cases [(args, expected), ...]"
        ) from None
    if not pairs:
        raise ConfigError("evaluate: the test cases are empty")
    literal = repr([(tuple(a), e) for a, e in pairs])
    if not _is_literal([(tuple(a), e) for a, e in pairs]) or _holds_a_set(pairs):
        raise ConfigError(
            "evaluate: test cases must be plain data (numbers, strings, lists, tuples, dicts; "
            "no sets)"
        )
    return literal
