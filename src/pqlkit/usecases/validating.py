"""`pql validate` from a command that has nothing open yet. Light at import: with the data
checked, the check query an earlier validate stored (engine.explained.cached_check) starts
running in DuckDB before the model's modules are even imported, and the model loads while it
runs (DuckDB lets go of the GIL): on two cores, most of the check is paid for while Python
loads the model. Its rows count only when the model, once loaded, keys that very query.

    validate_cold     the model, then the data: the stored check without Ibis, else a session
    validate_stored   the stored check alone (None when none is stored for this model)
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import PqlkitError

if TYPE_CHECKING:
    from ..model.load import LoadedModel
    from .scoring import Validated

CHECK_PREFIX = "check:"
"""engine.explained.CHECK_KIND and its separator (not imported: that module loads the model)."""


def validate_cold(url: str | None, model_path: str | Path, *, data: bool = True) -> Validated:
    """:func:`~pqlkit.usecases.scoring.validate` for a cold command: the model loaded (every
    problem at once, and a bad model says so before any data is read) and, with ``data``,
    the data checked by the stored query (begun before the model loaded), else in a session."""
    early = _open_early(url) if data else None
    try:
        from ..model.load import load_model
        from .scoring import validate, validated

        loaded = load_model(model_path)
        if not data:
            return validated(loaded, [], data_checked=False)
        warnings = validate_stored(url, loaded, early)
    finally:
        if early is not None:
            reader, started = early
            if started is not None:
                started.cancel()  # done with, or not this model's
            reader.close()
    if warnings is not None:
        return validated(loaded, warnings, data_checked=True)
    from .session import Session

    with Session.open(url, loaded) as session:
        return validate(model_path, session)


def validate_stored(
    url: str | None, loaded: LoadedModel, early: tuple[Any, Any] | None = None
) -> list[str] | None:
    """The thorough data checks' warnings (or their DataQualityError) by the query an earlier
    validate of this model compiled and kept in the DuckDB file at ``url``, without Ibis; None
    when there is none (another model or schema, a file source, another database).
    ``early``: the file already open, and the newest stored check running (:func:`_open_early`)."""
    from ..backends import lock_timeout
    from ..backends.quick import QuickDuckDB
    from ..engine.explained import cached_check

    if early is not None:
        return cached_check(loaded, early[0], early[1])
    url, duckdb_file = _duckdb_file(url)
    reader = QuickDuckDB.open(url, lock_timeout()) if duckdb_file else None
    if reader is None:
        return None
    try:
        return cached_check(loaded, reader)
    finally:
        reader.close()


def _duckdb_file(url: str | None) -> tuple[str, bool]:
    from ..backends import database_url

    url, scheme = database_url(url)
    return url, scheme in ("", "duckdb")


def _open_early(url: str | None) -> tuple[Any, Any] | None:
    """The DuckDB file at ``url`` opened at once (not when another process holds it: then
    the check opens it later, waiting its turn), and the newest stored check started."""
    from ..backends.quick import QuickDuckDB

    url, duckdb_file = _duckdb_file(url)
    if not duckdb_file:
        return None
    try:
        reader = QuickDuckDB.open(url, 0)
    except PqlkitError:
        return None
    if reader is None:
        return None
    try:
        newest = reader.newest_sql(CHECK_PREFIX)
        return reader, None if newest is None else reader.start(*newest)
    except BaseException:
        reader.close()
        raise
