"""The web app's pages as a rep and an admin meet them, on the demo's own database (`pql demo`:
5,000 accounts, 20,000 users): the inbox fits a 1280 px window in rows at most three lines tall
and has no sideways scroll at phone width (390 px), long lists are paged, the model page is
served from its kept findings, a proposal reads as a list of changes, colours follow good and bad
news, the score chart is on a time axis, and the actions that reach far ask first.

The browser tests save screenshots under test-artifacts/web-pages/ (git-ignored; the path is
printed; $PQLKIT_ARTIFACTS moves it)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import pytest
import yaml

from pqlkit.access import accounts
from pqlkit.backends import connect
from pqlkit.handoff.transitions import ensure_tables
from pqlkit.model.load import load_model
from pqlkit.usecases.demo import demo_end
from pqlkit.usecases.session import Session
from pqlkit.web import charts, proposal

from .conftest import _require, chromium
from .test_web import CHROMIUM_FLAGS, PASSWORD, Site, csrf_of

ARTIFACTS = (
    Path(os.environ.get("PQLKIT_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts"))
    / "web-pages"
)
FAILED = 180
"""Failed deliveries planted: more than three pages of them."""


def _proposal_text(model_text: str) -> str:
    """What `pql learn` writes, in its shape: a lower threshold, usage signals at 0 points, a
    learned step added and a fit signal gone."""
    spec = yaml.safe_load(model_text)
    spec["thresholds"]["pql_score"] = 22
    for s in spec["usage_signals"]:
        s["points"] = 0
    learned = dict(spec["fit_signals"][0], id="learned_projects_4", label="Learned step")
    spec["fit_signals"] = [*spec["fit_signals"][:-1], learned]
    return "# Proposed by `pql learn`\n" + yaml.safe_dump(spec, sort_keys=False)


def _quiet_env() -> dict[str, str]:
    return {**os.environ, "PYTHONWARNINGS": "ignore"}


def _plant_failures(db: str, now: datetime) -> None:
    backend = connect(db)
    try:
        ensure_tables(backend)
    finally:
        backend.close()
    with duckdb.connect(db) as con:
        users = [
            r[0] for r in con.execute("SELECT user_id FROM users LIMIT ?", [FAILED]).fetchall()
        ]
        for i, user in enumerate(users):
            at = now - timedelta(minutes=i)
            con.execute(
                "INSERT INTO pql_outbox (id, kind, entity, entity_id, account_id, old_value, "
                "new_value, as_of, model_version, payload, created_at) VALUES (?, 'became_pql', "
                "'user', ?, NULL, 'false', 'true', ?, 'v', '{}', ?)",
                [f"tr_{i:04d}", user, at, at],
            )
            status = "dead" if i % 3 == 0 else "failed"
            con.execute(
                "INSERT INTO pql_deliveries (transition_id, destination, status, attempts, "
                "next_attempt_at, created_at, updated_at, delivered_at, last_status, last_error) "
                "VALUES (?, 'crm', ?, 3, ?, ?, ?, NULL, 503, ?)",
                [f"tr_{i:04d}", status, at, at, at, f"HTTP 503: upstream busy ({i})"],
            )


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """`pql demo`'s database and model, scored at three uneven dates (20 days and 3 days
    before the demo's own run), with a proposal beside the model, 180 failed deliveries, an
    admin and two reps; the web app serving it."""
    folder = tmp_path_factory.mktemp("pages")
    site = Site(folder)
    # `pql demo` as a rep's admin runs it (in a process of its own: it lets the file go)
    command = [sys.executable, "-m", "pqlkit.cli", "demo", "--dir", str(folder), "--url", site.db]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env=_quiet_env())
    end = demo_end()
    engine = Session(connect(site.db), load_model(site.model)).engine
    try:
        for when in (end - timedelta(days=20), end - timedelta(days=3)):
            engine.run(when)
    finally:
        engine.close()
    site.model.with_name("pql.proposed.yml").write_text(
        _proposal_text(site.model.read_text(encoding="utf-8")), encoding="utf-8"
    )
    _plant_failures(site.db, end)
    backend = connect(site.db)
    accounts.add(backend, "ana", "admin", PASSWORD)
    accounts.add(backend, "rob", "rep", PASSWORD)
    accounts.add(backend, "eve", "rep", PASSWORD)
    backend.close()
    site.start()
    yield site
    site.stop()


@pytest.fixture(scope="module")
def browser():
    path = chromium()
    if path is None:
        if _require("PQLKIT_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (CI): scripts/ensure-chromium installs it")
        pytest.skip("no Chromium on this machine (scripts/ensure-chromium installs it)")
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots in {ARTIFACTS}")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS, chromium_sandbox=False)
        yield b
        b.close()


def _signed_in(browser, site: Site, name: str, width: int, height: int = 900):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.goto(site.url + "/login")
    page.fill("input[name=name]", name)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(site.url + "/inbox")
    return page


def _no_sideways_scroll(page, what: str) -> None:
    wide, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert wide <= inner, f"{what}: the page is {wide} px wide in a {inner} px window"


def _shot(page, name: str, *, full_page: bool = True) -> Path:
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=full_page)
    assert path.stat().st_size > 10_000
    print(f"  {path}")
    return path


# --- the inbox in a real browser ----------------------------------------------------------------


def test_the_inbox_fits_1280_px_in_rows_of_at_most_three_lines(demo, browser):
    page = _signed_in(browser, demo, "rob", 1280)
    try:
        rows = page.locator("table.inbox tbody tr")
        assert rows.count() == 50
        _no_sideways_scroll(page, "the inbox at 1280 px")
        line = page.evaluate(
            "parseFloat(getComputedStyle(document.querySelector('table.inbox td')).lineHeight)"
        )
        heights = page.evaluate(
            "[...document.querySelectorAll('table.inbox tbody tr')]"
            ".map(r => r.getBoundingClientRect().height)"
        )
        # three lines, the cell's padding (8 px) and its border
        assert max(heights) <= 3 * line + 10, heights
        # the Why column reads as sentences, not a word a line
        why = page.evaluate(
            "document.querySelector('table.inbox td.why').getBoundingClientRect().width"
        )
        assert why >= 240, why
        # a page of 50 leads is one scroll or two, not ten
        assert page.evaluate("document.documentElement.scrollHeight") < 4000
        _shot(page, "inbox-1280")
    finally:
        page.close()


def test_the_inbox_at_phone_width_is_cards_without_sideways_scroll(demo, browser):
    page = _signed_in(browser, demo, "rob", 390, 844)
    try:
        _no_sideways_scroll(page, "the inbox at 390 px")
        first = page.locator("table.inbox tbody tr").first
        assert first.evaluate("r => getComputedStyle(r).display") == "grid"
        caption = first.locator("td.motion").evaluate(
            "td => getComputedStyle(td, '::before').content"
        )
        assert caption == '"Motion: "'  # each field is captioned in the card
        _shot(page, "inbox-390")
        _shot(page, "inbox-390-first-screen", full_page=False)
        href = page.locator("table.inbox td.lead a").first.get_attribute("href")
        for path, name in ((href, "lead-390"), ("/inbox?kind=accounts", "accounts-390")):
            page.goto(demo.url + path)
            _no_sideways_scroll(page, f"{path} at 390 px")
            _shot(page, name)
    finally:
        page.close()


def test_admin_pages_have_no_sideways_scroll_at_phone_width(demo, browser):
    page = _signed_in(browser, demo, "ana", 390, 844)
    try:
        for path, name in (
            ("/deliveries", "deliveries-390"),
            ("/deliveries?confirm=retry", "retry-all-390"),
        ):
            page.goto(demo.url + path)
            _no_sideways_scroll(page, f"{path} at 390 px")
            _shot(page, name)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.goto(demo.url + "/deliveries")
        _no_sideways_scroll(page, "/deliveries at 1280 px")
        _shot(page, "deliveries-1280")
    finally:
        page.close()


# --- paging ---------------------------------------------------------------------------------------


def test_deliveries_are_paged_and_retrying_them_all_asks_first(demo):
    admin = demo.client("ana")
    first = admin.get("/deliveries", params={"status": ["failed", "dead"]}).text
    assert first.count('action="/actions/retry"><input') == 50
    assert f"{FAILED} deliveries with these statuses" in first
    assert "Page 1 of 4" in first and 'rel="next"' in first
    last = admin.get("/deliveries", params={"status": ["failed", "dead"], "page": 4}).text
    assert last.count('action="/actions/retry"><input') == FAILED - 150
    assert admin.get("/deliveries", params={"page": 5}).status_code == 404
    # the bulk button: asked first, nothing retried until confirmed
    token = csrf_of(first)
    r = admin.post(
        "/actions/retry",
        data={"csrf": token, "status": ["failed", "dead"], "back": "/deliveries"},
    )
    assert r.status_code == 303 and "confirm=retry" in r.headers["location"]
    due = "SELECT count(*) FROM pql_deliveries WHERE attempts = 0"
    assert demo.sql(due) == [(0,)]
    asking = admin.get(r.headers["location"]).text
    assert f"Retry all {FAILED} failed and dead deliveries" in asking
    assert 'name="confirmed" value="yes"' in asking
    r = admin.post(
        "/actions/retry",
        data={
            "csrf": token,
            "status": ["failed", "dead"],
            "confirmed": "yes",
            "back": "/deliveries",
        },
    )
    assert r.status_code == 303
    assert f"{FAILED} deliveries due again" in admin.get("/deliveries").text


def test_an_account_with_many_users_is_paged(demo):
    (account, n), *_ = demo.sql(
        "SELECT account_id, count(*) FROM users GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
    )
    rep = demo.client("rob")
    html = rep.get(f"/accounts/{account}").text
    assert f"Users ({n:,})" in html
    shown = html.split('id="users"')[1].split("</table>")[0].count('href="/leads/')
    assert shown == min(n, 50)
    if n > 50:
        assert f"Users 1-50 of {n:,}" in html
        second = rep.get(f"/accounts/{account}", params={"page": 2}).text
        assert f"Users 51-{min(n, 100)} of {n:,}" in second


# --- ownership and refusals -----------------------------------------------------------------------


def test_taking_over_another_reps_lead_says_whose_it_is_and_is_recorded(demo):
    rob, eve = demo.client("rob"), demo.client("eve")
    inbox = rob.get("/inbox").text
    user = re.findall(r'href="/leads/([^"]+)"', inbox)[0]
    r = rob.post(
        "/actions/assign",
        data={"csrf": csrf_of(inbox), "entity": "user", "id": user, "owner": "me"},
    )
    assert r.status_code == 303
    token = csrf_of(eve.get("/inbox").text)
    r = eve.post(
        "/actions/assign", data={"csrf": token, "entity": "user", "id": user, "owner": "me"}
    )
    assert r.status_code == 303 and r.headers["location"] == f"/leads/{user}?take=1#actions"
    owner = f"SELECT owner FROM pql_owners WHERE id = '{user}'"
    assert demo.sql(owner) == [("rob",)]  # not yet: she was asked
    asking = eve.get(f"/leads/{user}", params={"take": "1"}).text
    assert "is <strong>rob</strong>'s. Take it over?" in asking
    r = eve.post(
        "/actions/assign",
        data={
            "csrf": token,
            "entity": "user",
            "id": user,
            "owner": "me",
            "take": "yes",
            "back": f"/leads/{user}",
        },
    )
    assert r.status_code == 303
    assert "taken over from rob (recorded)" in eve.get(f"/leads/{user}").text
    assert demo.sql(owner) == [("eve",)]
    changes = demo.sql(
        f'SELECT owner, previous, "by" FROM pql_owner_changes WHERE id = \'{user}\' ORDER BY "at"'
    )
    assert changes == [("rob", None, "rob"), ("eve", "rob", "eve")]
    shown = eve.get(f"/leads/{user}").text.split('id="owner-changes"')[1].split("</p>")[0]
    assert "eve (from rob)" in shown and "rob" in shown


def test_a_rep_refused_an_admin_page_reads_a_human_message(demo):
    rep = demo.client("rob")
    for path in ("/model", "/deliveries"):
        r = rep.get(path)
        assert r.status_code == 403 and "Admins only" in r.text
        assert "This page is for admins" in r.text
        assert "pql " not in r.text.split("<main>")[1], "a command line is no answer for a rep"


# --- what the pages say ---------------------------------------------------------------------------


def test_the_proposal_reads_as_a_list_of_changes_with_the_raw_diff_one_click_away(demo):
    html = demo.client("ana").get("/model").text
    section = html.split('id="proposal"')[1]
    assert 'PQL threshold: <span class="old">60</span> &rarr; <span class="new">22</span>' in (
        section
    )
    spec = yaml.safe_load(demo.model.read_text(encoding="utf-8"))
    for s in spec["usage_signals"]:
        if s["points"]:
            assert f'usage signal {s["id"]}: <span class="old">' in section
    assert "fit signal learned_projects_4" in section.split("Signals added")[1]
    assert f"fit signal {spec['fit_signals'][-1]['id']}" in section.split("Signals removed")[1]
    assert "<details><summary>The raw diff</summary>" in section


def test_gates_are_coloured_by_good_or_bad_news_not_yes_or_no(demo):
    rep = demo.client("rob")
    user = re.findall(r'href="/leads/([^"]+)"', rep.get("/inbox").text)[0]
    gates = rep.get(f"/leads/{user}").text.split('id="gates"')[1].split("</table>")[0]
    excluded = gates.split("Excluded")[1].split("</tr>")[0]
    assert '<span class="good">no</span>' in excluded  # a PQL is not excluded: good news
    assert 'class="bad"' not in gates


def test_the_score_chart_spaces_runs_by_their_dates(demo):
    rep = demo.client("rob")
    user = re.findall(r'href="/leads/([^"]+)"', rep.get("/inbox").text)[0]
    html = rep.get(f"/leads/{user}").text
    chart = html.split('data-chart="score-history"')[1].split("</svg>")[0]
    xs = [float(x) for x in re.findall(r'<circle class="mark" cx="([\d.]+)"', chart)]
    assert len(xs) == 3
    # runs 20 days and 3 days before the last: 17 of 20 days' width apart, not half
    assert (xs[1] - xs[0]) / (xs[2] - xs[0]) == pytest.approx(17 / 20, abs=0.01)


def test_score_timeline_places_points_by_time_and_titles_them():
    t0 = datetime(2026, 1, 1)
    svg = charts.score_timeline(
        [(t0, 10.0), (t0 + timedelta(days=1), 20.0), (t0 + timedelta(days=10), None),
         (t0 + timedelta(days=30), 90.0)],
        threshold=60,
    )  # fmt: skip
    xs = [float(x) for x in re.findall(r'cx="([\d.]+)"', svg)]
    assert (xs[1] - xs[0]) / (xs[2] - xs[0]) == pytest.approx(1 / 30, abs=0.001)
    assert "2026-01-31 00:00: score 90" in svg and "PQL threshold 60" in svg
    assert "Jan 01" in svg and "Jan 31" in svg
    one = charts.score_timeline([(t0, 50.0)])
    assert one.count("<circle") == 1 and "<polyline" not in one


def test_proposal_changes_name_threshold_points_added_and_removed(tmp_path):
    from pqlkit.demo.load import starter_text

    current = tmp_path / "pql.yml"
    current.write_text(starter_text(), encoding="utf-8")
    proposed = tmp_path / "pql.proposed.yml"
    proposed.write_text(_proposal_text(starter_text()), encoding="utf-8")
    found = proposal.compare(current, proposed)
    assert found.error is None and found.diff.startswith("--- pql.yml")
    kinds = {c.what: c.kind for c in found.changes}
    assert kinds["PQL threshold"] == "changed"
    assert kinds["fit signal learned_projects_4"] == "added"
    assert "removed" in kinds.values()
    assert found.changes[0].what == "PQL threshold"  # the threshold first
    broken = tmp_path / "broken.yml"
    broken.write_text("thresholds: {pql_score: 500}\n", encoding="utf-8")
    bad = proposal.compare(current, broken)
    assert bad.changes == [] and "broken.yml is not a valid model" in (bad.error or "")


# --- the model's health: fast because it is kept ----------------------------------------------------


def test_model_health_is_served_from_kept_findings_and_marked_stale_after_a_new_run(demo, request):
    # last in this file: computing the findings holds the database for a minute or more
    admin = demo.client("ana")
    started = time.perf_counter()
    deadline = time.monotonic() + 600
    while 'id="computing"' in (html := admin.get("/model").text):
        assert time.monotonic() < deadline, "the findings took over 10 minutes"
        time.sleep(2)
    print(f"\nmodel findings computed in {time.perf_counter() - started:.0f} s")
    assert 'data-chart="funnel"' in html
    if chromium() is not None:  # the page with its findings, in a browser
        page = _signed_in(request.getfixturevalue("browser"), demo, "ana", 1280)
        try:
            page.goto(demo.url + "/model")
            _no_sideways_scroll(page, "/model at 1280 px")
            _shot(page, "model-1280")
            page.set_viewport_size({"width": 390, "height": 844})
            _no_sideways_scroll(page, "/model at 390 px")
            _shot(page, "model-390")
        finally:
            page.close()
    # a new process (a restart) shows them at once: they are kept in the database
    demo.stop()
    demo.start()
    admin = demo.client("ana")
    started = time.perf_counter()
    html = admin.get("/model").text
    took = time.perf_counter() - started
    print(f"model page from kept findings: {took:.2f} s")
    assert 'data-chart="funnel"' in html and 'id="computing"' not in html
    assert took < 5
    # a new run: the page still answers at once, with the older findings marked stale
    demo.stop()
    engine = Session(connect(demo.db), load_model(demo.model)).engine
    try:
        engine.run(demo_end() + timedelta(hours=12))
    finally:
        engine.close()
    demo.start()
    admin = demo.client("ana")
    started = time.perf_counter()
    html = admin.get("/model").text
    assert time.perf_counter() - started < 5
    assert "before the latest run or model change; the new ones are being computed" in html
    assert 'data-chart="funnel"' in html
