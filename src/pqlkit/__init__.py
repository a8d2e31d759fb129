"""pqlkit: Product-Qualified Leads from your product data, scored in your database.

    import pqlkit
    engine = pqlkit.open_engine("pql.yml", "pql.duckdb")
    result = engine.run()                 # score everyone as of now, stored atomically
    engine.explain("u_42")                # why

``open_engine`` wires the engine as the CLI does: a model with a `handoff:` section records its
transitions with every run. ``Engine(loaded, backend, observers=...)`` is the part underneath.

``import pqlkit`` is light: the engine, Ibis and the database drivers load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .errors import (
    BackendError,
    DataError,
    DataQualityError,
    ExportError,
    MappingError,
    ModelError,
    ModelValidationError,
    PqlkitError,
)

_LAZY = {
    "Engine": "pqlkit.engine",
    "RunResult": "pqlkit.engine",
    "Explanation": "pqlkit.engine",
    "connect": "pqlkit.backends",
    "load_model": "pqlkit.model.load",
    "parse_model": "pqlkit.model.load",
    "Model": "pqlkit.model.spec",
    "open_engine": "pqlkit.usecases.session",
}

__all__ = [
    "BackendError",
    "DataError",
    "DataQualityError",
    "Engine",
    "Explanation",
    "ExportError",
    "MappingError",
    "Model",
    "ModelError",
    "ModelValidationError",
    "PqlkitError",
    "RunResult",
    "__version__",
    "connect",
    "load_model",
    "open_engine",
    "parse_model",
]

if TYPE_CHECKING:
    from .backends import connect
    from .engine import Engine, Explanation, RunResult
    from .model.load import load_model, parse_model
    from .model.spec import Model
    from .usecases.session import open_engine


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'pqlkit' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value
