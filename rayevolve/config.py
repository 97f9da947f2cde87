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

from rayevolve.result import ISOLATION_SETTINGS


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
      name: a metric the evaluator returns, or a built-in (`rayevolve.islands.features.BuiltIn`):
        ``code_length`` (characters of the EVOLVE-BLOCKs), ``complexity`` (characters of
        the whole program, OpenEvolve's), ``diversity`` (mean edit distance, 0..1, to the
        island's best programs, OpenEvolve's) or ``score``.
      min, max: value range mapped onto the bins (values outside are clipped); both null:
        learned, as OpenEvolve does, from the values the island has seen so far (its grid
        is redrawn when a value falls outside).
      bins: number of cells along this dimension.
    """

    name: str = MISSING
    min: float | None = 0.0
    max: float | None = 1.0
    bins: int = 10

    @property
    def learned(self) -> bool:
        return self.min is None

    def __post_init__(self) -> None:
        _require(self.bins >= 1, f"feature {self.name}.bins", f"must be >= 1, got {self.bins}")
        _require(
            (self.min is None) == (self.max is None),
            f"feature {self.name}",
            "min and max are both numbers or both null (learned from the values seen)",
        )
        _require(
            self.min is None or self.max > self.min,
            f"feature {self.name}",
            f"max ({self.max}) must exceed min ({self.min})",
        )


@dataclass(frozen=True)
class TaskConfig:
    """What to evolve and how to score it (one YAML per task under `conf/task/`).

    Attributes:
      name: short name used in run directory names (default with ``task.path``: the
        folder's name).
      path: task folder with ``initial_program.*`` and ``evaluator.py``; relative paths
        are resolved against the launch directory, then the project root. Given on the
        command line without ``task=NAME``, the task starts from these defaults (not
        another task's settings) and the folder's OpenEvolve ``config.yaml`` is applied
        under the command line's overrides (`rayevolve.openevolve_config`).
      initial_program: the starting program's file name in the folder; default: the one
        ``initial_program.*`` there.
      evaluator: the evaluator's file name in the folder.
      openevolve_config: an OpenEvolve config file in the folder to apply (default with
        ``task.path``: ``config.yaml`` or ``config.yml`` where there is one; ``none``:
        read none).
      language: overrides the language guessed from the initial program's suffix.
      description: text for model prompts; defaults to the folder's README.md.
      resources: Ray resources one evaluation needs, e.g. ``{CPU: 1}`` or ``{apple_gpu: 1}``.
      timeout_s: wall-clock limit per candidate (the whole process group is killed).
      memory_limit_mb: address-space limit per candidate; 0 disables it (needed on macOS,
        where Metal maps more virtual memory than any sane limit).
      direction: ``maximize`` or ``minimize`` the score.
      score_metric: the metric the evaluator returns that is the score (default: its
        ``combined_score``; without one, OpenEvolve's fallback, the mean of the numeric
        metrics that are not features, which the run says at start and refuses when a
        metric reads like an error or a cost, ``err``, ``loss``, ``time``, ...).
      cascade: call ``evaluate_stage1/2/3`` where the evaluator defines them (OpenEvolve's
        ``cascade_evaluation``); off: ``evaluate`` alone.
      cascade_thresholds: minimum score after stage k to run stage k+1 (none: every
        stage runs).
      features: MAP-Elites dimensions.
      env: environment variables for the evaluator's sandbox (which inherits no other
        variables), e.g. ``{GQA_PRESET: qwen3-0.6b}``; not for secrets.
      label_selector: Ray node labels the evaluators must land on, in Ray's selector
        syntax (``v``, ``!v``, ``in(a,b)``, ``!in(a,b)``), e.g. NVIDIA kernel tasks:
        ``{ray.io/accelerator-type: "in(H100,H200,A100)"}`` (Ray sets that label on
        accelerator nodes; a Mac's says ``M2`` etc.); never route NVIDIA work by ``GPU``
        alone, which a Mac reports too since Ray 2.58.
      devices: device files judged processes may use inside their sandbox (globs), e.g.
        ``[/dev/nvidia*]`` for CUDA; with any, ``/sys`` is shown read-only too (drivers
        read it). Nothing else of the host's /dev is there.
      sandbox: how each candidate's process starts: ``forkserver`` forks it from a warm
        process that has the evaluator's imports loaded (milliseconds), ``spawn`` starts
        a fresh interpreter (tens of milliseconds plus the imports), ``auto`` the fork
        server on Linux and spawn elsewhere (forking after macOS frameworks such as
        Metal have started is unsafe).
    """

    name: str = MISSING
    path: str = MISSING
    initial_program: str | None = None
    evaluator: str = "evaluator.py"
    openevolve_config: str | None = None
    language: str | None = None
    description: str | None = None
    resources: dict[str, float] = field(default_factory=lambda: {"CPU": 1.0})
    timeout_s: float = 60.0
    memory_limit_mb: int = 4096
    direction: str = "maximize"
    score_metric: str | None = None
    cascade: bool = True
    cascade_thresholds: list[float] = field(default_factory=list)
    features: list[FeatureConfig] = field(
        default_factory=lambda: [FeatureConfig(name="code_length", min=0, max=4000, bins=8)]
    )
    env: dict[str, str] = field(default_factory=dict)
    label_selector: dict[str, str] = field(default_factory=dict)
    devices: list[str] = field(default_factory=list)
    sandbox: str = "auto"

    def __post_init__(self) -> None:
        _choice(self.direction, "task.direction", ("maximize", "minimize"))
        for pattern in self.devices:
            _require(pattern.startswith("/dev/"), "task.devices", f"{pattern!r} is not under /dev")
        _choice(self.sandbox, "task.sandbox", ("auto", "forkserver", "spawn"))
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
      count: number of islands.
      in_flight: children each island keeps in progress at once (mutation or evaluation).
      per_actor: islands sharing one Ray actor process (`IslandHost`). 1: each island is
        its own actor. Every Ray actor costs CPU while it waits (its worker wakes up 100
        times a second, about 6 ms of CPU per second here; `make bench`), so with tens of
        islands on few cores, packing them (e.g. 16 per process) keeps that cost from
        growing with the number of islands. Migration, restarts (of the whole process,
        each island rebuilt from the log) and logging are the same either way.
      capacity: sub-population size; the worst programs that are neither elites nor
        MAP-Elites cell champions are evicted beyond it.
      archive_size: elite archive size (best programs, exploit parents).
      max_consecutive_failures: an island gives up after this many mutations in a row
        that produced no new candidate (failed edits or duplicates).
      max_restarts: times a crashed island actor is restarted (rebuilt from the run log).
    """

    count: int = 4
    in_flight: int = 2
    per_actor: int = 1
    capacity: int = 100
    archive_size: int = 10
    max_consecutive_failures: int = 200
    max_restarts: int = 3
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    migration: MigrationConfig = field(default_factory=MigrationConfig)

    def __post_init__(self) -> None:
        _require(self.count >= 1, "islands.count", f"must be >= 1, got {self.count}")
        _require(self.in_flight >= 1, "islands.in_flight", f"must be >= 1, got {self.in_flight}")
        _require(self.per_actor >= 1, "islands.per_actor", f"must be >= 1, got {self.per_actor}")
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


MUTATION_BACKENDS = ("offline", "openai", "vllm")


@dataclass(frozen=True)
class ModelConfig:
    """One model of the ensemble (``mutation.models``).

    Attributes:
      name: the model name the endpoint serves (``openai``), or a local path or hub id
        (``vllm``; only one model per vLLM engine).
      weight: relative probability of being chosen for a request.
      temperature, top_p, max_tokens: sampling; None takes ``mutation.*``.
      base_url, api_key_env: per-model endpoint (``openai``); None takes ``mutation.*``.
    """

    name: str = MISSING
    weight: float = 1.0
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    base_url: str | None = None
    api_key_env: str | None = None

    def __post_init__(self) -> None:
        _require(self.weight > 0, f"mutation.models[{self.name}].weight", "must be > 0")


@dataclass(frozen=True)
class BanditConfig:
    """Shifts the ensemble's weights toward models whose children improve on their parents.

    UCB1 over rewards in [0, 1]: a child's reward is its parent-relative gain,
    ``(child - parent) / |parent|`` in the task's direction, clipped to [0, 1] (0 for a
    failed edit or evaluation). Each model's choice probability is its configured weight
    times ``exp(ucb / temperature)``, normalised.

    Attributes:
      enabled: adapt the weights during the run (False: fixed weights).
      exploration: UCB1's exploration coefficient c in ``mean + c sqrt(ln N / n)``.
      temperature: softness of the choice; small values approach argmax.
      event_every: log a ``model_weights`` event after this many rewards.
    """

    enabled: bool = False
    exploration: float = 0.5
    temperature: float = 0.1
    event_every: int = 50

    def __post_init__(self) -> None:
        _require(self.exploration >= 0, "mutation.bandit.exploration", "must be >= 0")
        _require(self.temperature > 0, "mutation.bandit.temperature", "must be > 0")
        _require(self.event_every >= 1, "mutation.bandit.event_every", "must be >= 1")


@dataclass(frozen=True)
class PromptConfig:
    """How prompts are rendered (Jinja2 templates, see `conf/prompts/`).

    Templates are looked up by file name in the task folder's ``prompts/`` first, then in
    `template_dir`, then in rayevolve's defaults, so a task or a user overrides one file
    without copying the rest.

    Attributes:
      template_dir: a folder of template overrides (None: only the task's and defaults).
      rewrite_below_chars: ask for a full rewrite instead of a diff when the parent's
        EVOLVE-BLOCKs are shorter than this (0: never).
      max_feedback_chars: evaluation feedback shown per artifact (head and tail kept).
      max_inspiration_chars: characters of each inspiration's code shown.
      max_description_chars: characters of the task description shown.
    """

    template_dir: str | None = None
    rewrite_below_chars: int = 0
    max_feedback_chars: int = 3000
    max_inspiration_chars: int = 6000
    max_description_chars: int = 8000

    def __post_init__(self) -> None:
        for key in ("max_feedback_chars", "max_inspiration_chars", "max_description_chars"):
            _require(getattr(self, key) >= 200, f"mutation.prompts.{key}", "must be >= 200")
        _require(self.rewrite_below_chars >= 0, "mutation.prompts.rewrite_below_chars", ">= 0")


@dataclass(frozen=True)
class OpenAIConfig:
    """The client of an OpenAI-compatible chat-completions endpoint.

    Attributes:
      max_concurrent: requests in flight to the endpoint at once.
      timeout_s: per-request timeout (connect and read).
      max_retries: retries of a request after 429, 5xx, a timeout or a connection error.
      backoff_s, backoff_max_s: exponential backoff (with jitter) between retries.
      supports_n: send ``n`` in one request; False sends n requests (for endpoints that
        ignore ``n``).
      check_models: at start, refuse to run unless ``GET /models`` lists every model.
      unavailable_after: consecutive requests failing after all retries before the run
        is stopped as the endpoint being down.
      transport: the SDK's HTTP transport: ``aiohttp`` (the SDK's faster option for many
        concurrent requests, about a third less CPU per request) or ``httpx`` (its default).
    """

    max_concurrent: int = 64
    timeout_s: float = 600.0
    max_retries: int = 4
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    supports_n: bool = True
    check_models: bool = True
    unavailable_after: int = 20
    transport: str = "aiohttp"

    def __post_init__(self) -> None:
        _choice(self.transport, "mutation.openai.transport", ("aiohttp", "httpx"))
        _require(self.max_concurrent >= 1, "mutation.openai.max_concurrent", "must be >= 1")
        _require(self.timeout_s > 0, "mutation.openai.timeout_s", "must be > 0")
        _require(self.max_retries >= 0, "mutation.openai.max_retries", "must be >= 0")
        _require(self.unavailable_after >= 1, "mutation.openai.unavailable_after", ">= 1")


@dataclass(frozen=True)
class VLLMConfig:
    """vLLM's in-process asynchronous engine (``AsyncLLM``) inside the mutator actor.

    Attributes:
      num_gpus: GPUs the mutator actor asks Ray for (0 on a CPU build of vLLM).
      tensor_parallel_size: GPUs one model is split over.
      dtype: ``auto``, ``bfloat16``, ``float16`` or ``float32``.
      max_model_len: context length (prompt + reply); None: the model's own.
      gpu_memory_utilization: fraction of GPU memory vLLM may take (of host memory on
        the CPU build, where 0.3 is a sane value).
      enable_prefix_caching: reuse the KV cache of the shared prompt prefix.
      max_num_seqs: sequences batched at once; None: vLLM's default.
      restarts: engine restarts after its core process dies, before giving up.
      engine_args: further ``AsyncEngineArgs`` fields, passed through unchanged.
    """

    num_gpus: float = 1.0
    tensor_parallel_size: int = 1
    dtype: str = "auto"
    max_model_len: int | None = 16384
    gpu_memory_utilization: float = 0.85
    enable_prefix_caching: bool = True
    max_num_seqs: int | None = None
    restarts: int = 3
    engine_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require(self.num_gpus >= 0, "mutation.vllm.num_gpus", "must be >= 0")
        _require(
            0 < self.gpu_memory_utilization <= 1,
            "mutation.vllm.gpu_memory_utilization",
            f"must lie in (0, 1], got {self.gpu_memory_utilization}",
        )
        _choice(self.dtype, "mutation.vllm.dtype", ("auto", "bfloat16", "float16", "float32"))
        _require(self.restarts >= 0, "mutation.vllm.restarts", "must be >= 0")


@dataclass(frozen=True)
class MutationConfig:
    """The shared mutator actor.

    Attributes:
      backend: ``offline`` (no model), ``openai`` (any OpenAI-compatible endpoint) or
        ``vllm`` (an in-process engine on the mutator actor's GPU).
      mode: ``diff`` (SEARCH/REPLACE) or ``rewrite`` (whole program).
      samples_per_request: children produced per request (``n``).
      max_concurrency: requests the mutator actor serves at once.
      resources: Ray resources of the mutator actor (``vllm.num_gpus`` is added).
      label_selector: Ray node labels the mutator actor must land on, e.g.
        ``{os: "!macos"}`` so a GPU-asking vLLM mutator never lands on a Mac (which Ray
        2.58+ reports as ``GPU: 1``).
      model: the model when there is only one (``openai``, ``vllm``).
      models: an ensemble; when given, `model` is ignored.
      base_url: the endpoint (``openai``), e.g. ``http://127.0.0.1:8000/v1``.
      api_key_env: the environment variable holding the API key, read on the driver (else
        on the mutator's node) and never logged. Unset or empty: no key (fine for
        ``vllm serve``).
      temperature, top_p, max_tokens: default sampling settings.
      repair_attempts: a reply that yields no child is answered with its error and the
        model asked again, this many times (0: never).
      bandit: adaptive ensemble weights.
      prompts: prompt rendering.
      openai, vllm, offline: each backend's own settings.
    """

    backend: str = "offline"
    mode: str = "diff"
    samples_per_request: int = 1
    max_concurrency: int = 256
    resources: dict[str, float] = field(default_factory=dict)
    label_selector: dict[str, str] = field(default_factory=dict)
    model: str | None = None
    models: list[ModelConfig] = field(default_factory=list)
    base_url: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    temperature: float = 0.8
    top_p: float = 0.95
    max_tokens: int = 4096
    repair_attempts: int = 1
    bandit: BanditConfig = field(default_factory=BanditConfig)
    prompts: PromptConfig = field(default_factory=PromptConfig)
    openai: OpenAIConfig = field(default_factory=OpenAIConfig)
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    offline: OfflineMutationConfig = field(default_factory=OfflineMutationConfig)

    def __post_init__(self) -> None:
        _choice(self.backend, "mutation.backend", MUTATION_BACKENDS)
        _choice(self.mode, "mutation.mode", ("diff", "rewrite"))
        _require(self.samples_per_request >= 1, "mutation.samples_per_request", "must be >= 1")
        _require(self.max_concurrency >= 1, "mutation.max_concurrency", "must be >= 1")
        _require(self.temperature >= 0, "mutation.temperature", "must be >= 0")
        _require(0 < self.top_p <= 1, "mutation.top_p", "must lie in (0, 1]")
        _require(self.max_tokens >= 1, "mutation.max_tokens", "must be >= 1")
        _require(self.repair_attempts >= 0, "mutation.repair_attempts", "must be >= 0")
        if self.backend == "offline":
            return
        _require(
            bool(self.models) or bool(self.model),
            "mutation.model",
            f"the {self.backend} backend needs a model: set mutation.model=NAME "
            "(or a list in mutation.models)",
        )
        names = [m.name for m in self.ensemble()]
        _require(len(set(names)) == len(names), "mutation.models", f"model names repeat: {names}")
        if self.backend == "openai":
            for model in self.ensemble():
                _require(
                    bool(model.base_url or self.base_url),
                    "mutation.base_url",
                    "the openai backend needs an endpoint, e.g. "
                    "mutation.base_url=http://127.0.0.1:8000/v1",
                )
        if self.backend == "vllm":
            _require(
                len(self.ensemble()) == 1,
                "mutation.models",
                "one vLLM engine serves one model; use the openai backend against several "
                "`vllm serve` endpoints for an ensemble",
            )

    def ensemble(self) -> tuple[ModelConfig, ...]:
        """The models to choose from (`models`, or `model` alone with weight 1)."""
        if self.models:
            return tuple(self.models)
        return (ModelConfig(name=self.model),) if self.model else ()

    def api_key_envs(self) -> tuple[str, ...]:
        """The environment variables holding the ensemble's API keys."""
        names = {m.api_key_env or self.api_key_env for m in self.ensemble()}
        return tuple(sorted(n for n in names if n))

    def actor_resources(self) -> dict[str, float]:
        """Ray resources of the mutator actor: `resources`, plus the vLLM engine's GPUs."""
        resources = dict(self.resources)
        if self.backend == "vllm" and self.vllm.num_gpus:
            resources["GPU"] = resources.get("GPU", 0.0) + self.vllm.num_gpus
        return resources


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
      batch_window_s: an idle evaluator gets, in one actor call, as many waiting
        candidates as its recent per-candidate time fits in this window (at least one,
        at most `batch_max`). An actor call costs about a millisecond of CPU, as much as
        a cheap evaluation; a batch delays its first result by at most about the window,
        and evaluations slower than the window always go one per call. 0: never batch.
      batch_max: the most candidates in one call.
      isolation: how far candidates are kept from everything else (see docs/sandbox.md):
        ``auto`` takes the strongest level each node offers (``namespaces`` on Linux,
        through bubblewrap; ``seatbelt`` on macOS) and falls back to ``none`` only where
        there is none, saying so at start and in the summary; a level named here that a
        node cannot give stops the run at start. ``none``: a plain child process.
      read_paths: further host paths that judged processes may read (e.g. a model folder
        an evaluator loads); under a confinement they see nothing else of the host but
        the system, Python and the task's copy.
    """

    num_evaluators: int = 2
    max_attempts: int = 3
    output_limit_kb: int = 16
    output_file_limit_mb: int = 64
    python: str | None = None
    unavailable_timeout_s: float = 300.0
    batch_window_s: float = 0.05
    batch_max: int = 8
    isolation: str = "auto"
    read_paths: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        _choice(self.isolation, "evaluation.isolation", ISOLATION_SETTINGS)
        _require(self.num_evaluators >= 1, "evaluation.num_evaluators", "must be >= 1")
        _require(self.max_attempts >= 1, "evaluation.max_attempts", "must be >= 1")
        _require(self.output_limit_kb >= 1, "evaluation.output_limit_kb", "must be >= 1")
        _require(self.output_file_limit_mb >= 1, "evaluation.output_file_limit_mb", "must be >= 1")
        _require(self.batch_max >= 1, "evaluation.batch_max", "must be >= 1")
        _require(self.batch_window_s >= 0, "evaluation.batch_window_s", "must be >= 0")


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
class UiConfig:
    """The live web view served from the driver while the run goes (``python -m
    rayevolve.ui RUN_DIR`` serves the same view of any run or sweep, live or finished).

    Attributes:
      port: None serves nothing; a port number serves the view there (0: a free port,
        printed at start).
      host: the address it listens on; 127.0.0.1 keeps it to this machine (reach it from
        elsewhere with ``ssh -L PORT:127.0.0.1:PORT``).
      refresh_s: seconds between reloads of the log in the page.
    """

    port: int | None = None
    host: str = "127.0.0.1"
    refresh_s: float = 2.0

    def __post_init__(self) -> None:
        _require(self.port is None or 0 <= self.port <= 65535, "ui.port", "must be 0..65535")
        _require(self.refresh_s > 0, "ui.refresh_s", "must be > 0")


@dataclass(frozen=True)
class StopConfig:
    """When the run ends (whichever comes first).

    Attributes:
      max_evaluations: candidates evaluated, summed over islands (split evenly).
      target_score: stop once the best score reaches it (in the task's direction).
      max_wall_s: stop after this many seconds; in-flight children are drained.
      drain_timeout_s: how long to wait for in-flight children when stopping.
    """

    max_evaluations: int = 1200
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
      island_batch_s: islands send their program rows to the log actor in batches at most
        this old (one actor call per batch instead of per row); 0 sends each row at once.
        An island that crashes loses at most this window of evaluated rows, which are
        generated anew like its children in flight.
      writer_wait_s: how long to wait for another process still writing the run
        directory (a just-killed driver's workers) before refusing.
      write_ahead: every batch of rows is on disk (a synced write-ahead segment) before
        the log actor acknowledges it; off, rows wait in memory for the next Parquet
        flush (a driver killed meanwhile loses them: for measurements only).
    """

    flush_rows: int = 256
    flush_interval_s: float = 5.0
    stats_interval_s: float = 10.0
    failure_timeout_s: float = 60.0
    island_batch_s: float = 0.1
    writer_wait_s: float = 30.0
    write_ahead: bool = True

    def __post_init__(self) -> None:
        _require(self.flush_rows >= 1, "log.flush_rows", "must be >= 1")
        _require(self.flush_interval_s > 0, "log.flush_interval_s", "must be > 0")
        _require(self.island_batch_s >= 0, "log.island_batch_s", "must be >= 0")
        _require(self.writer_wait_s >= 0, "log.writer_wait_s", "must be >= 0")


@dataclass(frozen=True)
class RunConfig:
    """A whole run.

    Attributes:
      seed: drives every random choice rayevolve makes (islands, mutator requests).
      run_dir: where the log and results go; default: Hydra's output directory.
      resume: a run directory to continue from its log (its saved configuration, with
        any overrides given alongside, e.g. a larger stop.max_evaluations).
      force_resume: resume even though the task folder changed since the run started
        (refused otherwise); the change is recorded as a ``task_changed`` event.
      progress: show a progress bar on stderr.
    """

    task: TaskConfig = field(default_factory=TaskConfig)
    mutation: MutationConfig = field(default_factory=MutationConfig)
    islands: IslandsConfig = field(default_factory=IslandsConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    stop: StopConfig = field(default_factory=StopConfig)
    log: LogConfig = field(default_factory=LogConfig)
    ui: UiConfig = field(default_factory=UiConfig)
    seed: int = 0
    run_dir: str | None = None
    resume: str | None = None
    force_resume: bool = False
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
    from rayevolve.paths import default_run_dir

    # hydra.run.dir: the one rule for a new run's folder (cached: resolved once per run)
    OmegaConf.register_new_resolver(
        "rayevolve_run_dir", lambda name: str(default_run_dir(name)), use_cache=True, replace=True
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
