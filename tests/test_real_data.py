"""Real-shaped data: the Sparkify event log (eventsim, JSON lines, epoch-millisecond times),
read from files with a column mapping and scored point in time around real upgrades."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pytest

from pqlkit.backends import connect
from pqlkit.engine import Engine
from pqlkit.model.load import load_model

from .conftest import shared_path

MODEL = """\
name: sparkify
sources:
  events:
    path: {events}
    format: jsonl
    columns: {{user_id: userId, event: page, timestamp: ts}}
  users: {{path: users.csv}}
  accounts: null
plans:
  paid: [paid]
  upgrade_events: [Submit Upgrade]
icp:
  profiles:
    - {{id: listener, when: {{field: user.gender, in: [F, M]}}}}
fit_signals: []
usage_signals:
  - {{id: listening, kind: event_count, label: "Played {{value}} songs in 14 days", events: [NextSong],
     window: 14d, points: 0.2, per_unit: true, cap: 40, min: 1}}
  - {{id: active_days, kind: active_days, label: "Active {{value}} days", window: 14d, min: 2,
     points: 3, per_unit: true, cap: 30}}
  - {{id: settings, kind: event_count, label: "Saved settings", events: [Save Settings], points: 5}}
  - {{id: upgrade_page, kind: event_count, label: "Visited the upgrade page", events: [Upgrade],
     window: 14d, points: 20}}
  - {{id: help, kind: hand_raise, label: "Asked for help", events: [Help], window: 14d, points: 5}}
activation: {{signal: listening}}
"""


@pytest.fixture(scope="module")
def sparkify(tmp_path_factory):
    folder = shared_path("sparkify-eventsim", "log_data", "2018", "11")
    tmp = tmp_path_factory.mktemp("sparkify")
    glob = str(folder / "*.json")
    # The users table a product would have: one row per user, first level, registration time.
    with duckdb.connect() as con:
        con.execute(f"""
          COPY (
            SELECT userId AS user_id, arg_min(level, ts) AS plan, any_value(gender) AS gender,
                   make_timestamp((min(registration) * 1000)::BIGINT) AS created_at
            FROM read_json_auto('{glob}') WHERE userId <> '' GROUP BY userId
          ) TO '{tmp / "users.csv"}' (HEADER)
        """)
        upgrades = con.execute(f"""
          SELECT userId, make_timestamp(ts * 1000) FROM read_json_auto('{glob}')
          WHERE page = 'Submit Upgrade' ORDER BY ts
        """).fetchall()
    (tmp / "pql.yml").write_text(MODEL.format(events=glob))
    engine = Engine(load_model(tmp / "pql.yml"), connect(str(tmp / "s.duckdb")))
    yield engine, upgrades
    engine.close()


def test_every_user_is_scored_from_the_files(sparkify):
    engine, _ = sparkify
    result = engine.run(datetime(2018, 12, 1))
    assert result.users == 97  # the 97 users of the log; logged-out events have a blank id
    assert result.warnings == []
    assert result.accounts == 0
    rows = engine.stored_users(result.as_of, result.model_version).to_pyarrow().to_pylist()
    assert sum(r["is_pql"] for r in rows) > 0
    assert all(r["reasons"] for r in rows if r["is_pql"])


def test_plans_change_at_the_real_upgrade_moment(sparkify):
    engine, upgrades = sparkify
    assert len(upgrades) == 8
    for user, moment in upgrades:
        before = engine.explain(user, moment - timedelta(seconds=1))
        after = engine.explain(user, moment + timedelta(seconds=1))
        assert (
            before.attributes["user.is_paid"] is False or before.attributes["user.plan"] == "paid"
        )
        assert after.attributes["user.is_paid"] is True
        assert after.outputs["segment"] in ("converted_without_assistance", "asked_for_sales")


def test_the_upgrade_page_counts_only_once_visited(sparkify):
    engine, upgrades = sparkify
    user, moment = upgrades[0]
    early = engine.explain(user, datetime(2018, 11, 1, 0, 0, 1))
    late = engine.explain(user, moment + timedelta(seconds=1))
    value = {s.id: s.value for s in late.signals}
    assert {s.id: s.value for s in early.signals}["listening"] <= value["listening"]
    assert value["upgrade_page"] >= 1  # eventsim users visit Upgrade before Submit Upgrade
