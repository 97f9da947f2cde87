"""The results table of the NVIDIA GQA task: per timed shape and dtype, the fastest SDPA
backend and its time, the starting kernel, the best evolved kernel, their speedups with
95% intervals, and the best kernel's fraction of the memory floor (K and V read once at
the GPU's HBM bandwidth). Needs a CUDA GPU.

Usage: ``python experiments/qwen3_gqa_attention_cuda/measure.py [--best PROGRAM]
[--profile nvidia]``; prints markdown.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rayevolve.evaluators.judge.attention import PROFILES, judge_attention  # noqa: E402
from rayevolve.evaluators.judge.core import PRESETS, timing_shapes  # noqa: E402
from rayevolve.evaluators.judge.torch_backend import TorchBackend  # noqa: E402

HBM_TB_S = {"H100": 3.35, "H200": 4.8, "H20": 4.0, "A100": 2.0, "B200": 8.0}  # vendors' figures


def bandwidth(name: str) -> float | None:
    for key, value in sorted(HBM_TB_S.items(), key=lambda kv: -len(kv[0])):
        if key in name:
            return value * 1e12
    return None


def judged(path: Path, backend, settings) -> dict:
    result = judge_attention(path.read_text(), backend, PRESETS["qwen3-0.6b"], settings).result
    if "status" in result:
        raise SystemExit(f"{path}: {result['status']}: {result['error'][:2000]}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--best", type=Path, help="the best evolved program (default: none)")
    parser.add_argument("--profile", default="nvidia", choices=sorted(PROFILES))
    args = parser.parse_args()
    import torch
    import triton

    backend = TorchBackend()
    settings = PROFILES[args.profile]
    device = torch.cuda.get_device_name(0)
    print(
        f"{device}, torch {torch.__version__} (CUDA {torch.version.cuda}), Triton {triton.__version__}, "
        f"profile {args.profile}\n"
    )
    start = judged(ROOT / "kernels/triton/gqa_attention/initial_program.py", backend, settings)
    best = judged(args.best, backend, settings) if args.best else None
    floor_bw = bandwidth(device)
    print(
        "| B | S | dtype | baseline (fastest SDPA) | baseline us | default dispatch us | starting kernel us | "
        "speedup [95%] | best evolved us | speedup [95%] | memory floor us | best / floor |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for shape in timing_shapes(PRESETS["qwen3-0.6b"], settings.timed_lengths):
        for dtype in settings.dtypes:
            key = f"{shape.label}_{dtype}"
            base_us = start[f"baseline_ms_{key}"] * 1e3
            default = backend.default_times.get((shape, f"torch.{dtype}"))
            floor = shape.kv_bytes(2) / floor_bw * 1e6 if floor_bw else float("nan")
            cells = [
                str(shape.batch),
                str(shape.kv_len),
                dtype,
                backend.baseline_name(shape, dtype),
                f"{base_us:.1f}",
                f"{default * 1e6:.1f}" if default else "-",
                f"{start[f'candidate_ms_{key}'] * 1e3:.1f}",
                f"{start[f'speedup_{key}']:.3f}x [{start[f'speedup_low_{key}']:.3f}, {start[f'speedup_high_{key}']:.3f}]",
            ]
            if best:
                best_us = best[f"candidate_ms_{key}"] * 1e3
                cells += [
                    f"{best_us:.1f}",
                    f"{best[f'speedup_{key}']:.3f}x [{best[f'speedup_low_{key}']:.3f}, {best[f'speedup_high_{key}']:.3f}]",
                ]
            else:
                best_us = start[f"candidate_ms_{key}"] * 1e3
                cells += ["-", "-"]
            cells += [f"{floor:.1f}", f"{floor / best_us:.2f}"]
            print("| " + " | ".join(cells) + " |")
    for name, result in (("starting kernel", start), ("best evolved", best)):
        if result:
            print(
                f"\n{name}: geometric mean {result['combined_score']:.3f}x "
                f"[{result['speedup_low']:.3f}, {result['speedup_high']:.3f}]"
            )


if __name__ == "__main__":
    main()
