"""Where an actor runs: its node, a host name that differs between nodes, its IP and
process. Every actor of a run reports it at start and the run logs one ``placement``
event per actor; evaluator rows carry the same host name.

Several Ray nodes can share one machine (a loopback test cluster, a workstation with a
"Mac" node beside the head), so the machine's hostname alone does not tell them apart:
`host_labels` adds the node's name (``ray start --node-name``) when it has one, and a
short node id when two live nodes still read the same.
"""

from __future__ import annotations

import os
import socket
from collections import Counter
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Placement:
    """Where one process runs.

    Attributes:
      node_id: Ray's node id (hex).
      host: a name for the node, distinct between the cluster's live nodes.
      ip: the node's address as Ray knows it.
      pid: the process id on that node.
    """

    node_id: str
    host: str
    ip: str
    pid: int

    def to_payload(self) -> dict:
        return asdict(self)


def host_labels(nodes: list[dict]) -> dict[str, str]:
    """Node id -> a host name per live node (``ray.nodes()`` entries): the hostname, then
    ``/NODE_NAME`` when the node was given a name other than its address, then
    ``#<node id prefix>`` when two live nodes would still read the same."""
    alive = [n for n in nodes if n.get("Alive", n.get("alive", False))]
    base = {}
    for node in alive:
        hostname = node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "?"
        name = node.get("NodeName") or ""
        named = name and name not in (hostname, node.get("NodeManagerAddress"))
        base[node["NodeID"]] = f"{hostname}/{name}" if named else hostname
    repeated = Counter(base.values())
    return {
        node_id: label if repeated[label] == 1 else f"{label}#{node_id[:6]}"
        for node_id, label in base.items()
    }


def here() -> Placement:
    """This process's placement (inside a Ray worker or driver)."""
    import ray

    node_id = ray.get_runtime_context().get_node_id()
    nodes = ray.nodes()
    mine = next((n for n in nodes if n.get("NodeID") == node_id), {})
    return Placement(
        node_id=node_id,
        host=host_labels(nodes).get(node_id, socket.gethostname()),
        ip=mine.get("NodeManagerAddress") or ray.util.get_node_ip_address(),
        pid=os.getpid(),
    )
