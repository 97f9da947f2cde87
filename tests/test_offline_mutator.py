import asyncio
import random

import pytest

from rayevolve.config import OfflineMutationConfig
from rayevolve.edits import apply_reply
from rayevolve.mutation.base import MutationRequest
from rayevolve.mutation.offline import MutationUnavailable, OfflineBackend, code_mask, find_literals
from rayevolve.outcome import Outcome
from rayevolve.program import Program, block_texts, frame
from rayevolve.result import EvalResult

PARENT = '''import numpy as np
SIZE = 100  # outside: never touched
# EVOLVE-BLOCK-START
def knobs():
    """Docstring with 42 in it."""
    steps = 120  # comment 7
    rate = 0.05
    name = "v2 of 3"
    return steps, rate, name
# EVOLVE-BLOCK-END
print(SIZE, 3.5)
'''


def program(code=PARENT, score=1.0):
    p = Program.create(code, language="python", parent=None, island=0)
    return p.with_result(EvalResult(Outcome.OK, score=score))


def test_literals_in_comments_strings_and_docstrings_are_ignored():
    block = block_texts(PARENT)[0]
    assert [lit.text for lit in find_literals(block, "python")] == ["120", "0.05"]


def test_c_like_masking_and_suffixes():
    src = 'float a = 1.5f; // 2\nuint n = 256u; /* 3 */ char s[] = "4"; int k = tid * 32;'
    assert [lit.text for lit in find_literals(src, "metal")] == ["1.5", "256", "32"]
    assert code_mask("x # y", "python") == [True, True, False, False, False]


@pytest.mark.parametrize("seed", range(30))
def test_perturbation_changes_only_block_literals(seed):
    backend = OfflineBackend(OfflineMutationConfig(crossover_literals=0, crossover_block=0))
    child = backend.perturb(PARENT, "python", random.Random(seed))
    assert child != PARENT
    assert frame(child) == frame(PARENT)
    before, after = block_texts(PARENT)[0], block_texts(child)[0]
    strip = lambda text: [t for t in text.replace("(", " ").split() if not t[0].isdigit()]  # noqa: E731
    assert strip(before) == strip(after)  # only numbers differ
    steps = int(after.split("steps = ")[1].split()[0])
    assert steps >= 0  # non-negative integers stay non-negative


def test_literal_crossover_mixes_values_of_same_structure():
    other = PARENT.replace("steps = 120", "steps = 999").replace("rate = 0.05", "rate = 0.5")
    backend = OfflineBackend(OfflineMutationConfig())
    children = {
        backend.crossover_literals(PARENT, other, "python", random.Random(s)) for s in range(20)
    }
    assert children == {
        PARENT.replace("steps = 120", "steps = 999"),
        PARENT.replace("rate = 0.05", "rate = 0.5"),
    }


def test_literal_crossover_refuses_different_structure():
    other = PARENT.replace("rate = 0.05", "rate = 0.05 * 2")
    assert (
        OfflineBackend(OfflineMutationConfig()).crossover_literals(
            PARENT, other, "python", random.Random(0)
        )
        is None
    )


def test_block_crossover_takes_one_whole_block():
    two = "# EVOLVE-BLOCK-START\na = 1\n# EVOLVE-BLOCK-END\nmid\n# EVOLVE-BLOCK-START\nb = 1\n# EVOLVE-BLOCK-END\n"
    other = two.replace("a = 1", "a = 2 + 2").replace("b = 1", "b = 3 + 3")
    child = OfflineBackend(OfflineMutationConfig()).crossover_block(two, other, random.Random(0))
    assert block_texts(child) in (["a = 2 + 2\n", "b = 1\n"], ["a = 1\n", "b = 3 + 3\n"])


def test_no_literal_means_no_mutation():
    bare = "# EVOLVE-BLOCK-START\nreturn x\n# EVOLVE-BLOCK-END\n"
    with pytest.raises(MutationUnavailable):
        OfflineBackend(OfflineMutationConfig()).perturb(bare, "python", random.Random(0))


@pytest.mark.parametrize("mode", ["diff", "rewrite"])
def test_replies_parse_back_to_the_child_and_are_reproducible(mode):
    backend = OfflineBackend(OfflineMutationConfig())
    request = MutationRequest(
        parent=program(), inspirations=(), island=0, mode=mode, seed=1234, num_samples=3
    )
    first = asyncio.run(backend.complete(request))
    again = asyncio.run(backend.complete(request))
    assert [c.text for c in first] == [c.text for c in again]
    assert len(first) == 3
    for completion in first:
        child = apply_reply(PARENT, completion.text, mode, "python")
        assert child != PARENT and frame(child) == frame(PARENT)


def test_a_draw_that_rounds_back_to_the_parent_is_redrawn():
    parent = "# EVOLVE-BLOCK-START\nx = 0.5\n# EVOLVE-BLOCK-END\n"
    backend = OfflineBackend(OfflineMutationConfig(float_sigma=1e-9))  # always rounds back
    with pytest.raises(MutationUnavailable, match="unchanged"):
        backend.mutate(parent, [], "python", random.Random(0))
    child, _ = OfflineBackend(OfflineMutationConfig()).mutate(
        parent, [], "python", random.Random(0)
    )
    assert child != parent
