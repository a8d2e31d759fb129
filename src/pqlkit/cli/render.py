"""Output for people (rich tables, progress) and for programs (JSON), nothing else."""

from __future__ import annotations

import contextlib
import json
import re
import sys
from collections.abc import Callable, Iterator
from datetime import date, datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from ..usecases.common import by_weight


def _console(stderr: bool) -> Console:
    probe = Console(stderr=stderr)
    # Piped output (files, CI logs) gets a readable width instead of rich's 80 columns.
    width = None if probe.is_terminal else 120
    # No emoji codes: rich would print "pql.yml:100: x" as "pql.yml💯 x" (issue 27); text
    # from users and errors goes through escape() or Text, never through markup.
    return Console(stderr=stderr, highlight=False, soft_wrap=False, width=width, emoji=False)


out = _console(False)
err = _console(True)


def _default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, set | tuple):
        return list(value)
    return str(value)


def emit_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=_default, indent=2) + "\n")


def table(
    rows: list[dict[str, Any]],
    columns: list[str],
    title: str | None = None,
    wrap: tuple[str, ...] = ("reasons",),
) -> None:
    t = Table(title=title, title_justify="left", show_lines=False, expand=False)
    for c in columns:
        t.add_column(
            c,
            overflow="fold",
            max_width=90 if c in wrap else None,
            justify="right" if rows and isinstance(rows[0].get(c), int | float) else "left",
        )
    for r in rows:
        t.add_row(*(escape(_cell(r.get(c))) for c in columns))
    out.print(t)


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.2f}"
    if isinstance(v, datetime):
        return v.isoformat(sep=" ")
    return str(v)


def warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}")


def error(message: str) -> None:
    """An error as it is: plain text after a red "error:", never wrapped or read as markup."""
    err.print(Text.assemble(("error:", "bold red"), " ", message), soft_wrap=True)


def lead_list(rows: list[dict[str, Any]], title: str) -> None:
    """Users as readable blocks: who (the person when known, and the id), score, where they
    go, the next step when there is one, and why (one reason a line)."""
    out.print(f"[bold]{escape(title)}[/bold]")
    for r in rows:
        who = r.get("person") or {}
        named = " ".join(
            x for x in (who.get("email"), f"({who['role']})" if who.get("role") else "") if x
        )
        out.print(
            f"  [bold]{escape(named or str(r['user_id']))}[/bold]"
            + (f" {escape(str(r['user_id']))}" if named else "")
            + f" ({escape(str(r.get('account_id') or '-'))})  "
            f"score {r['score']}  tier {escape(str(r['tier']))}  {escape(str(r.get('icp_profile') or '-'))}  "
            f"{escape(str(r['segment']))} -> {escape(str(r['motion']))}"
        )
        step = r.get("next_step")
        if isinstance(step, dict):
            out.print(f"      [bold]next:[/bold] {escape(str(step.get('action', '')))}")
        if r.get("points") is not None:
            out.print(f"      {escape(standing(r))}")
        for reason in by_weight(r.get("reasons")):
            out.print(f"      {escape(reason)}")


def standing(r: dict[str, Any]) -> str:
    """Where a user stands beyond the 0-100 score: their uncapped points, and the calibrated
    likelihood with its grade once the model has a calibration."""
    points = f"{r.get('points')} points uncapped"
    if r.get("likelihood") is None:
        return f"{points}; no likelihood yet (pql learn proposes a calibration)"
    return f"{points}; likelihood {r['likelihood']:.1%}, grade {r.get('grade')}"


# --- progress ---------------------------------------------------------------------------------

_COUNTED = re.compile(r"\b(\d[\d,]*)/(\d[\d,]*)\b")


def interactive(as_json: bool) -> bool:
    """Whether a person is watching: not --json, and both stdout and stderr are terminals (a
    piped or redirected command stays silent, so logs and files hold only its output)."""
    return not as_json and out.is_terminal and err.is_terminal


@contextlib.contextmanager
def progress(enabled: bool) -> Iterator[Callable[[str], None]]:
    """What a long command is doing, on stderr, while a person watches (see
    :func:`interactive`): a spinner, the current step and the time so far; a step that says
    how far it is ("snapshot 3/12", "replaying 2026-01-05 (2/9)") fills a bar too. Gone when
    the command ends; nothing at all when not ``enabled``. Every command that can take more than
    a few seconds reports through this one helper."""
    if not enabled:
        yield lambda _msg: None
        return
    from rich.progress import (
        BarColumn,
        Progress,
        SpinnerColumn,
        TextColumn,
        TimeElapsedColumn,
    )

    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(bar_width=24),
        TextColumn("{task.fields[count]}"),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    ) as bar:
        task = bar.add_task("starting", total=None, count="")

        def say(message: str) -> None:
            counted = _COUNTED.search(message)
            if counted:
                done, total = (int(g.replace(",", "")) for g in counted.groups())
                bar.update(
                    task,
                    description=message,
                    completed=done,
                    total=max(total, 1),
                    count=f"{done}/{total}",
                )
            else:  # a step without a count: no m/n, the bar pulses
                bar.update(task, description=message, completed=0, count="")
                bar.tasks[0].total = None  # update() reads total=None as "unchanged"
            bar.refresh()  # steps are few: each is drawn when it starts

        yield say
