"""`pql learn --from-table` on tables whose columns collide with what the engine derives, on
a fresh database, and split by time: every proposal scores what it reports."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from pqlkit.engine import Engine
from pqlkit.errors import DataError
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


def _dated_table(path: Path, n: int = 4000, seed: int = 5) -> tuple[dict[str, bool], dict]:
    """Leads over three years, the later ones converting more: a step on the year looks good
    on a random split and cannot carry over."""
    rng = np.random.default_rng(seed)
    day = rng.integers(0, 3 * 365, n)
    dates = np.datetime64("2016-01-01") + day.astype("timedelta64[D]")
    year = dates.astype("datetime64[Y]").astype(int) + 1970
    visits = rng.integers(0, 10, n)
    won = rng.random(n) < np.clip(0.03 + 0.03 * visits + 0.2 * (year == 2018), 0, 0.95)
    ids = [f"d{i:05d}" for i in range(n)]
    pacsv.write_csv(
        pa.table(
            {
                "id": ids,
                "contact_date": [str(d) for d in dates],
                "Lead Year": year,
                "visits": visits,
                "won": won.astype(int),
            }
        ),
        path,
    )
    return dict(zip(ids, won.tolist(), strict=True)), dict(zip(ids, dates.tolist(), strict=True))


def test_a_time_column_fits_on_earlier_rows_and_a_calendar_step_is_named(tmp_path, model_file):
    """`--time-column` holds out the later quarter (the proposal scores the AUC it reports on
    those rows); a learned step on a year column is named in a note, split or not."""
    path = tmp_path / "dated.csv"
    labels, when = _dated_table(path)
    db = tmp_path / "fresh.duckdb"
    randomly = learn_use_case(
        model_file,
        str(db),
        LearnOptions(
            user_table=str(path), label="won", id_column="id", excluded=("contact_date",),
            reference=False, propose=False,
        ),
    )  # fmt: skip
    assert any("'Lead Year', which reads like a date or a year" in n for n in randomly.result.notes)
    target = tmp_path / "timed.yml"
    timed = learn_use_case(
        model_file,
        str(db),
        LearnOptions(
            user_table=str(path), label="won", id_column="id", time_column="contact_date",
            reference=False, propose_path=str(target),
        ),
    )  # fmt: skip
    result = timed.result
    assert result.held_out == "the later quarter of the rows by contact_date"
    test_ids, train_ids = result.test_ids, result.train.column("user_id").to_pylist()
    assert max(when[i] for i in train_ids) < min(when[i] for i in test_ids)
    assert abs(len(test_ids) - len(labels) / 4) < 20
    assert "contact_date" not in result.originals.values()
    text = target.read_text()
    assert "on the earlier three quarters of the rows by contact_date" in text
    scores = _scores(target, db)
    y = np.asarray([labels[i] for i in test_ids], bool)
    auc = metrics.auc(y, np.asarray([scores[i] for i in test_ids], float))
    assert round(auc, 3) == round(result.quality_of("learned points"), 3)
    with pytest.raises(DataError, match="--time-column 'id': cannot read its values as dates"):
        learn_use_case(
            model_file, str(db),
            LearnOptions(user_table=str(path), label="won", id_column="id",
                         time_column="id", reference=False, propose=False),
        )  # fmt: skip
