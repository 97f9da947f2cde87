"""The parabola task with a witness: each finished evaluation appends its time and its
program's hash to the file named by $WITNESS (run with evaluation.isolation=none), so a
fault test knows which evaluations ended before a kill, independently of the run log."""

import hashlib
import importlib.util
import os
import time


def evaluate(program_path):
    with open(program_path) as handle:
        code = handle.read()
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, y = module.point()
    time.sleep(float(os.environ.get("EVAL_S", "0.02")))  # some work, so kills land mid-run
    line = f"{time.time():.6f} {hashlib.sha256(code.encode()).hexdigest()}\n"
    fd = os.open(os.environ["WITNESS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    return {"combined_score": 10.0 - (x - 3.0) ** 2 - (y - 5.0) ** 2}
