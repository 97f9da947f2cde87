"""Every setting of a run: frozen dataclasses, validated when built, stored in Hydra's
ConfigStore as the schema that `conf/*.yaml` fills in.

Unknown keys are refused by Hydra (the schema is structured); bad values are refused by
each dataclass's ``__post_init__`` with a `ConfigError` that names the key and says what
is allowed. Hydra cannot override a frozen dataclass node, so the stored schema is
"thawed" (read-only flags cleared); `OmegaConf.to_object` then builds frozen instances.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf


class ConfigError(ValueError):
    """A setting has a value rayevolve cannot run with."""


def _require(condition: bool, key: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{key}: {message}")


def _choice(value: str, key: str, allowed: tuple[str, ...]) -> None:
    _require(value in allowed, key, f"{value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class FeatureConfig:
    """One MAP-Elites dimension.

    Attributes:
      name: a metric the evaluator returns, or a built-in: ``code_length`` (characters of
        the EVOLVE-BLOCKs) or ``score``.
      min, max: value range mapped onto the bins (values outside are clipped).
      bins: number of cells along this dimension.
    """

    name: str = MISSING
    min: float = 0.0
    max: float = 1.0
    bins: int = 10

    def __post_init__(self) -> None:
        _require(self.bins >= 1, f"feature {self.name}.bins", f"must be >= 1, got {self.bins}")
        _require(
            self.max > self.min,
            f"feature {self.name}",
            f"max ({self.max}) must exceed min ({self.min})",
        )


@dataclass(frozen=True)
class TaskConfig:
    """What to evolve and how to score it (one YAML per task under `conf/task/`).

    Attributes:
      name: short name used in run directory names.
      path: task folder with ``initial_program.*`` and ``evaluator.py``; relative paths
        are resolved against the launch directory, then the project root.
      language: overrides the language guessed from the initial program's suffix.
      description: text for model prompts; defaults to the folder's README.md.
      resources: Ray resources one evaluation needs, e.g. ``{CPU: 1}`` or ``{apple_gpu: 1}``.
      timeout_s: wall-clock limit per candidate (the whole process group is killed).
      memory_limit_mb: address-space limit per candidate; 0 disables it (needed on macOS,
        where Metal maps more virtual memory than any sane limit).
      direction: ``maximize`` or ``minimize`` the evaluator's ``combined_score``.
      cascade_thresholds: minimum ``combined_score`` after stage k to run stage k+1.
      features: MAP-Elites dimensions.
      env: environment variables for the evaluator's sandbox (which inherits no other
        variables), e.g. ``{GQA_PRESET: qwen3-0.6b}``; not for secrets.
    """

    name: str = MISSING
    path: str = MISSING
    language: str | None = None
    description: str | None = None
    resources: dict[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    timeout_s: float = 60.0
    memory_limit_mb: int = 4096
    direction: str = "maximize"
    cascade_thresholds: list[float] = field(default_factory=list)
    features: list[FeatureConfig] = field(
        default_factory=lambda: [FeatureConfig(name="code_length", min=0, max=4000, bins=8)]
    )
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _choice(self.direction, "task.direction", ("maximize", "minimize"))
        _require(self.timeout_s > 0, "task.timeout_s", f"must be > 0, got {self.timeout_s}")
        _require(self.memory_limit_mb >= 0, "task.memory_limit_mb", "must be >= 0 (0 = no limit)")
        for key, amount in self.resources.items():
            _require(amount >= 0, f"task.resources.{key}", f"must be >= 0, got {amount}")
        _require(len(self.features) <= 3, "task.features", "at most 3 MAP-Elites dimensions")


@dataclass(frozen=True)
class SelectionConfig:
    """Parent and inspiration selection inside one island.

    Attributes:
      kind: ``ratios`` (exploit/explore/random mix) or ``tournament``.
      exploit: share of parents drawn from the elite archive (ratios).
      explore: share drawn from MAP-Elites cell champions, uniformly over cells (ratios).
      random: share drawn uniformly from the whole sub-population (ratios).
      tournament_size: contestants per tournament (tournament).
      num_top_inspirations: best programs shown alongside the parent.
      num_diverse_inspirations: champions of other MAP-Elites cells shown alongside it.
    """

    kind: str = "ratios"
    exploit: float = 0.6
    explore: float = 0.3
    random: float = 0.1
    tournament_size: int = 3
    num_top_inspirations: int = 2
    num_diverse_inspirations: int = 1

    def __post_init__(self) -> None:
        _choice(self.kind, "islands.selection.kind", ("ratios", "tournament"))
        for key in ("exploit", "explore", "random"):
            value = getattr(self, key)
            _require(
                0 <= value <= 1, f"islands.selection.{key}", f"must lie in [0, 1], got {value}"
            )
        total = self.exploit + self.explore + self.random
        _require(
            math.isclose(total, 1.0, abs_tol=1e-6),
            "islands.selection",
            f"exploit + explore + random must sum to 1, got {total:g}",
        )
        _require(self.tournament_size >= 1, "islands.selection.tournament_size", "must be >= 1")
        _require(
            self.num_top_inspirations >= 0 and self.num_diverse_inspirations >= 0,
            "islands.selection",
            "inspiration counts must be >= 0",
        )


TOPOLOGIES = ("ring", "bidirectional_ring", "random", "complete")


@dataclass(frozen=True)
class MigrationConfig:
    """How islands trade programs.

    Attributes:
      topology: ``ring``, ``bidirectional_ring``, ``random`` or ``complete``.
      interval: an island sends migrants after every `interval` of its own evaluations;
        0 disables migration.
      rate: fraction of the island's own (non-migrant) programs sent, best first (at
        least one).
      random_destinations: destinations per migration for the ``random`` topology.
    """

    topology: str = "ring"
    interval: int = 25
    rate: float = 0.1
    random_destinations: int = 1

    def __post_init__(self) -> None:
        _choice(self.topology, "islands.migration.topology", TOPOLOGIES)
        _require(self.interval >= 0, "islands.migration.interval", "must be >= 0 (0 disables)")
        _require(
            0 < self.rate <= 1, "islands.migration.rate", f"must lie in (0, 1], got {self.rate}"
        )
        _require(
            self.random_destinations >= 1, "islands.migration.random_destinations", "must be >= 1"
        )


@dataclass(frozen=True)
class IslandsConfig:
    """The island model.

    Attributes:
      count: number of island actors.
      in_flight: children each island keeps in progress at once (mutation or evaluation).
      capacity: sub-population size; the worst programs that are neither elites nor
        MAP-Elites cell champions are evicted beyond it.
      archive_size: elite archive size (best programs, exploit parents).
      max_consecutive_failures: an island gives up after this many mutations in a row
        that produced no new candidate (failed edits or duplicates).
      max_restarts: times a crashed island actor is restarted (rebuilt from the run log).
    """

    count: int = 4
    in_flight: int = 2
    capacity: int = 100
    archive_size: int = 10
    max_consecutive_failures: int = 200
    max_restarts: int = 3
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    migration: MigrationConfig = field(default_factory=MigrationConfig)

    def __post_init__(self) -> None:
        _require(self.count >= 1, "islands.count", f"must be >= 1, got {self.count}")
        _require(self.in_flight >= 1, "islands.in_flight", f"must be >= 1, got {self.in_flight}")
        _require(self.capacity >= 1, "islands.capacity", "must be >= 1")
        _require(
            1 <= self.archive_size <= self.capacity,
            "islands.archive_size",
            "must lie in [1, capacity]",
        )
        _require(
            self.max_consecutive_failures >= 1, "islands.max_consecutive_failures", "must be >= 1"
        )
        _require(self.max_restarts >= 0, "islands.max_restarts", "must be >= 0")


@dataclass(frozen=True)
class OfflineMutationConfig:
    """The no-model operator's knobs.

    Attributes:
      perturb, crossover_literals, crossover_block: relative weights of the operators
        (crossovers fall back to perturbation when parent and inspiration differ in
        structure).
      max_literals: at most this many numeric literals are perturbed per child.
      float_sigma: a float literal is multiplied by exp(N(0, float_sigma)).
      int_steps: integer literals move by one of these steps (either sign), or double or
        halve.
    """

    perturb: float = 0.7
    crossover_literals: float = 0.2
    crossover_block: float = 0.1
    max_literals: int = 3
    float_sigma: float = 0.2
    int_steps: list[int] = field(default_factory=lambda: [1, 2])

    def __post_init__(self) -> None:
        weights = (self.perturb, self.crossover_literals, self.crossover_block)
        _require(
            all(w >= 0 for w in weights) and sum(weights) > 0,
            "mutation.offline",
            "operator weights must be >= 0 and not all 0",
        )
        _require(self.max_literals >= 1, "mutation.offline.max_literals", "must be >= 1")
        _require(self.float_sigma > 0, "mutation.offline.float_sigma", "must be > 0")
        _require(
            bool(self.int_steps) and all(s > 0 for s in self.int_steps),
            "mutation.offline.int_steps",
            "must be positive integers",
        )


MUTATION_BACKENDS = ("offline",)


@dataclass(frozen=True)
class MutationConfig:
    """The shared mutator actor.

    Attributes:
      backend: which backend serves every island (``offline`` needs no model).
      mode: ``diff`` (SEARCH/REPLACE) or ``rewrite`` (whole program).
      samples_per_request: children produced per request (``n``).
      max_concurrency: requests the mutator actor serves at once.
      resources: Ray resources of the mutator actor (a model backend asks for a GPU).
      offline: the offline backend's settings.
    """

    backend: str = "offline"
    mode: str = "diff"
    samples_per_request: int = 1
    max_concurrency: int = 256
    resources: dict[str, float] = field(default_factory=dict)
    offline: OfflineMutationConfig = field(default_factory=OfflineMutationConfig)

    def __post_init__(self) -> None:
        _choice(self.backend, "mutation.backend", MUTATION_BACKENDS)
        _choice(self.mode, "mutation.mode", ("diff", "rewrite"))
        _require(self.samples_per_request >= 1, "mutation.samples_per_request", "must be >= 1")
        _require(self.max_concurrency >= 1, "mutation.max_concurrency", "must be >= 1")


@dataclass(frozen=True)
class EvaluationConfig:
    """The evaluator pool and its sandbox.

    Attributes:
      num_evaluators: evaluator actors, each placed with the task's resources.
      max_attempts: tries per candidate when the evaluator (not the candidate) fails.
      output_limit_kb: captured stdout/stderr kept per stream for artifacts (head + tail).
      output_file_limit_mb: a candidate writing more than this to any file is killed.
      python: interpreter for the sandboxed child; default: the evaluator actor's own.
      unavailable_timeout_s: stop the run when no evaluator has been alive this long
        (every node that can run the task gone); replacements are awaited until then.
    """

    num_evaluators: int = 2
    max_attempts: int = 3
    output_limit_kb: int = 16
    output_file_limit_mb: int = 64
    python: str | None = None
    unavailable_timeout_s: float = 300.0

    def __post_init__(self) -> None:
        _require(self.num_evaluators >= 1, "evaluation.num_evaluators", "must be >= 1")
        _require(self.max_attempts >= 1, "evaluation.max_attempts", "must be >= 1")
        _require(self.output_limit_kb >= 1, "evaluation.output_limit_kb", "must be >= 1")
        _require(self.output_file_limit_mb >= 1, "evaluation.output_file_limit_mb", "must be >= 1")


@dataclass(frozen=True)
class ClusterConfig:
    """Where the actors run.

    Attributes:
      address: None starts a local Ray instance; ``auto`` or ``HOST:PORT`` attaches to a
        running cluster.
      num_cpus: CPUs of the local instance (default: all).
      resources: extra custom resources the local instance advertises (e.g. to try an
        ``apple_gpu`` task on one Mac: ``{apple_gpu: 1}``).
      namespace: Ray namespace of the run's actors.
    """

    address: str | None = None
    num_cpus: int | None = None
    resources: dict[str, float] = field(default_factory=dict)
    namespace: str = "rayevolve"


@dataclass(frozen=True)
class StopConfig:
    """When the run ends (whichever comes first).

    Attributes:
      max_evaluations: candidates evaluated, summed over islands (split evenly).
      target_score: stop once the best score reaches it (in the task's direction).
      max_wall_s: stop after this many seconds; in-flight children are drained.
      drain_timeout_s: how long to wait for in-flight children when stopping.
    """

    max_evaluations: int = 200
    target_score: float | None = None
    max_wall_s: float | None = None
    drain_timeout_s: float = 30.0

    def __post_init__(self) -> None:
        _require(self.max_evaluations >= 1, "stop.max_evaluations", "must be >= 1")
        _require(self.max_wall_s is None or self.max_wall_s > 0, "stop.max_wall_s", "must be > 0")


@dataclass(frozen=True)
class LogConfig:
    """The Parquet run log.

    Attributes:
      flush_rows: write a file once this many rows are buffered.
      flush_interval_s: ...or once the oldest buffered row is this old.
      stats_interval_s: how often each island logs a statistics event.
      failure_timeout_s: stop the run when the log has not been writable this long.
    """

    flush_rows: int = 256
    flush_interval_s: float = 5.0
    stats_interval_s: float = 10.0
    failure_timeout_s: float = 60.0

    def __post_init__(self) -> None:
        _require(self.flush_rows >= 1, "log.flush_rows", "must be >= 1")
        _require(self.flush_interval_s > 0, "log.flush_interval_s", "must be > 0")


@dataclass(frozen=True)
class RunConfig:
    """A whole run.

    Attributes:
      seed: drives every random choice rayevolve makes (islands, mutator requests).
      run_dir: where the log and results go; default: Hydra's output directory.
      resume: a run directory to continue from its log (its saved configuration, with
        any overrides given alongside, e.g. a larger stop.max_evaluations).
      progress: show a progress bar on stderr.
    """

    task: TaskConfig = field(default_factory=TaskConfig)
    mutation: MutationConfig = field(default_factory=MutationConfig)
    islands: IslandsConfig = field(default_factory=IslandsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    log: LogConfig = field(default_factory=LogConfig)
    seed: int = 0
    run_dir: str | None = None
    resume: str | None = None
    progress: bool = True


def _thaw(node: Any) -> None:
    node._set_flag("readonly", None)
    if isinstance(node, DictConfig):
        for key in node.keys():
            child = node._get_node(key)
            if hasattr(child, "_set_flag"):
                _thaw(child)


def schema() -> DictConfig:
    """The RunConfig schema as a mergeable (thawed) OmegaConf node."""
    node = OmegaConf.structured(RunConfig)
    _thaw(node)
    return node


def register_configs() -> None:
    """Store the schema as ``base_config`` for ``conf/config.yaml`` to extend."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name="base_config", node=schema())
    # ${or:a,b}: a unless it is null (oc.select only falls back for missing keys)
    OmegaConf.register_new_resolver(
        "or", lambda value, default: value if value is not None else default, replace=True
    )


def to_run_config(cfg: DictConfig | dict) -> RunConfig:
    """Build (and validate) a `RunConfig` from a composed Hydra config or a plain dict."""
    try:
        if not isinstance(cfg, DictConfig):
            cfg = OmegaConf.merge(schema(), cfg)
        run = OmegaConf.to_object(cfg)
    except ConfigError:
        raise
    except Exception as exc:  # OmegaConf wraps __post_init__ errors and type errors
        cause = exc.__cause__ or exc
        if isinstance(cause, ConfigError):
            raise cause from None
        lines = str(exc).split("\n")
        where = next((line.strip() for line in lines if "full_key:" in line), "")
        raise ConfigError(f"{lines[0]} ({where})" if where else lines[0]) from None
    assert isinstance(run, RunConfig)
    return run
