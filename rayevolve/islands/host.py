"""Several islands in one Ray actor process (``islands.per_actor``), each still called
like an actor of its own.

A Ray actor is a process, and every process costs CPU while it waits (Ray's worker wakes
up 100 times a second). `IslandHost` holds several `IslandActor` objects on one event
loop; `HostedIsland` is the handle the controller and the other islands use, with the
same ``island.method.remote(...)`` calls as an actor handle. Migration, restarts (Ray
restarts the host; each of its islands is rebuilt from the run log, as a restarted
island actor is) and logging are unchanged.
"""

from __future__ import annotations

import inspect

from rayevolve.islands.island import IslandActor, IslandSettings


class IslandHost:
    """The Ray actor that holds some of a run's islands."""

    def __init__(self, settings: list[IslandSettings]):
        self.islands = {s.island_id: IslandActor(s) for s in settings}

    async def call(self, island: int, method: str, *args, **kwargs):
        """`method` of island `island`, awaited if it is a coroutine."""
        result = getattr(self.islands[island], method)(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result


class HostedIsland:
    """An island inside an `IslandHost`, called as an actor handle would be:
    ``island.stats.remote()`` is ``host.call.remote(island_id, "stats")``."""

    def __init__(self, host, island: int):
        self.host = host
        self.island = island

    def __getattr__(self, method: str) -> _Method:
        if method.startswith("_"):  # pickling and copying look up dunder names
            raise AttributeError(method)
        return _Method(self.host, self.island, method)

    def __repr__(self) -> str:
        return f"HostedIsland({self.island})"


class _Method:
    def __init__(self, host, island: int, name: str):
        self.host, self.island, self.name = host, island, name

    def remote(self, *args, **kwargs):
        return self.host.call.remote(self.island, self.name, *args, **kwargs)
