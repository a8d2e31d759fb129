"""Readable models measured against the points `pql learn` fits: interpret's Explainable
Boosting Machine (additive, no interactions) and an optbinning scorecard, beside the learned
points and the gradient-boosted reference, on the same folds of the same tables.

    .venv/bin/pip install interpret-core optbinning   # (the `compare` extra)
    .venv/bin/python bench/bench_glassbox.py [--folds 4]

Tables: the x-education leads (a real B2B funnel; leakage columns left out, as in the tests)
and the demo's point-in-time snapshots (opportunity within 30 days). For each model: the AUC
of each held-out fold (stratified, seed 0) and their mean, how many rules a person reads and
the fit time (medians over the folds). The question it answers: would a maintained glass-box library give better
points than an L1 logistic regression over steps, in a form the engine can score?
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

LEAKAGE = [
    "Lead Number",
    "Tags",
    "Lead Quality",
    "Lead Profile",
    "Last Activity",
    "Last Notable Activity",
    "Asymmetrique Activity Index",
    "Asymmetrique Profile Index",
    "Asymmetrique Activity Score",
    "Asymmetrique Profile Score",
]


def x_education() -> pa.Table:
    from pqlkit.learn import fit
    from pqlkit.learn.learn import _truthy
    from pqlkit.usecases.learning import read_user_table

    path = ROOT.parent / "shared" / "datasets" / "x-education-leads" / "Leads.csv"
    table = read_user_table(str(path), None)
    keep = [c for c in table.column_names if c not in {*LEAKAGE, "Prospect ID", "Converted"}]
    data = table.select(keep).rename_columns([f"_{c}" if c in fit.NOT_INPUTS else c for c in keep])
    y = [_truthy(v, "Converted") for v in table.column("Converted").to_pylist()]
    return data.append_column("label", pa.array(y, pa.bool_()))


def demo() -> pa.Table:
    from pqlkit.demo.generate import DemoSize, generate
    from pqlkit.demo.load import load, starter_text
    from pqlkit.engine import Engine
    from pqlkit.learn import dataset
    from pqlkit.learn.columns import NOT_INPUTS

    folder = Path(tempfile.mkdtemp())
    db, model = folder / "demo.duckdb", folder / "pql.yml"
    model.write_text(starter_text())
    from pqlkit.backends import connect

    backend = connect(str(db))
    data = generate(DemoSize(accounts=1500, users=6000, days=90, seed=3))
    load(backend, data)
    backend.close()
    engine = Engine.open(str(model), str(db))
    first, last = dataset.data_span(engine)
    from datetime import timedelta

    dates = dataset.snapshot_dates(first, last, timedelta(days=30), count=4)
    table = dataset.build(engine, "opportunity", dates, timedelta(days=30))
    engine.close()
    inputs = [c for c in table.column_names if c not in NOT_INPUTS or c in ("label", "as_of")]
    return table.select(inputs)


def _frame(table: pa.Table):
    df = table.drop_columns([c for c in ("label", "as_of") if c in table.column_names]).to_pandas()
    for c in df.columns:
        if df[c].dtype == object:
            df[c] = df[c].fillna("").astype(str)
        elif df[c].dtype == bool:
            df[c] = df[c].astype(int)
    return df


def points(train: pa.Table, test: pa.Table):
    from pqlkit.learn import fit

    p = fit.fit_points(train)
    return p.score(test), len(p.steps)


def reference(train: pa.Table, test: pa.Table):
    from pqlkit.learn import fit

    ref = fit.fit_reference(train)
    return ref.probability(test), None


def ebm(train: pa.Table, test: pa.Table):
    from interpret.glassbox import ExplainableBoostingClassifier

    model = ExplainableBoostingClassifier(interactions=0, random_state=0)
    model.fit(_frame(train), np.asarray(train.column("label").to_pylist(), int))
    rules = sum(len(np.asarray(s)) for s in model.term_scores_)  # one score per bin of a term
    return model.predict_proba(_frame(test))[:, 1], rules


def scorecard(train: pa.Table, test: pa.Table):
    from optbinning import BinningProcess, Scorecard
    from sklearn.linear_model import LogisticRegression

    x = _frame(train)
    categorical = [c for c in x.columns if x[c].dtype == object]
    process = BinningProcess(list(x.columns), categorical_variables=categorical)
    card = Scorecard(
        binning_process=process,
        estimator=LogisticRegression(max_iter=1000),
        scaling_method="min_max",
        scaling_method_params={"min": 0, "max": 100},
    )
    card.fit(x, np.asarray(train.column("label").to_pylist(), int))
    rules = int((card.table()["Points"].abs() > 0.5).sum())
    # (its score is a credit score: higher is less likely to convert; the probability is not)
    return card.predict_proba(_frame(test))[:, 1], rules


MODELS = {
    "learned points (pqlkit)": points,
    "EBM, no interactions (interpret)": ebm,
    "scorecard (optbinning)": scorecard,
    "gradient-boosted reference": reference,
}


def main() -> None:
    from pqlkit.learn import metrics
    from pqlkit.learn.learn import stratified_folds

    ap = argparse.ArgumentParser()
    ap.add_argument("--folds", type=int, default=4)
    args = ap.parse_args()
    for name, build in (("x-education leads", x_education), ("demo snapshots", demo)):
        table = build()
        y = np.asarray(table.column("label").to_pylist(), bool)
        if "as_of" in table.column_names:
            # snapshots: one user is a row at every date, so random folds would put a user's
            # own near-copies on both sides; the last date is held out, as `pql learn` does
            dates = np.asarray([str(d) for d in table.column("as_of").to_pylist()])
            folds = (dates == max(dates)).astype(int) - 1  # -1: always trained on; 0: held out
            n_folds = 1  # (as_of stays: the points choose their penalty on the last training date)
            how = "the last of 4 dates held out"
        else:
            folds = stratified_folds(y, args.folds, 0)
            n_folds = args.folds
            how = f"{n_folds} stratified folds"
        print(f"\n{name}: {table.num_rows:,} rows, {int(y.sum()):,} conversions, {how}")
        print(f"{'model':34s} {'mean AUC':>8s} {'folds':>28s} {'rules':>6s} {'fit s':>6s}")
        for label, fit_model in MODELS.items():
            aucs, secs, counts = [], [], []
            for f in range(n_folds):
                train = table.filter(pa.array(folds != f))
                test = table.filter(pa.array(folds == f))
                started = time.perf_counter()
                score, rules = fit_model(train, test)
                secs.append(time.perf_counter() - started)
                if rules is not None:
                    counts.append(rules)
                aucs.append(metrics.auc(y[folds == f], np.asarray(score, float)))
            print(
                f"{label:34s} {statistics.mean(aucs):8.3f} "
                f"{' '.join(f'{a:.3f}' for a in aucs):>28s} "
                f"{round(statistics.median(counts)) if counts else '':>6} "
                f"{statistics.median(secs):6.1f}"
            )


if __name__ == "__main__":
    main()
