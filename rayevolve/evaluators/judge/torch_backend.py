"""The kernel judge on NVIDIA GPUs: Triton kernels built from data, against PyTorch's
fastest scaled-dot-product attention.

A candidate declares ``KERNELS`` (Triton source on the allow-list of `triton_source.py`)
and ``launch(...)``, which returns, per shape, a plan: scratch buffers and a short list
of launches (split-K needs two kernels per call)::

    {"scratch": {"part": {"dtype": "float32", "shape": [..]}, ...},
     "launches": [{"kernel": "NAME", "grid": [x, y, z],
                   "args": ["q", "k", "v", "out", "part", "scale", 4096, ...],
                   "constexprs": {"BLOCK_N": 64, "CAUSAL": "causal"},
                   "num_warps": 4, "num_stages": 2}, ...]}

``args`` are the kernel's parameters that are not ``tl.constexpr``, in order, exactly as
many: the names of the judge's tensors (``q``, ``k``, ``v``, ``out``, a scratch buffer),
the symbols ``scale`` and ``causal``, or integers in 0..2^31-1; ``constexprs`` name its
``tl.constexpr`` parameters, integers in 0..65536, booleans or ``causal``. Everything is
validated (kernel names, grid limits, warps, stages, scratch size) before anything runs:
a plan is a few small integers, no channel for data. q, k, v and out are contiguous,
(batch, heads, length, head_dim). The judge allocates ``out`` and the scratch buffers for
every call and fills them with NaN (an element a kernel forgets is caught; nothing
survives from an earlier call); the baseline pays the same fill for a buffer of the
output's size, so the comparison stays even.

On a GPU (`triton_build.py`), the candidate process lowers each specialisation to Triton
IR and is killed; the judge checks the IR's operations and signature and compiles it to
a binary itself, then launches that binary with its own tensors. Under Triton's
interpreter (``TorchBackend(interpret=True)``, ``TRITON_INTERPRET=1`` in the candidate
process, CPU PyTorch), the kernels are defined and run in the candidate process
(`remote.RemoteKernel`): correctness only; its timings are the interpreter's and the
round trip's. The judge itself never defines, compiles or interprets the source.

The baseline, per shape and dtype, is the fastest of PyTorch's SDPA backends that accept
it (cuDNN, flash, memory-efficient, math; GQA through ``enable_gqa``), measured once;
the default dispatch is reported beside it. Causal masks with L < S are aligned to the
end of the cache (``causal_lower_right``). Timing replays CUDA graphs of the calls,
timed with CUDA events; input sets rotate through more memory than the L2 cache.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from rayevolve.evaluators.judge.backend import wall_clock_timing
from rayevolve.evaluators.judge.core import AttentionShape
from rayevolve.evaluators.judge.kernel_data import KernelData, KernelDataError
from rayevolve.evaluators.judge.remote import RemoteKernel, dtype_name
from rayevolve.evaluators.judge.triton_build import lower_and_compile, specialisation
from rayevolve.evaluators.judge.triton_source import KernelSignature
from rayevolve.outcome import Outcome

TENSORS = ("q", "k", "v", "out")
SYMBOLS = ("scale", "causal")
SCRATCH_DTYPES = ("float32", "float16", "bfloat16", "int32")
MAX_LAUNCHES = 4
MAX_SCRATCH = 8
# plan values: integers in these ranges (sizes, counts, block sizes), never a channel for
# data into the kernel
MAX_INT_ARG = 2**31 - 1
MAX_CONSTEXPR = 1 << 16
MAX_SCRATCH_BYTES = 1 << 30
GRID_LIMITS = (2**31 - 1, 65535, 65535)
WARPS = (1, 2, 4, 8, 16, 32)


def plan_tensors(torch, plan: dict, q, k, v) -> dict:
    """The tensors of one call of a checked plan: q, k, v, and the output and scratch
    buffers, fresh and filled with NaN (int32 scratch with -1), on q's device."""
    tensors = {"q": q, "k": k, "v": v, "out": torch.full_like(q, float("nan"))}
    for name, spec in plan["scratch"].items():
        fill = float("nan") if spec["dtype"] != "int32" else -1
        dtype = getattr(torch, spec["dtype"])
        tensors[name] = torch.full(spec["shape"], fill, dtype=dtype, device=q.device)
    return tensors


def launch_arguments(item: dict, tensors: dict, symbols: dict) -> tuple[list, dict]:
    """One checked launch's arguments and constexprs, names resolved to the call's
    tensors and symbols (``scale``, ``causal``)."""

    def value(a):
        return tensors[a] if a in tensors else symbols[a] if isinstance(a, str) else a

    return [value(a) for a in item["args"]], {k: value(v) for k, v in item["constexprs"].items()}


def _positive_int(value, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise KernelDataError(f"launch(): {what} must be a positive integer, got {value!r:.100}")
    return value


class TorchBackend:
    """CUDA (Triton compiled) or, with `interpret`, the CPU under Triton's interpreter."""

    def __init__(self, interpret: bool = False):
        import torch

        self.torch = torch
        self.interpret = interpret
        self.name = "torch_interpret" if interpret else "torch_cuda"
        self.device = "cpu" if interpret else "cuda"
        self._baselines: dict[tuple, tuple[str, Callable]] = {}
        self.default_times: dict[tuple, float] = {}  # the default dispatch, per call
        self.cache_bytes = 64 << 20
        if not interpret and torch.cuda.is_available():
            self.cache_bytes = int(torch.cuda.get_device_properties(0).L2_cache_size)

    # --- device -----------------------------------------------------------------
    def candidate_env(self) -> dict[str, str]:
        """What the candidate process needs in its environment (read as Triton starts)."""
        return {"TRITON_INTERPRET": "1" if self.interpret else "0"}

    def unavailable(self) -> str | None:
        import importlib.util

        if importlib.util.find_spec("triton") is None:  # found, not imported: not needed here yet
            return "Triton is not installed on this node (pip install triton)"
        if self.interpret:
            return None
        if not self.torch.cuda.is_available():
            import platform

            return (
                f"this task needs an NVIDIA GPU with CUDA; this node ({platform.node()}, "
                f"{platform.machine()}) has none visible to PyTorch"
            )
        return None

    def to_device(self, array: np.ndarray, dtype: str):
        return self.torch.from_numpy(array).to(self.device, getattr(self.torch, dtype))

    def to_numpy(self, array) -> np.ndarray:
        return array.detach().float().cpu().numpy()

    def run(self, outputs: Sequence) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def classify(self, exc: BaseException) -> tuple[str, str]:
        text = str(exc)
        lowered = text.lower()
        name = type(exc).__name__
        if "compilationerror" in name.lower() or "compil" in lowered and "triton" in lowered:
            return Outcome.COMPILE_ERROR, f"Triton compile error:\n{text[-6000:]}"
        if "out of memory" in lowered:
            return Outcome.MEMORY_LIMIT, f"GPU out of memory: {text[-2000:]}"
        if "illegal memory access" in lowered or "cuda error" in lowered or "misaligned" in lowered:
            return Outcome.CRASHED, f"GPU fault: {text[-2000:]}"
        return Outcome.RUNTIME_ERROR, f"{name}: {text[-2000:]}"

    # --- the baseline -------------------------------------------------------------
    def _sdpa(self, shape: AttentionShape, backend=None) -> Callable:
        torch = self.torch
        from torch.nn.functional import scaled_dot_product_attention as sdpa

        mask, is_causal = None, False
        if shape.causal and shape.q_len > 1:
            if shape.q_len == shape.kv_len:
                is_causal = True
            else:
                from torch.nn.attention.bias import causal_lower_right

                mask = causal_lower_right(shape.q_len, shape.kv_len)

        def call(q, k, v):
            if backend is None:
                return sdpa(
                    q, k, v, attn_mask=mask, is_causal=is_causal, scale=shape.scale, enable_gqa=True
                )
            with torch.nn.attention.sdpa_kernel([backend]):
                return sdpa(
                    q, k, v, attn_mask=mask, is_causal=is_causal, scale=shape.scale, enable_gqa=True
                )

        return call

    def _choose(self, shape: AttentionShape, q, k, v) -> tuple[str, Callable]:
        """The fastest SDPA backend that accepts this shape (and is right), measured."""
        torch = self.torch
        from torch.nn.attention import SDPBackend

        candidates = [("default dispatch", self._sdpa(shape))]
        for backend in ("CUDNN_ATTENTION", "FLASH_ATTENTION", "EFFICIENT_ATTENTION", "MATH"):
            if hasattr(SDPBackend, backend):
                candidates.append(
                    (backend.lower(), self._sdpa(shape, getattr(SDPBackend, backend)))
                )
        reference = None
        best: tuple[float, str, Callable] | None = None
        for name, call in candidates:
            try:
                out = call(q, k, v)
                self.run([out])
            except RuntimeError:
                continue  # this backend does not take this shape
            if reference is None:
                reference = out.float()
            elif not torch.allclose(out.float(), reference, atol=5e-2, rtol=5e-2):
                continue
            seconds, _ = self.time_calls([lambda call=call: call(q, k, v)] * 10)
            if name == "default dispatch":
                self.default_times[(shape, str(q.dtype))] = seconds / 10
            elif best is None or seconds < best[0]:
                best = (seconds, name, call)
        if best is None:
            return candidates[0][0], candidates[0][1]
        return best[1], best[2]

    def baseline(self, q, k, v, shape: AttentionShape):
        key = (shape, str(q.dtype))
        if key not in self._baselines:
            self._baselines[key] = self._choose(shape, q, k, v)
        name, call = self._baselines[key]
        pad = self.torch.empty_like(q)  # the same fill the candidate's output gets
        pad.fill_(float("nan"))
        return call(q, k, v)

    def baseline_name(self, shape: AttentionShape, dtype: str) -> str:
        return self._baselines.get((shape, f"torch.{dtype}"), ("sdpa", None))[0]

    # --- the candidate ------------------------------------------------------------
    def _check_plan(self, plan, shape: AttentionShape, kernels: dict[str, KernelSignature]) -> dict:
        if not isinstance(plan, dict) or not isinstance(plan.get("launches"), list):
            raise KernelDataError(
                f"launch{shape.launch_args()} must return a dict with 'launches', got {plan!r:.200}"
            )
        scratch = plan.get("scratch") or {}
        if not isinstance(scratch, dict) or len(scratch) > MAX_SCRATCH:
            raise KernelDataError(
                f"launch(): 'scratch' must map at most {MAX_SCRATCH} names to {{dtype, shape}}"
            )
        total = 0
        for name, spec in scratch.items():
            if not isinstance(name, str) or not name.isidentifier() or name in TENSORS + SYMBOLS:
                raise KernelDataError(f"launch(): scratch name {name!r:.50} is not allowed")
            if not isinstance(spec, dict) or spec.get("dtype") not in SCRATCH_DTYPES:
                raise KernelDataError(f"launch(): scratch {name} needs a dtype of {SCRATCH_DTYPES}")
            dims = spec.get("shape")
            if not isinstance(dims, list) or not 1 <= len(dims) <= 6:
                raise KernelDataError(f"launch(): scratch {name} needs a shape (a list)")
            count = 1
            for dim in dims:
                count *= _positive_int(dim, f"scratch {name}'s shape")
            total += count * (2 if spec["dtype"] in ("float16", "bfloat16") else 4)
        if total > MAX_SCRATCH_BYTES:
            raise KernelDataError(
                f"launch(): {total} bytes of scratch for {shape.label} is too much"
            )
        launches = plan["launches"]
        if not 1 <= len(launches) <= MAX_LAUNCHES:
            raise KernelDataError(f"launch(): between 1 and {MAX_LAUNCHES} launches per call")
        names = set(TENSORS) | set(scratch)
        checked = []
        for item in launches:
            if not isinstance(item, dict) or item.get("kernel") not in kernels:
                raise KernelDataError(
                    f"launch(): every launch names a kernel of KERNELS ({', '.join(kernels)}), got {item!r:.200}"
                )
            signature = kernels[item["kernel"]]
            grid = item.get("grid")
            if not isinstance(grid, list) or not 1 <= len(grid) <= 3:
                raise KernelDataError("launch(): a grid is a list of 1 to 3 positive integers")
            for dim, limit in zip(grid, GRID_LIMITS, strict=False):
                if _positive_int(dim, "a grid dimension") > limit:
                    raise KernelDataError(f"launch(): grid {grid} exceeds CUDA's limits")
            args = item.get("args", [])
            if not isinstance(args, list) or len(args) != len(signature.runtime):
                raise KernelDataError(
                    f"launch(): {signature.name}() takes {len(signature.runtime)} arguments "
                    f"({', '.join(signature.runtime)}) besides its tl.constexpr ones, got {args!r:.200}"
                )
            for arg in args:
                if isinstance(arg, str) and arg not in names | set(SYMBOLS):
                    raise KernelDataError(f"launch(): argument {arg!r:.50} is no tensor or symbol")
                if not isinstance(arg, str | int) or isinstance(arg, bool):
                    raise KernelDataError(
                        f"launch(): argument {arg!r:.50} is not allowed (a tensor's or symbol's "
                        "name, or an integer)"
                    )
                if isinstance(arg, int) and not 0 <= arg <= MAX_INT_ARG:
                    raise KernelDataError(f"launch(): argument {arg} is outside 0..{MAX_INT_ARG}")
            constexprs = item.get("constexprs") or {}
            if not isinstance(constexprs, dict):
                raise KernelDataError("launch(): 'constexprs' maps names to values")
            for key, value in constexprs.items():
                if key not in signature.constexprs:
                    raise KernelDataError(
                        f"launch(): {key!r:.50} is not a tl.constexpr parameter of {signature.name}()"
                    )
                ok = isinstance(value, bool) or value in SYMBOLS
                ok = ok or (isinstance(value, int) and 0 <= value <= MAX_CONSTEXPR)
                if not ok:
                    raise KernelDataError(
                        f"launch(): constexpr {key} = {value!r:.50} (an integer in 0..{MAX_CONSTEXPR}, "
                        "a boolean, or 'causal')"
                    )
            missing = [
                c
                for c in signature.constexprs
                if c not in constexprs and c not in signature.defaults
            ]
            if missing:
                raise KernelDataError(
                    f"launch(): {signature.name}() needs the constexprs {missing}"
                )
            if item.get("num_warps", 4) not in WARPS:
                raise KernelDataError(f"launch(): num_warps must be one of {WARPS}")
            if item.get("num_stages", 2) not in range(1, 9):
                raise KernelDataError("launch(): num_stages must lie in 1..8")
            checked.append(
                {
                    "kernel": item["kernel"],
                    "grid": list(grid),
                    "args": list(args),
                    "constexprs": {
                        **{
                            k: v for k, v in signature.defaults.items() if k in signature.constexprs
                        },
                        **constexprs,
                    },
                    "num_warps": item.get("num_warps", 4),
                    "num_stages": item.get("num_stages", 2),
                }
            )
        return {"scratch": scratch, "launches": checked}

    def build(self, data: KernelData, plans: dict | None, process, settings):
        """The candidate's kernels, from its checked source and plans. Under the
        interpreter they are defined and run in the candidate process; on a GPU the
        candidate process lowers them to Triton IR, and the judge checks and compiles
        that IR itself once the process is gone (`compile_ir`)."""
        from rayevolve.evaluators.judge.triton_source import signatures

        source = data.text("KERNELS")
        kernels = signatures(source)
        if plans is None:
            raise KernelDataError("the EVOLVE-BLOCK defines no launch(): no kernel is dispatched")
        checked = {shape: self._check_plan(plan, shape, kernels) for shape, plan in plans.items()}
        if self.interpret:
            process.request(
                "load", settings.launch_timeout_s, kind="triton_interpret", source=source
            )
            return RemoteKernel(
                process, self, lambda shape: {"plan": checked[shape]}, settings.call_timeout_s
            )
        from triton.runtime import driver

        target = driver.active.get_current_target()
        binaries = lower_and_compile(
            source, kernels, checked, settings.dtypes, process, target, settings.compile_timeout_s
        )
        return self._launcher(checked, binaries)

    def _launcher(self, checked: dict, binaries: dict):
        torch = self.torch

        def call(q, k, v, shape: AttentionShape):
            plan = checked[shape]
            tensors = plan_tensors(torch, plan, q, k, v)
            symbols = {"scale": shape.scale, "causal": shape.causal}
            types = {name: dtype_name(t) for name, t in tensors.items()}
            for item in plan["launches"]:
                args, _ = launch_arguments(item, tensors, symbols)  # constexprs: in the IR
                binary = binaries[specialisation(item, types, shape.causal)]
                grid = tuple(item["grid"]) + (1,) * (3 - len(item["grid"]))
                binary[grid](*args)
            return tensors["out"]

        return call

    # --- timing -------------------------------------------------------------------
    def time_calls(self, calls: Sequence[Callable]):
        if self.device != "cuda":
            return wall_clock_timing(self, calls)
        torch = self.torch
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        start.record()
        outputs = [call() for call in calls]
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3, outputs

    def timer(self, calls: Sequence[Callable]) -> Callable[[], tuple[float, list]]:
        """A CUDA graph of `calls`, captured once; each call of the returned function
        replays it and gives (seconds by CUDA events, its outputs)."""
        if self.device != "cuda":
            return lambda: self.time_calls(calls)
        torch = self.torch
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):  # compile and let the allocator settle outside the capture
                [call() for call in calls]
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            outputs = [call() for call in calls]
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def replay():
            torch.cuda.synchronize()
            start.record()
            graph.replay()
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3, outputs

        return replay
