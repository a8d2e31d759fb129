"""`pql learn --from-table` on tables whose columns collide with what the engine derives, on
a fresh database, and split by time: every proposal scores what it reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pqlkit.engine import Engine
from pqlkit.learn import metrics
from pqlkit.usecases.learning import LearnOptions
from pqlkit.usecases.learning import learn as learn_use_case


def _scores(proposal: Path, db: Path) -> dict[str, float]:
    engine = Engine.open(str(proposal), str(db))
    try:
        engine.run()  # what `pql score` does: the proposal must not be refused
        rows = engine.backend.rows(engine.scores().select("user_id", "score"))
    finally:
        engine.close()
    return {r["user_id"]: r["score"] for r in rows}


def _derived_named_table(path: Path, n: int = 4000, seed: int = 3) -> dict[str, bool]:
    """Columns named like the fields the engine derives, each carrying signal."""
    rng = np.random.default_rng(seed)
    is_paid = rng.integers(0, 2, n)
    days = rng.integers(0, 400, n)
    business = rng.choice(["yes", "no"], n)
    domain = rng.choice(["acme.com", "gmail.com", "initech.io", "uni.edu"], n)
    touched = rng.integers(0, 2, n)
    p = (
        0.05
        + 0.25 * is_paid
        + 0.0006 * days
        + 0.1 * (business == "yes")
        + 0.15 * (domain == "initech.io")
        + 0.1 * touched
    )
    won = rng.random(n) < np.clip(p, 0, 0.95)
    ids = [f"u{i:05d}" for i in range(n)]
    pacsv.write_csv(
        pa.table(
            {
                "id": ids,
                "is_paid": is_paid,
                "days_since_signup": days,
                "is_business_email": business,
                "email_domain": domain,
                "sales_touched": touched,
                "won": won.astype(int),
            }
        ),
        path,
    )
    return dict(zip(ids, won.tolist(), strict=True))


@pytest.mark.parametrize("own_model", [True, False], ids=["own-model", "starter-model"])
def test_columns_named_like_derived_fields_score_what_the_proposal_reports(
    tmp_path, model_file, own_model
):
    """A column named `is_paid` (0/1), `days_since_signup`, `email_domain`, ... is learned
    from the table; the proposal reads that column (a trait alias), not the engine's field of
    the same name: the engine gives every row the fit's points, and the held-out AUC is the
    reported one. A fresh database, with nothing made by hand, is enough."""
    path = tmp_path / "leads.csv"
    labels = _derived_named_table(path)
    db = tmp_path / "fresh.duckdb"
    target = tmp_path / "proposed.yml"
    learned = learn_use_case(
        model_file if own_model else tmp_path / "none.yml",
        str(db),
        LearnOptions(
            user_table=str(path), label="won", id_column="id", reference=False,
            propose_path=str(target),
        ),
    )  # fmt: skip
    result = learned.result
    assert result.points is not None and result.train is not None
    text = target.read_text()
    assert "table_is_paid: is_paid" in text and "table_days_since_signup" in text
    assert "user.is_paid" not in text.split("fit_signals:")[1].split("usage_signals:")[0]
    scores = _scores(target, db)
    train_ids = result.train.column("user_id").to_pylist()
    expected = np.clip(result.points.score(result.train), 0, 100)
    got = np.asarray([scores[i] for i in train_ids], float)
    assert np.array_equal(got, expected), f"{int((got != expected).sum())} rows off"
    reported = result.quality_of("learned points")
    y = np.asarray([labels[i] for i in result.test_ids], bool)
    auc = metrics.auc(y, np.asarray([scores[i] for i in result.test_ids], float))
    assert round(auc, 3) == round(reported, 3)
    assert reported > 0.65  # every column carried signal the proposal keeps
