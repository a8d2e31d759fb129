"""`pql learn`, `evaluate`, `backtest`, `report`."""

from __future__ import annotations

from typing import Any

import click

from . import render
from .group import cli
from .options import (
    interactive,
    json_option,
    model_option,
    num,
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
    "--id",
    "id_column",
    default=None,
    metavar="COLUMN",
    help="With --from-table: the column that identifies a row (default: user_id); the proposed "
    "model reads its users from the table by it.",
)
@click.option(
    "--seeds",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=20),
    help="With --from-table: refit on this many random splits and report how much the AUCs move.",
)
@click.option(
    "--time-column",
    default=None,
    metavar="COLUMN",
    help="With --from-table: a date (or year) column; fit on the earlier rows and measure on "
    "the later quarter, as the points will be used (the column is not an input).",
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
    id_column,
    seeds,
    time_column,
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
        id_column=id_column,
        seeds=seeds,
        time_column=time_column,
        propose=not no_propose,
        propose_path=propose_path,
        force=force,
    )
    with progress(interactive(as_json)) as say:
        learned = run(model_path, url, options, progress=say)
    if as_json:
        render.emit_json(learned.to_dict())
        return
    _render_learned(learned.result, user_table=user_table, label=label, outcome=outcome, top=top)
    if learned.proposal is not None:
        _render_proposal(learned.proposal, learned.target, user_table, show_diff)
    for note in learned.result.notes:
        render.warn(note)


def _render_learned(
    result: Any, *, user_table: str | None, label: str | None, outcome: str, top: int
) -> None:
    """What was learned: the rows, the lifts, the quality against the references, the points."""
    if user_table:
        render.out.print(
            f"[bold]{render.escape(label or '')}[/bold] in {render.escape(user_table)}: {result.rows:,} rows, "
            f"{result.conversions:,} converted ({result.train_conversions:,} to fit on, "
            f"{result.test_conversions:,} in {result.held_out})"
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
            "coverage": pct(x.coverage),
            "rate with": pct(x.rate_with),
            "rate without": pct(x.rate_without),
            "lift": num(x.lift, 2),
            "95% interval": f"{num(x.low, 2)}-{num(x.high, 2)}" + (" *" if x.significant else ""),
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
                    "AUC": num(q.auc),
                    "lift top 5%": num(q.lift_5, 2),
                    "lift top 10%": num(q.lift_10, 2),
                }
                for q in result.quality
            ],
            ["model", "AUC", "lift top 5%", "lift top 10%"],
            title="Quality on " + (result.held_out if user_table else "the held-out last date"),
        )
    if result.points is not None:
        prows = sorted(result.points.rows(), key=lambda r: -abs(r["points"]))[:top]
        render.table(prows, ["input", "points", "log_odds"], title="Learned points (largest first)")


def _render_proposal(proposal: Any, target: Any, user_table: str | None, show_diff: bool) -> None:
    """What the proposed model changes, and what to do with it."""
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
    if user_table:
        render.out.print(
            f"PQL threshold {proposal.pql_score_before:g} -> {proposal.pql_score_after:g} "
            "(the top tenth of the rows it was fitted on). Its users are the rows of "
            f"{render.escape(user_table)}: `pql score --model {target}` scores them."
        )
    else:
        render.out.print(
            f"PQL threshold {proposal.pql_score_before:g} -> {proposal.pql_score_after:g} "
            "(about as many PQLs as now on the training dates). Review it, then "
            f"`pql evaluate --model {target}`; copy it over your model to adopt it."
        )
    if show_diff:
        render.out.print(proposal.unified_diff, markup=False, highlight=False)


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
    _render_evaluation(ev)


def _render_evaluation(ev: Any) -> None:
    """The held-out quality of the score and the flag, calibration and the score bands."""
    render.out.print(
        f"[bold]{ev.outcome}[/bold] within {ev.horizon_days} days: calibrated on {len(ev.train_dates)} dates before "
        f"{ev.split:%Y-%m-%d}, measured on {len(ev.test_dates)} dates from it ({ev.rows:,} user-dates, "
        f"{ev.conversions:,} conversions)"
    )
    render.table(
        [
            {"measure": "AUC", "PQL": num(ev.auc), "MQL": num(ev.mql_auc)},
            {
                "measure": "lift top 5% / 10%",
                "PQL": f"{num(ev.lift_5, 2)} / {num(ev.lift_10, 2)}",
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
