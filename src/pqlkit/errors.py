"""Every error pqlkit raises on purpose, under one root.

    PqlkitError                   catch this to handle anything pqlkit says is wrong
    ├── ModelError                the model file (pql.yml) cannot be used
    │   └── ModelValidationError  one or more problems, each with file, line, field path and hint
    ├── DataError                 the data does not fit what the model maps
    │   ├── MappingError          a mapped table, file or column is missing
    │   └── DataQualityError      empty tables, null or duplicate ids, unparsable timestamps
    ├── BackendError              a connection URL, a database or a write failed
    └── ExportError               an output file could not be written

Messages say what is wrong, where, and how to fix it. The CLI prints them without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "BackendError",
    "DataError",
    "DataQualityError",
    "ExportError",
    "MappingError",
    "ModelError",
    "ModelIssue",
    "ModelValidationError",
    "PqlkitError",
]


class PqlkitError(Exception):
    """Root of every error pqlkit raises on purpose."""


class ModelError(PqlkitError):
    """The model file cannot be read or used."""


@dataclass(frozen=True, order=True)
class ModelIssue:
    """One problem in a model file: where it is, what is wrong, how to fix it."""

    file: str
    line: int
    path: str
    message: str
    hint: str = ""

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        text = f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"
        return f"{text} ({self.hint})" if self.hint else text


class ModelValidationError(ModelError):
    """All the problems found in a model file, sorted by line."""

    def __init__(self, issues: list[ModelIssue]):
        self.issues = sorted(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the model:"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


class DataError(PqlkitError):
    """The data does not fit what the model maps."""


class MappingError(DataError):
    """A mapped table, file or column is missing."""


class DataQualityError(DataError):
    """The data is present but unusable: empty, null or duplicate ids, bad timestamps."""


class BackendError(PqlkitError):
    """A connection URL, a database or a write failed."""


class ExportError(PqlkitError):
    """An output file could not be written."""
