import numpy as np
import pytest

from rayevolve.config import MigrationConfig
from rayevolve.islands.migration import destinations, due, pick_migrants
from rayevolve.outcome import Outcome
from rayevolve.program import Program
from rayevolve.result import EvalResult
from tests.test_population import population

RNG = np.random.default_rng(0)


@pytest.mark.parametrize(
    "topology, source, expected",
    [
        ("ring", 0, [1]),
        ("ring", 4, [0]),
        ("bidirectional_ring", 0, [1, 4]),
        ("bidirectional_ring", 2, [1, 3]),
        ("complete", 2, [0, 1, 3, 4]),
    ],
)
def test_fixed_topologies(topology, source, expected):
    assert destinations(topology, source, 5, RNG) == expected


def test_two_island_bidirectional_ring_sends_once():
    assert destinations("bidirectional_ring", 0, 2, RNG) == [1]


def test_random_topology_never_sends_to_itself_and_respects_count():
    rng = np.random.default_rng(1)
    seen = set()
    for _ in range(200):
        targets = destinations("random", 2, 5, rng, random_destinations=2)
        assert len(targets) == 2 and 2 not in targets
        seen.update(targets)
    assert seen == {0, 1, 3, 4}


def test_single_island_has_no_destination():
    assert destinations("complete", 0, 1, RNG) == []


def test_unknown_topology():
    with pytest.raises(ValueError):
        destinations("star", 0, 3, RNG)


def test_due_every_interval_and_never_when_disabled():
    config = MigrationConfig(interval=10)
    assert [n for n in range(1, 35) if due(n, config)] == [10, 20, 30]
    assert not any(due(n, MigrationConfig(interval=0)) for n in range(1, 50))


def test_migrants_are_the_best_own_programs_only():
    pop = population(capacity=100, archive_size=5, features=[])

    def add(score, island):
        p = Program.create(f"x = {score}", language="python", parent=None, island=island)
        pop.add(p.with_result(EvalResult(Outcome.OK, score=score)))
        return p

    own = [add(s, 0) for s in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)]
    add(5.0, 1)  # a migrant, even the best, is not sent on
    migrants = pick_migrants(pop, rate=0.2)
    assert [m.score for m in migrants] == [0.95, 0.9]
    assert [m.score for m in pick_migrants(pop, rate=0.01)] == [0.95]
    assert own[0].id not in {m.id for m in migrants}
