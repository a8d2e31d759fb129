"""The account rollup's two ways of picking a champion (a window and a join, or ``first(x
ORDER BY ...)`` in the one GROUP BY where the database has it) give the same rows, on any user
rows: ties in score, PQL and ranking, NULL tiers and profiles, users without an account."""

from __future__ import annotations

from datetime import datetime

import hypothesis.strategies as st
import ibis
import pyarrow as pa
from hypothesis import HealthCheck, given, settings

from pqlkit.demo.load import starter_text
from pqlkit.features.build import account_scores
from pqlkit.features.sources import Bound
from pqlkit.model.load import parse_model

LOADED = parse_model(starter_text())
AS_OF = datetime(2026, 10, 1)
SCHEMA = pa.schema(
    [
        ("user_id", pa.string()),
        ("account_id", pa.string()),
        ("score", pa.int64()),
        ("is_pql", pa.bool_()),
        ("ranking", pa.float64()),
        ("tier", pa.string()),
        ("segment", pa.string()),
        ("motion", pa.string()),
        ("icp_profile", pa.string()),
        ("last_seen_at", pa.timestamp("us")),
    ]
)

rows = st.lists(
    st.fixed_dictionaries(
        {
            "account_id": st.sampled_from(["a1", "a2", "a3", None]),
            "score": st.integers(0, 3).map(lambda x: x * 30),
            "is_pql": st.booleans(),
            "ranking": st.sampled_from([0.0, 10.25, 10.5, 60.0]),
            "tier": st.sampled_from(["A", "B", None]),
            "segment": st.sampled_from(["free_user", "asked_for_sales"]),
            "motion": st.sampled_from(["self_serve", "enterprise", None]),
            "icp_profile": st.sampled_from(["core", None]),
            "last_seen_at": st.sampled_from([None, datetime(2026, 9, 28), datetime(2026, 1, 1)]),
        }
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rows=rows)
def test_the_champion_is_the_same_by_window_and_by_ordered_first(rows):
    users = [{"user_id": f"u{i:02d}", **r} for i, r in enumerate(rows)]
    con = ibis.duckdb.connect()
    table = con.create_table("s", pa.Table.from_pylist(users, schema=SCHEMA))
    bound = Bound(events=table, users=table, accounts=None, outcomes=None)

    def rollup(ordered_first: bool) -> list[dict]:
        expr = account_scores(table, bound, LOADED, AS_OF, ordered_first=ordered_first)
        return expr.order_by("account_id").to_pyarrow().to_pylist()

    by_window, by_first = rollup(False), rollup(True)
    assert by_first == by_window
    assert {r["account_id"] for r in by_first} == {u["account_id"] for u in users} - {None}
