"""Fit points that stay readable: a regularised logistic regression over step features ("did
at least 3 projects", "business e-mail"), turned into whole points, with a gradient-boosted
model beside it as the reference for how much a points model leaves on the table.

Both models come from scikit-learn (the `learn` extra): an L1-penalised logistic regression,
which leaves most steps at exactly zero so no separate pruning pass is needed, and a
histogram gradient-boosted classifier. The training table comes from :mod:`dataset` or from a
user-level table.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

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
            t = self.threshold
            shown = int(t) if float(t).is_integer() else float(f"{t:.3g}")
            return f"{self.column} >= {shown}"
        return f"{self.column} = {self.value}"

    def apply(self, table: pa.Table) -> np.ndarray:
        column = table.column(self.column)
        if self.threshold is not None:
            values = np.asarray(column.to_numpy(zero_copy_only=False), float)
            return np.nan_to_num(values, nan=-np.inf) >= self.threshold
        # equal to the value; a missing value (or NaN) is not equal to anything
        hit = pc.fill_null(pc.equal(column, pa.scalar(self.value)), False)
        return np.asarray(hit.to_numpy(zero_copy_only=False), bool)

    @property
    def parts(self) -> tuple[Step, ...]:
        return (self,)


@dataclass(frozen=True)
class Pair:
    """Two steps that hold together ("a >= 6 and b = x"): what steps of one column each cannot
    say when converting needs both. In the model it is one condition, ``all:`` of the two."""

    first: Step
    second: Step
    threshold = None
    value = None

    @property
    def column(self) -> str:
        return f"{self.first.column} & {self.second.column}"

    @property
    def name(self) -> str:
        return f"{self.first.name} and {self.second.name}"

    @property
    def parts(self) -> tuple[Step, ...]:
        return (self.first, self.second)

    def apply(self, table: pa.Table) -> np.ndarray:
        return self.first.apply(table) & self.second.apply(table)


#: Thresholds for numbers: every 5th percentile of the positive values (steps whose weight
#: rounds to zero points are dropped, so the fitted model shows only the ones that matter).
FINE = tuple(i / 20 for i in range(20))


def steps_for(
    table: pa.Table, *, max_levels: int = 40, quantiles=FINE, min_rows: int = 5
) -> list[Step]:
    """Step inputs for every usable column: thresholds at quantiles of the positive values for
    numbers (a 0/1 column is one yes/no step), one step per value seen at least ``min_rows``
    times for text (the ``max_levels`` most frequent; empty text is missing, not a value).
    Steps true (or false) for fewer than ``min_rows`` rows, or 0.2% of them, are left out: a
    near-constant column cannot earn large points."""
    out: list[Step] = []
    n = table.num_rows
    floor = max(min_rows, int(0.002 * n))
    for name in table.column_names:
        if name in NOT_INPUTS:
            continue
        col = table.column(name)
        t = col.type
        candidates: list[Step] = []
        if pa.types.is_boolean(t):
            candidates.append(Step(name, value=True))
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            values = np.asarray(col.to_numpy(zero_copy_only=False), float)
            finite = values[np.isfinite(values)]
            if finite.size and set(np.unique(finite)) <= {0.0, 1.0}:
                candidates.append(
                    Step(name, value=1)
                )  # a flag stored as 0/1: "col = 1", not ">= 1"
            else:
                positive = finite[finite > 0]
                if positive.size < min_rows:
                    continue
                qs = np.quantile(positive, quantiles)
                if np.all(np.mod(positive, 1) == 0):
                    qs = np.ceil(qs)
                else:  # three significant digits: a threshold a person can read in the model file
                    qs = np.asarray([float(f"{q:.3g}") for q in qs])
                candidates.extend(Step(name, threshold=q) for q in sorted({float(x) for x in qs}))
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            counts: dict[Any, int] = {}
            for v in col.to_pylist():
                if v is not None and str(v).strip() != "":
                    counts[v] = counts.get(v, 0) + 1
            frequent = sorted(counts, key=lambda v: (-counts[v], v))[:max_levels]
            candidates.extend(Step(name, value=v) for v in frequent)
        for step in candidates:
            hits = int(step.apply(table).sum())
            if floor <= hits <= n - floor:
                out.append(step)
    return out


#: An input of the fit: one step, or a pair of them.
Input = Step | Pair

#: Depth-2 trees boosted over the one-column steps, whose paths give the candidate pairs.
PAIR_TREES = 40


def pairs_for(
    steps: list[Step], X: np.ndarray, y: np.ndarray, *, trees: int = PAIR_TREES
) -> list[Pair]:
    """Candidate pairs: the two steps on each root-to-leaf path of ``trees`` depth-2 trees
    boosted over the step inputs (a tree splits on the second step where the first changes
    what it does, which is what an interaction is). Pairs of one column (one threshold inside
    another, two values that never meet), pairs true for almost no row or almost every row,
    and pairs no different from one of their steps are left out. The L1 fit picks among them
    as among the single steps, within the same step budget."""
    if X.shape[1] < 2 or len(set(np.asarray(y, int).tolist())) < 2:
        return []
    from sklearn.ensemble import GradientBoostingClassifier

    boosted = GradientBoostingClassifier(
        n_estimators=trees, max_depth=2, learning_rate=0.3, random_state=0
    ).fit(X, np.asarray(y, int))
    seen: list[tuple[int, int]] = []
    for tree in boosted.estimators_[:, 0]:
        t = tree.tree_
        root = int(t.feature[0])
        for child in (t.children_left[0], t.children_right[0]):
            f = int(t.feature[child]) if child >= 0 else -1
            if root < 0 or f < 0 or steps[root].column == steps[f].column:
                continue
            key = (min(root, f), max(root, f))
            if key not in seen:
                seen.append(key)
    n = X.shape[0]
    floor = max(5, int(0.002 * n))
    out: list[Pair] = []
    for i, j in seen:
        both = (X[:, i] > 0) & (X[:, j] > 0)
        hits = int(both.sum())
        same = np.array_equal(both, X[:, i] > 0) or np.array_equal(both, X[:, j] > 0)
        if floor <= hits <= n - floor and not same:
            out.append(Pair(steps[i], steps[j]))
    return out


def matrix(table: pa.Table, steps: Sequence[Input]) -> np.ndarray:
    if not steps:
        return np.zeros((table.num_rows, 0))
    return np.column_stack([s.apply(table) for s in steps]).astype(float)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(z, -35, 35)))


def _sklearn() -> Any:
    try:
        import sklearn.linear_model as linear
    except ImportError:
        from ..errors import PqlkitError

        raise PqlkitError(
            'learning points needs scikit-learn: pip install "pqlkit[learn]"'
        ) from None
    return linear


@dataclass
class Fitted:
    """A logistic regression's intercept and weights, and what the solver said."""

    intercept: float
    weights: np.ndarray
    converged: bool = True
    iterations: int = 0


def logistic(
    X: np.ndarray, y: np.ndarray, *, C: float = 1.0, l1: bool = True, max_iter: int = 1000
) -> Fitted:
    """A penalised logistic regression by scikit-learn's liblinear solver (L1 by default: most
    weights come out exactly zero). The intercept is scaled up so the penalty barely touches
    it. Non-convergence is reported, never hidden."""
    import warnings

    linear = _sklearn()
    from sklearn.exceptions import ConvergenceWarning

    if X.shape[1] == 0 or len(set(np.asarray(y, int).tolist())) < 2:
        base = min(max(float(np.mean(y)) if len(y) else 0.5, 1e-6), 1 - 1e-6)
        return Fitted(math.log(base / (1 - base)), np.zeros(X.shape[1]))
    model = linear.LogisticRegression(
        l1_ratio=1.0 if l1 else 0.0,
        C=C,
        solver="liblinear",
        intercept_scaling=100.0,
        max_iter=max_iter,
        tol=1e-4,
        random_state=0,  # liblinear shuffles: the same table gives the same points, every run
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        model.fit(X, np.asarray(y, int))
    converged = not any(issubclass(w.category, ConvergenceWarning) for w in caught)
    return Fitted(
        float(model.intercept_[0]),
        np.asarray(model.coef_[0], float),
        converged,
        int(np.max(model.n_iter_)),
    )


@dataclass
class Points:
    """A fitted points model: whole points per step, base points every user gets (so every
    score lies within the engine's 0-100 without clipping), and the logistic scale behind it."""

    steps: list[Input]
    points: list[int]
    intercept: float
    weights: list[float]
    scale: float
    """Points per unit of log-odds."""
    base: int = 0
    C: float = 1.0
    converged: bool = True

    def score(self, table: pa.Table) -> np.ndarray:
        return self.base + matrix(table, self.steps) @ np.asarray(self.points, float)

    def probability(self, table: pa.Table) -> np.ndarray:
        return _sigmoid(self.intercept + matrix(table, self.steps) @ np.asarray(self.weights))

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"input": s.name, "points": p, "log_odds": round(w, 4)}
            for s, p, w in zip(self.steps, self.points, self.weights, strict=True)
            if p != 0
        ]


#: Penalties tried (C, the inverse of the L1 strength), strongest first.
C_GRID = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)


def fit_points(
    train: pa.Table,
    *,
    C: float | None = None,
    double_odds: float = 10.0,
    max_rules: int = 30,
    tolerance: float = 0.002,
    pairs: bool = False,
) -> Points:
    """Fit the L1 regression and turn it into whole points the scorecard way: ``double_odds``
    points double the odds of converting.

    The penalty is chosen on a validation part of the training rows (the last training date,
    or a random quarter): the strongest penalty whose validation AUC is within ``tolerance`` of
    the best and that keeps at most ``max_rules`` steps, so the model reads as a short list of
    behaviours that matter. When the points would span more than the engine's 0-100, they are
    scaled down so that none is clipped: the engine then ranks users exactly as the fit does.

    With ``pairs``, steps on two conditions together (:func:`pairs_for`) are inputs too."""
    singles = steps_for(train)
    X = matrix(train, singles)
    y = np.asarray(train.column("label").to_pylist(), float)
    found = pairs_for(singles, X, y) if pairs else []
    steps: list[Input] = [*singles, *found]
    if found:
        X = np.column_stack([X, matrix(train, found)])
    if C is None:
        C = _choose_C(train, X, y, max_rules=max_rules, tolerance=tolerance)
    fitted = logistic(X, y, C=C)
    steps, X, fitted = _monotone(steps, X, y, C, fitted)
    w = fitted.weights
    scale = double_odds / math.log(2.0)
    spread = float(np.abs(w).sum()) * scale
    if spread > 100:
        scale *= 100 / spread
    points = [round(x * scale) for x in w]
    kept = [i for i, p in enumerate(points) if p != 0]
    base = -sum(p for p in points if p < 0)
    while (
        base + sum(p for p in points if p > 0) > 100
    ):  # rounding pushed it over: one more step down
        scale *= 0.98
        points = [round(x * scale) for x in w]
        kept = [i for i, p in enumerate(points) if p != 0]
        base = -sum(p for p in points if p < 0)
    return Points(
        [steps[i] for i in kept],
        [points[i] for i in kept],
        fitted.intercept,
        [float(w[i]) for i in kept],
        scale,
        base=base,
        C=C,
        converged=fitted.converged,
    )


def _monotone(
    steps: list[Input], X: np.ndarray, y: np.ndarray, C: float, fitted: Fitted, rounds: int = 4
) -> tuple[list[Input], np.ndarray, Fitted]:
    """No contradicting steps: the thresholds of one number must all push the same way (more
    projects never costs points that fewer projects earned). Steps against their column's main
    direction are dropped and the rest refitted, until none is left."""
    for _ in range(rounds):
        direction: dict[str, float] = {}
        for s, w in zip(steps, fitted.weights, strict=True):
            if s.threshold is not None:
                direction[s.column] = direction.get(s.column, 0.0) + w
        keep = [
            not (s.threshold is not None and w * direction[s.column] < 0)
            for s, w in zip(steps, fitted.weights, strict=True)
        ]
        if all(keep):
            break
        steps = [s for s, k in zip(steps, keep, strict=True) if k]
        X = X[:, np.asarray(keep, bool)]
        fitted = logistic(X, y, C=C)
    return steps, X, fitted


def _choose_C(
    train: pa.Table, X: np.ndarray, y: np.ndarray, *, max_rules: int, tolerance: float
) -> float:
    """The strongest penalty that ranks a validation part of the training rows within
    ``tolerance`` of the best and keeps at most ``max_rules`` steps."""
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
        return 0.1
    results: list[tuple[float, float, int]] = []
    flat = 0
    for C in C_GRID:  # strongest penalty first; weaker ones cost more and rarely help
        f = logistic(X[fit_rows], y[fit_rows], C=C)
        auc = metrics.auc(y[val_rows], X[val_rows] @ f.weights)
        gained = not results or auc > max(a for _, a, _ in results) + tolerance
        results.append((C, auc, int(np.count_nonzero(f.weights))))
        flat = 0 if gained else flat + 1
        if flat >= 2:  # two weaker penalties in a row gained nothing: stop there
            break
    best = max(a for _, a, _ in results)
    good = [(C, a, k) for C, a, k in results if a >= best - tolerance]
    small = [r for r in good if r[2] <= max_rules]
    if small:
        return small[0][0]
    # no penalty near the best keeps within the budget (many pairs to choose from): the best
    # that does, so the model still reads as at most ``max_rules`` steps
    within = [r for r in results if r[2] <= max_rules]
    return max(within, key=lambda r: r[1])[0] if within else good[0][0]


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
        if train.column(name).null_count == train.num_rows:
            continue  # nothing to learn from (an accounts table without employees, say)
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            counts: dict[Any, int] = {}
            for v in train.column(name).to_pylist():
                if v is not None and str(v).strip() != "":
                    counts[v] = counts.get(v, 0) + 1
            # the most frequent values (the boosted trees take at most 255 categories)
            categories[name] = sorted(counts, key=lambda v: (-counts[v], v))[:250]
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
    "Input",
    "Pair",
    "Points",
    "Reference",
    "Step",
    "fit_points",
    "fit_reference",
    "logistic",
    "matrix",
    "pairs_for",
    "steps_for",
]
