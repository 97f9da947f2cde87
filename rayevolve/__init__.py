"""rayevolve: asynchronous island-model code evolution on Ray.

From Python: ``rayevolve.evolve(task, **settings)``, ``rayevolve.evolve_function(fn,
evaluate)``, ``rayevolve.resume(run_dir)`` and ``rayevolve.load(run_dir)`` (see
`rayevolve.api`). The package root stays import-light (no Ray, no MLX, no Hydra until one
of them is called) so that sandboxed evaluation children and analysis scripts can import
records without paying for the engine.
"""

__version__ = "0.1.0"
__all__ = ["ConfigError", "RunError", "RunResult", "evolve", "evolve_function", "load", "resume"]


def __getattr__(name: str):
    if name in __all__:
        from rayevolve import api

        return getattr(api, name)
    raise AttributeError(f"module 'rayevolve' has no attribute {name!r}")
