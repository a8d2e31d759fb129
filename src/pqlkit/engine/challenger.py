"""A challenger model scored beside the live one, handing nothing off.

:class:`ChallengerScorer` is a run observer: told of each full run of the live model (inside
its transaction), it scores every user by the challenger model as of the same date and writes
the rows to :data:`CHALLENGER_SCORES`, keyed by the run's date and the challenger's version,
with the live version it was scored beside. It records no transition, no delivery and no
prompt: it keeps no state and returns None, so the run's transition count is the live model's
alone. A live rescore (``partial``) is not followed: the challenger is judged on full runs.

Whoever opens the engine wires it (:func:`pqlkit.usecases.session.observers_for`): from the
live model's ``challenger:`` path or from ``pql score --challenger FILE``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import ibis

from ..backends import Backend
from ..errors import PqlkitError
from ..features.build import count_true
from ..model.load import LoadedModel, load_model
from .core import RUN_KEY, Engine
from .observers import WrittenRun

CHALLENGER_SCORES = "pql_challenger_scores"
"""Every user's score by a challenger model: as_of, model_version (the challenger's),
champion_version (the live model's at that run), user_id, account_id, score, is_pql, tier."""

CHALLENGER_COLUMNS = (
    "as_of",
    "model_version",
    "champion_version",
    "user_id",
    "account_id",
    "score",
    "is_pql",
    "tier",
)


@dataclass(frozen=True)
class ChallengerRun:
    """What the challenger wrote beside one live run."""

    as_of: datetime
    model_version: str
    champion_version: str
    path: str
    users: int
    pqls: int

    def to_dict(self) -> dict[str, object]:
        return {**self.__dict__, "as_of": self.as_of.isoformat()}


class ChallengerScorer:
    """Scores ``challenger`` beside every full run of the live model (a run observer)."""

    keeps_state = False

    def __init__(self, challenger: LoadedModel):
        self.challenger = challenger
        self.written: list[ChallengerRun] = []
        """What each run told it wrote, in order (what `pql score` reports)."""
        self._engine_now: Engine | None = None
        self._templates: dict[str, str] = {}

    @classmethod
    def of(cls, loaded: LoadedModel) -> list[ChallengerScorer]:
        """The scorer of ``loaded``'s ``challenger:`` file, as a list of observers (empty
        without one)."""
        challenger = challenger_of(loaded)
        return [] if challenger is None else [cls(challenger)]

    def _engine(self, backend: Backend) -> Engine:
        # no observers: the challenger hands nothing off; its SQL is compiled once a process
        # (the live flusher opens a connection a tick)
        if self._engine_now is None or self._engine_now.backend is not backend:
            self._engine_now = Engine(
                self.challenger, backend, observers=[], templates=self._templates
            )
        return self._engine_now

    def on_written(self, backend: Backend, run: WrittenRun) -> int | None:
        if run.partial:
            return None
        engine = self._engine(backend)
        scores = engine.scores(run.as_of)
        rows = scores.select(
            "as_of",
            "model_version",
            champion_version=ibis.literal(run.model_version),
            user_id="user_id",
            account_id="account_id",
            score="score",
            is_pql="is_pql",
            tier="tier",
        )
        backend.ensure_table(CHALLENGER_SCORES, rows.schema(), partition_by=RUN_KEY)
        version = self.challenger.version
        key = {"as_of": run.as_of, "model_version": version}
        backend.replace_rows(
            CHALLENGER_SCORES, key, backend.compile(rows.order_by("user_id")), list(rows.columns)
        )
        t = backend.table(CHALLENGER_SCORES)
        mine = t.filter(t.as_of == ibis.timestamp(run.as_of), t.model_version == version)
        counts = backend.rows(mine.aggregate(users=mine.count(), pqls=count_true(mine.is_pql)))[0]
        self.written.append(
            ChallengerRun(
                as_of=run.as_of,
                model_version=version,
                champion_version=run.model_version,
                path=self.challenger.path,
                users=int(counts["users"] or 0),
                pqls=int(counts["pqls"] or 0),
            )
        )
        return None


def challenger_of(loaded: LoadedModel) -> LoadedModel | None:
    """The model named by ``challenger:`` (relative to the model file), loaded; None without."""
    name = loaded.model.challenger
    if name is None:
        return None
    path = Path(name) if Path(name).is_absolute() else loaded.base_dir / name
    if not path.is_file():
        raise PqlkitError(
            f"{loaded.path}: challenger: {name!r} is not a file ({path}); point it at a model "
            "file (e.g. the proposal `pql learn` wrote) or remove the line"
        )
    return load_model(path)


__all__ = [
    "CHALLENGER_COLUMNS",
    "CHALLENGER_SCORES",
    "ChallengerRun",
    "ChallengerScorer",
    "challenger_of",
]
