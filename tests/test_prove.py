"""Evaluate, backtest, capacity, monitoring and the HTML report: the plain-number logic on
hand-made rows, the replay against the engine's plain-Python path, and the report in a real
headless Chromium that must make no request beyond the page."""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import threading
from datetime import datetime, timedelta
from functools import partial

import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner

from pqlkit.cli import cli
from pqlkit.demo.generate import DemoSize
from pqlkit.engine import Engine
from pqlkit.learn import backtest as bt
from pqlkit.learn.evaluate import evaluate_table
from pqlkit.model.load import load_model
from pqlkit.report.build import CHARTS

from .conftest import DEMO_END, _require, chromium, demo_engine_in

D = [datetime(2026, 9, 1) + timedelta(days=7 * i) for i in range(4)]
HORIZON = timedelta(days=30)


def _table(rows: list[dict]) -> pa.Table:
    base = {
        "account_id": None,
        "mql_score": 0,
        "is_mql": False,
        "icp_profile": "p",
        "excluded": False,
        "activated": True,
        "label": False,
        "days_to_convert": None,
        "closed_won": False,
        "days_to_closed_won": None,
        "projects": 0.0,
    }
    full = [{**base, **r} for r in rows]
    full = [{**r, "is_pql": r.get("is_pql", r["score"] >= 60)} for r in full]
    return pa.Table.from_pylist(full)


def test_new_pqls_are_counted_once_when_they_cross_and_their_conversions_follow_them():
    rows = [
        # u1: PQL from the first reported date, converts within the horizon
        {"as_of": D[0], "user_id": "u1", "score": 20},
        {
            "as_of": D[1],
            "user_id": "u1",
            "score": 70,
            "label": True,
            "days_to_convert": 5.0,
            "closed_won": True,
        },
        # u2: PQL already at the baseline date: never "new"
        {"as_of": D[0], "user_id": "u2", "score": 80},
        {"as_of": D[1], "user_id": "u2", "score": 80},
        {"as_of": D[2], "user_id": "u2", "score": 80},
        # u3: signs up at D[2] as a PQL, does not convert
        {"as_of": D[2], "user_id": "u3", "score": 65},
        # u4: never a PQL, converts at D[1]
        {"as_of": D[0], "user_id": "u4", "score": 10},
        {"as_of": D[1], "user_id": "u4", "score": 10, "label": True, "days_to_convert": 9.0},
    ]
    r = bt.Replay.from_table(_table(rows), HORIZON, data_end=D[3] + HORIZON)
    weeks = {w["as_of"]: w for w in bt.weekly(r)}
    assert D[0] not in weeks  # the first date is only the baseline for "new"
    assert weeks[D[1]]["new_pqls"] == 1 and weeks[D[1]]["new_pqls_to_opportunity"] == 1.0
    assert (
        weeks[D[1]]["new_pqls_to_closed_won"] == 1.0
        and weeks[D[1]]["new_pqls_days_to_opportunity"] == 5.0
    )
    assert weeks[D[1]]["non_pqls"] == 1 and weeks[D[1]]["non_pqls_to_opportunity"] == 1.0
    assert weeks[D[2]]["new_pqls"] == 1 and weeks[D[2]]["new_pqls_to_opportunity"] == 0.0
    sbs = bt.side_by_side(r)
    assert sbs["groups"]["PQL"]["people"] == 3  # u1 at D1, u2 at D1, u3 at D2: each once
    assert sbs["groups"]["PQL"]["opportunities"] == 1 and sbs["people"] == 4


def test_an_incomplete_horizon_reports_no_rate():
    rows = [
        {"as_of": D[0], "user_id": "a", "score": 0},
        {"as_of": D[1], "user_id": "a", "score": 90},
    ]
    r = bt.Replay.from_table(_table(rows), HORIZON, data_end=D[1] + timedelta(days=3))
    (week,) = bt.weekly(r)
    assert (
        week["complete"] is False
        and week["new_pqls"] == 1
        and week["new_pqls_to_opportunity"] is None
    )


def test_the_capacity_threshold_works_the_most_conversions():
    # each date: 10 new users at scores 10..100; those at 70+ convert. Capacity 2 a date.
    rows = []
    for i, d in enumerate(D):
        for k in range(10):
            score = 10 * (k + 1)
            rows.append({"as_of": d, "user_id": f"u{i}_{k}", "score": score, "label": score >= 70})
    r = bt.Replay.from_table(_table(rows), HORIZON, data_end=D[-1] + HORIZON)
    cap = bt.capacity_curve(r, capacity=2)
    by_t = {c["threshold"]: c for c in cap["curve"]}
    assert by_t[70]["leads_per_week"] == 4 and by_t[70]["conversion"] == 1.0
    assert (
        by_t[0]["worked_conversions_per_week"] == 2
    )  # best score first: still two converters worked
    # the highest threshold that still fills capacity with converters
    assert (
        cap["recommended_threshold"] == 90
        and cap["recommended"]["worked_conversions_per_week"] == 2
    )
    # with room for every lead, the threshold that lets every converter through, and no lower
    assert bt.capacity_curve(r, capacity=100)["recommended_threshold"] == 70


def test_monitoring_flags_a_conversion_drop_and_coverage_drift_but_not_a_steady_model():
    rng = np.random.default_rng(0)
    dates = [datetime(2026, 6, 1) + timedelta(days=7 * i) for i in range(10)]

    def world(drop: bool) -> pa.Table:
        rows = []
        for i, d in enumerate(dates):
            late = drop and i >= 7
            for k in range(400):
                pql = k < 100
                rate = 0.05 if late and pql else (0.3 if pql else 0.05)
                rows.append(
                    {
                        "as_of": d,
                        "user_id": f"u{i}_{k}",
                        "score": 80 if pql else 20,
                        "label": bool(rng.random() < rate),
                        "projects": float(rng.random() < (0.8 if late else 0.4)),
                    }
                )
        return _table(rows)

    steady = bt.monitor(bt.Replay.from_table(world(False), HORIZON, dates[-1] + HORIZON))
    assert steady["alerts"] == []
    moved = bt.monitor(bt.Replay.from_table(world(True), HORIZON, dates[-1] + HORIZON))
    text = "\n".join(moved["alerts"])
    assert "below the expected" in text and "projects coverage" in text


def test_evaluation_figures_match_hand_counts():
    split = datetime(2026, 9, 15)
    rows = []
    for i in range(200):
        d = datetime(2026, 9, 1) if i < 100 else datetime(2026, 9, 22)
        converted = i % 4 == 0
        rows.append(
            {
                "as_of": d,
                "user_id": f"u{i}",
                "score": 90 if converted else 10,
                "mql_score": 0,
                "is_pql": converted or i % 10 == 1,
                "is_mql": False,
                "label": converted,
            }
        )
    ev = evaluate_table(
        pa.Table.from_pylist(rows), split, model="m", outcome="opportunity", horizon_days=30
    )
    assert ev.rows == 100 and ev.conversions == 25 and ev.auc == 1.0
    # flagged: 25 converters + the 10 with i % 10 == 1 (none of which convert)
    assert (
        ev.pql["flagged"] == 35
        and ev.pql["precision"] == pytest.approx(25 / 35)
        and ev.pql["recall"] == 1.0
    )
    assert ev.train_dates == [datetime(2026, 9, 1)] and ev.test_dates == [datetime(2026, 9, 22)]
    assert ev.calibration and ev.calibration[-1]["observed"] == 1.0


# --- against the engine ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def prove_engine(tmp_path_factory):
    with demo_engine_in(
        tmp_path_factory.mktemp("prove"), DemoSize(accounts=500, users=2000, days=90, seed=5)
    ) as engine:
        yield engine


def test_the_replay_flags_equal_the_plain_python_decisions(world_backend, model_file):
    engine = Engine(load_model(model_file), world_backend)
    dates = [DEMO_END - timedelta(days=30), DEMO_END - timedelta(days=23)]
    r = bt.replay(engine, dates, HORIZON, timedelta(days=7))
    o = world_backend.rows(engine.bound.outcomes)
    for i, d in enumerate(r.dates):
        done = {x["user_id"] for x in o if x["kind"] != "self_serve" and x["created_at"] < d}
        accounts = {
            x["account_id"] for x in o if x["kind"] != "self_serve" and x["created_at"] < d
        } - {None}
        python = [
            x
            for x in engine.python_scores(d)
            if x["user_id"] not in done and x["account_id"] not in accounts
        ]
        at = r.date_index == i
        assert int(at.sum()) == len(python)
        assert int((at & r.is_pql).sum()) == sum(bool(x["is_pql"]) for x in python) > 0
        assert int((at & r.is_mql).sum()) == sum(bool(x["is_mql"]) for x in python)


def test_pql_backtest_and_evaluate_json(prove_engine):
    base = ["-m", str(prove_engine.loaded.path), "--url", prove_engine.backend.url]
    out = CliRunner().invoke(
        cli, ["backtest", *base, "--json", "--reps", "1", "--leads-per-rep", "5"]
    )
    assert out.exit_code in (0, 3), out.output
    data = json.loads(out.output)
    assert data["capacity"]["capacity_per_week"] == 5 and len(data["capacity"]["curve"]) == 101
    assert data["weekly"] and {"PQL", "MQL"} <= set(data["pql_vs_mql"]["groups"])
    assert data["pql_vs_mql"]["reference_ranges"]["pql_to_opportunity"] == [0.15, 0.3]
    assert (out.exit_code == 3) == bool(data["monitor"]["alerts"])
    out = CliRunner().invoke(cli, ["evaluate", *base, "--json"])
    assert out.exit_code == 0, out.output
    ev = json.loads(out.output)
    assert 0.5 < ev["auc"] <= 1 and ev["pql"]["flagged"] > 0 and ev["calibration"]


@pytest.mark.parametrize(
    "args, message",
    [
        (["backtest", "--every", "7 days"], "--every"),
        (["backtest", "--from", "2026-09-10", "--to", "2026-09-01"], "before --from"),
        (["evaluate", "--split", "soon"], "--split"),
    ],
)
def test_bad_backtest_and_evaluate_options_get_one_clear_line(prove_engine, args, message):
    out = CliRunner().invoke(
        cli, [*args, "-m", str(prove_engine.loaded.path), "--url", prove_engine.backend.url]
    )
    assert out.exit_code == 1 and message in out.output and "Traceback" not in out.output


# --- the report in a real browser ------------------------------------------------------------------------


def _requests(netlog: str) -> list[tuple[str, str]]:
    """(url, network isolation key) of every request the browser started."""
    with open(netlog) as fh:
        text = fh.read().rstrip()
    try:
        log = json.loads(text)
    except json.JSONDecodeError:  # a log cut short when the browser exits
        log = json.loads(text.rstrip(",") + "]}")
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [
        (e["params"]["url"], e["params"].get("network_isolation_key", ""))
        for e in log["events"]
        if e["type"] == start and "url" in e.get("params", {})
    ]


def test_the_report_renders_in_headless_chromium_with_every_plot_and_no_request_off_the_machine(
    prove_engine, tmp_path
):
    browser = chromium()
    if browser is None:
        if _require("PQLKIT_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (CI): scripts/ensure-chromium installs it")
        pytest.skip("no Chromium on this machine (scripts/ensure-chromium installs it)")
    report = tmp_path / "site" / "report.html"
    report.parent.mkdir()
    out = CliRunner().invoke(
        cli,
        [
            "report",
            "-m",
            str(prove_engine.loaded.path),
            "--url",
            prove_engine.backend.url,
            "-o",
            str(report),
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    html = report.read_text()
    assert "<script" not in html and "http://" not in html.replace(
        'xmlns="http://www.w3.org/2000/svg"', ""
    )
    assert "https://" not in html and " src=" not in html and "url(" not in html

    seen: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format, *args):
            seen.append(self.path)

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(Handler, directory=str(report.parent))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/report.html"
    netlog = tmp_path / "net.json"
    flags = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=900,5000",
    ]
    try:
        dom = subprocess.run(
            [*flags, f"--log-net-log={netlog}", "--dump-dom", url],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "HOME": str(tmp_path)},
        ).stdout
        shot = tmp_path / "report.png"
        subprocess.run(
            [*flags, f"--screenshot={shot}", url],
            capture_output=True,
            timeout=120,
            env={**os.environ, "HOME": str(tmp_path)},
        )
    finally:
        server.shutdown()
        server.server_close()
    # it rendered: the live DOM holds every chart, each with marks, and a screenshot was taken
    for chart in CHARTS:
        start = dom.find(f'data-chart="{chart}"')
        assert start != -1, f"{chart} missing from the rendered page"
        end = dom.find("</svg>", start)
        assert 'class="mark"' in dom[start:end], f"{chart} has nothing drawn"
    assert shot.exists() and shot.stat().st_size > 20_000
    # the page asked for nothing but itself (the browser's own favicon probe aside)
    page = [(u, k) for u, k in _requests(str(netlog)) if "127.0.0.1" in k]
    assert page and all(
        u.startswith(f"http://127.0.0.1:{server.server_address[1]}/") for u, _ in page
    ), page
    assert {u.rsplit("/", 1)[1] for u, _ in page} <= {"report.html", "favicon.ico"}
    assert all(p in ("/report.html", "/favicon.ico") for p in seen) and "/report.html" in seen
