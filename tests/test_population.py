from collections import Counter

import numpy as np
import pytest

from rayevolve.config import FeatureConfig, SelectionConfig
from rayevolve.islands.features import bin_index
from rayevolve.islands.population import Population
from rayevolve.outcome import Outcome
from rayevolve.result import EvalResult


def prog(score, *, island=0, metrics=None, code=None, status=Outcome.OK):
    from rayevolve.program import Program

    p = Program.create(
        code or f"x = {score!r}  # {np.random.rand()}",
        language="python",
        parent=None,
        island=island,
    )
    if status == Outcome.OK:
        return p.with_result(EvalResult(Outcome.OK, score=score, metrics=metrics or {"m": score}))
    return p.with_result(EvalResult.failure(status, "failed"))


def population(**kw):
    defaults = dict(
        island=0,
        capacity=10,
        archive_size=3,
        features=[FeatureConfig(name="m", min=0.0, max=1.0, bins=4)],
        selection=SelectionConfig(),
        maximize=True,
        rng=np.random.default_rng(0),
    )
    defaults.update(kw)
    return Population(**defaults)


def test_bin_index_clips_to_the_grid():
    f = FeatureConfig(name="m", min=0.0, max=1.0, bins=4)
    assert [bin_index(v, f) for v in (-5, 0.0, 0.26, 0.99, 1.0, 7)] == [0, 0, 1, 3, 3, 3]


def test_only_scored_unique_programs_enter():
    pop = population()
    assert pop.add(prog(0.5, code="a")).added
    assert pop.add(prog(0.6, code="a\n\n")).reason == "duplicate"  # same normalised code
    assert pop.add(prog(None, status=Outcome.TIMEOUT)).reason == "no_score"
    assert len(pop) == 1


def test_map_elites_cell_keeps_its_best_program_as_champion():
    pop = population(capacity=100)
    low, high = prog(0.30, metrics={"m": 0.30}), prog(0.45, metrics={"m": 0.45})
    pop.add(low)
    pop.add(high)  # same cell (bin 1)
    assert [c.id for c in pop.champions()] == [high.id]
    other = prog(0.1, metrics={"m": 0.9})
    pop.add(other)
    assert {c.id for c in pop.champions()} == {high.id, other.id}


def test_capacity_evicts_worst_unprotected_and_keeps_elites_and_champions():
    pop = population(capacity=4, archive_size=2)
    lonely = prog(0.01, metrics={"m": 0.95})  # worst score, but the only one in its cell
    pop.add(lonely)
    for s in (0.30, 0.31, 0.32, 0.33, 0.34, 0.35):
        pop.add(prog(s, metrics={"m": 0.3}))
    assert len(pop) == 4
    assert lonely.id in pop
    scores = sorted(p.score for p in pop.programs())
    assert scores == [0.01, 0.33, 0.34, 0.35]


def test_new_best_and_minimisation():
    pop = population(maximize=False)
    assert pop.add(prog(5.0)).new_best
    assert not pop.add(prog(7.0)).new_best
    assert pop.add(prog(1.0)).new_best
    assert pop.best().score == 1.0


def test_exploit_only_selects_from_the_archive():
    pop = population(
        capacity=50, archive_size=2, selection=SelectionConfig(exploit=1.0, explore=0.0, random=0.0)
    )
    for s in np.linspace(0.1, 0.9, 9):
        pop.add(prog(float(s)))
    picks = {pop.select_parent().score for _ in range(200)}
    assert picks == {0.8, 0.9}


def test_explore_draws_uniformly_over_cells_not_programs():
    pop = population(capacity=100, selection=SelectionConfig(exploit=0.0, explore=1.0, random=0.0))
    crowded = [prog(0.1 + i / 1000, metrics={"m": 0.1}) for i in range(20)]
    for p in crowded:
        pop.add(p)
    rare = prog(0.05, metrics={"m": 0.9})
    pop.add(rare)
    counts = Counter(pop.select_parent().id == rare.id for _ in range(400))
    assert 140 < counts[True] < 260  # about half: two cells, one champion each


def test_tournament_of_the_whole_population_picks_the_best():
    pop = population(selection=SelectionConfig(kind="tournament", tournament_size=100))
    for s in (0.1, 0.7, 0.4):
        pop.add(prog(s))
    assert pop.select_parent().score == 0.7


def test_inspirations_exclude_parent_and_mix_top_and_diverse():
    pop = population(
        capacity=100,
        archive_size=5,
        selection=SelectionConfig(num_top_inspirations=2, num_diverse_inspirations=1),
    )
    programs = [prog(0.1 * i + 0.05, metrics={"m": 0.1 * i + 0.05}) for i in range(8)]
    for p in programs:
        pop.add(p)
    parent = pop.best()
    chosen = pop.inspirations(parent)
    assert parent.id not in {p.id for p in chosen}
    assert len(chosen) == 3
    assert [p.score for p in chosen[:2]] == sorted((p.score for p in programs), reverse=True)[1:3]


def test_select_from_empty_population_is_an_error():
    with pytest.raises(LookupError):
        population().select_parent()


def test_missing_feature_metric_names_the_available_ones():
    pop = population(features=[FeatureConfig(name="speed", min=0, max=1, bins=2)])
    with pytest.raises(KeyError, match="speed.*m"):
        pop.add(prog(0.5))


def test_migrants_are_not_counted_as_own():
    pop = population(capacity=100)
    own, foreign = prog(0.2), prog(0.9, island=3)
    pop.add(own)
    pop.add(foreign)
    assert [p.id for p in pop.ranked(own_only=True)] == [own.id]
    assert pop.stats().migrants == 1
