"""The web app (`pql ui`) in a process of its own, driven over real HTTP: sign-in, roles and
CSRF on every page and action, text planted with HTML and script rendered as text, the inbox's
filters and pages against the stored scores, and feedback that is stored and takes the lead out
of the inbox. The browser test is in tests/test_web_browser.py."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from pqlkit.access import accounts
from pqlkit.backends import connect
from pqlkit.demo.generate import DemoSize, generate
from pqlkit.demo.load import load, starter_text
from pqlkit.model.load import load_model
from pqlkit.usecases import inbox as desk
from pqlkit.usecases import leads
from pqlkit.usecases.session import Session
from pqlkit.web.app import create_app, safe_next

from .conftest import DEMO_END, chromium, free_port
from .serve import wait_healthy

PASSWORD = "correct horse battery"
SECRET = "s" * 48
# planted where a rep reads them: user ids, an e-mail, a role, an account name, event names and
# properties, and a signal's label (so every reason that cites it)
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(2)>']
HOSTILE_LABEL = "Invited {value} teammates <script>alert(8)</script>"
HOSTILE_EVENT = "<script>alert(6)</script>"
HOSTILE_PROPERTY = '{"plan": "<img src=x onerror=alert(7)>"}'
HOSTILE_ACCOUNT = "<script>alert(3)</script> Inc"
HOSTILE_ROLE = '"><b onmouseover=alert(5)>VP'


class Site:
    def __init__(self, folder: Path):
        self.folder = folder
        self.db = str(folder / "site.duckdb")
        self.model = folder / "pql.yml"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.err = folder / "ui.err"
        self.clients: list[httpx.Client] = []

    def start(self) -> None:
        env = {**os.environ, "PQL_UI_SECRET": SECRET, "PYTHONWARNINGS": "ignore"}
        command = [sys.executable, "-m", "pqlkit.cli", "ui", "-m", str(self.model)]
        command += ["--url", self.db, "--port", str(self.port), "--keep-open", "0.1"]
        command += ["--trusted-proxy", "127.0.0.1"]  # the tests' X-Forwarded-For is heard
        with self.err.open("ab") as err:
            self.proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=err)
        wait_healthy(self.url, self.proc, self.err)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # nothing to finish: every request the tests made has its answer
            self.proc.wait(timeout=30)

    def sql(self, query: str) -> list[tuple]:
        """Read the database between requests (the app takes the file by turns)."""
        backend = connect(self.db)
        try:
            return backend.run_sql(query)
        finally:
            backend.close()

    def client(
        self, name: str | None = None, password: str = PASSWORD, address: str | None = None
    ) -> httpx.Client:
        """A browser, signed in as ``name``; from ``address`` (as the trusted proxy says)."""
        headers = {"x-forwarded-for": address} if address else {}
        c = httpx.Client(base_url=self.url, follow_redirects=False, timeout=60, headers=headers)
        self.clients.append(c)
        if name is not None:
            r = sign_in(c, name, password)
            assert r.status_code == 303 and r.headers["location"] == "/inbox", r.text
        return c


def csrf_of(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, html[:500]
    return m.group(1)


def sign_in(c: httpx.Client, name: str, password: str, next_: str = "/inbox") -> httpx.Response:
    token = csrf_of(c.get("/login").text)
    return c.post("/login", data={"csrf": token, "name": name, "password": password, "next": next_})


def _plant(db: str, model: Path) -> dict[str, str]:
    """Two PQLs of the starter model get hostile ids, one an e-mail and role, their account a
    hostile name, and events with hostile names and properties."""
    engine = Session(connect(db), load_model(model)).engine
    try:
        top = engine.backend.rows(
            engine.scores(DEMO_END).filter(lambda t: t.is_pql).order_by("user_id").limit(2)
        )
    finally:
        engine.close()
    with duckdb.connect(db) as con:
        for old, new in zip([r["user_id"] for r in top], XSS, strict=True):
            for table in ("users", "events", "outcomes"):
                con.execute(f"UPDATE {table} SET user_id = ? WHERE user_id = ?", [new, old])
        con.execute(
            "UPDATE users SET email = ?, role = ? WHERE user_id = ?",
            ['"><img src=x onerror=alert(4)>@example.com', HOSTILE_ROLE, XSS[1]],
        )
        account = con.execute("SELECT account_id FROM users WHERE user_id = ?", [XSS[0]]).fetchone()
        con.execute(
            "UPDATE accounts SET name = ? WHERE account_id = ?", [HOSTILE_ACCOUNT, account[0]]
        )
        con.execute(
            "INSERT INTO events (message_id, user_id, anonymous_id, account_id, event, timestamp, properties) SELECT 'm-xss-' || i, ?, NULL, NULL, ?, ?::TIMESTAMP - INTERVAL (i) HOUR, ? "
            "FROM range(1, 4) t(i)",
            [XSS[0], HOSTILE_EVENT, DEMO_END, HOSTILE_PROPERTY],
        )
    other = con_user = None
    with duckdb.connect(db) as con:
        other = con.execute("SELECT min(user_id) FROM users WHERE user_id LIKE 'u_%'").fetchone()
    con_user = other[0]
    return {"account": account[0], "user": con_user}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    folder = tmp_path_factory.mktemp("web")
    s = Site(folder)
    backend = connect(s.db)
    load(backend, generate(DemoSize(accounts=120, users=500, days=60, seed=5), end=DEMO_END))
    backend.close()
    s.model.write_text(
        starter_text().replace('"Invited {value} teammates"', f'"{HOSTILE_LABEL}"'),
        encoding="utf-8",
    )
    s.planted = _plant(s.db, s.model)
    engine = Session(connect(s.db), load_model(s.model)).engine
    try:
        for when in (DEMO_END - timedelta(days=14), DEMO_END - timedelta(days=7), DEMO_END):
            engine.run(when)
    finally:
        engine.close()
    backend = connect(s.db)
    accounts.add(backend, "ana", "admin", PASSWORD)
    accounts.add(backend, "rob", "rep", PASSWORD)
    accounts.add(backend, "eve", "rep", PASSWORD)
    backend.close()
    s.start()
    yield s
    s.stop()


@pytest.fixture(autouse=True)
def _close_clients(request):
    yield
    if "site" in request.fixturenames:
        s = request.getfixturevalue("site")
        for c in s.clients:
            c.close()
        s.clients.clear()


# --- who may read and do what --------------------------------------------------------------------

#: Every route of the app: path to request, who may, and the method. A new route without a row
#: here fails the test below, so no page escapes the checks.
PAGES = {
    "/inbox": "rep",
    "/leads/{user_id:path}": "rep",
    "/accounts/{account_id:path}": "rep",
    "/model": "admin",
    "/deliveries": "admin",
}
ACTIONS = {
    "/logout": "rep",
    "/actions/feedback": "rep",
    "/actions/assign": "rep",
    "/actions/retry": "admin",
}
PUBLIC = {"/", "/health", "/static/app.css", "/login"}


def _concrete(path: str, site: Site) -> str:
    return path.replace("{user_id:path}", site.planted["user"]).replace(
        "{account_id:path}", site.planted["account"]
    )


def test_every_route_is_checked_for_sessions_roles_and_csrf(site):
    app = create_app(site.model, site.db, secret=SECRET)
    routes = {(r.path, tuple(sorted(r.methods - {"HEAD"}))) for r in app.routes}
    listed = {(p, ("GET",)) for p in PAGES} | {(p, ("POST",)) for p in ACTIONS}
    listed |= {(p, ("GET",)) for p in PUBLIC} | {("/login", ("POST",))}
    assert routes == listed

    feedback_before = (
        site.sql("SELECT count(*) FROM pql_feedback")[0][0] if _has(site, "pql_feedback") else 0
    )
    anonymous = site.client()
    for path in PAGES:
        r = anonymous.get(_concrete(path, site))
        assert r.status_code == 303 and r.headers["location"].startswith("/login?next="), path
        assert "pql_" not in r.text and "u_0" not in r.text
    for path in ACTIONS:  # no session: no CSRF token can match
        r = anonymous.post(path, data={"csrf": "x", "user_id": "u_00001", "action": "done"})
        assert r.status_code == 403, path
    health = anonymous.get("/health")
    assert health.status_code == 200 and health.text == "ok"
    assert anonymous.get("/", follow_redirects=True).url.path == "/login"

    rep = site.client("rob")
    token = csrf_of(rep.get("/inbox").text)
    for path, role in PAGES.items():
        r = rep.get(_concrete(path, site))
        assert r.status_code == (403 if role == "admin" else 200), path
    r = rep.post("/actions/retry", data={"csrf": token, "status": "dead"})
    assert r.status_code == 403
    for path in ACTIONS:  # a forged or missing token, with a valid session
        for forged in ({"csrf": token[:-2] + ("yy" if token.endswith("xx") else "xx")}, {}):
            r = rep.post(path, data={**forged, "user_id": XSS[0], "action": "done"})
            assert r.status_code == 403, path
    feedback_after = (
        site.sql("SELECT count(*) FROM pql_feedback")[0][0] if _has(site, "pql_feedback") else 0
    )
    assert feedback_after == feedback_before  # nothing a refused request asked was done

    admin = site.client("ana")
    for path in PAGES:
        assert admin.get(_concrete(path, site)).status_code == 200, path


def _has(site: Site, table: str) -> bool:
    return bool(site.sql(f"SELECT 1 FROM information_schema.tables WHERE table_name = '{table}'"))


def test_sign_in_cookies_throttling_and_sessions_that_end(site):
    c = site.client()
    r = sign_in(c, "rob", PASSWORD, next_="//evil.example/steal")
    assert r.status_code == 303 and r.headers["location"] == "/inbox"  # never off the site
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "pql_session=" in cookie
    page = c.get("/inbox")
    assert page.status_code == 200
    for header in ("content-security-policy", "x-frame-options", "x-content-type-options"):
        assert header in page.headers
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
    assert page.headers["cache-control"] == "no-store"
    # the cookie is signed: a tampered one is no session
    tampered = site.client()
    tampered.cookies.set("pql_session", c.cookies["pql_session"][:-4] + "AAAA")
    assert tampered.get("/inbox").status_code == 303
    # signing out ends the session
    c.post("/logout", data={"csrf": csrf_of(page.text)})
    assert c.get("/inbox").status_code == 303

    # a wrong password, then throttling; an unknown name answers the same
    bad = site.client()
    assert sign_in(bad, "nobody-here", "wrong password").status_code == 401
    codes = [sign_in(bad, "eve", "wrong password!").status_code for _ in range(6)]
    assert codes[:4] == [401] * 4 and codes[-1] == 429
    assert sign_in(bad, "eve", PASSWORD).status_code == 429  # even the right one, for a while

    # a new password ends the sessions signed in with the old one
    ana = site.client("ana")
    assert ana.get("/model").status_code == 200
    backend = connect(site.db)
    try:
        accounts.add(backend, "ana", "admin", PASSWORD + "!", replace=True)
    finally:
        backend.close()
    assert ana.get("/model").status_code == 303
    backend = connect(site.db)
    try:
        accounts.add(backend, "ana", "admin", PASSWORD, replace=True)
    finally:
        backend.close()


def test_a_large_body_is_refused_before_it_is_read(site):
    rep = site.client("rob")
    token = csrf_of(rep.get("/inbox").text)
    big = {"csrf": token, "user_id": "x" * 100_000, "action": "done"}
    assert rep.post("/actions/feedback", data=big).status_code == 413

    def chunks():  # no Content-Length: counted as it streams
        yield f"csrf={token}&user_id=".encode()
        for _ in range(100):
            yield b"x" * 1024

    r = rep.post(
        "/actions/feedback",
        content=chunks(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert r.status_code == 413
    assert rep.get("/inbox").status_code == 200  # the app goes on


def test_a_model_that_stops_loading_is_a_503_without_details_then_recovers(site):
    rep = site.client("rob")
    anonymous = site.client()
    good = site.model.read_text(encoding="utf-8")
    try:
        site.model.write_text(
            good.replace("thresholds:", "thresholds: [broken\n"), encoding="utf-8"
        )
        os.utime(site.model, (time.time() + 5, time.time() + 5))
        for c in (rep, anonymous):
            r = c.get("/inbox")
            assert r.status_code == 503 and "pql.yml" not in r.text and "line" not in r.text
    finally:
        site.model.write_text(good, encoding="utf-8")
        os.utime(site.model, (time.time() + 10, time.time() + 10))
    assert rep.get("/inbox").status_code == 200
    assert "pql.yml" in site.err.read_text()  # the details are in the server's log


def test_concurrent_pages_after_a_new_run_all_answer(site):
    from concurrent.futures import ThreadPoolExecutor

    engine = Session(connect(site.db), load_model(site.model)).engine
    try:  # a run the app has not seen: its since table is stale
        engine.run(DEMO_END + timedelta(days=1))
    finally:
        engine.close()
    rep = site.client("rob")
    paths = ["/inbox", "/inbox?kind=accounts", "/inbox?status=all", "/inbox?page=2"] * 3
    with ThreadPoolExecutor(8) as pool:
        pages = list(pool.map(lambda p: rep.get(p), paths))
    assert [r.status_code for r in pages] == [200] * len(paths)
    counts = {re.search(r'id="count">([\d,]+)', r.text).group(1) for r in pages[::4]}
    assert len(counts) == 1


def test_safe_next_keeps_redirects_on_the_site():
    for bad in (
        "//evil.com",
        "https://evil.com",
        "\\\\evil",
        "/\\evil.com",
        "",
        None,
        "javascript:x",
    ):
        assert safe_next(bad) == "/inbox"
    assert safe_next("/leads/u_1?x=1") == "/leads/u_1?x=1"


def test_bad_account_input_is_a_clear_error(site):
    backend = connect(site.db)
    try:
        with pytest.raises(Exception, match="user name"):
            accounts.add(backend, "bad name", "rep", PASSWORD)
        with pytest.raises(Exception, match="role"):
            accounts.add(backend, "zed", "owner", PASSWORD)
        with pytest.raises(Exception, match="too short"):
            accounts.add(backend, "zed", "rep", "short")
        with pytest.raises(Exception, match="exists"):
            accounts.add(backend, "rob", "rep", PASSWORD)
        stored = backend.run_sql("SELECT password_hash FROM pql_ui_users WHERE name = 'rob'")[0][0]
        assert stored.startswith("$argon2id$") and PASSWORD not in stored
    finally:
        backend.close()


def _session_of(c: httpx.Client) -> str:
    return c.cookies["pql_session"]


def _browser_with(site: Site, session: str) -> httpx.Client:
    """Another client presenting a saved session cookie, as whoever copied it would."""
    c = site.client()
    c.cookies.set("pql_session", session)
    return c


def test_signing_out_ends_the_session_at_once_and_the_cookie_reveals_nothing(site):
    import base64

    rep = site.client("rob")
    page = rep.get("/inbox")
    token, saved = csrf_of(page.text), _session_of(rep)
    # an opaque random id: no name, no CSRF token, no hash fingerprint, however it is decoded
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", saved), saved
    decoded = base64.urlsafe_b64decode(saved + "=")
    backend = connect(site.db)
    try:
        fingerprint = accounts.get(backend, "rob").fingerprint
    finally:
        backend.close()
    for secret in ("rob", token, fingerprint, "csrf", "user"):
        assert secret not in saved and secret.encode() not in decoded
    stored = site.sql("SELECT id_hash FROM pql_ui_sessions WHERE name = 'rob'")
    assert stored and all(saved not in h for (h,) in stored)  # only its hash is kept
    assert rep.post("/logout", data={"csrf": token}).status_code == 303
    # the saved cookie neither loads a page nor performs an action
    copied = _browser_with(site, saved)
    assert copied.get("/inbox").status_code == 303
    before = site.sql("SELECT count(*) FROM pql_owners") if _has(site, "pql_owners") else [(0,)]
    r = copied.post(
        "/actions/assign",
        data={"csrf": token, "entity": "user", "id": "u_00001", "owner": "me", "back": "/inbox"},
    )
    assert r.status_code == 403
    after = site.sql("SELECT count(*) FROM pql_owners") if _has(site, "pql_owners") else [(0,)]
    assert after == before


def test_reset_and_removal_by_the_command_line_end_sessions_at_once(site):
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}

    def pql(*argv: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "pqlkit.cli", *argv, "--url", site.db],
            input=PASSWORD + "?\n",
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr

    backend = connect(site.db)
    try:
        accounts.add(backend, "zoe", "rep", PASSWORD)
    finally:
        backend.close()
    first, second = site.client("zoe"), site.client("zoe")
    assert first.get("/inbox").status_code == second.get("/inbox").status_code == 200
    pql("users", "add", "zoe", "--reset", "--password-stdin")
    assert first.get("/inbox").status_code == second.get("/inbox").status_code == 303
    again = site.client("zoe", PASSWORD + "?")
    assert again.get("/inbox").status_code == 200
    pql("users", "remove", "zoe")
    assert again.get("/inbox").status_code == 303
    assert site.sql("SELECT count(*) FROM pql_ui_sessions WHERE name = 'zoe'") == [(0,)]


def test_control_characters_and_absurd_pages_are_clear_400s_and_404s(site):
    rep = site.client("rob")
    token = csrf_of(rep.get("/inbox").text)
    for path in ("/leads/a%00b", "/accounts/x%00", "/leads/%01", "/accounts/%7F"):
        r = rep.get(path)
        assert r.status_code == 400 and "control character" in r.text, path
    for key in ("q", "kind", "motion", "segment", "tier", "profile", "owner", "status", "page"):
        r = rep.get("/inbox", params={key: "a\x00b"})
        assert r.status_code == 400 and "U+0000" in r.text, key
    assert rep.get("/leads/u_1", params={"events": "\x00"}).status_code == 400
    assert rep.get("/inbox", params={"q": "x" * 5000}).status_code == 400
    for page, status, says in (
        ("99999999999999999999", 404, "No page 99999999999999999999"),
        ("1000001", 404, "No page"),
        ("400", 404, "this view has"),
        ("0", 400, "count from 1"),
        ("-99999999999999999999", 400, "count from 1"),
        ("1e309", 400, "not a number"),
        ("9" * 4000, 404, "No page 9999"),
    ):
        r = rep.get("/inbox", params={"page": page})
        assert r.status_code == status and says in r.text, page
    r = rep.post(
        "/actions/feedback",
        data={"csrf": token, "user_id": "u\x00", "action": "done", "back": "/inbox"},
    )
    assert r.status_code == 400 and "the lead id has a control character (U+0000)" in r.text
    # no session needed for the sign-in form: a NUL in the name is a wrong name
    anonymous = site.client(address="10.0.0.7")
    assert sign_in(anonymous, "a\x00b", "whatever password").status_code == 401
    assert sign_in(anonymous, "rob\x00", PASSWORD, next_="/\x00").status_code == 401
    # a CSRF token beyond ASCII is a wrong token (hmac refuses to compare such text)
    for forged in ("\u202e\ufeff", "é" * 43):
        r = anonymous.post("/login", data={"csrf": forged, "name": "rob", "password": PASSWORD})
        assert r.status_code == 403
        r = rep.post("/actions/feedback", data={"csrf": forged, "user_id": "u_1", "action": "done"})
        assert r.status_code == 403
    assert "Traceback" not in site.err.read_text()


def test_parallel_wrong_passwords_get_five_checks_and_cannot_keep_the_user_out(site):
    from concurrent.futures import ThreadPoolExecutor

    backend = connect(site.db)
    try:
        accounts.add(backend, "kim", "admin", PASSWORD)
    finally:
        backend.close()
    own = site.client("kim", address="10.1.0.1")  # kim's own browser, signed in before
    assert own.post("/logout", data={"csrf": csrf_of(own.get("/inbox").text)}).status_code == 303
    attacker = site.client(address="10.66.0.1")
    token = csrf_of(attacker.get("/login").text)

    def guess(i: int) -> int:
        data = {"csrf": token, "name": "kim", "password": f"guess number {i}", "next": "/"}
        return attacker.post("/login", data=data).status_code

    with ThreadPoolExecutor(40) as pool:
        codes = list(pool.map(guess, range(40)))
    assert codes.count(401) == 5 and codes.count(429) == 35, codes  # 5 hashes checked, not 28
    # the attacker's next guesses wait, even with the right password
    assert sign_in(attacker, "kim", PASSWORD).status_code == 429
    # a new browser waits too, but kim's own browser, from anywhere, signs in at once
    assert sign_in(site.client(address="10.2.0.2"), "kim", PASSWORD).status_code == 429
    own.headers["x-forwarded-for"] = "10.3.0.3"
    r = sign_in(own, "kim", PASSWORD)
    assert r.status_code == 303 and own.get("/model").status_code == 200
    # the per-address delay follows the client the trusted proxy names
    probe = site.client(address="10.77.0.1")
    codes = [sign_in(probe, f"nobody{i}", "wrong password").status_code for i in range(31)]
    assert codes[:30] == [401] * 30 and codes[30] == 429
    assert sign_in(site.client(address="10.77.0.2"), "nobody", "x" * 10).status_code == 401


@pytest.mark.long  # 30 Argon2 hashes: a minute on a loaded machine; the unit test below is quick
def test_without_a_trusted_proxy_x_forwarded_for_is_not_heard(site):
    env = {**os.environ, "PQL_UI_SECRET": SECRET, "PYTHONWARNINGS": "ignore"}
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    err = site.folder / "untrusted.err"
    command = [sys.executable, "-m", "pqlkit.cli", "ui", "-m", str(site.model), "--url", site.db]
    with err.open("ab") as sink:
        proc = subprocess.Popen(
            [*command, "--port", str(port), "--keep-open", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        wait_healthy(url, proc, err)
        with httpx.Client(base_url=url, timeout=60) as c:
            codes = []
            for i in range(31):  # a new address each time, all one peer's
                c.headers["x-forwarded-for"] = f"10.88.0.{i}"
                codes.append(sign_in(c, f"nobody{i}", "wrong password").status_code)
        assert codes[:30] == [401] * 30 and codes[30] == 429
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_the_throttle_takes_slots_before_the_hash_and_its_delays_grow_then_end():
    from pqlkit.web import guard

    now = [1000.0]
    t = guard.Throttle(per_name=5, per_address=30, clock=lambda: now[0])
    assert [t.take("ana", "1.1.1.1") for _ in range(5)] == [0.0] * 5  # taken, not yet settled
    assert t.take("ana", "2.2.2.2") == 15.0  # a 6th waits, whoever asks
    now[0] += 15
    assert t.take("ana", "2.2.2.2") == 0.0
    assert t.take("ana", "2.2.2.2") == 30.0  # twice as long as the one before
    now[0] += 29
    assert t.take("ana", "2.2.2.2") == 1.0  # a refused attempt adds no waiting
    now[0] += 1
    assert t.take("ana", "3.3.3.3") == 0.0
    for _ in range(10):  # never past the cap
        now[0] += 900
        assert t.take("ana", "3.3.3.3") == 0.0
    assert t.take("ana", "3.3.3.3") == 900.0
    now[0] += 3600  # an hour without failures forgets them
    assert t.take("ana", "4.4.4.4") == 0.0
    t.succeeded("ana", "4.4.4.4")
    assert [t.take("ana", "4.4.4.4") for _ in range(5)] == [0.0] * 5
    # a browser that signed in as ana before has a counter of its own
    cookie = guard.known_cookie(SECRET, "ana")
    assert guard.name_key(SECRET, "ANA", cookie) != "ana"
    assert t.take(guard.name_key(SECRET, "ana", cookie), "5.5.5.5") == 0.0
    for forged in (
        cookie[:-1] + ("1" if cookie.endswith("0") else "0"),
        "x.y",
        "",
        None,
        guard.known_cookie("another" * 8, "ana"),
    ):
        assert guard.name_key(SECRET, "ana", forged) == "ana"
    assert guard.name_key(SECRET, "bob", cookie) == "bob"


def test_sessions_are_rows_that_end_with_sign_out_reset_removal_and_time(new_backend):
    from pqlkit.access import sessions

    backend = new_backend()
    accounts.add(backend, "ana", "admin", PASSWORD)
    accounts.add(backend, "bob", "rep", PASSWORD)
    user = accounts.get(backend, "ana")
    first, second = (sessions.start(backend, "ana", user.fingerprint) for _ in range(2))
    other = sessions.start(backend, "bob", accounts.get(backend, "bob").fingerprint)
    assert first.id != second.id and first.csrf != second.csrf
    assert sessions.load(backend, first.id) == first
    for unknown in ("", None, first.id[:-1], "x" * 129, "é\x00"):
        assert sessions.load(backend, unknown) is None
    sessions.flash(backend, first, "saved")
    assert sessions.load(backend, first.id).flash == "saved"
    sessions.end(backend, first.id)
    assert sessions.load(backend, first.id) is None and sessions.load(backend, second.id)
    accounts.add(backend, "ana", "admin", PASSWORD + "!", replace=True)
    assert sessions.load(backend, second.id) is None and sessions.load(backend, other.id)
    accounts.remove(backend, "bob")
    assert sessions.load(backend, other.id) is None
    done = sessions.start(backend, "ana", "fp", max_age=0)  # past its time at once
    assert sessions.load(backend, done.id) is None
    sessions.start(backend, "ana", "fp")  # and dropped when ana signs in again
    assert backend.run_sql("SELECT count(*) FROM pql_ui_sessions WHERE name = 'ana'") == [(1,)]


def test_the_client_address_comes_from_trusted_proxies_only():
    from pqlkit.errors import PqlkitError
    from pqlkit.web import guard

    trusted = guard.networks(["10.0.0.0/8, 127.0.0.1", "::1"])
    address = guard.client_address
    assert address("127.0.0.1", ["203.0.113.9"], trusted) == "203.0.113.9"
    assert address("127.0.0.1", ["6.6.6.6, 203.0.113.9, 10.0.0.2"], trusted) == "203.0.113.9"
    assert address("127.0.0.1", ["10.0.0.3", "10.0.0.2"], trusted) == "10.0.0.3"
    assert address("127.0.0.1", ["junk, 10.0.0.2"], trusted) == "10.0.0.2"
    assert address("127.0.0.1", [], trusted) == "127.0.0.1"
    assert address("192.0.2.1", ["203.0.113.9"], trusted) == "192.0.2.1"  # not a proxy of ours
    assert address("192.0.2.1", ["203.0.113.9"], []) == "192.0.2.1"
    assert address(None, [], trusted) == "-"
    with pytest.raises(PqlkitError, match=r"trusted proxy 'nonsense'.*CIDR"):
        guard.networks(["10.0.0.0/8,nonsense"])


# --- escaping --------------------------------------------------------------------------------------


def _no_markup_from_data(html: str) -> None:
    assert "<script" not in html.lower()
    assert "onerror=" not in html.replace("onerror=alert", "")  # only as escaped text below
    assert "<img" not in html and "<b onmouseover" not in html


def test_html_and_script_in_the_data_render_as_text(site):
    rep = site.client("rob")
    inbox = rep.get("/inbox", params={"q": "alert"}).text
    _no_markup_from_data(inbox)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in inbox
    assert "&lt;script&gt;alert(3)&lt;/script&gt; Inc" in inbox  # the company column
    for user_id in XSS:
        page = rep.get("/leads/" + httpx.URL("/" + user_id).raw_path.decode()[1:])
        assert page.status_code == 200, user_id
        _no_markup_from_data(page.text)
        assert "&lt;script&gt;alert(8)&lt;/script&gt;" in page.text  # a signal's label
    lead = rep.get("/leads/%3Cscript%3Ealert%281%29%3C%2Fscript%3E").text
    assert "&lt;script&gt;alert(6)&lt;/script&gt;" in lead  # an event's name
    assert "&lt;img src=x onerror=alert(7)&gt;" in lead  # its properties
    second = rep.get("/leads/%22%3E%3Cimg%20src%3Dx%20onerror%3Dalert%282%29%3E").text
    assert "&#34;&gt;&lt;b onmouseover=alert(5)&gt;VP" in second  # a trait
    account = rep.get(f"/accounts/{site.planted['account']}").text
    _no_markup_from_data(account)
    assert "&lt;script&gt;alert(3)&lt;/script&gt; Inc" in account
    # a hostile search string comes back as text in the form
    searched = rep.get("/inbox", params={"q": '"><script>alert(9)</script>'}).text
    _no_markup_from_data(searched)
    # and in an error page
    missing = rep.get("/leads/%3Cscript%3Ealert%2810%29%3C%2Fscript%3E")
    assert missing.status_code == 404
    _no_markup_from_data(missing.text)


# --- the inbox against the stored scores ------------------------------------------------------------


def test_inbox_filters_search_and_pages_match_the_stored_run(site):
    latest = "(SELECT max(as_of) FROM pql_runs)"
    pqls = {
        r[0]: r[1:]
        for r in site.sql(
            f"SELECT user_id, motion, segment, tier, icp_profile FROM pql_user_scores "
            f"WHERE is_pql AND as_of = {latest}"
        )
    }
    assert len(pqls) > desk.PAGE  # more than one page
    engine = Session(connect(site.db), load_model(site.model)).engine
    try:
        seen: list[str] = []
        page = desk.inbox(Session.of(engine), desk.Filters(status="all"))
        assert page.total == len(pqls) and page.pages == -(-len(pqls) // desk.PAGE)
        for n in range(1, page.pages + 1):
            seen += [
                r["user_id"]
                for r in desk.inbox(Session.of(engine), desk.Filters(status="all", page=n)).rows
            ]
        assert sorted(seen) == sorted(pqls)  # every PQL once, across the pages
        motion = sorted({v[0] for v in pqls.values()})[0]
        by_motion = desk.inbox(Session.of(engine), desk.Filters(motion=motion, status="all"))
        assert by_motion.total == sum(v[0] == motion for v in pqls.values())
        assert set(by_motion.options["motion"]) == {v[0] for v in pqls.values()}
        tier = sorted({v[2] for v in pqls.values()})[-1]
        both = desk.inbox(Session.of(engine), desk.Filters(motion=motion, tier=tier, status="all"))
        assert both.total == sum(v[0] == motion and v[2] == tier for v in pqls.values())
        # search by e-mail, company and id
        uid = sorted(pqls)[3]
        email, account = site.sql(f"SELECT email, account_id FROM users WHERE user_id = '{uid}'")[0]
        company = site.sql(f"SELECT name FROM accounts WHERE account_id = '{account}'")[0][0]
        for needle in (email.upper(), uid, company[:8]):
            hits = desk.inbox(Session.of(engine), desk.Filters(q=needle, status="all")).rows
            assert uid in [r["user_id"] for r in hits], needle
        # accounts
        pqas = site.sql(
            f"SELECT count(*) FROM pql_account_scores WHERE is_pqa AND as_of = {latest}"
        )[0][0]
        assert desk.inbox(Session.of(engine), desk.Filters(kind="accounts")).total == pqas
        # since: the first run of the current streak; newest first
        rows = desk.inbox(Session.of(engine), desk.Filters(status="all")).rows
        for r in rows:
            runs = site.sql(
                f"SELECT as_of, is_pql FROM pql_user_scores WHERE user_id = '{r['user_id']}' ORDER BY as_of"
            )
            streak = [a for a, p in runs]
            for a, p in runs:
                if not p:
                    streak = [b for b, _ in runs if b > a]
            assert r["since"] == min(streak)
        assert [r["since"] for r in rows] == sorted((r["since"] for r in rows), reverse=True)
        with pytest.raises(Exception, match="inbox kind"):
            desk.Filters(kind="people")
    finally:
        engine.close()


def test_the_inbox_reads_the_live_state_and_follows_it(model_file, world_backend):
    """With the hand-off's live state (`pql serve --model`), the inbox lists its PQLs: again
    after a run that moved it (transitions), and, for scores that moved without one, in
    order once the state's rescores have moved LIVE_REFRESH on (not with the clock alone)."""
    model_file.write_text(
        model_file.read_text()
        + """
handoff:
  destinations:
    - {id: hook, kind: webhook, url: "http://127.0.0.1:9/", secret_env: PQL_TEST_HOOK_SECRET}
  routes:
    - {when: {transitions: [became_pql]}, to: [hook]}
"""
    )
    engine = Session(world_backend, load_model(model_file)).engine
    try:

        def listed(now) -> list[dict]:
            first = desk.inbox(Session.of(engine), desk.Filters(status="all"), now=now)
            rows = list(first.rows)
            for n in range(2, first.pages + 1):
                rows += desk.inbox(
                    Session.of(engine), desk.Filters(status="all", page=n), now=now
                ).rows
            assert len(rows) == first.total
            return rows

        def in_order(rows: list[dict]) -> bool:
            def key(r):
                since = r["since"]
                return (
                    since is None,
                    -(since.timestamp() if since else 0),
                    -r["ranking"],
                    r["user_id"],
                )

            return [r["user_id"] for r in rows] == [r["user_id"] for r in sorted(rows, key=key)]

        def pqls() -> list[str]:
            s = world_backend.table("pql_user_state")
            return sorted(r[0] for r in world_backend.values(s.filter(s.is_pql).select("user_id")))

        engine.run(DEMO_END - timedelta(days=10))
        assert world_backend.has_table("pql_user_state")
        now = DEMO_END
        assert sorted(r["user_id"] for r in listed(now)) == pqls() and pqls()
        engine.run(DEMO_END)  # moves the state on, with transitions
        rows = listed(now)
        assert sorted(r["user_id"] for r in rows) == pqls() and in_order(rows)
        # a score moved without a transition: the lowest of a group that became PQLs together
        groups: dict = {}
        for r in rows:
            groups.setdefault(r["since"], []).append(r)
        group = max(groups.values(), key=len)
        assert len(group) > 1
        low = group[-1]["user_id"]
        world_backend.run_sql(
            "UPDATE pql_user_state SET score = score + 1000, ranking = ranking + 1000 "
            f"WHERE user_id = '{low}'"
        )
        stale = listed(now + desk.LIVE_REFRESH)  # kept: the state's time has not moved
        assert next(r["score"] for r in stale if r["user_id"] == low) >= 1000
        assert not in_order(stale)
        # a rescore LIVE_REFRESH later (its as_of): the order follows
        world_backend.run_sql(
            "UPDATE pql_user_state SET as_of = (SELECT max(as_of) FROM pql_user_state) "
            f"+ INTERVAL '10 seconds' WHERE user_id = '{low}'"
        )
        assert desk.LIVE_REFRESH.total_seconds() == 10
        fresh = listed(now)
        assert sorted(r["user_id"] for r in fresh) == pqls() and in_order(fresh)
    finally:
        engine.close()


def test_feedback_assign_and_the_inbox_over_http(site):
    rep = site.client("rob")
    inbox = rep.get("/inbox").text
    token = csrf_of(inbox)
    first = re.search(r'href="/leads/([^"]+)"', inbox).group(1)
    user_id = httpx.URL("/" + first).path[1:]
    lead = rep.get(f"/leads/{first}")
    assert lead.status_code == 200 and 'id="signals"' in lead.text
    # disqualify needs a reason: refused, nothing stored, the rep told why
    r = rep.post(
        "/actions/feedback",
        data={"csrf": token, "user_id": user_id, "action": "disqualify", "back": "/inbox"},
    )
    assert r.status_code == 303
    assert "needs a reason" in rep.get("/inbox").text
    stored = f"SELECT action, reason, \"by\" FROM pql_feedback WHERE user_id = '{user_id}'"
    assert not _has(site, "pql_feedback") or site.sql(stored) == []
    r = rep.post(
        "/actions/feedback",
        data={
            "csrf": token,
            "user_id": user_id,
            "action": "disqualify",
            "reason": "a student",
            "back": "/inbox",
        },
    )
    assert r.status_code == 303 and r.headers["location"] == "/inbox"
    assert site.sql(stored) == [("disqualify", "a student", "rob")]
    after = rep.get("/inbox").text
    assert f'href="/leads/{first}"' not in after and "disqualified" in after
    worked = rep.get("/inbox", params={"status": "worked"}).text
    assert f'href="/leads/{first}"' in worked
    # assign to me, then filter by owner
    r = rep.post(
        "/actions/assign",
        data={"csrf": token, "entity": "user", "id": user_id, "owner": "me", "back": "/inbox"},
    )
    assert r.status_code == 303
    mine = rep.get("/inbox", params={"owner": "me", "status": "all"}).text
    assert re.findall(r'href="/leads/([^"]+)"', mine) == [first]
    assert site.sql(f"SELECT owner FROM pql_owners WHERE id = '{user_id}'") == [("rob",)]
    # an unknown user: a clear message, nothing stored
    rep.post(
        "/actions/feedback",
        data={"csrf": token, "user_id": "nobody", "action": "done", "back": "/inbox"},
    )
    assert "no scored user" in rep.get("/inbox").text.replace("&#39;", "'")


def test_deliveries_page_lists_and_retries(site):
    admin = site.client("ana")
    page = admin.get("/deliveries")
    assert page.status_code == 200 and "No deliveries" in page.text
    # a dead-lettered delivery (as the hand-off leaves one), shown with its error, retried
    # through pqlkit's connection, which takes its turn with the app's
    when = f"TIMESTAMP '{DEMO_END:%Y-%m-%d %H:%M:%S}'"
    xss = XSS[0].replace("'", "''")
    site.sql(
        f"INSERT INTO pql_outbox VALUES ('tr_x', 'became_pql', 'user', '{xss}', NULL, 'false', "
        f"'true', {when}, 'v', '{{}}', {when})"
    )
    site.sql(
        f"INSERT INTO pql_deliveries VALUES ('tr_x', 'crm', 'dead', 3, NULL, {when}, {when}, "
        "NULL, 400, 'HTTP 400: <script>alert(11)</script>', NULL)"
    )
    page = admin.get("/deliveries").text
    _no_markup_from_data(page)
    assert "HTTP 400: &lt;script&gt;alert(11)&lt;/script&gt;" in page
    r = admin.post(
        "/actions/retry",
        data={
            "csrf": csrf_of(page),
            "transition_id": "tr_x",
            "destination": "crm",
            "back": "/deliveries",
        },
    )
    assert r.status_code == 303
    assert "1 delivery due again" in admin.get("/deliveries").text
    assert site.sql("SELECT status FROM pql_deliveries WHERE transition_id = 'tr_x'") == [
        ("pending",)
    ]


# --- in a real browser ------------------------------------------------------------------------------

ARTIFACTS = (
    Path(os.environ.get("PQLKIT_ARTIFACTS", Path(__file__).parents[1] / "test-artifacts")) / "web"
)
CHROMIUM_FLAGS = [
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
]


def test_a_rep_works_the_inbox_in_headless_chromium(site):
    from playwright.sync_api import sync_playwright

    from .conftest import _require

    browser_path = chromium()
    if browser_path is None:
        if _require("PQLKIT_REQUIRE_BROWSER"):
            pytest.fail("Chromium is required (CI): scripts/ensure-chromium installs it")
        pytest.skip("no Chromium on this machine (scripts/ensure-chromium installs it)")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=browser_path, args=CHROMIUM_FLAGS, chromium_sandbox=False
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("request", lambda r: requests.append(r.url))
            page.goto(site.url + "/inbox")
            assert page.url.startswith(site.url + "/login")
            page.screenshot(path=ARTIFACTS / "login.png", full_page=True)
            page.fill("input[name=name]", "rob")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(site.url + "/inbox")
            page.screenshot(path=ARTIFACTS / "inbox.png", full_page=True)
            # filter by the first motion offered
            motion = page.locator("select[name=motion] option").nth(1).get_attribute("value")
            page.select_option("select[name=motion]", motion)
            page.click("form.filters button[type=submit]")
            page.wait_for_url(f"**motion={motion}**")
            motions = page.locator("table.inbox tbody tr td:nth-child(6)").all_inner_texts()
            assert motions and set(motions) == {motion}
            page.screenshot(path=ARTIFACTS / "inbox-filtered.png", full_page=True)
            # open the first lead
            link = page.locator("table.inbox tbody tr a").first
            href = link.get_attribute("href")
            link.click()
            page.wait_for_url(site.url + href)
            assert page.locator("#signals table tbody tr").count() > 5
            page.screenshot(path=ARTIFACTS / "lead.png", full_page=True)
            user_id = page.locator("#disqualify input[name=user_id]").get_attribute("value")
            # disqualify with a reason; back in the inbox, the lead has gone
            page.fill("#disqualify input[name=reason]", "competitor evaluating us")
            page.click("#disqualify button[type=submit]")
            page.wait_for_url(site.url + "/inbox")
            assert "disqualified" in page.locator(".flash").inner_text()
            assert page.locator(f'table.inbox a[href="{href}"]').count() == 0
            page.screenshot(path=ARTIFACTS / "inbox-after-disqualify.png", full_page=True)
            page.goto(site.url + f"/accounts/{site.planted['account']}")
            assert page.locator("#users table tbody tr").count() >= 1
            page.screenshot(path=ARTIFACTS / "account.png", full_page=True)
            # the admin's pages: the model's health computes in the background and the page
            # reloads itself (no JavaScript) until the charts are there
            page.click("button:has-text('Sign out')")
            page.wait_for_url(site.url + "/login")
            page.fill("input[name=name]", "ana")
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_url(site.url + "/inbox")
            page.goto(site.url + "/model")
            page.wait_for_selector('svg[data-chart="funnel"]', timeout=120_000)
            assert page.locator("svg.chart").count() == 7
            page.screenshot(path=ARTIFACTS / "model.png", full_page=True)
            page.goto(site.url + "/deliveries")
            page.screenshot(path=ARTIFACTS / "deliveries.png", full_page=True)
        finally:
            browser.close()
    stored = site.sql(
        f"SELECT action, reason FROM pql_feedback WHERE user_id = '{user_id}' AND \"by\" = 'rob'"
    )
    assert stored == [("disqualify", "competitor evaluating us")]
    off_machine = [u for u in requests if not u.startswith(site.url + "/")]
    assert requests and off_machine == []
    for name in (
        "login",
        "inbox",
        "inbox-filtered",
        "lead",
        "inbox-after-disqualify",
        "account",
        "model",
    ):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000


# --- the same on PostgreSQL --------------------------------------------------------------------------


def _desk_story(backend, model_file) -> dict:
    engine = Session(backend, load_model(model_file)).engine
    for when in (DEMO_END - timedelta(days=7), DEMO_END):
        engine.run(when)
    page = desk.inbox(Session.of(engine), desk.Filters(status="all"))
    rows = [(r["user_id"], r["since"], r["score"], r["company"], r["email"]) for r in page.rows]
    first = page.rows[0]["user_id"]
    lead = leads.lead(Session.of(engine), first)
    assert lead is not None and lead.explanation is not None
    stored = {
        r["user_id"]: r for r in backend.rows(engine.stored_users(DEMO_END, engine.loaded.version))
    }
    # explain (one user's features, compiled once) gives the run's outputs, for every PQL shown
    for r in page.rows[:12]:
        e = engine.explain(r["user_id"], DEMO_END)
        for k in ("score", "tier", "is_pql", "segment", "motion", "reasons", "icp_profile"):
            assert e.outputs[k] == stored[r["user_id"]][k], (r["user_id"], k)
        # the lead page's, from the features the run stored, is the same
        kept = engine.stored_explanation(r["user_id"], DEMO_END)
        assert kept is not None and kept.to_dict() == e.to_dict()
        # its timeline: the latest events of the days up to the last one
        near = leads.lead(Session.of(engine), r["user_id"], events=5)
        every = leads.lead(Session.of(engine), r["user_id"], events=5, all_events=True)
        assert near is not None and every is not None and every.events_since is None
        assert near.events_since is not None
        assert all(x["timestamp"] >= near.events_since for x in near.events)
        stamps = [x["timestamp"] for x in every.events[: len(near.events)]]
        assert [x["timestamp"] for x in near.events] == stamps
        # a short window's found every event inside it
        older = every.events[len(near.events) :] if len(near.events) < 5 else []
        assert all(x["timestamp"] < near.events_since for x in older)
    # an event that came after the run is in the timeline too, first
    late = (DEMO_END + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S")
    backend.run_sql(
        "INSERT INTO events (message_id, user_id, event, timestamp, properties) "
        f"VALUES ('late-1', '{first}', 'Arrived Late', '{late}', '{{}}')"
    )
    now = leads.lead(Session.of(engine), first, events=5)
    assert now is not None and now.events[0]["event"] == "Arrived Late"
    assert now.events[1:] == [x for x in lead.events if x["event"] != "Arrived Late"][:4]
    account = leads.account(Session.of(engine), lead.row["account_id"])
    assert account is not None
    desk.assign(Session.of(engine), "user", first, "rob")
    fb = desk.feedback(Session.of(engine), first, "done", reason=None, by="rob")
    after = desk.inbox(Session.of(engine), desk.Filters())
    assert first not in [r["user_id"] for r in after.rows] and after.total == page.total - 1
    return {
        "total": page.total,
        "rows": rows,
        "options": page.options,
        "lead": (
            lead.row["score"],
            [s.points for s in lead.explanation.signals],
            len(lead.events),
            len(lead.history),
        ),
        "account": (account.row["score"], [u["user_id"] for u in account.users]),
        "owner": desk.owner_of(engine, "user", first),
        "quiet_days": (fb.quiet_until - fb.at).days,
    }


def test_the_desk_reads_the_same_on_duckdb_and_postgres(
    tmp_path, pg_server, small_world, model_file
):
    duck, pg = connect(str(tmp_path / "desk.duckdb")), connect(pg_server.create_database())
    try:
        for backend in (duck, pg):
            load(backend, small_world)
        a, b = _desk_story(duck, model_file), _desk_story(pg, model_file)
    finally:
        duck.close()
        pg.close()
    assert a == b
    assert a["owner"] == "rob" and a["quiet_days"] == 30 and a["total"] > 0


# --- the commands ---------------------------------------------------------------------------------


def test_pql_users_and_pql_ui_errors_from_the_command_line(tmp_path, model_file, monkeypatch):
    import json

    from click.testing import CliRunner

    from pqlkit.cli import cli

    db = str(tmp_path / "u.duckdb")
    run = CliRunner().invoke
    ok = run(
        cli,
        ["users", "add", "ana", "--role", "admin", "--password-stdin", "--url", db, "--json"],
        input=PASSWORD + "\n",
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output) == {"name": "ana", "role": "admin", "reset": False}
    listed = run(cli, ["users", "list", "--url", db, "--json"])
    assert [u["name"] for u in json.loads(listed.output)] == ["ana"]
    for argv, stdin, message in (
        (["users", "add", "ana", "--password-stdin"], PASSWORD, "exists"),
        (["users", "add", "bo b", "--password-stdin"], PASSWORD, "user name"),
        (["users", "add", "bob", "--password-stdin"], "short", "too short"),
        (["users", "remove", "nobody"], "", "no user"),
    ):
        r = run(cli, [*argv, "--url", db], input=stdin + "\n")
        assert r.exit_code == 1 and message in r.output and "Traceback" not in r.output, r.output
    assert run(cli, ["users", "remove", "ana", "--url", db]).exit_code == 0
    assert json.loads(run(cli, ["users", "list", "--url", db, "--json"]).output) == []
    # pql ui refuses a short secret and a model that does not load, before serving
    monkeypatch.setenv("PQL_UI_SECRET", "too short")
    r = run(cli, ["ui", "-m", str(model_file), "--url", db])
    assert r.exit_code == 1 and "PQL_UI_SECRET" in r.output and "Traceback" not in r.output
    monkeypatch.setenv("PQL_UI_SECRET", SECRET)
    broken = tmp_path / "broken.yml"
    broken.write_text("name: [unclosed\n", encoding="utf-8")
    r = run(cli, ["ui", "-m", str(broken), "--url", db])
    assert r.exit_code == 1 and "broken.yml" in r.output and "Traceback" not in r.output
    r = run(cli, ["ui", "-m", str(model_file), "--url", db, "--trusted-proxy", "10.0.0.0/33"])
    assert r.exit_code == 1 and "trusted proxy" in r.output and "Traceback" not in r.output


# --- the fuzz: every route and parameter, hostile values, no 5xx ---------------------------------

HOSTILE = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x01\x1b[31m\x7f",
    "\t\r\n",
    "99999999999999999999",
    "-99999999999999999999",
    "-1",
    "0",
    "1e309",
    "NaN",
    "9" * 4300,
    "ℌ𝔢𝔩𝔩𝔬 ü 中文 🙂",
    "\u202e\ufeff\u200b",
    "\ufffd\U0010ffff",
    "x" * 5000,
    "../../../../etc/passwd",
    "..%2F..%2Fmodel",
    "%00",
    "%ff%fe",
    "/",
    "//evil.example",
    "\\\\evil",
    "' OR 1=1 --",
    "'; DROP TABLE pql_ui_users; --",
    '"',
    "{{7*7}}{% raw %}",
    "<script>alert(1)</script>",
    "me",
    "-",
    "null",
]
#: Every route's parameters (path, query or form), by method; the values above go into each.
FUZZ_GET = {
    "/inbox": ["kind", "motion", "segment", "tier", "profile", "owner", "q", "status", "page"],
    "/leads/{}": ["events", "take"],
    "/accounts/{}": ["page", "take"],
    "/model": ["refresh"],
    "/deliveries": ["status", "page", "confirm"],
    "/login": ["next"],
    "/": [],
    "/health": [],
    "/static/app.css": [],
}
FUZZ_POST = {
    "/login": ["csrf", "name", "password", "next"],
    "/logout": ["csrf"],
    "/actions/feedback": ["csrf", "user_id", "action", "reason", "back"],
    "/actions/assign": ["csrf", "entity", "id", "owner", "take", "back"],
    "/actions/retry": ["csrf", "transition_id", "destination", "status", "confirmed", "back"],
}


def _fuzz_requests(values: list[str], rng, stride: int) -> list[tuple[str, str, dict, dict]]:
    """(method, path, query, form) for every parameter of every route with each value; path
    parameters raw (path tricks) and percent-encoded. The other form fields are sane. With a
    ``stride`` above 1 one in that many, spread so every parameter meets several values and
    every value several parameters."""
    from urllib.parse import quote

    # no real lead, user or delivery: what the fuzz does must not change what other tests read
    sane = {"user_id": "fuzz-nobody", "action": "done", "entity": "user", "id": "fuzz-nobody"}
    sane |= {"reason": "a student", "back": "/inbox", "status": "failed", "name": "fuzz-nobody"}
    sane |= {"password": "wrong password", "next": "/inbox"}
    requests: list[tuple[str, str, dict, dict]] = []
    for path, params in FUZZ_GET.items():
        for v in values:
            if "{}" in path:
                requests.append(("GET", path.format(quote(v, safe="")), {}, {}))
                if v and "\x00" not in v and not v.isspace():
                    requests.append(("GET", path.format(v), {}, {}))
            for p in params:
                requests.append(("GET", path.format("u_00001"), {p: v}, {}))
            requests.append(("GET", path.format("u_00001"), {v[:50] or "k": "1"}, {}))
    for path, fields in FUZZ_POST.items():
        for v in values:
            for f in fields:
                form = {k: sane.get(k, "") for k in fields if k != "csrf"}
                requests.append(("POST", path, {}, {**form, f: v}))
    requests = requests[rng.randrange(stride) :: stride]
    rng.shuffle(requests)
    return requests


def _fuzz(site: Site, values: list[str], rounds: int, seed: int, stride: int = 1) -> dict[str, int]:
    import random

    rng = random.Random(seed)
    browsers = {
        "anonymous": site.client(address="10.50.0.1"),
        "rep": site.client("rob"),
        "admin": site.client("ana"),
    }
    tokens = {
        who: csrf_of(c.get("/login" if who == "anonymous" else "/inbox").text)
        for who, c in browsers.items()
    }
    seen: dict[str, int] = {}
    for n in range(rounds):
        for i, (method, path, query, form) in enumerate(_fuzz_requests(values, rng, stride)):
            who = ("anonymous", "rep", "admin")[(i + n) % 3]
            c = browsers[who]
            if method == "POST" and form.get("csrf") is None and "csrf" in FUZZ_POST[path]:
                if path == "/logout":
                    continue  # a valid sign-out would end the fuzz's own session
                form = {**form, "csrf": tokens[who]}
            # the proxy names a new client each time, so the address throttle only meets the
            # login fuzz in bursts, and the hash is checked often
            c.headers["x-forwarded-for"] = f"10.{51 + n % 100}.{i // 250 % 250}.{i % 250}"
            try:
                r = c.request(method, path, params=query, data=form or None)
            except (httpx.LocalProtocolError, httpx.InvalidURL):  # nor would a browser send it
                continue
            seen[f"{r.status_code}"] = seen.get(f"{r.status_code}", 0) + 1
            assert r.status_code < 500, (who, method, path, query, form, r.text[:300])
    assert "Traceback" not in site.err.read_text()
    assert browsers["rep"].get("/inbox").status_code == 200  # still signed in, still served
    return seen


def test_a_fuzz_of_every_route_and_parameter_gets_no_5xx(site):
    seen = _fuzz(site, HOSTILE, rounds=1, seed=27, stride=10)
    assert sum(seen.values()) > 120 and {"200", "303", "400", "403", "404"} <= set(seen), seen


@pytest.mark.long
def test_a_long_fuzz_of_every_route_and_parameter_gets_no_5xx(site):
    import random

    rng = random.Random(2727)
    alphabet = [chr(c) for c in (*range(0, 0x80), 0x85, 0xA0, 0x2028, 0xFFFD, 0x1F642, 0x10FFFF)]
    values = HOSTILE + [
        "".join(rng.choice(alphabet) for _ in range(rng.choice((1, 3, 17, 200, 5000))))
        for _ in range(100)
    ]
    seen = _fuzz(site, values, rounds=1, seed=2727)  # about 6,000 requests
    print(f"web fuzz: {sum(seen.values())} requests, answers by status {sorted(seen.items())}")


def test_an_instrumentation_alert_is_a_notice_on_admins_pages_only(site):
    """The volume watch's alerts (pql_tracking_alerts, written by pql serve --model) show at the
    top of an admin's pages, the event's name as text; a rep's pages do not carry them."""
    from datetime import datetime

    import pyarrow as pa

    from pqlkit.tracking.volume import ALERTS, ALERTS_SCHEMA

    rows = [
        ("invite_sent", "stopped", datetime(2026, 12, 1, 10)),
        ("<b>feature_used</b>", "dropped", datetime(2026, 12, 1, 11)),
        ("pricing_viewed", "dropped", datetime(2026, 12, 1, 9)),
        ("pricing_viewed", "recovered", datetime(2026, 12, 1, 12)),  # back: no notice
    ]
    backend = connect(site.db)  # let go before the requests: the app takes the file by turns
    try:
        backend.ensure_table(ALERTS, ALERTS_SCHEMA)
        backend.insert(
            ALERTS,
            pa.Table.from_pylist(
                [
                    {
                        "event": e,
                        "status": s,
                        "count": 0,
                        "expected": 30.0,
                        "at": at,
                        "notified": "",
                    }
                    for e, s, at in rows
                ],
                schema=ALERTS_SCHEMA,
            ),
        )
    finally:
        backend.close()
    try:
        admin = site.client("ana").get("/inbox").text
        assert '<p class="alert" role="alert">Tracking: ' in admin
        assert "<b>invite_sent</b> stopped since 2026-12-01 10:00" in admin
        assert "&lt;b&gt;feature_used&lt;/b&gt;</b> dropped" in admin
        assert "pricing_viewed" not in admin.split('role="alert"')[1].split("</p>")[0]
        assert 'class="alert"' not in site.client("rob").get("/inbox").text
    finally:
        site.sql(f"DROP TABLE {ALERTS}")  # the other tests' pages carry no notice
