"""The report's sections as HTML, each a function of the findings (plain data from
:func:`pqlkit.report.build.gather`) that adds its parts, every text escaped."""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from datetime import datetime
from html import escape
from typing import Any

from ..learn.columns import OUTCOME_NAMES
from . import svg
from .svg import SMALL_N, Rate


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


Add = Callable[[str], None]

_RATES = (
    "Whiskers: 95% intervals (Wilson). A hollow mark is a small group (fewer than "
    f"{SMALL_N} people): too few to read a rate from, so it never sets the axis."
)


def _group_rates(g: dict[str, Any]) -> list[Rate | None]:
    """A PQL vs MQL group's two rates, each of the people it is measured on."""
    won_people = g.get("closed_won_people", g["people"])
    return [Rate.of(g["to_opportunity"], g["people"]), Rate.of(g["to_closed_won"], won_people)]


def _weekly_rate(w: dict[str, Any], group: str) -> Rate | None:
    return Rate.of(w[f"{group}_to_opportunity"], w[group])


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
    counts = [v for _, v in f["funnel"]]
    steps = ", ".join(
        f"{escape(name)} {_pct(v / counts[i - 1] if counts[i - 1] else None)} of the step before"
        for i, (name, v) in enumerate(f["funnel"])
        if i
    )
    add(
        '<p class="muted">Each person once, over the replayed dates whose horizon is complete; '
        f"a logarithmic axis, so the small steps show: {steps}.</p>"
    )
    add(svg.bars("funnel", "Funnel", labels, [("people", counts)], ylabel="people", log=True))
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
    conv_total = sum(b["converted"] for b in bands)
    rest_total = sum(b["users"] - b["converted"] for b in bands)
    add("<h2>Score distribution by outcome</h2>")
    add(f'<p class="muted">{_RATES}</p>')
    add(
        svg.bars(
            "score-distribution",
            "Score distribution by outcome",
            [b["band"] for b in bands],
            [
                (
                    "converted",
                    [Rate(b["converted"], conv_total) if conv_total else None for b in bands],
                ),
                (
                    "did not convert",
                    [
                        Rate(b["users"] - b["converted"], rest_total) if rest_total else None
                        for b in bands
                    ],
                ),
            ],
            percent=True,
            xlabel="score",
            ylabel="share of the group",
        )
    )
    add("<h2>Calibration</h2>")
    add(
        '<p class="muted">The conversion rate the earlier dates predict for a score, against the rate that '
        f"followed (deciles of prediction); on the dashed diagonal is perfect. {_RATES}</p>"
    )
    add(
        svg.scatter(
            "calibration",
            "Calibration",
            [
                (c["predicted"], Rate.of(c["observed"], c["n"]), f"{c['n']} user-dates")
                for c in ev["calibration"]
            ],
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
        f"rate to {o} {_pct(sbs['base_rate'])}. Shaded: the ranges practitioners quote. {_RATES}</p>"
    )
    add(
        svg.bars(
            "pql-vs-mql",
            "PQL vs MQL",
            [f"to {o}", "to closed-won"],
            [
                ("PQL", _group_rates(g["PQL"])),
                ("MQL", _group_rates(g["MQL"])),
                ("everyone", [Rate.of(sbs["base_rate"], sbs["people"]), None]),
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
        f"the band the baseline dates expect for that many PQLs. {_RATES}</p>"
    )
    add(
        svg.lines(
            "weekly-trend",
            "Weekly backtest trend",
            xs,
            [
                ("new PQLs converted", [_weekly_rate(w, "new_pqls") for w in weeks]),
                ("non-PQLs converted", [_weekly_rate(w, "non_pqls") for w in weeks]),
                ("new MQLs converted", [_weekly_rate(w, "new_mqls") for w in weeks]),
            ],
            percent=True,
            band=(
                [c.get("low") if c["new_pqls"] >= SMALL_N else None for c in conv],
                [c.get("high") if c["new_pqls"] >= SMALL_N else None for c in conv],
            ),
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
    note = cap.get("note") or (
        f"Threshold {cap['recommended_threshold']} works {best['worked_conversions_per_week']:.1f} "
        f"conversions a week from {best['leads_per_week']:.1f} new leads."
    )
    add(f'<div class="{"ok" if cap.get("fits", True) else "alert"}">{escape(note)}</div>')
    add(
        f'<p class="muted">Capacity {cap["capacity_per_week"]:g} leads a week, worked best score '
        "first; the dashed vertical line marks the threshold above, the dashed horizontal line "
        "the capacity.</p>"
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


SECTIONS: tuple[Callable[[dict[str, Any], Add], None], ...] = (
    _header,
    _funnel,
    _evaluation,
    _lifts,
    _pql_vs_mql,
    _weekly,
    _capacity,
)

__all__ = ["SECTIONS", "Add"]
