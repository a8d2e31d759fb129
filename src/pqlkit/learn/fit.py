"""Fit points that stay readable: a regularised logistic regression over step features ("did
at least 3 projects", "business e-mail"), turned into whole points, with a gradient-boosted
model beside it as the reference for how much a points model leaves on the table.

Pure numpy (the regression) and scikit-learn (the reference, an optional dependency); the
training table comes from :mod:`dataset` or from a user-level table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from . import metrics
from .columns import NOT_INPUTS


@dataclass(frozen=True)
class Step:
    """One yes/no input: ``column >= threshold`` (numbers) or ``column == value`` (text, flags)."""

    column: str
    threshold: float | None = None
    value: Any = None

    @property
    def name(self) -> str:
        if self.threshold is not None:
            t = (
                int(self.threshold)
                if float(self.threshold).is_integer()
                else round(self.threshold, 2)
            )
            return f"{self.column} >= {t}"
        return f"{self.column} = {self.value}"

    def apply(self, table: pa.Table) -> np.ndarray:
        col = table.column(self.column).to_numpy(zero_copy_only=False)
        if self.threshold is not None:
            values = np.asarray(col, float)
            return np.nan_to_num(values, nan=-np.inf) >= self.threshold
        return np.asarray([v == self.value for v in col], bool)


#: Thresholds for numbers: every 5th percentile of the positive values (steps whose weight
#: rounds to zero points are dropped, so the fitted model shows only the ones that matter).
FINE = tuple(i / 20 for i in range(20))


def steps_for(table: pa.Table, *, max_levels: int = 12, quantiles=FINE) -> list[Step]:
    """Step inputs for every usable column: thresholds at quantiles of the positive values for
    numbers, one step per frequent value for text and flags."""
    out: list[Step] = []
    for name in table.column_names:
        if name in NOT_INPUTS:
            continue
        col = table.column(name)
        t = col.type
        if pa.types.is_boolean(t):
            out.append(Step(name, value=True))
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            values = np.asarray(col.to_numpy(zero_copy_only=False), float)
            positive = values[np.isfinite(values) & (values > 0)]
            if positive.size < 5:
                continue
            qs = np.quantile(positive, quantiles)
            if np.all(np.mod(positive, 1) == 0):
                qs = np.ceil(qs)
            else:  # three significant digits: a threshold a person can read in the model file
                qs = np.asarray([float(f"{q:.3g}") for q in qs])
            for q in sorted(set(float(x) for x in qs)):
                out.append(Step(name, threshold=q))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            counts: dict[Any, int] = {}
            for v in col.to_pylist():
                if v is not None:
                    counts[v] = counts.get(v, 0) + 1
            frequent = sorted(counts, key=lambda v: (-counts[v], v))[:max_levels]
            out.extend(Step(name, value=v) for v in frequent if counts[v] >= 5)
    return out


def matrix(table: pa.Table, steps: list[Step]) -> np.ndarray:
    if not steps:
        return np.zeros((table.num_rows, 0))
    return np.column_stack([s.apply(table) for s in steps]).astype(float)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def logistic(
    X: np.ndarray, y: np.ndarray, l2: float = 1.0, iters: int = 100
) -> tuple[float, np.ndarray]:
    """L2-regularised logistic regression by Newton's method: (intercept, weights)."""
    n, p = X.shape
    A = np.column_stack([np.ones(n), X])
    w = np.zeros(p + 1)
    base = min(max(y.mean(), 1e-6), 1 - 1e-6)
    w[0] = math.log(base / (1 - base))
    penalty = np.full(p + 1, l2)
    penalty[0] = 0.0
    for _ in range(iters):
        prob = _sigmoid(A @ w)
        grad = A.T @ (prob - y) + penalty * w
        hess = (A * (prob * (1 - prob))[:, None]).T @ A + np.diag(penalty + 1e-9)
        delta = np.linalg.solve(hess, grad)
        w -= delta
        if np.max(np.abs(delta)) < 1e-7:
            break
    return float(w[0]), w[1:]


@dataclass
class Points:
    """A fitted points model: whole points per step, and the logistic scale behind them."""

    steps: list[Step]
    points: list[int]
    intercept: float
    weights: list[float]
    scale: float
    """Points per unit of log-odds."""

    def score(self, table: pa.Table) -> np.ndarray:
        return matrix(table, self.steps) @ np.asarray(self.points, float)

    def probability(self, table: pa.Table) -> np.ndarray:
        return _sigmoid(self.intercept + matrix(table, self.steps) @ np.asarray(self.weights))

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"input": s.name, "points": p, "log_odds": round(w, 4)}
            for s, p, w in zip(self.steps, self.points, self.weights, strict=True)
            if p != 0
        ]


def fit_points(
    train: pa.Table, *, l2: float | None = None, double_odds: float = 10.0, min_points: int = 3
) -> Points:
    """Fit the regression (choosing the penalty on a validation part when not given) and turn
    it into whole points the scorecard way: ``double_odds`` points double the odds of
    converting, so rounding moves no step by more than a few percent of odds.

    Steps worth fewer than ``min_points`` are dropped and the rest refitted, so the model reads
    as a short list of behaviours that matter rather than many +-1s that mostly fit noise
    (on the demo data this also ranks the held-out date slightly better)."""
    steps = steps_for(train)
    X = matrix(train, steps)
    y = np.asarray(train.column("label").to_pylist(), float)
    if l2 is None:
        l2 = _choose_l2(train, X, y)
    scale = double_odds / math.log(2.0)
    intercept, w = logistic(X, y, l2=l2)
    if min_points > 1:
        keep = np.abs(np.round(w * scale)) >= min_points
        steps = [s for s, k in zip(steps, keep, strict=True) if k]
        X = X[:, keep]
        intercept, w = logistic(X, y, l2=l2)
    points = [round(x * scale) for x in w]
    kept = [i for i, p in enumerate(points) if p != 0]
    return Points(
        [steps[i] for i in kept],
        [points[i] for i in kept],
        intercept,
        [float(w[i]) for i in kept],
        scale,
    )


def _choose_l2(
    train: pa.Table, X: np.ndarray, y: np.ndarray, grid=(0.3, 1.0, 3.0, 10.0, 30.0)
) -> float:
    """The penalty that ranks a validation part of the training rows best: the last training
    date when there are dates, else a random quarter."""
    dates = (
        np.asarray([str(v) for v in train.column("as_of").to_pylist()])
        if "as_of" in train.column_names
        else None
    )
    if dates is not None and len(set(dates)) >= 2:
        last = max(dates)
        fit_rows, val_rows = dates != last, dates == last
    else:
        val_rows = np.random.default_rng(1).random(y.size) < 0.25
        fit_rows = ~val_rows
    if y[val_rows].sum() == 0 or y[fit_rows].sum() == 0:
        return 3.0
    best, best_auc = 3.0, -1.0
    for l2 in grid:
        b, w = logistic(X[fit_rows], y[fit_rows], l2=l2)
        a = metrics.auc(y[val_rows], X[val_rows] @ w + b)
        if a > best_auc + 1e-4:
            best, best_auc = l2, a
    return best


@dataclass
class Reference:
    """The gradient-boosted reference model (scikit-learn)."""

    model: Any
    columns: list[str]
    categories: dict[str, list[Any]] = field(default_factory=dict)

    def encode(self, table: pa.Table) -> np.ndarray:
        cols = []
        for name in self.columns:
            values = table.column(name).to_pylist()
            if name in self.categories:
                index = {v: i for i, v in enumerate(self.categories[name])}
                cols.append([index.get(v, np.nan) if v is not None else np.nan for v in values])
            else:
                cols.append([np.nan if v is None else float(v) for v in values])
        return np.asarray(cols, float).T

    def probability(self, table: pa.Table) -> np.ndarray:
        return self.model.predict_proba(self.encode(table))[:, 1]


def fit_reference(train: pa.Table, seed: int = 0) -> Reference:
    try:
        from sklearn.ensemble import HistGradientBoostingClassifier
    except ImportError:
        from ..errors import PqlkitError

        raise PqlkitError(
            'the gradient-boosted reference needs scikit-learn: pip install "pqlkit[learn]"'
        ) from None
    columns, categories = [], {}
    for name in train.column_names:
        if name in NOT_INPUTS:
            continue
        t = train.column(name).type
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            categories[name] = sorted({v for v in train.column(name).to_pylist() if v is not None})[
                :250
            ]
        elif not (pa.types.is_boolean(t) or pa.types.is_integer(t) or pa.types.is_floating(t)):
            continue
        columns.append(name)
    ref = Reference(None, columns, categories)
    X = ref.encode(train)
    y = np.asarray(train.column("label").to_pylist(), int)
    mask = [c in categories for c in columns]
    ref.model = HistGradientBoostingClassifier(
        max_iter=300,
        learning_rate=0.05,
        max_leaf_nodes=15,
        l2_regularization=1.0,
        categorical_features=mask if any(mask) else None,
        random_state=seed,
    ).fit(X, y)
    return ref


__all__ = [
    "Points",
    "Reference",
    "Step",
    "fit_points",
    "fit_reference",
    "logistic",
    "matrix",
    "steps_for",
]
