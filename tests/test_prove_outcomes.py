"""Backtest, report and model health on the outcome a product converts by, and drift that
counts a signal firing: the defects of issue 28, each pinned by a test."""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from pqlkit.cli import cli
from pqlkit.demo.generate import DemoSize
from pqlkit.learn import backtest as bt
from pqlkit.model.signals import RecencySignal

from .conftest import demo_engine_in

HORIZON = timedelta(days=30)


def test_coverage_drift_counts_a_recency_signal_firing_not_its_value_above_zero():
    """A days-since-last-login signal has a value above zero for everyone; its coverage is the
    share of users it fires for (quiet for over 14 days), so a jump in quiet users is flagged."""
    rng = np.random.default_rng(1)
    dates = [datetime(2026, 6, 1) + timedelta(days=7 * i) for i in range(10)]
    rows = []
    for i, d in enumerate(dates):
        quiet_share = 0.6 if i >= 7 else 0.1
        for k in range(400):
            quiet = rng.random() < quiet_share
            rows.append(
                {
                    "as_of": d,
                    "user_id": f"u{i}_{k}",
                    "account_id": None,
                    "score": 20.0,
                    "mql_score": 0.0,
                    "is_pql": False,
                    "is_mql": False,
                    "icp_profile": "p",
                    "excluded": False,
                    "activated": True,
                    "label": False,
                    "days_to_convert": None,
                    "closed_won": False,
                    "days_to_closed_won": None,
                    "quiet": float(rng.integers(15, 60) if quiet else rng.integers(1, 14)),
                }
            )
    table = pa.Table.from_pylist(rows)
    signal = RecencySignal(id="quiet", kind="recency", older_than="14d", points=-10)
    fires = bt.signal_fires(SimpleNamespace(usage_signals=[signal], mql_signals=[]))
    r = bt.Replay.from_table(table, HORIZON, dates[-1] + HORIZON, fires=fires)
    mon = bt.monitor(r)
    step = next(d for d in mon["drift"] if d["as_of"] == dates[7])
    assert 0.05 < step["expected_coverage"]["quiet"] < 0.2
    assert 0.5 < step["coverage"]["quiet"] < 0.7
    assert any(a.startswith("quiet coverage") for a in mon["alerts"]), mon["alerts"]


@pytest.fixture(scope="module")
def self_serve_world(tmp_path_factory):
    """The demo world with every outcome a self-serve upgrade: a product that sells itself."""
    folder = tmp_path_factory.mktemp("self-serve")
    with demo_engine_in(folder, DemoSize(accounts=300, users=1200, days=90, seed=5)) as engine:
        engine.backend.run_sql("UPDATE outcomes SET kind = 'self_serve'")
        n = engine.backend.run_sql("SELECT count(*) FROM outcomes")[0][0]
    assert n > 50
    return folder


def _cli(folder: Path, *args: str):
    return CliRunner().invoke(
        cli, [*args, "--model", str(folder / "pql.yml"), "--url", str(folder / "d.duckdb")]
    )


def test_backtest_on_a_self_serve_product_warns_and_counts_the_chosen_outcome(self_serve_world):
    """Counting opportunities on a product whose conversions are all self-serve reads 0%
    everywhere: the backtest says why and exits 3; `--outcome self_serve` counts them."""
    plain = _cli(self_serve_world, "backtest", "--json")
    assert plain.exit_code == 3, plain.output
    data = json.loads(plain.stdout)
    assert data["outcome"] == "opportunity"
    assert "no opportunity outcome" in data["warnings"][0]
    assert "--outcome self_serve" in data["warnings"][0]
    assert all(not w["new_pqls_to_opportunity"] for w in data["weekly"])
    chosen = _cli(self_serve_world, "backtest", "--json", "--outcome", "self_serve")
    data = json.loads(chosen.stdout)
    assert data["outcome"] == "self_serve" and data["warnings"] == []
    rates = [w["new_pqls_to_opportunity"] for w in data["weekly"] if w["complete"]]
    assert rates and max(r or 0 for r in rates) > 0
    assert data["pql_vs_mql"]["opportunities"] > 0
    anything = json.loads(_cli(self_serve_world, "backtest", "--json", "--outcome", "any").stdout)
    assert anything["pql_vs_mql"]["opportunities"] == data["pql_vs_mql"]["opportunities"]


def test_report_and_model_health_take_the_outcome_and_warn(self_serve_world, tmp_path):
    out = tmp_path / "r.html"
    plain = _cli(self_serve_world, "report", "--json", "-o", str(out))
    assert plain.exit_code == 0, plain.output
    assert "no opportunity outcome" in json.loads(plain.stdout)["warnings"][0]
    assert "no opportunity outcome" in out.read_text()
    chosen = _cli(self_serve_world, "report", "--json", "-o", str(out), "--outcome", "self_serve")
    assert json.loads(chosen.stdout)["warnings"] == []
    html = out.read_text()
    assert "self-serve upgrade" in html and "nan" not in html.replace("nano", "")
    # the web app's model page: the same findings, on the outcome asked for
    from pqlkit.engine import Engine
    from pqlkit.web import health

    def engine():
        return contextlib.closing(
            Engine.open(str(self_serve_world / "pql.yml"), str(self_serve_world / "d.duckdb"))
        )

    for outcome, expected in (("opportunity", True), ("self_serve", False)):
        h = health.Health()
        health.start(h, ("v", "r", outcome), False, engine, outcome=outcome)
        assert h.thread is not None
        h.thread.join(timeout=600)
        assert h.error is None and h.body is not None
        assert ("no opportunity outcome" in h.body) is expected


def test_no_conversions_print_no_nan_and_rank_no_lift(self_serve_world):
    """With no opportunity at all, `pql evaluate` shows "-" where a figure cannot be computed
    (never nan), and `pql learn` says there are no conversions instead of ranking facts by how
    rare they are."""
    ev = _cli(self_serve_world, "evaluate")
    assert ev.exit_code == 0, ev.output
    assert "nan" not in ev.output.lower()
    assert "0 conversions" in ev.output
    learned = _cli(self_serve_world, "learn", "--no-propose", "--no-reference", "--json")
    data = json.loads(learned.stdout)
    assert data["conversions"] == 0
    assert all(x["lift"] is None for x in data["lifts"])
    assert any(n.startswith("no conversions (opportunity) at all") for n in data["notes"])
    text = _cli(self_serve_world, "learn", "--no-propose", "--no-reference").output
    assert "nan" not in text.lower() and "no conversions" in text
