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


# --- characters, encodings and numbers that cannot be scored (issue 27) -------------------------


@pytest.mark.parametrize(
    ("char", "name"),
    [
        ("\x00", "a NUL character (U+0000)"),
        ("\x01", "a control character (U+0001)"),
        ("\x1b", "a control character (U+001B)"),
        ("\x7f", "a control character (U+007F)"),
        ("\x85", "a C1 control character (U+0085)"),
        ("\x9f", "a C1 control character (U+009F)"),
        ("\u2028", "a Unicode line separator (U+2028)"),
    ],
)
@pytest.mark.parametrize("where", ["comment", "value"])
def test_a_control_character_anywhere_is_refused_at_its_line_and_column(char, name, where):
    line = f"  # a co{char}mment\n" if where == "comment" else f"    - id: every{char}one\n"
    text = MINIMAL.replace("    - id: everyone\n", line if where == "value" else "    - id: x\n")
    if where == "comment":
        text = text.replace("icp:\n", "icp:\n" + line)
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith(f"pql.yml:{2 if where == 'comment' else 3}: {name} at column ")
    assert f"column {9 if where == 'comment' else 16} (" in found[0]


def test_every_control_character_is_named_at_once():
    text = MINIMAL.replace("everyone", "every\x01one") + "# \x00\n# \x9f\n"
    assert [p.split(":")[1] for p in problems(text)] == ["3", "8", "9"]


def test_what_yaml_cannot_read_is_located_even_past_the_character_check(monkeypatch):
    from pqlkit.model import yaml_lines

    monkeypatch.setattr(yaml_lines, "check_characters", lambda text, filename: None)
    assert problems(MINIMAL.replace("everyone", "every\x01one")) == [
        "pql.yml:3: YAML cannot read a control character (U+0001) at column 16 "
        "(save the file as UTF-8: in most editors, Save As with the encoding UTF-8)"
    ]


@pytest.mark.parametrize(
    "encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le"]
)
def test_a_file_with_a_byte_order_mark_is_read_in_its_encoding(tmp_path, encoding):
    text = "name: müller\n" + MINIMAL
    if encoding.endswith(("-le", "-be")):  # Python writes no mark for these; editors do
        text = "\ufeff" + text
    (tmp_path / "pql.yml").write_bytes(text.encode(encoding))
    loaded = load_model(tmp_path / "pql.yml")
    assert loaded.model.name == "müller"
    assert loaded.line_of(("activation",)) == 8


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (MINIMAL.encode("utf-16-le"), ":1: the file looks like UTF-16 or UTF-32 without a"),
        (MINIMAL.encode("utf-32-be"), ":1: the file looks like UTF-16 or UTF-32 without a"),
        (
            MINIMAL.replace("everyone", "müller").encode("latin-1"),
            ":3: not valid UTF-8 at column 12: invalid start byte (bytes fc)",
        ),
        (MINIMAL.encode() + b"# \xff\n", ":8: not valid UTF-8 at column 3: invalid start byte"),
        (b"\xff\xfe" + MINIMAL.encode("utf-16-le")[:-1], ":7: not valid UTF-16 at column 27"),
        (b"\xef\xbb\xbf", ":1: the model must be a mapping of keys"),
        (b"\xff\xfe", ":1: the model must be a mapping of keys"),
    ],
)
def test_a_file_that_is_not_text_is_refused_at_a_line(tmp_path, raw, expected):
    (tmp_path / "pql.yml").write_bytes(raw)
    with pytest.raises(ModelValidationError) as info:
        load_model(tmp_path / "pql.yml")
    assert len(info.value.issues) == 1
    assert expected in str(info.value.issues[0])


NUMBERS = [
    ("points: 10}", "points: {}}}", 6, "usage_signals[0].points"),
    ("gte: 0}", "gte: {}}}", 4, "icp.profiles[0].when.gte"),
    ("gte: 0}", "between: [0, {}]}}", 4, "icp.profiles[0].when.between"),
    ("points: 10}", "points: 1, per_unit: true, cap: {}}}", 6, "usage_signals[0].cap"),
    ("points: 10}", "points: 1, min: {}}}", 6, "usage_signals[0].min"),
    ("activation:", "thresholds: {{pql_score: {}}}\nactivation:", 7, "thresholds.pql_score"),
    (
        "activation:",
        "tiers: {{kind: grid, fit_cuts: [{}], usage_cuts: [50], matrix: [[A, B], [B, C]]}}\n"
        "activation:",
        7,
        "tiers.fit_cuts[0]",
    ),
    (
        "activation:",
        "tiers: {{kind: bands, bands: [{{tier: A, min_score: {}}}]}}\nactivation:",
        7,
        "tiers.bands[0].min_score",
    ),
]


@pytest.mark.parametrize("value", ["NaN", "'nan'", "'-Infinity'", "'1e400'", ".nan", "-.inf"])
@pytest.mark.parametrize(("old", "new", "line", "path"), NUMBERS)
def test_a_number_that_cannot_be_scored_is_refused_at_its_line(old, new, line, path, value):
    found = problems(MINIMAL.replace(old, new.format(value), 1))
    assert any(p.startswith(f"pql.yml:{line}: {path}") for p in found), found
    assert all(f"pql.yml:{line}:" in p for p in found), found


@pytest.mark.parametrize("value", [".nan", ".inf", "-.inf"])
@pytest.mark.parametrize(
    ("old", "new", "line", "path"),
    [
        ("gte: 0}", "equals: {}}}", 4, "icp.profiles[0].when.equals"),
        ("points: 10}", "points: 1, where: {{n: {}}}}}", 6, "usage_signals[0].where.n"),
    ],
)
def test_text_or_number_fields_take_no_yaml_nan_or_infinity(old, new, line, path, value):
    """A quoted 'NaN' there is text (a plan may be called NaN); YAML's .nan is a number."""
    found = problems(MINIMAL.replace(old, new.format(value), 1))
    assert len(found) == 1 and found[0].startswith(f"pql.yml:{line}: {path}: "), found


def test_a_quoted_number_out_of_range_is_refused_as_a_yaml_one_is():
    assert problems(MINIMAL.replace("points: 10", "points: '1e13'")) == [
        "pql.yml:6: usage_signals[0].points: the number 1e+13 is out of range "
        "(numbers in a model are between -1e+12 and 1e+12)"
    ]


@pytest.mark.parametrize(
    "condition",
    [
        '{field: user.email, matches: "\\\\.edu\\0$"}',
        '{field: user.role, equals: "a\\x01b"}',
        '{field: user.role, in: [a, "b\\0"]}',
        '{field: user.role, contains: "\\e"}',
        '{field: user.role, not_in: ["\\x9f"]}',
    ],
)
def test_control_characters_written_as_escapes_are_refused_at_their_line(condition):
    found = problems(MINIMAL.replace("{field: account.employees, gte: 0}", condition))
    assert len(found) == 1
    assert found[0].startswith("pql.yml:4: icp.profiles[0].when")
    assert "character (U+00" in found[0] and "remove it" in found[0]
