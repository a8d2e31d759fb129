"""Time-aware validation for user-level tables (`pql learn --from-table --time-column`), and
the warning about learned steps that cannot carry over to new leads.

A random hold-out lets a step on the calendar look good: leads of one year converting more
than leads of another is true of the table and useless for the next lead, who comes later
than every row. Split by time (fit on the earlier rows, measure on the later quarter) and such
a step shows what it is worth; either way, a step on a date, a year or a column named like one
is named in a note.
"""

from __future__ import annotations

import re
from datetime import date, datetime

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..errors import DataError
from .fit import Points

#: The later share of rows held out by a time split (as the random split holds out a quarter).
LATER = 0.25

_CALENDAR_WORDS = frozenset(
    {"date", "dates", "year", "years", "month", "timestamp", "created", "updated", "dt", "at"}
)


def times_of(table: pa.Table, column: str) -> np.ndarray:
    """The column as numbers that order like its times: dates and timestamps (or text that
    reads as one) as seconds, numbers (a year, an epoch) as they are. Every row needs one."""
    col = table.column(column)
    t = col.type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        try:
            col = pc.cast(col, pa.timestamp("us"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            raise DataError(
                f"--time-column {column!r}: cannot read its values as dates or times (use "
                "ISO dates such as 2024-05-31, or numbers such as a year)"
            ) from None
        t = col.type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        values = [None if v is None else _seconds(v) for v in col.to_pylist()]
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        values = col.to_pylist()
    else:
        raise DataError(
            f"--time-column {column!r} holds {t}: pass a column of dates, times or numbers"
        )
    missing = next((i for i, v in enumerate(values, start=1) if v is None), None)
    if missing is not None:
        raise DataError(
            f"--time-column {column!r}: row {missing} has no time; every row needs one (fill "
            "it or leave such rows out of the table)"
        )
    return np.asarray(values, float)


def _seconds(value: date | datetime) -> float:
    if not isinstance(value, datetime):
        value = datetime(value.year, value.month, value.day)
    return value.replace(tzinfo=None).timestamp()


def later_rows(times: np.ndarray, column: str) -> np.ndarray:
    """The rows held out: those at or after the time that leaves about the later quarter."""
    cut = float(np.quantile(times, 1 - LATER, method="higher"))
    test = times >= cut
    if test.all() or not test.any():
        raise DataError(
            f"--time-column {column!r}: too few distinct times to hold the later rows out "
            f"(every row is at {cut:g} or the split leaves nothing to fit on)"
        )
    return test


def calendar_like(table: pa.Table, column: str) -> bool:
    """Whether a column reads like a point on the calendar: a date or time, a number that is
    a year (1900 to 2100, several of them), or a name such as `Contact Date` or `created_at`."""
    t = table.column(column).type
    if pa.types.is_date(t) or pa.types.is_timestamp(t):
        return True
    words = {w for w in re.split(r"[^a-z0-9]+", _snake(column)) if w}
    if words & _CALENDAR_WORDS:
        return True
    if pa.types.is_integer(t) or pa.types.is_floating(t):
        values = np.asarray(table.column(column).to_numpy(zero_copy_only=False), float)
        finite = values[np.isfinite(values)]
        distinct = np.unique(finite)
        return bool(
            finite.size
            and distinct.size >= 2
            and np.all(np.mod(distinct, 1) == 0)
            and distinct.min() >= 1900
            and distinct.max() <= 2100
        )
    return False


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def calendar_notes(points: Points, train: pa.Table, originals: dict[str, str]) -> list[str]:
    """One note per calendar-like column a learned step (points not zero) is on."""
    named: dict[str, list[str]] = {}
    for learned, p in zip(points.steps, points.points, strict=True):
        for step in learned.parts:  # a pair of conditions is named under each of its columns
            if p and step.column in train.column_names and calendar_like(train, step.column):
                shown = learned.name.replace(
                    step.column, originals.get(step.column, step.column), 1
                )
                named.setdefault(originals.get(step.column, step.column), []).append(
                    f"{shown} ({p:+d})"
                )
    return [
        f"learned steps on {column!r}, which reads like a date or a year: "
        f"{', '.join(steps)}. A point on the calendar does not carry over to new leads (they "
        f"come later than every row); leave it out with --exclude {column!r}, or measure with "
        "--time-column to see what it is worth on later rows"
        for column, steps in named.items()
    ]


__all__ = ["LATER", "calendar_like", "calendar_notes", "later_rows", "times_of"]
