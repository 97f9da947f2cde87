"""Many islands, and what an island costs when it waits: the measurements behind
`make bench`'s "many islands" section (also run alone: `make bench-islands`).

1. Ray's floor: CPU of N empty async actors that nobody calls.
2. Islands waiting: a real run whose every island waits on a slow model; CPU per island
   per second, by thread (Ray's threads are named), and a py-spy profile of one island.
3. Side by side in one Ray: 4 and 64 islands at the same setting (W = 8, C = 16, latency
   1.0 s, evaluation 0.5 s; the same children in flight in total), achieved / ideal and
   the islands' CPU per evaluation; then 256 islands with in_flight 1.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workload import TICKS, Measurement, Workload, processes  # noqa: E402

TARGET = dict(concurrency=16, latency_s=1.0, eval_s=0.5)
ISLAND = "IslandActor"
HOST = "IslandHost"


def actor_pids(name: str) -> list[int]:
    return [pid for pid, (role, _, _) in processes().items() if role == name]


def thread_cpu(pids: list[int]) -> dict[str, float]:
    """CPU seconds so far of every thread of `pids`, summed by thread name (Ray names its
    threads; digits are dropped so that numbered pools add up)."""
    used: dict[str, float] = collections.Counter()
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                comm = (task / "comm").read_text().strip()
                stat = (task / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            name = "main (Python: asyncio loop, rayevolve, Ray's Python side)"
            if int(task.name) != pid:
                name = re.sub(r"\d+", "N", comm)
            used[name] += (int(stat[11]) + int(stat[12])) / TICKS
    return dict(used)


def window_cpu(pids: list[int], seconds: float) -> tuple[float, dict[str, float]]:
    before, started = thread_cpu(pids), time.time()
    time.sleep(seconds)
    after, wall = thread_cpu(pids), time.time() - started
    return wall, {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}


def ray_floor(n: int, seconds: float) -> dict:
    """CPU per second of `n` empty async actors that receive no call."""
    import ray

    @ray.remote(num_cpus=0)
    class Idle:
        async def ping(self) -> int:
            return os.getpid()

    actors = [Idle.remote() for _ in range(n)]
    pids = ray.get([a.ping.remote() for a in actors])
    time.sleep(2.0)  # past start-up
    wall, used = window_cpu(pids, seconds)
    for actor in actors:
        ray.kill(actor)
    total = sum(used.values())
    return {"actors": n, "ms_per_actor_s": total / n / wall * 1e3, "threads": used, "wall": wall}


RATE = 200  # py-spy samples per second


def profile(pid: int, seconds: float) -> list[tuple[str, float]]:
    """Where one process's Python threads are on the CPU (py-spy's samples of running
    threads, idle ones left out), by source, as fractions of all the samples the
    window could hold (the rest of the time nothing Python ran)."""
    with tempfile.NamedTemporaryFile(suffix=".txt") as out:
        subprocess.run(
            [
                _py_spy(),
                "record",
                "-p",
                str(pid),
                "-d",
                str(int(seconds)),
                "-r",
                str(RATE),
                "-f",
                "raw",
                "-o",
                out.name,
                "--nonblocking",
            ],
            check=True,
            capture_output=True,
            timeout=seconds + 30,
        )
        lines = Path(out.name).read_text().splitlines()
    by_source: collections.Counter[str] = collections.Counter()
    for line in lines:
        stack, _, count = line.rpartition(" ")
        by_source[_source(stack.split(";"))] += int(count)
    possible = RATE * int(seconds)
    return [(k, v / possible) for k, v in by_source.most_common()]


def _source(frames: list[str]) -> str:
    """The part of an island's work a stack belongs to."""
    text = ";".join(frames)
    leaf = frames[-1]
    if "rayevolve/" in leaf or ("rayevolve/" in text and "site-packages/ray" not in leaf):
        if re.search(r"\b(_stats_fields|_stats_loop|stats) \(rayevolve/", text):
            return "rayevolve: statistics"
        return "rayevolve: island logic"
    if leaf.startswith("Worker.main_loop") or "run_task_loop" in leaf:
        return "Ray: the worker's main loop (C++ under it: task loop, signal checks)"
    if "serializ" in text or "pickle" in text:
        return "Ray: (de)serialisation"
    if "site-packages/ray" in leaf or "_raylet" in leaf:
        return "Ray: Python side of calls"
    if "asyncio" in leaf or "selectors" in leaf:
        return "asyncio event loop"
    return "other"


@dataclass
class Waiting:
    islands: int
    per_actor: int
    ms_per_island_s: float
    threads: dict[str, float]  # ms per island per second, by thread name
    profile: list[tuple[str, float]]


def islands_waiting(work: Path, n: int, per_actor: int, seconds: float, server, run) -> Waiting:
    """A run of `n` islands (`per_actor` per process) whose every request waits on the
    model for longer than the measurement."""
    latency = 2 * seconds + 60.0  # start-up of n actors on few cores, then the windows
    w = Workload(n, 1, 2, n, latency_s=latency, eval_s=0.0, evaluations=n)
    processes_wanted = -(-n // per_actor)
    role = ISLAND if per_actor == 1 else HOST
    with server(n, latency) as model:
        thread = threading.Thread(
            target=lambda: run(
                w,
                model.base_url,
                work / f"waiting-{n}-{per_actor}",
                islands={"per_actor": per_actor},
                # the request must outlast the measurement, not time out and be retried
                mutation={"openai": {"max_concurrent": 4096, "timeout_s": 2 * latency}},
            ),
            daemon=True,
        )
        thread.start()
        deadline = time.time() + latency - seconds - 5.0  # the replies must not come yet
        while len(model.chat_requests()) < n and time.time() < deadline:
            time.sleep(0.5)
        if len(model.chat_requests()) < n:
            raise RuntimeError(f"only {len(model.chat_requests())} of {n} islands started waiting")
        time.sleep(2.0)  # every island has sent its request, and nothing else is due
        pids = actor_pids(role)
        assert len(pids) == processes_wanted, (len(pids), processes_wanted)
        shares = profile(pids[0], min(seconds, 10.0)) if _py_spy() else []
        wall, used = window_cpu(pids, seconds)
        thread.join()
    scale = 1e3 / n / wall
    return Waiting(
        n, per_actor, sum(used.values()) * scale, {k: v * scale for k, v in used.items()}, shares
    )


def _py_spy() -> str | None:
    """py-spy (the dev extra) beside this interpreter, or on PATH."""
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


# (islands, in_flight, islands.per_actor, evaluations): 4 and 64 islands keep the same 64
# children in flight in total (in-flight bound 42.7 eval/s, above the ideal 16)
SIDE_BY_SIDE = [(4, 16, 1, 480), (64, 1, 1, 480), (64, 1, 16, 480), (256, 1, 16, 960)]


def side_by_side(work: Path, measure, quick: bool) -> list[tuple[int, Measurement]]:
    """The settings of `SIDE_BY_SIDE` one after the other in one Ray, same resources."""
    out = []
    for islands, in_flight, per_actor, evaluations in SIDE_BY_SIDE:
        evaluations //= 2 if quick else 1
        w = Workload(islands, in_flight, 8, **TARGET, evaluations=evaluations, warmup=islands)
        name = f"islands-{islands}-per-{per_actor}"
        out.append((per_actor, measure(w, work, name, islands={"per_actor": per_actor})))
    return out


def island_cpu(m: Measurement) -> float:
    """CPU per evaluation of the processes that hold islands (actors or hosts)."""
    return sum(m.cpu_ms_per_eval.get(role, 0.0) for role in (ISLAND, HOST))


def report(floor: dict, waiting: list[Waiting], runs: list[tuple[int, Measurement]]) -> list[str]:
    lines = [
        "## Many islands",
        "",
        f"Ray's floor: {floor['actors']} empty async actors that nobody calls use "
        f"{floor['ms_per_actor_s']:.2f} ms of CPU per actor per second (the worker's main "
        "thread wakes up 100 times a second to check for signals, under the GIL).",
        "",
        "Islands waiting (each with one request held by the model), CPU per island per second:",
        "",
        "| islands | per process | ms per island per second | of which the main thread |",
        "|---|---|---|---|",
    ]
    for w in waiting:
        main = sum(v for k, v in w.threads.items() if k.startswith("main"))
        lines.append(f"| {w.islands} | {w.per_actor} | {w.ms_per_island_s:.3f} | {main:.3f} |")
    first = waiting[0]
    lines += [
        "",
        f"By thread ({first.islands} islands, one per process):",
        "",
        "| thread | ms per island per second |",
        "|---|---|",
    ]
    for name, ms in sorted(first.threads.items(), key=lambda kv: -kv[1]):
        if ms >= 0.005:
            lines.append(f"| {name} | {ms:.3f} |")
    if first.profile:
        lines += [
            "",
            f"py-spy ({RATE} samples/s, 10 s) on one waiting island's process: the share of "
            "the time a Python thread was on the CPU, by source (no rayevolve code runs while "
            "an island waits; what remains is Ray's worker loop):",
            "",
            "| source | share of the time |",
            "|---|---|",
        ]
        lines += [f"| {k} | {v:.1%} |" for k, v in first.profile]
    lines += [
        "",
        "Side by side in one Ray (W = 8, C = 16, latency 1.0 s, evaluation 0.5 s; ideal 16 eval/s):",
        "",
        "| islands | in_flight | islands per process | processes | achieved eval/s | achieved / ideal | island CPU per evaluation | all rayevolve CPU per evaluation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for per_actor, m in runs:
        w = m.workload
        procs = m.actor_counts.get(ISLAND, 0) + m.actor_counts.get(HOST, 0)
        lines.append(
            f"| {w.islands} | {w.in_flight} | {per_actor} | {procs} | {m.achieved_per_s:.2f} | "
            f"{m.ratio:.3f} | {island_cpu(m):.2f} ms | {sum(m.cpu_ms_per_eval.values()):.2f} ms |"
        )
    by = {(m.workload.islands, per_actor): m for per_actor, m in runs}
    base = by.get((4, 1))
    if base is not None:
        for key in ((64, 1), (64, 16)):
            if key in by:
                lines.append(
                    f"\nIsland CPU per evaluation, {key[0]} islands ({key[1]} per process) / "
                    f"4 islands: {island_cpu(by[key]) / island_cpu(base):.2f}x."
                )
    return lines


def main() -> None:
    import ray
    from bench import measure, server
    from workload import run

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="half the evaluations")
    parser.add_argument("--out", type=Path, default=None, help="write the section here")
    args = parser.parse_args()
    ray.init(
        num_cpus=16, include_dashboard=False, _node_ip_address="127.0.0.1", log_to_driver=False
    )
    with tempfile.TemporaryDirectory(prefix="bench-islands-") as tmp:
        section, _ = many_islands(Path(tmp), measure, server, run, args.quick)
    ray.shutdown()
    print(section)
    if args.out:
        args.out.write_text(section)


def many_islands(work: Path, measure, server, run, quick: bool):
    """Every measurement of this file: (a Markdown section, the side-by-side runs as
    (islands per process, Measurement)); `make bench` calls this."""
    floor = ray_floor(64, 10.0)
    print(f"islands: Ray's floor {floor['ms_per_actor_s']:.2f} ms/s per empty actor", flush=True)
    waiting = [islands_waiting(work, 64, k, 10.0, server, run) for k in (1, 16)]
    for w in waiting:
        print(
            f"islands: waiting, {w.per_actor} per process: {w.ms_per_island_s:.3f} ms/s per island",
            flush=True,
        )
    runs = side_by_side(work, measure, quick)
    return "\n".join(report(floor, waiting, runs)) + "\n", runs


if __name__ == "__main__":
    main()
