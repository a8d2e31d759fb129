"""Output for people (rich tables) and for programs (JSON), nothing else."""

from __future__ import annotations

import json
import sys
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
    """Users as readable blocks: who, score, where they go, and why (one reason a line)."""
    out.print(f"[bold]{escape(title)}[/bold]")
    for r in rows:
        out.print(
            f"  [bold]{escape(str(r['user_id']))}[/bold] ({escape(str(r.get('account_id') or '-'))})  "
            f"score {r['score']}  tier {escape(str(r['tier']))}  {escape(str(r.get('icp_profile') or '-'))}  "
            f"{escape(str(r['segment']))} -> {escape(str(r['motion']))}"
        )
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
