"""Driver SIGKILLs at random moments, each followed by a resume: what is lost?

For N seeded kill points (after k finished evaluations, plus a delay), runs the
``witnessed`` task, SIGKILLs the driver, resumes the run to its budget and compares the
evaluator's own witness file with the run log (`rayevolve.testing.faults`). Prints a
markdown table and the totals; ``--out`` writes them to a file (``docs/faults.md``).

Usage: ``python kill.py [--kills 20] [--seed 0] [--budget 80] [--out FILE]``
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from rayevolve.testing.faults import GRACE_S, kill_and_resume  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--budget", type=int, default=80)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--session",
        action="store_true",
        help="kill the driver's whole session (its Ray and every actor: a machine crash)",
    )
    parser.add_argument(
        "--no-write-ahead",
        action="store_true",
        help="log.write_ahead=false: rows wait in memory for the next flush (the baseline)",
    )
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows = []
    for i in range(args.kills):
        after = 1 if i == 0 else rng.randint(1, args.budget - 10)
        delay = 0.1 if i == 0 else round(rng.uniform(0.0, 1.5), 2)
        work = Path(tempfile.mkdtemp(prefix="rayevolve-kill-"))
        try:
            outcome = kill_and_resume(
                work,
                after_evaluations=after,
                delay_s=delay,
                budget=args.budget,
                overrides=("log.write_ahead=false",) if args.no_write_ahead else (),
                session=args.session,
            )
        except RuntimeError as exc:  # the run ended (or stalled) before the kill point
            print(f"kill {i + 1}/{args.kills}: not killed: {exc}", file=sys.stderr, flush=True)
            continue
        finally:
            shutil.rmtree(work, ignore_errors=True)
        rows.append((after, delay, outcome))
        print(f"kill {i + 1}/{args.kills}: {outcome}", file=sys.stderr, flush=True)
    lines = [
        f"{'Session' if args.session else 'Driver'} SIGKILLs: {args.kills} kills (seed "
        f"{args.seed}), budget {args.budget} evaluations each, write-ahead log "
        f"{'off' if args.no_write_ahead else 'on'}, `python experiments/fault_injection/kill.py "
        f"--kills {args.kills} --seed {args.seed} --budget {args.budget}"
        f"{' --session' if args.session else ''}"
        f"{' --no-write-ahead' if args.no_write_ahead else ''}`; "
        f"{platform.platform()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}.",
        "",
        f"| # | killed after (evaluations + s) | at (s from start) | finished > {GRACE_S} s before | lost | resumed | evaluations at the end | duplicated ids |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, (after, delay, o) in enumerate(rows, start=1):
        lines.append(
            f"| {i} | {after} + {delay} | {o.kill_after_s:.1f} | {o.witnessed_before} | {o.lost} | "
            f"{'yes' if o.resumed else 'no: ' + o.resume_error} | {o.evaluations} | {o.duplicates} |"
        )
    outcomes = [o for _, _, o in rows]
    lines += [
        "",
        f"Totals: {sum(o.witnessed_before for o in outcomes)} evaluations finished more than "
        f"{GRACE_S} s before a kill, {sum(o.lost for o in outcomes)} of them lost; "
        f"{sum(o.resumed for o in outcomes)}/{len(outcomes)} resumed; "
        f"{sum(o.evaluations == args.budget for o in outcomes)}/{len(outcomes)} ended with exactly "
        f"the budget; {sum(o.duplicates for o in outcomes)} duplicated ids.",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
