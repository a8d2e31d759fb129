"""The demo: generate a product-led SaaS, score it with the starter model, export the results."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from ..backends import connect
from ..engine import RunResult, as_utc
from ..errors import PqlkitError
from ..model.load import load_model
from ..sinks.files import export
from .common import Progress, quiet


@dataclass
class DemoResult:
    counts: dict[str, int]
    run: RunResult
    breakdown: list[dict[str, Any]]
    top_pqls: list[dict[str, Any]]
    database: str
    model: Path
    exports: list[Path]
    days: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "data": self.counts,
            "run": self.run.to_dict(),
            "breakdown": self.breakdown,
            "top_pqls": self.top_pqls,
            "database": self.database,
            "model": str(self.model),
            "exports": [str(p) for p in self.exports],
            "seconds": self.seconds,
        }


def demo_end() -> datetime:
    """The demo's data ends at the start of today (UTC), so `now` is just after it."""
    now = as_utc(None)
    return datetime(now.year, now.month, now.day)


def run_demo(
    folder: str | Path = "pql-demo",
    url: str | None = None,
    *,
    accounts: int = 5_000,
    users: int = 20_000,
    days: int = 90,
    seed: int = 7,
    top: int = 10,
    progress: Progress = quiet,
) -> DemoResult:
    """Generate the demo world into a new database (the one use case that opens its own
    connection: it makes the database the others are given), score it and export the scores."""
    from ..backends.postgres import redact
    from ..demo.generate import DemoSize, describe, generate
    from ..demo.load import load, write_model
    from ..model.playbooks import next_step
    from .people import name_people
    from .session import Session

    if accounts < 1 or users < accounts or days < 7:
        raise PqlkitError("demo sizes: need --accounts >= 1, --users >= --accounts and --days >= 7")
    out_dir = Path(folder)
    out_dir.mkdir(parents=True, exist_ok=True)
    db_url = url or str(out_dir / "demo.duckdb")
    model_path = out_dir / "pql.yml"
    started = time.perf_counter()
    progress(f"generating {accounts:,} accounts, {users:,} users, {days} days of events")
    data = generate(DemoSize(accounts=accounts, users=users, days=days, seed=seed), end=demo_end())
    shown = redact(db_url)
    progress(f"loading {data.events.num_rows:,} events into {shown}")
    backend = connect(db_url)
    load(backend, data)
    write_model(model_path, handoff=True)
    engine = Session(backend, load_model(model_path)).engine
    result = engine.run(data.end, progress=progress)
    scored = engine.stored_users(result.as_of, result.model_version)
    ordered = scored.order_by([scored.ranking.desc(), scored.user_id])
    top_rows = backend.rows(ordered.filter(ordered.is_pql).limit(top))
    name_people(Session.of(engine), top_rows)  # who they are, and what to do next
    for r in top_rows:
        r["next_step"] = next_step(engine.model.playbooks, r)
    scores_csv, accounts_csv = out_dir / "scores.csv", out_dir / "accounts.csv"
    export(ordered, scores_csv, "csv")
    accts = engine.stored_accounts(result.as_of, result.model_version)
    export(accts.order_by([accts.score.desc(), accts.account_id]), accounts_csv, "csv")
    return DemoResult(
        counts=describe(data),
        run=result,
        breakdown=engine.breakdown(result),
        top_pqls=top_rows,
        database=shown,  # a password in the URL is never printed
        model=model_path,
        exports=[scores_csv, accounts_csv],
        days=days,
        seconds=time.perf_counter() - started,
    )
