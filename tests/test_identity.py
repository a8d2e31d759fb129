"""Identity resolution: identify merges traits (latest wins, history kept), group links users to
accounts, alias and anonymous ids bring what a person did before signing up into their score,
as of the date the link was known."""

from __future__ import annotations

import json
from datetime import datetime

import pyarrow as pa

from pqlkit.backends import connect
from pqlkit.collect import identity
from pqlkit.collect.importer import import_files
from pqlkit.engine import Engine
from pqlkit.model.load import load_model

MODEL = """\
name: collected
sources:
  events: {table: events}
  users: {table: pql_users}
  accounts: {table: pql_accounts}
icp:
  profiles:
    - {id: software, when: {field: account.industry, equals: software}}
fit_signals:
  - {id: big, label: "Big company", when: {field: account.employees, gte: 200}, points: 10}
usage_signals:
  - {id: pricing, kind: event_count, label: "Viewed pricing {value} times", events: [Pricing Viewed],
     points: 5, per_unit: true}
  - {id: projects, kind: event_count, label: "Created {value} projects", events: [Project Created],
     points: 20, per_unit: true}
activation: {signal: projects}
"""


def _messages() -> list[dict]:
    def m(i, **kw):
        return {"messageId": f"m{i}", **kw}

    return [
        # before signing up: an anonymous visitor looks at pricing three times
        *[
            m(
                i,
                type="track",
                anonymousId="anon-1",
                event="Pricing Viewed",
                timestamp=f"2026-09-0{i}T10:00:00Z",
            )
            for i in (1, 2, 3)
        ],
        # an old user id from a previous system, aliased later
        m(
            4,
            type="track",
            userId="legacy-9",
            event="Project Created",
            timestamp="2026-09-02T09:00:00Z",
        ),
        # signs up: identify ties the anonymous id to the user, with traits and a company
        m(
            5,
            type="identify",
            userId="u1",
            anonymousId="anon-1",
            timestamp="2026-09-05T10:00:00Z",
            traits={
                "email": "ann@acme.io",
                "createdAt": "2026-09-05T10:00:00Z",
                "role": "admin",
                "firstName": "Ann",
                "company": {"id": "acc-1", "name": "Acme", "employees": 150},
            },
        ),
        m(6, type="track", userId="u1", event="Project Created", timestamp="2026-09-06T10:00:00Z"),
        # group: account traits, latest wins (employees 150 -> 250)
        m(
            7,
            type="group",
            userId="u1",
            groupId="acc-1",
            timestamp="2026-09-07T10:00:00Z",
            traits={"employees": 250, "industry": "software", "website": "https://www.acme.io"},
        ),
        m(
            8,
            type="identify",
            userId="u1",
            timestamp="2026-09-08T10:00:00Z",
            traits={"role": "owner"},
        ),
        m(9, type="alias", userId="u1", previousId="legacy-9", timestamp="2026-09-09T10:00:00Z"),
        # somebody else, never linked
        m(
            10,
            type="track",
            anonymousId="anon-2",
            event="Pricing Viewed",
            timestamp="2026-09-03T10:00:00Z",
        ),
        m(
            11,
            type="identify",
            userId="u2",
            timestamp="2026-09-04T10:00:00Z",
            traits={"email": "bo@gmail.com", "createdAt": "2026-09-04T00:00:00Z"},
        ),
    ]


def _collected(backend, tmp_path) -> Engine:
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(json.dumps(x) for x in _messages()) + "\n")
    report = import_files(backend, [path], fmt="segment")
    assert report.skipped == 0 and report.files[0].identity_messages == 5
    model = tmp_path / "pql.yml"
    model.write_text(MODEL)
    return Engine(load_model(model), backend)


def test_identify_and_group_merge_traits_latest_wins_history_kept(new_backend, tmp_path):
    backend = new_backend()
    _collected(backend, tmp_path)
    [u1] = backend.rows(backend.table("pql_users").filter(lambda t: t.user_id == "u1"))
    assert (u1["email"], u1["role"], u1["first_name"], u1["account_id"]) == (
        "ann@acme.io",
        "owner",
        "Ann",
        "acc-1",
    )
    assert u1["created_at"] == datetime(2026, 9, 5, 10)
    assert u1["first_seen"] == datetime(2026, 9, 2, 9)  # the aliased old id was seen first
    [acc] = backend.rows(backend.table("pql_accounts"))
    assert (acc["account_id"], acc["name"], acc["employees"], acc["industry"], acc["domain"]) == (
        "acc-1",
        "Acme",
        250.0,
        "software",
        "acme.io",
    )
    history = backend.run_sql(
        "SELECT value FROM pql_traits WHERE entity = 'user' AND key = 'role' ORDER BY timestamp"
    )
    assert [r[0] for r in history] == ["admin", "owner"]
    # the old id is merged into u1, not a user of its own
    assert sorted(r["user_id"] for r in backend.rows(backend.table("pql_users"))) == ["u1", "u2"]


def test_pre_signup_events_count_toward_the_score_once_linked(new_backend, tmp_path):
    backend = new_backend()
    engine = _collected(backend, tmp_path)
    after = {r["user_id"]: r for r in engine.python_scores("2026-09-10")}
    # 3 anonymous pricing views (+15) and projects under the old id and the new one (2 x 20)
    assert after["u1"]["score"] == 10 + 15 + 40
    assert "Viewed pricing 3 times (+15)" in after["u1"]["reasons"]
    # the database path agrees with the Python path
    assert {r["user_id"]: r["score"] for r in backend.rows(engine.scores("2026-09-10"))} == {
        u: r["score"] for u, r in after.items()
    }
    # as of 2026-09-06 the anonymous id was linked (09-05) but the alias (09-09) was not yet
    before_alias = {r["user_id"]: r for r in backend.rows(engine.scores("2026-09-07"))}
    assert before_alias["u1"]["score"] == 10 + 15 + 20
    # an id never linked counts for nobody
    assert after["u2"]["score"] == 0


def test_links_are_point_in_time(new_backend, tmp_path):
    backend = new_backend()
    _collected(backend, tmp_path)
    rows = {r["id"]: r for r in backend.rows(backend.table("pql_identities"))}
    assert rows["anon-1"]["user_id"] == "u1" and rows["anon-1"]["linked_at"] == datetime(
        2026, 9, 5, 10
    )
    assert rows["legacy-9"]["user_id"] == "u1" and rows["legacy-9"]["linked_at"] == datetime(
        2026, 9, 9, 10
    )
    assert "anon-2" not in rows
    assert identity.ids_for(backend, "u1") == ["anon-1", "legacy-9", "u1"]


def test_chains_are_followed_and_the_first_link_wins():
    backend = connect(":memory:")
    backend.write_table(
        "links",
        pa.table(
            {
                "id": ["a", "old", "a", "x"],
                "user_id": ["old", "new", "other", "x"],
                "linked_at": [datetime(2026, 1, d) for d in (1, 3, 2, 1)],
            }
        ),
    )
    out = backend.rows(identity.identities_expr(backend.table("links")))
    assert sorted((r["id"], r["user_id"], r["linked_at"].day) for r in out) == [
        ("a", "new", 3),
        ("old", "new", 3),
    ]


def test_trait_names_become_snake_case_columns():
    assert [
        identity.column_name(k) for k in ("createdAt", "firstName", "plan", "Company Size", "x-y")
    ] == ["created_at", "first_name", "plan", "company_size", "x_y"]
