"""Learning and proving use cases: learn points and propose a model, evaluate, backtest, and
write the report."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from ..backends import connect
from ..engine import Engine
from ..errors import DataError, MappingError, PqlkitError
from .common import Progress, day, duration, quiet

if TYPE_CHECKING:
    from ..learn.evaluate import Evaluation
    from ..learn.learn import Learned
    from ..learn.propose import Proposal


@dataclass(frozen=True)
class LearnOptions:
    """What `pql learn` is asked to do."""

    outcome: str = "opportunity"
    horizon: str = "30d"
    snapshots: int = 6
    until: str | datetime | None = None
    reference: bool = True
    user_table: str | None = None
    """Learn from a user-level table (or CSV/Parquet file) instead of events."""
    label: str | None = None
    id_column: str | None = None
    """With a user-level table: the column that identifies a row (default: user_id)."""
    excluded: tuple[str, ...] = ()
    seeds: int = 1
    """With a user-level table: refit on this many random splits and report how the AUCs move."""
    time_column: str | None = None
    """With a user-level table: fit on the earlier rows by this column, measure on the later."""
    propose: bool = True
    propose_path: str | None = None
    force: bool = False


@dataclass
class LearnOutcome:
    """What was learned, and the proposed model written (if any)."""

    result: Learned
    proposal: Proposal | None = None
    target: Path | None = None

    def to_dict(self) -> dict[str, Any]:
        payload = self.result.to_dict()
        if self.proposal is not None:
            payload["proposal"] = {"path": str(self.target), **self.proposal.to_dict()}
        return payload


def proposal_target(model_path: str | Path, propose_path: str | None) -> Path:
    model_file = Path(model_path)
    return (
        Path(propose_path)
        if propose_path
        else model_file.with_name(f"{model_file.stem}.proposed.yml")
    )


def learn(
    model_path: str | Path, url: str | None, options: LearnOptions, progress: Progress = quiet
) -> LearnOutcome:
    """Point-in-time snapshots, lifts, fitted points compared with the current model and a
    boosted reference, and (event mode) a proposed model file beside the model."""
    from ..learn.learn import learn as run_learn

    model_file = Path(model_path)
    target = proposal_target(model_file, options.propose_path)
    if options.user_table:
        return _learn_from_table(model_file, target, url, options, progress)
    if options.propose:
        from ..learn.propose import check_target

        check_target(target, model_file, force=options.force)  # before the work, not after
    span = duration("--horizon", options.horizon)
    engine = Engine.open(str(model_file), url)
    result = run_learn(
        engine,
        options.outcome,
        span,
        snapshots=options.snapshots,
        until=day("--until", options.until),
        reference=options.reference,
        progress=progress,
    )
    if not options.propose or result.points is None or result.train is None:
        return LearnOutcome(result)
    from ..learn.propose import propose, write_proposal

    proposal = propose(
        engine.loaded,
        result.points,
        result.train,
        outcome=options.outcome,
        horizon_days=result.horizon_days,
        auc=result.quality_of("learned points"),
        calibration=(
            result.calibration.section(options.outcome, result.horizon_days)
            if result.calibration
            else None
        ),
    )
    write_proposal(proposal, target, model_file, force=options.force)
    return LearnOutcome(result, proposal, target)


def _learn_from_table(
    model_file: Path, target: Path, url: str | None, options: LearnOptions, progress: Progress
) -> LearnOutcome:
    """Points from a user-level table, and a proposed model whose users are its rows."""
    from ..learn.learn import user_level

    if not options.label:
        raise PqlkitError("--from-table needs --label COLUMN, the outcome column")
    table = read_user_table(options.user_table or "", url)
    for column in (options.label, options.id_column, options.time_column, *options.excluded):
        if column is not None and column not in table.column_names:
            raise DataError(
                f"no column {column!r} in the table; columns: {', '.join(table.column_names)}"
            )
    id_column = options.id_column or ("user_id" if "user_id" in table.column_names else None)
    if options.propose and id_column is None:
        raise PqlkitError(
            "--from-table writes a proposed model whose users are the table's rows: name the "
            "column that identifies a row with --id COLUMN (or pass --no-propose)"
        )
    if options.propose:
        from ..learn.propose import check_target

        check_target(target, model_file, force=options.force)  # before the work, not after
    progress(f"learning from {table.num_rows:,} rows of {options.user_table}")
    result = user_level(
        table,
        options.label,
        exclude=list(options.excluded),
        id_column=id_column,
        reference=options.reference,
        seeds=options.seeds,
        time_column=options.time_column,
    )
    if not options.propose or result.points is None or result.train is None:
        return LearnOutcome(result)
    from ..learn.propose import write_proposal
    from ..learn.propose_table import propose_from_table, users_source_for

    if model_file.exists():
        base_text, base_name = model_file.read_text(encoding="utf-8"), model_file.name
    else:
        from ..demo.load import starter_text

        base_text, base_name = starter_text(), "the starter model"
    proposal = propose_from_table(
        base_text,
        base_name,
        result.points,
        result.train,
        users_source=users_source_for(options.user_table or ""),
        id_column=id_column or "user_id",
        originals=result.originals,
        label=options.label,
        auc=result.quality_of("learned points"),
        held_out=result.held_out,
        open_gates=not model_file.exists(),
    )
    write_proposal(proposal, target, model_file, force=options.force)
    created = ensure_empty_sources(target, url)
    if created:
        progress(f"created the empty tables the proposal reads: {', '.join(created)}")
    return LearnOutcome(result, proposal, target)


def ensure_empty_sources(model_path: Path, url: str | None) -> list[str]:
    """Create, empty, each events, accounts and outcomes table the model reads that the
    database lacks, with the canonical columns: a proposal learned from a table earns its
    points from the table alone, and scores on a fresh database with nothing made by hand.
    Existing tables are left as they are. Returns the tables created."""
    import ibis

    from ..features.sources import default_type
    from ..model.load import load_model
    from ..model.spec import CANONICAL_COLUMNS

    sources = load_model(model_path).model.sources
    backend = connect(url)
    created = []
    try:
        for role in ("events", "accounts", "outcomes"):
            source = getattr(sources, role)
            if source is None or source.table is None or "." in source.table:
                continue
            if backend.has_table(source.table):
                continue
            canonical = CANONICAL_COLUMNS[role]
            schema = ibis.schema(
                {
                    source.columns.get(c, c): default_type(role, c).replace("json", "string")
                    for c in canonical
                }
            )
            backend.ensure_table(source.table, schema)
            created.append(source.table)
    finally:
        backend.close()
    return created


def read_user_table(name: str, url: str | None) -> pa.Table:
    """A user-level table: a CSV or Parquet file (read by DuckDB, as the engine reads a
    model's file sources, so that both see the same types), or a table in the database."""
    path = Path(name)
    if path.suffix.lower() in (".csv", ".tsv", ".parquet", ".pq"):
        if not path.exists():
            raise PqlkitError(f"--from-table: no such file {path}")
        backend = connect(":memory:")
        fmt = "parquet" if path.suffix.lower() in (".parquet", ".pq") else "csv"
        try:
            return backend.arrow(backend.compile(backend.read_file(path, fmt, role="user-level")))
        except MappingError as exc:
            raise PqlkitError(f"--from-table: {exc}") from None
        finally:
            backend.close()
    backend = connect(url)
    try:
        return backend.arrow(backend.compile(backend.table(name, role="user-level")))
    finally:
        backend.close()


def evaluate(
    model_path: str | Path,
    url: str | None = None,
    *,
    outcome: str = "opportunity",
    horizon: str = "30d",
    every: str = "7d",
    split: str | datetime | None = None,
    until: str | datetime | None = None,
    progress: Progress = quiet,
) -> Evaluation:
    """How well the score and the PQL flag predicted conversions after a time split."""
    from ..learn.evaluate import evaluate as run

    engine = Engine.open(str(model_path), url)
    return run(
        engine,
        outcome=outcome,
        horizon=duration("--horizon", horizon),
        every=duration("--every", every),
        split=day("--split", split),
        until=day("--until", until),
        progress=progress,
    )


@dataclass(frozen=True)
class ReplayOptions:
    """The dates and horizons of a replay (backtest and report)."""

    start: str | datetime | None = None
    end: str | datetime | None = None
    every: str = "7d"
    horizon: str = "30d"
    won_horizon: str = "60d"
    reps: int = 2
    leads_per_rep: float = 10
    outcome: str = "opportunity"
    """What counts as converting: opportunity, closed_won (or won), self_serve, or any."""

    @property
    def kind(self) -> str:
        """The outcome, ``won`` read as ``closed_won``; an unknown one refused."""
        from ..learn.columns import OUTCOMES

        kind = "closed_won" if self.outcome == "won" else self.outcome
        if kind not in OUTCOMES:
            raise DataError(
                f"--outcome {self.outcome!r} is not an outcome; use one of "
                f"{', '.join(OUTCOMES)} (or won)"
            )
        return kind

    def spans(self) -> tuple[timedelta, timedelta, timedelta]:
        return (
            duration("--every", self.every),
            duration("--horizon", self.horizon),
            duration("--won-horizon", self.won_horizon),
        )


@dataclass
class Backtest:
    """A replay of the model over history, summarised."""

    every_days: int
    horizon_days: int
    won_horizon_days: int
    pql_score: float
    weekly: list[dict[str, Any]]
    pql_vs_mql: dict[str, Any]
    capacity: dict[str, Any]
    monitor: dict[str, Any]
    alerts: list[str] = field(default_factory=list)
    outcome: str = "opportunity"
    """What counted as converting (the ``*_to_opportunity`` figures count this outcome)."""
    warnings: list[str] = field(default_factory=list)
    """About the data rather than the model: no outcome of the chosen kind, while others."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "warnings": self.warnings,
            "horizon_days": self.horizon_days,
            "won_horizon_days": self.won_horizon_days,
            "every_days": self.every_days,
            "weekly": self.weekly,
            "pql_vs_mql": self.pql_vs_mql,
            "capacity": self.capacity,
            "monitor": self.monitor,
        }


def backtest(
    model_path: str | Path, url: str | None, options: ReplayOptions, progress: Progress = quiet
) -> Backtest:
    """New PQLs (and MQLs) each period and what they went on to do; PQL vs MQL; the threshold
    that fits sales capacity; monitoring."""
    from ..learn import backtest as bt
    from ..learn.dataset import outcome_warning

    engine = Engine.open(str(model_path), url)
    every, horizon, won = options.spans()
    kind = options.kind
    start, end = bt.window(engine, day("--from", options.start), day("--to", options.end))
    r = bt.replay(
        engine,
        bt.replay_dates(start, end, every),
        horizon,
        every,
        won_horizon=won,
        outcome=kind,
        progress=progress,
    )
    mon = bt.monitor(r)
    warning = outcome_warning(engine, kind)
    return Backtest(
        outcome=kind,
        warnings=[warning] if warning else [],
        every_days=every.days,
        horizon_days=horizon.days,
        won_horizon_days=won.days,
        pql_score=engine.model.thresholds.pql_score,
        weekly=bt.weekly(r),
        pql_vs_mql=bt.side_by_side(r),
        capacity=bt.capacity_curve(r, options.reps * options.leads_per_rep),
        monitor=mon,
        alerts=list(mon["alerts"]),
    )


@dataclass
class Report:
    path: Path
    bytes: int
    charts: list[str]
    alerts: list[str]
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "bytes": self.bytes,
            "charts": self.charts,
            "alerts": self.alerts,
            "warnings": self.warnings,
        }


def findings(engine: Engine, options: ReplayOptions, progress: Progress = quiet) -> dict[str, Any]:
    """What the report shows, as data: the funnel, the evaluation, the backtest's trend, PQL
    vs MQL, the capacity curve and drift (`pql report` and the web app's model page)."""
    from ..learn.backtest import window
    from ..report.build import gather

    every, horizon, won = options.spans()
    start, end = window(engine, day("--from", options.start), day("--to", options.end))
    return gather(
        engine,
        outcome=options.kind,
        horizon=horizon,
        won_horizon=won,
        every=every,
        capacity=options.reps * options.leads_per_rep,
        start=start,
        end=end,
        progress=progress,
    )


def report(
    model_path: str | Path,
    url: str | None,
    options: ReplayOptions,
    out_path: str | Path,
    progress: Progress = quiet,
) -> Report:
    """Write the self-contained HTML report (atomically)."""
    from ..report.build import CHARTS
    from ..report.build import render as render_html

    engine = Engine.open(str(model_path), url)
    found = findings(engine, options, progress)
    html = render_html(found)
    target = Path(out_path)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(target)
    return Report(
        target,
        len(html.encode()),
        list(CHARTS),
        list(found["monitor"]["alerts"]),
        list(found["warnings"]),
    )
