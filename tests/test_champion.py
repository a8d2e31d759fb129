"""Champion and challenger on the demo's own database (`pql demo`): a challenger scored beside
the live model hands nothing off; `pql compare` shows both on the outcomes; `pql backtest
--challenger` replays both on the same dates; `pql promote` records the model history."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pqlkit.backends import connect
from pqlkit.cli import cli

DATES = ("2026-10-20", "2026-10-27", "2026-11-03")


def pql(*args: str, code: int = 0) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.output


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    """What `pql demo` makes (a database, its model with a hand-off), made once."""
    folder = tmp_path_factory.mktemp("demo")
    pql("demo", "--dir", str(folder), "--accounts", "150", "--users", "600", "--days", "90")
    return folder


@pytest.fixture
def demo(demo_dir, tmp_path) -> Path:
    """A copy of the demo's folder for one test, with a challenger beside the model: the same
    model with a lower PQL threshold and more points for invitations."""
    for name in ("demo.duckdb", "pql.yml"):
        shutil.copy(demo_dir / name, tmp_path / name)
    text = (tmp_path / "pql.yml").read_text(encoding="utf-8")
    assert "pql_score: 60" in text
    (tmp_path / "challenger.yml").write_text(
        text.replace("name: starter", "name: challenger").replace("pql_score: 60", "pql_score: 45"),
        encoding="utf-8",
    )
    return tmp_path


def opts(folder: Path, model: str = "pql.yml") -> list[str]:
    return ["-m", str(folder / model), "--url", str(folder / "demo.duckdb")]


def handed_off(db: Path) -> dict[str, list[tuple]]:
    """Everything the hand-off keeps (transitions, deliveries, the users' state), without the
    times they were written at."""
    b = connect(str(db))
    try:
        out = {}
        for name, columns in (
            ("pql_outbox", ["id", "kind", "entity_id", "new_value", "as_of", "model_version"]),
            ("pql_deliveries", ["transition_id", "destination", "status"]),
            ("pql_user_state", ["user_id", "as_of", "model_version", "score", "is_pql"]),
        ):
            out[name] = sorted(b.values(b.table(name).select(columns)), key=repr)
        return out
    finally:
        b.close()


def challenger_rows(db: Path) -> list[dict]:
    b = connect(str(db))
    try:
        t = b.table("pql_challenger_scores")
        agg = t.group_by(["as_of", "model_version", "champion_version"]).aggregate(
            users=t.count(), pqls=t.is_pql.cast("int64").sum()
        )
        return b.rows(agg.order_by("as_of"))
    finally:
        b.close()


def test_a_challenger_scored_beside_the_live_model_hands_nothing_off(demo, tmp_path_factory):
    alone = tmp_path_factory.mktemp("alone")
    shutil.copy(demo / "demo.duckdb", alone / "demo.duckdb")
    shutil.copy(demo / "pql.yml", alone / "pql.yml")
    for day in DATES:
        out = pql(
            "score",
            *opts(demo),
            "--as-of",
            day,
            "--challenger",
            str(demo / "challenger.yml"),
            "--json",
            "--limit",
            "0",
        )
        beside = json.loads(out)
        pql("score", *opts(alone), "--as-of", day, "--limit", "0")
        assert beside["challenger"]["pqls"] > beside["pqls"]  # a lower threshold: more PQLs
    # the same transitions, deliveries and state as the live model scored alone
    assert handed_off(demo / "demo.duckdb") == handed_off(alone / "demo.duckdb")
    assert handed_off(demo / "demo.duckdb")["pql_outbox"]  # the live model did hand off
    rows = challenger_rows(demo / "demo.duckdb")
    assert [str(r["as_of"].date()) for r in rows] == list(DATES)
    assert {r["champion_version"] for r in rows} == {beside["model_version"]}
    assert rows[-1]["pqls"] == beside["challenger"]["pqls"]


def test_the_models_challenger_file_is_scored_on_every_run(demo):
    model = demo / "pql.yml"
    model.write_text(
        model.read_text(encoding="utf-8").replace(
            "name: starter\n", "name: starter\nchallenger: challenger.yml\n"
        ),
        encoding="utf-8",
    )
    out = pql("score", *opts(demo), "--as-of", DATES[0], "--limit", "0")
    assert "Challenger" in out and "handed nothing off" in out
    assert len(challenger_rows(demo / "demo.duckdb")) == 1


def test_a_missing_challenger_file_is_named(demo):
    model = demo / "pql.yml"
    model.write_text(
        model.read_text(encoding="utf-8").replace(
            "name: starter\n", "name: starter\nchallenger: nowhere.yml\n"
        ),
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["score", *opts(demo), "--limit", "0"])
    assert result.exit_code == 1
    assert "challenger: 'nowhere.yml' is not a file" in result.output
