"""How a run's configuration is composed from ``conf/`` and what the user gave, the one
way the command line (`rayevolve.cli`) and the Python API (`rayevolve.api`) share: a
task named by ``task.path`` starts from neutral task defaults and is named after its
folder, its OpenEvolve config file applies under the user's settings, and a resumed run
keeps its saved configuration."""

from __future__ import annotations

import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from omegaconf import DictConfig

from rayevolve.config import ConfigError, RunConfig, schema, to_run_config
from rayevolve.openevolve_config import OpenEvolveConfigError, find, read
from rayevolve.paths import CONF_DIR, DATA_ROOT, default_run_dir
from rayevolve.tasks import resolve_task_path

__all__ = ["ConfigError", "OpenEvolveConfigError"]


def search_roots() -> list[Path]:
    """Where relative task and template paths are looked for: here, then rayevolve's own
    files (the checkout, or the wheel's copies)."""
    return [Path.cwd(), DATA_ROOT]


def override_keys(overrides: list[str]) -> list[str]:
    """The keys (and config groups) the command line set, Hydra's own left out."""
    keys = [o.lstrip("+~").partition("=")[0] for o in overrides]
    return [k for k in keys if k and not k.startswith("hydra.")]


def _given(key: str, keys: list[str]) -> bool:
    """Whether the command line set `key`, a key above it or one below it."""
    return any(k == key or key.startswith(k + ".") or k.startswith(key + ".") for k in keys)


def with_task_folder(cfg: DictConfig, keys: list[str], quiet: bool = False) -> DictConfig:
    """A task folder named by ``task.path`` (without ``task=NAME``) starts from neutral
    task defaults, not the default task's, and is named after the folder; its OpenEvolve
    config file (``task.openevolve_config``) is applied under the command line's
    overrides and said once on stderr."""
    from omegaconf import OmegaConf

    by_path = "task.path" in keys and "task" not in keys
    if by_path:
        task = schema().task
        for field in {k.split(".")[1] for k in keys if k.startswith("task.")}:
            task[field] = cfg.task[field]
        cfg.task = task
    if OmegaConf.is_missing(cfg.task, "path"):
        return cfg
    folder = resolve_task_path(cfg.task.path, search_roots())
    if by_path and OmegaConf.is_missing(cfg.task, "name"):
        cfg.task.name = folder.name
    if not (by_path or cfg.task.openevolve_config):
        return cfg
    path = find(folder, cfg.task.openevolve_config)
    if path is None:
        return cfg
    mapped = read(path, str(cfg.mutation.backend))
    overridden = {key for key in mapped.settings if _given(key, keys)}
    nested = OmegaConf.from_dotlist([])
    for key, value in mapped.settings.items():
        if key not in overridden:
            OmegaConf.update(nested, key, value, force_add=True)
    try:
        cfg = OmegaConf.merge(cfg, nested)
    except Exception as exc:  # OmegaConf's validation: the folder's value is refused
        raise OpenEvolveConfigError(f"{path}: {str(exc).splitlines()[0]}") from None
    for line in [] if quiet else mapped.describe(overridden):
        print(f"rayevolve: {line}", file=sys.stderr)
    return cfg


def resumed_config(cfg: DictConfig, overrides: list[str]) -> DictConfig:
    """The resumed run's saved configuration, with the overrides given now on top."""
    from omegaconf import OmegaConf

    saved = Path(cfg.resume) / "config.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"resume={cfg.resume}: no config.yaml there; is it a rayevolve run directory?"
        )
    merged = OmegaConf.merge(schema(), OmegaConf.load(saved))
    for override in overrides:
        key, _, value = override.lstrip("+~").partition("=")
        if key in ("resume", "run_dir") or key.startswith("hydra."):
            continue
        if "." not in key and OmegaConf.is_dict(merged.get(key)):  # a group: task=NAME
            raise ConfigError(
                f"resume={cfg.resume} {key}={value}: a resumed run keeps its {key} settings "
                f"(its config.yaml); start a new run for another {key}, or override single "
                f"keys ({key}.KEY=VALUE)"
            )
        OmegaConf.update(merged, key, OmegaConf.from_dotlist([f"v={value}"]).v, force_add=True)
    merged.resume = str(Path(cfg.resume))
    return merged


def compose_run(
    overrides: Sequence[str] = (), settings: Mapping | None = None, quiet: bool = False
) -> tuple[RunConfig, Path]:
    """The run's validated configuration and its run directory, composed as the command
    line composes it: ``conf/``, the `overrides` (Hydra's syntax), then `settings`
    (nested values); a resumed run's saved configuration under ``resume=``. Every
    refusal is a `ConfigError` (or a `TaskError`) that names the key; nothing is written."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    from rayevolve.config import register_configs

    overrides = list(overrides)
    register_configs()
    try:
        with initialize_config_dir(
            version_base="1.3", config_dir=str(CONF_DIR), job_name="rayevolve"
        ):
            cfg = hydra_compose(
                "config", overrides=[o for o in overrides if not o.startswith("hydra.")]
            )
    except HydraException as exc:
        cause = f"\n{exc.__cause__}" if exc.__cause__ else ""
        raise ConfigError(config_error_message(f"{exc}{cause}")) from None
    if cfg.get("resume"):
        cfg = resumed_config(cfg, overrides)
        run_config = _validated(cfg)
        return run_config, Path(run_config.resume)
    settings = dict(settings or {})
    keys = override_keys(overrides) + list(flatten(settings))
    if settings:
        try:
            cfg = OmegaConf.merge(cfg, OmegaConf.create(plain(settings)))
        except Exception as exc:  # OmegaConf's validation: unknown key, wrong type
            raise ConfigError(config_error_message(str(exc))) from None
    cfg = with_task_folder(cfg, keys, quiet=quiet)
    run_config = _validated(cfg)
    run_dir = (
        Path(run_config.run_dir) if run_config.run_dir else default_run_dir(run_config.task.name)
    )
    return run_config, run_dir


def _validated(cfg: DictConfig) -> RunConfig:
    unknown = _unknown_keys(cfg, schema())
    if unknown:
        raise ConfigError(unknown_key_hint(unknown[0]) or f"{unknown[0]} is not a setting")
    try:
        return to_run_config(cfg)
    except ConfigError as exc:
        raise ConfigError(config_error_message(str(exc))) from None


FULL_KEY = re.compile(r"full_key: ([\w.]+)")
OVERRIDE_KEY = re.compile(r"(?:override|assign to field) '([\w.]+)'")


def config_error_message(text: str) -> str:
    """Hydra's or OmegaConf's message as one line (its hint to add ``+`` left out); an
    unknown key said as such, with the nearest valid keys and the section's keys."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    lines = [
        x
        for x in lines
        if not x.startswith(("To append", "Set the environment", "reference_type", "object_type"))
    ]
    if "Config search path:" in lines:  # where Hydra looked: not the user's business
        lines = lines[: lines.index("Config search path:")]
    if len(lines) > 1 and lines[1].startswith("Available options"):  # a group's options
        lines = [lines[0], lines[1].rstrip(":") + ": " + ", ".join(lines[2:])]
    found = FULL_KEY.search(text) or OVERRIDE_KEY.search(text)
    key = found.group(1) if found else None
    if key and ("not in" in text or "cannot assign" in text or "Could not override" in text):
        hint = unknown_key_hint(key)
        if hint:
            return hint
    return "; ".join(lines)


def _unknown_keys(cfg, reference, prefix: str = "") -> list[str]:
    """Keys of `cfg` that the schema `reference` does not have (``+key=...`` adds them),
    free-form dictionaries (``task.resources``) aside."""
    from omegaconf import DictConfig as Node
    from omegaconf import OmegaConf

    if not isinstance(cfg, Node) or not isinstance(reference, Node):
        return []
    if OmegaConf.get_type(reference) in (dict, None):
        return []
    found = []
    known = set(reference.keys())
    for key in cfg.keys():
        if key not in known:
            found.append(f"{prefix}{key}")
        else:
            child = cfg._get_node(key)
            found += _unknown_keys(child, reference._get_node(key), f"{prefix}{key}.")
    return found


def unknown_key_hint(key: str) -> str | None:
    """`key` is no setting: the nearest settings and those of its section; None if it
    is one (or lies in a free-form dictionary such as ``task.resources``)."""
    from omegaconf import DictConfig as Node
    from omegaconf import OmegaConf

    parts = key.split(".")
    section = ".".join(parts[:-1])
    root = schema()
    node = OmegaConf.select(root, section) if section else root
    if not isinstance(node, Node) or OmegaConf.get_type(node) in (dict, None):
        return None
    valid = [str(k) for k in node.keys()]
    if parts[-1] in valid:
        return None
    near = difflib.get_close_matches(parts[-1], valid, n=3, cutoff=0.6)
    prefix = section + "." if section else ""
    said = f"{key} is not a setting"
    if near:
        said += "; did you mean " + " or ".join(prefix + n for n in near) + "?"
    said += (
        f" ({'the settings of ' + section if section else 'top-level keys'}: {', '.join(valid)})"
    )
    return said


def plain(value):
    """Settings as OmegaConf takes them: Paths as strings, tuples as lists."""
    from omegaconf import OmegaConf

    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, DictConfig):
        return OmegaConf.to_container(value)
    return value


def flatten(settings: Mapping, prefix: str = "") -> dict:
    """Nested settings as dotted keys."""
    flat = {}
    for key, value in settings.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, name + "."))
        else:
            flat[name] = plain(value)
    return flat
