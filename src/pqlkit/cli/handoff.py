"""`pql deliver` and `pql deliveries`: the hand-off's worker and its ledger."""

from __future__ import annotations

import click

from . import render
from .group import cli
from .options import json_option, model_option, open_session, url_option

STATUSES = ("pending", "sending", "failed", "dead", "disabled", "delivered")


@cli.command()
@model_option
@url_option
@click.option(
    "--loop", is_flag=True, help="Keep delivering every --interval seconds (Ctrl-C to stop)."
)
@click.option("--interval", default=1.0, show_default=True, type=click.FloatRange(min=0.05))
@json_option
def deliver(model_path, url, loop, interval, as_json) -> None:
    """Send every transition that is due to the model's destinations (webhooks, Slack, Teams, CRMs)."""
    from ..usecases.handoff import deliver as run

    if loop:  # a running part: each pass that sends says so ($PQLKIT_LOG_FORMAT=json: JSON lines)
        from .. import logs

        logs.setup()
    report = run(model_path, url, loop=loop, interval=interval)
    if as_json:
        render.emit_json(report.to_dict())
        return
    render.out.print(
        f"{report.delivered:,} delivered, {report.retrying:,} to retry, {report.dead:,} dead-lettered, "
        f"{report.disabled:,} to disabled destinations."
    )
    if report.remaining:
        render.out.print(
            f"{report.remaining:,} more are due (they came due during this pass, or another "
            "sender holds them); run `pql deliver` again, or `pql deliver --loop`."
        )
    for e in report.errors[:20]:
        render.warn(e)


@cli.command()
@url_option
@click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only these (repeatable; default: pending, sending, failed and dead).",
)
@click.option("--since", default=None, help="Only transitions recorded since this date.")
@click.option(
    "--retry", "do_retry", is_flag=True, help="Make the listed failed and dead deliveries due now."
)
@click.option(
    "--replay", is_flag=True, help="With --since: send delivered ones again too (same ids)."
)
@click.option(
    "--enable",
    "enable_dest",
    metavar="DEST",
    default=None,
    help="Enable a destination a 410 Gone disabled; its disabled deliveries are due again.",
)
@click.option("--limit", default=100, show_default=True)
@json_option
def deliveries(url, statuses, since, do_retry, replay, enable_dest, limit, as_json) -> None:
    """List pending, failed and dead-lettered deliveries with their last error; retry or replay
    them, or enable a destination a 410 disabled."""
    from ..usecases.handoff import deliveries as listing
    from ..usecases.handoff import enable, retry

    if enable_dest is not None:
        n = enable(open_session(url), enable_dest)
        if as_json:
            render.emit_json({"enabled": enable_dest, "due": n})
        else:
            render.out.print(
                f"{enable_dest} is enabled; {n:,} of its deliveries are due again "
                "(`pql deliver` sends them)."
            )
        return

    wanted = list(statuses) or ["pending", "sending", "failed", "dead"]
    if do_retry or replay:
        again = [s for s in wanted if s in ("failed", "dead", "disabled")] + (
            ["delivered"] if replay else []
        )
        n = retry(open_session(url), statuses=again or ["failed", "dead"], since=since)
        if as_json:
            render.emit_json({"retried": n})
        else:
            render.out.print(f"{n:,} deliveries are due again; `pql deliver` sends them.")
        return
    rows = listing(open_session(url), statuses=wanted, since=since, limit=limit)
    if as_json:
        render.emit_json({"deliveries": rows})
        return
    from ..usecases.handoff import LISTED

    render.table(
        rows,
        list(LISTED),
        title="Deliveries",
        wrap=("last_error",),
    )


@cli.command()
@click.argument("user_id")
@click.argument("action", type=click.Choice(["done", "disqualify"]))
@model_option
@url_option
@click.option("--reason", default=None, help="Why (required to disqualify).")
@click.option("--by", default=None, help="Who gives the feedback (a rep's name or e-mail).")
@click.option(
    "--cooldown",
    default=None,
    help="No re-alert for this long (default: the model's handoff.cooldown).",
)
@json_option
def feedback(user_id, action, model_path, url, reason, by, cooldown, as_json) -> None:
    """Record a rep's feedback on USER_ID: done, or disqualify with a reason (no re-alert during the cooldown)."""
    from ..usecases.handoff import feedback as run

    fb = run(
        open_session(url, model_path), user_id, action, reason=reason, by=by, cooldown=cooldown
    )
    if as_json:
        render.emit_json(fb.to_dict())
        return
    render.out.print(
        render.escape(
            f"{fb.user_id}: {fb.action}"
            + (f" ({fb.reason})" if fb.reason else "")
            + f"; no re-alert until {fb.quiet_until:%Y-%m-%d %H:%M} UTC."
        )
    )
