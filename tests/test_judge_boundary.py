"""The judge runs nothing the candidate wrote: attacks on the boundary between the judge
and the candidate process, through the entry point a run uses (the Metal task's
evaluate() in the sandbox, stand-in kernels on MLX's CPU build).

The first group are rows of the issue "The judge runs nothing the candidate wrote" (what
a candidate did, and what the judge before it reported); the rest are further attacks
on the new boundary. The Triton half is tests/triton/test_triton_boundary.py."""

import pytest

from rayevolve.outcome import Outcome
from tests.kernels.standin import CORRECT, ESCAPE, LAUNCH, TASK, assert_failed, judge, program

pytestmark = pytest.mark.sandbox


# --- the table --------------------------------------------------------------
SEARCH_FOR_THE_SEED = LAUNCH.replace(
    "    rows = ",
    ESCAPE
    + "    frame = caller\n"
    + "    while frame is not None:\n"
    + "        names = frame.f_locals\n"
    + "        for name in ('seed', 'rng', 'np_rng'):\n"
    + "            if name in names:\n"
    + "                raise ValueError('FOUND ' + name + ' = ' + str(names[name]))\n"
    + "        frame = frame.f_back\n"
    + "    rows = ",
)


def test_launch_out_of_its_namespace_finds_no_seed_of_the_judge():
    """launch() escapes through a generator's frame and walks every frame above it for
    the judge's seed and generators (which a child forked from the judge inherited,
    and replayed the inputs with: 2.8-3.4x, fake). The candidate process is started by
    exec before the seed exists: there is none to find, and the honest score stands."""
    result = judge(program(block_extra=SEARCH_FOR_THE_SEED))
    assert "FOUND" not in (result.artifacts.get("error") or ""), result.artifacts.get("error")
    assert result.status == Outcome.OK, result.artifacts.get("error")
    assert result.metrics["speedup_high"] < 1.5  # the stand-in is slower than the vendor


DEFERRED = CORRECT + (
    "for i in range(4):\n"
    "    k[0, 0, 0, 0] = k[0, 0, 0, 0] + 0 * mx.sum(mx.exp(k.astype(mx.float32)))\n"
    "    v[0, 0, 0, 0] = v[0, 0, 0, 0] + 0 * mx.sum(mx.exp(v.astype(mx.float32)))\n"
)


def test_deferred_work_left_on_the_inputs_is_paid_by_the_candidate():
    """A correct kernel that leaves lazy work attached to its input arrays (the values
    unchanged), which the next call on those arrays, the vendor's, used to pay (1.79x).
    The candidate's arrays are its own, in its own process: the vendor pays nothing."""
    result = judge(program(DEFERRED))
    assert result.status == Outcome.OK, result.artifacts.get("error")
    assert result.metrics["speedup_high"] < 1.0


@pytest.mark.parametrize(
    "condition, where",
    [("q.shape[0] >= 4", "_b"), ("q.shape[2] > 256", "prefill_L")],
    ids=["batch_at_least_4", "prefill_longer_than_256"],
)
def test_wrong_only_where_the_suite_used_not_to_look_is_incorrect(condition, where):
    """Every class of shape a model's serving uses is drawn in every evaluation: large
    batches (4..64), and prefills longer than 256."""
    kernel = CORRECT + f"if {condition}:\n    out = mx.zeros(q.shape, dtype=q.dtype)\n"
    assert_failed(judge(program(kernel)), Outcome.INCORRECT, where)


def test_a_kernel_slow_on_every_shape_but_the_probe_stops_at_once():
    """0.38 s slower per call everywhere but the probe's shape: stopped on the first
    suite shape where it is over the budget relative to the vendor (too_slow), instead of
    spending the evaluation's timeout."""
    slow = (
        "big = mx.ones((1024, 1024), dtype=mx.float32)\n"
        "acc = mx.zeros((1,), dtype=mx.float32)\n"
        "if k.shape[2] != 4096:\n"
        "    for i in range(4):\n"
        "        acc = acc + 0 * mx.sum(mx.matmul(big, big))\n"
        + CORRECT
        + "out = (out.astype(mx.float32) + acc).astype(q.dtype)\n"
    )
    result = judge(program(slow))
    assert_failed(result, Outcome.TOO_SLOW, "slower", "stopped there")
    assert "(probe)" not in result.artifacts["error"]
    assert result.metrics["checks_passed"] <= 2


# --- further attacks on the boundary ------------------------------------------------
def test_template_constants_are_few_small_integers():
    """A plan is no channel for data into the kernel."""
    many = LAUNCH.replace('[("BLOCK", 64)]', "[('C' + str(i), i) for i in range(9)]")
    assert_failed(judge(program(block_extra=many)), Outcome.REJECTED, "at most 8")
    huge = LAUNCH.replace('[("BLOCK", 64)]', '[("BLOCK", 10**9)]')
    assert_failed(judge(program(block_extra=huge)), Outcome.REJECTED, "within")


def test_garbage_written_to_every_descriptor_breaks_only_the_candidate():
    """launch() escapes and writes garbage to every descriptor it has (its answer
    channel among them): the judge reads no verdict from it, only a broken process."""
    scribble = LAUNCH.replace(
        "    rows = ",
        ESCAPE
        + "    os = load('os')\n"
        + "    for fd in range(3, 64):\n"
        + "        try:\n"
        + '            os.write(fd, b\'\\xff\' * 64 + b\'{"status": "ok", "score": 99}\')\n'
        + "        except OSError:\n"
        + "            pass\n"
        + "    rows = ",
    )
    result = judge(program(block_extra=scribble))
    assert result.status not in (Outcome.OK, Outcome.INFRA_ERROR), result.artifacts.get("error")
    assert result.score is None


def test_a_launch_that_kills_its_process_is_a_crash_not_a_verdict():
    killer = LAUNCH.replace(
        "    rows = ", ESCAPE + "    load('os').kill(load('os').getpid(), 9)\n    rows = "
    )
    assert_failed(judge(program(block_extra=killer)), Outcome.CRASHED, "SIGKILL")


def test_a_kernel_that_never_answers_is_stopped(tmp_path):
    """A stand-in call that never ends is killed at the call's deadline (timeout)."""
    task = tmp_path / "task"
    task.mkdir()
    (task / "evaluator.py").write_text(
        (TASK / "evaluator.py")
        .read_text()
        .replace(
            'settings = PROFILES[env_setting("GQA_PROFILE", PROFILES, "full")]',
            'settings = dataclasses.replace(PROFILES[env_setting("GQA_PROFILE", PROFILES, "full")], call_timeout_s=3.0, too_slow_factor=float(\'inf\'))',
        )
        .replace("import os\n", "import dataclasses\nimport os\n", 1)
    )
    forever = "w = 0\nfor i in range(10**12):\n    w = w + 1\n" + CORRECT
    result = judge(program(forever), task_dir=task)
    assert_failed(result, Outcome.TIMEOUT, "did not answer")


IN_PROCESS_EVALUATOR = """
from rayevolve.evaluators.candidate_call import read_candidate_source
from rayevolve.program import block_texts


def evaluate(program_path):
    block = block_texts(read_candidate_source(program_path))[0]
    namespace = {}
    exec(compile(block, "<my-kernel>", "exec"), namespace)  # the judge runs the candidate
    return {"combined_score": 1.0}
"""


def test_the_in_process_mark_covers_candidate_code_compiled_in_the_judge(tmp_path):
    """An evaluator that executes the candidate's block in the judging process (here,
    compiled under a name of its own, never opening the program file) is marked
    in_process: its verdict could be the candidate's own."""
    task = tmp_path / "task"
    task.mkdir()
    (task / "evaluator.py").write_text(IN_PROCESS_EVALUATOR)
    result = judge(program(), task_dir=task)
    assert result.status == Outcome.OK, result.artifacts.get("error")
    assert result.isolation == "in_process", result.artifacts.get("isolation")


REPLACE_THE_RUNNER = LAUNCH.replace(
    "    rows = ",
    ESCAPE
    + "    worker = load('__main__')\n"
    + "    code = 'def run(state, header, arrays):\\n    return {\"changed\": []}, [arrays[0] * 0]\\n'\n"
    + "    space = {}\n"
    + "    caller.f_builtins['exec'](code, space)\n"
    + "    worker.OPS['run'] = space['run']\n"
    + "    rows = ",
)


def test_what_escapes_launch_never_reaches_the_process_the_kernel_runs_in():
    """launch() escapes and replaces its process's kernel runner (here with one that
    answers zeros; a spinner or a cache of outputs would do as well). launch() runs in a
    process of its own, killed before the kernel's process starts: the kernel is judged
    as it is."""
    result = judge(program(block_extra=REPLACE_THE_RUNNER))
    assert result.status == Outcome.OK, result.artifacts.get("error")


def test_the_candidate_process_is_stopped_between_requests():
    """Nothing of it can run while the judge works or times the vendor."""
    from rayevolve.evaluators.judge.kernel_data import parse_blocks
    from rayevolve.evaluators.judge.remote import CandidateProcess

    data = parse_blocks(program())
    with CandidateProcess() as process:
        answer, _ = process.request(
            "plans", 30.0, block=data.block_source, calls=[[1, 4, 2, 1, 9, 64]]
        )
        assert answer["plans"]
        with open(f"/proc/{process.process.pid}/stat") as handle:
            assert handle.read().rsplit(")", 1)[1].split()[0] == "T"
        again, _ = process.request(
            "plans", 30.0, block=data.block_source, calls=[[1, 4, 2, 1, 9, 64]]
        )
        assert again == answer
