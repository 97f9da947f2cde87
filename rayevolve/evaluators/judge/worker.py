"""The candidate process: the only place where a kernel candidate's material is
interpreted. ``python -m rayevolve.evaluators.judge.worker``, started fresh (exec, never
forked from the judge) by `remote.CandidateProcess`, inside the judge's sandbox.

It holds nothing worth stealing: it starts before the judge draws its seed, it is given
no reference, no baseline and no verdict channel, and it inherits no memory, no
descriptor but its two pipes, from the judge. What it does, on request (`wire`
messages on stdin, answers on its original stdout; the candidate's own output goes to
stderr):

* ``plans``: run the EVOLVE-BLOCK's ``launch()`` for each shape (JSON plans back); the
  judge asks this of a process of its own, which it kills before any other request;
* ``triton_ir``: define the checked ``KERNELS`` with ``triton.jit`` and lower each
  requested specialisation to Triton IR (text back: the judge checks it and compiles it
  to a binary itself);
* ``load`` / ``run``: under Triton's interpreter (``TRITON_INTERPRET=1``) or for the
  stand-in array language, define the kernels, then run them on the inputs the judge
  sends (the output arrays back, which the judge checks).

Whatever the candidate manages here (escaping ``launch()``'s namespace, replacing this
module's functions) reaches only this process: its answers are data the judge
validates, and its timing is the judge's own clock around the round trip. Between
requests the judge keeps the process stopped (SIGSTOP).
"""

from __future__ import annotations

import math
import os
import sys
import traceback

import numpy as np

from rayevolve.evaluators.judge import wire
from rayevolve.evaluators.judge.triton_source import define_kernels
from rayevolve.outcome import Outcome
from rayevolve.sandbox.child import classify_exception

MAX_ERROR_CHARS = 4000


def _plans(state: dict, header: dict, arrays) -> tuple[dict, list]:
    from rayevolve.evaluators.judge.kernel_data import SAFE_BUILTINS

    namespace = {"__builtins__": dict(SAFE_BUILTINS), "math": math}
    exec(compile(header["block"], "<evolve-block>", "exec"), namespace)  # noqa: S102
    launch = namespace.get("launch")
    if launch is None:
        return {"plans": None}, []
    return {"plans": [launch(*args) for args in header["calls"]]}, []


def _triton_ir(state: dict, header: dict, arrays) -> tuple[dict, list]:
    """Lower each specialisation to Triton IR (TTIR text) for the judge's target."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    kernels = define_kernels(header["source"])
    backend, arch, warp = header["target"]
    target = GPUTarget(backend, arch, warp)
    irs = []
    for spec in header["specs"]:
        fn = kernels[spec["kernel"]]
        attrs = {(int(i),): [["tt.divisibility", 16]] for i in spec["divisible"]}
        src = ASTSource(fn, dict(spec["signature"]), dict(spec["constexprs"]), attrs)
        compiled = triton.compile(
            src,
            target=target,
            options={"num_warps": spec["num_warps"], "num_stages": spec["num_stages"]},
        )
        irs.append(compiled.asm["ttir"])
    return {"ir": irs}, []


def _load(state: dict, header: dict, arrays) -> tuple[dict, list]:
    kind = header["kind"]
    if kind == "standin":
        from rayevolve.evaluators.judge import standin

        state["run"] = _standin_runner(standin.build(header["source"], tuple(header["names"])))
    elif kind == "triton_interpret":
        state["run"] = _triton_runner(define_kernels(header["source"]))
    else:
        raise ValueError(f"unknown kind of kernel {kind!r}")
    return {"loaded": kind}, []


def _changed(before: list[np.ndarray], after: list[np.ndarray]) -> list[str]:
    return [
        name
        for name, a, b in zip("qkv", before, after, strict=True)
        if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True)
    ]


def _standin_runner(function):
    import mlx.core as mx

    def run(header: dict, arrays: list[np.ndarray]):
        dtype = getattr(mx, header["dtype"])
        q, k, v = (mx.array(a).astype(dtype) for a in arrays)
        inputs = [q, k, v]
        out = function(q, k, v, header["scale"], header["causal"], **header["constants"])
        out = mx.array(out).astype(dtype).astype(mx.float32)
        mx.eval(out)
        after = [np.asarray(x.astype(mx.float32)) for x in inputs]
        return np.asarray(out), _changed(arrays, after)

    return run


def _triton_runner(kernels: dict):
    import torch

    from rayevolve.evaluators.judge.torch_backend import launch_arguments, plan_tensors

    def run(header: dict, arrays: list[np.ndarray]):
        dtype = getattr(torch, header["dtype"])
        q, k, v = (torch.from_numpy(a.copy()).to(dtype) for a in arrays)
        tensors = plan_tensors(torch, header["plan"], q, k, v)
        symbols = {"scale": header["scale"], "causal": header["causal"]}
        for item in header["plan"]["launches"]:
            args, constexprs = launch_arguments(item, tensors, symbols)
            kernels[item["kernel"]][tuple(item["grid"])](
                *args, **constexprs, num_warps=item["num_warps"], num_stages=item["num_stages"]
            )
        after = [tensors[n].float().numpy() for n in "qkv"]
        return tensors["out"].float().numpy(), _changed(arrays, after)

    return run


def _run(state: dict, header: dict, arrays) -> tuple[dict, list]:
    out, changed = state["run"](header, arrays)
    return {"changed": changed}, [np.asarray(out, dtype=np.float32)]


OPS = {"plans": _plans, "triton_ir": _triton_ir, "load": _load, "run": _run}


def _failure(exc: BaseException) -> dict:
    """The answer for a request that raised: its status, and the traceback's tail (which
    ends with the exception's own line)."""
    return {"error": classify_exception(exc), "message": traceback.format_exc()[-MAX_ERROR_CHARS:]}


def main() -> int:
    answers = os.dup(1)  # the channel; the candidate's prints go to stderr
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    os.set_inheritable(answers, False)
    state: dict = {}
    while True:
        try:
            header, arrays = wire.read(0)
        except wire.WireError:
            return 0  # the judge closed the channel: done
        op = OPS.get(header.get("op"))
        try:
            if op is None:
                raise ValueError(f"unknown request {header.get('op')!r:.50}")
            reply, out = op(state, header, arrays)
        except BaseException as exc:  # noqa: BLE001 - every failure is an answer
            reply, out = _failure(exc), []
        try:
            wire.write(answers, reply, out)
        except (TypeError, ValueError, wire.WireError) as exc:  # not plain data
            wire.write(
                answers,
                {
                    "error": Outcome.INCORRECT,
                    "message": f"returned something that is not plain data: {exc}",
                },
            )


if __name__ == "__main__":
    sys.exit(main())
