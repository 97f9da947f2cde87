"""The no-model backend: numeric-literal perturbation and crossover inside EVOLVE-BLOCKs.

Operators (chosen by configured weights, falling back to perturbation when a crossover
does not apply):

* ``perturb``: 1..`max_literals` numeric literals change; integers step by +-k, double or
  halve (staying non-negative if they were); floats are multiplied by exp(N(0, sigma)).
* ``crossover_literals``: where a block of the parent and of an inspiration have the same
  structure (equal once literals are blanked), the child takes each differing literal
  from either, at random.
* ``crossover_block``: one whole EVOLVE-BLOCK comes from the inspiration (programs with
  several blocks).

Literals in comments and strings are left alone. The child is returned as a
SEARCH/REPLACE reply (or a whole program in rewrite mode), so it goes through the same
parsing and EVOLVE-BLOCK enforcement as a model's reply.
"""

from __future__ import annotations

import math
import random
import re
import time
from dataclasses import dataclass

from rayevolve.config import OfflineMutationConfig
from rayevolve.edits import make_diff
from rayevolve.mutation.base import Completion, MutationBackend, MutationRequest
from rayevolve.program import C_LIKE, block_texts, replace_blocks

_NUMBER = re.compile(
    r"(?<![\w.])((?:\d+\.\d*|\.\d+)(?:[eE][+-]?\d+)?|\d+[eE][+-]?\d+|\d+)([fFhHuUlL]{0,2})(?![\w.])"
)


MAX_DRAWS = 8  # a perturbation can round back to the same text; draw again


class MutationUnavailable(Exception):
    """No operator can change this parent (e.g. no literal inside its EVOLVE-BLOCKs)."""


@dataclass(frozen=True)
class Literal:
    start: int
    end: int
    text: str

    @property
    def is_float(self) -> bool:
        return any(c in self.text for c in ".eE")


def code_mask(text: str, language: str) -> list[bool]:
    """True for characters that are code, False inside comments and string literals."""
    mask = [True] * len(text)
    c_like = language in C_LIKE
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        end = None
        if (ch == "#" and not c_like) or (c_like and text.startswith("//", i)):
            end = text.find("\n", i)
            end = n if end == -1 else end
        elif c_like and text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end == -1 else end + 2
        elif ch in "'\"":
            quote = text[i : i + 3] if not c_like and text[i : i + 3] in ("'''", '"""') else ch
            j = i + len(quote)
            while j < n and not text.startswith(quote, j):
                j += 2 if text[j] == "\\" else 1
            end = min(n, j + len(quote))
        if end is None:
            i += 1
            continue
        for k in range(i, end):
            mask[k] = False
        i = end
    return mask


def find_literals(text: str, language: str) -> list[Literal]:
    mask = code_mask(text, language)
    return [
        Literal(m.start(1), m.end(1), m.group(1)) for m in _NUMBER.finditer(text) if mask[m.start()]
    ]


def skeleton(text: str, literals: list[Literal]) -> str:
    out, cursor = [], 0
    for lit in literals:
        out.append(text[cursor : lit.start])
        out.append("\0")
        cursor = lit.end
    out.append(text[cursor:])
    return "".join(out)


def substitute(text: str, literals: list[Literal], values: dict[int, str]) -> str:
    """`text` with literal i replaced by values[i]."""
    out, cursor = [], 0
    for i, lit in enumerate(literals):
        if i in values:
            out.append(text[cursor : lit.start])
            out.append(values[i])
            cursor = lit.end
    out.append(text[cursor:])
    return "".join(out)


def _format_float(value: float, original: str) -> str:
    mantissa = re.split(r"[eE]", original)[0].replace(".", "").lstrip("0")
    digits = max(3, len(mantissa) + 1)
    text = f"{value:.{digits}g}"
    return text if any(c in text for c in ".eE") else text + ".0"


def perturb_literal(lit: Literal, rng: random.Random, config: OfflineMutationConfig) -> str:
    if lit.is_float:
        value = float(lit.text)
        if value == 0.0:
            return _format_float(rng.choice((1e-3, 1e-2, 0.1)), "0.001")
        return _format_float(value * math.exp(rng.gauss(0.0, config.float_sigma)), lit.text)
    value = int(lit.text)
    step = rng.choice(config.int_steps)
    new = rng.choice((value + step, value - step, value * 2, value // 2))
    if value >= 0:
        new = max(new, 0)
    if new == value:
        new = value + step
    return str(new)


class OfflineBackend(MutationBackend):
    name = "offline"

    def __init__(self, config: OfflineMutationConfig):
        self.config = config

    async def complete(self, request: MutationRequest) -> list[Completion]:
        completions = []
        for k in range(request.num_samples):
            started = time.perf_counter()
            rng = random.Random(f"{request.seed}:{k}")
            child, operator = self.mutate(
                request.parent.code,
                [p.code for p in request.inspirations],
                request.parent.language,
                rng,
            )
            if request.mode == "rewrite":
                text = f"```{request.parent.language}\n{child}```"
            else:
                text = make_diff(request.parent.code, child)
            completions.append(
                Completion(
                    text=text,
                    model="offline",
                    operator=f"offline:{operator}",
                    latency_s=time.perf_counter() - started,
                )
            )
        return completions

    # --- operators ------------------------------------------------------------------
    def mutate(
        self, parent: str, inspirations: list[str], language: str, rng: random.Random
    ) -> tuple[str, str]:
        """Return (child code, operator name); the child always differs from the parent."""
        for _ in range(MAX_DRAWS):
            child, operator = self._mutate_once(parent, inspirations, language, rng)
            if child != parent:
                return child, operator
        raise MutationUnavailable(f"{MAX_DRAWS} draws left the program unchanged")

    def _mutate_once(
        self, parent: str, inspirations: list[str], language: str, rng: random.Random
    ) -> tuple[str, str]:
        weights = {
            "crossover_literals": self.config.crossover_literals,
            "crossover_block": self.config.crossover_block,
            "perturb": self.config.perturb,
        }
        operator = rng.choices(list(weights), weights=list(weights.values()))[0]
        if operator != "perturb" and inspirations:
            other = rng.choice(inspirations)
            crossed = (
                self.crossover_literals(parent, other, language, rng)
                if operator == "crossover_literals"
                else self.crossover_block(parent, other, rng)
            )
            if crossed is not None:
                return crossed, operator
        return self.perturb(parent, language, rng), "perturb"

    @staticmethod
    def cannot_change(code: str, language: str) -> str | None:
        """Why this backend can never change `code` (every child starts from it and its
        descendants), or None. Its operators only move numeric literals inside the
        EVOLVE-BLOCKs (crossover too, between programs that differ only there)."""
        if any(find_literals(text, language) for text in block_texts(code)):
            return None
        return (
            "the offline mutator only changes numeric literals inside EVOLVE-BLOCKs, and the "
            "initial program has none there; use a model (mutation=openai or mutation=vllm) "
            "or put the numbers to tune inside an EVOLVE-BLOCK"
        )

    def perturb(self, parent: str, language: str, rng: random.Random) -> str:
        blocks = block_texts(parent)
        sites = [
            (b, i, lit)
            for b, text in enumerate(blocks)
            for i, lit in enumerate(find_literals(text, language))
        ]
        if not sites:
            raise MutationUnavailable("no numeric literal inside the EVOLVE-BLOCKs to perturb")
        count = 1
        while count < min(self.config.max_literals, len(sites)) and rng.random() < 0.5:
            count += 1
        changes: dict[int, dict[int, str]] = {}
        for b, i, lit in rng.sample(sites, count):
            changes.setdefault(b, {})[i] = perturb_literal(lit, rng, self.config)
        new_blocks = [
            substitute(text, find_literals(text, language), changes[b]) if b in changes else text
            for b, text in enumerate(blocks)
        ]
        return replace_blocks(parent, new_blocks)

    def crossover_literals(
        self, parent: str, other: str, language: str, rng: random.Random
    ) -> str | None:
        mine, theirs = block_texts(parent), block_texts(other)
        if len(mine) != len(theirs):
            return None
        options = []
        for b, (a, o) in enumerate(zip(mine, theirs, strict=True)):
            la, lo = find_literals(a, language), find_literals(o, language)
            if len(la) == len(lo) and skeleton(a, la) == skeleton(o, lo):
                differing = [
                    i for i, (x, y) in enumerate(zip(la, lo, strict=True)) if x.text != y.text
                ]
                if differing:
                    options.append((b, la, lo, differing))
        if not options:
            return None
        b, la, lo, differing = rng.choice(options)
        taken = [i for i in differing if rng.random() < 0.5] or [rng.choice(differing)]
        if len(taken) == len(differing) and len(differing) > 1:
            taken.remove(rng.choice(taken))
        new_blocks = list(mine)
        new_blocks[b] = substitute(mine[b], la, {i: lo[i].text for i in taken})
        return replace_blocks(parent, new_blocks)

    def crossover_block(self, parent: str, other: str, rng: random.Random) -> str | None:
        mine, theirs = block_texts(parent), block_texts(other)
        if len(mine) != len(theirs) or len(mine) < 2:
            return None
        differing = [b for b, (a, o) in enumerate(zip(mine, theirs, strict=True)) if a != o]
        if len(differing) < 2:  # taking the only differing block would copy the inspiration
            return None
        b = rng.choice(differing)
        new_blocks = list(mine)
        new_blocks[b] = theirs[b]
        return replace_blocks(parent, new_blocks)
