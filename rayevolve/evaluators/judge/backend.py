"""What the kernel judge needs from a device: arrays, the vendor's kernel, building a
candidate's kernel from its data, running, synchronising and timing.

`judge/attention.py` decides everything (shapes, inputs, checks, statistics) through this
interface; `mlx_backend.py` (Metal, and a CPU stand-in) and `torch_backend.py` (CUDA with
Triton) implement it. A backend builds and launches candidate kernels itself, from data;
it never runs candidate Python.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np

from rayevolve.evaluators.judge.core import AttentionShape
from rayevolve.evaluators.judge.kernel_data import KernelData


class CompileError(RuntimeError):
    """The candidate's kernel source did not compile; the message is the compiler's."""


class Kernel(Protocol):
    """A candidate kernel built by the judge: ``kernel(q, k, v, shape) -> out`` (lazy or
    asynchronous, as the device is)."""

    def __call__(self, q: Any, k: Any, v: Any, shape: AttentionShape) -> Any: ...


class Backend(Protocol):
    name: str
    cache_bytes: int  # the device's last-level cache: timed inputs rotate through more

    def unavailable(self) -> str | None:
        """None if this backend can run here, else why not (status unsupported_platform)."""

    def to_device(self, array: np.ndarray, dtype: str) -> Any: ...

    def to_numpy(self, array: Any) -> np.ndarray: ...

    def baseline(self, q: Any, k: Any, v: Any, shape: AttentionShape) -> Any:
        """The vendor's fastest kernel for this shape."""

    def baseline_name(self, shape: AttentionShape, dtype: str) -> str: ...

    def build(self, data: KernelData, plans: dict[tuple, Any]) -> Kernel:
        """The candidate's kernel, from its data and its launch plans (by launch args);
        raises `KernelDataError` for data it cannot use, `CompileError` for source that
        does not compile."""

    def run(self, outputs: Sequence[Any]) -> None:
        """Make sure `outputs` are computed (evaluation of lazy arrays, a device sync)."""

    def classify(self, exc: BaseException) -> tuple[str, str]:
        """(status, message) for an exception raised while building or running a kernel."""

    def time_calls(self, calls: Sequence[Callable[[], Any]]) -> tuple[float, list]:
        """Seconds the calls take back to back, device work included; their outputs."""


def wall_clock_timing(backend: Backend, calls: Sequence[Callable[[], Any]]) -> tuple[float, list]:
    """`time_calls` for devices whose work `run` completes: synchronise, start the clock,
    issue every call, run them, synchronise, stop the clock (this process's own clock:
    no candidate code ever ran in it)."""
    backend.run([])
    started = time.perf_counter()
    outputs = [call() for call in calls]
    backend.run(outputs)
    return time.perf_counter() - started, outputs
