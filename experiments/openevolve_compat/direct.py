"""OpenEvolve's own evaluator on one program: ``python direct.py JSON`` in an environment
with OpenEvolve installed (``.venv-openevolve``). Prints one JSON line: the fitness
OpenEvolve would select by (``get_fitness_score``), its metrics, or the error.

JSON: {"folder", "evaluator", "program", "config"}; the working directory is the folder
(as a user running an example from it has it).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from pathlib import Path


def main(args: dict) -> dict:
    from openevolve.config import Config, load_config
    from openevolve.evaluator import Evaluator
    from openevolve.utils.metrics_utils import get_fitness_score

    logging.disable(logging.CRITICAL)
    folder = Path(args["folder"])
    os.chdir(folder)
    sys.path.insert(0, str(folder))
    config = load_config(str(folder / args["config"])) if args.get("config") else Config()
    program = folder / args["program"]
    evaluator = Evaluator(config.evaluator, str(folder / args["evaluator"]), suffix=program.suffix)
    metrics = asyncio.run(evaluator.evaluate_program(program.read_text(), "seed"))
    numeric = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }
    return {
        "score": get_fitness_score(metrics, config.database.feature_dimensions),
        "metrics": numeric,
    }


if __name__ == "__main__":
    try:
        result = main(json.loads(sys.argv[1]))
    except BaseException as exc:  # noqa: BLE001 - reported, the caller tabulates it
        result = {"error": f"{type(exc).__name__}: {exc}"[:300]}
    sys.stdout.flush()
    print("DIRECT " + json.dumps(result), flush=True)
