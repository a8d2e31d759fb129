"""`pql report`: every proof in one self-contained HTML file.

:func:`gather` runs the measurements (lifts, the time-split evaluation, the replay with its
weekly trend, PQL vs MQL, capacity and monitoring) and returns plain data; :func:`render`
turns that data into one HTML page with inline SVG charts, inline CSS, no script and no
reference to anything outside the file.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from markupsafe import Markup

from ..learn import backtest, dataset
from ..learn.columns import OUTCOME_NAMES
from ..learn.evaluate import evaluate
from ..learn.learn import learn
from .sections import SECTIONS

CHARTS = (
    "funnel",
    "score-distribution",
    "signal-lift",
    "calibration",
    "pql-vs-mql",
    "weekly-trend",
    "capacity",
)


def gather(
    engine,
    *,
    outcome: str = "opportunity",
    horizon: timedelta,
    won_horizon: timedelta,
    every: timedelta,
    capacity: float,
    start: datetime | None = None,
    end: datetime | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    say = progress or (lambda _m: None)
    first, last = dataset.data_span(engine)
    start, end = backtest.window(engine, start, end)
    warning = dataset.outcome_warning(engine, outcome)
    say(f"learning which behaviours go with {OUTCOME_NAMES[outcome]}")
    learned = learn(engine, outcome, horizon, snapshots=4, reference=False, progress=say)
    dates = backtest.replay_dates(start, end, every)
    rows = backtest.replay_rows(
        engine, dates, horizon, every, won_horizon=won_horizon, outcome=outcome, progress=say
    )
    r = backtest.from_rows(engine, rows, horizon, won_horizon=won_horizon)
    say("evaluating on a time split")
    # on the dates the replay read already (the same snapshots, a second label beside)
    evaluation = evaluate(
        engine, outcome=outcome, horizon=horizon, every=every, progress=say, known=rows
    )
    say("summarising")
    sbs = backtest.side_by_side(r)
    ok = r.rows_complete()
    seen = backtest.first_rows(r, ok)
    gated = backtest.first_rows(r, ok & r.gate)
    pqls = backtest.first_rows(r, ok & r.is_pql)
    won_ok = [r.won_complete[r.date_index[i]] for i in pqls]
    funnel = [
        ("users seen", int(seen.size)),
        ("fit an ICP and activated", int(gated.size)),
        ("PQLs", int(pqls.size)),
        (f"PQL to {OUTCOME_NAMES[outcome]}", int(r.opportunity[pqls].sum())),
        (
            "PQL to closed-won",
            int(sum(bool(r.closed_won[i]) for i, w in zip(pqls, won_ok, strict=True) if w)),
        ),
    ]
    return {
        "model": {
            "path": str(engine.loaded.path),
            "name": engine.model.name,
            "version": engine.loaded.version,
            "pql_score": engine.model.thresholds.pql_score,
            "mql_score": engine.model.thresholds.mql_score,
        },
        "outcome": outcome,
        "warnings": [warning] if warning else [],
        "generated_at": datetime.now(UTC).replace(tzinfo=None, microsecond=0),
        "data": {"first_event": first, "last_event": last},
        "horizon_days": horizon.days,
        "won_horizon_days": won_horizon.days,
        "every_days": every.days,
        "funnel": funnel,
        "lifts": [x.to_dict() for x in learned.lifts],
        "learned": learned.to_dict(),
        "evaluation": evaluation.to_dict(),
        "weekly": backtest.weekly(r),
        "pql_vs_mql": sbs,
        "capacity": backtest.capacity_curve(r, capacity),
        "monitor": backtest.monitor(r),
    }


# --- rendering ----------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#111827;background:#f9fafb}
main{max-width:860px;margin:0 auto;padding:24px}
h1{font-size:26px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 6px}
section{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:16px 20px;margin:16px 0}
.muted{color:#6b7280;font-size:13px}
table{border-collapse:collapse;width:100%;font-size:13px;margin:8px 0}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid #e5e7eb}th{font-weight:600}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.alert{background:#fef3c7;border-left:4px solid #f59e0b;padding:6px 10px;margin:4px 0;font-size:13px}
.ok{background:#dcfce7;border-left:4px solid #16a34a;padding:6px 10px;font-size:13px}
svg.chart{width:100%;height:auto;display:block;margin:8px 0}
svg .grid{stroke:#e5e7eb;stroke-width:1}svg .ref{stroke:#6b7280;stroke-dasharray:4 3;stroke-width:1.5}
svg .band{fill:#fde68a;opacity:.55}svg .tick{font-size:11px;fill:#374151}svg .axis{font-size:12px;fill:#111827}
svg .whisker{stroke-width:1.2}svg .whisker.small{opacity:.35}svg .value{font-size:10px;fill:#374151}
"""


def render(f: dict[str, Any]) -> str:
    """The report as one offline HTML file (templates/report.html around :func:`body`)."""
    from ..templates import environment

    return (
        environment()
        .get_template("report.html")
        .render(
            title=f"PQL model report: {f['model']['name']}", css=Markup(CSS), body=Markup(body(f))
        )
    )


def body(f: dict[str, Any]) -> str:
    """The report's sections as HTML (every text escaped): the file's body, and the web app's
    model page."""
    parts: list[str] = []
    for section in SECTIONS:
        section(f, parts.append)
    return "".join(parts)


__all__ = ["CHARTS", "CSS", "body", "gather", "render"]
