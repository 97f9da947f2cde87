"""An OpenEvolve ``config.yaml`` read and mapped onto rayevolve's settings.

A task folder written for OpenEvolve carries its run settings in ``config.yaml``:
evaluator timeout, cascade, MAP-Elites features, islands, the model. `read` turns it
into rayevolve settings (dotted keys) and says, per key, what it became or why it is
left out; nothing is dropped without a word. The command line applies these under the
user's own overrides (`rayevolve.cli`). The README's table is this module's `RULES` and
`IGNORED` in prose.

Where the folder's file is silent on how candidates are judged, OpenEvolve's own
defaults apply (`JUDGING_DEFAULTS`: its 300 s timeout and cascade thresholds), so a
score here means what it means there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rayevolve.config import IslandsConfig

CONFIG_NAMES = ("config.yaml", "config.yml")
NONE = "none"  # task.openevolve_config=none: read no file
OFFLINE_LLM = "the offline mutator is in use (mutation=openai applies the llm settings)"
# How OpenEvolve judges when its config does not say (openevolve/config.py)
JUDGING_DEFAULTS = {
    "evaluator.timeout": 300,
    "evaluator.memory_limit_mb": None,  # no limit (JAX and others reserve much address space)
    "evaluator.cascade_evaluation": True,
    "evaluator.cascade_thresholds": [0.5, 0.75, 0.9],
}
DEFAULT_FEATURES = ["complexity", "diversity"]
DEFAULT_BINS = 10
DEFAULT_ISLANDS = 5
# OpenEvolve's values for the selection ratios when only one is given
DEFAULT_EXPLOITATION, DEFAULT_EXPLORATION = 0.7, 0.2


class OpenEvolveConfigError(ValueError):
    """A folder's OpenEvolve config that cannot be read or mapped (the message says why)."""


@dataclass
class Mapped:
    """What a folder's OpenEvolve config became.

    Attributes:
      path: the file read.
      settings: rayevolve dotted key -> value, in the order applied.
      sources: rayevolve key -> the OpenEvolve key(s) it came from.
      ignored: OpenEvolve key -> why rayevolve does not use it.
    """

    path: Path
    settings: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)
    ignored: dict[str, str] = field(default_factory=dict)

    def set(self, key: str, value: Any, source: str) -> None:
        self.settings[key] = value
        self.sources[key] = source

    def describe(self, overridden: set[str] = frozenset()) -> list[str]:
        """The lines printed at start: what was applied, what the command line kept,
        and what is not used (grouped by reason)."""
        by_source: dict[str, list[str]] = {}
        for key, value in self.settings.items():
            if key not in overridden:
                by_source.setdefault(self.sources[key], []).append(f"{key}={_show(value)}")
        applied = [f"{', '.join(keys)} ({source})" for source, keys in by_source.items()]
        lines = [f"from {self.path}: " + ("; ".join(applied) or "nothing applicable")]
        kept = [key for key in self.settings if key in overridden]
        if kept:
            lines.append(f"  the command line's {', '.join(kept)} kept over {self.path.name}")
        by_reason: dict[str, list[str]] = {}
        for key, why in self.ignored.items():
            by_reason.setdefault(why, []).append(key)
        for why, keys in by_reason.items():
            lines.append(f"  not used from {self.path.name}: {', '.join(keys)}: {why}")
        return lines


def _show(value: Any) -> str:
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, dict) and "name" in v for v in value)
    ):
        return "[" + ", ".join(str(v["name"]) for v in value) + "]"
    text = repr(value) if isinstance(value, str) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def find(folder: Path, name: str | None) -> Path | None:
    """The config file to read in `folder`: `name`, else the first of `CONFIG_NAMES`."""
    if name == NONE:
        return None
    if name:
        path = folder / name
        if not path.is_file():
            raise OpenEvolveConfigError(f"task.openevolve_config={name}: no such file in {folder}")
        return path
    return next((folder / n for n in CONFIG_NAMES if (folder / n).is_file()), None)


# --- conversions -----------------------------------------------------------------------
def _positive_int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"expected a positive integer, got {value!r}")
    return value


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"expected a number, got {value!r}")
    return float(value)


def _thresholds(value: Any) -> list[float]:
    if not isinstance(value, list):
        raise ValueError(f"expected a list of numbers, got {value!r}")
    return [_number(v) for v in value]


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _mode(value: Any) -> str:
    return "diff" if _flag(value) else "rewrite"


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected text, got {value!r}")
    return value


def _seed(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"expected an integer, got {value!r}")
    return value


# OpenEvolve key -> (rayevolve key, conversion); keys needing more than one value at a
# time (features, selection ratios, models, population size) are mapped by functions below.
RULES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "max_iterations": ("stop.max_evaluations", _positive_int),
    "random_seed": ("seed", _seed),
    "language": ("task.language", _text),
    "diff_based_evolution": ("mutation.mode", _mode),
    "prompt.system_message": ("task.description", _text),
    "prompt.num_top_programs": ("islands.selection.num_top_inspirations", int),
    "prompt.num_diverse_programs": ("islands.selection.num_diverse_inspirations", int),
    "prompt.max_artifact_bytes": ("mutation.prompts.max_feedback_chars", _positive_int),
    "database.num_islands": ("islands.count", _positive_int),
    "database.migration_interval": ("islands.migration.interval", _positive_int),
    "database.migration_rate": ("islands.migration.rate", _number),
    "evaluator.timeout": ("task.timeout_s", _number),
    "evaluator.cascade_evaluation": ("task.cascade", _flag),
    "evaluator.cascade_thresholds": ("task.cascade_thresholds", _thresholds),
    "evaluator.parallel_evaluations": ("evaluation.num_evaluators", _positive_int),
    "evaluator.memory_limit_mb": ("task.memory_limit_mb", _positive_int),
}
LLM_RULES: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "llm.api_base": ("mutation.base_url", _text),
    "llm.temperature": ("mutation.temperature", _number),
    "llm.top_p": ("mutation.top_p", _number),
    "llm.max_tokens": ("mutation.max_tokens", _positive_int),
    "llm.timeout": ("mutation.openai.timeout_s", _number),
    "llm.retries": ("mutation.openai.max_retries", int),
    "llm.retry_delay": ("mutation.openai.backoff_s", _number),
}
# OpenEvolve keys rayevolve does not use, and why
IGNORED: dict[str, str] = {
    "checkpoint_interval": "every row is written to the run's Parquet log, which is the checkpoint",
    "log_level": "rayevolve logs to the console and the run directory",
    "log_dir": "rayevolve logs to the console and the run directory",
    "file_suffix": "candidates take the initial program's suffix",
    "max_code_length": "candidates are bounded by the evaluator's time and memory limits, not by length",
    "diff_pattern": "rayevolve reads SEARCH/REPLACE blocks in its own format",
    "early_stopping_patience": "no stop on stagnation; stop.target_score stops at a score",
    "convergence_threshold": "no stop on stagnation; stop.target_score stops at a score",
    "early_stopping_metric": "no stop on stagnation; stop.target_score stops at a score",
    "max_tasks_per_child": "every candidate is judged in a fresh process",
    "llm.api_key": "keys are never read from files; set the variable mutation.api_key_env names",
    "llm.evaluator_models": "no model-judged metrics",
    "llm.system_message": "prompt.system_message is the task description here",
    "prompt.template_dir": "OpenEvolve's templates are not rayevolve's Jinja templates (conf/prompts/)",
    "prompt.evaluator_system_message": "no model-judged metrics",
    "prompt.include_artifacts": "evaluator feedback is always shown, up to mutation.prompts.max_feedback_chars",
    "database.db_path": "programs live in the run's Parquet log",
    "database.in_memory": "programs live in the run's Parquet log",
    "database.log_prompts": "every prompt is in the run's Parquet log",
    "database.elite_selection_ratio": "each island keeps islands.archive_size elites",
    "database.random_seed": "the top-level seed drives every random choice",
    "database.diversity_metric": "diversity is the edit distance to the island's best programs",
    "evaluator.max_retries": "a candidate's failure is its verdict; only infrastructure failures are retried (evaluation.max_attempts)",
    "evaluator.enable_artifacts": "artifacts are always kept",
    "evaluator.use_llm_feedback": "no model-judged metrics",
    "evaluator.llm_feedback_weight": "no model-judged metrics",
    "evaluator.distributed": "evaluation always runs on Ray's evaluator actors",
    "evaluator.cpu_limit": "each evaluation asks task.resources of Ray",
    "evolution_trace": "the run's Parquet log records every program with its parent",
}
SECTIONS = ("llm", "prompt", "database", "evaluator", "evolution_trace")
DICT_VALUED = {"database.feature_bins", "prompt.template_variations"}


def _leaves(raw: dict) -> dict[str, Any]:
    """Dotted key -> value, one level into the known sections."""
    leaves: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, dict) and key != "evolution_trace":
            for sub, subvalue in value.items():
                leaves[f"{key}.{sub}"] = subvalue
        else:
            leaves[str(key)] = value
    return leaves


def read(path: Path, backend: str) -> Mapped:
    """Map the OpenEvolve config at `path`; `backend` is ``mutation.backend`` (the llm
    section applies to ``openai`` only)."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise OpenEvolveConfigError(f"{path} cannot be read: {exc}".split("\n")[0]) from None
    if not isinstance(raw, dict):
        raise OpenEvolveConfigError(f"{path} does not hold a mapping of settings")
    leaves = {**JUDGING_DEFAULTS, **_leaves(raw)}
    given = set(_leaves(raw))
    mapped = Mapped(path)
    for key, value in leaves.items():
        try:
            _map_one(mapped, key, value, leaves, backend, default=key not in given)
        except (TypeError, ValueError) as exc:
            raise OpenEvolveConfigError(f"{path}: {key}: {exc}") from None
    if not leaves.get("evaluator.cascade_evaluation", True):
        mapped.settings.pop("task.cascade_thresholds", None)
        mapped.sources.pop("task.cascade_thresholds", None)
    _map_selection(mapped, leaves)
    _map_features(mapped, leaves)
    _map_population(mapped, leaves)
    if backend == "openai":
        _map_models(mapped, leaves)
    return mapped


HANDLED_TOGETHER = {
    "database.feature_dimensions",
    "database.feature_bins",
    "database.exploitation_ratio",
    "database.exploration_ratio",
    "database.population_size",
    "database.archive_size",
    "llm.models",
    "llm.primary_model",
    "llm.primary_model_weight",
    "llm.secondary_model",
    "llm.secondary_model_weight",
}


def _map_one(
    mapped: Mapped, key: str, value: Any, leaves: dict, backend: str, default: bool
) -> None:
    if key in HANDLED_TOGETHER:
        if key.startswith("llm.") and backend != "openai":
            mapped.ignored[key] = OFFLINE_LLM
        return
    source = f"OpenEvolve's default {key}" if default else key
    if key in RULES:
        target, convert = RULES[key]
        if value is None and key == "evaluator.memory_limit_mb":
            mapped.set(target, 0, source)  # OpenEvolve sets no memory limit
            return
        if value is None:
            return  # OpenEvolve's "not set"
        if key == "prompt.system_message" and value == "system_message":
            return  # the name of OpenEvolve's default template, not a message
        mapped.set(target, convert(value), source)
    elif key in LLM_RULES:
        if backend != "openai":
            mapped.ignored[key] = OFFLINE_LLM
        elif value is not None:
            target, convert = LLM_RULES[key]
            mapped.set(target, convert(value), source)
    elif key in IGNORED or key.split(".")[0] in IGNORED:
        mapped.ignored[key] = IGNORED.get(key) or IGNORED[key.split(".")[0]]
    elif key.startswith("llm.") and backend != "openai":
        mapped.ignored[key] = OFFLINE_LLM
    else:
        mapped.ignored[key] = "not supported by rayevolve"


def _map_selection(mapped: Mapped, leaves: dict) -> None:
    keys = ("database.exploitation_ratio", "database.exploration_ratio")
    if not any(k in leaves for k in keys):
        return
    exploit = _number(leaves.get(keys[0], DEFAULT_EXPLOITATION))
    explore = _number(leaves.get(keys[1], DEFAULT_EXPLORATION))
    if exploit < 0 or explore < 0 or exploit + explore > 1 + 1e-9:
        raise OpenEvolveConfigError(
            f"{mapped.path}: exploitation_ratio + exploration_ratio must lie in [0, 1]"
        )
    source = " and ".join(k for k in keys if k in leaves)
    mapped.set("islands.selection.kind", "ratios", source)
    mapped.set("islands.selection.exploit", exploit, source)
    mapped.set("islands.selection.explore", explore, source)
    mapped.set("islands.selection.random", round(max(0.0, 1 - exploit - explore), 12), source)


def _map_features(mapped: Mapped, leaves: dict) -> None:
    """``feature_dimensions`` and ``feature_bins``: OpenEvolve scales every feature by the
    range of values seen (learned ranges here), ``diversity`` lies in 0..1."""
    names = leaves.get("database.feature_dimensions", DEFAULT_FEATURES)
    bins = leaves.get("database.feature_bins", DEFAULT_BINS)
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise OpenEvolveConfigError(
            f"{mapped.path}: database.feature_dimensions is not a list of names"
        )
    if len(names) > 3:
        raise OpenEvolveConfigError(
            f"{mapped.path}: database.feature_dimensions names {len(names)} features; rayevolve's "
            "grid has at most 3: pass task.features=[...] with three of them"
        )
    features = []
    for name in names:
        count = bins.get(name, DEFAULT_BINS) if isinstance(bins, dict) else bins
        count = _positive_int(count)
        fixed = name == "diversity"
        features.append(
            {
                "name": name,
                "min": 0.0 if fixed else None,
                "max": 1.0 if fixed else None,
                "bins": count,
            }
        )
    given = [k for k in ("database.feature_dimensions", "database.feature_bins") if k in leaves]
    source = " and ".join(given) if given else "OpenEvolve's default features"
    mapped.set("task.features", features, source)


def _map_population(mapped: Mapped, leaves: dict) -> None:
    """OpenEvolve's ``population_size`` and ``archive_size`` are shared by all islands;
    rayevolve's capacity and archive are per island."""
    islands = _positive_int(leaves.get("database.num_islands", DEFAULT_ISLANDS))
    capacity = None
    if "database.population_size" in leaves:
        capacity = max(1, math.ceil(_positive_int(leaves["database.population_size"]) / islands))
        mapped.set("islands.capacity", capacity, f"database.population_size / {islands} islands")
    if "database.archive_size" in leaves:
        archive = max(1, math.ceil(_positive_int(leaves["database.archive_size"]) / islands))
        if capacity is not None:
            archive = min(archive, capacity)
        mapped.set("islands.archive_size", archive, f"database.archive_size / {islands} islands")
    elif capacity is not None and capacity < IslandsConfig().archive_size:
        mapped.set("islands.archive_size", capacity, "no more elites than the capacity")


def _map_models(mapped: Mapped, leaves: dict) -> None:
    models = []
    listed = leaves.get("llm.models")
    if isinstance(listed, list) and listed:
        for entry in listed:
            if not isinstance(entry, dict) or not entry.get("name"):
                raise OpenEvolveConfigError(
                    f"{mapped.path}: llm.models holds an entry without a name"
                )
            model = {"name": str(entry["name"]), "weight": _number(entry.get("weight", 1.0))}
            for theirs, ours in (
                ("temperature", "temperature"),
                ("top_p", "top_p"),
                ("max_tokens", "max_tokens"),
                ("api_base", "base_url"),
            ):
                if entry.get(theirs) is not None:
                    model[ours] = entry[theirs]
            models.append(model)
        source = "llm.models"
    else:
        for role in ("primary", "secondary"):
            name = leaves.get(f"llm.{role}_model")
            if name:
                weight = leaves.get(f"llm.{role}_model_weight")
                models.append(
                    {"name": str(name), "weight": _number(1.0 if weight is None else weight)}
                )
        source = "llm.primary_model / llm.secondary_model"
    if models:
        mapped.set("mutation.models", models, source)
        mapped.set("mutation.model", None, source)
