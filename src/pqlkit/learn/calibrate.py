"""The likelihood a score means: a calibration fitted on the point-in-time backtest.

The learned points of the earlier dates' rows (uncapped: base plus steps, as the proposed model
computes its ``points``) are mapped to the label with two calibrators, each judged on the last
date's rows: Platt scaling (a one-input logistic curve) and isotonic regression (a monotone step
function). Platt is what the model stores, and the comparison says why: a curve is strictly
increasing, so users with different points never share a likelihood, while isotonic's steps put
whole score ranges on one value (the ties the ranking exists to break); its Brier score on the
held-out date is reported beside Platt's so a worse fit would show.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..model.calibration import DEFAULT_GRADES

#: Fewer conversions than this before the last date and no calibration is fitted.
MIN_CONVERSIONS = 20


@dataclass
class Calibrated:
    """A fitted calibration and the evidence for it."""

    intercept: float
    slope: float
    brier_platt: float
    brier_isotonic: float
    brier_base_rate: float
    isotonic_levels_in_top_decile: int
    """How many distinct likelihoods isotonic gives the held-out top 10% (Platt: one per
    distinct point total)."""
    platt_levels_in_top_decile: int
    rows: int
    conversions: int

    def section(self, outcome: str, horizon_days: int) -> dict[str, Any]:
        """The model's ``calibration:`` section."""
        return {
            "outcome": outcome,
            "horizon": f"{horizon_days}d",
            "intercept": round(self.intercept, 6),
            "slope": round(self.slope, 6),
            "fitted_on": (
                f"Platt scaling on {self.rows:,} backtest rows ({self.conversions:,} conversions); "
                f"held-out Brier {self.brier_platt:.4f} (isotonic {self.brier_isotonic:.4f}, "
                f"base rate {self.brier_base_rate:.4f})"
            ),
            "grades": [g.model_dump() for g in DEFAULT_GRADES],
        }

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def likelihood(points: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    """The model's likelihood of ``points``, as the engine computes it."""
    z = np.clip(intercept + slope * np.asarray(points, float), -50, 50)
    return 1.0 / (1.0 + np.exp(-z))


def fit(
    train_points: np.ndarray, y_train: np.ndarray, test_points: np.ndarray, y_test: np.ndarray
) -> Calibrated | None:
    """Platt and isotonic on the earlier rows, judged on the held-out ones; None when the
    points do not rise with converting (a curve must increase) or conversions are too few."""
    from sklearn.isotonic import IsotonicRegression
    from sklearn.linear_model import LogisticRegression

    x = np.asarray(train_points, float).reshape(-1, 1)
    y = np.asarray(y_train, bool)
    if int(y.sum()) < MIN_CONVERSIONS or y.all() or len(np.unique(x)) < 2:
        return None
    platt = LogisticRegression(C=1e6, solver="lbfgs", max_iter=1000).fit(x, y)
    slope, intercept = float(platt.coef_[0][0]), float(platt.intercept_[0])
    if not slope > 0 or not math.isfinite(intercept):
        return None
    iso = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(x.ravel(), y)
    xt, yt = np.asarray(test_points, float), np.asarray(y_test, float)
    p_platt, p_iso = likelihood(xt, intercept, slope), iso.predict(xt)
    top = np.argsort(-xt, kind="stable")[: max(1, len(xt) // 10)]
    return Calibrated(
        intercept=intercept,
        slope=min(slope, 10.0),
        brier_platt=float(np.mean((p_platt - yt) ** 2)),
        brier_isotonic=float(np.mean((p_iso - yt) ** 2)),
        brier_base_rate=float(np.mean((y.mean() - yt) ** 2)),
        isotonic_levels_in_top_decile=len(np.unique(p_iso[top])),
        platt_levels_in_top_decile=len(np.unique(p_platt[top])),
        rows=len(y),
        conversions=int(y.sum()),
    )
