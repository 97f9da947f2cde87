"""Prompt rendering: parent, feedback, inspirations, format, overrides, truncation."""

import json

import pytest

from rayevolve.config import PromptConfig
from rayevolve.mutation.prompts import (
    PromptBuilder,
    PromptContext,
    PromptError,
    gather_templates,
    truncate,
)
from rayevolve.outcome import Outcome
from rayevolve.paths import PROMPTS_DIR
from rayevolve.program import Program
from rayevolve.result import EvalResult

PARENT = """import math
# EVOLVE-BLOCK-START
def knobs():
    return 120, 0.05
# EVOLVE-BLOCK-END
print(knobs())
"""
METAL = """// fixed
// EVOLVE-BLOCK-START
kernel void k(device float* o [[buffer(0)]]) { o[0] = 1.0f; }
// EVOLVE-BLOCK-END
"""


def context(templates=None, language="python", maximize=True, **settings):
    return PromptContext(
        task_name="demo",
        description="Make the number large.",
        language=language,
        maximize=maximize,
        templates=templates or gather_templates({}, None),
        settings=PromptConfig(**settings),
    )


def program(code=PARENT, status=Outcome.OK, score=1.5, **artifacts):
    p = Program.create(code, language="python", parent=None, island=0)
    metrics = {"combined_score": score, "speed": 2.0} if score is not None else {}
    return p.with_result(EvalResult(status, score=score, metrics=metrics, artifacts=artifacts))


def test_diff_prompt_holds_task_parent_metrics_and_format():
    prompt = PromptBuilder(context()).build(program(), [], "diff")
    system, user = (m["content"] for m in prompt.messages)
    assert [m["role"] for m in prompt.messages] == ["system", "user"]
    assert "Make the number large." in system and "higher is better" in system
    assert "<<<<<<< SEARCH" in system and "# EVOLVE-BLOCK-START" in system
    assert PARENT.strip() in user and "```python" in user
    assert "speed: 2" in user and "Score: 1.5" in user
    assert "combined_score:" not in user  # shown once, as the score


def test_rewrite_prompt_and_short_programs_get_rewrites():
    builder = PromptBuilder(context(rewrite_below_chars=100))
    assert builder.mode_for(program(), "diff") == "rewrite"  # blocks are ~40 characters
    assert PromptBuilder(context()).mode_for(program(), "diff") == "diff"
    prompt = builder.build(program(), [], "rewrite")
    assert "complete new program" in prompt.messages[0]["content"]
    assert "SEARCH" not in prompt.messages[0]["content"]


def test_failed_parent_shows_truncated_feedback_head_and_tail():
    log = "line\n" * 5000 + "error: the real cause"
    parent = program(status=Outcome.COMPILE_ERROR, score=None, stderr="warning: first\n" + log)
    prompt = PromptBuilder(context(max_feedback_chars=500)).build(parent, [], "diff")
    user = prompt.messages[1]["content"]
    assert "Status: compile_error" in user and "Fix the cause" in user
    assert "warning: first" in user and "error: the real cause" in user
    assert "characters" in user and "cut" in user
    assert len(user) < len(PARENT) + 3000


def test_inspirations_show_blocks_only_and_skip_the_parent():
    other = program(PARENT.replace("120", "240"), score=2.5)
    prompt = PromptBuilder(context()).build(program(), [program(), other], "diff")
    user = prompt.messages[1]["content"]
    assert "return 240, 0.05" in user and "score 2.5" in user
    assert user.count("print(knobs())") == 1  # the frame is shown once, with the parent
    assert user.count("return 120, 0.05") == 1


def test_language_and_direction_follow_the_task():
    p = Program.create(METAL, language="metal", parent=None, island=0)
    prompt = PromptBuilder(context(language="metal", maximize=False)).build(p, [], "diff")
    system, user = (m["content"] for m in prompt.messages)
    assert "// EVOLVE-BLOCK-START" in system and "lower is better" in system
    assert "```metal" in user and "not evaluated" in user


def test_system_message_is_a_shared_prefix():
    builder = PromptBuilder(context())
    a = builder.build(program(), [], "diff")
    b = builder.build(program(PARENT.replace("120", "7"), score=3.0), [], "diff")
    assert a.messages[0] == b.messages[0] and a.hash != b.hash
    assert json.loads(a.text) == list(a.messages)


def test_repair_continues_the_conversation_with_the_error():
    builder = PromptBuilder(context())
    prompt = builder.build(program(), [], "diff")
    repaired = builder.repair(prompt, "bad reply", "search_not_found", "edit 1: not found")
    assert [m["role"] for m in repaired.messages] == ["system", "user", "assistant", "user"]
    assert repaired.messages[2]["content"] == "bad reply"
    assert "search_not_found" in repaired.messages[3]["content"]
    assert "edit 1: not found" in repaired.messages[3]["content"]


def test_task_and_dir_overrides_win_per_file(tmp_path):
    (tmp_path / "user.jinja").write_text("USER DIR {{ parent.score }}")
    (tmp_path / "system.jinja").write_text("SYSTEM DIR")
    task_files = {"prompts/system.jinja": b"SYSTEM TASK {{ task_name }}", "evaluator.py": b""}
    templates = gather_templates(task_files, tmp_path)
    assert templates["repair.jinja"] == (PROMPTS_DIR / "repair.jinja").read_text()
    prompt = PromptBuilder(context(templates)).build(program(), [], "diff")
    assert [m["content"] for m in prompt.messages] == ["SYSTEM TASK demo", "USER DIR 1.5"]


def test_guidance_file_is_included_when_a_task_has_one():
    templates = gather_templates({"prompts/guidance.jinja": b"Use simdgroup reductions."}, None)
    prompt = PromptBuilder(context(templates)).build(program(), [], "diff")
    assert "Use simdgroup reductions." in prompt.messages[0]["content"]


def test_broken_templates_are_clear_errors(tmp_path):
    with pytest.raises(PromptError, match="not found"):
        gather_templates({}, None, defaults_dir=tmp_path)
    bad = {**gather_templates({}, None), "user.jinja": "{{ parent.nope }}"}
    with pytest.raises(PromptError, match="user.jinja"):
        PromptBuilder(context(bad)).build(program(), [], "diff")
    broken = {**gather_templates({}, None), "system.jinja": "{% if %}"}
    with pytest.raises(PromptError, match="system.jinja"):
        PromptBuilder(context(broken))


def test_truncate_keeps_short_text_and_both_ends():
    assert truncate("abc", 10) == "abc"
    cut = truncate("A" * 100 + "B" * 100, 60)
    assert cut.startswith("A" * 20) and cut.endswith("B" * 40) and "cut" in cut


def test_the_metal_task_brings_its_own_guidance():
    from rayevolve.config import TaskConfig
    from rayevolve.tasks import load_task
    from tests.conftest import ROOT

    task = load_task(TaskConfig(name="gqa", path="kernels/metal/gqa_attention"), [ROOT])
    ctx = PromptContext(
        task.name,
        task.description,
        task.language,
        task.maximize,
        gather_templates(task.files, None),
    )
    seed = Program.create(task.initial_code, language=task.language, parent=None, island=-1)
    system, user = (m["content"] for m in PromptBuilder(ctx).build(seed, [], "diff").messages)
    assert "Metal kernel guidance" in system and "simd_sum" in system
    assert "mx.fast.scaled_dot_product_attention" in system  # the task's README
    assert "KERNEL_SOURCE" in user
