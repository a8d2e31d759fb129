"""`pql backtest` and `pql report`: the model replayed over history."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import render
from .group import cli
from .options import interactive, json_option, model_option, pct, progress, url_option


def replay_options(fn: Any) -> Any:
    for option in reversed(
        [
            click.option(
                "--from",
                "start",
                default=None,
                help="First date (default: four weeks into the data).",
            ),
            click.option(
                "--to", "end", default=None, help="Last date (default: the last event's day)."
            ),
            click.option(
                "--every", default="7d", show_default=True, help="Time between replayed dates."
            ),
            click.option(
                "--outcome",
                type=click.Choice(["opportunity", "closed_won", "won", "self_serve", "any"]),
                default="opportunity",
                show_default=True,
                help="What counts as converting (self_serve: upgrades without sales; any: either).",
            ),
            click.option(
                "--horizon",
                default="30d",
                show_default=True,
                help="How long after a date a conversion counts.",
            ),
            click.option(
                "--won-horizon",
                default="60d",
                show_default=True,
                help="How long after a date a closed-won deal counts (deals take longer).",
            ),
            click.option(
                "--reps",
                default=2,
                show_default=True,
                type=click.IntRange(min=1),
                help="Sales reps working PQLs (for the capacity threshold).",
            ),
            click.option(
                "--leads-per-rep",
                default=10,
                show_default=True,
                type=click.FloatRange(min=0, min_open=True),
                help="Leads each rep can work per --every period.",
            ),
        ]
    ):
        fn = option(fn)
    return fn


def _replay(start, end, every, outcome, horizon, won_horizon, reps, leads_per_rep) -> Any:
    from ..usecases.learning import ReplayOptions

    return ReplayOptions(
        outcome=outcome,
        start=start,
        end=end,
        every=every,
        horizon=horizon,
        won_horizon=won_horizon,
        reps=reps,
        leads_per_rep=leads_per_rep,
    )


@cli.command()
@model_option
@url_option
@replay_options
@click.option(
    "--challenger",
    default=None,
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="Also replay this model on the same dates and show both side by side.",
)
@json_option
def backtest(
    model_path,
    url,
    start,
    end,
    every,
    outcome,
    horizon,
    won_horizon,
    reps,
    leads_per_rep,
    challenger,
    as_json,
) -> None:
    """Replay the model over history: PQLs each period and what they went on to do.

    As of each date from --from to --to: users who became PQLs (and MQLs) since the date before,
    their conversion to opportunity and closed-won, days to convert, against non-PQLs; PQL vs
    MQL on the same people beside the rates practitioners quote; the threshold that fits sales
    capacity; and monitoring (conversion against its band, drift). Exit code 3 when monitoring
    raises an alert, or when no outcome of the --outcome kind exists while others do. With
    --challenger, both models on the same dates, side by side.
    """
    from ..usecases.learning import backtest as run

    options = _replay(start, end, every, outcome, horizon, won_horizon, reps, leads_per_rep)
    if challenger is not None:
        from .champion import backtest_side_by_side

        backtest_side_by_side(model_path, challenger, url, options, as_json)
        return
    with progress(interactive(as_json)) as say:
        b = run(
            model_path,
            url,
            options,
            progress=say,
        )
    if as_json:
        render.emit_json(b.to_dict())
    else:
        _render_backtest(b)
    for warning in b.warnings:
        render.warn(warning)
    if b.alerts or b.warnings:
        sys.exit(3)


def _render_backtest(b: Any) -> None:
    render.table(
        [
            {
                "as of": f"{w['as_of']:%Y-%m-%d}" + ("" if w["complete"] else " (open)"),
                "users": w["users"],
                "new PQLs": w["new_pqls"],
                "converted": pct(w["new_pqls_to_opportunity"]),
                "to won": pct(w["new_pqls_to_closed_won"]),
                "days to convert": "-"
                if w["new_pqls_days_to_opportunity"] is None
                else f"{w['new_pqls_days_to_opportunity']:.0f}",
                "non-PQLs converted": pct(w["non_pqls_to_opportunity"]),
                "new MQLs": w["new_mqls"],
                "MQLs converted": pct(w["new_mqls_to_opportunity"]),
            }
            for w in b.weekly
        ],
        [
            "as of",
            "users",
            "new PQLs",
            "converted",
            "to won",
            "days to convert",
            "non-PQLs converted",
            "new MQLs",
            "MQLs converted",
        ],
        title=f"New PQLs every {b.every_days} days: converted = {b.outcome} within {b.horizon_days} days, closed-won within "
        f"{b.won_horizon_days} (open: horizon not over yet)",
    )
    _render_pql_vs_mql(b)
    cap = b.capacity
    render.out.print(
        f"Capacity: {cap['note']} The model's threshold is "
        f"{b.pql_score:g}; `pql report` draws the whole curve."
    )
    for alert in b.alerts:
        render.warn(alert)
    if not b.alerts:
        render.out.print("Monitoring: conversion within its expected band, no drift.")


def _render_pql_vs_mql(b: Any) -> None:
    """PQL against MQL on the same people, beside the rates practitioners quote."""
    sbs = b.pql_vs_mql
    g, ref = sbs["groups"], sbs["reference_ranges"]

    def quoted(key: str) -> str:
        lo, hi = ref[key]
        return f"{lo:.0%}-{hi:.0%}"

    def group(
        name: str, opp_quote: str, won_quote: str, o: dict[str, Any], share: str
    ) -> dict[str, Any]:
        return {
            "": name,
            "people": o["people"],
            "to opportunity": pct(o["to_opportunity"]),
            "quoted": opp_quote,
            "to closed-won": pct(o["to_closed_won"]),
            "quoted ": won_quote,
            "share of all opps": share,
        }

    render.table(
        [
            group(
                "PQL",
                quoted("pql_to_opportunity"),
                quoted("pql_to_closed_won"),
                g["PQL"],
                pct(g["PQL"]["share_of_opportunities"]),
            ),
            group(
                "MQL",
                quoted("mql_to_opportunity"),
                "-",
                g["MQL"],
                pct(g["MQL"]["share_of_opportunities"]),
            ),
            *(group(name, "", "", o, "") for name, o in sbs["overlap"].items()),
        ],
        ["", "people", "to opportunity", "quoted", "to closed-won", "quoted ", "share of all opps"],
        title=f"PQL vs MQL on the same {sbs['people']:,} people (each once, at the first date they qualified; "
        f"base rate {pct(sbs['base_rate'])})",
    )


@cli.command()
@model_option
@url_option
@replay_options
@click.option(
    "-o",
    "--out",
    "out_path",
    default="pql-report.html",
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The HTML file to write.",
)
@json_option
def report(
    model_path,
    url,
    start,
    end,
    every,
    outcome,
    horizon,
    won_horizon,
    reps,
    leads_per_rep,
    out_path,
    as_json,
) -> None:
    """Write one self-contained HTML report (opens offline): funnel, score distribution by
    outcome, signal lift, calibration, PQL vs MQL, the weekly backtest and the capacity curve."""
    from ..usecases.learning import report as run

    with progress(interactive(as_json)) as say:
        r = run(
            model_path,
            url,
            _replay(start, end, every, outcome, horizon, won_horizon, reps, leads_per_rep),
            out_path,
            progress=say,
        )
    for warning in r.warnings:
        render.warn(warning)
    if as_json:
        render.emit_json(r.to_dict())
        return
    render.out.print(
        f"Wrote {r.path} ({r.bytes / 1024:.0f} KB, {len(r.charts)} charts); open it in a browser."
    )
