"""One scoring run, composed: model + backend + as_of -> scores written atomically.

engine = Engine.open("pql.yml", "pql.duckdb")
result = engine.run(as_of=datetime(2026, 11, 1))       # writes pql_user_scores
engine.explain("u_42", as_of=...)                        # the same logic, in plain Python
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from ..backends import Backend, connect, dialect_class
from ..errors import BackendError, PqlkitError
from ..features.build import (
    account_scores,
    count_true,
    read_columns,
    restrict,
    user_features,
    user_scores,
)
from ..features.checks import check_data, check_query
from ..features.findings import data_findings
from ..features.names import ROLES, USER
from ..features.signals import AsOf, IbisJson
from ..features.sources import Bound, bind
from ..model.load import LoadedModel, load_model
from ..model.spec import Model
from ..scoring.decide import OUTPUT_FIELDS
from .explained import (
    AS_OF_SENTINEL,
    CHECK_KIND,
    STORED_LAYOUT,
    USER_SENTINEL,
    explain_row,
    fingerprint,
    source_tables,
    table_schemas,
    unknown_user,
)
from .observers import RunObserver, WrittenRun, as_utc, utc_now
from .results import Explanation, RunResult
from .upgrade import ensure_columns

USER_SCORES = "pql_user_scores"
ACCOUNT_SCORES = "pql_account_scores"
RUNS = "pql_runs"
FEATURES = "pql_user_features"
"""Each user's features behind their latest score (a full run's, or a live rescore's): what a
lead page explains without reading events. Columns as_of, model_version, user_id, then f0, f1,
... (the features the decisions read, in order; their names, the model's, are kept with the
compiled SQL, as a database may cut long column names short). A full run replaces it; a
rescore replaces its users' rows. Written in the order the query makes them: a lead page's
lookup of one user scans the user_id column (21-76 ms at a million users on DuckDB), where
sorting a full run's million rows cost it a second."""
RUNS_SCHEMA = ibis.schema(
    {
        "as_of": "timestamp",
        "model_version": "string",
        "model_name": "string",
        "finished_at": "timestamp",
        "users": "int64",
        "pqls": "int64",
        "accounts": "int64",
        "pqas": "int64",
    }
)

Progress = Callable[[str], None]
_SENTINEL = AS_OF_SENTINEL
_USER_SENTINEL = USER_SENTINEL
RUN_KEY = ("as_of", "model_version")
"""The columns a run's rows share: a run replaces them together (partitions on Spark)."""
USER_COLUMNS = ("as_of", "model_version", "user_id", "account_id", *OUTPUT_FIELDS, "last_seen_at")


class Engine:
    """Scores one model against one backend."""

    def __init__(
        self,
        loaded: LoadedModel,
        backend: Backend,
        *,
        templates: dict[str, str] | None = None,
        observers: Sequence[RunObserver] = (),
    ):
        self.loaded = loaded
        self.backend = backend
        self.observers = tuple(observers)
        """Told of every run and rescore inside its transaction (the hand-off records its
        transitions so): wired by whoever opens the engine (:mod:`pqlkit.usecases.session`)."""
        self._bound: Bound | None = None
        self._fingerprinted: str | None = None
        # compiled SQL by kind and fingerprint; a long-lived caller (the web app) shares one
        self._templates: dict[str, str] = {} if templates is None else templates
        self.query_cache = self._templates
        """Compiled SQL by a caller's key (see Backend.reusable_sql)."""

    @classmethod
    def open(
        cls, model_path: str, url: str | None = None, *, observers: Sequence[RunObserver] = ()
    ) -> Engine:
        loaded = load_model(model_path)
        return cls(loaded, connect(url), observers=observers)

    @property
    def model(self) -> Model:
        return self.loaded.model

    @property
    def bound(self) -> Bound:
        if self._bound is None:
            self._bound = bind(self.backend, self.loaded)
        return self._bound

    def check(self, *, thorough: bool = False) -> list[str]:
        """Raise on unusable data; return warnings. The thorough check (`pql validate`) is one
        query, compiled once per model and source schema and kept with the compiled SQL, which
        a cold validate runs without Ibis (engine.explained.cached_check)."""
        if not thorough:
            return check_data(self.bound, self.loaded, self.backend)
        key = f"{CHECK_KIND}:{STORED_LAYOUT}:{self._fingerprint()}"
        sql = self._templates.get(key) or self.backend.cached_sql(key)
        if sql is None:
            sql = self.backend.compile(check_query(self.bound))
            with contextlib.suppress(BackendError):  # a read-only database: checked all the same
                self.backend.store_sql(key, sql, utc_now())
        self._templates[key] = sql
        return data_findings(self.backend.arrow(sql).to_pylist()[0], self.loaded, thorough=True)

    # --- expressions ------------------------------------------------------------------------
    def features(
        self, as_of: datetime | str | None = None, *, dialect: str | None = None
    ) -> ir.Table:
        """Per-user features as of ``as_of``, for this backend or for another ``dialect`` (then
        with that database's own JSON functions when pqlkit knows it, else Ibis's)."""
        target: Any = (
            type(self.backend) if dialect in (None, self.backend.name) else dialect_class(dialect)
        )
        return user_features(
            self.bound,
            self.loaded,
            as_utc(as_of),
            bitmask_days=bool(target and target.bitmask_days),
            json=target if target is not None else IbisJson(dialect or self.backend.name),
        )

    def scores(
        self, as_of: datetime | str | None = None, *, dialect: str | None = None
    ) -> ir.Table:
        when = as_utc(as_of)
        return user_scores(self.features(when, dialect=dialect), self.loaded, when)

    def accounts(
        self, as_of: datetime | str | None = None, *, dialect: str | None = None
    ) -> ir.Table:
        when = as_utc(as_of)
        return account_scores(self.scores(when, dialect=dialect), self.bound, self.loaded, when)

    def scores_sql(self, as_of: datetime | str | None = None) -> str:
        """The user-scores query for this backend, compiled once per model and source schema."""
        return self.sql_at("users", lambda when: self.scores(when), as_utc(as_of))

    # --- stored features ----------------------------------------------------------------------
    def feature_names(self) -> list[str]:
        """The features' column names, in order (kept with the compiled SQL)."""
        key = f"feature-names:{STORED_LAYOUT}:{self._fingerprint()}"
        text = self._templates.get(key) or self.backend.cached_sql(key)
        if text is None:
            features = self.features(_SENTINEL)
            # only what the decisions read (and so what an explanation needs)
            read = read_columns(user_scores(features, self.loaded, _SENTINEL), features)
            # the user's id is stored once, as user_id
            text = json.dumps([c for c in read if c != f"{USER}user_id"])
            self.backend.store_sql(key, text, utc_now())
        self._templates[key] = text
        names: list[str] = json.loads(text)
        return names

    def to_stored(self, features: ir.Table, when: datetime) -> ir.Table:
        """``features`` in the stored layout of :data:`FEATURES`: the columns the decisions
        read (:meth:`feature_names`)."""
        return features.select(
            as_of=AsOf(when).lit,
            model_version=ibis.literal(self.loaded.version),
            user_id=features[f"{USER}user_id"],
            **{f"f{i}": features[name] for i, name in enumerate(self.feature_names())},
        )

    def from_stored(self, table: ir.Table) -> ir.Table:
        """Stored features under their own names again, ready for :func:`user_scores`."""
        return table.select(
            **{f"{USER}user_id": table.user_id},
            **{n: table[f"f{i}"] for i, n in enumerate(self.feature_names())},
        )

    def stored_explanation(self, user_id: str, when: datetime) -> Explanation | None:
        """The explanation of ``user_id``'s stored score as of ``when`` from the features
        that score was computed from; None when they are not stored (another run, another
        model). Equal to :meth:`explain` unless events before ``when`` arrived after it."""
        b = self.backend
        names = self.feature_names()
        if not b.has_table(FEATURES) or len(b.table(FEATURES).columns) != 3 + len(names):
            return None

        def lookup(w: datetime) -> ir.Table:
            t = b.table(FEATURES)
            return t.filter(
                t.user_id == _USER_SENTINEL,
                t.as_of == AsOf(w).lit,
                t.model_version == self.loaded.version,
            ).limit(1)

        sql = self.sql_at("stored-explain", lookup, as_utc(when))
        swap = b.string_literal
        found = b.arrow(sql.replace(swap(_USER_SENTINEL), swap(str(user_id)))).to_pylist()
        if not found:
            return None
        row = {f"{USER}user_id": found[0]["user_id"]}
        row.update({n: found[0][f"f{i}"] for i, n in enumerate(names)})
        return self._explain_row(row, as_utc(when))

    def sql_at(self, kind: str, build: Callable[[datetime], ir.Table], when: datetime) -> str:
        """The SQL of ``build(when)``, compiled once per ``kind``, model and source schema for a
        stand-in date and reused for any date by swapping its one timestamp literal."""
        key = f"{kind}:{STORED_LAYOUT}:{self._fingerprint()}"
        template = self._templates.get(key) or self.backend.cached_sql(key)
        sentinel = self.backend.timestamp_literal(_SENTINEL)
        if template is None:
            template = self.backend.compile(build(_SENTINEL))
            if sentinel not in template:  # cannot be reused: compile for this as_of instead
                return self.backend.compile(build(when))
            self.backend.store_sql(key, template, utc_now())
        self._templates[key] = template
        return template.replace(sentinel, self.backend.timestamp_literal(when))

    def _fingerprint(self) -> str:
        """What the compiled SQL depends on: versions, the model file, the sources and their
        schemas, the dialect and its capabilities (worked out once per engine: an engine
        binds its sources once)."""
        if self._fingerprinted is None:
            self._fingerprinted = self._work_out_fingerprint()
        return self._fingerprinted

    def _work_out_fingerprint(self) -> str:
        # the sources' own schemas, as the catalog has them: a cold explain works them out
        # without Ibis (engine.explained); the tables bound from files by their Ibis schemas
        bound = self.bound
        tables = source_tables(self.loaded)
        schemas = (
            table_schemas(tables, self.backend)
            if tables is not None
            else {
                role: repr(table.schema())
                for role in ROLES
                if (table := getattr(bound, role)) is not None
            }
        )
        return fingerprint(self.loaded, self.backend, schemas)

    def compile(self, dialect: str, as_of: datetime | str | None = None) -> str:
        """The SQL a warehouse would run for the user scores."""
        return str(ibis.to_sql(self.scores(as_of, dialect=dialect), dialect=dialect))

    # --- runs -------------------------------------------------------------------------------
    def run(
        self,
        as_of: datetime | str | None = None,
        *,
        checks: bool = True,
        progress: Progress | None = None,
        features: bool = True,
    ) -> RunResult:
        """Score every user and account as of ``as_of`` and write them, all or nothing; with
        ``features``, every user's features too (:data:`FEATURES`, what a lead page explains),
        the scores then computed from them; without, in one query from the events.

        Long because it is one transaction's steps in order (features, users, accounts,
        observers, the run's row), each a line or two; split, the transaction would span
        functions."""
        say = progress or (lambda _msg: None)
        started = time.perf_counter()
        when = as_utc(as_of)
        self.require_observers()
        say("binding sources")
        bound = self.bound
        warnings = check_data(bound, self.loaded, self.backend) if checks else []
        say("building expressions")
        version = self.loaded.version
        self.ensure_tables()
        features_sql = (
            self.sql_at("features", lambda w: self.to_stored(self.features(w), w), when)
            if features
            else None
        )
        key = {"as_of": when, "model_version": version}
        # Driver errors (disk full, a lost connection, a constraint) roll the run back and are
        # reported as BackendError; any other exception is a bug and propagates as it is.
        with (
            self.backend.errors(
                "the scoring run failed and was rolled back (previous results are intact)"
            ),
            self.backend.transaction(),
        ):
            if features_sql is not None:
                say("computing features")
                users_sql = self._keep_features(features_sql, when)
            else:
                users_sql = self.scores_sql(when)
            say("scoring users")
            self.backend.replace_rows(USER_SCORES, key, users_sql, list(USER_COLUMNS))
            say("rolling up accounts")
            self.backend.replace_rows(
                ACCOUNT_SCORES,
                key,
                account_scores(
                    self.stored_users(when, version),
                    bound,
                    self.loaded,
                    when,
                    ordered_first=self.backend.ordered_first,
                ).order_by("account_id"),
            )
            counts: dict[str, Any] = dict(self._counts(when, version))
            if self.observers:  # e.g. transitions go out with the run, or not at all
                say("recording transitions")
                counts["transitions"] = self.tell(
                    WrittenRun(
                        users=self.stored_users(when, version),
                        accounts=self.stored_accounts(when, version),
                        as_of=when,
                        model_version=version,
                        written_at=utc_now(),
                    )
                )
            run_counts = {k: v for k, v in counts.items() if k != "transitions"}
            self.backend.replace_rows(RUNS, key, [self._run_row(when, run_counts)])
        return RunResult(
            as_of=when,
            model_version=version,
            seconds=time.perf_counter() - started,
            warnings=warnings,
            **counts,
        )

    def _keep_features(self, features_sql: str, when: datetime) -> str:
        """Write every user's features to :data:`FEATURES` and return the SQL of the scores
        computed from them. (Writing them to a temporary table first, and the kept copy and
        the scores from it, used less CPU on DuckDB but took 13% longer and 16% more memory,
        measured quiet at 1M users.)"""
        b = self.backend
        with b.uncompressed_writes():  # replaced by the next run
            b.replace_table(FEATURES, features_sql)
        return self.sql_at(
            "users-from-stored",
            lambda w: user_scores(self.from_stored(b.table(FEATURES)), self.loaded, w),
            when,
        )

    def tell(self, run: WrittenRun) -> int | None:
        """Tell every observer what a run wrote (inside its transaction); the transitions they
        recorded, or None when none records any."""
        told = [n for o in self.observers if (n := o.on_written(self.backend, run)) is not None]
        return sum(told) if told else None

    def require_observers(self) -> None:
        """A model with a `handoff:` section records transitions with every run: refuse to
        run it without an observer that keeps the state (they would be lost silently)."""
        if self.model.handoff is not None and not self._keeps_state():
            raise PqlkitError(
                f"{self.loaded.path} has a `handoff:` section, and this engine was opened "
                "without the hand-off's recorder; open it with pqlkit.open_engine(model, url) "
                "(or pass observers=[pqlkit.handoff.recorder.TransitionRecorder(...)])"
            )

    def _keeps_state(self) -> bool:
        return any(getattr(o, "keeps_state", False) for o in self.observers)

    def require_state_keeper(self, what: str) -> None:
        """Refuse ``what`` (live rescoring) when no observer keeps the users' state."""
        if not self._keeps_state():
            raise PqlkitError(
                f"{self.loaded.path}: {what} keeps the hand-off's state, and the model has no "
                "`handoff:` section (destinations and routes); see docs/model.md"
            )

    def ensure_tables(self) -> None:
        """Create the score tables (users, accounts, runs) if missing, with the columns this
        version writes; an older users table gets the columns added since, empty; a users
        table with other columns is refused."""
        if not (self.backend.has_table(USER_SCORES) and self.backend.has_table(ACCOUNT_SCORES)):
            scores = self.scores(_SENTINEL)
            self.backend.ensure_table(USER_SCORES, scores.schema(), partition_by=RUN_KEY)
            accounts_probe = account_scores(scores, self.bound, self.loaded, _SENTINEL)
            self.backend.ensure_table(ACCOUNT_SCORES, accounts_probe.schema(), partition_by=RUN_KEY)
        self.backend.ensure_table(RUNS, RUNS_SCHEMA, partition_by=RUN_KEY)
        probe = lambda: self.scores(_SENTINEL).schema()  # noqa: E731 (asked for only if needed)
        ensure_columns(self.backend, USER_SCORES, USER_COLUMNS, probe)

    def _counts(self, when: datetime, version: str) -> dict[str, int]:
        u = self.stored_users(when, version)
        a = self.stored_accounts(when, version)
        users = u.aggregate(users=u.count(), pqls=count_true(u.is_pql))
        accts = a.aggregate(accounts=a.count(), pqas=count_true(a.is_pqa))
        row = self.backend.rows(users.cross_join(accts))[0]
        return {k: int(v or 0) for k, v in row.items()}

    def _run_row(self, when: datetime, counts: dict[str, int]) -> dict[str, Any]:
        return {
            "as_of": when,
            "model_version": self.loaded.version,
            "model_name": self.model.name,
            "finished_at": utc_now(),
            **counts,
        }

    def breakdown(self, result: RunResult) -> list[dict[str, Any]]:
        """Users and PQLs per segment and motion for a stored run."""
        u = self.stored_users(result.as_of, result.model_version)
        by = u.group_by(["segment", "motion"]).aggregate(users=u.count(), pqls=count_true(u.is_pql))
        return self.backend.rows(by.order_by(["segment", "motion"]))

    # --- stored results -----------------------------------------------------------------------
    def stored_users(self, when: datetime, version: str) -> ir.Table:
        t = self.backend.table(USER_SCORES)
        return t.filter(t.as_of == ibis.timestamp(when), t.model_version == version)

    def stored_accounts(self, when: datetime, version: str) -> ir.Table:
        t = self.backend.table(ACCOUNT_SCORES)
        return t.filter(t.as_of == ibis.timestamp(when), t.model_version == version)

    # --- the plain-Python path ------------------------------------------------------------------
    def explain(self, user_id: str, as_of: datetime | str | None = None) -> Explanation:
        """Why ``user_id`` scored what they did, computed by the plain-Python decision logic
        from the features of that one user (their row, their events, their account: what
        live rescoring reads, proven equal to a full run's by tests/test_live.py). The SQL is
        compiled once per model and reused for any user and date."""
        when = as_utc(as_of)
        sql = self.sql_at("explain", lambda w: self._user_features(w, _USER_SENTINEL), when)
        swap = self.backend.string_literal
        sql = sql.replace(swap(_USER_SENTINEL), swap(str(user_id)))
        rows = self.backend.arrow(sql).to_pylist()
        if not rows:
            raise unknown_user(user_id, when)
        return self._explain_row(rows[0], when)

    def _user_features(self, when: datetime, user_id: str) -> ir.Table:
        one = self.bound.where("users", "user_id", user_id).select(
            "user_id", account_id=ibis.null("string")
        )
        f = user_features(
            restrict(self.bound, one),
            self.loaded,
            when,
            bitmask_days=self.backend.bitmask_days,
            json=type(self.backend),
        )
        return f.filter(f["user__user_id"] == user_id)

    def _explain_row(self, row: dict[str, Any], when: datetime) -> Explanation:
        return explain_row(self.loaded, row, when)

    def python_scores(self, as_of: datetime | str | None = None) -> list[dict[str, Any]]:
        """Every user's outputs by the plain-Python path (features still come from the database).
        Used to prove the two paths agree; not meant for large data."""
        when = as_utc(as_of)
        rows = self.backend.arrow(self.backend.compile(self.features(when))).to_pylist()
        out = []
        for row in rows:
            e = self._explain_row(row, when)
            out.append({"user_id": e.user_id, "account_id": row["user__account_id"], **e.outputs})
        return out

    def close(self) -> None:
        self.backend.close()
