"""Starting or attaching to Ray, turning resource dicts into actor options, and
refusing at once to run when no node could ever host an actor.

Ray leaves an actor whose resources no node has pending forever, silently; a run
that waits for an ``apple_gpu`` no Mac provides would hang. `check_feasible` looks at
the live nodes first and fails with the missing resource and how to add it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from rayevolve.config import ClusterConfig

HOW_TO_ADD = {
    "apple_gpu": (
        "start a Mac worker with: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=1 ray start "
        "--address=HEAD:6379 --resources='{\"apple_gpu\": 1}' --labels=os=macos"
    ),
    "GPU": "start a node with an NVIDIA GPU: ray start --address=HEAD:6379 --num-gpus=1",
}


def gpu_sharing(task: Mapping[str, float], mutator: Mapping[str, float]) -> str | None:
    """Why the task's evaluators could time kernels on a GPU the mutator's model uses, or
    None. Ray never gives one whole GPU to two actors; a fraction can be shared."""
    task_gpu, model_gpu = float(task.get("GPU", 0)), float(mutator.get("GPU", 0))
    if task_gpu and model_gpu and (task_gpu % 1 or model_gpu % 1):
        return (
            f"the task's evaluators ask for GPU={task_gpu:g} and the mutator for GPU={model_gpu:g}: "
            "with a fraction, Ray may put both on one GPU, and kernel timings would include the "
            "model's work. Give each a whole GPU (task.resources.GPU=1, mutation.vllm.num_gpus=1)"
        )
    return None


class InfeasibleError(RuntimeError):
    """No live node can ever satisfy some actor's resource request."""


@dataclass(frozen=True)
class ActorRequest:
    """Resources (and node labels) one actor asks for, and who it is (for the message)."""

    who: str
    resources: Mapping[str, float]
    labels: Mapping[str, str] = field(default_factory=dict)


def label_matches(wanted: str, value: str | None) -> bool:
    """Ray's label-selector syntax: ``v``, ``!v``, ``in(a, b)``, ``!in(a, b)``."""
    negated = wanted.startswith("!")
    body = wanted[1:] if negated else wanted
    if body.startswith("in(") and body.endswith(")"):
        choices = {c.strip() for c in body[3:-1].split(",")}
        hit = value in choices
    else:
        hit = value == body
    return not hit if negated else hit


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return all(label_matches(want, labels.get(key)) for key, want in selector.items())


def ray_options(resources: Mapping[str, float]) -> dict:
    """Ray actor options for a resource dict like ``{CPU: 1, apple_gpu: 1}``."""
    options: dict = {"num_cpus": float(resources.get("CPU", 0))}
    if resources.get("GPU"):
        options["num_gpus"] = float(resources["GPU"])
    custom = {k: float(v) for k, v in resources.items() if k not in ("CPU", "GPU") and v}
    if custom:
        options["resources"] = custom
    return options


def capacity(request: ActorRequest, nodes: list[dict]) -> int | None:
    """How many actors of `request` the live nodes hold at most, all at once (by their
    total resources; None: it asks for nothing, so any number)."""
    wanted = {k: v for k, v in request.resources.items() if v > 0}
    if not wanted:
        return None
    return sum(
        min(int(node["Resources"].get(k, 0) // v) for k, v in wanted.items())
        for node in _matching(_alive(nodes), request.labels)
    )


def _alive(nodes: list[dict]) -> list[dict]:
    return [n for n in nodes if n.get("Alive", n.get("alive", False))]


def _matching(nodes: list[dict], labels: Mapping[str, str]) -> list[dict]:
    return [n for n in nodes if labels_match(labels, n.get("Labels") or {})]


def check_feasible(requests: list[ActorRequest], nodes: list[dict]) -> None:
    """Raise `InfeasibleError` unless every request fits on at least one live node."""
    alive = _alive(nodes)
    problems = []
    for request in requests:
        wanted = {k: v for k, v in request.resources.items() if v > 0}
        labelled = _matching(alive, request.labels)
        if any(all(n["Resources"].get(k, 0) >= v for k, v in wanted.items()) for n in labelled):
            continue
        missing = sorted(
            k for k, v in wanted.items() if not any(n["Resources"].get(k, 0) >= v for n in labelled)
        )
        if request.labels and not labelled:
            detail = f"no live node has the labels {dict(request.labels)}"
        elif not missing:
            missing = sorted(wanted)
            detail = "no single node has all of them together" + (
                f" (among nodes labelled {dict(request.labels)})" if request.labels else ""
            )
        else:
            detail = "no live node has " + ", ".join(f"{k} >= {wanted[k]:g}" for k in missing)
            if request.labels:
                detail += f" and the labels {dict(request.labels)}"
        hints = [HOW_TO_ADD[k] for k in missing if k in HOW_TO_ADD]
        available = "; ".join(
            ", ".join(
                f"{k}={v:g}"
                for k, v in sorted(n["Resources"].items())
                if not k.startswith("node:") and k not in ("memory", "object_store_memory")
            )
            for n in alive
        )
        problems.append(
            f"{request.who} needs {dict(wanted)}: {detail}. "
            + (" To add one, " + "; ".join(hints) + "." if hints else "")
            + f" Nodes now: [{available}]"
        )
    if problems:
        raise InfeasibleError("the cluster cannot run this job:\n  - " + "\n  - ".join(problems))


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """Fail in seconds, not minutes, when HOST:PORT does not answer (Ray retries long)."""
    import socket

    if address == "auto" or "://" in address or ":" not in address:
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout_s).close()
    except (OSError, ValueError) as exc:
        raise ConnectionError(
            f"cannot attach to the Ray cluster at cluster.address={address!r}: nothing answers there "
            f"({exc}). Start one with `ray start --head` on that machine (port 6379 by default), fix "
            "the address, or leave cluster.address unset to run on a local instance."
        ) from None


def connect(config: ClusterConfig) -> dict:
    """Start a local Ray instance or attach to `config.address`; returns init info."""
    import ray

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return {"address": "already-initialized"}
    kwargs: dict = {
        "namespace": config.namespace,
        "include_dashboard": False,
        "log_to_driver": True,
    }
    from rayevolve.jobs import in_ray_job

    if config.address is None and in_ray_job():  # a submitted job joins its own cluster
        return {"address": ray.init(address="auto", **kwargs).address_info.get("address", "")}
    if config.address:
        _probe(config.address)
        try:
            context = ray.init(address=config.address, **kwargs)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ConnectionError(
                f"cannot attach to the Ray cluster at cluster.address={config.address!r}: {exc}. "
                "Start one with `ray start --head` (or fix the address), or leave cluster.address "
                "unset to run on a local instance."
            ) from exc
    else:
        context = ray.init(
            address="local",  # never silently join another Ray running on this machine
            num_cpus=config.num_cpus,
            resources=dict(config.resources) or None,
            _node_ip_address="127.0.0.1",
            **kwargs,
        )
    return {"address": context.address_info.get("address", "")}


def actor_was_restarted() -> bool:
    """Inside an actor: whether Ray restarted it after a crash (its state is gone)."""
    import warnings

    import ray

    with warnings.catch_warnings():  # Ray's own property trips its deprecation warning
        warnings.simplefilter("ignore", DeprecationWarning)
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def remote_error(exc: BaseException) -> str:
    """What a failed remote call raised, as its own message: never Ray's remote
    traceback, never colour codes (for messages a user reads and logs keep)."""
    cause = getattr(exc, "cause", None)
    if cause is None:
        return _ANSI.sub("", str(exc))
    text = _ANSI.sub("", str(cause)).strip()
    return text or type(cause).__name__


def creation_error(exc: BaseException) -> str | None:
    """The one-line reason an actor's ``__init__`` failed, from the error Ray raises at
    its first call (whose message is a colourised remote traceback); None for any other
    error."""
    if not getattr(exc, "actor_init_failed", False):
        return None
    text = _ANSI.sub("", str(getattr(exc, "error_msg", "") or exc))
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for line in reversed(lines):
        name, sep, message = line.partition(": ")
        if sep and re.fullmatch(r"[\w.]*(Error|Exception|Unavailable)", name):
            return message
    return lines[-1] if lines else type(exc).__name__
