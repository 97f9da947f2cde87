"""`HostedIsland`: an island inside an `IslandHost` is called like an actor handle."""

import pickle

from rayevolve.islands.host import HostedIsland


class RecordingHost:
    """Stands in for an `IslandHost` actor handle: records `call.remote(...)`."""

    def __init__(self):
        self.calls = []
        outer = self

        class Call:
            def remote(self, *args, **kwargs):
                outer.calls.append((args, kwargs))
                return f"ref{len(outer.calls)}"

        self.call = Call()


def test_a_hosted_island_forwards_calls_to_its_host_with_its_number():
    host = RecordingHost()
    island = HostedIsland(host, 5)
    assert island.stats.remote() == "ref1"
    island.receive_migrants.remote(["p"], 2)
    island.stop.remote(drain=False)
    assert host.calls == [
        ((5, "stats"), {}),
        ((5, "receive_migrants", ["p"], 2), {}),
        ((5, "stop"), {"drain": False}),
    ]


def test_a_hosted_island_travels_by_pickle_and_has_no_private_methods():
    island = pickle.loads(pickle.dumps(HostedIsland("host", 3)))
    assert (island.host, island.island) == ("host", 3)
    try:
        island._private  # noqa: B018
    except AttributeError:
        pass
    else:
        raise AssertionError("private names must not be forwarded")
