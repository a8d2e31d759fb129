"""The in-app prompt decision: first matching rule, a cooldown after each prompt shown, a cap
within a window, the same answer for unknown and ineligible users; and the model's `prompts:`
validated like the rest."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from pqlkit.backends.serving import StateWriter
from pqlkit.errors import ModelValidationError
from pqlkit.handoff.prompts import PromptDesk
from pqlkit.model.handoff import Prompts
from pqlkit.model.load import parse_model

NOW = datetime(2026, 12, 1, 12)


def _state(user_id: str, **kw) -> dict:
    return {
        "user_id": user_id,
        "account_id": None,
        "as_of": NOW,
        "score": 70,
        "tier": "A",
        "segment": "maxed_out",
        "motion": "self_serve",
        "icp_profile": "smb",
        "is_pql": True,
        "reasons": "",
        "quiet_until": None,
        **kw,
    }


@pytest.fixture
def desk(tmp_path):
    writer = StateWriter(tmp_path)
    writer.write(
        [
            _state("pql"),
            _state("sales", motion="sales_assist"),
            _state("free", is_pql=False, segment="free_user"),
        ]
    )
    prompts = Prompts.model_validate(
        {
            "cooldown": "1d",
            "cap": 2,
            "cap_window": "7d",
            "rules": [
                {"id": "talk_to_sales", "when": {"motion": ["sales_assist"]}},
                {"id": "upgrade", "when": {"segment": ["maxed_out"]}, "data": {"plan": "team"}},
                {"id": "tour", "when": {"pql": False}},
            ],
        }
    )
    d = PromptDesk(tmp_path, prompts)
    yield d, writer
    d.close()
    writer.close()


def test_the_first_matching_prompt_is_shown_then_cooled_down_then_capped(desk):
    d, _ = desk
    first = d.answer("pql", NOW)
    assert first.show and first.prompt.id == "upgrade"
    assert first.to_dict("pql")["prompt"] == {"id": "upgrade", "data": {"plan": "team"}}
    assert not d.answer("pql", NOW + timedelta(hours=23)).show  # within the cooldown
    assert d.answer("pql", NOW + timedelta(days=1, seconds=1)).show  # the second of two
    assert not d.answer("pql", NOW + timedelta(days=3)).show  # capped within 7 days
    assert d.answer("pql", NOW + timedelta(days=8, seconds=2)).show  # the first fell out
    assert d.answer("sales", NOW).prompt.id == "talk_to_sales"  # the first rule wins
    assert d.answer("free", NOW).prompt.id == "tour"  # pql: false


def test_no_prompt_while_a_reps_feedback_keeps_the_user_quiet(desk):
    """A user marked done or disqualified gets no in-app prompt until the cooldown ends (the
    flusher copies the latest quiet_until of pql_feedback beside the state)."""
    d, writer = desk
    writer.write([_state("pql", quiet_until=NOW + timedelta(days=2))])
    assert not d.answer("pql", NOW).show
    assert not d.answer("pql", NOW + timedelta(days=1)).show
    assert d.answer("pql", NOW + timedelta(days=2, seconds=1)).show


def test_a_serving_copy_written_by_an_older_pqlkit_is_made_again(tmp_path):
    import sqlite3

    con = sqlite3.connect(tmp_path / "serving.sqlite3")
    con.execute("CREATE TABLE users (user_id TEXT PRIMARY KEY, score INTEGER)")
    con.commit()
    con.close()
    writer = StateWriter(tmp_path)
    writer.write([_state("pql")], replace_all=True)
    writer.close()
    from pqlkit.backends.serving import StateReader

    assert StateReader(tmp_path).get("pql")["quiet_until"] is None


def test_unknown_and_ineligible_users_get_the_same_answer(desk, tmp_path):
    d, writer = desk
    writer.write([_state("nothing", is_pql=True, segment="other", motion="self_serve")])
    assert d.answer("nothing", NOW).to_dict("x") == d.answer("nobody", NOW).to_dict("x")
    assert d.answer("nobody", NOW).to_dict("nobody") == {
        "user_id": "nobody",
        "show": False,
        "prompt": None,
    }


def test_a_full_pass_replaces_the_state_a_rescore_updates_it(desk):
    d, writer = desk
    writer.write([_state("pql", is_pql=False, segment="free_user")])  # a rescore
    assert d.reader.get("pql")["is_pql"] == 0 and d.reader.get("free") is not None
    writer.write([_state("new")], replace_all=True)  # a full pass
    assert d.reader.get("free") is None and d.reader.get("new") is not None


def test_prompts_in_the_model_are_validated(tmp_path):
    base = """
icp: {profiles: [{id: any, when: {email: business}}]}
usage_signals: [{id: p, kind: event_count, events: [x], points: 5}]
activation: {signal: p}
handoff:
  destinations: [{id: hook, kind: webhook, url: "https://example.com/h", secret_env: HOOK}]
  routes: [{to: [hook]}]
  prompts:
"""
    good = base + "    rules: [{id: upgrade, when: {segment: [maxed_out]}}]\n"
    assert parse_model(good, "m.yml").model.handoff.prompts.rules[0].id == "upgrade"
    for bad, message in (
        ("    rules: [{id: a}, {id: a}]\n", "ids must be unique"),
        ("    rules: [{id: a, when: {plan: [x]}}]\n", "unknown key 'plan'"),
        ("    rules: []\n", "rules"),
        ("    cap: 0\n    rules: [{id: a}]\n", "cap"),
        ("    cooldown: soon\n    rules: [{id: a}]\n", "cooldown"),
    ):
        with pytest.raises(ModelValidationError) as info:
            parse_model(base + bad, "m.yml")
        assert message in str(info.value), (bad, str(info.value))
        assert "m.yml:" in str(info.value)
