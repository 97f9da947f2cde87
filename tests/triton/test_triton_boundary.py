"""The judge runs nothing the candidate wrote, Triton half: the allow-list of KERNELS
(through the task's evaluate() in the sandbox, Triton's interpreter), the GPU build path
(the candidate process lowers to Triton IR, the judge checks and compiles it: Triton's
code generator runs for sm_90 on the CPU), and attacks on both."""

import hashlib
import json
import subprocess
import sys
import tempfile

import pytest

from rayevolve.evaluators.judge.kernel_data import KernelDataError, parse_blocks
from rayevolve.outcome import Outcome
from tests.triton.test_triton_task import INITIAL, judge

torch = pytest.importorskip("torch")
triton = pytest.importorskip("triton")

KERNELS = parse_blocks(INITIAL).text("KERNELS")
BODY = "    bh = tl.program_id(0)\n    r = tl.program_id(1)\n"  # combine()'s first lines
assert BODY in KERNELS


def with_body_line(line: str) -> str:
    return INITIAL.replace(BODY, BODY + f"    {line}\n", 1)


def assert_rejected(result, *words):
    assert result.status == Outcome.REJECTED, (result.status, result.artifacts.get("error"))
    for word in words:
        assert word in result.artifacts["error"], result.artifacts["error"]


BUILTINS_BY_TL = "tl.core.builtins.exec('import os; os.system(\"touch /tmp/pwned\")')"


# --- the table, through evaluate() ------------------------------------------
def test_python_builtins_reached_through_tl_are_refused_before_anything_runs():
    result = judge(with_body_line(f"x = {BUILTINS_BY_TL}"))
    assert_rejected(result, "tl.core.builtins.exec is not on the list")


def test_a_call_in_a_parameter_default_is_refused():
    """A default value runs when the functions are defined, before any launch."""
    code = INITIAL.replace(
        "            BLOCK_S: tl.constexpr):",
        f"            BLOCK_S: tl.constexpr = int({BUILTINS_BY_TL} or 1)):",
        1,
    )
    assert code != INITIAL
    assert_rejected(judge(code), "default of BLOCK_S must be a literal")


def test_a_builtin_in_a_kernel_body_is_refused_before_any_compile():
    """Triton's code generator would call it at compile time (for sm_90, on the CPU),
    in the compiling process; builtins are on no list, by any path."""
    assert_rejected(judge(with_body_line("x = print('compiled')")), "print() is neither")
    line = "x = tl.core.builtins.print('compiled')"
    assert_rejected(judge(with_body_line(line)), "tl.core.builtins.print is not on the list")


# --- the static check's rows, the allow-list ------------------------------------------
@pytest.mark.parametrize(
    "source, words",
    [
        (  # annotation expression
            "import triton\nimport triton.language as tl\n@triton.jit\n"
            "def f(X: tl.core.builtins.exec('1')):\n    pass\n",
            "annotated with something other than tl.constexpr",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    triton.knobs.os.system('id')\n",
            "triton.knobs.os.system is not on the list",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    triton.knobs.subprocess.run(['id'])\n",
            "triton.knobs.subprocess.run is not on the list",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = tl.load(X, __builtins__=1)\n",
            "keyword '__builtins__'",
        ),
        (
            "import triton\nimport triton.language as tl\ntriton.language.X = 1\n"
            "@triton.jit\ndef f(X):\n    pass\n",
            "Assign statement is not allowed",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n    tl.X = 1\n",
            "only names are assigned",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(*X):\n    pass\n",
            "plain parameters only",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = tl.constexpr(tl.program_id(0))\n",
            "tl.constexpr() takes a literal",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = tl.inline_asm_elementwise('mov.b32 $0, $1;', '=r,r', [X], "
            "dtype=tl.int32, is_pure=True, pack=1)\n",
            "tl.inline_asm_elementwise is not on the list",
        ),
        # attacks of our own on the allow-list
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    tl.static_print(X)\n",
            "tl.static_print is not on the list",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    tl.static_assert(True, 'x')\n",
            "tl.static_assert is not on the list",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = 10 ** 10 ** 10\n",
            "operator Pow",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            f"    y = {10**40}\n",
            "is not allowed in a kernel",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = [tl.load][0](X)\n",
            "only named functions are called",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n    g = tl\n",
            "tl is used only as tl.NAME",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = tl.math.exp(X)\n",
            "tl.math.exp is not on the list",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = getattr(tl, 'load')\n",
            "getattr() is neither",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = X.dtype.fn\n",
            ".fn is not Triton's",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit\ndef f(X):\n"
            "    y = [i for i in range(3)]\n",
            "ListComp is not allowed",
        ),
        (
            "import triton\nimport triton.language as tl\n@triton.jit(do_not_specialize=[0])\n"
            "def f(X):\n    pass\n",
            "exactly @triton.jit",
        ),
        (
            "import triton\nimport triton.language as tl\nS = '" + "x" * 100 + "'\n"
            "@triton.jit\ndef f(X):\n    pass\n",
            "short strings",
        ),
    ],
    ids=[
        "annotation",
        "knobs_os",
        "knobs_subprocess",
        "dunder_keyword",
        "module_attribute_assignment",
        "kernel_attribute_assignment",
        "star_args",
        "constexpr_expression",
        "inline_asm",
        "static_print",
        "static_assert",
        "power_tower",
        "huge_constant",
        "call_of_an_expression",
        "tl_as_a_value",
        "deep_chain",
        "getattr",
        "jit_function_attribute",
        "comprehension",
        "jit_with_arguments",
        "long_string",
    ],
)
def test_kernels_outside_the_allow_list_are_refused(source, words):
    from rayevolve.evaluators.judge.triton_source import check

    with pytest.raises(KernelDataError) as refused:
        check(source)
    assert words in str(refused.value)


def test_the_starting_kernels_are_on_the_allow_list():
    from rayevolve.evaluators.judge.triton_source import signatures

    found = signatures(KERNELS)
    assert set(found) == {"attend_split", "combine"}
    assert found["combine"].constexprs == ("HQ", "HKV", "GROUP", "D", "BLOCK_S")


# --- plans ----------------------------------------------------------------------------
def test_a_plan_that_swaps_input_and_output_is_incorrect():
    """Plans alias buffers: the kernel writes its result into q, and reads NaN."""
    code = INITIAL.replace(
        '"args": ["part", "mx", "sm", "out", q_len', '"args": ["part", "mx", "sm", "q", q_len', 1
    )
    assert code != INITIAL
    result = judge(code)
    assert result.status == Outcome.INCORRECT, result.artifacts.get("error")
    assert "was modified" in result.artifacts["error"] or "non-finite" in result.artifacts["error"]


@pytest.mark.parametrize(
    "change, words",
    [
        (
            ("q_len,\n                    kv_len,", "q_len + 0.5,\n                    kv_len,"),
            "not allowed",
        ),
        (('"BLOCK_N": BLOCK_N,', '"BLOCK_N": BLOCK_N * 10**6,'), "an integer in 0.."),
        (('"CAUSAL": "causal"', '"CAUSAL": "causal", "EXTRA": 1'), "not a tl.constexpr parameter"),
        (
            ("                    splits,\n                ],", "                ],"),
            "takes 12 arguments",
        ),
    ],
    ids=["float_argument", "huge_constexpr", "unknown_constexpr", "missing_argument"],
)
def test_plan_values_are_few_checked_integers(change, words):
    code = INITIAL.replace(*change, 1)
    assert code != INITIAL
    assert_rejected(judge(code), words)


# --- the GPU build path, on the CPU ---------------------------------------------------
def _plans_for(shapes, dtypes=("float16",)):
    from rayevolve.evaluators.judge.kernel_data import launch_plans
    from rayevolve.evaluators.judge.torch_backend import TorchBackend
    from rayevolve.evaluators.judge.triton_source import signatures

    data = parse_blocks(INITIAL)
    kernels = signatures(KERNELS)
    backend = TorchBackend(interpret=True)
    plans = launch_plans(data, [s.launch_args() for s in shapes])
    return kernels, {
        s: backend._check_plan(p, s, kernels) for s, p in zip(shapes, plans, strict=True)
    }


SM90 = ("cuda", 90, 32)


def test_the_judge_compiles_the_binary_itself_from_ir_it_checked(tmp_path):
    """The candidate process lowers the kernels to Triton IR for sm_90 (and is closed);
    the judge compiles that IR; the binary is byte for byte what Triton compiles from
    the source directly (in a separate process, for comparison)."""
    from triton.backends.compiler import GPUTarget

    from rayevolve.evaluators.judge.core import PRESETS, timing_shapes
    from rayevolve.evaluators.judge.remote import CandidateProcess
    from rayevolve.evaluators.judge.triton_build import _request, lower_and_compile

    shapes = timing_shapes(PRESETS["qwen3-0.6b"], ((1, 4096),))
    kernels, checked = _plans_for(shapes)
    process = CandidateProcess(env={"TRITON_INTERPRET": "0"})
    binaries = lower_and_compile(
        KERNELS, kernels, checked, ("float16",), process, GPUTarget(*SM90), 300.0
    )
    assert not process.alive  # gone before the judge compiled anything
    # the kernels were defined (and lowered) only in the candidate process
    import linecache

    assert not [name for name in linecache.cache if name.startswith("<kernels-")]
    assert {key[0] for key in binaries} == {"attend_split", "combine"}
    key = next(k for k in binaries if k[0] == "combine")
    direct = subprocess.run(
        [
            sys.executable,
            "-c",
            DIRECT_COMPILE,
            KERNELS,
            json.dumps(_request(key, kernels["combine"])),
        ],
        capture_output=True,
        text=True,
        # a cache of its own: Triton's key does not hold its install's path, which the
        # binary's line info does, so a shared cache can answer for another checkout
        env={
            "TRITON_INTERPRET": "0",
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "TRITON_CACHE_DIR": str(tmp_path / "cache"),
        },
        timeout=300,
    )
    assert direct.returncode == 0, direct.stderr[-2000:]
    assert hashlib.sha256(binaries[key].asm["cubin"]).hexdigest() == direct.stdout.strip()


DIRECT_COMPILE = """
import hashlib, json, sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from rayevolve.evaluators.judge.triton_source import define_kernels
spec = json.loads(sys.argv[2])
fn = define_kernels(sys.argv[1])[spec["kernel"]]
attrs = {(i,): [["tt.divisibility", 16]] for i in spec["divisible"]}
src = ASTSource(fn, spec["signature"], spec["constexprs"], attrs)
options = {"num_warps": spec["num_warps"], "num_stages": spec["num_stages"]}
c = triton.compile(src, target=GPUTarget("cuda", 90, 32), options=options)
print(hashlib.sha256(c.asm["cubin"]).hexdigest())
"""


class ScriptedProcess:
    """A candidate process that answers with the IR a compromised one could send."""

    alive = True

    def __init__(self, irs):
        self.irs = irs

    def request(self, op, timeout_s, **header):
        return {"ir": self.irs}, []

    def close(self):
        self.alive = False


def _ir_of(source: str, name: str, signature: dict) -> str:
    """Triton IR lowered from unchecked source (what only a compromised candidate
    process could produce), here in a child process."""
    script = (
        "import runpy, sys, tempfile, triton\nfrom triton.backends.compiler import GPUTarget\n"
        "from triton.compiler import ASTSource\n"
        "path = tempfile.mkdtemp() + '/unchecked.py'\nopen(path, 'w').write(sys.argv[1])\n"
        "ns = runpy.run_path(path)\n"
        f"src = ASTSource(ns[{name!r}], {signature!r}, {{}})\n"
        "print(triton.compile(src, target=GPUTarget('cuda', 90, 32)).asm['ttir'])\n"
    )
    home = tempfile.mkdtemp()  # a Triton cache of its own, as above
    run = subprocess.run(
        [sys.executable, "-c", script, source],
        capture_output=True,
        text=True,
        env={"TRITON_INTERPRET": "0", "PATH": "/usr/bin:/bin", "HOME": home},
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout


INLINE_ASM = """
import triton
import triton.language as tl

@triton.jit
def combine(X):
    i = tl.arange(0, 16)
    x = tl.load(X + i)
    y = tl.inline_asm_elementwise("mov.b32 $0, $1;", "=r,r", [x], dtype=tl.int32, is_pure=True, pack=1)
    tl.store(X + i, y)
"""


def build_from(ir: str):
    """The judge's GPU build of the starting kernels, with a candidate process that
    answers `ir` for every specialisation."""
    from triton.backends.compiler import GPUTarget

    from rayevolve.evaluators.judge.core import PRESETS, timing_shapes
    from rayevolve.evaluators.judge.triton_build import lower_and_compile, specialisations

    kernels, checked = _plans_for(timing_shapes(PRESETS["tiny"], ((1, 128),)))
    process = ScriptedProcess([ir] * len(specialisations(checked, ("float16",))))
    return lower_and_compile(KERNELS, kernels, checked, ("float16",), process, GPUTarget(*SM90), 60)


def test_ir_with_inline_assembly_from_a_compromised_process_is_not_compiled():
    ir = _ir_of(INLINE_ASM, "combine", {"X": "*i32"})
    assert "inline_asm" in ir
    with pytest.raises(KernelDataError, match="tt.elementwise_inline_asm"):
        build_from(ir)


def test_ir_that_is_not_the_kernel_asked_for_is_refused():
    """A returned IR of another kernel (another signature) than the judge asked for."""
    other = "import triton\nimport triton.language as tl\n@triton.jit\ndef combine(X):\n    tl.store(X, 1.0)\n"
    with pytest.raises(KernelDataError, match="not the"):
        build_from(_ir_of(other, "combine", {"X": "*fp32"}))


def test_a_compile_that_never_ends_is_stopped_in_the_candidate_process():
    from triton.backends.compiler import GPUTarget

    from rayevolve.evaluators.candidate_call import CandidateFailed
    from rayevolve.evaluators.judge.core import PRESETS, timing_shapes
    from rayevolve.evaluators.judge.remote import CandidateProcess
    from rayevolve.evaluators.judge.triton_build import lower_and_compile

    endless = KERNELS.replace(
        BODY, BODY + "    for i in tl.static_range(1000000000):\n        bh = bh + 0\n", 1
    )
    shapes = timing_shapes(PRESETS["tiny"], ((1, 128),))
    kernels, checked = _plans_for(shapes)
    process = CandidateProcess(env={"TRITON_INTERPRET": "0"})
    with pytest.raises(CandidateFailed) as failed:
        lower_and_compile(endless, kernels, checked, ("float16",), process, GPUTarget(*SM90), 5.0)
    assert failed.value.kind == Outcome.TIMEOUT
    assert not process.alive
