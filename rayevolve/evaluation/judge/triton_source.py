"""Triton kernel source as data: the check a candidate's ``KERNELS`` text must pass, and
how the judge compiles it.

``KERNELS`` is a string holding a small module: ``import triton``, ``import
triton.language as tl``, ``NAME = literal`` lines, and functions decorated with
``@triton.jit``, nothing else. Inside the functions: Triton's language (``tl.*``),
arithmetic, comparisons, ``if``/``for``/``while``, calls of ``tl``/``triton`` functions,
of other functions of the same source and of ``range``/``min``/``max``; attributes only
under ``tl``/``triton`` or the tensor attributes listed here; no import, no ``global``,
no ``lambda``, no class, no ``try``/``with``, no name or attribute beginning with an
underscore. Whatever else the text holds is refused (``rejected``) with the line.

The judge then executes that module's top level itself (the imports, the literals, and
``triton.jit`` applied to each function: nothing of a function's body runs), with
builtins that can import nothing but Triton. On a GPU, Triton compiles the bodies; under
``TRITON_INTERPRET=1`` (the CPU test path) its interpreter runs them as Python, which
the check above confines to array arithmetic.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import linecache

from rayevolve.evaluation.judge.kernel_data import PLAIN_CODE_NODES, KernelDataError

ALLOWED_IMPORTS = {"triton": None, "triton.language": "tl"}
TENSOR_ATTRIBUTES = ("to", "dtype", "shape", "T", "element_ty", "type", "reshape", "trans")
CALLABLE_NAMES = ("range", "min", "max", "len", "int", "float", "bool", "abs")
# plain array code, and what a kernel function adds: its signature, loops, returns
ALLOWED_NODES = PLAIN_CODE_NODES + (
    ast.AnnAssign,
    ast.While,
    ast.Break,
    ast.Continue,
    ast.Return,
    ast.arguments,
    ast.arg,
    ast.Assert,
)


def _where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')} of KERNELS"


def _root(node: ast.expr) -> tuple[str | None, list[str]]:
    path = []
    while isinstance(node, ast.Attribute):
        path.insert(0, node.attr)
        node = node.value
    return (node.id if isinstance(node, ast.Name) else None), path


def _check_body(function: ast.FunctionDef, kernels: set[str]) -> None:
    for node in ast.walk(function):
        if node is function:
            continue
        if not isinstance(node, ALLOWED_NODES):
            raise KernelDataError(
                f"{_where(node)}: {type(node).__name__} is not allowed inside a Triton kernel"
            )
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise KernelDataError(f"{_where(node)}: names may not begin with '_'")
        if isinstance(node, ast.Attribute):
            if node.attr.startswith("_"):
                raise KernelDataError(f"{_where(node)}: attributes may not begin with '_'")
            root, _ = _root(node)
            if root not in ("tl", "triton") and node.attr not in TENSOR_ATTRIBUTES:
                raise KernelDataError(
                    f"{_where(node)}: .{node.attr} is not Triton's (only tl.*, triton.* and "
                    f"the tensor attributes {', '.join(TENSOR_ATTRIBUTES)})"
                )
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in CALLABLE_NAMES and node.func.id not in kernels:
                raise KernelDataError(
                    f"{_where(node)}: {node.func.id}() is neither Triton's nor a function of KERNELS"
                )


def _is_jit(decorator: ast.expr) -> bool:
    return _root(decorator) == ("triton", ["jit"])


def check(source: str) -> tuple[str, ...]:
    """The names of the ``@triton.jit`` functions of `source`; `KernelDataError` if the
    text is anything but Triton kernels and literals."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        raise KernelDataError(f"KERNELS does not parse: {exc}") from None
    kernels = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    found = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_IMPORTS or alias.asname not in (
                    None,
                    ALLOWED_IMPORTS[alias.name],
                ):
                    raise KernelDataError(
                        f"{_where(node)}: only `import triton` and `import triton.language as tl`"
                    )
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            try:
                ast.literal_eval(node.value)
            except (ValueError, TypeError, SyntaxError):
                raise KernelDataError(
                    f"{_where(node)}: module-level values must be literals"
                ) from None
            if any(t.id.startswith("_") for t in node.targets):
                raise KernelDataError(f"{_where(node)}: names may not begin with '_'")
            continue
        if isinstance(node, ast.FunctionDef):
            if (
                node.name.startswith("_")
                or len(node.decorator_list) != 1
                or not _is_jit(node.decorator_list[0])
            ):
                raise KernelDataError(
                    f"{_where(node)}: {node.name}() must be decorated with exactly @triton.jit "
                    "(and its name may not begin with '_')"
                )
            _check_body(node, kernels)
            found.append(node.name)
            continue
        raise KernelDataError(
            f"{_where(node)}: a {type(node).__name__} statement is not allowed in KERNELS: only "
            "the two Triton imports, NAME = literal and @triton.jit functions"
        )
    if not found:
        raise KernelDataError(
            "KERNELS defines no @triton.jit function: the candidate builds no kernel"
        )
    return tuple(found)


def _import_triton_only(name, globals=None, locals=None, fromlist=(), level=0):
    if name not in ALLOWED_IMPORTS or level:
        raise ImportError(f"KERNELS may import only triton, not {name}")
    return builtins.__import__(name, globals, locals, fromlist, level)


def compile_kernels(source: str) -> dict:
    """The ``@triton.jit`` functions of checked `source`, by name. The source is
    registered under a name of its hash, so that Triton can read it back."""
    names = check(source)
    filename = f"<kernels-{hashlib.sha256(source.encode()).hexdigest()[:16]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {
        "__builtins__": {
            "__import__": _import_triton_only,
            **{name: getattr(builtins, name) for name in CALLABLE_NAMES},
        },
        "__name__": filename,
    }
    try:
        exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - checked: imports and defs
    except Exception as exc:  # noqa: BLE001 - a decorator Triton refuses, say
        raise KernelDataError(f"KERNELS could not be loaded: {type(exc).__name__}: {exc}") from None
    return {name: namespace[name] for name in names}
