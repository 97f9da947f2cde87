"""`TaskSpec`: a task folder (OpenEvolve's convention) resolved, checked and bundled.

A task folder holds ``initial_program.<ext>`` with EVOLVE-BLOCK markers (another name:
``task.initial_program``) and ``evaluator.py`` (``task.evaluator``) defining
``evaluate(program_path)`` (sync or async) that returns a dict or OpenEvolve's
``EvaluationResult`` (``combined_score``, else the mean of the numeric metrics),
optionally ``evaluate_stage1/2/3`` for a cascade. The folder's files travel inside the
spec as bytes, so evaluators on other machines (a Mac worker, say) need no shared
filesystem: they unpack the bundle locally.
"""

from __future__ import annotations

import ast
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from rayevolve.config import FeatureConfig, TaskConfig
from rayevolve.program import LANGUAGES_BY_SUFFIX, ProgramError, evolve_regions

MAX_BUNDLE_BYTES = 32 * 1024 * 1024
SKIPPED_PARTS = {"__pycache__", ".git", "runs", "outputs", "multirun", ".ipynb_checkpoints"}


class TaskError(ValueError):
    """A task folder that cannot be evolved, with what to fix."""


@dataclass(frozen=True)
class TaskSpec:
    """A loaded task. See `TaskConfig` for the settings it carries over.

    Attributes:
      root: the folder on the driver's machine (informational on other nodes).
      initial_program: file name of the starting program inside the folder.
      evaluator: file name of the evaluator inside the folder.
      suffix: its suffix; candidates are written with the same one.
      initial_code: its text.
      files: every file of the folder, relative path -> bytes (the bundle).
      bundle_hash: hash of the bundle (identifies the task's exact files).
    """

    name: str
    root: str
    initial_program: str
    evaluator: str
    suffix: str
    language: str
    initial_code: str
    description: str
    resources: dict[str, float]
    timeout_s: float
    memory_limit_mb: int
    maximize: bool
    cascade: bool
    cascade_thresholds: tuple[float, ...]
    features: tuple[FeatureConfig, ...]
    env: dict[str, str]
    files: dict[str, bytes]
    sandbox: str
    bundle_hash: str
    label_selector: dict[str, str] = field(default_factory=dict)
    devices: tuple[str, ...] = ()
    score_metric: str | None = None


def resolve_task_path(path: str, search_roots: list[Path]) -> Path:
    candidate = Path(path).expanduser()
    if candidate.is_absolute():
        if not candidate.is_dir():
            what = "is not a folder" if candidate.exists() else "does not exist"
            raise TaskError(f"task.path={path}: the task folder {what}")
        return candidate
    for root in search_roots:
        if (root / candidate).is_dir():
            return (root / candidate).resolve()
    tried = ", ".join(str(root / candidate) for root in search_roots)
    raise TaskError(f"task folder {path!r} not found (looked in: {tried}); set task.path")


def write_bundle(files: dict[str, bytes], target: Path) -> None:
    """Write a bundle (relative path -> bytes) into the folder `target`."""
    for rel, data in files.items():
        path = target / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def bundle_folder(root: Path) -> dict[str, bytes]:
    """A task folder's files, relative path -> bytes (caches and hidden files left out)."""
    files, total = {}, 0
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if not path.is_file() or SKIPPED_PARTS.intersection(rel.parts) or rel.name.startswith("."):
            continue
        data = path.read_bytes()
        total += len(data)
        if total > MAX_BUNDLE_BYTES:
            raise TaskError(
                f"task folder {root} holds more than {MAX_BUNDLE_BYTES >> 20} MiB; keep data "
                "that evaluators need elsewhere (e.g. on every node) and only code in the folder"
            )
        files[rel.as_posix()] = data
    return files


def _check_evaluator(path: Path) -> None:
    if not path.is_file():
        others = sorted(p.name for p in path.parent.glob("*evaluat*.py"))
        hint = f" (found {', '.join(others)}: set task.evaluator=NAME)" if others else ""
        raise TaskError(
            f"{path.parent} has no {path.name}; a task needs an evaluator defining "
            f"evaluate(program_path){hint}"
        )
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as exc:
        raise TaskError(f"{path} does not parse: {exc}") from exc
    names = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    names |= {
        t.id
        for node in tree.body
        if isinstance(node, ast.Assign)
        for t in node.targets
        if isinstance(t, ast.Name)
    }
    names |= {
        alias.asname or alias.name
        for node in tree.body
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    if not names & {"evaluate", "evaluate_stage1"}:
        raise TaskError(f"{path} defines no top-level evaluate(program_path) (nor evaluate_stage1)")


def _initial_program(root: Path, name: str | None) -> Path:
    """The starting program: `name` in `root`, else the folder's one ``initial_program.*``."""
    if name:
        program = root / name
        if not program.is_file():
            raise TaskError(f"task.initial_program={name}: no such file in {root}")
        return program
    initial = sorted(p for p in root.glob("initial_program.*") if p.is_file())
    if len(initial) == 1:
        return initial[0]
    if initial:
        found = ", ".join(p.name for p in initial)
        raise TaskError(
            f"{root} holds several initial programs ({found}) where a run starts from exactly "
            "one: choose it with task.initial_program=NAME"
        )
    near = sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("initial*")
        if p.is_file() and not SKIPPED_PARTS.intersection(p.relative_to(root).parts)
    )[:8]
    hint = f" (found {', '.join(near)})" if near else ""
    raise TaskError(
        f"{root} holds no initial_program.<ext>; name the starting program with "
        f"task.initial_program=NAME{hint}"
    )


def load_task(config: TaskConfig, search_roots: list[Path]) -> TaskSpec:
    """Resolve, check and bundle the task folder named by `config.path`."""
    root = resolve_task_path(config.path, search_roots)
    program = _initial_program(root, config.initial_program)
    _check_evaluator(root / config.evaluator)
    code = program.read_text()
    try:
        regions = evolve_regions(code)
    except ProgramError as exc:
        raise TaskError(f"{program}: {exc}") from exc
    if not any(code[r.start : r.end].strip() for r in regions):
        raise TaskError(
            f"{program}: every EVOLVE-BLOCK is empty; put the code to evolve inside one"
        )
    language = config.language or LANGUAGES_BY_SUFFIX.get(program.suffix)
    if not language:
        raise TaskError(f"cannot tell the language of {program.name}; set task.language")
    description = config.description
    if description is None:
        readme = root / "README.md"
        description = readme.read_text() if readme.is_file() else ""
    files = bundle_folder(root)
    return TaskSpec(
        name=config.name,
        root=str(root),
        initial_program=program.relative_to(root).as_posix(),
        evaluator=config.evaluator,
        suffix=program.suffix,
        language=language,
        initial_code=code,
        description=description,
        resources=dict(config.resources),
        timeout_s=config.timeout_s,
        memory_limit_mb=config.memory_limit_mb,
        maximize=config.direction == "maximize",
        cascade=config.cascade,
        cascade_thresholds=tuple(config.cascade_thresholds),
        features=tuple(config.features),
        env={str(k): str(v) for k, v in config.env.items()},
        files=files,
        sandbox=config.sandbox,
        bundle_hash=bundle_hash(files),
        label_selector={str(k): str(v) for k, v in config.label_selector.items()},
        devices=tuple(config.devices),
        score_metric=config.score_metric,
    )


def file_hashes(files: dict[str, bytes]) -> dict[str, str]:
    """Each file's SHA-256 (hex), by relative path."""
    return {rel: hashlib.sha256(data).hexdigest() for rel, data in sorted(files.items())}


def bundle_hash(files: dict[str, bytes]) -> str:
    """One hash of a task folder's content: its files' names and bytes."""
    digest = hashlib.sha256()
    for rel, data in sorted(files.items()):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


def fingerprint(spec: TaskSpec) -> dict:
    """What a run records of its task folder (``task.json``), to check it on resume."""
    return {
        "name": spec.name,
        "root": spec.root,
        "bundle_hash": spec.bundle_hash,
        "files": file_hashes(spec.files),
    }


def changes(recorded: dict, now: dict) -> list[str]:
    """How the task folder differs from what a run recorded (empty if it does not)."""
    if recorded.get("bundle_hash") == now.get("bundle_hash"):
        return []
    before, after = recorded.get("files", {}), now.get("files", {})
    found = [
        f"{rel} changed"
        for rel in sorted(before.keys() & after.keys())
        if before[rel] != after[rel]
    ]
    found += [f"{rel} added" for rel in sorted(after.keys() - before.keys())]
    found += [f"{rel} removed" for rel in sorted(before.keys() - after.keys())]
    return found or ["its content hash differs"]
