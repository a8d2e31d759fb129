"""The engine: one model scored against one backend, as of a point in time.

    core.py      Engine: bind -> check -> build -> write a run atomically; explain one user
    results.py   what a run and an explanation return
    rescore.py   live rescoring: only the users whose data changed, the state moved on

The engine knows nothing of what listens to it: a run tells its observers (``RunObserver``,
e.g. the hand-off's transition recorder) inside its transaction. Whoever opens the engine wires
them (:mod:`pqlkit.usecases.session`).
"""

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
from .observers import ACCOUNT_STATE, USER_STATE, RunObserver, WrittenRun, as_utc, utc_now
from .results import Explanation, RunResult

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
