"""Triton kernels for a GPU, built without running the candidate's material in the judge.

1. The judge lists every specialisation its calls will need (kernel, argument types for
   each dtype, constexpr values, which arguments are multiples of 16, warps, stages),
   from the checked plans: a specialisation is judge data, not the candidate's.
2. The candidate process defines the checked ``KERNELS`` and lowers each specialisation
   to Triton IR (TTIR text), then is killed.
3. The judge, in a Triton cache folder it creates only then (so nothing the candidate
   process wrote can be in it), parses each IR with MLIR's parser, refuses any operation
   outside `triton_source.IR_OPERATIONS`, checks that its signature is the one it asked
   for, and compiles it to a binary itself (``triton.compile`` of the IR file). So the
   binary the judge launches is what that IR compiles to, by construction; and the IR
   can hold only array operations on the arguments it is given.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from rayevolve.evaluators.judge.kernel_data import KernelDataError
from rayevolve.evaluators.judge.triton_source import KernelSignature, check_ir

TRITON_TYPES = {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32", "int32": "i32"}
IR_TYPES = {"fp16": "f16", "bf16": "bf16", "fp32": "f32", "i32": "i32"}


def specialisation(item: dict, types: dict[str, str], causal: bool) -> tuple:
    """The key of one checked launch `item` with tensors of `types` (name -> dtype)."""
    arg_types, divisible = [], []
    for i, arg in enumerate(item["args"]):
        if isinstance(arg, str) and arg in types:
            arg_types.append("*" + TRITON_TYPES[types[arg]])
            divisible.append(i)  # the judge's allocations are aligned to 256 bytes
        elif arg == "scale":
            arg_types.append("fp32")
        elif arg == "causal":
            arg_types.append("i1")
        else:
            arg_types.append("i32")
            if arg % 16 == 0:
                divisible.append(i)
    constexprs = tuple(
        sorted((k, causal if v == "causal" else v) for k, v in item["constexprs"].items())
    )
    return (
        item["kernel"],
        tuple(arg_types),
        constexprs,
        tuple(divisible),
        item["num_warps"],
        item["num_stages"],
    )


def _request(key: tuple, kernel: KernelSignature) -> dict:
    name, arg_types, constexprs, divisible, warps, stages = key
    values = dict(constexprs)
    signature = dict(zip(kernel.runtime, arg_types, strict=True))
    signature.update({c: "constexpr" for c in kernel.constexprs})
    position = {p: i for i, p in enumerate(kernel.parameters)}
    return {
        "kernel": name,
        "signature": {p: signature[p] for p in kernel.parameters},
        "constexprs": values,
        "divisible": [position[kernel.runtime[i]] for i in divisible],
        "num_warps": warps,
        "num_stages": stages,
    }


def specialisations(checked: dict, dtypes: tuple[str, ...]) -> list[tuple]:
    """Every specialisation the judge's calls need, for every shape's plan and dtype."""
    keys = []
    for shape, plan in checked.items():
        for dtype in dtypes:
            types = {n: dtype for n in ("q", "k", "v", "out")}
            types.update({n: spec["dtype"] for n, spec in plan["scratch"].items()})
            for item in plan["launches"]:
                keys.append(specialisation(item, types, shape.causal))
    return list(dict.fromkeys(keys))


def lower_and_compile(
    source: str,
    kernels: dict[str, KernelSignature],
    checked: dict,
    dtypes: tuple[str, ...],
    process,
    target,
    timeout_s: float,
) -> dict:
    """{specialisation: compiled kernel}: IR from the candidate process (which is closed
    here), checked and compiled by the judge."""
    import triton

    keys = specialisations(checked, dtypes)
    answer, _ = process.request(
        "triton_ir",
        timeout_s,
        source=source,
        specs=[_request(key, kernels[key[0]]) for key in keys],
        target=[target.backend, target.arch, target.warp_size],
    )
    process.close()  # gone before the judge compiles, draws a seed or makes an input
    irs = answer.get("ir")
    if (
        not isinstance(irs, list)
        or len(irs) != len(keys)
        or not all(isinstance(t, str) for t in irs)
    ):
        raise KernelDataError("the candidate process gave no Triton IR for every kernel")
    folder = Path(tempfile.mkdtemp(prefix="rayevolve-judge-triton-"))
    os.environ["TRITON_CACHE_DIR"] = str(folder / "cache")
    binaries = {}
    for i, (key, text) in enumerate(zip(keys, irs, strict=True)):
        path = folder / f"kernel{i}.ttir"
        path.write_text(text)
        check_ir(str(path))
        name, arg_types, _, _, warps, stages = key
        compiled = triton.compile(
            str(path), target=target, options={"num_warps": warps, "num_stages": stages}
        )
        got = [compiled.src.signature[j] for j in sorted(compiled.src.signature)]
        wanted = [IR_TYPES.get(t.lstrip("*"), t.lstrip("*")) for t in arg_types]
        wanted = [
            "*" + w if t.startswith("*") else w for t, w in zip(arg_types, wanted, strict=True)
        ]
        if compiled.name != name or got != wanted:
            raise KernelDataError(
                f"the Triton IR for {name}() is {compiled.name}({', '.join(map(str, got))}), "
                f"not the {name}({', '.join(wanted)}) the judge asked for"
            )
        binaries[key] = compiled
    return binaries
