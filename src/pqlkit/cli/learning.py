"""`pql learn`, `evaluate`, `backtest`, `report`."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import cli, render
from .options import (
    interactive,
    json_option,
    model_option,
    outcome_options,
    pct,
    progress,
    url_option,
)


@cli.command()
@model_option
@url_option
@outcome_options
@click.option(
    "--snapshots",
    default=6,
    show_default=True,
    type=click.IntRange(min=2),
    help="How many dates to take snapshots at; the last is held out to measure quality.",
)
@click.option(
    "--until", default=None, help="Treat data after this date as unseen (default: the last event)."
)
@click.option("--no-reference", is_flag=True, help="Skip the gradient-boosted reference model.")
@click.option("--top", default=15, show_default=True, help="How many lifts and points to show.")
@click.option(
    "--from-table",
    "user_table",
    default=None,
    metavar="TABLE|FILE",
    help="Learn from a user-level table instead (one row per user, an outcome column): "
    "a table in the database or a CSV/Parquet file.",
)
@click.option(
    "--label", default=None, help="With --from-table: the outcome column (1/0, true/false, yes/no)."
)
@click.option(
    "--exclude",
    "excluded",
    multiple=True,
    metavar="COLUMN",
    help="With --from-table: a column to leave out (ids, or columns filled in after the outcome); repeatable.",
)
@click.option(
    "--propose",
    "propose_path",
    default=None,
    metavar="FILE",
    help="Where to write the proposed model [default: <model>.proposed.yml beside the model].",
)
@click.option("--no-propose", is_flag=True, help="Do not write a proposed model file.")
@click.option(
    "--force", is_flag=True, help="Let --propose replace a file that is not an earlier proposal."
)
@click.option(
    "--diff",
    "show_diff",
    is_flag=True,
    help="Also print the proposal as a unified diff of the model.",
)
@json_option
def learn(
    model_path,
    url,
    outcome,
    horizon,
    snapshots,
    until,
    no_reference,
    top,
    user_table,
    label,
    excluded,
    propose_path,
    no_propose,
    force,
    show_diff,
    as_json,
) -> None:
    """Which behaviours and traits go with conversions, and points fitted to them.

    Builds point-in-time snapshots (features before each date, the outcome within --horizon
    after it), shows each signal's and trait's lift with a 95% interval, fits whole points
    (regularised logistic regression) and compares them, on the last date, with the current
    model and a gradient-boosted reference.
    """
    from ..usecases.learning import LearnOptions
    from ..usecases.learning import learn as run

    options = LearnOptions(
        outcome=outcome,
        horizon=horizon,
        snapshots=snapshots,
        until=until,
        reference=not no_reference,
        user_table=user_table,
        label=label,
        excluded=tuple(excluded),
        propose=not no_propose,
        propose_path=propose_path,
        force=force,
    )
    with progress(interactive(as_json)) as say:
        learned = run(model_path, url, options, progress=say)
    if as_json:
        render.emit_json(learned.to_dict())
        return
    result, proposal, target = learned.result, learned.proposal, learned.target
    if user_table:
        render.out.print(
            f"[bold]{render.escape(label)}[/bold] in {render.escape(user_table)}: {result.rows:,} rows, "
            f"{result.conversions:,} converted ({result.train_conversions:,} to fit on, "
            f"{result.test_conversions:,} in a random held-out quarter)"
        )
    else:
        render.out.print(
            f"[bold]{outcome}[/bold] within {result.horizon_days} days, snapshots "
            f"{', '.join(f'{d:%Y-%m-%d}' for d in result.dates)}: {result.rows:,} user-dates, "
            f"{result.conversions:,} conversions ({result.train_conversions:,} to fit on, "
            f"{result.test_conversions:,} on the held-out last date)"
        )
    rows = [
        {
            "fact": x.name,
            "coverage": f"{x.coverage:.1%}",
            "rate with": f"{x.rate_with:.1%}",
            "rate without": f"{x.rate_without:.1%}",
            "lift": f"{x.lift:.2f}",
            "95% interval": f"{x.low:.2f}-{x.high:.2f}" + (" *" if x.significant else ""),
        }
        for x in result.lifts[:top]
    ]
    render.table(
        rows,
        list(rows[0]) if rows else [],
        title="What goes with converting (* = interval excludes 1)",
    )
    if result.quality:
        render.table(
            [
                {
                    "model": q.name,
                    "AUC": f"{q.auc:.3f}",
                    "lift top 5%": f"{q.lift_5:.2f}",
                    "lift top 10%": f"{q.lift_10:.2f}",
                }
                for q in result.quality
            ],
            ["model", "AUC", "lift top 5%", "lift top 10%"],
            title="Quality on the held-out last date",
        )
    if result.points is not None:
        prows = sorted(result.points.rows(), key=lambda r: -abs(r["points"]))[:top]
        render.table(prows, ["input", "points", "log_odds"], title="Learned points (largest first)")
    if proposal is not None:
        changed: list[dict[str, Any]] = [
            {
                "signal": c.signal,
                "group": c.group.removesuffix("_signals"),
                "points now": c.before,
                "proposed": c.after,
                "change": c.note,
            }
            for c in proposal.changes
            if c.before != c.after
        ]
        render.table(
            changed,
            ["signal", "group", "points now", "proposed", "change"],
            title=f"Proposed model {target} (your model file is unchanged)",
        )
        render.out.print(
            f"PQL threshold {proposal.pql_score_before:g} -> {proposal.pql_score_after:g} "
            "(about as many PQLs as now on the training dates). Review it, then "
            f"`pql evaluate --model {target}`; copy it over your model to adopt it."
        )
        if show_diff:
            render.out.print(proposal.unified_diff, markup=False, highlight=False)
    for note in result.notes:
        render.warn(note)


@cli.command()
@model_option
@url_option
@outcome_options
@click.option("--every", default="7d", show_default=True, help="Time between evaluation dates.")
@click.option(
    "--split", default=None, help="First held-out date (default: 60% of the way through the dates)."
)
@click.option(
    "--until", default=None, help="Treat data after this date as unseen (default: the last event)."
)
@json_option
def evaluate(model_path, url, outcome, horizon, every, split, until, as_json) -> None:
    """How well the model's score and PQL flag predicted conversions, after a time split.

    AUC, lift at the top 5% and 10%, precision and recall of the PQL flag (and the MQL flag on
    the same rows), and calibration: the rate dates before --split predict for a score against
    the rate that followed.
    """
    from ..usecases.learning import evaluate as run

    with progress(interactive(as_json)) as say:
        ev = run(
            model_path,
            url,
            outcome=outcome,
            horizon=horizon,
            every=every,
            split=split,
            until=until,
            progress=say,
        )
    if as_json:
        render.emit_json(ev.to_dict())
        return
    render.out.print(
        f"[bold]{ev.outcome}[/bold] within {ev.horizon_days} days: calibrated on {len(ev.train_dates)} dates before "
        f"{ev.split:%Y-%m-%d}, measured on {len(ev.test_dates)} dates from it ({ev.rows:,} user-dates, "
        f"{ev.conversions:,} conversions)"
    )
    render.table(
        [
            {"measure": "AUC", "PQL": f"{ev.auc:.3f}", "MQL": f"{ev.mql_auc:.3f}"},
            {
                "measure": "lift top 5% / 10%",
                "PQL": f"{ev.lift_5:.2f} / {ev.lift_10:.2f}",
                "MQL": "-",
            },
            {
                "measure": "flagged",
                "PQL": f"{ev.pql['flagged']:,}",
                "MQL": f"{ev.mql['flagged']:,}",
            },
            {
                "measure": "precision",
                "PQL": pct(ev.pql["precision"]),
                "MQL": pct(ev.mql["precision"]),
            },
            {"measure": "recall", "PQL": pct(ev.pql["recall"]), "MQL": pct(ev.mql["recall"])},
            {
                "measure": "Brier score",
                "PQL": "-" if ev.brier is None else f"{ev.brier:.4f}",
                "MQL": "-",
            },
        ],
        ["measure", "PQL", "MQL"],
        title="Held-out quality (score and flag)",
    )
    if ev.calibration:
        render.table(
            [
                {
                    "predicted": pct(c["predicted"]),
                    "observed": pct(c["observed"]),
                    "user-dates": c["n"],
                }
                for c in ev.calibration
            ],
            ["predicted", "observed", "user-dates"],
            title="Calibration (deciles of the rate the earlier dates predict)",
        )
    render.table(
        [
            {
                "score": b["band"],
                "users": b["users"],
                "converted": b["converted"],
                "rate": pct(b["rate"]),
            }
            for b in ev.by_band
            if b["users"]
        ],
        ["score", "users", "converted", "rate"],
        title="Conversion by score band",
    )
    for note in ev.notes:
        render.warn(note)


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
                "--horizon",
                default="30d",
                show_default=True,
                help="How long after a date an opportunity counts.",
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


def _replay(start, end, every, horizon, won_horizon, reps, leads_per_rep) -> Any:
    from ..usecases.learning import ReplayOptions

    return ReplayOptions(
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
@json_option
def backtest(
    model_path, url, start, end, every, horizon, won_horizon, reps, leads_per_rep, as_json
) -> None:
    """Replay the model over history: PQLs each period and what they went on to do.

    As of each date from --from to --to: users who became PQLs (and MQLs) since the date before,
    their conversion to opportunity and closed-won, days to convert, against non-PQLs; PQL vs
    MQL on the same people beside the rates practitioners quote; the threshold that fits sales
    capacity; and monitoring (conversion against its band, drift). Exit code 3 when monitoring
    raises an alert.
    """
    from ..usecases.learning import backtest as run

    with progress(interactive(as_json)) as say:
        b = run(
            model_path,
            url,
            _replay(start, end, every, horizon, won_horizon, reps, leads_per_rep),
            progress=say,
        )
    if as_json:
        render.emit_json(b.to_dict())
    else:
        _render_backtest(b)
    if b.alerts:
        sys.exit(3)


def _render_backtest(b: Any) -> None:
    render.table(
        [
            {
                "as of": f"{w['as_of']:%Y-%m-%d}" + ("" if w["complete"] else " (open)"),
                "users": w["users"],
                "new PQLs": w["new_pqls"],
                "to opp.": pct(w["new_pqls_to_opportunity"]),
                "to won": pct(w["new_pqls_to_closed_won"]),
                "days to opp.": "-"
                if w["new_pqls_days_to_opportunity"] is None
                else f"{w['new_pqls_days_to_opportunity']:.0f}",
                "non-PQLs to opp.": pct(w["non_pqls_to_opportunity"]),
                "new MQLs": w["new_mqls"],
                "MQLs to opp.": pct(w["new_mqls_to_opportunity"]),
            }
            for w in b.weekly
        ],
        [
            "as of",
            "users",
            "new PQLs",
            "to opp.",
            "to won",
            "days to opp.",
            "non-PQLs to opp.",
            "new MQLs",
            "MQLs to opp.",
        ],
        title=f"New PQLs every {b.every_days} days: opportunity within {b.horizon_days} days, closed-won within "
        f"{b.won_horizon_days} (open: horizon not over yet)",
    )
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
    cap = b.capacity
    best = cap["recommended"]
    render.out.print(
        f"Capacity {cap['capacity_per_week']:g} leads per {b.every_days} days: threshold "
        f"[bold]{cap['recommended_threshold']}[/bold] works {best['worked_conversions_per_week']:.1f} opportunities "
        f"from {best['leads_per_week']:.1f} new leads ({pct(best['conversion'])} convert; the model's threshold is "
        f"{b.pql_score:g}). `pql report` draws the whole curve."
    )
    for alert in b.alerts:
        render.warn(alert)
    if not b.alerts:
        render.out.print("Monitoring: conversion within its expected band, no drift.")


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
    model_path, url, start, end, every, horizon, won_horizon, reps, leads_per_rep, out_path, as_json
) -> None:
    """Write one self-contained HTML report (opens offline): funnel, score distribution by
    outcome, signal lift, calibration, PQL vs MQL, the weekly backtest and the capacity curve."""
    from ..usecases.learning import report as run

    with progress(interactive(as_json)) as say:
        r = run(
            model_path,
            url,
            _replay(start, end, every, horizon, won_horizon, reps, leads_per_rep),
            out_path,
            progress=say,
        )
    if as_json:
        render.emit_json(r.to_dict())
        return
    render.out.print(
        f"Wrote {r.path} ({r.bytes / 1024:.0f} KB, {len(r.charts)} charts); open it in a browser."
    )
