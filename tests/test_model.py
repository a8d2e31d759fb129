"""The model file: strict validation, every problem at once, each with line, path and hint."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pqlkit.demo.load import starter_text
from pqlkit.errors import ModelError, ModelValidationError
from pqlkit.model.defaults import effective_segments, free_mail_domains
from pqlkit.model.load import load_model, parse_model
from pqlkit.model.schema import json_schema_text

ROOT = Path(__file__).resolve().parent.parent

MINIMAL = """\
icp:
  profiles:
    - id: everyone
      when: {field: account.employees, gte: 0}
usage_signals:
  - {id: used, kind: event_count, events: [feature_used], points: 10}
activation: {signal: used}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(ModelValidationError) as info:
        parse_model(text, "pql.yml")
    return [str(i) for i in info.value.issues]


def test_the_starter_model_is_valid():
    loaded = parse_model(starter_text(), "pql.yml")
    assert loaded.model.name == "starter"
    assert len(loaded.version) == 12


def test_minimal_model_gets_defaults():
    m = parse_model(MINIMAL).model
    assert m.thresholds.pql_score == 60
    assert [b.tier for b in m.tiers.bands] == ["A", "B", "C", "D"]
    assert m.routing.default == "self_serve"
    assert [s.id for s in effective_segments(m)] == ["converted_without_assistance", "free_user"]


def test_version_is_a_hash_of_the_file():
    assert parse_model(MINIMAL).version != parse_model(MINIMAL + "\n# changed\n").version
    assert parse_model(MINIMAL).version == parse_model(MINIMAL).version


def test_unknown_key_names_line_path_and_suggests():
    text = MINIMAL.replace("    - id: everyone\n", "    - id: everyone\n      priorty: 1\n")
    assert problems(text) == [
        "pql.yml:4: icp.profiles[0].priorty: unknown key 'priorty' (did you mean 'priority'?)"
    ]


def test_unknown_kind_suggests_the_closest():
    text = MINIMAL.replace("kind: event_count", "kind: event_cnt")
    [p] = problems(text)
    assert p.startswith("pql.yml:6: usage_signals[0].kind: unknown kind 'event_cnt'")
    assert "did you mean 'event_count'?" in p


def test_wrong_type_names_the_value():
    [p] = problems(MINIMAL.replace("points: 10", "points: lots"))
    assert "usage_signals[0].points" in p and "'lots'" in p


def test_unknown_signal_reference():
    [p] = problems(MINIMAL.replace("activation: {signal: used}", "activation: {signal: usd}"))
    assert p == "pql.yml:7: activation.signal: unknown signal 'usd' (did you mean 'used'?)"


def test_all_problems_are_reported_at_once_sorted_by_line():
    text = (
        MINIMAL.replace("priority", "x")
        .replace("gte: 0}", "gte: 0, lte: 5}")
        .replace("kind: event_count", "kind: nope")
        .replace("{signal: used}", "{signal: unused}")
    )
    found = problems(text)
    assert len(found) == 3
    lines = [int(p.split(":")[1]) for p in found]
    assert lines == sorted(lines)
    assert "exactly one operator" in found[0]


def test_bad_duration():
    text = MINIMAL.replace("points: 10}", "points: 10, window: 30 days}")
    [p] = problems(text)
    assert "not a duration: '30 days'" in p and "30d, 12h, 2w" in p


def test_malformed_yaml_points_at_the_line():
    [p] = problems("icp:\n  profiles: [\n")
    assert p.startswith("pql.yml:3: malformed YAML")


def test_deep_nesting_is_refused_at_its_line_before_the_rest_is_read():
    """Flow brackets or block mappings nested past 48 levels: one problem, at the line of the
    node that goes too deep (the parser stops there, whatever follows)."""
    flow = MINIMAL + "extra:\n  " + "[" * 200_000 + "]" * 200_000 + "\n"
    assert problems(flow) == [
        "pql.yml:9: nested more than 48 levels deep (flatten the structure; conditions rarely need more than a few levels)"
    ]
    block = MINIMAL + "".join(f"{'  ' * i}k{i}:\n" for i in range(60)) + "  " * 60 + "x: 1\n"
    [p] = problems(block)
    assert p.startswith("pql.yml:56: nested more than 48 levels deep")


def test_duplicate_yaml_key():
    found = problems(MINIMAL + "activation: {signal: used}\n")
    assert any("pql.yml:8: activation: duplicate key" in p for p in found)


def test_duplicate_signal_ids():
    text = MINIMAL.replace(
        "activation:", "  - {id: used, kind: active_days, points: 1}\nactivation:"
    )
    [p] = problems(text)
    assert "duplicate signal id 'used'" in p and "usage_signals[0]" in p


def test_namespaces_are_checked_per_context():
    text = MINIMAL.replace("{field: account.employees, gte: 0}", "{field: signal.used, gte: 1}")
    [p] = problems(text)
    assert "signal.* fields cannot be used in fit rules" in p


def test_decisions_only_after_they_are_made():
    text = (
        MINIMAL
        + "segments:\n  - {id: hot, when: {field: decision.motion, equals: x}}\n  - {id: rest}\n"
    )
    [p] = problems(text)
    assert "decision.motion is not known when segment rules run" in p


def test_only_last_segment_may_omit_when():
    text = MINIMAL + "segments:\n  - {id: rest}\n  - {id: hot, when: {signal: used}}\n"
    [p] = problems(text)
    assert "only the last segment may leave out `when`" in p


def test_grid_tiers_shape_is_checked():
    text = (
        MINIMAL
        + "tiers: {kind: grid, fit_cuts: [40], usage_cuts: [30, 60], matrix: [[D, C], [B, A]]}\n"
    )
    [p] = problems(text)
    assert "matrix must have 2 rows of 3 tiers each" in p


def test_limit_signal_needs_events_or_usage():
    text = MINIMAL.replace(
        "activation:", "  - {id: lim, kind: limit_reached, points: 5}\nactivation:"
    )
    [p] = problems(text)
    assert "give either events" in p


def test_a_missing_model_file_says_how_to_start(tmp_path):
    with pytest.raises(ModelError, match=r"no such model file .*pql init"):
        load_model(tmp_path / "nope.yml")


def test_top_level_must_be_a_mapping():
    [p] = problems("- just\n- a list\n")
    assert "must be a mapping" in p


def test_json_schema_in_the_repo_is_current():
    """Regenerate with: python -m pqlkit.model.schema > schemas/pql-model-v1.json"""
    checked_in = (ROOT / "schemas" / "pql-model-v1.json").read_text()
    assert checked_in == json_schema_text(), "schemas/pql-model-v1.json is stale; regenerate it"
    schema = json.loads(checked_in)
    assert schema["additionalProperties"] is False
    assert "usage_signals" in schema["required"]


def test_every_field_is_documented():
    schema = json.loads(json_schema_text())
    missing = []
    for name, definition in [("Model", schema), *schema.get("$defs", {}).items()]:
        for prop, spec in definition.get("properties", {}).items():
            if "description" not in spec:
                missing.append(f"{name}.{prop}")
    assert missing == []


def test_free_mail_list_ships():
    domains = free_mail_domains()
    assert {"gmail.com", "outlook.com", "yahoo.com", "proton.me"} <= domains
    assert "acme.com" not in domains
