"""The stop rules, without Ray: which ending is due for what the controller saw."""

from rayevolve.config import LogConfig, StopConfig
from rayevolve.run.stopping import Progress, Stop, decide

LOG = LogConfig(failure_timeout_s=60)


def progress(**kw) -> Progress:
    base = dict(evaluations=10, best=1.0, elapsed_s=5.0, islands_done=0, islands=4)
    return Progress(**{**base, **kw})


def test_going_on_until_something_is_due():
    assert decide(progress(), StopConfig(max_evaluations=100), LOG, maximize=True) is None


def test_the_budget_met_by_every_island_is_a_completed_run():
    ending = decide(
        progress(evaluations=100, islands_done=4), StopConfig(max_evaluations=100), LOG, True
    )
    assert (ending.stop, ending.reason) == (Stop.BUDGET, "max_evaluations reached")
    assert ending.stop.completed


def test_islands_that_all_ended_short_of_the_budget():
    ending = decide(
        progress(evaluations=40, islands_done=4), StopConfig(max_evaluations=100), LOG, True
    )
    assert ending.stop == Stop.ISLANDS and not ending.stop.completed


def test_target_in_the_tasks_direction_drains():
    up = decide(progress(best=2.5), StopConfig(target_score=2.5), LOG, maximize=True)
    assert up.stop == Stop.TARGET and up.drain and up.reason == "target score 2.5 reached"
    assert decide(progress(best=2.5), StopConfig(target_score=2.0), LOG, maximize=False) is None
    down = decide(progress(best=1.5), StopConfig(target_score=2.0), LOG, maximize=False)
    assert down.stop == Stop.TARGET


def test_wall_time_drains_and_is_not_completed():
    ending = decide(progress(elapsed_s=61), StopConfig(max_wall_s=60), LOG, True)
    assert ending.stop == Stop.WALL_TIME and ending.drain and not ending.stop.completed


def test_faults_come_first_and_stop_at_once():
    late = progress(log_error="disk full", log_failing_s=61, fatal="no evaluator", elapsed_s=999)
    ending = decide(late, StopConfig(max_wall_s=60), LOG, True)
    assert ending.stop == Stop.FAULT and not ending.drain and "disk full" in ending.reason
    young = progress(log_error="disk full", log_failing_s=5)
    assert decide(young, StopConfig(), LOG, True) is None  # not yet: it may heal
    fatal = decide(progress(fatal="island 0: no evaluator"), StopConfig(), LOG, True)
    assert fatal.reason == "stopped: island 0: no evaluator" and fatal.stop == Stop.FAULT
