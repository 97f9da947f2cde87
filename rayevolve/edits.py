"""Parse model replies into edits and apply them, enforcing EVOLVE-BLOCKs.

Two edit forms exist:

* **diff**: one or more ``<<<<<<< SEARCH / ======= / >>>>>>> REPLACE`` blocks. Each SEARCH
  text must occur inside a single EVOLVE-BLOCK of the current program; the first such
  occurrence is replaced. Trailing whitespace differences are forgiven.
* **rewrite**: a whole new program (usually in a fenced code block). Its fixed frame
  (everything outside the blocks, markers included) must match the parent's, up to
  whitespace; the child is then the parent's frame with the rewrite's block texts.

Unlike OpenEvolve, where the markers are only hints, an edit that would change code
outside the blocks is refused with `EditError(OUTSIDE_EVOLVE_BLOCK)`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from rayevolve.outcome import MutationFailure
from rayevolve.program import (
    END_MARKER,
    START_MARKER,
    ProgramError,
    block_texts,
    evolve_regions,
    frame,
    normalise,
    replace_blocks,
)


class EditError(Exception):
    """A reply that cannot become a child program; `kind` classifies it for the log."""

    def __init__(self, kind: MutationFailure, message: str):
        super().__init__(message)
        self.kind = kind
        self.message = message


class EditMode(StrEnum):
    DIFF = "diff"
    REWRITE = "rewrite"


@dataclass(frozen=True)
class SearchReplace:
    search: str
    replace: str


_DIFF_RE = re.compile(
    r"^[ \t]*<{7,}[ \t]*SEARCH[ \t]*\n(.*?)\n?^[ \t]*={7,}[ \t]*\n(.*?)\n?^[ \t]*>{7,}[ \t]*REPLACE[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
_FENCE_RE = re.compile(r"^```[ \t]*([\w+-]*)[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


def parse_diff(reply: str) -> list[SearchReplace]:
    """All SEARCH/REPLACE blocks in `reply`, in order."""
    if not reply or not reply.strip():
        raise EditError(MutationFailure.EMPTY_REPLY, "the reply is empty")
    edits = [SearchReplace(m.group(1), m.group(2)) for m in _DIFF_RE.finditer(reply)]
    if not edits:
        hint = (
            " (a SEARCH block is opened but never closed: truncated reply?)"
            if "SEARCH" in reply
            else ""
        )
        raise EditError(
            MutationFailure.NO_EDIT_PARSED,
            "no '<<<<<<< SEARCH / ======= / >>>>>>> REPLACE' block found" + hint,
        )
    for i, edit in enumerate(edits, start=1):
        if not edit.search.strip():
            raise EditError(MutationFailure.NO_EDIT_PARSED, f"edit {i}: the SEARCH text is empty")
    return edits


def render_diff(edits: list[SearchReplace]) -> str:
    """The canonical text of `edits`, parseable by `parse_diff`."""
    return "\n".join(
        f"<<<<<<< SEARCH\n{e.search}\n=======\n{e.replace}\n>>>>>>> REPLACE" for e in edits
    )


def parse_rewrite(reply: str, language: str = "") -> str:
    """The program text of a full-rewrite reply: the fenced block tagged with `language`
    if any, else the longest fenced block, else the whole reply if it has markers."""
    if not reply or not reply.strip():
        raise EditError(MutationFailure.EMPTY_REPLY, "the reply is empty")
    fences = [(m.group(1).lower(), m.group(2)) for m in _FENCE_RE.finditer(reply)]
    tagged = [body for tag, body in fences if language and tag == language.lower()]
    if tagged or fences:
        return max(tagged or [body for _, body in fences], key=len)
    if START_MARKER in reply:
        return reply
    if reply.count("```") % 2 == 1:
        raise EditError(MutationFailure.NO_EDIT_PARSED, "unclosed code fence: truncated reply?")
    raise EditError(
        MutationFailure.NO_EDIT_PARSED, "no fenced code block with the new program found"
    )


def _locate(code: str, search: str) -> list[tuple[int, int]]:
    """Spans where `search` occurs: exactly, else line-wise ignoring trailing whitespace."""
    spans, start = [], code.find(search)
    while start != -1:
        spans.append((start, start + len(search)))
        start = code.find(search, start + 1)
    if spans:
        return spans
    want = [line.rstrip() for line in search.split("\n")]
    lines = code.split("\n")
    offsets, pos = [], 0
    for line in lines:
        offsets.append(pos)
        pos += len(line) + 1
    for i in range(len(lines) - len(want) + 1):
        if all(lines[i + k].rstrip() == want[k] for k in range(len(want))):
            end_line = i + len(want) - 1
            spans.append((offsets[i], offsets[end_line] + len(lines[end_line])))
    return spans


def _regions(code: str):
    try:
        return evolve_regions(code)
    except ProgramError as exc:
        raise EditError(MutationFailure.MALFORMED_PROGRAM, str(exc)) from exc


def apply_diff(code: str, edits: list[SearchReplace]) -> str:
    """Apply `edits` in order; each must match inside one EVOLVE-BLOCK."""
    for i, edit in enumerate(edits, start=1):
        if START_MARKER in edit.replace or END_MARKER in edit.replace:
            raise EditError(
                MutationFailure.OUTSIDE_EVOLVE_BLOCK,
                f"edit {i}: the REPLACE text contains an EVOLVE-BLOCK marker; markers are fixed",
            )
        spans = _locate(code, edit.search)
        if not spans:
            first = edit.search.strip().splitlines()[0][:80]
            raise EditError(
                MutationFailure.SEARCH_NOT_FOUND,
                f"edit {i}: SEARCH text not found in the program (first line: {first!r})",
            )
        regions = _regions(code)
        inside = [s for s in spans if any(r.contains(*s) for r in regions)]
        if not inside:
            raise EditError(
                MutationFailure.OUTSIDE_EVOLVE_BLOCK,
                f"edit {i}: SEARCH text is outside every EVOLVE-BLOCK; only code between "
                f"{START_MARKER} and {END_MARKER} may change",
            )
        start, end = inside[0]
        code = code[:start] + edit.replace + code[end:]
    return code


def _check_frame(parent: str, child: str) -> None:
    parent_frame, child_frame = frame(parent), frame(child)
    if len(parent_frame) != len(child_frame):
        raise EditError(
            MutationFailure.OUTSIDE_EVOLVE_BLOCK,
            f"the new program has {len(child_frame) - 1} EVOLVE-BLOCKs, the parent has "
            f"{len(parent_frame) - 1}",
        )
    for before, after in zip(parent_frame, child_frame, strict=True):
        if normalise(before) != normalise(after):
            old = normalise(before).split("\n")
            new = normalise(after).split("\n")
            diff = next(
                (f"{a!r} became {b!r}" for a, b in zip(old, new, strict=False) if a != b),
                f"{len(old)} fixed lines became {len(new)}",
            )
            raise EditError(
                MutationFailure.OUTSIDE_EVOLVE_BLOCK,
                f"code outside the EVOLVE-BLOCKs changed ({diff}); only block contents may change",
            )


def apply_rewrite(parent: str, new_code: str) -> str:
    """The parent's frame with `new_code`'s block texts (the frame must match)."""
    _regions(parent)
    _regions(new_code)
    _check_frame(parent, new_code)
    return replace_blocks(parent, block_texts(new_code))


def apply_reply(parent: str, reply: str, mode: EditMode | str, language: str = "") -> str:
    """Turn a model reply into a child program, or raise a classified `EditError`."""
    mode = EditMode(mode)
    if mode == EditMode.DIFF:
        child = apply_diff(parent, parse_diff(reply))
        _check_frame(parent, child)
    else:
        child = apply_rewrite(parent, parse_rewrite(reply, language))
    if normalise(child) == normalise(parent):
        raise EditError(MutationFailure.NO_CHANGE, "the edit leaves the program unchanged")
    return child


def make_diff(parent: str, child: str) -> str:
    """SEARCH/REPLACE text that turns `parent` into `child` under `apply_diff`.

    Hunks come from a line diff; each SEARCH grows context lines (staying inside its
    EVOLVE-BLOCK) until it is unique in the parent. If the hunks do not reproduce
    `child` exactly (repeated lines can fool them), whole changed blocks are used.
    """
    import difflib

    old, new = parent.splitlines(keepends=True), child.splitlines(keepends=True)
    line_starts = [0]
    for line in old:
        line_starts.append(line_starts[-1] + len(line))
    regions = _regions(parent)

    def region_lines(i1: int, i2: int) -> tuple[int, int]:
        pos = line_starts[i1]
        for r in regions:
            if r.start <= pos <= r.end:
                first = next(k for k, s in enumerate(line_starts) if s >= r.start)
                last = next(k for k, s in enumerate(line_starts) if s >= r.end)
                return first, last
        return i1, i2

    edits: list[SearchReplace] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            continue
        lo, hi = region_lines(i1, i2)
        a1, a2, b1, b2 = i1, i2, j1, j2
        while True:
            search = "".join(old[a1:a2])
            if search.strip() and parent.count(search) == 1:
                break
            grown = False
            if a1 > lo:
                a1, b1, grown = a1 - 1, b1 - 1, True
            if a2 < hi:
                a2, b2, grown = a2 + 1, b2 + 1, True
            if not grown:
                break
        edits.append(
            SearchReplace("".join(old[a1:a2]).rstrip("\n"), "".join(new[b1:b2]).rstrip("\n"))
        )
    try:
        if edits and apply_diff(parent, edits) == child:
            return render_diff(edits)
    except EditError:
        pass
    whole = [
        SearchReplace(a.rstrip("\n"), b.rstrip("\n"))
        for a, b in zip(block_texts(parent), block_texts(child), strict=True)
        if a != b
    ]
    return render_diff(whole)
