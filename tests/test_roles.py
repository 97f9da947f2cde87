"""Actor names are a contract (tests, `ray.get_actor` by users): one function builds them."""

from rayevolve.roles import Role, actor_name, member


def test_actor_names():
    assert actor_name("run", Role.RUNLOG) == "run:runlog"
    assert actor_name("run", Role.ISLAND, 3) == "run:island-3"
    assert actor_name("run", member(Role.EVALUATOR, 2)) == "run:evaluator-2"
