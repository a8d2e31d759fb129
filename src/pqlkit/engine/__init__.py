"""The engine: one model scored against one backend, as of a point in time.

    core.py      Engine: bind -> check -> build -> write a run atomically; explain one user
    results.py   what a run and an explanation return
    rescore.py   live rescoring: only the users whose data changed, the state moved on

The engine knows nothing of what listens to it: a run tells its observers (``RunObserver``,
e.g. the hand-off's transition recorder) inside its transaction. Whoever opens the engine wires
them (:mod:`pqlkit.usecases.session`).

The names from core.py load Ibis, on first use: a cold `pql explain` answered from compiled
SQL kept in the database (:mod:`.explained`) imports none of it.
"""

from typing import TYPE_CHECKING, Any

from .observers import ACCOUNT_STATE, USER_STATE, RunObserver, WrittenRun, as_utc, utc_now
from .results import Explanation, RunResult

if TYPE_CHECKING:
    from .core import (
        ACCOUNT_SCORES,
        FEATURES,
        RUN_KEY,
        RUNS,
        RUNS_SCHEMA,
        USER_COLUMNS,
        USER_SCORES,
        Engine,
        Progress,
    )

_CORE = (
    "ACCOUNT_SCORES",
    "FEATURES",
    "RUN_KEY",
    "RUNS",
    "RUNS_SCHEMA",
    "USER_COLUMNS",
    "USER_SCORES",
    "Engine",
    "Progress",
)


def __getattr__(name: str) -> Any:
    if name in _CORE:
        from . import core

        return getattr(core, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ACCOUNT_SCORES",
    "ACCOUNT_STATE",
    "FEATURES",
    "RUNS",
    "RUNS_SCHEMA",
    "RUN_KEY",
    "USER_COLUMNS",
    "USER_SCORES",
    "USER_STATE",
    "Engine",
    "Explanation",
    "Progress",
    "RunObserver",
    "RunResult",
    "WrittenRun",
    "as_utc",
    "utc_now",
]
