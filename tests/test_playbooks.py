"""Playbooks: a next step for each segment x motion (x ICP profile), checked against the model,
shipped for everything the starter model can produce, and carried by the hand-off."""

from __future__ import annotations

import json

import pytest
from markupsafe import escape

from pqlkit.backends import connect
from pqlkit.demo.load import starter_text
from pqlkit.destinations.slack import slack_message
from pqlkit.engine import Engine
from pqlkit.errors import ModelValidationError
from pqlkit.model.load import parse_model
from pqlkit.model.playbooks import find_play, next_step

from .conftest import DEMO_END

MINIMAL = """\
icp:
  profiles:
    - {id: everyone, when: {field: account.employees, gte: 0}}
    - {id: big, when: {field: account.employees, gte: 1000}}
usage_signals:
  - {id: used, kind: event_count, events: [feature_used], points: 10}
activation: {signal: used}
routing:
  rules: [{motion: sales_assist, when: {field: decision.is_pql, equals: true}}]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ModelValidationError) as info:
        parse_model(text, "pql.yml")
    return [str(i) for i in info.value.issues]


def test_unknown_names_are_refused_at_their_line_with_the_valid_ones_listed():
    found = problems(
        MINIMAL
        + """\
playbooks:
  - {id: a, segment: maxed_out_free, motion: sales_assist, action: Call}
  - {id: b, segment: free_user, motion: sales_asist, action: Call}
  - {id: c, segment: free_user, motion: self_serve, profile: bigg, action: Call}
"""
    )
    assert found == [
        "pql.yml:11: playbooks[0].segment: unknown segment 'maxed_out_free' "
        "(segments in this model: converted_without_assistance, free_user)",
        "pql.yml:12: playbooks[1].motion: unknown motion 'sales_asist' "
        "(did you mean 'sales_assist'? motions in this model: self_serve, sales_assist)",
        "pql.yml:13: playbooks[2].profile: unknown profile 'bigg' "
        "(did you mean 'big'? profiles in this model: everyone, big)",
    ]


def test_a_play_is_strict_about_ids_duplicates_lengths_and_links():
    found = problems(
        MINIMAL
        + """\
playbooks:
  - {id: a, segment: free_user, motion: self_serve, action: Call}
  - {id: a, segment: free_user, motion: self_serve, action: ""}
  - id: Bad-Id
    segment: free_user
    motion: sales_assist
    action: Call
    links: [{label: deck, url: "javascript:alert(1)"}]
    colour: red
"""
    )
    joined = "\n".join(found)
    assert "playbooks[1]: a second play for free_user x self_serve" in joined
    assert "playbooks[0] is already for it" in joined
    assert "playbooks[1].id: duplicate id 'a'" in joined
    assert "playbooks[1].action: String should have at least 1 character" in joined
    assert "playbooks[2].id:" in joined
    assert "playbooks[2].links[0].url: 'javascript:alert(1)' is not an http(s) URL" in joined
    assert "playbooks[2].colour" in joined


def test_a_play_naming_the_profile_wins_over_one_without():
    model = parse_model(
        MINIMAL
        + """\
playbooks:
  - {id: general, segment: free_user, motion: sales_assist, action: Write}
  - {id: big_ones, segment: free_user, motion: sales_assist, profile: big, action: Call,
     talking_points: [They are big], links: [{label: Deck, url: "https://x.example/deck"}]}
"""
    ).model
    lead = {"segment": "free_user", "motion": "sales_assist"}
    assert find_play(model.playbooks, {**lead, "icp_profile": "everyone"}).id == "general"
    assert next_step(model.playbooks, {**lead, "icp_profile": "big"}) == {
        "id": "big_ones",
        "action": "Call",
        "talking_points": ["They are big"],
        "links": [{"label": "Deck", "url": "https://x.example/deck"}],
    }
    assert next_step(model.playbooks, {**lead, "motion": "self_serve"}) is None


def test_the_starter_model_has_a_play_for_every_segment_and_motion_of_the_demo(small_world):
    """Scored on the demo's world: paying users go to expansion (never sales-assist), and every
    segment x motion a user lands in has a next step."""
    from pqlkit.demo.load import load

    backend = connect("duckdb://")
    load(backend, small_world)
    engine = Engine(parse_model(starter_text(), "pql.yml"), backend)
    rows = backend.rows(engine.scores(DEMO_END))
    pairs = {(r["segment"], r["motion"]) for r in rows}
    paying = [r for r in rows if r["segment"] == "converted_without_assistance"]
    assert paying, "the demo world has users who pay"
    assert {r["motion"] for r in paying} == {"expansion"}
    assert ("asked_for_sales", "sales_assist") in pairs  # the other motions are still produced
    plays = engine.model.playbooks
    assert [p for p in pairs if find_play(plays, {"segment": p[0], "motion": p[1]}) is None] == []


HANDOFF = """
handoff:
  destinations:
    - {id: hook, kind: webhook, url: "http://127.0.0.1:9/", secret_env: PQL_TEST_HOOK_SECRET}
  routes:
    - {to: [hook]}
"""


def test_transitions_carry_the_next_step_and_name_people(small_world, tmp_path):
    """The webhook payload: `user.next_step` is the lead's play, the user is named by e-mail
    and role beside the id, and a new PQA's champion likewise."""
    from pqlkit.demo.load import load
    from pqlkit.handoff.transitions import OUTBOX
    from pqlkit.usecases.session import Session

    backend = connect("duckdb://")
    load(backend, small_world)
    loaded = parse_model(starter_text() + HANDOFF, "pql.yml")
    Session(backend, loaded).engine.run(DEMO_END)
    people = {r["user_id"]: r for r in backend.rows(backend.table("users"))}
    payloads = [json.loads(p) for (p,) in backend.values(backend.table(OUTBOX).select("payload"))]
    users = [p["user"] for p in payloads if "user" in p]
    accounts = [p["account"] for p in payloads if "account" in p]
    assert users and accounts
    for user in users:
        assert user["next_step"] == next_step(loaded.model.playbooks, user)
        assert user["next_step"]["action"]  # the starter model has a play for each
        assert (user["email"], user["role"]) == (
            people[user["id"]]["email"],
            people[user["id"]]["role"],
        )
    for account in accounts:
        champion = people[account["champion_user_id"]]
        assert account["champion"] == {
            "id": account["champion_user_id"],
            "email": champion["email"],
            "role": champion["role"],
        }
        assert account["next_step"] == next_step(loaded.model.playbooks, account)


def test_slack_shows_the_person_and_the_next_step_escaped():
    payload = {
        "type": "pql.became_pql",
        "user": {
            "id": "u_1",
            "email": "ana@acme.com",
            "role": "Head of <Data>",
            "account_id": "acme",
            "score": 82,
            "tier": "A",
            "segment": "maxed_out_free",
            "motion": "sales_assist",
            "next_step": {
                "id": "upgrade_at_limit",
                "action": "Offer the team plan & a trial",
                "talking_points": ["They hit <!channel> the quota"],
                "links": [{"label": "Team plan", "url": "https://x.example/p?a=1&b=|2"}],
            },
        },
    }
    m = slack_message(payload, "https://app.example.com/leads/{user_id}")
    assert m["blocks"][0]["text"]["text"] == "Became pql: ana@acme.com (Head of <Data>)"
    assert m["text"].startswith("ana@acme.com (Head of &lt;Data&gt;) (acme) became pql")
    step = next(b["text"]["text"] for b in m["blocks"] if "Next step" in str(b))
    assert step == (
        "*Next step*\nOffer the team plan &amp; a trial\n• They hit &lt;!channel&gt; the quota\n"
        "<https://x.example/p?a=1&amp;b=%7C2|Team plan>"
    )
    assert "leads/u_1|Open the lead>" in json.dumps(m)  # the id stays in the link


def _render(name: str, **context) -> str:
    from types import SimpleNamespace

    from pqlkit.templates import environment
    from pqlkit.web.http import account_url, lead_url, num, wbr, when

    me = SimpleNamespace(name="ana", role="rep", is_admin=True)
    return environment().get_template(name).render(
        request=None, me=me, csrf="c", flash=None, tracking_alerts=[], lead_url=lead_url,
        account_url=account_url, when=when, num=num, wbr=wbr, **context,
    )  # fmt: skip


def test_pages_show_the_next_step_and_people_as_people(small_world):
    """The inbox row says the next step in a line; the lead page has the whole play; teammates,
    champions and a delivery's subject are named by e-mail and role, their ids kept in links."""
    from pqlkit.demo.load import load
    from pqlkit.handoff.transitions import DELIVERIES
    from pqlkit.usecases import handoff, leads
    from pqlkit.usecases import inbox as desk
    from pqlkit.usecases.session import Session

    backend = connect("duckdb://")
    load(backend, small_world)
    session = Session(backend, parse_model(starter_text() + HANDOFF, "pql.yml"))
    session.engine.run(DEMO_END)
    people = {r["user_id"]: r for r in backend.rows(backend.table("users"))}
    plays = session.model.playbooks

    page = desk.inbox(session, desk.Filters())
    row = page.rows[0]
    step = next_step(plays, row)
    assert row["next_step"] == step and row["person"]["role"] == people[row["user_id"]]["role"]
    html = _render("inbox.html", page=page, args={}, page_url=str, owner_choice="")
    assert f"Next: {escape(step['action'])}" in html and people[row["user_id"]]["role"] in html

    lead = leads.lead(session, row["user_id"])
    html = _render("lead.html", lead=lead, chart=None, threshold=60, take=False, owners=[])
    assert 'id="next-step"' in html and escape(step["talking_points"][0]) in html
    assert all(link["url"] in html for link in step["links"])
    assert lead.teammates, "the top lead's account has other users"
    mate = lead.teammates[0]
    assert mate["person"] == {
        "email": people[mate["user_id"]]["email"],
        "role": people[mate["user_id"]]["role"],
    }
    assert f'{mate["user_id"]}">{people[mate["user_id"]]["email"]}' in html

    accounts = desk.inbox(session, desk.Filters(kind="accounts"))
    pqa = accounts.rows[0]
    champion = people[pqa["champion_user_id"]]
    assert pqa["champion"] == {"email": champion["email"], "role": champion["role"]}
    html = _render("inbox.html", page=accounts, args={}, page_url=str, owner_choice="")
    assert f'champion <a href="/leads/{pqa["champion_user_id"]}">{champion["email"]}' in html
    account = leads.account(session, pqa["account_id"])
    html = _render(
        "account.html", account=account, take=False, owners=[], page=1, pages=1, page_url=str
    )
    assert champion["email"] in html and 'id="next-step"' in html
    assert all(u["person"]["email"] == people[u["user_id"]]["email"] for u in account.users)

    rows = handoff.deliveries(session)
    assert len(rows) == backend.count(DELIVERIES) > 0
    user_row = next(r for r in rows if r["entity"] == "user")
    assert user_row["person"]["email"] == people[user_row["entity_id"]]["email"]
    html = _render(
        "deliveries.html", rows=rows, statuses=["pending"], all_statuses=["pending"], counts={},
        total=len(rows), page=1, pages=1, page_url=str, confirm=False, to_retry=0,
    )  # fmt: skip
    assert people[user_row["entity_id"]]["email"] in html


def test_a_name_that_is_not_text_is_a_located_error_not_a_crash():
    """Found by the model fuzzer: a mapping where a segment name goes crashed the duplicate
    check (unhashable dict) instead of naming the field."""
    found = problems(
        MINIMAL
        + """\
playbooks:
  - {id: a, segment: {x: 1}, motion: self_serve, action: Call}
  - {id: b, segment: free_user, motion: [self_serve], action: Call}
"""
    )
    assert found and all(f.startswith("pql.yml:1") for f in found)
    assert any("playbooks[0].segment" in f for f in found)
    assert any("playbooks[1].motion" in f for f in found)


def test_a_signal_kind_that_is_not_text_beside_playbooks_is_a_located_error():
    """Found by the model fuzzer in CI: with no `segments:`, the plays are checked against the
    segments the signal kinds make, and a kind that was a mapping crashed that (unhashable)."""
    text = MINIMAL.replace("kind: event_count", "kind: {event_count: 1}")
    found = problems(
        text + "playbooks:\n  - {id: a, segment: free_user, motion: self_serve, action: Call}\n"
    )
    assert found and all(f.startswith("pql.yml:") for f in found)
    assert any("usage_signals[0]" in f for f in found)
