"""`pql report`: every proof in one self-contained HTML file.

:func:`gather` runs the measurements (lifts, the time-split evaluation, the replay with its
weekly trend, PQL vs MQL, capacity and monitoring) and returns plain data; :func:`render`
turns that data into one HTML page with inline SVG charts, inline CSS, no script and no
reference to anything outside the file.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from markupsafe import Markup

from ..learn import backtest, dataset
from ..learn.columns import OUTCOME_NAMES
from ..learn.evaluate import evaluate
from ..learn.learn import learn
from . import svg

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
    say("evaluating on a time split")
    evaluation = evaluate(engine, outcome=outcome, horizon=horizon, every=every, progress=say)
    dates = backtest.replay_dates(start, end, every)
    r = backtest.replay(
        engine, dates, horizon, every, won_horizon=won_horizon, outcome=outcome, progress=say
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
svg .whisker{stroke:#111827;stroke-width:1.5}
"""


def _pct(v: float | None) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.1%}"


def _num(v: Any) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return f"{v:,.3f}" if isinstance(v, float) else f"{v:,}"


def _table(headers: list[str], rows: list[list[Any]], numeric: Collection[int] = ()) -> str:
    head = "".join(
        f'<th class="{"n" if i in numeric else ""}">{escape(h)}</th>' for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"n" if i in numeric else ""}">{escape(str(c))}</td>'
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _day(v: Any) -> str:
    return v.strftime("%Y-%m-%d") if isinstance(v, datetime) else str(v)[:10]


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
    sections = (_header, _funnel, _evaluation, _lifts, _pql_vs_mql, _weekly, _capacity)
    parts: list[str] = []
    for section in sections:
        section(f, parts.append)
    return "".join(parts)


Add = Callable[[str], None]


def _outcome(f: dict[str, Any]) -> str:
    """The outcome counted, as it reads in a sentence ("an opportunity" for older findings)."""
    return OUTCOME_NAMES[f.get("outcome", "opportunity")]


def _header(f: dict[str, Any], add: Add) -> None:
    m = f["model"]
    add(f"<h1>PQL model report: {escape(m['name'])}</h1>")
    add(
        f'<p class="muted">Model {escape(m["path"])} (version {escape(m["version"])}), PQL threshold '
        f"{m['pql_score']:g}, MQL threshold {m['mql_score']:g}. Events from {_day(f['data']['first_event'])} to "
        f"{_day(f['data']['last_event'])}. A conversion is {escape(_outcome(f))} within "
        f"{f['horizon_days']} days of a date (closed-won: {f['won_horizon_days']} days). Generated "
        f"{_day(f['generated_at'])} by pqlkit; every figure is point-in-time: computed as of each date "
        "from what was known then.</p>"
    )
    for warning in f.get("warnings", []):
        add(f'<div class="alert">{escape(warning)}</div>')


def _funnel(f: dict[str, Any], add: Add) -> None:
    labels = [name for name, _ in f["funnel"]]
    add('<section id="funnel"><h2>Funnel</h2>')
    add('<p class="muted">Each person once, over the replayed dates whose horizon is complete.</p>')
    add(
        svg.bars(
            "funnel", "Funnel", labels, [("people", [v for _, v in f["funnel"]])], ylabel="people"
        )
    )
    add("</section>")


def _evaluation(f: dict[str, Any], add: Add) -> None:
    ev = f["evaluation"]
    add('<section id="evaluation"><h2>How well the score predicts, after a time split</h2>')
    add(
        f'<p class="muted">Calibrated on {len(ev["train_dates"])} dates before {_day(ev["split"])}, measured on '
        f"{len(ev['test_dates'])} dates from it: {ev['rows']:,} user-dates, {ev['conversions']:,} converted "
        f"({escape(_outcome(f))}).</p>"
    )
    pql, mql = ev["pql"], ev["mql"]
    add(
        _table(
            ["measure", "PQL score / flag", "MQL score / flag"],
            [
                ["AUC", _num(ev["auc"]), _num(ev["mql_auc"])],
                ["lift in the top 5% / 10%", f"{_num(ev['lift_5'])} / {_num(ev['lift_10'])}", "-"],
                ["flagged", _num(pql["flagged"]), _num(mql["flagged"])],
                [
                    "precision (flagged who converted)",
                    _pct(pql["precision"]),
                    _pct(mql["precision"]),
                ],
                ["recall (converters who were flagged)", _pct(pql["recall"]), _pct(mql["recall"])],
                ["Brier score (calibrated)", _num(ev["brier"]), "-"],
            ],
        )
    )
    for note in ev.get("notes", []):
        add(f'<div class="alert">{escape(note)}</div>')
    bands = ev["by_band"]
    conv_total = sum(b["converted"] for b in bands) or 1
    rest_total = sum(b["users"] - b["converted"] for b in bands) or 1
    add("<h2>Score distribution by outcome</h2>")
    add(
        svg.bars(
            "score-distribution",
            "Score distribution by outcome",
            [b["band"] for b in bands],
            [
                ("converted", [b["converted"] / conv_total for b in bands]),
                ("did not convert", [(b["users"] - b["converted"]) / rest_total for b in bands]),
            ],
            percent=True,
            xlabel="score",
            ylabel="share of the group",
        )
    )
    add("<h2>Calibration</h2>")
    add(
        '<p class="muted">The conversion rate the earlier dates predict for a score, against the rate that '
        "followed (deciles of prediction); on the dashed diagonal is perfect.</p>"
    )
    add(
        svg.scatter(
            "calibration",
            "Calibration",
            [(c["predicted"], c["observed"], f"{c['n']} user-dates") for c in ev["calibration"]],
            xlabel="predicted rate",
            ylabel="observed rate",
        )
    )
    add("</section>")


def _lifts(f: dict[str, Any], add: Add) -> None:
    lifts = [x for x in f["lifts"] if x.get("lift") is not None and not math.isnan(x["lift"])][:15]
    add(
        '<section id="signal-lift"><h2>Which behaviours and traits go with converting '
        f"({escape(_outcome(f))})</h2>"
    )
    if not f["learned"]["conversions"]:
        add(
            '<div class="alert">No conversions on the learning dates: no fact can be told to go '
            "with converting, so no lift is shown.</div>"
        )
    add(
        '<p class="muted">Conversion rate with the fact over the rate without it, with its 95% interval; the '
        "dashed line is no difference.</p>"
    )
    add(
        svg.hbars(
            "signal-lift",
            "Signal lift",
            [
                (
                    x["name"],
                    x["lift"],
                    x["low"] if x["low"] is not None else float("nan"),
                    x["high"] if x["high"] is not None else float("nan"),
                )
                for x in lifts
            ],
            xlabel="lift",
        )
    )
    add(
        _table(
            ["fact", "coverage", "rate with", "rate without", "lift", "95% interval"],
            [
                [
                    x["name"],
                    _pct(x["coverage"]),
                    _pct(x["rate_with"]),
                    _pct(x["rate_without"]),
                    _num(x["lift"]),
                    f"{_num(x['low'])}-{_num(x['high'])}",
                ]
                for x in lifts
            ],
            {1, 2, 3, 4},
        )
    )
    add("</section>")


def _pql_vs_mql(f: dict[str, Any], add: Add) -> None:
    sbs, o = f["pql_vs_mql"], escape(_outcome(f))
    g = sbs["groups"]
    ref = sbs["reference_ranges"]
    add('<section id="pql-vs-mql"><h2>PQL vs MQL on the same people</h2>')
    add(
        f'<p class="muted">{sbs["people"]:,} people, each counted once at the first date they qualified; base '
        f"rate to {o} {_pct(sbs['base_rate'])}. Shaded: the ranges practitioners quote.</p>"
    )
    add(
        svg.bars(
            "pql-vs-mql",
            "PQL vs MQL",
            [f"to {o}", "to closed-won"],
            [
                ("PQL", [g["PQL"]["to_opportunity"], g["PQL"]["to_closed_won"]]),
                ("MQL", [g["MQL"]["to_opportunity"], g["MQL"]["to_closed_won"]]),
                ("everyone", [sbs["base_rate"], None]),
            ],
            percent=True,
            bands=[
                (0, *ref["pql_to_opportunity"], "PQL to opportunity, quoted 15-30%"),
                (1, *ref["pql_to_closed_won"], "PQL to closed-won, quoted 5-15%"),
            ],
        )
    )
    add(
        _table(
            [
                "",
                "people",
                f"to {o}",
                "quoted range",
                "to closed-won",
                "quoted range",
                "median days",
            ],
            [
                [
                    "PQL",
                    g["PQL"]["people"],
                    _pct(g["PQL"]["to_opportunity"]),
                    "15-30%",
                    _pct(g["PQL"]["to_closed_won"]),
                    "5-15%",
                    _num(g["PQL"]["median_days_to_opportunity"]),
                ],
                [
                    "MQL",
                    g["MQL"]["people"],
                    _pct(g["MQL"]["to_opportunity"]),
                    "5-15%",
                    _pct(g["MQL"]["to_closed_won"]),
                    "-",
                    _num(g["MQL"]["median_days_to_opportunity"]),
                ],
            ]
            + [
                [name, o["people"], _pct(o["to_opportunity"]), "", _pct(o["to_closed_won"]), "", ""]
                for name, o in sbs["overlap"].items()
            ],
            {1, 2, 4, 6},
        )
    )
    add("</section>")


def _weekly(f: dict[str, Any], add: Add) -> None:
    """The weekly trend and monitoring."""
    mon, o = f["monitor"], escape(_outcome(f))
    weeks = f["weekly"]
    conv = mon["conversion"]
    xs = [_day(w["as_of"])[5:] for w in weeks]
    add('<section id="weekly-trend"><h2>Backtest: week by week</h2>')
    add(
        f'<p class="muted">New PQLs each {f["every_days"]} days and their conversion ({o}); shaded: '
        "the band the baseline dates expect for that many PQLs.</p>"
    )
    add(
        svg.lines(
            "weekly-trend",
            "Weekly backtest trend",
            xs,
            [
                ("new PQLs converted", [w["new_pqls_to_opportunity"] for w in weeks]),
                ("non-PQLs converted", [w["non_pqls_to_opportunity"] for w in weeks]),
                ("new MQLs converted", [w["new_mqls_to_opportunity"] for w in weeks]),
            ],
            percent=True,
            band=([c.get("low") for c in conv], [c.get("high") for c in conv]),
        )
    )
    add(
        _table(
            [
                "date",
                "users",
                "new PQLs",
                "converted",
                "to won",
                "median days",
                "non-PQLs converted",
                "new MQLs",
                "MQLs converted",
            ],
            [
                [
                    _day(w["as_of"]) + ("" if w["complete"] else " (open)"),
                    w["users"],
                    w["new_pqls"],
                    _pct(w["new_pqls_to_opportunity"]),
                    _pct(w["new_pqls_to_closed_won"]),
                    _num(w["new_pqls_days_to_opportunity"]),
                    _pct(w["non_pqls_to_opportunity"]),
                    w["new_mqls"],
                    _pct(w["new_mqls_to_opportunity"]),
                ]
                for w in weeks
            ],
            {1, 2, 3, 4, 5, 6, 7, 8},
        )
    )
    add("<h2>Monitoring</h2>")
    if mon["alerts"]:
        add("".join(f'<div class="alert">{escape(a)}</div>' for a in mon["alerts"]))
    else:
        add(
            '<div class="ok">Conversion within its band and no drift in signal coverage or scores.</div>'
        )
    add("</section>")


def _capacity(f: dict[str, Any], add: Add) -> None:
    cap = f["capacity"]
    curve = cap["curve"]
    best = cap["recommended"]
    add('<section id="capacity"><h2>A threshold that fits sales capacity</h2>')
    add(
        f'<p class="muted">Capacity {cap["capacity_per_week"]:g} leads a week, worked best score first. The '
        f"recommended threshold, {cap['recommended_threshold']}, works {best['worked_conversions_per_week']:.1f} "
        f"conversions a week from {best['leads_per_week']:.1f} new leads ({_pct(best['conversion'])} convert).</p>"
    )
    add(
        svg.lines(
            "capacity",
            "Capacity curve",
            [str(c["threshold"]) for c in curve],
            [
                ("new leads a week", [c["leads_per_week"] for c in curve]),
                ("conversions a week, all leads", [c["conversions_per_week"] for c in curve]),
                (
                    "conversions a week, worked within capacity",
                    [c["worked_conversions_per_week"] for c in curve],
                ),
            ],
            xlabel="threshold",
            marker=cap["recommended_threshold"],
            hline=(cap["capacity_per_week"], "capacity"),
        )
    )
    add("</section>")


__all__ = ["CHARTS", "CSS", "body", "gather", "render"]
