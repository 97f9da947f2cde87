import random

import pytest

from rayevolve.edits import (
    EditError,
    SearchReplace,
    apply_diff,
    apply_reply,
    make_diff,
    parse_diff,
    parse_rewrite,
    render_diff,
)
from rayevolve.outcome import MutationFailure
from rayevolve.program import block_texts

PARENT = """import math

# EVOLVE-BLOCK-START
def f(x):
    a = 1
    b = 2
    return a * x + b
# EVOLVE-BLOCK-END

def main():
    return f(3)
"""


def diff(search, replace):
    return render_diff([SearchReplace(search, replace)])


def test_diff_inside_block_applies():
    child = apply_reply(PARENT, diff("    a = 1", "    a = 5"), "diff")
    assert "a = 5" in child and child.replace("a = 5", "a = 1") == PARENT


def test_multiple_blocks_and_surrounding_prose_are_parsed():
    reply = (
        "I will change two things.\n"
        + diff("    a = 1", "    a = 4")
        + "\nand\n"
        + diff("    b = 2", "    b = 7")
        + "\nDone."
    )
    edits = parse_diff(reply)
    assert [e.replace for e in edits] == ["    a = 4", "    b = 7"]
    assert "b = 7" in apply_diff(PARENT, edits)


def test_trailing_whitespace_differences_are_forgiven():
    child = apply_reply(PARENT, diff("    a = 1   \n    b = 2", "    a = 0\n    b = 0"), "diff")
    assert "a = 0" in child and "b = 0" in child


def test_deletion_with_empty_replace():
    child = apply_reply(PARENT, "<<<<<<< SEARCH\n    b = 2\n=======\n>>>>>>> REPLACE", "diff")
    assert "b = 2" not in child


@pytest.mark.parametrize(
    "reply, kind",
    [
        ("", MutationFailure.EMPTY_REPLY),
        ("   \n", MutationFailure.EMPTY_REPLY),
        ("I think the code is fine.", MutationFailure.NO_EDIT_PARSED),
        (
            "<<<<<<< SEARCH\n    a = 1\n=======\n    a = 2\n",
            MutationFailure.NO_EDIT_PARSED,
        ),  # truncated
        (diff("    q = 9", "    q = 1"), MutationFailure.SEARCH_NOT_FOUND),
        (diff("    return f(3)", "    return f(4)"), MutationFailure.OUTSIDE_EVOLVE_BLOCK),
        (diff("import math", "import os"), MutationFailure.OUTSIDE_EVOLVE_BLOCK),
        (
            diff("    return a * x + b\n# EVOLVE-BLOCK-END", "    return 0\n# EVOLVE-BLOCK-END"),
            MutationFailure.OUTSIDE_EVOLVE_BLOCK,
        ),
        (diff("    a = 1", "    a = 1"), MutationFailure.NO_CHANGE),
        (diff("    a = 1", "# EVOLVE-BLOCK-END\n    a = 1"), MutationFailure.OUTSIDE_EVOLVE_BLOCK),
    ],
)
def test_bad_replies_are_classified(reply, kind):
    with pytest.raises(EditError) as info:
        apply_reply(PARENT, reply, "diff")
    assert info.value.kind == kind
    assert info.value.message


def test_search_that_occurs_outside_and_inside_uses_the_inside_one():
    parent = "x = 1\n# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n"
    child = apply_reply(parent, diff("x = 1", "x = 2"), "diff")
    assert child == "x = 1\n# EVOLVE-BLOCK-START\nx = 2\n# EVOLVE-BLOCK-END\n"


def test_rewrite_keeps_parent_frame_and_takes_new_blocks():
    new = PARENT.replace("a = 1", "a = 9").replace("def main():", "def main():  ")
    reply = f"Here it is:\n```python\n{new}```\n"
    child = apply_reply(PARENT, reply, "rewrite", "python")
    assert "a = 9" in child
    assert "def main():\n" in child  # frame comes from the parent byte for byte


def test_rewrite_that_changes_the_frame_is_refused():
    new = PARENT.replace("return f(3)", "return 42")
    with pytest.raises(EditError) as info:
        apply_reply(PARENT, f"```python\n{new}```", "rewrite", "python")
    assert info.value.kind == MutationFailure.OUTSIDE_EVOLVE_BLOCK
    assert "return 42" in info.value.message


def test_rewrite_prefers_the_fence_of_the_language():
    reply = (
        "```text\nnot code at all, but longer than the program itself " * 3
        + "\n```\n```python\nx = 1\n```"
    )
    assert parse_rewrite(reply, "python") == "x = 1\n"


def test_rewrite_with_unclosed_fence_is_truncated():
    with pytest.raises(EditError) as info:
        parse_rewrite("```python\nx = 1\n", "python")
    assert info.value.kind == MutationFailure.NO_EDIT_PARSED


@pytest.mark.parametrize("seed", range(25))
def test_make_diff_round_trips_random_block_edits(seed):
    rng = random.Random(seed)
    lines = [f"v{rng.randint(0, 4)} = {rng.randint(0, 3)}" for _ in range(12)]  # many repeats
    parent = "head()\n# EVOLVE-BLOCK-START\n" + "\n".join(lines) + "\n# EVOLVE-BLOCK-END\ntail()\n"
    new_lines = list(lines)
    for _ in range(rng.randint(1, 4)):
        i = rng.randrange(len(new_lines))
        new_lines[i] = f"v{rng.randint(0, 4)} = {rng.randint(4, 9)}"
    child = (
        "head()\n# EVOLVE-BLOCK-START\n" + "\n".join(new_lines) + "\n# EVOLVE-BLOCK-END\ntail()\n"
    )
    if child == parent:
        return
    assert apply_reply(parent, make_diff(parent, child), "diff") == child
    assert block_texts(child)[0].count("\n") == 12
