"""rayevolve: asynchronous island-model code evolution on Ray.

The package root stays import-light (no Ray, no MLX) so that sandboxed evaluation
children and analysis scripts can import records without paying for the engine.
"""

__version__ = "0.1.0"
