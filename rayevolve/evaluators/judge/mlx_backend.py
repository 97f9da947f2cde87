"""MLX backends of the kernel judge: Metal on Apple Silicon, and the CPU stand-in.

`MetalBackend` builds a candidate's kernel with ``mx.fast.metal_kernel`` from its
``KERNEL_SOURCE`` and ``KERNEL_HEADER`` strings, named by a hash of both (MLX caches
libraries by name), with the output's shape and dtype fixed by the judge and its
elements pre-filled with NaN (an element the kernel forgets to write fails the checks).
The launch plan of each shape (``launch()``'s grid, threadgroup and extra template
constants, computed in an isolated child) is validated here: positive integers, at most
1024 threads per threadgroup, a grid no larger than the work could need. The baseline is
``mx.fast.scaled_dot_product_attention``. Every call synchronises every stream the judge
uses (MLX's default GPU and CPU streams).

`StandInBackend` runs on MLX's CPU build, where Metal kernels cannot: ``KERNEL_SOURCE``
is then a stand-in in the array language of `standin.py`, defined and run in the
candidate process (`remote.RemoteKernel`: the judge sends inputs, gets outputs back and
checks them). Same checks, same baseline; its timings include the round trip, and say
nothing about a device (a test device).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

import numpy as np

from rayevolve.evaluators.judge.backend import CompileError, wall_clock_timing
from rayevolve.evaluators.judge.core import AttentionShape
from rayevolve.evaluators.judge.kernel_data import KernelData, KernelDataError
from rayevolve.outcome import Outcome

MAX_THREADGROUP = 1024
GRID_SLACK = 64  # a grid may cover at most this many threads per output element
# a plan's template constants: few and small (block sizes, counts), so that a plan is
# no channel for data into the kernel
MAX_CONSTANTS = 8
CONSTANT_LIMIT = 1 << 16


def _cache_bytes() -> int:
    """The last-level cache to rotate timed inputs past (Apple's SLC is up to 96 MB; a
    CPU's L3 as Linux reports it); 64 MiB when unknown."""
    try:
        text = open("/sys/devices/system/cpu/cpu0/cache/index3/size").read().strip()
        value = int(text.rstrip("KMG")) * {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}[text[-1]]
        return max(value, 8 << 20)
    except (OSError, ValueError, KeyError):
        return 96 << 20 if os.uname().sysname == "Darwin" else 64 << 20


def _ints(value, count: int, what: str) -> tuple[int, ...]:
    if not isinstance(value, list | tuple) or len(value) != count:
        raise KernelDataError(f"launch(): {what} must be {count} integers, got {value!r:.200}")
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 1 for x in value):
        raise KernelDataError(f"launch(): {what} must be positive integers, got {value!r:.200}")
    return tuple(int(x) for x in value)


class MlxBackend:
    """What both MLX backends share: arrays, the baseline, running, timing."""

    name = "mlx"

    def __init__(self):
        import mlx.core as mx

        self.mx = mx
        self.cache_bytes = _cache_bytes()

    def to_device(self, array: np.ndarray, dtype: str):
        return self.mx.array(array).astype(getattr(self.mx, dtype))

    def to_numpy(self, array) -> np.ndarray:
        return np.asarray(array.astype(self.mx.float32))

    def baseline(self, q, k, v, shape: AttentionShape):
        return self.mx.fast.scaled_dot_product_attention(
            q, k, v, scale=shape.scale, mask="causal" if shape.causal else None
        )

    def baseline_name(self, shape: AttentionShape, dtype: str) -> str:
        return "mx.fast.scaled_dot_product_attention"

    def run(self, outputs: Sequence) -> None:
        if outputs:
            self.mx.eval(*outputs)
        self.mx.synchronize()  # the default stream of the default device
        for device in (self.mx.cpu, self.mx.gpu):
            try:
                self.mx.synchronize(self.mx.default_stream(device))
            except (RuntimeError, ValueError):  # no such device here
                pass

    def time_calls(self, calls):
        return wall_clock_timing(self, calls)

    def check_plan(self, plan, shape: AttentionShape) -> tuple:
        """(grid, threadgroup, template) of one launch() result, validated."""
        if not isinstance(plan, list | tuple) or len(plan) != 3:
            raise KernelDataError(
                f"launch{shape.launch_args()} must return (grid, threadgroup, template), got {plan!r:.200}"
            )
        grid = _ints(plan[0], 3, "grid")
        group = _ints(plan[1], 3, "threadgroup")
        if group[0] * group[1] * group[2] > MAX_THREADGROUP:
            raise KernelDataError(
                f"launch(): threadgroup {group} exceeds {MAX_THREADGROUP} threads"
            )
        elements = shape.batch * shape.q_heads * shape.q_len * shape.head_dim
        if grid[0] * grid[1] * grid[2] > GRID_SLACK * elements + MAX_THREADGROUP:
            raise KernelDataError(f"launch(): grid {grid} is far larger than {shape.label} needs")
        template = []
        if not isinstance(plan[2] or [], list | tuple) or len(plan[2] or []) > MAX_CONSTANTS:
            raise KernelDataError(f"launch(): at most {MAX_CONSTANTS} template constants")
        for item in plan[2] or []:
            if (
                not isinstance(item, list | tuple)
                or len(item) != 2
                or not isinstance(item[0], str)
                or not item[0].isidentifier()
                or item[0] in ("T", "D", "CAUSAL")
                or not isinstance(item[1], int | bool)
                or not -CONSTANT_LIMIT <= item[1] <= CONSTANT_LIMIT
            ):
                raise KernelDataError(
                    "launch(): template constants must be (NAME, int or bool) pairs, the int "
                    f"within +-{CONSTANT_LIMIT}, got {item!r:.200}"
                )
            template.append((item[0], item[1]))
        return grid, group, template

    def classify(self, exc: BaseException) -> tuple[str, str]:
        text = str(exc)
        lowered = text.lower()
        if (
            "unable to build metal library" in lowered
            or "program_source" in lowered
            or ("error:" in lowered and "metal" in lowered)
        ):
            return Outcome.COMPILE_ERROR, "Metal compile error:\n" + text[-6000:]
        if "timeout" in lowered or "hang" in lowered:
            return Outcome.TIMEOUT, "GPU timeout: " + text[-2000:]
        if "command buffer" in lowered or "gpu" in lowered or "invalid resource" in lowered:
            return Outcome.CRASHED, "GPU fault: " + text[-2000:]
        if isinstance(exc, MemoryError):
            return Outcome.MEMORY_LIMIT, f"out of memory: {text[-2000:]}"
        return Outcome.RUNTIME_ERROR, f"{type(exc).__name__}: {text[-2000:]}"


class MetalBackend(MlxBackend):
    name = "mlx_metal"

    def unavailable(self) -> str | None:
        if self.mx.metal.is_available():
            return None
        import platform

        return (
            f"this task needs Apple's Metal GPU; this node is {platform.system()} "
            f"{platform.machine()} without it. Give Mac workers the apple_gpu resource and the "
            "task resources {apple_gpu: 1}."
        )

    def build(
        self, data: KernelData, plans: dict[AttentionShape, object] | None, process, settings
    ):
        """Metal source is text for Apple's compiler, built here; the plans were computed
        in the candidate process, which is gone by the time this kernel runs."""
        source = data.text("KERNEL_SOURCE")
        header = data.text("KERNEL_HEADER", required=False)
        if not source.strip():
            raise KernelDataError("KERNEL_SOURCE is empty: the candidate builds no kernel")
        if plans is None:
            raise KernelDataError("the EVOLVE-BLOCK defines no launch(): no kernel is dispatched")
        checked = {shape: self.check_plan(plan, shape) for shape, plan in plans.items()}
        digest = hashlib.sha256((header + "\0" + source).encode()).hexdigest()[:16]
        try:
            kernel = self.mx.fast.metal_kernel(
                name=f"gqa_attention_{digest}",
                input_names=["q", "k", "v", "scale", "dims"],
                output_names=["out"],
                source=source,
                header=header,
                ensure_row_contiguous=True,
            )
        except Exception as exc:  # noqa: BLE001 - MLX reports bad source at build or at eval
            raise CompileError(str(exc)) from None
        mx = self.mx

        def call(q, k, v, shape: AttentionShape):
            grid, group, template = checked[shape]
            dims = mx.array(
                [shape.batch, shape.q_heads, shape.kv_heads, shape.q_len, shape.kv_len],
                dtype=mx.int32,
            )
            (out,) = kernel(
                inputs=[q, k, v, mx.array([shape.scale], dtype=mx.float32), dims],
                template=[
                    ("T", q.dtype),
                    ("D", shape.head_dim),
                    ("CAUSAL", shape.causal),
                    *template,
                ],
                grid=grid,
                threadgroup=group,
                output_shapes=[q.shape],
                output_dtypes=[q.dtype],
                init_value=float("nan"),
            )
            return out

        return call


class StandInBackend(MlxBackend):
    name = "mlx_standin"

    def unavailable(self) -> str | None:
        return None

    def build(
        self, data: KernelData, plans: dict[AttentionShape, object] | None, process, settings
    ):
        """The stand-in kernel, checked here (its syntax only) and defined and run in the
        candidate process: the judge never executes it."""
        from rayevolve.evaluators.judge import standin
        from rayevolve.evaluators.judge.remote import RemoteKernel

        if plans is None:
            raise KernelDataError("the EVOLVE-BLOCK defines no launch(): no kernel is dispatched")
        constants = {shape: dict(self.check_plan(plan, shape)[2]) for shape, plan in plans.items()}
        names = sorted({name for values in constants.values() for name in values})
        source = data.text("KERNEL_SOURCE")
        standin.check(source, tuple(names))
        process.request(
            "load", settings.launch_timeout_s, kind="standin", source=source, names=names
        )

        def header(shape: AttentionShape) -> dict:
            values = constants[shape]
            return {"constants": {name: values.get(name) for name in names}}

        return RemoteKernel(process, self, header, settings.call_timeout_s)


def backend_for(setting: str | None):
    """The backend a task's ``RAYEVOLVE_KERNEL_BACKEND`` names (default: Metal)."""
    if setting in (None, "", "mlx_metal"):
        return MetalBackend()
    if setting == "mlx_standin":
        return StandInBackend()
    raise ValueError(f"unknown RAYEVOLVE_KERNEL_BACKEND {setting!r}: mlx_metal or mlx_standin")
