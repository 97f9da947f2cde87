"""Prompts for model-backed mutation: Jinja2 templates filled with the parent, its
evaluation feedback and inspirations.

Templates are gathered on the driver (task folder's ``prompts/`` first, then
``mutation.prompts.template_dir``, then ``conf/prompts/``) and shipped to the mutator
actor as text, so a mutator on a GPU node needs no shared filesystem. The system message
depends only on the task, so every request of a run shares it as a prefix (what vLLM's
prefix cache reuses); everything that varies goes into the user message.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2

from rayevolve.config import PromptConfig
from rayevolve.paths import PROMPTS_DIR
from rayevolve.program import C_LIKE, Program, block_texts

REQUIRED = ("system.jinja", "user.jinja", "repair.jinja")
SUFFIX = ".jinja"


class PromptError(ValueError):
    """A template that is missing or does not render, with the file to fix."""


def gather_templates(
    task_files: dict[str, bytes], template_dir: Path | None, defaults_dir: Path = PROMPTS_DIR
) -> dict[str, str]:
    """Template name -> text, each from the first place that has it."""
    templates: dict[str, str] = {}
    for folder in (defaults_dir, template_dir):
        if folder is not None and folder.is_dir():
            templates.update({p.name: p.read_text() for p in sorted(folder.glob("*" + SUFFIX))})
    for rel, data in task_files.items():
        parts = rel.split("/")
        if len(parts) == 2 and parts[0] == "prompts" and parts[1].endswith(SUFFIX):
            templates[parts[1]] = data.decode()
    missing = [name for name in REQUIRED if name not in templates]
    if missing:
        raise PromptError(
            f"prompt templates {', '.join(missing)} not found (looked in the task's prompts/, "
            f"{template_dir or 'mutation.prompts.template_dir (unset)'}, {defaults_dir})"
        )
    return templates


def truncate(text: str, limit: int) -> str:
    """`text` cut to about `limit` characters, keeping its head and its tail (where
    compiler errors and tracebacks put what matters)."""
    if len(text) <= limit:
        return text
    head = limit // 3
    tail = limit - head
    skipped = text[head : len(text) - tail]
    return f"{text[:head]}\n[... {len(skipped)} characters, {skipped.count(chr(10))} lines cut ...]\n{text[-tail:]}"


def _number(value: float) -> str:
    return f"{value:.6g}"


@dataclass(frozen=True)
class PromptContext:
    """What the mutator knows of the task, built on the driver.

    Attributes:
      templates: template name -> Jinja2 source (see `gather_templates`).
    """

    task_name: str
    description: str
    language: str
    maximize: bool
    templates: dict[str, str]
    settings: PromptConfig = field(default_factory=PromptConfig)


@dataclass(frozen=True)
class Prompt:
    """Chat messages for one request, and the edit form they ask for."""

    messages: tuple[dict[str, str], ...]
    mode: str

    @functools.cached_property
    def text(self) -> str:
        """The messages as JSON (what the log stores once per hash)."""
        return json.dumps(list(self.messages), ensure_ascii=False)

    @functools.cached_property
    def hash(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()[:16]

    def followed_by(self, reply: str, message: str) -> Prompt:
        """This conversation, the model's `reply`, and a new user `message`."""
        extra = ({"role": "assistant", "content": reply}, {"role": "user", "content": message})
        return Prompt(self.messages + extra, self.mode)


class PromptBuilder:
    """Renders the prompt of a request; one per mutator actor."""

    def __init__(self, context: PromptContext):
        self.context = context
        self.settings = context.settings
        self.env = jinja2.Environment(
            loader=jinja2.DictLoader(context.templates),
            undefined=jinja2.StrictUndefined,
            keep_trailing_newline=False,
            autoescape=False,
        )
        language = context.language
        self.common = {
            "task_name": context.task_name,
            "language": language,
            "fence": language,
            "comment": "//" if language in C_LIKE else "#",
            "direction": "higher is better" if context.maximize else "lower is better",
        }
        description = truncate(context.description.strip(), self.settings.max_description_chars)
        self._system = {
            mode: self._render("system.jinja", description=description, mode=mode)
            for mode in ("diff", "rewrite")
        }

    def _render(self, name: str, **variables) -> str:
        try:
            return self.env.get_template(name).render(**self.common, **variables).strip()
        except jinja2.TemplateError as exc:
            where = f" (line {exc.lineno})" if getattr(exc, "lineno", None) else ""
            raise PromptError(f"prompt template {name}{where}: {exc}") from exc

    def mode_for(self, parent: Program, configured: str) -> str:
        """``rewrite`` when configured, or when the parent's blocks are short enough."""
        limit = self.settings.rewrite_below_chars
        if configured == "rewrite" or (limit and sum(map(len, block_texts(parent.code))) < limit):
            return "rewrite"
        return "diff"

    def build(self, parent: Program, inspirations: Sequence[Program], mode: str) -> Prompt:
        user = self._render(
            "user.jinja",
            parent=self._parent_view(parent),
            inspirations=list(self._inspiration_views(inspirations, parent)),
            mode=mode,
        )
        messages = (
            {"role": "system", "content": self._system[mode]},
            {"role": "user", "content": user},
        )
        return Prompt(messages, mode)

    def repair(self, prompt: Prompt, reply: str, error_kind: str, error: str) -> Prompt:
        """The conversation continued with the failed `reply` and why it failed."""
        message = self._render(
            "repair.jinja",
            error_kind=error_kind,
            error=truncate(error, self.settings.max_feedback_chars),
            mode=prompt.mode,
        )
        reply = truncate(reply, self.settings.max_inspiration_chars)
        return prompt.followed_by(reply, message)

    # --- views of programs handed to the templates -----------------------------------
    def _parent_view(self, parent: Program) -> dict:
        result = parent.result
        limit = self.settings.max_feedback_chars
        feedback = []
        if result is not None:
            feedback = [
                (name, truncate(text.strip(), limit))
                for name, text in sorted(result.artifacts.items())
                if text and text.strip()
            ]
        return {
            "code": parent.code.rstrip("\n"),
            "score": None if parent.score is None else _number(parent.score),
            "status": str(result.status) if result is not None else "not evaluated",
            "metrics": self._metrics(parent),
            "feedback": feedback,
        }

    def _inspiration_views(self, programs: Iterable[Program], parent: Program):
        shown = {parent.code_hash}
        for i, program in enumerate(programs, start=1):
            if program.code_hash in shown:
                continue
            shown.add(program.code_hash)
            blocks = "\n...\n".join(text.strip("\n") for text in block_texts(program.code))
            yield {
                "label": f"Program {i}",
                "code": truncate(blocks, self.settings.max_inspiration_chars),
                "score": None if program.score is None else _number(program.score),
                "metrics": self._metrics(program),
            }

    @staticmethod
    def _metrics(program: Program) -> list[tuple[str, str]]:
        if program.result is None:
            return []
        return [
            (name, _number(value))
            for name, value in sorted(program.result.metrics.items())
            if name != "combined_score"
        ]
