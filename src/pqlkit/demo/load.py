"""Write the generated demo world into a backend and a model file beside it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # `pql init` writes the starter model without loading any of these
    from ..backends import Backend
    from .generate import DemoData

TABLES = ("accounts", "users", "events", "outcomes")


def load(backend: Backend, data: DemoData) -> None:
    """Replace the demo tables in ``backend``."""
    for name in TABLES:
        backend.write_table(name, getattr(data, name), overwrite=True)


def starter_text() -> str:
    return files("pqlkit.model").joinpath("starter.yml").read_text(encoding="utf-8")


def write_model(path: Path) -> None:
    path.write_text(starter_text(), encoding="utf-8")
