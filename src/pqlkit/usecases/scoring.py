"""Scoring use cases: check a model, score users and accounts, explain one user, print SQL."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..model.load import LoadedModel, load_model
from ..scoring.decide import blocked_by
from .common import Progress, quiet

if TYPE_CHECKING:  # the engine loads Ibis: `pql validate` and a cold `pql explain` do without
    import ibis.expr.types as ir

    from ..engine import Explanation, RunResult
    from .session import Session


@dataclass
class Validated:
    """A model that loaded (and, with data, whose data fits)."""

    path: str
    version: str
    profiles: int
    exclusions: int
    fit_signals: int
    usage_signals: int
    mql_signals: int
    data_checked: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "model": self.path, "version": self.version, "warnings": self.warnings}


def validate(model_path: str | Path, session: Session | None = None) -> Validated:
    """Load the model (every problem at once) and, given a ``session``, check the data fits it."""
    loaded = session.loaded if session is not None else load_model(model_path)
    warnings: list[str] = []
    if session is not None:
        warnings = session.engine.check(thorough=True)
    return validated(loaded, warnings, data_checked=session is not None)


def validated(loaded: LoadedModel, warnings: list[str], *, data_checked: bool) -> Validated:
    m = loaded.model
    return Validated(
        path=loaded.path,
        version=loaded.version,
        profiles=len(m.icp.profiles),
        exclusions=len(m.icp.exclusions),
        fit_signals=len(m.fit_signals),
        usage_signals=len(m.usage_signals),
        mql_signals=len(m.mql_signals),
        data_checked=data_checked,
        warnings=warnings,
    )


@dataclass
class Scored:
    """A stored run and its rows (users or accounts), best first, as an expression to page
    through or export."""

    session: Session
    run: RunResult
    rows: ir.Table

    @property
    def challengers(self) -> list[Any]:
        """What the challenger scored beside this run (``ChallengerRun``s; none without one)."""
        from ..engine.challenger import ChallengerScorer

        return [
            w
            for o in self.session.engine.observers
            if isinstance(o, ChallengerScorer)
            for w in o.written
            if w.as_of == self.run.as_of
        ]

    def to_dict(self) -> dict[str, Any]:
        out = self.run.to_dict()
        if self.challengers:
            out["challenger"] = self.challengers[-1].to_dict()
        return out


def score(
    session: Session,
    as_of: str | datetime | None = None,
    *,
    checks: bool = True,
    pql_only: bool = False,
    progress: Progress = quiet,
    features: bool = True,
) -> Scored:
    """Score every user and account as of ``as_of`` (default now), store them atomically, and
    return the users, highest score first."""
    engine = session.engine
    result = engine.run(as_of, checks=checks, progress=progress, features=features)
    users = engine.stored_users(result.as_of, result.model_version)
    if pql_only:
        users = users.filter(users.is_pql)
    return Scored(session, result, users.order_by([users.ranking.desc(), users.user_id]))


def accounts(
    session: Session,
    as_of: str | datetime | None = None,
    *,
    checks: bool = True,
    progress: Progress = quiet,
    features: bool = True,
) -> Scored:
    """Like :func:`score`, returning the accounts (users rolled up), highest score first."""
    engine = session.engine
    result = engine.run(as_of, checks=checks, progress=progress, features=features)
    accts = engine.stored_accounts(result.as_of, result.model_version)
    order = [accts.is_pqa.desc(), accts.score.desc(), accts.pql_users.desc(), accts.account_id]
    return Scored(session, result, accts.order_by(order))


@dataclass
class Explained:
    """One user's score, decisions and signals, and what keeps them from being a PQL."""

    explanation: Explanation
    blocked_by: list[str]
    """The PQL gates the user does not pass, in words (empty for a PQL)."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.explanation.to_dict(), "blocked_by": self.blocked_by}


def explain(session: Session, user_id: str, as_of: str | datetime | None = None) -> Explained:
    """Why ``user_id`` scored what they did, by the plain-Python decision path."""
    engine = session.engine
    return _explained(engine.explain(user_id, as_of), engine.loaded)


def explain_cold(
    url: str | None, model_path: str | Path, user_id: str, as_of: str | datetime | None = None
) -> Explained:
    """:func:`explain` for a command that has nothing open yet: the model loaded first (a
    bad model opens no database), then :func:`explain_stored`, else a session's engine."""
    from .session import Session

    loaded = load_model(model_path)
    return explain_stored(url, loaded, user_id, as_of) or explain(
        Session.open(url, loaded), user_id, as_of
    )


def explain_stored(
    url: str | None, loaded: LoadedModel, user_id: str, as_of: str | datetime | None = None
) -> Explained | None:
    """:func:`explain` for a cold command, without Ibis: the user's features read with the
    SQL an earlier explain of this model compiled and kept in the DuckDB file at ``url``.
    None when there is none (another model or schema, a file source, another database, a
    model with a challenger to load): then open a session and :func:`explain`."""
    from ..backends import database_url, lock_timeout
    from ..backends.quick import QuickDuckDB
    from ..engine.explained import cached_explanation
    from ..engine.observers import as_utc

    when = as_utc(as_of)
    url, scheme = database_url(url)
    if scheme not in ("", "duckdb") or loaded.model.challenger is not None:
        return None
    reader = QuickDuckDB.open(url, lock_timeout())
    if reader is None:
        return None
    try:
        e = cached_explanation(loaded, reader, user_id, when)
    finally:
        reader.close()
    return None if e is None else _explained(e, loaded)


def _explained(e: Explanation, loaded: LoadedModel) -> Explained:
    model = loaded.model
    return Explained(e, [gate.reason(e.outputs, model) for gate in blocked_by(model, e.outputs)])


def compile_sql(
    session: Session, as_of: str | datetime | None = None, *, dialect: str = "duckdb"
) -> str:
    """The SQL ``dialect`` would run to score every user."""
    return session.engine.compile(dialect, as_of)
