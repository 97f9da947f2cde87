"""Scores closeness to (3.0, 5); stands in for a Metal benchmark placed by apple_gpu.

PROBE_EVAL_S (task.env) gives each evaluation a known cost, for tests that must act
while a run is still going."""

import importlib.util
import os
import time


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    time.sleep(float(os.environ.get("PROBE_EVAL_S", "0")))
    return {"combined_score": -abs(module.X - 3.0) - abs(module.Y - 5)}
