"""The report's charts honest at a glance, asserted on their geometry: small rates on a scale
that shows them, an interval on every rate drawn, small groups marked and never setting an
axis; and a capacity section that says when no threshold fits."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from pqlkit.demo.generate import DemoSize
from pqlkit.learn import backtest as bt
from pqlkit.learn.evaluate import evaluate
from pqlkit.report import sections, svg
from pqlkit.report.svg import Rate

from .conftest import demo_engine_in

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


# --- the charts' geometry ------------------------------------------------------------------


NS = {"s": "http://www.w3.org/2000/svg"}


def _parse(text: str) -> ET.Element:
    return ET.fromstring(text)


def _marks(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter() if "mark" in e.get("class", "").split()]


def _title(e: ET.Element) -> str:
    t = e.find("s:title", NS)
    return "" if t is None else t.text or ""


def _top_tick(root: ET.Element) -> str:
    ticks = [e for e in root.iter(f"{{{NS['s']}}}text") if e.get("class") == "tick"]
    return min(ticks[:6], key=lambda e: float(e.get("y")), default=None).text


def test_a_one_person_point_does_not_set_the_axis_and_is_marked():
    """Weekly rates near 10% of 100 people each and one week of one person at 100%: the axis
    fits the 10% rates (it went to 100% before), the one-person point is hollow, marked as a
    small group and drawn on the axis's top edge."""
    rates = [Rate(10 + i % 3, 100) for i in range(8)] + [Rate(1, 1)]
    root = _parse(svg.lines("t", "t", [f"w{i}" for i in range(9)], [("new", rates)], percent=True))
    assert _top_tick(root) in ("12%", "15%", "20%")
    marks = _marks(root)
    small = [m for m in marks if "small" in m.get("class")]
    assert len(small) == 1 and "1 of 1" in _title(small[0]) and "small group" in _title(small[0])
    assert float(small[0].get("cy")) == svg.M_TOP and "above the axis" in _title(small[0])
    # every rate has its interval: three lines (stem and two caps) per point
    assert len([e for e in root.iter() if "whisker" in e.get("class", "")]) == 3 * len(rates)


def _pql_vs_mql_section() -> ET.Element:
    """PQL vs MQL on hand-made rows: 200 PQLs (40 convert), 56 MQLs (11 convert)."""
    rows = []
    for k in range(400):
        pql, mql = k < 200, 200 <= k < 256
        rows.append(
            {
                "as_of": D[1],
                "user_id": f"u{k}",
                "score": 80 if pql else 20,
                "mql_score": 50 if mql else 0,
                "is_mql": mql,
                "label": (pql and k < 40)
                or (mql and k < 211)
                or (not (pql or mql) and k % 10 == 0),
            }
        )
    r = _replay([{**x, "as_of": D[0], "label": False} for x in rows] + rows)
    parts: list[str] = []
    sections._pql_vs_mql({"pql_vs_mql": bt.side_by_side(r), "outcome": "opportunity"}, parts.append)
    html = "".join(parts)
    return _parse(html[html.index("<svg") : html.index("</svg>") + 6])


def test_pql_vs_mql_draws_every_rate_with_its_interval_and_56_people_as_56():
    root = _pql_vs_mql_section()
    mql = next(m for m in _marks(root) if "MQL:" in _title(m))
    assert "11 of 56" in _title(mql) and "95% interval" in _title(mql)
    # the MQL bar's whisker spans its Wilson interval, on the same scale as the bar
    low, high = svg.wilson(11, 56)
    bar_top, bar_bottom = float(mql.get("y")), float(mql.get("y")) + float(mql.get("height"))
    per_unit = (bar_bottom - bar_top) / (11 / 56)
    x = float(mql.get("x")) + float(mql.get("width")) / 2
    stems = [
        e
        for e in root.iter()
        if e.get("class") == "whisker"
        and abs(float(e.get("x1")) - x) < 0.2
        and e.get("x1") == e.get("x2")
    ]
    assert len(stems) == 1
    y_low, y_high = float(stems[0].get("y1")), float(stems[0].get("y2"))
    assert abs((bar_bottom - y_low) / per_unit - low) < 0.01
    assert abs((bar_bottom - y_high) / per_unit - min(high, 1)) < 0.02 or y_high == svg.M_TOP
    # four rates drawn (PQL and MQL to opportunity and to closed-won, everyone): five whiskers
    drawn = [m for m in _marks(root)]
    stems = [
        e for e in root.iter() if "whisker" in e.get("class", "") and e.get("x1") == e.get("x2")
    ]
    assert len(stems) == len(drawn) == 5


def test_the_funnel_shows_its_small_steps():
    """A funnel from 13,575 people to 97: on a linear axis the last bar was under 1% of the
    first; on the logarithmic one it is about half of it, with its count written above."""
    counts = [13_575, 1_798, 1_444, 266, 97]
    root = _parse(svg.bars("funnel", "f", list("abcde"), [("people", counts)], log=True))
    heights = [float(m.get("height")) for m in _marks(root)]
    assert heights[-1] > 0.4 * heights[0] and heights == sorted(heights, reverse=True)
    values = [e.text for e in root.iter() if e.get("class") == "value"]
    assert values == ["13,575", "1,798", "1,444", "266", "97"]


def test_small_rates_get_an_axis_that_shows_them():
    """Two rates of 2% and 3% on thousands of people: the axis ends near them, not at 100%,
    and neither bar is a sliver."""
    root = _parse(
        svg.bars("t", "t", ["a", "b"], [("x", [Rate(40, 2000), Rate(90, 3000)])], percent=True)
    )
    assert _top_tick(root) in ("3.6%", "4%", "5%")
    ih = svg.H - svg.M_TOP - svg.M_BOTTOM
    assert all(float(m.get("height")) > 0.3 * ih for m in _marks(root))


def test_wilson_intervals():
    low, high = svg.wilson(0, 10)
    assert low == 0 and 0.27 < high < 0.28  # never below 0, and not zero width at 0 of 10
    low, high = svg.wilson(11, 56)
    assert 0.11 < low < 0.12 and 0.31 < high < 0.32
    assert svg.Rate.of(None, 10) is None and svg.Rate.of(0.5, 0) is None


def test_the_report_evaluates_on_the_replays_snapshots_with_the_same_figures(tmp_path):
    """`pql report` reads each date's snapshot once: the evaluation on the replay's rows
    equals the one that reads its own. Long because it evaluates twice on a generated world
    (about 15-25 s on an idle machine)."""
    with demo_engine_in(tmp_path, DemoSize(accounts=150, users=600, days=60, seed=11)) as engine:
        every, horizon = timedelta(days=7), timedelta(days=14)
        start, end = bt.window(engine, None, None)
        rows = bt.replay_rows(engine, bt.replay_dates(start, end, every), horizon, every)
        shared = evaluate(engine, horizon=horizon, every=every, known=rows)
        alone = evaluate(engine, horizon=horizon, every=every)
    assert len(shared.train_dates) + len(shared.test_dates) >= 3
    assert shared.to_dict() == alone.to_dict()


def test_the_replay_reads_columns_with_no_value_at_all():
    """Columns read column by column: one with no value in any row (a product without deals)
    reads as False or NaN, as row by row it did."""
    rows = [
        {"as_of": d, "user_id": f"u{k}", "score": 70, "label": k == 0, "closed_won": None}
        for d in D
        for k in range(3)
    ]
    r = _replay(rows)
    assert r.closed_won.dtype == bool and not r.closed_won.any()
    assert np.isnan(r.days_to_opportunity).all() and r.opportunity.sum() == len(D)
