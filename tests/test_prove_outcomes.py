"""Backtest, report and model health on the outcome a product converts by, and drift that
counts a signal firing: the defects of issue 28, each pinned by a test."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

import numpy as np
import pyarrow as pa

from pqlkit.learn import backtest as bt
from pqlkit.model.signals import RecencySignal

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
    last = mon["drift"][-1]
    assert 0.05 < last["baseline_coverage"]["quiet"] < 0.2
    assert 0.5 < last["coverage"]["quiet"] < 0.7
    assert any(a.startswith("quiet coverage") for a in mon["alerts"]), mon["alerts"]
