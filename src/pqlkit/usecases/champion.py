"""Champion and challenger: compare the live model with a challenger scored beside it, replay
both on the same dates, promote one and keep the model's history.

    with Session.open(url, "pql.yml") as s:
        champion.compare(s, challenger="pql.proposed.yml")
        champion.promote(s, "pql.proposed.yml", by="ana", why="ranks better on 6 weeks")
"""

from __future__ import annotations

import dataclasses
import getpass
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import pyarrow as pa

from ..engine import USER_SCORES, utc_now
from ..engine.challenger import CHALLENGER_SCORES, challenger_of
from ..errors import PqlkitError
from ..model.load import load_model
from .common import Progress, day, duration, quiet
from .learning import Backtest, ReplayOptions, backtest
from .session import Session

HISTORY = "pql_model_history"
"""Every promotion: when, the model's name, the promoted version (as judged), the version of
the file written, the version it replaced, by whom, why, and the file it came from."""
HISTORY_SCHEMA = ibis.schema(
    {
        "promoted_at": "timestamp",
        "model_name": "string",
        "version": "string",
        "written_version": "string",
        "previous_version": "string",
        "promoted_by": "string",
        "why": "string",
        "source": "string",
    }
)


def scored_any(session: Session) -> bool:
    """Whether a challenger has been scored in this database."""
    return session.backend.has_table(CHALLENGER_SCORES)


def challenger_version(session: Session, challenger: str | Path | None) -> str:
    """The challenger's version: of the file given, else of the model's ``challenger:`` file,
    else the one scored last."""
    if challenger is not None:
        return load_model(challenger).version
    named = challenger_of(session.loaded)
    if named is not None:
        return named.version
    b = session.backend
    if not b.has_table(CHALLENGER_SCORES):
        raise PqlkitError(
            "no challenger has been scored yet: run `pql score --challenger FILE` (or name the "
            "file in the model's challenger:), then compare as outcomes arrive"
        )
    t = b.table(CHALLENGER_SCORES)
    last = b.rows(t.order_by(t.as_of.desc()).select("model_version").limit(1))
    if not last:
        raise PqlkitError(f"{CHALLENGER_SCORES} is empty: run `pql score --challenger FILE`")
    return str(last[0]["model_version"])


def compare(
    session: Session,
    challenger: str | Path | None = None,
    *,
    outcome: str = "opportunity",
    horizon: str = "30d",
    won_horizon: str = "60d",
    capacity: int = 20,
) -> Any:
    """The live model against a challenger on the users both scored at the same dates, as
    their outcomes arrived (:class:`pqlkit.learn.compare.Comparison`)."""
    from ..learn.compare import compare as measure
    from ..learn.compare import paired
    from ..learn.dataset import data_span

    kind = ReplayOptions(outcome=outcome).kind
    span, won_span = duration("--horizon", horizon), duration("--won-horizon", won_horizon)
    if capacity < 1:
        raise PqlkitError(f"--capacity {capacity} must be at least 1 (leads sales works a run)")
    version = challenger_version(session, challenger)
    b, engine = session.backend, session.engine
    if not b.has_table(CHALLENGER_SCORES) or not b.has_table(USER_SCORES):
        raise PqlkitError(
            "no challenger has been scored yet: run `pql score --challenger FILE` first"
        )
    outcomes = engine.bound.outcomes
    if outcomes is None:
        raise PqlkitError(
            "comparing needs outcomes: map sources.outcomes to your opportunities and upgrades"
        )
    t = b.table(CHALLENGER_SCORES)
    if not b.rows(t.filter(t.model_version == version).limit(1)):
        known = sorted(
            {str(r["model_version"]) for r in b.rows(t.select("model_version").distinct())}
        )
        raise PqlkitError(
            f"no scores of challenger version {version} in {CHALLENGER_SCORES} (it holds "
            f"{', '.join(known) or 'none'}); run `pql score --challenger FILE` with that file"
        )
    expr = paired(
        b.table(USER_SCORES), t, outcomes, version, outcome=kind, horizon=span, won_horizon=won_span
    )
    rows = b.arrow(b.compile(expr)).to_pydict()
    if not rows["as_of"]:
        raise PqlkitError(
            f"challenger {version} has no users in common with the live model's runs (each is "
            "paired with the run it was scored beside)"
        )
    versions = sorted(set(rows["live_version"]))
    _, data_end = data_span(engine)
    return measure(
        rows,
        outcome=kind,
        capacity=capacity,
        versions=(", ".join(versions), version),
        data_end=data_end,
        horizon=span,
    )


@dataclass
class SideBySide:
    """The live model and a challenger replayed on the same dates."""

    live: Backtest
    challenger: Backtest
    live_version: str
    challenger_version: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "live": {"version": self.live_version, **self.live.to_dict()},
            "challenger": {"version": self.challenger_version, **self.challenger.to_dict()},
        }


def backtest_both(
    model_path: str | Path,
    challenger: str | Path,
    url: str | None,
    options: ReplayOptions,
    progress: Progress = quiet,
) -> SideBySide:
    """`pql backtest --challenger`: both models replayed on the live model's dates (its
    window fixed first, so the two replays cannot drift apart)."""
    from ..engine import Engine
    from ..learn.backtest import window

    engine = Engine.open(str(model_path), url)
    try:
        start, end = window(engine, day("--from", options.start), day("--to", options.end))
    finally:
        engine.close()
    fixed = dataclasses.replace(options, start=start, end=end)

    def say(who: str) -> Progress:
        return lambda message: progress(f"{who}: {message}")

    live = backtest(model_path, url, fixed, say("live"))
    other = backtest(challenger, url, fixed, say("challenger"))
    return SideBySide(live, other, load_model(model_path).version, load_model(challenger).version)


# --- promotion and history --------------------------------------------------------------------


@dataclass
class Promoted:
    """What `pql promote` did."""

    path: str
    version: str
    written_version: str
    previous_version: str
    kept: str
    """Where the replaced model file was kept (promote it to roll back)."""
    by: str
    why: str
    promoted_at: datetime
    in_file: bool
    """Whether the model file's ``history:`` section got the entry too."""

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "promoted_at": self.promoted_at.isoformat()}


def _who() -> str:
    try:
        return os.environ.get("PQL_USER") or getpass.getuser()
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "unknown"


def _with_history(text: str, entry: dict[str, str]) -> tuple[str, bool]:
    """``text`` with ``entry`` first in its top-level ``history:`` section, when it has one
    (block or ``[]``; items indented as the ones there); unchanged otherwise."""
    import json

    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        head = line.split("#", 1)[0].rstrip()
        if head not in ("history:", "history: []"):
            continue
        following = [x for x in lines[i + 1 :] if x.strip() and not x.lstrip().startswith("#")]
        first = following[0] if head == "history:" and following else "  -"
        indent = (
            " " * (len(first) - len(first.lstrip())) if first.lstrip().startswith("-") else "  "
        )
        item = [
            f"{indent}{'- ' if n == 0 else '  '}{k}: {json.dumps(v, ensure_ascii=False)}\n"
            for n, (k, v) in enumerate(entry.items())
        ]
        return "".join([*lines[:i], "history:\n", *item, *lines[i + 1 :]]), True
    return text, False


def promote(
    session: Session, candidate: str | Path, *, why: str, by: str | None = None
) -> Promoted:
    """Make ``candidate`` the live model: its text replaces the model file (the old one kept
    beside it as ``<name>.<version>.yml``), the promotion recorded in :data:`HISTORY` and,
    when the candidate has a ``history:`` section, in it, all or nothing."""
    why = " ".join(why.split())  # one line, in the table and in the file
    if not why:
        raise PqlkitError(
            "--why is empty: say why this model goes live (it is kept in the history)"
        )
    live = session.loaded
    target = Path(live.path)
    source = Path(candidate)
    new = load_model(source)
    if new.version == live.version:
        raise PqlkitError(f"{source} is the live model already (version {live.version})")
    when = utc_now()
    who = by or _who()
    entry = {
        "version": new.version,
        "promoted_at": when.isoformat() + "Z",
        "by": who,
        "why": why,
        "previous_version": live.version,
    }
    text, in_file = _with_history(source.read_text(encoding="utf-8"), entry)
    tmp = target.with_name(f".{target.name}.promote.tmp")
    tmp.write_text(text, encoding="utf-8")
    written = load_model(tmp)  # the file that goes live must load, history and all
    kept = target.with_name(f"{target.stem}.{live.version}{target.suffix}")
    b = session.backend
    try:
        with (
            b.errors("recording the promotion failed; the model file is unchanged"),
            b.transaction(),
        ):
            b.ensure_table(HISTORY, HISTORY_SCHEMA)
            b.insert(
                HISTORY,
                pa.Table.from_pylist(
                    [
                        {
                            "promoted_at": when,
                            "model_name": new.model.name,
                            "version": new.version,
                            "written_version": written.version,
                            "previous_version": live.version,
                            "promoted_by": who,
                            "why": why,
                            "source": str(source),
                        }
                    ],
                    schema=HISTORY_SCHEMA.to_pyarrow(),
                ),
            )
            kept.write_bytes(target.read_bytes())
            tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)
    return Promoted(
        path=str(target),
        version=new.version,
        written_version=written.version,
        previous_version=live.version,
        kept=str(kept),
        by=who,
        why=why,
        promoted_at=when,
        in_file=in_file,
    )


def history(session: Session) -> list[dict[str, Any]]:
    """Every promotion recorded, newest first (empty before the first)."""
    b = session.backend
    if not b.has_table(HISTORY):
        return []
    t = b.table(HISTORY)
    return b.rows(t.order_by([t.promoted_at.desc(), t.version]))


__all__ = [
    "HISTORY",
    "Promoted",
    "SideBySide",
    "backtest_both",
    "challenger_version",
    "compare",
    "history",
    "promote",
    "scored_any",
]
