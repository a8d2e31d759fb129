"""The report's charts honest at a glance, asserted on their geometry: small rates on a scale
that shows them, an interval on every rate drawn, small groups marked and never setting an
axis; and a capacity section that says when no threshold fits."""

from __future__ import annotations

from datetime import datetime, timedelta

import pyarrow as pa

from pqlkit.learn import backtest as bt

D = [datetime(2026, 9, 1) + timedelta(days=7 * i) for i in range(4)]
HORIZON = timedelta(days=30)


def _replay(rows: list[dict]) -> bt.Replay:
    base = {
        "account_id": None,
        "mql_score": 0,
        "is_mql": False,
        "icp_profile": "p",
        "excluded": False,
        "activated": True,
        "days_to_convert": None,
        "closed_won": False,
        "days_to_closed_won": None,
    }
    full = [{**base, **r, "is_pql": r["score"] >= 60} for r in rows]
    return bt.Replay.from_table(pa.Table.from_pylist(full), HORIZON, data_end=D[-1] + HORIZON)


def test_capacity_says_in_words_when_no_threshold_fits_and_what_the_best_available_is():
    """Ten new users a date all at the top score, a capacity of two: every threshold lets ten
    through. The section does not recommend one as if it fit: it names the best available, the
    leads left unworked and the capacity it would take."""
    rows = [
        {"as_of": d, "user_id": f"u{i}_{k}", "score": 100, "label": k < 3}
        for i, d in enumerate(D)
        for k in range(10)
    ]
    cap = bt.capacity_curve(_replay(rows), capacity=2)
    assert cap["fits"] is False and cap["recommended"]["leads_per_week"] == 10
    assert cap["recommended_threshold"] == 100  # the fewest through; on ties the higher
    assert cap["note"].startswith("No threshold fits a capacity of 2 leads a week")
    assert "lets 10.0 new leads a week through (30% convert)" in cap["note"]
    assert "capacity of 10 a week" in cap["note"]
    roomy = bt.capacity_curve(_replay(rows), capacity=10)
    assert roomy["fits"] is True and roomy["note"].startswith("Threshold 100 fits")


def test_the_recommended_threshold_fits_capacity_when_one_does():
    """Scores 10..100 a date, capacity 3: thresholds 80 and up fit (3 or fewer new leads a
    date); a lower threshold that works as many conversions but sends more leads is not
    recommended."""
    rows = [
        {"as_of": d, "user_id": f"u{i}_{k}", "score": 10 * (k + 1), "label": k >= 7}
        for i, d in enumerate(D)
        for k in range(10)
    ]
    cap = bt.capacity_curve(_replay(rows), capacity=3)
    assert cap["fits"] and cap["recommended"]["leads_per_week"] <= 3
    assert cap["recommended_threshold"] == 80
