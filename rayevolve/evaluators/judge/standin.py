"""Stand-in kernels for machines without the real device (tests, CI): a tiny array
language over MLX's CPU operations.

Where Metal is needed and absent, a kernel task can be judged with its ``KERNEL_SOURCE``
written in this language instead of Metal: the body of a function of ``q, k, v, scale,
causal`` and the plan's template constants, which assigns ``out``. It is data in the
same sense as Metal source: the judge checks it, builds it and runs it, and it can do
nothing but compute arrays. The check admits assignments (to names, or into an array's
elements, which lets a stand-in try to write its inputs), ``if``, ``for ... in
range(...)``, arithmetic, comparisons, and calls of the listed MLX operations and array
methods; it refuses imports, attribute names outside the lists, names beginning with an
underscore, ``lambda``, ``global``, comprehensions, and anything else. The function runs
with no builtins but a few pure ones and an ``mx`` that holds only the listed
operations: no MLX module, no ``mx.fast``, no ``mx.eval``.

This is a test device, selected only by ``RAYEVOLVE_KERNEL_BACKEND=mlx_standin`` in the
task's environment; a Metal node judges Metal source.
"""

from __future__ import annotations

import ast
import hashlib
import types

from rayevolve.evaluators.candidate_call import parse_candidate
from rayevolve.evaluators.judge.kernel_data import PLAIN_CODE_NODES, KernelDataError

MX_OPERATIONS = (
    "abs",
    "arange",
    "argmax",
    "array",
    "broadcast_to",
    "clip",
    "concatenate",
    "exp",
    "expand_dims",
    "full",
    "isinf",
    "isnan",
    "log",
    "logsumexp",
    "matmul",
    "max",
    "maximum",
    "mean",
    "min",
    "minimum",
    "ones",
    "ones_like",
    "repeat",
    "reshape",
    "round",
    "softmax",
    "split",
    "stack",
    "sum",
    "swapaxes",
    "take",
    "take_along_axis",
    "tile",
    "transpose",
    "where",
    "zeros",
    "zeros_like",
)
MX_CONSTANTS = ("float16", "bfloat16", "float32", "int8", "int32", "inf")
ARRAY_ATTRIBUTES = (
    "astype",
    "dtype",
    "max",
    "mean",
    "min",
    "ndim",
    "reshape",
    "shape",
    "size",
    "squeeze",
    "sum",
    "swapaxes",
    "T",
    "transpose",
)
PURE_BUILTINS = {
    "range": range,
    "min": min,
    "max": max,
    "len": len,
    "int": int,
    "float": float,
    "abs": abs,
}
PARAMETERS = ("q", "k", "v", "scale", "causal")


def _mx_facade():
    import mlx.core as mx

    return types.SimpleNamespace(
        **{name: getattr(mx, name) for name in MX_OPERATIONS + MX_CONSTANTS if hasattr(mx, name)}
    )


def check(source: str, constants: tuple[str, ...]) -> ast.Module:
    """The stand-in's syntax tree, if it is in the language; `KernelDataError` if not."""
    if not source.strip():
        raise KernelDataError("KERNEL_SOURCE is empty: the candidate builds no kernel")
    try:
        tree = parse_candidate(source)
    except SyntaxError as exc:
        raise KernelDataError(f"the stand-in kernel does not parse: {exc}") from None
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')} of the stand-in kernel"
        if not isinstance(node, PLAIN_CODE_NODES):
            raise KernelDataError(f"{where}: {type(node).__name__} is not in the stand-in language")
        if isinstance(node, ast.Name) and node.id.startswith("_"):
            raise KernelDataError(f"{where}: names may not begin with '_'")
        if isinstance(node, ast.Attribute):
            owner, dotted = node.value, [node.attr]
            while isinstance(owner, ast.Attribute):
                dotted.insert(0, owner.attr)
                owner = owner.value
            if isinstance(owner, ast.Name) and owner.id == "mx":
                name = ".".join(["mx", *dotted])
                if len(dotted) > 1 or node.attr not in MX_OPERATIONS + MX_CONSTANTS:
                    raise KernelDataError(f"{where}: {name} is not a stand-in operation")
            elif node.attr not in ARRAY_ATTRIBUTES:
                raise KernelDataError(f"{where}: .{node.attr} is not a stand-in array attribute")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            if node.func.id not in PURE_BUILTINS:
                raise KernelDataError(f"{where}: {node.func.id}() is not a stand-in function")
        if isinstance(node, ast.For) and not (
            isinstance(node.iter, ast.Call)
            and isinstance(node.iter.func, ast.Name)
            and node.iter.func.id == "range"
            and isinstance(node.target, ast.Name)
        ):
            raise KernelDataError(f"{where}: loops must be `for NAME in range(...)`")
        if isinstance(node, ast.Expr) and not isinstance(node.value, ast.Constant):
            raise KernelDataError(f"{where}: a statement must assign (expressions do nothing here)")
    assigned = {
        t.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    if "out" not in assigned:
        raise KernelDataError("the stand-in kernel never assigns `out`")
    return tree


def build(source: str, constants: tuple[str, ...]):
    """A function ``(q, k, v, scale, causal, **constants) -> out`` from stand-in source."""
    tree = check(source, constants)
    arguments = [ast.arg(arg=name) for name in PARAMETERS + tuple(constants)]
    function = ast.FunctionDef(
        name="standin_" + hashlib.sha256(source.encode()).hexdigest()[:12],
        args=ast.arguments(
            posonlyargs=[], args=arguments, kwonlyargs=[], kw_defaults=[], defaults=[]
        ),
        body=tree.body + [ast.Return(value=ast.Name(id="out", ctx=ast.Load()))],
        decorator_list=[],
        **({"type_params": []} if "type_params" in ast.FunctionDef._fields else {}),
    )
    module = ast.fix_missing_locations(ast.Module(body=[function], type_ignores=[]))
    namespace = {"__builtins__": PURE_BUILTINS, "mx": _mx_facade()}
    exec(compile(module, "<stand-in kernel>", "exec"), namespace)  # noqa: S102 - checked above
    return namespace[function.name]
