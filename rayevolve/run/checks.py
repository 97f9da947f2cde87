"""What is refused before any actor starts, each with what to do: a mutator that could
never change the initial program, prompt templates that do not render, a GPU shared in a
way Ray cannot place, actors no node of the cluster could ever hold; and what is said
(not refused) when fewer evaluators fit than were asked for."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from rayevolve.cluster import ActorRequest, InfeasibleError, capacity, check_feasible, gpu_sharing
from rayevolve.config import RunConfig
from rayevolve.mutation.offline import OfflineBackend
from rayevolve.program import Program
from rayevolve.result import EvalResult
from rayevolve.run.errors import RunError
from rayevolve.tasks import TaskSpec

log = logging.getLogger(__name__)
SCORE = "combined_score"
# metric names that read like something to make small: the fallback would maximise them
COSTLY = re.compile(
    r"err|loss|cost|time|latency|duration|delay|regret|penalt|violation|mse|mae|rmse|"
    r"distance|dist\b|gap|residual|miss|fail|wrong|runtime|seconds|_s$|_ms$",
    re.IGNORECASE,
)


def check_startable(config: RunConfig, task: TaskSpec) -> None:
    """Refuse a run whose mutator could never change the initial program, or whose
    evaluators and mutator would share a GPU in a way Ray cannot place."""
    if config.mutation.backend == "offline":
        reason = OfflineBackend.cannot_change(task.initial_code, task.language)
        if reason:
            raise RunError(f"task {task.name}: {reason}")
    sharing = gpu_sharing(task.resources, config.mutation.actor_resources())
    if sharing:
        raise RunError(sharing)


def prompt_context(config: RunConfig, task: TaskSpec, search_roots: list[Path]):
    """Templates and task text for a model backend, gathered and test-rendered here so a
    broken template stops the run before any actor starts; None for the offline one."""
    from rayevolve.mutation.prompts import (
        PromptBuilder,
        PromptContext,
        PromptError,
        gather_templates,
    )

    cfg = config.mutation
    if cfg.backend == "offline":
        return None
    try:
        template_dir = None
        if cfg.prompts.template_dir:
            wanted = Path(cfg.prompts.template_dir).expanduser()
            found = [r / wanted for r in search_roots if (r / wanted).is_dir()]
            if not found:
                raise PromptError(f"template_dir {wanted} is not a folder")
            template_dir = found[0]
        context = PromptContext(
            task_name=task.name,
            description=task.description,
            language=task.language,
            maximize=task.maximize,
            templates=gather_templates(task.files, template_dir),
            settings=cfg.prompts,
        )
        initial = Program.create(task.initial_code, language=task.language, parent=None, island=-1)
        PromptBuilder(context).build(initial, [], cfg.mode)
    except PromptError as exc:
        raise RunError(f"mutation.prompts: {exc}") from None
    return context


def requests(config: RunConfig, task: TaskSpec) -> list[ActorRequest]:
    """What the run's placed actors ask of a node: an evaluator, the mutator."""
    return [
        ActorRequest(
            f"each evaluator of task {task.name!r} (task.resources, task.label_selector)",
            task.resources,
            task.label_selector,
        ),
        ActorRequest(
            f"the {config.mutation.backend} mutator (mutation.resources, mutation.vllm.num_gpus)",
            config.mutation.actor_resources(),
            dict(config.mutation.label_selector),
        ),
    ]


def check_placeable(config: RunConfig, task: TaskSpec, nodes: list[dict]) -> str | None:
    """Refuse actors no live node could hold; return what to say when the cluster holds
    fewer evaluators than asked (the others wait for a node that fits them)."""
    wanted = requests(config, task)
    try:
        check_feasible(wanted, nodes)
    except InfeasibleError as exc:
        raise RunError(str(exc)) from None
    fit = capacity(wanted[0], nodes)
    asked = config.evaluation.num_evaluators
    if fit is None or fit >= asked:
        return None
    message = (
        f"evaluation.num_evaluators={asked}, but the live nodes hold {fit} evaluator(s) of "
        f"{dict(task.resources)}: {asked - fit} wait for a node that fits them"
    )
    log.warning("%s", message)
    return message


def check_objective(task: TaskSpec, result: EvalResult) -> str:
    """What the score is, from the initial program's verdict: ``task.score_metric``, the
    evaluator's ``combined_score``, or OpenEvolve's fallback (the mean of the numeric
    metrics that are not features). The fallback is refused where a metric it averages
    reads like an error or a cost (maximising it would be the wrong objective, silently);
    returns the line that says what is optimised, and which way."""
    direction = "maximized" if task.maximize else "minimized"
    if task.score_metric:
        return f"the score is {task.score_metric} (task.score_metric), {direction}"
    if SCORE in result.metrics:
        return f"the score is the evaluator's {SCORE}, {direction}"
    features = {f.name for f in task.features}
    averaged = sorted(k for k in result.metrics if k not in features) or sorted(result.metrics)
    costly = [k for k in averaged if COSTLY.search(k)]
    mean = averaged[0] if len(averaged) == 1 else "the mean of " + ", ".join(averaged)
    if costly:
        raise RunError(
            f"task {task.name}: {task.evaluator} returns no {SCORE}, so the score would be "
            f"{mean}, {direction}; {costly[0]} reads like an error or a cost. Say what to "
            f"optimise: return {SCORE} from evaluate, or set task.score_metric={costly[0]} "
            "and task.direction=minimize (or maximize)"
        )
    line = (
        f"{task.evaluator} returns no {SCORE}: the score is {mean}, {direction} "
        f"(OpenEvolve's fallback); set task.score_metric=NAME to score by one metric"
    )
    log.warning("task %s: %s", task.name, line)
    return line
