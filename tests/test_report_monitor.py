"""Monitoring raises an alert when the data changed and not otherwise: users who age, a
signal's window cut short by the start of the data and many tests at once are no alarm;
the demo's own data raises none, and the same world with an event no longer sent raises one."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pqlkit.backends import connect
from pqlkit.demo.generate import DemoSize, generate
from pqlkit.demo.load import load, write_model
from pqlkit.engine import Engine
from pqlkit.learn import backtest as bt
from pqlkit.learn.monitor import sigmas
from pqlkit.model.load import load_model

from .conftest import DEMO_END

HORIZON = timedelta(days=30)
DATES = [datetime(2026, 6, 1) + timedelta(days=7 * i) for i in range(12)]
BASE = {
    "account_id": None,
    "mql_score": 0.0,
    "is_mql": False,
    "icp_profile": "p",
    "excluded": False,
    "activated": True,
    "label": False,
    "days_to_convert": None,
    "closed_won": False,
    "days_to_closed_won": None,
}


def _growing_product(fires_at, *, users_a_week: int = 300) -> pa.Table:
    """A product that starts at DATES[0]: every week ``users_a_week`` sign up and stay; a user
    of tenure t days at date i has the signal with the chance ``fires_at(t, i)``."""
    rng = np.random.default_rng(3)
    rows = []
    for i, d in enumerate(DATES):
        for week in range(i + 1):
            for k in range(users_a_week):
                tenure = 7.0 * (i - week) + k % 7
                rows.append(
                    {
                        **BASE,
                        "as_of": d,
                        "user_id": f"u{week}_{k}",
                        "score": 20.0,
                        "is_pql": False,
                        "days_since_signup": tenure,
                        "projects": float(rng.random() < fires_at(tenure, i)),
                    }
                )
    return pa.Table.from_pylist(rows)


def test_users_who_age_raise_no_alert_and_a_change_at_the_same_tenure_does():
    """A lifetime signal fires for more users the longer they have been around: in a young
    product its coverage climbs every week with nothing changed (the fixed early baseline
    flagged it). Compared among users of the same tenure it is steady; the same signal
    halving from the ninth date on for users of every tenure is flagged at that date."""
    aging = _growing_product(lambda t, i: min(0.9, 0.1 + t / 60))
    r = bt.Replay.from_table(aging, HORIZON, DATES[-1] + HORIZON)
    assert bt.monitor(r)["alerts"] == []

    halved = _growing_product(lambda t, i: min(0.9, 0.1 + t / 60) * (0.5 if i >= 8 else 1))
    mon = bt.monitor(bt.Replay.from_table(halved, HORIZON, DATES[-1] + HORIZON))
    assert len(mon["alerts"]) == 1, mon["alerts"]
    assert mon["alerts"][0].startswith("projects coverage") and "2026-07-27" in mon["alerts"][0]


def test_a_window_cut_short_by_the_start_of_the_data_is_not_compared():
    """A 60-day window 7 to 49 days after the first event holds 7 to 49 days of events: its
    coverage grows for that reason alone and is not compared until the window fits; a change
    after that is."""

    def table(drop: bool) -> pa.Table:
        def chance(t: float, i: int) -> float:
            days_of_data = min(7 * (i + 1), 60)  # the first event is a week before DATES[0]
            return (0.2 if drop and i >= 10 else 0.5) * days_of_data / 60

        return _growing_product(chance, users_a_week=200)

    def monitor(t: pa.Table) -> dict:
        r = bt.Replay.from_table(
            t,
            HORIZON,
            DATES[-1] + HORIZON,
            data_start=DATES[0] - timedelta(days=7),
            lookback={"projects": 60.0},
        )
        return bt.monitor(r)

    steady = monitor(table(False))
    assert steady["alerts"] == []
    cut = [d["as_of"] for d in steady["drift"] if "projects" in d["window_cut_short"]]
    assert cut and max(cut) < DATES[10]
    moved = monitor(table(True))
    assert [a.split(" ")[0] for a in moved["alerts"]] == ["projects"], moved["alerts"]


def test_many_steady_signals_over_many_dates_raise_no_alert():
    """A hundred signals of pure noise over eleven dates are 1,100 tests: at three standard
    errors each, about three of them cross by chance. The limits are set for the family."""
    rng = np.random.default_rng(11)
    rows = []
    for d in DATES:
        for k in range(150):
            rows.append(
                {
                    **BASE,
                    "as_of": d,
                    "user_id": f"{d:%m%d}_{k}",
                    "score": float(rng.integers(0, 100)),
                    "is_pql": False,
                    **{f"s{j}": float(rng.random() < 0.5) for j in range(100)},
                }
            )
    mon = bt.monitor(bt.Replay.from_table(pa.Table.from_pylist(rows), HORIZON, DATES[-1]))
    assert mon["alerts"] == []
    assert mon["control_sigmas"]["coverage"] == sigmas(11 * 100) > 4.5
    # one three-sigma test alone keeps its three standard errors
    assert abs(sigmas(1) - 3.0) < 1e-9


def _demo_replay(tmp_path, name: str, keep=None) -> bt.Replay:
    data = generate(DemoSize(accounts=400, users=1600, days=90, seed=5), end=DEMO_END)
    if keep is not None:
        data = dataclasses.replace(data, events=data.events.filter(keep(data.events)))
    backend = connect(str(tmp_path / f"{name}.duckdb"))
    try:
        load(backend, data)
        write_model(tmp_path / "pql.yml")
        engine = Engine(load_model(tmp_path / "pql.yml"), backend)
        start, end = bt.window(engine, None, None)
        every = timedelta(days=7)
        return bt.replay(engine, bt.replay_dates(start, end, every), HORIZON, every)
    finally:
        backend.close()


def test_the_demo_raises_no_alert_and_an_event_no_longer_sent_raises_one(tmp_path):
    """The demo's own data (users signing up and ageing, marketing that began with the data)
    raises no alert; the same world whose feature_used events stop three weeks before its end
    (a tracking change) raises one, on the signal they feed. Long because it replays two
    generated worlds of 1,600 users over 14 weekly dates (about 30-45 s on an idle machine)."""
    assert bt.monitor(_demo_replay(tmp_path, "demo"))["alerts"] == []

    stop = DEMO_END - timedelta(days=21)

    def keep(events: pa.Table):
        dropped = pc.and_(
            pc.equal(events["event"], "feature_used"), pc.greater_equal(events["timestamp"], stop)
        )
        return pc.invert(dropped)

    alerts = bt.monitor(_demo_replay(tmp_path, "changed", keep))["alerts"]
    assert [a.split(" ")[0] for a in alerts] == ["core_features"], alerts
