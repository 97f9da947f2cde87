"""Triton kernel source as data: the allow-list a candidate's ``KERNELS`` text must pass,
and the allow-list of the Triton IR the judge compiles.

``KERNELS`` is a small module: ``import triton``, ``import triton.language as tl``,
``NAME = literal`` or ``NAME = tl.constexpr(literal)`` lines, and functions decorated with
exactly ``@triton.jit``; nothing else. Everything in it is checked against tables, never
against a list of what to refuse:

* a name is a parameter, a local the function assigns, a constant or kernel of the
  module, ``tl``, or one of `BUILTIN_CALLS`; nothing else (no builtins, no globals);
* ``tl.X`` is one level deep and X is in `TL_FUNCTIONS` or `TL_TYPES`; ``triton.cdiv``
  is the one ``triton.X`` a body may use; any other attribute is a tensor's and in
  `TENSOR_ATTRIBUTES`;
* a call calls one of those (or a method in `TENSOR_METHODS`), with no ``*``/``**`` and
  no keyword beginning with an underscore;
* parameters are plain (no ``*args``, keyword-only or positional-only), annotated with
  nothing or ``tl.constexpr``, their defaults literals; assignments store to names only
  (no attribute or item is ever assigned); loops run over ``range``, ``tl.range`` or
  ``tl.static_range``; constants are numbers, booleans, None or short strings;
* no ``**`` (compile-time arithmetic that never ends), no lambda, class, import, global,
  try, with, assert, comprehension or nested function.

The source is then defined and lowered by Triton only in the candidate process
(`worker.py`), never in the judge. On a GPU the judge receives Triton IR (TTIR, MLIR
text), checks that every operation in it is one of `IR_OPERATIONS` (no inline assembly,
no external library calls, no prints), and compiles it to a binary itself: the binary it
launches is what that IR compiles to, by construction.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import linecache
from dataclasses import dataclass

from rayevolve.evaluators.candidate_call import parse_candidate
from rayevolve.evaluators.judge.kernel_data import KernelDataError

ALLOWED_IMPORTS = {"triton": None, "triton.language": "tl"}
MAX_SOURCE_CHARS = 64 << 10
MAX_STRING_CHARS = 64
MAX_INT = 2**63 - 1
# the one table of Triton's language a kernel may use
TL_FUNCTIONS = frozenset(
    """program_id num_programs arange zeros zeros_like full load store dot trans permute
    reshape broadcast_to expand_dims exp exp2 log log2 sqrt sqrt_rn rsqrt abs maximum minimum
    max min sum argmax argmin where cdiv multiple_of max_contiguous cast fma sigmoid softmax
    cumsum static_range range make_block_ptr advance atomic_add atomic_max atomic_min clamp
    join split interleave flip ravel erf div_rn fdiv floor ceil cos sin xor_sum umulhi
    associative_scan reduce dot_scaled""".split()
)
TL_TYPES = frozenset(
    """constexpr float16 bfloat16 float32 float64 float8e4nv float8e5 int1 int8 int16 int32
    int64 uint8 uint16 uint32 uint64""".split()
)
TRITON_FUNCTIONS = ("cdiv",)
TENSOR_ATTRIBUTES = ("dtype", "shape", "T", "element_ty", "type")
TENSOR_METHODS = ("to", "reshape", "trans", "broadcast_to", "permute", "expand_dims")
BUILTIN_CALLS = ("range", "min", "max", "int", "float", "bool", "abs")
LOOP_CALLS = ("range", "tl.range", "tl.static_range")
OPERATORS = (
    ast.Add,
    ast.Sub,
    ast.Mult,
    ast.MatMult,
    ast.Div,
    ast.FloorDiv,
    ast.Mod,
    ast.LShift,
    ast.RShift,
    ast.BitOr,
    ast.BitXor,
    ast.BitAnd,
    ast.UAdd,
    ast.USub,
    ast.Not,
    ast.Invert,
    ast.And,
    ast.Or,
    ast.Eq,
    ast.NotEq,
    ast.Lt,
    ast.LtE,
    ast.Gt,
    ast.GtE,
    ast.Is,
    ast.IsNot,
)
STATEMENTS = (
    ast.Assign,
    ast.AugAssign,
    ast.AnnAssign,
    ast.If,
    ast.For,
    ast.While,
    ast.Break,
    ast.Continue,
    ast.Return,
    ast.Pass,
    ast.Expr,
)
# Triton IR operations a kernel's binary may be compiled from: the tt dialect's array
# operations (no inline assembly, no external elementwise calls, no print or assert),
# and MLIR's arithmetic, math and structured control flow
IR_OPERATIONS = frozenset(
    """tt.func tt.return tt.call tt.get_program_id tt.get_num_programs tt.make_range tt.splat
    tt.broadcast tt.expand_dims tt.reshape tt.trans tt.addptr tt.load tt.store tt.dot
    tt.dot_scaled tt.reduce tt.reduce.return tt.scan tt.scan.return tt.fp_to_fp tt.bitcast
    tt.atomic_rmw tt.atomic_cas tt.make_tensor_ptr tt.advance tt.join tt.split tt.cat
    tt.clampf tt.precise_sqrt tt.precise_divf tt.mulhiui tt.unsplat ub.poison
    builtin.module""".split()
)
IR_DIALECTS = ("arith.", "math.", "scf.")


@dataclass(frozen=True)
class KernelSignature:
    """A ``@triton.jit`` function's parameters as the source declares them.

    Attributes:
      name: the function's name.
      parameters: every parameter, in order.
      runtime: its parameters passed at launch, in order.
      constexprs: its ``tl.constexpr`` parameters, in order.
      defaults: the literal defaults of the parameters that have one.
    """

    name: str
    parameters: tuple[str, ...]
    runtime: tuple[str, ...]
    constexprs: tuple[str, ...]
    defaults: dict


def _where(node: ast.AST) -> str:
    return f"line {getattr(node, 'lineno', '?')} of KERNELS"


def _dotted(node: ast.expr) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.insert(0, node.attr)
        node = node.value
    return ".".join([node.id, *parts]) if isinstance(node, ast.Name) else None


def _is_constexpr(annotation: ast.expr | None) -> bool:
    return annotation is not None and _dotted(annotation) == "tl.constexpr"


def _constant(node: ast.Constant, where: str) -> None:
    value = node.value
    ok = (
        value is None
        or isinstance(value, bool)
        or (isinstance(value, int) and abs(value) <= MAX_INT)
        or isinstance(value, float)
        or (isinstance(value, str) and len(value) <= MAX_STRING_CHARS)
    )
    if not ok:
        raise KernelDataError(f"{where}: the constant {value!r:.60} is not allowed in a kernel")


class _Body:
    """The allow-list walk of one kernel function."""

    def __init__(self, function: ast.FunctionDef, kernels: set[str], constants: set[str]):
        self.function, self.kernels = function, kernels
        assigned = {
            node.id
            for node in ast.walk(function)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
        }
        self.names = {a.arg for a in function.args.args} | assigned | kernels | constants

    def fail(self, node: ast.AST, why: str):
        raise KernelDataError(f"{_where(node)}: {why} (in {self.function.name}())")

    # --- statements ---------------------------------------------------------------
    def statements(self, body: list[ast.stmt]) -> None:
        for node in body:
            if not isinstance(node, STATEMENTS):
                self.fail(node, f"{type(node).__name__} is not allowed inside a Triton kernel")
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    self.target(target)
                self.expr(node.value)
            elif isinstance(node, ast.AugAssign):
                self.target(node.target)
                self.operator(node.op, node)
                self.expr(node.value)
            elif isinstance(node, ast.AnnAssign):
                if not _is_constexpr(node.annotation) or node.value is None:
                    self.fail(node, "an annotated assignment must be NAME: tl.constexpr = value")
                self.target(node.target)
                self.expr(node.value)
            elif isinstance(node, ast.If | ast.While):
                self.expr(node.test)
                self.statements(node.body)
                self.statements(node.orelse)
            elif isinstance(node, ast.For):
                self.target(node.target)
                call = node.iter
                if not (isinstance(call, ast.Call) and _dotted(call.func) in LOOP_CALLS):
                    self.fail(node, "loops must run over range(), tl.range() or tl.static_range()")
                self.expr(call)
                if node.orelse:
                    self.fail(node, "for ... else is not allowed")
                self.statements(node.body)
            elif isinstance(node, ast.Return):
                if node.value is not None:
                    self.expr(node.value)
            elif isinstance(node, ast.Expr):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    continue  # a docstring
                if not isinstance(node.value, ast.Call):
                    self.fail(node, "an expression statement must be a call (tl.store, ...)")
                self.expr(node.value)

    def target(self, node: ast.expr) -> None:
        if isinstance(node, ast.Name):
            if node.id.startswith("_"):
                self.fail(node, "names may not begin with '_'")
            return
        if isinstance(node, ast.Tuple):
            for element in node.elts:
                self.target(element)
            return
        self.fail(node, f"only names are assigned in a kernel, not a {type(node).__name__}")

    def operator(self, op: ast.AST, node: ast.AST) -> None:
        if not isinstance(op, OPERATORS):
            self.fail(node, f"the operator {type(op).__name__} is not allowed in a kernel")

    # --- expressions --------------------------------------------------------------
    def expr(self, node: ast.expr) -> None:  # noqa: C901 - one case per kind of node
        if isinstance(node, ast.Constant):
            _constant(node, _where(node))
        elif isinstance(node, ast.Name):
            if node.id in ("tl", "triton"):
                self.fail(node, f"{node.id} is used only as tl.NAME")
            if node.id not in self.names and node.id not in BUILTIN_CALLS:
                self.fail(node, f"{node.id} is neither a parameter, a local, nor of KERNELS")
            if node.id.startswith("_"):
                self.fail(node, "names may not begin with '_'")
        elif isinstance(node, ast.Attribute):
            self.attribute(node)
        elif isinstance(node, ast.Call):
            self.call(node)
        elif isinstance(node, ast.BinOp):
            self.operator(node.op, node)
            self.expr(node.left)
            self.expr(node.right)
        elif isinstance(node, ast.UnaryOp):
            self.operator(node.op, node)
            self.expr(node.operand)
        elif isinstance(node, ast.BoolOp):
            self.operator(node.op, node)
            for value in node.values:
                self.expr(value)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                self.operator(op, node)
            for value in (node.left, *node.comparators):
                self.expr(value)
        elif isinstance(node, ast.IfExp):
            for value in (node.test, node.body, node.orelse):
                self.expr(value)
        elif isinstance(node, ast.Subscript):
            self.expr(node.value)
            self.expr(node.slice)
        elif isinstance(node, ast.Slice):
            for value in (node.lower, node.upper, node.step):
                if value is not None:
                    self.expr(value)
        elif isinstance(node, ast.Tuple | ast.List):
            for element in node.elts:
                self.expr(element)
        else:
            self.fail(node, f"{type(node).__name__} is not allowed inside a Triton kernel")

    def attribute(self, node: ast.Attribute) -> None:
        if node.attr.startswith("_"):
            self.fail(node, "attributes may not begin with '_'")
        dotted = _dotted(node)
        root = dotted.split(".")[0] if dotted else None
        if root in ("tl", "triton"):
            ok = dotted.count(".") == 1 and (
                node.attr in TL_FUNCTIONS | TL_TYPES
                if root == "tl"
                else node.attr in TRITON_FUNCTIONS
            )
            if not ok:
                self.fail(
                    node,
                    f"{dotted} is not on the list of Triton's language a kernel may use "
                    "(tl.NAME one level deep: see TL_FUNCTIONS, TL_TYPES)",
                )
            return
        if node.attr not in TENSOR_ATTRIBUTES + TENSOR_METHODS:
            self.fail(
                node,
                f".{node.attr} is not Triton's (only tl.NAME, triton.cdiv and the tensor "
                f"attributes {', '.join(TENSOR_ATTRIBUTES + TENSOR_METHODS)})",
            )
        self.expr(node.value)

    def call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name):
            if func.id not in BUILTIN_CALLS and func.id not in self.kernels:
                self.fail(node, f"{func.id}() is neither Triton's nor a function of KERNELS")
        elif isinstance(func, ast.Attribute):
            dotted = _dotted(func)
            if dotted and dotted.split(".")[0] in ("tl", "triton"):
                self.attribute(func)
                if func.attr in TL_TYPES and func.attr != "constexpr":
                    self.fail(node, f"{dotted} is a type, not a function")
                if func.attr == "constexpr" and not all(
                    isinstance(a, ast.Constant) for a in node.args
                ):
                    self.fail(node, "tl.constexpr() takes a literal")
            elif func.attr in TENSOR_METHODS:
                self.expr(func.value)
            else:
                self.fail(node, f".{func.attr}() is not a tensor method a kernel may call")
        else:
            self.fail(node, "only named functions are called (no call of an expression)")
        for arg in node.args:
            if isinstance(arg, ast.Starred):
                self.fail(node, "no *args in a call")
            self.expr(arg)
        for keyword in node.keywords:
            if keyword.arg is None:
                self.fail(node, "no **kwargs in a call")
            if keyword.arg.startswith("_"):
                self.fail(node, f"the keyword {keyword.arg!r} is not allowed")
            self.expr(keyword.value)


def _signature(function: ast.FunctionDef) -> KernelSignature:
    args = function.args
    where = _where(function)
    if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs:
        raise KernelDataError(
            f"{where}: {function.name}() takes plain parameters only (no *, **, / or keyword-only)"
        )
    if function.returns is not None or getattr(function, "type_params", None):
        raise KernelDataError(
            f"{where}: {function.name}() has no return annotation or type parameters"
        )
    runtime, constexprs, defaults = [], [], {}
    for arg in args.args:
        if arg.arg.startswith("_"):
            raise KernelDataError(f"{where}: parameter names may not begin with '_'")
        if arg.annotation is not None and not _is_constexpr(arg.annotation):
            raise KernelDataError(
                f"{where}: parameter {arg.arg} is annotated with something other than tl.constexpr"
            )
        (constexprs if _is_constexpr(arg.annotation) else runtime).append(arg.arg)
    for arg, default in zip(
        args.args[len(args.args) - len(args.defaults) :], args.defaults, strict=True
    ):
        if not isinstance(default, ast.Constant):
            raise KernelDataError(f"{where}: the default of {arg.arg} must be a literal")
        _constant(default, where)
        defaults[arg.arg] = default.value
    parameters = tuple(a.arg for a in args.args)
    return KernelSignature(function.name, parameters, tuple(runtime), tuple(constexprs), defaults)


def _module_constant(node: ast.Assign) -> None:
    value = node.value
    if isinstance(value, ast.Call) and _dotted(value.func) == "tl.constexpr":
        if len(value.args) != 1 or value.keywords:
            raise KernelDataError(f"{_where(node)}: tl.constexpr takes one literal")
        value = value.args[0]
    try:
        literal = ast.literal_eval(value)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise KernelDataError(f"{_where(node)}: module-level values must be literals") from None
    if not isinstance(literal, bool | int | float | str) or (
        isinstance(literal, str) and len(literal) > MAX_STRING_CHARS
    ):
        raise KernelDataError(
            f"{_where(node)}: module-level values are numbers, booleans or short strings"
        )
    if isinstance(literal, int) and abs(literal) > MAX_INT:
        raise KernelDataError(f"{_where(node)}: {literal:.3g} is too large")
    if any(t.id.startswith("_") for t in node.targets):
        raise KernelDataError(f"{_where(node)}: names may not begin with '_'")


def signatures(source: str) -> dict[str, KernelSignature]:
    """The ``@triton.jit`` functions of `source`, by name, with their parameters;
    `KernelDataError` if the text is anything but the allow-list admits."""
    if len(source) > MAX_SOURCE_CHARS:
        raise KernelDataError(
            f"KERNELS holds {len(source)} characters (at most {MAX_SOURCE_CHARS})"
        )
    try:
        tree = parse_candidate(source)
    except SyntaxError as exc:
        raise KernelDataError(f"KERNELS does not parse: {exc}") from None
    kernels = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    constants = {
        t.id
        for n in tree.body
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    found: dict[str, KernelSignature] = {}
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name not in ALLOWED_IMPORTS or alias.asname != ALLOWED_IMPORTS[alias.name]:
                    raise KernelDataError(
                        f"{_where(node)}: only `import triton` and `import triton.language as tl`"
                    )
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue
        if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
            _module_constant(node)
            continue
        if isinstance(node, ast.FunctionDef):
            if (
                node.name.startswith("_")
                or len(node.decorator_list) != 1
                or _dotted(node.decorator_list[0]) != "triton.jit"
            ):
                raise KernelDataError(
                    f"{_where(node)}: {node.name}() must be decorated with exactly @triton.jit "
                    "(and its name may not begin with '_')"
                )
            found[node.name] = _signature(node)
            _Body(node, kernels, constants).statements(node.body)
            continue
        raise KernelDataError(
            f"{_where(node)}: a {type(node).__name__} statement is not allowed in KERNELS: only "
            "the two Triton imports, NAME = literal and @triton.jit functions"
        )
    if not found:
        raise KernelDataError(
            "KERNELS defines no @triton.jit function: the candidate builds no kernel"
        )
    return found


def check(source: str) -> tuple[str, ...]:
    """The names of the ``@triton.jit`` functions of `source` (see `signatures`)."""
    return tuple(signatures(source))


def ir_operations(path: str) -> set[str]:
    """The names of every operation in the Triton IR file `path`, as MLIR's parser reads
    it (Triton's own bindings: parsing IR runs none of the candidate's Python)."""
    from triton._C.libtriton import ir

    context = ir.context()
    ir.load_dialects(context)
    module = ir.parse_mlir_module(path, context)
    names: set[str] = set()
    module.walk(lambda op: names.add(op.get_name()))
    return names


def check_ir(path: str) -> None:
    """`KernelDataError` unless every operation of the Triton IR file is allowed."""
    for op in sorted(ir_operations(path)):
        if op not in IR_OPERATIONS and not op.startswith(IR_DIALECTS):
            raise KernelDataError(
                f"the kernel's Triton IR holds {op}, which the judge does not compile "
                "(inline assembly, external calls and prints are not kernels it can check)"
            )


def _import_triton_only(name, globals=None, locals=None, fromlist=(), level=0):
    if name not in ALLOWED_IMPORTS or level:
        raise ImportError(f"KERNELS may import only triton, not {name}")
    return builtins.__import__(name, globals, locals, fromlist, level)


def define_kernels(source: str) -> dict:
    """The ``@triton.jit`` functions of checked `source`, by name: run only in the
    candidate process. The source is registered under a name of its hash, so that
    Triton can read it back."""
    names = check(source)
    filename = f"<kernels-{hashlib.sha256(source.encode()).hexdigest()[:16]}>"
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    namespace = {
        "__builtins__": {
            "__import__": _import_triton_only,
            "float": float,
            **{name: getattr(builtins, name) for name in BUILTIN_CALLS},
        },
        "__name__": filename,
    }
    exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - checked: imports and defs
    return {name: namespace[name] for name in names}
