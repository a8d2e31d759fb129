"""`pql compare`, `pql promote`, `pql history`, and `pql backtest --challenger`'s table: the
live model against a challenger scored beside it."""

from __future__ import annotations

import sys
from typing import Any

import click

from . import render
from .group import cli
from .options import interactive, json_option, model_option, num, pct, progress, url_option


def _interval(low: float | None, high: float | None, fmt: Any) -> str:
    return "-" if low is None or high is None else f"{fmt(low)}-{fmt(high)}"


def _rate(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "-"
    return (
        f"{pct(r['rate'])} ({_interval(r['low'], r['high'], pct)}; {r['hits']:.4g} of {r['n']:,})"
    )


@cli.command()
@model_option
@url_option
@click.option(
    "--challenger",
    default=None,
    metavar="FILE",
    type=click.Path(exists=True, dir_okay=False),
    help="The challenger model file (default: the model's challenger:, else the last scored).",
)
@click.option(
    "--outcome",
    type=click.Choice(["opportunity", "closed_won", "won", "self_serve", "any"]),
    default="opportunity",
    show_default=True,
    help="What counts as converting (AUC, precision, PQL to outcome).",
)
@click.option("--horizon", default="30d", show_default=True, help="How long a conversion counts.")
@click.option(
    "--won-horizon", default="60d", show_default=True, help="How long a closed-won deal counts."
)
@click.option(
    "--capacity",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="Leads sales can work from one run (precision is measured on each model's top this many).",
)
@json_option
def compare(model_path, url, challenger, outcome, horizon, won_horizon, capacity, as_json) -> None:
    """The live model against its challenger, on the outcomes as they arrive.

    Pairs every user both models scored at the same run (`pql score --challenger FILE`, or the
    model's challenger: file on every run) and shows, for each model, AUC and precision at
    sales capacity on --outcome, and PQL to outcome and to won, with 95% intervals (bootstrap
    for AUC, Wilson for rates), and the challenger's AUC minus the live model's.
    """
    from ..usecases.champion import compare as run
    from .options import open_session

    c = run(
        open_session(url, model_path),
        challenger,
        outcome=outcome,
        horizon=horizon,
        won_horizon=won_horizon,
        capacity=capacity,
    ).to_dict()
    if as_json:
        render.emit_json(c)
        return
    render.out.print(
        f"[bold]{c['outcome']}[/bold] within {horizon} on {c['rows']:,} user-dates at "
        f"{len(c['dates'])} runs ({c['conversions']:,} converted, {c['won']:,} won)"
    )
    rows = []
    for who in ("live", "challenger"):
        m = c[who]
        rows.append(
            {
                "model": f"{who} {m['version']}",
                "AUC (95%)": f"{num(m['auc'])} ({_interval(m['auc_low'], m['auc_high'], num)})",
                f"precision at {c['capacity']}": _rate(m["precision_at_capacity"]),
                "PQLs": m["pqls"],
                f"PQL to {c['outcome']}": _rate(m["pql_to_outcome"]),
                "PQL to won": _rate(m["pql_to_won"]),
            }
        )
    render.table(rows, list(rows[0]), title="Live model and challenger on the same users and dates")
    render.out.print(
        f"Challenger AUC minus live: {num(c['auc_difference'])} "
        f"({_interval(c['auc_difference_low'], c['auc_difference_high'], num)}): {c['verdict']}."
    )
    for w in c["warnings"]:
        render.warn(w)


def backtest_side_by_side(
    model_path: str, challenger: str, url: str | None, options: Any, as_json: bool
) -> None:
    """`pql backtest --challenger FILE`: both replays, week by week, side by side."""
    from ..usecases.champion import backtest_both

    with progress(interactive(as_json)) as say:
        both = backtest_both(model_path, challenger, url, options, say)
    warnings = sorted(
        {*both.live.warnings, *both.challenger.warnings}
    )  # the data's: often the same
    alerts = [*(f"live: {a}" for a in both.live.alerts)]
    alerts += [f"challenger: {a}" for a in both.challenger.alerts]
    if as_json:
        render.emit_json(both.to_dict())
    else:
        live, other = both.live, both.challenger
        rows = [
            {
                "as of": f"{a['as_of']:%Y-%m-%d}" + ("" if a["complete"] else " (open)"),
                "users": a["users"],
                "live new PQLs": a["new_pqls"],
                "live converted": pct(a["new_pqls_to_opportunity"]),
                "challenger new PQLs": b["new_pqls"],
                "challenger converted": pct(b["new_pqls_to_opportunity"]),
                "live to won": pct(a["new_pqls_to_closed_won"]),
                "challenger to won": pct(b["new_pqls_to_closed_won"]),
            }
            for a, b in zip(live.weekly, other.weekly, strict=True)
        ]
        render.table(
            rows,
            list(rows[0]) if rows else [],
            title=f"Live {both.live_version} and challenger {both.challenger_version} replayed on "
            f"the same dates: converted = {live.outcome} within {live.horizon_days} days",
        )
        for who, b, version in (
            ("live", live, both.live_version),
            ("challenger", other, both.challenger_version),
        ):
            g = b.pql_vs_mql["groups"]["PQL"]
            best = b.capacity["recommended"]
            render.out.print(
                f"{who} {version}: PQLs (each person once) {g['people']:,}, "
                f"{pct(g['to_opportunity'])} to {live.outcome}, {pct(g['to_closed_won'])} won; "
                f"threshold {b.pql_score:g}, capacity threshold {b.capacity['recommended_threshold']} "
                f"({best['worked_conversions_per_week']:.1f} worked a period)"
            )
        for a in alerts:
            render.warn(a)
    for w in warnings:
        render.warn(w)
    if alerts or warnings:
        sys.exit(3)


@cli.command()
@click.argument("candidate", type=click.Path(exists=True, dir_okay=False))
@model_option
@url_option
@click.option("--why", required=True, help="Why this model goes live (kept in the history).")
@click.option("--by", default=None, help="Who promotes it [default: $PQL_USER, else your login].")
@json_option
def promote(candidate, model_path, url, why, by, as_json) -> None:
    """Make CANDIDATE (e.g. a challenger) the live model, and record it in the history.

    CANDIDATE's text replaces the model file (the old file is kept beside it as
    <name>.<version>.yml: promote that to roll back); the promotion (version, when, by whom,
    why) goes to pql_model_history and, when the file has a history: section, into it.
    """
    from ..usecases.champion import promote as run
    from .options import open_session

    p = run(open_session(url, model_path), candidate, why=why, by=by)
    if as_json:
        render.emit_json(p.to_dict())
        return
    render.out.print(
        f"Promoted {render.escape(candidate)} (version {p.version}) to {render.escape(p.path)}, "
        f"replacing {p.previous_version} (kept as {render.escape(p.kept)}); recorded in "
        "pql_model_history" + (" and the file's history: section." if p.in_file else ".")
    )


@cli.command()
@model_option
@url_option
@json_option
def history(model_path, url, as_json) -> None:
    """Every promotion of a model: version, when, by whom and why, newest first."""
    from ..usecases.champion import history as run
    from .options import open_session

    rows = run(open_session(url, model_path))
    if as_json:
        render.emit_json({"history": rows})
        return
    if not rows:
        render.out.print("No promotion recorded yet (`pql promote FILE --why ...` records one).")
        return
    render.table(
        [
            {
                "promoted at": f"{r['promoted_at']:%Y-%m-%d %H:%M}",
                "model": r["model_name"],
                "version": r["version"],
                "replaced": r["previous_version"],
                "by": r["promoted_by"],
                "why": r["why"],
            }
            for r in rows
        ],
        ["promoted at", "model", "version", "replaced", "by", "why"],
        title="Model history",
        wrap=("why",),
    )
