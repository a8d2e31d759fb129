"""Every error pqlkit raises on purpose, under one root.

    class                           code                 exit  what is wrong
    PqlkitError                     error                1     anything pqlkit says (catch this)
    ├── ModelError                  model                1     the model file cannot be used
    │   └── ModelValidationError    model_invalid        1     problems with file, line, field
    ├── DataError                   data                 1     the data does not fit the model
    │   ├── MappingError            mapping              1     a table, file or column is missing
    │   └── DataQualityError        data_quality         1     empty tables, bad ids or times
    ├── BackendError                backend              1     a URL, query or write failed
    │   ├── BackendUnavailable      backend_unavailable  75    down, unreachable or locked
    │   └── RefusedValue            refused_value        1     a constraint, a conversion, a range
    ├── DeliveryError               delivery             1     a webhook, Slack or a CRM refused
    │   └── crm.transport.CrmError  crm                  1     a CRM refused a call
    │       └── CrmUnavailable      crm_unavailable      75    a CRM kept failing or limiting
    ├── AuthError                   auth                 1     credentials refused or missing
    └── ExportError                 export               1     an output file cannot be written

A `code` is stable: programs may match on it (``pql ... --json`` prints it), and on `family`,
the code of the branch under the root it belongs to ("backend" for `RefusedValue`). The exit
code is the `pql` command's (README, "Exit codes"): 75 (sysexits' EX_TEMPFAIL) says that the
same command may well work later, 1 that something must change first. Messages say what is
wrong, where, and how to fix it; `to_dict()` is the JSON form. The CLI prints them without a
traceback.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = [
    "AuthError",
    "BackendError",
    "BackendUnavailable",
    "DataError",
    "DataQualityError",
    "DeliveryError",
    "ExportError",
    "MappingError",
    "ModelError",
    "ModelIssue",
    "ModelValidationError",
    "PqlkitError",
    "RefusedValue",
]


class PqlkitError(Exception):
    """Root of every error pqlkit raises on purpose.

    ``file``, ``line``, ``field`` and ``hint`` say where the problem is and how to fix it,
    where that is known apart from the message; the JSON form carries them as they are.
    """

    code: ClassVar[str] = "error"
    exit_code: ClassVar[int] = 1
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str = "",
        *,
        file: str | None = None,
        line: int | None = None,
        field: str | None = None,
        hint: str | None = None,
    ):
        super().__init__(message)
        self.file, self.line, self.field, self.hint = file, line, field, hint

    @classmethod
    def family(cls) -> str:
        """The code of the branch under the root this class belongs to (its own at the top)."""
        for klass in reversed(cls.__mro__):
            if (
                isinstance(klass, type)
                and issubclass(klass, PqlkitError)
                and klass is not PqlkitError
            ):
                return klass.code
        return cls.code

    def to_dict(self) -> dict[str, Any]:
        """The error for programs: code, family, message, exit code, whether retrying may help,
        and the location and hint where known."""
        out: dict[str, Any] = {
            "code": self.code,
            "family": self.family(),
            "message": str(self),
            "exit_code": self.exit_code,
            "retryable": self.retryable,
        }
        where = {"file": self.file, "line": self.line, "field": self.field, "hint": self.hint}
        out.update({k: v for k, v in where.items() if v})
        return out


class ModelError(PqlkitError):
    """The model file cannot be read or used."""

    code = "model"


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

    def to_dict(self) -> dict[str, Any]:
        out = {"file": self.file, "line": self.line or None, "field": self.path or None}
        return {**out, "message": self.message, "hint": self.hint or None}


class ModelValidationError(ModelError):
    """All the problems found in a model file, sorted by line. The first one's place is the
    error's ``file``, ``line`` and ``field``; ``to_dict()`` lists them all under ``issues``."""

    code = "model_invalid"

    def __init__(self, issues: list[ModelIssue]):
        self.issues = sorted(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in the model:"
        first = self.issues[0] if self.issues else None
        super().__init__(
            "\n".join([head, *(f"  {issue}" for issue in self.issues)]),
            file=first.file if first else None,
            line=first.line if first else None,
            field=first.path if first else None,
            hint=first.hint if first else None,
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.issues,))

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "issues": [issue.to_dict() for issue in self.issues]}


class DataError(PqlkitError):
    """The data does not fit what the model maps."""

    code = "data"


class MappingError(DataError):
    """A mapped table, file or column is missing."""

    code = "mapping"


class DataQualityError(DataError):
    """The data is present but unusable: empty, null or duplicate ids, bad timestamps."""

    code = "data_quality"


class BackendError(PqlkitError):
    """A connection URL, a database, a query or a write failed. Its two kinds below say
    whether waiting may help (`BackendUnavailable`) or a value must change (`RefusedValue`);
    a plain BackendError is neither (an unsupported URL, a statement the database rejects)."""

    code = "backend"


class BackendUnavailable(BackendError):
    """The database is down, cannot be opened or reached, or is locked by another program:
    the same command may work later."""

    code = "backend_unavailable"
    exit_code = 75
    retryable = True


class RefusedValue(BackendError):
    """The database refused a value: a constraint, a conversion, a number out of range."""

    code = "refused_value"


class DeliveryError(PqlkitError):
    """A destination (a webhook, Slack, a CRM) refused or could not take what was sent."""

    code = "delivery"


class AuthError(PqlkitError):
    """Credentials were refused or are missing (a CRM token, a signing secret)."""

    code = "auth"


class ExportError(PqlkitError):
    """An output file could not be written."""

    code = "export"
