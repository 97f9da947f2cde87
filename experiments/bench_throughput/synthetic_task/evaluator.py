"""Fixed-cost evaluation for the throughput benchmark (rayevolve and OpenEvolve alike).

The cost is a sleep of BENCH_EVAL_S seconds (default 0): the benchmark knows what each
evaluation costs, so the ideal throughput W / cost is exact and anything below it is the
framework's. The score rewards constants near a target, so selection has something to do.
"""

import importlib.util
import os
import time


def evaluate(program_path):
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    score = -abs(module.A - 1.5) - abs(module.B - 0.5) - abs(module.C - 7.0) - abs(module.D - 0.1)
    remaining = float(os.environ.get("BENCH_EVAL_S", "0")) - (time.perf_counter() - started)
    if remaining > 0:
        time.sleep(remaining)
    return {"combined_score": score}
