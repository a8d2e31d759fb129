"""CRM both ways, against local servers that speak HubSpot's and Salesforce's documented APIs
(tests/fakes): diffed upserts with a ledger and an audit, refused records kept and sent again,
rate limits and outages that lose nothing, a sync killed midway, deliveries from transitions,
and deals and opportunities read back as outcomes."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import duckdb
import httpx
import pytest

from pqlkit.backends import connect
from pqlkit.crm import hubspot as hs_client
from pqlkit.crm.records import Record
from pqlkit.demo.load import load, starter_text
from pqlkit.errors import ModelError, PqlkitError
from pqlkit.model.crm import SALESFORCE_ACCOUNT, SALESFORCE_LEAD, HubSpotDestination
from pqlkit.model.load import load_model
from pqlkit.usecases.crm import sync_crm, sync_outcomes
from pqlkit.usecases.handoff import deliver
from pqlkit.usecases.session import Session

from .conftest import DEMO_END
from .fakes import Running
from .fakes.hubspot import FakeHubSpot
from .fakes.salesforce import FakeSalesforce

HS_ENV = {"HS_TOKEN": "pat-test"}
SF_ENV = {"SF_ID": "cid", "SF_SECRET": "csecret"}
PQL = [sys.executable, "-m", "pqlkit.cli"]


@pytest.fixture
def hub():
    fake = FakeHubSpot(calls_per_10s=10_000)
    with Running(fake.app) as srv:
        fake.url = srv.url
        yield fake


@pytest.fixture
def sfdc():
    fake = FakeSalesforce()
    fake.add_fields("Lead", [f for f in SALESFORCE_LEAD if f.endswith("__c")], "Pqlkit_Id__c")
    fake.add_fields(
        "Account", [f for f in SALESFORCE_ACCOUNT if f.endswith("__c")], "Pqlkit_Account_Id__c"
    )
    with Running(fake.app) as srv:
        fake.base_url = srv.url
        yield fake


def hubspot_yaml(url: str, extra: str = "") -> str:
    return f"""
    - id: hubspot
      kind: hubspot
      token_env: HS_TOKEN
      base_url: {url}{extra}"""


def salesforce_yaml(url: str, extra: str = "") -> str:
    return f"""
    - id: sf
      kind: salesforce
      login_url: {url}
      client_id_env: SF_ID
      client_secret_env: SF_SECRET{extra}"""


def write_model(path: Path, destinations: str, routes: str = "[]", outcomes: bool = False) -> Path:
    text = starter_text()
    if outcomes:
        text = text.replace("outcomes: {table: outcomes}", "outcomes: {table: pql_crm_outcomes}", 1)
    path.write_text(
        text + f"\nhandoff:\n  destinations:{destinations}\n  routes: {routes}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def scored(tmp_path, small_world):
    """(folder, url): the small world in a DuckDB file, scored as of DEMO_END with a model
    the test writes first (write_model) into folder / pql.yml."""

    def make(model: Path, backend=None) -> str:
        b = backend or connect(str(tmp_path / "crm.duckdb"))
        if backend is None:
            load(b, small_world)
        Session(b, load_model(model)).engine.run(DEMO_END)
        url = b.url
        b.close()
        return url

    return make


def _sql(url: str, query: str) -> list[tuple]:
    b = connect(url)
    try:
        return b.run_sql(query)
    finally:
        b.close()


def _bump(url: str, what: str, where: str) -> None:
    """Change the stored state (the run and, with a hand-off, the state table it keeps)."""
    for table in ("pql_user_scores", "pql_user_state"):
        _sql(url, f"update {table} set {what} where {where}")


def _pqls(url: str) -> dict[str, dict]:
    """The scored PQLs with their e-mail: user_id → row."""
    rows = _sql(
        url,
        "select s.user_id, lower(u.email), s.score, s.tier, s.is_pql from pql_user_scores s "
        "join users u on u.user_id = s.user_id where s.is_pql",
    )
    return {r[0]: {"email": r[1], "score": r[2], "tier": r[3]} for r in rows}


# --- HubSpot: write-back ------------------------------------------------------------------------


def test_hubspot_gets_each_pql_once_then_only_what_changed(tmp_path, hub, scored):
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url))
    url = scored(model)
    pqls = _pqls(url)
    pqas = {r[0] for r in _sql(url, "select account_id from pql_account_scores where is_pqa")}

    first = sync_crm(model, url, env=HS_ENV)[0]
    assert first.stopped is None and first.failed == 0
    parts = {o.object: o for o in first.objects}
    assert parts["contacts"].created == len(pqls) > 20
    assert parts["companies"].created == len(pqas) > 5
    # the properties were created, in pqlkit's group; the company key is unique
    assert hub.properties["contacts"]["pql_score"]["groupName"] == "pqlkit"
    assert hub.properties["contacts"]["pql_is_pql"]["type"] == "bool"
    assert hub.properties["companies"]["pql_account_id"].get("hasUniqueValue") is True
    assert all(len(ids) <= 100 for _, ids in hub.upserts)
    held = {p["email"]: p for p in hub.objects["contacts"].values()}
    for user_id, row in pqls.items():
        contact = held[row["email"]]
        assert contact["pql_user_id"] == user_id
        assert contact["pql_score"] == str(row["score"]) and contact["pql_tier"] == row["tier"]
        assert contact["pql_is_pql"] == "true" and contact["pql_became_pql_at"]

    again = sync_crm(model, url, env=HS_ENV)[0]
    assert [(o.sent, o.unchanged) for o in again.objects] == [(0, len(pqas)), (0, len(pqls))]

    # one score moves, one lead leaves: a dry run shows them, field by field, and sends nothing
    moved, left = sorted(pqls)[:2]
    _bump(url, "score = score + 1", f"user_id = '{moved}'")
    _bump(url, "is_pql = false", f"user_id = '{left}'")
    calls = hub.calls
    dry = sync_crm(model, url, env=HS_ENV, dry_run=True)[0]
    assert hub.calls == calls
    diff = {d["key"]: d for d in dry.objects[1].diff}
    assert set(diff) == {moved, left}
    assert diff[moved]["changes"] == {
        "pql_score": (str(pqls[moved]["score"]), str(pqls[moved]["score"] + 1))
    }
    assert diff[left]["changes"]["pql_is_pql"] == ("true", "false")

    sent = sync_crm(model, url, env=HS_ENV)[0]
    assert sent.objects[1].sent == 2 and sent.objects[1].updated == 2
    assert held[pqls[moved]["email"]]["pql_score"] == str(pqls[moved]["score"] + 1)
    assert held[pqls[left]["email"]]["pql_is_pql"] == "false"  # a lead who left is told so
    audit = _sql(
        url,
        f"select action from pql_crm_audit where key = '{moved}' order by sent_at, action <> 'sending'",
    )
    assert [a for (a,) in audit] == ["sending", "created", "sending", "updated"]

    full = sync_crm(model, url, env=HS_ENV, full=True)[0]
    assert full.objects[1].sent == len(pqls) and full.objects[1].updated == len(pqls)


def test_hubspot_on_postgres_writes_the_same_records(tmp_path, hub, small_world, pg_server):
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url))
    backend = connect(pg_server.create_database())
    load(backend, small_world)
    Session(backend, load_model(model)).engine.run(DEMO_END)
    url = backend.url
    backend.close()
    report = sync_crm(model, url, env=HS_ENV)[0]
    assert report.failed == 0
    assert {p["pql_user_id"] for p in hub.objects["contacts"].values()} == set(_pqls(url))
    assert sync_crm(model, url, env=HS_ENV)[0].objects[1].sent == 0


def test_refused_records_keep_their_error_and_nothing_else_is_lost(tmp_path, hub, scored):
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url))
    url = scored(model)
    pqls = _pqls(url)
    bad, dup_a, dup_b, none = sorted(pqls)[3:7]
    _sql(url, f"update users set email = 'not-an-email' where user_id = '{bad}'")
    _sql(url, f"update users set email = '{pqls[dup_a]['email']}' where user_id = '{dup_b}'")
    _sql(url, f"update users set email = null where user_id = '{none}'")

    report = sync_crm(model, url, env=HS_ENV)[0]
    contacts = report.objects[1]
    assert contacts.failed == 1 and contacts.skipped == 2
    assert contacts.created == len(pqls) - 3  # the batch with the bad e-mail lost nobody else
    errors = {e["key"]: e["error"] for e in contacts.errors}
    assert "INVALID_EMAIL" in errors[bad] and "email" in errors[bad]
    assert dup_a in errors[dup_b] and "email" in errors[none]
    assert {p["pql_user_id"] for p in hub.objects["contacts"].values()} == set(pqls) - {
        bad,
        dup_b,
        none,
    }
    row = _sql(url, f"select error, failures, digest from pql_crm_ledger where key = '{bad}'")
    assert "INVALID_EMAIL" in row[0][0] and row[0][1] == 1 and row[0][2] is None
    failed = _sql(
        url, f"select status, error from pql_crm_audit where key = '{bad}' and action = 'failed'"
    )
    assert failed and failed[0][0] == 400

    again = sync_crm(model, url, env=HS_ENV)[0].objects[1]
    assert again.sent == 1 and again.failed == 1  # sent again, not skipped forever
    assert _sql(url, f"select failures from pql_crm_ledger where key = '{bad}'") == [(2,)]

    _sql(url, f"update users set email = 'fixed@example.org' where user_id = '{bad}'")
    fixed = sync_crm(model, url, env=HS_ENV)[0].objects[1]
    assert fixed.sent == 1 and fixed.created == 1 and fixed.failed == 0
    assert _sql(url, f"select error, failures from pql_crm_ledger where key = '{bad}'") == [
        (None, 0)
    ]


def test_rate_limits_wait_and_outages_stop_with_nothing_lost(tmp_path, scored):
    fake = FakeHubSpot(calls_per_10s=2, window=0.25)  # 8 calls a second; we pace to 100/10 s
    with Running(fake.app) as srv:
        model = write_model(tmp_path / "pql.yml", hubspot_yaml(srv.url))
        url = scored(model)
        pqls = _pqls(url)
        fake.fail_next = [503] * 1000  # down: the sync gives up, records stay unsent
        down = sync_crm(model, url, env=HS_ENV, give_up_after=0.5)[0]
        assert down.stopped and "nothing unsent is lost" in down.stopped
        assert not hub_contacts(fake)
        fake.fail_next = []
        report = sync_crm(model, url, env=HS_ENV)[0]
        assert report.stopped is None and report.failed == 0
        assert fake.limited > 0 and report.waited_seconds > 0  # 429s were waited out
        assert hub_contacts(fake) == set(pqls)
        assert sync_crm(model, url, env=HS_ENV)[0].objects[1].sent == 0
        rows = _sql(url, "select mode, error, sent from pql_crm_syncs order by started_at")
        assert rows[0][1] and rows[1][1] is None and rows[1][2] > 0


def hub_contacts(fake: FakeHubSpot) -> set[str]:
    return {p.get("pql_user_id") for p in fake.objects["contacts"].values()}


def test_unknown_property_and_wrong_token_are_clear(tmp_path, hub, scored):
    dest = HubSpotDestination(id="h", kind="hubspot", token_env="T", base_url=hub.url)
    records = [
        Record("contacts", f"u{i}", f"u{i}@x.org", {"email": f"u{i}@x.org", "nope": "1"}, "d")
        for i in range(40)
    ]
    calls = hub.calls
    with httpx.Client() as http:
        results = hs_client.HubSpot(dest, "pat-test", http).upsert("contacts", "email", records)
    assert hub.calls == calls + 1  # no halving: every record would fail the same way
    assert all(not r.ok and "nope" in r.error and "does not exist" in r.error for r in results)

    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url))
    url = scored(model)
    with pytest.raises(PqlkitError, match="HS_TOKEN"):
        sync_crm(model, url, env={"HS_TOKEN": "wrong"})
    with pytest.raises(PqlkitError, match="HS_TOKEN is not set"):
        sync_crm(model, url, env={})
    cli = subprocess.run(
        [*PQL, "sync", "crm", "-m", str(model), "--url", url],
        capture_output=True,
        text=True,
        env={**os.environ, "HS_TOKEN": "wrong"},
    )
    assert cli.returncode != 0 and "Traceback" not in cli.stderr
    assert "HS_TOKEN" in cli.stderr and "INVALID_AUTHENTICATION" in cli.stderr
    # the failed sync is on record with its error
    assert "INVALID_AUTHENTICATION" in _sql(url, "select error from pql_crm_syncs")[-1][0]


def test_a_sync_killed_midway_sends_each_change_once_more_at_most(tmp_path, hub, scored):
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url, "\n      sync: everyone"))
    url = scored(model)
    users = {r[0] for r in _sql(url, "select user_id from pql_user_scores")}
    hub.stall = 0.3
    env = {**os.environ, **HS_ENV}
    args = [*PQL, "sync", "crm", "-m", str(model), "--url", url, "--json"]
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while len(hub.upserts) < 4 and time.time() < deadline:  # 2 of companies, 2 of contacts
        time.sleep(0.01)
    time.sleep(0.1)  # inside the next call
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert 4 <= len(hub.upserts) < 8, "killed too late to test anything"
    hub.stall = 0.0
    done = subprocess.run(args, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert hub_contacts(hub) == users
    emails = [p["email"] for p in hub.objects["contacts"].values()]
    assert len(emails) == len(set(emails))  # upserts: a repeat made no duplicate
    sends: dict[str, int] = {}
    for obj, ids in hub.upserts:
        for i in ids:
            sends[f"{obj}:{i}"] = sends.get(f"{obj}:{i}", 0) + 1
    assert max(sends.values()) <= 2  # only the batch in flight went twice
    # the ledger agrees with the CRM: nothing left to send
    again = sync_crm(model, url, env=HS_ENV, dry_run=True)[0]
    assert [o.sent for o in again.objects] == [0, 0]
    sending, answered = _sql(
        url,
        "select count(*) filter (where action = 'sending'), "
        "count(*) filter (where action <> 'sending') from pql_crm_audit",
    )[0]
    received = sum(sends.values())
    unanswered, lost = sending - answered, received - answered
    # every answer on record is a call the CRM received; what it received unanswered is at most
    # two batches (batches are pipelined: one whose answers were being written when killed, and
    # the next, already in flight), each marked `sending` before it went
    assert 0 <= lost <= 200 and lost <= unanswered
    assert unanswered - lost <= 100


def test_transitions_routed_to_a_crm_are_delivered_by_syncing_their_records(
    tmp_path, hub, small_world, monkeypatch
):
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url), routes="[{to: [hubspot]}]")
    backend = connect(str(tmp_path / "d.duckdb"))
    load(backend, small_world)
    engine = Session(backend, load_model(model)).engine
    engine.run(DEMO_END - timedelta(days=1))
    url = backend.url
    pqls = _pqls_via(backend)
    bad = sorted(pqls)[0]
    backend.run_sql(f"update users set email = 'broken' where user_id = '{bad}'")
    backend.close()
    monkeypatch.setenv("HS_TOKEN", HS_ENV["HS_TOKEN"])
    report = deliver(model, url)
    assert report.delivered == len(pqls) - 1 and report.retrying == 1
    assert hub_contacts(hub) == set(pqls) - {bad}
    status = _sql(
        url,
        "select o.entity_id, d.status, d.last_error from pql_deliveries d join pql_outbox o "
        "on o.id = d.transition_id",
    )
    failed = [r for r in status if r[1] == "failed"]
    assert [r[0] for r in failed] == [bad] and "INVALID_EMAIL" in failed[0][2]
    assert (
        _sql(url, "select count(*) from pql_crm_ledger where error is null")[0][0] == len(pqls) - 1
    )


def _pqls_via(backend) -> set[str]:
    return {r[0] for r in backend.run_sql("select user_id from pql_user_scores where is_pql")}


# --- Salesforce ---------------------------------------------------------------------------------


def test_salesforce_upserts_leads_and_accounts_by_external_id(tmp_path, sfdc, scored):
    sfdc.session_calls = 2  # sessions expire every other call: a new token each time
    model = write_model(tmp_path / "pql.yml", salesforce_yaml(sfdc.base_url))
    url = scored(model)
    pqls = _pqls(url)
    bad = sorted(pqls)[1]
    _sql(url, f"update users set email = 'nope@' where user_id = '{bad}'")
    report = sync_crm(model, url, env=SF_ENV)[0]
    parts = {o.object: o for o in report.objects}
    assert parts["Lead"].failed == 1 and parts["Lead"].created == len(pqls) - 1
    assert "INVALID_EMAIL_ADDRESS" in parts["Lead"].errors[0]["error"]
    assert "field Email" in parts["Lead"].errors[0]["error"]
    assert sfdc.tokens_issued >= 2  # the session expired midway and a new token went on
    lead = sfdc.records["Lead"][sorted(pqls)[0]]
    assert lead["PQL__c"] is True and lead["PQL_Score__c"] == pqls[sorted(pqls)[0]]["score"]
    assert lead["LastName"] and lead["Company"]
    assert all(len(ids) <= 200 for _, ids in sfdc.upserts)
    assert sync_crm(model, url, env=SF_ENV)[0].objects[1].sent == 1  # only the refused one

    # the org's daily allowance: stop before the reserve, go on at the next sync
    _bump(url, "score = score + 1", "is_pql")
    sfdc.daily_limit = sfdc.used + 1001  # one call, then 1,000 left: the reserve
    stopped = sync_crm(model, url, env=SF_ENV)[0]
    assert stopped.stopped and "daily_reserve" in stopped.stopped
    assert stopped.objects[1].sent == 0
    sfdc.daily_limit = 10**6
    rest = sync_crm(model, url, env=SF_ENV)[0]
    assert rest.stopped is None and rest.objects[1].sent == len(pqls)
    assert all(
        sfdc.records["Lead"][u]["PQL_Score__c"] == pqls[u]["score"] + 1 for u in pqls if u != bad
    )


def test_records_deleted_or_duplicated_in_the_crm(tmp_path, sfdc, scored):
    model = write_model(tmp_path / "pql.yml", salesforce_yaml(sfdc.base_url))
    url = scored(model)
    sync_crm(model, url, env=SF_ENV)
    gone, twice, fine = sorted(_pqls(url))[:3]
    del sfdc.records["Lead"][gone]  # someone deleted the lead in Salesforce
    sfdc.duplicated.add(twice)  # and someone else copied one
    _bump(url, "score = score + 1", f"user_id in ('{gone}', '{twice}', '{fine}')")
    whole = sync_crm(model, url, env=SF_ENV)[0]
    report = whole.objects[1]
    assert report.sent == 3 and report.failed == 1
    assert "DUPLICATE_EXTERNAL_ID" in report.errors[0]["error"]
    assert "Pqlkit_Id__c" in report.errors[0]["error"] and report.errors[0]["key"] == twice
    actions = dict(
        _sql(
            url,
            "select key, action from pql_crm_audit where action <> 'sending' "
            f"and sync_id = '{whole.sync_id}'",
        )
    )
    assert actions == {gone: "recreated", twice: "failed", fine: "updated"}
    assert gone in sfdc.records["Lead"]


def test_salesforce_missing_field_wrong_secret_and_jwt(tmp_path, sfdc, scored):
    model = write_model(tmp_path / "pql.yml", salesforce_yaml(sfdc.base_url))
    url = scored(model)
    sfdc.custom["Lead"].remove("PQL_Tier__c")
    with pytest.raises(PqlkitError, match="Lead has no field PQL_Tier__c"):
        sync_crm(model, url, env=SF_ENV)
    assert not sfdc.records["Lead"]
    with pytest.raises(PqlkitError, match="invalid client credentials"):
        sync_crm(model, url, env={**SF_ENV, "SF_SECRET": "wrong"})
    sfdc.custom["Lead"].append("PQL_Tier__c")

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    sfdc.public_key, sfdc.username = key.public_key(), "integration@example.org"
    jwt_model = write_model(
        tmp_path / "jwt.yml",
        f"""
    - id: sf
      kind: salesforce
      login_url: {sfdc.base_url}
      auth: jwt
      client_id_env: SF_ID
      private_key_env: SF_KEY
      username: integration@example.org""",
    )
    report = sync_crm(jwt_model, url, env={"SF_ID": "cid", "SF_KEY": pem})[0]
    assert report.failed == 0 and len(sfdc.records["Lead"]) == len(_pqls(url))
    with pytest.raises(PqlkitError, match="refused the jwt sign-in"):
        sfdc.username = "someone-else"
        sync_crm(jwt_model, url, env={"SF_ID": "cid", "SF_KEY": pem}, full=True)


# --- read-back -------------------------------------------------------------------------------


def test_hubspot_deals_come_back_as_outcomes_incrementally(tmp_path, hub, scored):
    first_model = write_model(tmp_path / "first.yml", hubspot_yaml(hub.url))
    url = scored(first_model)
    sync_crm(first_model, url, env=HS_ENV)
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url), outcomes=True)
    pqls = _pqls(url)
    by_user = {p["pql_user_id"]: hid for hid, p in hub.objects["contacts"].items()}
    by_account = {p["pql_account_id"]: hid for hid, p in hub.objects["companies"].items()}
    won_user, lost_user = sorted(pqls)[:2]
    # a contact pqlkit never wrote, known only by e-mail
    other = _sql(url, "select user_id, email, account_id from users where user_id not in "
                      "(select user_id from pql_user_scores where is_pql) order by user_id limit 1")[0]  # fmt: skip
    stranger = hub.add_contact({"email": other[1]})
    account = sorted(by_account)[0]
    hub.add_deal(
        {"dealstage": "closedwon", "hs_is_closed": "true", "hs_is_closed_won": "true",
         "amount": "12000", "createdate": "2026-09-02T10:00:00Z", "closedate": "2026-09-20T10:00:00Z"},
        contacts=[by_user[won_user]], companies=[by_account[account]],
    )  # fmt: skip
    hub.add_deal(
        {"dealstage": "closedlost", "hs_is_closed": "true", "hs_is_closed_won": "false",
         "createdate": "2026-09-03T10:00:00Z", "closedate": "2026-09-21T10:00:00Z"},
        contacts=[by_user[lost_user]],
    )  # fmt: skip
    hub.add_deal(
        {"dealstage": "appointmentscheduled", "hs_is_closed": "false", "hs_is_closed_won": "false",
         "createdate": "1790000000000"},
        contacts=[stranger],
    )  # fmt: skip
    for _ in range(420):  # more than two pages of 200
        hub.add_deal(
            {
                "dealstage": "qualifiedtobuy",
                "hs_is_closed": "false",
                "createdate": "2026-08-01T00:00:00Z",
            }
        )
    first = sync_outcomes(model, url, env=HS_ENV, source="hubspot")[0]
    assert first.read == 423 and first.mapped_users == 3 and len(first.unmapped) == 100
    rows = {
        r[0]: r
        for r in _sql(
            url,
            "select user_id, account_id, stage, amount, closed_at, kind from pql_crm_outcomes where user_id is not null",
        )
    }
    assert rows[won_user][1:4] == (account, "won", 12000.0) and rows[won_user][5] == "opportunity"
    assert rows[lost_user][2] == "lost" and rows[lost_user][1] is not None  # the user's account
    assert rows[other[0]][1:3] == (other[2], "open") and rows[other[0]][4] is None

    time.sleep(0.01)
    hub.add_deal({"dealstage": "closedwon", "hs_is_closed": "true", "hs_is_closed_won": "true",
                  "createdate": "2026-09-05T00:00:00Z", "closedate": "2026-09-25T00:00:00Z"},
                 companies=[by_account[account]])  # fmt: skip
    second = sync_outcomes(model, url, env=HS_ENV)[0]
    assert second.since is not None and second.read == 2  # what changed, and the last one seen
    assert _sql(url, "select count(*) from pql_crm_outcomes")[0][0] == 424

    # learning reads them: the model's outcomes source is the table
    engine = Session(connect(url), load_model(model)).engine
    try:
        o = engine.bound.outcomes
        w = o.filter(o.stage == "won")
        won = engine.backend.values(w.aggregate(n=w.count()))[0][0]
    finally:
        engine.close()
    assert won == 2


def test_salesforce_opportunities_come_back_page_by_page(tmp_path, sfdc, scored):
    sfdc.page_size = 2
    model = write_model(tmp_path / "pql.yml", salesforce_yaml(sfdc.base_url))
    url = scored(model)
    sync_crm(model, url, env=SF_ENV)
    pqls = _pqls(url)
    user = sorted(pqls)[0]
    account_row = _sql(url, "select account_id, domain from accounts order by account_id limit 1")[
        0
    ]
    opps = [
        {"Id": "006W", "StageName": "Closed Won", "IsClosed": True, "IsWon": True, "Amount": 900.0,
         "CreatedDate": "2026-09-01T10:00:00.000+0000", "CloseDate": "2026-09-20",
         "SystemModstamp": "2026-09-20T10:00:00.000+0000",
         "Account": {"Website": "https://www.elsewhere.io", "Pqlkit_Account_Id__c": account_row[0]},
         "OpportunityContactRoles": {"records": [
             {"IsPrimary": False, "Contact": {"Email": "someone@else.io"}},
             {"IsPrimary": True, "Contact": {"Email": pqls[user]["email"].upper()}}]}},
        {"Id": "006D", "StageName": "Negotiation", "IsClosed": False, "IsWon": False, "Amount": None,
         "CreatedDate": "2026-09-05T10:00:00.000+0000", "CloseDate": "2026-12-20",
         "SystemModstamp": "2026-09-21T10:00:00.000+0000",
         "Account": {"Website": f"http://{account_row[1]}/"}, "OpportunityContactRoles": None},
        *[{"Id": f"006X{i}", "StageName": "Prospecting", "IsClosed": False, "IsWon": False,
           "CreatedDate": "2026-09-05T10:00:00.000+0000", "SystemModstamp": "2026-09-22T10:00:00.000+0000",
           "Account": None, "OpportunityContactRoles": None} for i in range(5)],
    ]  # fmt: skip
    sfdc.opportunities += opps
    report = sync_outcomes(model, url, env=SF_ENV, source="salesforce")[0]
    assert report.read == 7 and report.mapped_users == 1 and report.mapped_accounts == 2
    rows = {
        r[0]: r[1:]
        for r in _sql(
            url,
            "select crm_id, user_id, account_id, stage, closed_at, crm_stage from pql_crm_outcomes",
        )
    }
    assert rows["006W"][:3] == (user, account_row[0], "won")
    assert rows["006D"][1:4] == (account_row[0], "open", None)  # by the account's domain
    assert rows["006D"][4] == "Negotiation"
    assert sync_outcomes(model, url, env=SF_ENV)[0].read == 5  # from the cursor on (inclusive)
    with pytest.raises(PqlkitError, match="no hubspot CRM destination"):
        sync_outcomes(model, url, env=SF_ENV, source="hubspot")


# --- the model -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("\n      contacts: {pql_score: score}", "must map the property `email`"),
        ("\n      company_id_property: nothing", "company_id_property 'nothing'"),
        ("\n      base_url: ftp://x", "not an http(s) URL"),
        (
            "\n      contacts: {email: email, s: no_such_field}",
            "contacts.s: Input should be 'user_id'",
        ),
        ("\n      calls_per_10s: 0", "calls_per_10s"),
    ],
)
def test_bad_hubspot_destinations_are_located_model_errors(tmp_path, extra, message):
    text = hubspot_yaml("http://127.0.0.1:1").replace("      base_url: http://127.0.0.1:1", "")
    path = write_model(tmp_path / "pql.yml", text + extra)
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert message in str(err.value) and "handoff.destinations[0]" in str(err.value)
    assert re.search(r"pql\.yml:\d+: ", str(err.value))  # located: file and line


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("\n      auth: jwt", "auth jwt needs private_key_env and username"),
        ("\n      person_fields: {Pqlkit_Id__c: user_id, LastName: last_name}", "must map Company"),
        ("\n      person: Contact\n      person_external_id: Email", "must map person_external_id"),
        ("\n      api_version: v62", "api_version"),
    ],
)
def test_bad_salesforce_destinations_are_located_model_errors(tmp_path, extra, message):
    path = write_model(tmp_path / "pql.yml", salesforce_yaml("http://127.0.0.1:1", extra))
    with pytest.raises(ModelError) as err:
        load_model(path)
    assert message in str(err.value)


def test_dry_run_json_from_the_command_line(tmp_path, hub, scored):
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url))
    url = scored(model)
    out = subprocess.run(
        [*PQL, "sync", "crm", "-m", str(model), "--url", url, "--dry-run", "--json"],
        capture_output=True,
        text=True,
        env={**os.environ, **HS_ENV},
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)[0]
    assert report["mode"] == "dry-run" and hub.calls == 0
    contacts = report["objects"][1]
    assert contacts["sent"] == len(contacts["diff"]) == len(_pqls(url))
    assert all(d["action"] == "create" for d in contacts["diff"])
    assert not _sql(
        url, "select * from information_schema.tables where table_name = 'pql_crm_ledger'"
    )


def test_live_serve_writes_a_new_pql_to_the_crm_within_seconds(tmp_path, hub):
    from .serve import Serve
    from .test_live_serve import MODEL, _send, _wait

    model = tmp_path / "pql.yml"
    text = MODEL.replace(
        '    - {id: sales_hook, kind: webhook, url: "RECEIVER", secret_env: PQL_TEST_HOOK_SECRET, timeout: 8s}',
        f'    - {{id: hubspot, kind: hubspot, token_env: HS_TOKEN, base_url: "{hub.url}", companies: null}}',
    ).replace("to: [sales_hook]", "to: [hubspot]")
    model.write_text(text)
    args = ("--model", str(model), "--product-key", "pk_test")
    server = Serve(tmp_path, db="live.duckdb", args=args, env=HS_ENV)
    server.start()
    try:
        _send(server.url, "u1", "ann@acme.io", ["signed_up"])
        _send(server.url, "u1", "ann@acme.io", ["pricing_viewed"])  # the decisive event
        contact = _wait(
            lambda: next(iter(hub.objects["contacts"].values()), None), 20, "the CRM write"
        )
        assert contact["email"] == "ann@acme.io" and contact["pql_user_id"] == "u1"
        assert contact["pql_is_pql"] == "true" and contact["pql_score"] == "70"
    finally:
        server.stop()
    with duckdb.connect(server.db, read_only=True) as con:
        assert con.execute("SELECT status FROM pql_deliveries").fetchall() == [("delivered",)]
        assert con.execute(
            "SELECT action FROM pql_crm_audit ORDER BY sent_at, action <> 'sending'"
        ).fetchall() == [
            ("sending",),
            ("created",),
        ]


def test_hubspot_companies_by_domain_and_everyone(tmp_path, hub, scored):
    extra = """
      sync: everyone
      company_id_property: pql_domain
      contacts: {email: email, pql_score: score}
      companies: {pql_domain: domain, pql_is_pqa: is_pqa}"""
    model = write_model(tmp_path / "pql.yml", hubspot_yaml(hub.url, extra))
    url = scored(model)
    users = _sql(
        url,
        "select count(distinct lower(u.email)) from pql_user_scores s join users u using (user_id)",
    )[0][0]
    domains = _sql(
        url, "select count(distinct lower(domain)) from pql_account_scores where domain is not null"
    )[0][0]
    report = sync_crm(model, url, env=HS_ENV)[0]
    assert report.failed == 0
    assert len(hub.objects["contacts"]) == users and len(hub.objects["companies"]) == domains
    assert set(next(iter(hub.objects["contacts"].values()))) == {
        "email",
        "pql_score",
        "hs_lastmodifieddate",
    }
    assert {p["pql_is_pqa"] for p in hub.objects["companies"].values()} == {"true", "false"}
    assert hub.properties["companies"]["pql_domain"]["hasUniqueValue"] is True

    # HubSpot's own `domain` is not unique: every batch is refused whole, said once per record,
    # without halving batches that cannot succeed
    plain = write_model(
        tmp_path / "plain.yml", hubspot_yaml(hub.url, extra.replace("pql_domain", "domain"))
    )
    calls = hub.calls
    refused = sync_crm(plain, url, env=HS_ENV)[0].objects[0]
    assert refused.failed == domains and "not a unique property" in refused.errors[0]["error"]
    assert hub.calls - calls <= 2 + -(-domains // 100)


def test_salesforce_contacts_instead_of_leads(tmp_path, sfdc, scored):
    from pqlkit.model.crm import SALESFORCE_PERSON

    sfdc.add_fields("Contact", [f for f in SALESFORCE_PERSON if f.endswith("__c")], "Pqlkit_Id__c")
    model = write_model(
        tmp_path / "pql.yml",
        salesforce_yaml(sfdc.base_url, "\n      person: Contact\n      account_fields: null"),
    )
    url = scored(model)
    report = sync_crm(model, url, env=SF_ENV)[0]
    assert [o.object for o in report.objects] == ["Contact"] and report.failed == 0
    assert set(sfdc.records["Contact"]) == set(_pqls(url)) and not sfdc.records["Lead"]
    assert "Company" not in next(iter(sfdc.records["Contact"].values()))
