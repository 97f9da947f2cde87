"""A kernel candidate as data: what its EVOLVE-BLOCK may hold, and how that is read.

The judge never imports or executes a candidate's module. It reads the EVOLVE-BLOCK text
(`read_candidate_source`: reading is not running) and accepts only:

* ``NAME = <literal>``: strings (kernel source, header), numbers, booleans, and tuples,
  lists or dicts of them, evaluated with `ast.literal_eval` (which evaluates nothing);
* ``def launch(...)``: plain Python that maps a shape to a launch plan (grid, block sizes,
  template constants); no imports, no decorators, no ``global``, no name or attribute
  that begins with an underscore.

Anything else (an import, a call at module level, a class, an expression that is not a
literal) is refused before any process starts, with the line and the reason. What the
block's functions return is computed in the candidate process (`worker.py`, started
fresh by exec: it holds no seed, input or reference of the judge's): the block alone is
executed there, with a small set of builtins, once for every shape the judge will use
(so a plan cannot tell which shapes are checked), and only JSON comes back, which the
backend then validates. The frame around the blocks (the module's fixed
part, which makes the file usable on its own) is never read at all.
"""

from __future__ import annotations

import ast
import builtins
from dataclasses import dataclass, field

from rayevolve.evaluators.candidate_call import CandidateFailed, parse_candidate
from rayevolve.outcome import Outcome
from rayevolve.program import ProgramError, block_texts

LAUNCH_FUNCTIONS = ("launch",)
SAFE_BUILTINS = {
    name: getattr(builtins, name)
    for name in (
        "abs",
        "all",
        "any",
        "bool",
        "dict",
        "divmod",
        "enumerate",
        "float",
        "int",
        "isinstance",
        "len",
        "list",
        "max",
        "min",
        "pow",
        "range",
        "reversed",
        "round",
        "sorted",
        "str",
        "sum",
        "tuple",
        "zip",
        "ValueError",
    )
}


# the syntax of plain array code (stand-in kernels, Triton kernels): statements that
# assign and branch, expressions that compute and call; nothing that defines, imports,
# deletes, raises, awaits or yields
PLAIN_CODE_NODES = (
    ast.Module,
    ast.Assign,
    ast.AugAssign,
    ast.If,
    ast.For,
    ast.Pass,
    ast.Expr,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.Constant,
    ast.Attribute,
    ast.Subscript,
    ast.Slice,
    ast.Tuple,
    ast.List,
    ast.Call,
    ast.keyword,
    ast.BinOp,
    ast.UnaryOp,
    ast.BoolOp,
    ast.Compare,
    ast.IfExp,
    ast.operator,
    ast.unaryop,
    ast.boolop,
    ast.cmpop,
)


class KernelDataError(ValueError):
    """The candidate's EVOLVE-BLOCK is not data the judge accepts (status ``rejected``)."""


@dataclass(frozen=True)
class KernelData:
    """What a kernel candidate declared.

    Attributes:
      constants: every ``NAME = literal`` of its blocks.
      functions: the names of the plan functions it defines (``launch``).
      block_source: the blocks' text, which only an isolated child ever executes.
    """

    constants: dict[str, object] = field(default_factory=dict)
    functions: tuple[str, ...] = ()
    block_source: str = ""

    def text(self, name: str, required: bool = True) -> str:
        value = self.constants.get(name, "" if not required else None)
        if value is None:
            raise KernelDataError(f"the EVOLVE-BLOCK defines no {name} (a string)")
        if not isinstance(value, str):
            raise KernelDataError(f"{name} must be a string, got {type(value).__name__}")
        return value


def _where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')} of the EVOLVE-BLOCK"


def _check_function(node: ast.FunctionDef) -> None:
    if node.decorator_list:
        raise KernelDataError(f"{_where(node)}: {node.name}() may not be decorated")
    for inner in ast.walk(node):
        if isinstance(inner, ast.Import | ast.ImportFrom):
            raise KernelDataError(f"{_where(inner)}: {node.name}() may not import anything")
        if isinstance(inner, ast.Global | ast.Nonlocal):
            raise KernelDataError(f"{_where(inner)}: {node.name}() may not use global/nonlocal")
        if isinstance(inner, ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda | ast.Yield):
            raise KernelDataError(
                f"{_where(inner)}: {node.name}() may hold only plain arithmetic and control flow"
            )
        name = (
            inner.attr
            if isinstance(inner, ast.Attribute)
            else inner.id
            if isinstance(inner, ast.Name)
            else None
        )
        if name and name.startswith("_"):
            raise KernelDataError(
                f"{_where(inner)}: {node.name}() may not use the name {name!r} (names "
                "beginning with an underscore reach the interpreter's internals)"
            )


def parse_blocks(source: str) -> KernelData:
    """The data a candidate's EVOLVE-BLOCKs declare; `KernelDataError` if they hold
    anything else."""
    try:
        blocks = block_texts(source)
    except ProgramError as exc:
        raise KernelDataError(f"the program's EVOLVE-BLOCK markers are broken: {exc}") from None
    text = "\n".join(blocks)
    try:
        tree = parse_candidate(text)
    except SyntaxError as exc:
        raise KernelDataError(f"the EVOLVE-BLOCK does not parse: {exc}") from None
    constants: dict[str, object] = {}
    functions: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a docstring or a bare string: a comment
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                names = ", ".join(t.id for t in node.targets)
                raise KernelDataError(
                    f"{_where(node)}: {names} = ... is not a literal; the EVOLVE-BLOCK may only "
                    "assign strings, numbers and tuples/lists/dicts of them (or define launch())"
                ) from None
            for target in node.targets:
                if target.id.startswith("_"):
                    raise KernelDataError(f"{_where(node)}: names may not begin with '_'")
                constants[target.id] = value
            continue
        if isinstance(node, ast.FunctionDef) and node.name in LAUNCH_FUNCTIONS:
            _check_function(node)
            functions.append(node.name)
            continue
        kind = type(node).__name__
        raise KernelDataError(
            f"{_where(node)}: a {kind} statement is not allowed in a kernel's EVOLVE-BLOCK; it "
            f"may only assign literals (NAME = ...) and define {' / '.join(LAUNCH_FUNCTIONS)}(); "
            "the judge builds, launches and times the kernel itself"
        )
    return KernelData(constants, tuple(functions), text)


def launch_plans(
    data: KernelData, calls: list[tuple], process=None, timeout_s: float = 30.0
) -> list | None:
    """``launch(*args)`` for every `calls` entry, computed in the candidate process
    `process` (a fresh one when None: `remote.CandidateProcess`, never a fork of this
    one); None if the block defines no launch(). Raises `CandidateFailed` (its status
    and message) if launch() raised, hung or returned something that is not plain data."""
    if "launch" not in data.functions:
        return None
    from rayevolve.evaluators.judge.remote import CandidateProcess

    if process is None:
        with CandidateProcess() as fresh:
            return launch_plans(data, calls, fresh, timeout_s)
    answer, _ = process.request(
        "plans", timeout_s, block=data.block_source, calls=[list(c) for c in calls]
    )
    plans = answer.get("plans")
    if not isinstance(plans, list) or len(plans) != len(calls):
        raise CandidateFailed(Outcome.REJECTED, "launch() did not give one plan per shape")
    return plans


__all__ = [
    "CandidateFailed",
    "KernelData",
    "KernelDataError",
    "launch_plans",
    "parse_blocks",
]
