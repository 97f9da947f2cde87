import pytest

from rayevolve.program import (
    Program,
    ProgramError,
    block_texts,
    code_hash,
    evolve_regions,
    frame,
    replace_blocks,
)

CODE = "import x\n# EVOLVE-BLOCK-START\na = 1\n# EVOLVE-BLOCK-END\nmid()\n// EVOLVE-BLOCK-START\nb = 2\nc = 3\n// EVOLVE-BLOCK-END\nend()\n"


def test_regions_exclude_marker_lines_in_any_comment_syntax():
    assert block_texts(CODE) == ["a = 1\n", "b = 2\nc = 3\n"]
    assert frame(CODE)[1] == "# EVOLVE-BLOCK-END\nmid()\n// EVOLVE-BLOCK-START\n"


def test_program_without_markers_is_one_block():
    assert block_texts("x = 1\n") == ["x = 1\n"]


@pytest.mark.parametrize(
    "code, message",
    [
        ("# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-START\n# EVOLVE-BLOCK-END\n", "inside the block"),
        ("a\n# EVOLVE-BLOCK-END\n", "without a matching"),
        ("# EVOLVE-BLOCK-START\na\n", "never closed"),
    ],
)
def test_malformed_markers_are_refused_with_line_numbers(code, message):
    with pytest.raises(ProgramError, match=message):
        evolve_regions(code)


def test_replace_blocks_keeps_the_frame():
    new = replace_blocks(CODE, ["a = 10\n", "b = 20\n"])
    assert block_texts(new) == ["a = 10\n", "b = 20\n"]
    assert frame(new) == frame(CODE)
    with pytest.raises(ValueError):
        replace_blocks(CODE, ["only one"])


def test_code_hash_ignores_blank_lines_and_trailing_space_only():
    assert code_hash("a = 1\n\n\nb = 2  \n") == code_hash("a = 1\nb = 2")
    assert code_hash("a = 1\nb = 2") != code_hash("a = 1\nb = 3")
    assert code_hash("a = 1") != code_hash("  a = 1")  # indentation is meaningful


def test_child_lineage():
    seed = Program.create("x = 1", language="python", parent=None, island=-1)
    child = Program.create("x = 2", language="python", parent=seed, island=3)
    assert (child.parent_id, child.generation, child.island) == (seed.id, 1, 3)
    assert seed.generation == 0 and seed.parent_id is None
