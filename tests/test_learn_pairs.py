"""Steps on pairs of conditions: where converting needs two conditions together, the learned
points say it ("a >= 6 and b = x"), close the gap to the boosted reference within the step
budget, and the proposal from a table scores what it reports (``all:`` of the two)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from pqlkit.learn import fit, metrics
from pqlkit.learn.learn import learn_table, split_at_random
from pqlkit.usecases.learning import LearnOptions
from pqlkit.usecases.learning import learn as learn_use_case

from .test_learn_tables import _scores


def _interactions(rows: int, seed: int = 0) -> pa.Table:
    """The table of bench/bench_interactions.py: two pair interactions."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 10, rows)
    b = rng.choice(["x", "y", "z"], rows)
    c = rng.random(rows)
    d = rng.integers(0, 2, rows)
    logit = -3 + 0.15 * a + 2.0 * ((a >= 6) & (b == "x")) + 1.5 * ((c > 0.7) & (d == 1)) + 0.3 * d
    y = rng.random(rows) < 1 / (1 + np.exp(-logit))
    return pa.table({"a": a, "b": b, "c": c, "d": d, "label": pa.array(y)})


def test_pairs_close_the_gap_where_conversion_needs_two_conditions():
    table = _interactions(12_000)
    # the same split both times: the reference of one run measures both
    runs = {
        pairs: learn_table(
            table, "label", timedelta(0), [], split=split_at_random, pairs=pairs, reference=pairs
        )
        for pairs in (False, True)
    }
    reference = runs[True].quality_of("gradient-boosted reference")
    assert reference is not None
    gap = {pairs: reference - r.quality_of("learned points") for pairs, r in runs.items()}
    assert gap[False] > 0.008, gap  # steps of one column each cannot say it
    assert gap[True] < 0.005, gap
    points = runs[True].points
    assert points is not None and 0 < len(points.steps) <= 30
    found = {
        frozenset(p.column for p in s.parts)
        for s, w in zip(points.steps, points.points, strict=True)
        if isinstance(s, fit.Pair) and w
    }
    assert {frozenset("ab"), frozenset("cd")} <= found, found


def test_candidate_pairs_are_of_two_columns_and_differ_from_their_steps():
    table = _interactions(4000, seed=1)
    steps = fit.steps_for(table)
    X = fit.matrix(table, steps)
    y = np.asarray(table.column("label").to_pylist(), float)
    pairs = fit.pairs_for(steps, X, y)
    assert pairs
    for pair in pairs:
        both = pair.apply(table)
        assert pair.first.column != pair.second.column
        assert not np.array_equal(both, pair.first.apply(table))
        assert not np.array_equal(both, pair.second.apply(table))
        assert pair.name == f"{pair.first.name} and {pair.second.name}"
    # no pairs asked for, or nothing to pair: none
    assert fit.pairs_for(steps[:1], X[:, :1], y) == []
    assert fit.pairs_for(steps, X, np.zeros_like(y)) == []


def test_a_proposal_with_pair_steps_scores_what_it_reports(tmp_path, model_file):
    """The pair steps become fit signals on ``all:`` of two conditions (columns with spaces
    read through trait aliases); the engine gives every row the fit's points and the
    held-out AUC is the reported one."""
    t = _interactions(6000, seed=2)
    ids = [f"p{i:05d}" for i in range(t.num_rows)]
    won = t.column("label").to_pylist()
    path = tmp_path / "pairs.csv"
    pacsv.write_csv(
        pa.table(
            {
                "id": ids,
                "Lead Score": t.column("a"),
                "Plan Kind": t.column("b"),
                "share": t.column("c"),
                "invited": t.column("d"),
                "won": pa.array([int(w) for w in won]),
            }
        ),
        path,
    )
    db = tmp_path / "fresh.duckdb"
    target = tmp_path / "proposed.yml"
    learned = learn_use_case(
        model_file,
        str(db),
        LearnOptions(
            user_table=str(path), label="won", id_column="id", reference=False,
            propose_path=str(target),
        ),
    )  # fmt: skip
    result = learned.result
    assert result.points is not None and result.train is not None
    assert any(isinstance(s, fit.Pair) for s in result.points.steps)
    text = target.read_text()
    assert "all:" in text and "user.lead_score" in text and "user.plan_kind" in text
    assert " and " in text  # a pair's label names both conditions
    scores = _scores(target, db)
    train_ids = result.train.column("user_id").to_pylist()
    expected = np.clip(result.points.score(result.train), 0, 100)
    got = np.asarray([scores[i] for i in train_ids], float)
    assert np.array_equal(got, expected), f"{int((got != expected).sum())} rows off"
    labels = dict(zip(ids, won, strict=True))
    y = np.asarray([labels[i] for i in result.test_ids], bool)
    auc = metrics.auc(y, np.asarray([scores[i] for i in result.test_ids], float))
    assert round(auc, 3) == round(result.quality_of("learned points"), 3)
