"""The pure decision logic: properties that hold for any input, and equality of the plain-Python
and the in-database evaluation on arbitrary feature rows (nulls included)."""

from __future__ import annotations

import math

import hypothesis.strategies as st
import ibis
import pyarrow as pa
from hypothesis import HealthCheck, given, settings

from pqlkit.demo.load import starter_text
from pqlkit.features.ibis_ops import IbisOps
from pqlkit.model.load import parse_model
from pqlkit.model.signals import EventCountSignal
from pqlkit.scoring.decide import OUTPUT_FIELDS, decide, signal_result
from pqlkit.scoring.ops import PyOps

ops = PyOps()
MODEL = parse_model(starter_text()).model

values = st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False)


@given(
    points=st.floats(min_value=-50, max_value=50, allow_nan=False),
    cap=st.none() | st.floats(min_value=0.5, max_value=40),
    per_unit=st.booleans(),
    minimum=st.floats(min_value=0, max_value=20),
    value=values,
)
def test_signal_points_respect_min_cap_and_sign(points, cap, per_unit, minimum, value):
    s = EventCountSignal(
        kind="event_count",
        id="s",
        events=["e"],
        points=points,
        cap=cap,
        per_unit=per_unit,
        min=minimum,
    )
    r = signal_result(s, "usage", {"signal.s": value}, ops)
    assert isinstance(r.points, int)
    if value < minimum:
        assert r.points == 0 and not r.fired
    if cap is not None:
        assert abs(r.points) <= math.floor(cap + 0.5)
    if r.points:
        assert (r.points > 0) == (points > 0)


SIGNALS = [*MODEL.usage_signals, *MODEL.mql_signals]


def _value_strategy(signal):
    """Counts are whole numbers; decayed counts, ratios and days are any non-negative number."""
    if signal.integral:
        return st.integers(min_value=0, max_value=60).map(float)
    return st.floats(min_value=0, max_value=60, allow_nan=False)


attr = st.fixed_dictionaries(
    {
        "user.email": st.none()
        | st.sampled_from(["a@acme.com", "b@gmail.com", "s@state-university.edu", "x", ""]),
        "user.email_domain": st.none()
        | st.sampled_from(["acme.com", "gmail.com", "state-university.edu"]),
        "user.is_business_email": st.booleans(),
        "user.role": st.none()
        | st.sampled_from(["VP Engineering", "Student", "engineer", "CTO", ""]),
        "user.plan": st.none() | st.sampled_from(["free", "paid", "trial"]),
        "user.is_paid": st.booleans(),
        "user.sales_touched": st.booleans(),
        "account.employees": st.none() | st.floats(min_value=0, max_value=20000, allow_nan=False),
        "account.industry": st.none()
        | st.sampled_from(["software", "fintech", "education", "media"]),
        "account.domain": st.none() | st.sampled_from(["rivalmetrics.io", "acme.com"]),
        "account.plan": st.none() | st.sampled_from(["enterprise", "free"]),
        "account.tech_stack": st.none()
        | st.lists(st.sampled_from(["snowflake", "dbt", "excel"]), max_size=3),
        **{f"signal.{s.id}": _value_strategy(s) for s in SIGNALS},
    }
)


@settings(max_examples=200)
@given(attr)
def test_decisions_are_consistent(env):
    env = dict(env)
    out = decide(MODEL, env, ops)
    assert 0 <= out["score"] <= 100 and 0 <= out["mql_score"] <= 100
    assert out["score"] == min(max(out["fit_score"] + out["usage_score"], 0), 100)
    if out["is_pql"]:
        assert out["icp_profile"] and not out["excluded"] and out["activated"]
        assert out["score"] >= MODEL.thresholds.pql_score
    assert out["excluded"] == (out["exclusion"] is not None)
    tiers = {b.tier: b.min_score for b in MODEL.tiers.bands}
    assert out["score"] >= tiers[out["tier"]]
    assert out["segment"] in {
        "converted_without_assistance",
        "asked_for_sales",
        "maxed_out_free",
        "free_user",
    }


def _as_table(rows):
    """Generated feature rows as an Ibis table, and the env of its columns."""
    t = ibis.memtable(_arrow_rows(rows))
    return t, {k.replace("__", "."): t[k] for k in t.columns}


def _arrow_rows(rows) -> pa.Table:
    columns = {k.replace(".", "__"): [r[k] for r in rows] for k in rows[0]}
    return pa.table({k: pa.array(v, type=_type_of(k)) for k, v in columns.items()})


def _type_of(k: str) -> pa.DataType:
    return (
        pa.list_(pa.string())
        if k == "account__tech_stack"
        else pa.float64()
        if k.startswith("signal__") or k == "account__employees"
        else pa.bool_()
        if k.startswith(("user__is_", "user__sales"))
        else pa.string()
    )


_DECIDE_SQL: dict[tuple[str, ...], str] = {}
_DUCK: list = []


def _decided_in_duckdb(rows) -> list[dict]:
    """decide() through IbisOps, compiled once for the generated rows' schema and run in
    DuckDB over each example's rows (compiling the whole decision is the slow part)."""
    import duckdb

    data = _arrow_rows(rows)
    key = tuple(data.schema.names)
    if key not in _DECIDE_SQL:
        unbound = ibis.table(ibis.schema(data.schema), name="generated_rows")
        env = {k.replace("__", "."): unbound[k] for k in data.schema.names}
        out = decide(MODEL, env, IbisOps())
        expr = unbound.select(
            **{f: (v if isinstance(v, ibis.Value) else ibis.literal(v)) for f, v in out.items()}
        )
        _DECIDE_SQL[key] = str(ibis.to_sql(expr, dialect="duckdb"))
    if not _DUCK:
        _DUCK.append(duckdb.connect())
    con = _DUCK[0]
    con.register("generated_rows", data)
    try:
        return con.execute(_DECIDE_SQL[key]).fetch_arrow_table().to_pylist()
    finally:
        con.unregister("generated_rows")


@settings(
    max_examples=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(attr, min_size=1, max_size=200))
def test_database_and_python_evaluation_agree_on_any_rows(rows):
    """decide() through IbisOps in DuckDB equals decide() through PyOps, row by row. DuckDB
    takes about a second to plan the whole decision whatever the rows, so each example is up
    to 200 rows (rows are decided independently). Long because of that second a plan: about
    30-50 s for the examples that make the property worth holding."""
    in_db = _decided_in_duckdb(rows)
    in_py = [decide(MODEL, dict(r), ops) for r in rows]
    for db_row, py_row in zip(in_db, in_py, strict=True):
        assert {f: db_row[f] for f in OUTPUT_FIELDS} == {f: py_row[f] for f in OUTPUT_FIELDS}


@given(values)
def test_value_formatting_matches_in_both_paths(value):
    con = ibis.duckdb.connect()
    try:
        in_db = con.to_pyarrow(IbisOps().fmt_value(ibis.literal(value, "float64"))).as_py()
    finally:
        con.disconnect()
    assert in_db == ops.fmt_value(value)


GRID = MODEL.model_copy(
    update={
        "tiers": parse_model(
            starter_text().replace(
                "tiers:\n  kind: bands\n  bands:\n    - {tier: A, min_score: 80}\n    - {tier: B, min_score: 60}\n"
                "    - {tier: C, min_score: 40}\n    - {tier: D, min_score: 0}\n",
                "tiers: {kind: grid, fit_cuts: [15, 30], usage_cuts: [30, 60],\n"
                "        matrix: [[D, D, C], [C, B, A], [B, A, A]]}\n",
            )
        ).model.tiers
    }
)


@settings(max_examples=100)
@given(attr)
def test_grid_tiers_follow_the_matrix(env):
    out = decide(GRID, dict(env), ops)
    fit_level = sum(out["fit_score"] >= c for c in (15, 30))
    usage_level = sum(out["usage_score"] >= c for c in (30, 60))
    assert (
        out["tier"] == [["D", "D", "C"], ["C", "B", "A"], ["B", "A", "A"]][fit_level][usage_level]
    )


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(attr, min_size=5, max_size=20))
def test_grid_tiers_agree_in_the_database(rows):
    t, env = _as_table(rows)
    out = decide(GRID, env, IbisOps())
    con = ibis.duckdb.connect()
    try:
        tiers = con.to_pyarrow(t.select(tier=out["tier"])).column("tier").to_pylist()
    finally:
        con.disconnect()
    assert tiers == [decide(GRID, dict(r), ops)["tier"] for r in rows]
