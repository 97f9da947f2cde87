"""`Program` records, normalised code hashes and EVOLVE-BLOCK regions.

A program's evolvable text lies between a line containing ``EVOLVE-BLOCK-START`` and
the next line containing ``EVOLVE-BLOCK-END``, in whatever comment syntax the language
uses (``# EVOLVE-BLOCK-START`` in Python, ``// EVOLVE-BLOCK-START`` in Metal or C++).
Everything else, marker lines included, is the program's fixed *frame*: edits may not
touch it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from dataclasses import dataclass, replace

from rayevolve.result import EvalResult

START_MARKER = "EVOLVE-BLOCK-START"
END_MARKER = "EVOLVE-BLOCK-END"

LANGUAGES_BY_SUFFIX = {
    ".py": "python",
    ".metal": "metal",
    ".cpp": "cpp",
    ".cc": "cpp",
    ".cu": "cuda",
    ".c": "c",
    ".h": "c",
    ".js": "javascript",
    ".rs": "rust",
    ".go": "go",
    ".java": "java",
    ".r": "r",
    ".R": "r",
    ".jl": "julia",
    ".sh": "bash",
    ".txt": "text",  # a prompt (OpenEvolve's llm_prompt_optimization)
    ".md": "markdown",
}
C_LIKE = frozenset({"metal", "cpp", "cuda", "c", "javascript", "rust", "go", "java"})


class ProgramError(ValueError):
    """A program's EVOLVE-BLOCK markers are malformed."""


@dataclass(frozen=True)
class Region:
    """A half-open character span ``[start, end)`` of evolvable text (marker lines excluded)."""

    start: int
    end: int

    def contains(self, start: int, end: int) -> bool:
        return self.start <= start and end <= self.end


def evolve_regions(code: str) -> list[Region]:
    """Return the evolvable spans of `code`.

    A program without any marker is evolvable as a whole (one region), which is how a
    task opts out of protecting anything. Unbalanced or nested markers are an error.
    """
    regions: list[Region] = []
    open_at: int | None = None
    open_line = 0
    offset = 0
    for lineno, line in enumerate(code.splitlines(keepends=True), start=1):
        line_end = offset + len(line)
        if START_MARKER in line:
            if open_at is not None:
                raise ProgramError(
                    f"line {lineno}: {START_MARKER} inside the block opened on line {open_line}"
                )
            open_at, open_line = line_end, lineno
        elif END_MARKER in line:
            if open_at is None:
                raise ProgramError(f"line {lineno}: {END_MARKER} without a matching {START_MARKER}")
            regions.append(Region(open_at, offset))
            open_at = None
        offset = line_end
    if open_at is not None:
        raise ProgramError(f"line {open_line}: {START_MARKER} is never closed by {END_MARKER}")
    if not regions and START_MARKER not in code and END_MARKER not in code:
        return [Region(0, len(code))]
    return regions


def block_texts(code: str) -> list[str]:
    """The text of each EVOLVE-BLOCK, in order."""
    return [code[r.start : r.end] for r in evolve_regions(code)]


def frame(code: str) -> list[str]:
    """The fixed text between (and around) the blocks: what no edit may change."""
    parts, cursor = [], 0
    for region in evolve_regions(code):
        parts.append(code[cursor : region.start])
        cursor = region.end
    parts.append(code[cursor:])
    return parts


def replace_blocks(code: str, new_blocks: list[str]) -> str:
    """Return `code` with each EVOLVE-BLOCK's text swapped for `new_blocks[i]`."""
    regions = evolve_regions(code)
    if len(new_blocks) != len(regions):
        raise ValueError(f"{len(new_blocks)} block texts for {len(regions)} EVOLVE-BLOCKs")
    out, cursor = [], 0
    for region, text in zip(regions, new_blocks, strict=True):
        out.append(code[cursor : region.start])
        if text and not text.endswith("\n") and region.end < len(code):
            text += "\n"
        out.append(text)
        cursor = region.end
    out.append(code[cursor:])
    return "".join(out)


def normalise(code: str) -> str:
    """Whitespace-insensitive form used for dedup: no trailing spaces, no blank lines."""
    lines = (line.rstrip() for line in code.replace("\r\n", "\n").split("\n"))
    return "\n".join(line for line in lines if line)


def code_hash(code: str) -> str:
    """Hash of the normalised code; two programs that differ only in blank lines or
    trailing whitespace collide on purpose."""
    return hashlib.sha256(normalise(code).encode()).hexdigest()[:32]


def new_program_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Program:
    """One program of the run: a seed, a child, or a migrant copy (same id, same lineage).

    Attributes:
      id: unique id (uuid4 hex); a migrant keeps its id.
      code: full program text.
      language: ``python``, ``metal``, ...
      parent_id: id of the program it was mutated from (None for the seed).
      island: the island on which it was created (-1 for the run's seed).
      generation: parent's generation + 1 (seed: 0).
      created_at: epoch seconds at creation.
      code_hash: ``code_hash(code)``.
      result: its evaluation, once it has one.
    """

    id: str
    code: str
    language: str
    parent_id: str | None
    island: int
    generation: int
    created_at: float
    code_hash: str
    result: EvalResult | None = None

    @classmethod
    def create(
        cls,
        code: str,
        *,
        language: str,
        parent: Program | None,
        island: int,
        program_id: str | None = None,
    ) -> Program:
        return cls(
            id=program_id or new_program_id(),
            code=code,
            language=language,
            parent_id=parent.id if parent else None,
            island=island,
            generation=parent.generation + 1 if parent else 0,
            created_at=time.time(),
            code_hash=code_hash(code),
        )

    def with_result(self, result: EvalResult) -> Program:
        return replace(self, result=result)

    @property
    def score(self) -> float | None:
        return self.result.score if self.result else None

    @property
    def metrics(self) -> dict[str, float]:
        return self.result.metrics if self.result else {}
