"""The kernel judge against itself: the vendor's SDPA judged as if it were a candidate.

Every check, every timed sample and every statistic of the judge runs as for a real
candidate (the candidate process computes the plans, as always); only the kernel it
builds is replaced by the vendor's own, in the judge. A sound judge rejects none of
these runs and reports a speedup whose interval holds 1.0 about as often as its
confidence level says (95%: at least 47 of 50 runs). Backends: MLX's CPU build (the
stand-in, ``mlx_standin``), Metal on a Mac (``mlx_metal``), and PyTorch (the Triton
task's: ``torch_interpret`` on the CPU, ``torch_cuda`` on an NVIDIA GPU).

Usage: ``python experiments/qwen3_gqa_attention/self_test.py [--runs 50] [--preset tiny]
[--profile full] [--backend mlx_standin]``; prints a table (markdown) and a summary.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rayevolve.evaluators.judge.attention import PROFILES, judge_attention  # noqa: E402
from rayevolve.evaluators.judge.core import PRESETS  # noqa: E402
from rayevolve.evaluators.judge.mlx_backend import backend_for  # noqa: E402

PROGRAM = """
# EVOLVE-BLOCK-START
KERNEL_SOURCE = "out = q"
def launch(batch, q_heads, kv_heads, q_len, kv_len, head_dim):
    return (batch * q_heads * q_len * 32, 1, 1), (128, 1, 1), []
# EVOLVE-BLOCK-END
"""
TORCH_BACKENDS = ("torch_interpret", "torch_cuda")


def vendor_as_candidate(name: str):
    """The backend `name`, building every candidate as the vendor's own kernel."""
    if name in TORCH_BACKENDS:
        from rayevolve.evaluators.judge.torch_backend import TorchBackend

        backend = TorchBackend(interpret=name == "torch_interpret")
    else:
        backend = backend_for(name)

    def build(data, plans, process, settings):
        return backend.baseline

    backend.build = build
    return backend


def versions(name: str) -> str:
    if name in TORCH_BACKENDS:
        import torch

        return f"PyTorch {torch.__version__} ({name})"
    import mlx.core as mx

    return f"MLX {mx.__version__} ({name})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--preset", default="tiny", choices=sorted(PRESETS))
    parser.add_argument("--profile", default="full", choices=sorted(PROFILES))
    parser.add_argument("--backend", default="mlx_standin")
    args = parser.parse_args()
    backend = vendor_as_candidate(args.backend)
    rows, held, rejected, cells_held, cells = [], 0, 0, 0, 0
    started = time.time()
    for run in range(1, args.runs + 1):
        t = time.time()
        result = judge_attention(
            PROGRAM, backend, PRESETS[args.preset], PROFILES[args.profile]
        ).result
        if "status" in result:
            rejected += 1
            rows.append(f"| {run} | **{result['status']}** | {result['error'][:160]} | | | |")
            print(rows[-1], flush=True)
            continue
        low, point, high = result["speedup_low"], result["combined_score"], result["speedup_high"]
        held += low <= 1.0 <= high
        per_cell = [k[len("speedup_low_") :] for k in result if k.startswith("speedup_low_")]
        holding = sum(
            result[f"speedup_low_{c}"] <= 1.0 <= result[f"speedup_high_{c}"] for c in per_cell
        )
        cells_held += holding
        cells += len(per_cell)
        rows.append(
            f"| {run} | ok | {point:.4f} | [{low:.4f}, {high:.4f}] | {'yes' if low <= 1.0 <= high else '**no**'} "
            f"| {holding}/{len(per_cell)} | {time.time() - t:.1f} s |"
        )
        print(rows[-1], flush=True)
    print()
    print(
        f"{versions(args.backend)}, preset {args.preset} {PRESETS[args.preset]}, profile "
        f"{args.profile}, {platform.platform()}, Python {platform.python_version()}; "
        f"{time.time() - started:.0f} s"
    )
    print()
    print(
        "| run | verdict | speedup (geomean) | 95% interval | holds 1.0 | cells holding 1.0 | time |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(
        f"{args.runs} runs: {rejected} rejected; the combined interval held 1.0 in {held} of "
        f"{args.runs - rejected}; per (shape, dtype) cell: {cells_held} of {cells}"
    )


if __name__ == "__main__":
    main()
