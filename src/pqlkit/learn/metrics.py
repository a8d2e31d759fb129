"""Plain-number statistics for learning and evaluation (numpy, no database, no I/O)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

Z95 = 1.959963984540054


def auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); nan when only one class is present."""
    y = np.asarray(y, bool)
    score = np.asarray(score, float)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(y.size, float)
    s = score[order]
    i = 0
    while i < s.size:  # average ranks over ties
        j = i
        while j + 1 < s.size and s[j + 1] == s[i]:
            j += 1
        ranks[order[i : j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def lift_at(y: np.ndarray, score: np.ndarray, fraction: float) -> float:
    """Conversion rate among the top ``fraction`` by score, over the overall rate.

    Rows tied at the cut count in proportion (the expected rate if ties were broken at
    random), not by their order in the table: a model with few distinct scores is not judged
    by how its rows happen to be sorted."""
    y = np.asarray(y, bool)
    s = np.asarray(score, float)
    base = y.mean() if y.size else 0.0
    if base == 0:
        return float("nan")
    k = max(1, round(fraction * y.size))
    cut = np.sort(s)[::-1][k - 1]
    above = s > cut
    at = s == cut
    take = k - int(above.sum())  # how many of the tied rows make the top k
    hits = float(y[above].sum()) + (float(y[at].sum()) * take / int(at.sum()) if take > 0 else 0.0)
    return float(hits / k / base)


def precision_recall(y: np.ndarray, flag: np.ndarray) -> tuple[float, float]:
    y = np.asarray(y, bool)
    flag = np.asarray(flag, bool)
    tp = int((y & flag).sum())
    precision = tp / int(flag.sum()) if flag.any() else float("nan")
    recall = tp / int(y.sum()) if y.any() else float("nan")
    return precision, recall


def calibration(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Predicted against observed rate in bins of equal count."""
    y = np.asarray(y, float)
    p = np.asarray(p, float)
    order = np.argsort(p, kind="mergesort")
    out = []
    for chunk in np.array_split(order, min(bins, max(1, p.size))):
        if chunk.size:
            out.append(
                {
                    "predicted": float(p[chunk].mean()),
                    "observed": float(y[chunk].mean()),
                    "n": int(chunk.size),
                }
            )
    return out


@dataclass
class Lift:
    """How a yes/no fact relates to the outcome."""

    name: str
    n: int
    with_n: int
    coverage: float
    rate_with: float
    rate_without: float
    lift: float
    low: float
    high: float

    @property
    def significant(self) -> bool:
        return not math.isnan(self.low) and (self.low > 1.0 or self.high < 1.0)

    def to_dict(self) -> dict[str, float | int | str | bool]:
        return {**self.__dict__, "significant": self.significant}


def lift(name: str, fact: np.ndarray, y: np.ndarray) -> Lift:
    """Rate with and without the fact, their ratio and its 95% confidence interval (the log
    risk ratio's normal approximation, with a half count added when a cell is empty)."""
    fact = np.asarray(fact, bool)
    y = np.asarray(y, bool)
    n1 = int(fact.sum())
    n0 = int(fact.size - n1)
    a = int((fact & y).sum())
    c = int((~fact & y).sum())
    r1 = a / n1 if n1 else float("nan")
    r0 = c / n0 if n0 else float("nan")
    if n1 == 0 or n0 == 0 or a + c == 0:  # no conversions: the ratio would rank by rarity
        return Lift(
            name,
            fact.size,
            n1,
            n1 / max(fact.size, 1),
            r1,
            r0,
            float("nan"),
            float("nan"),
            float("nan"),
        )
    aa, cc = (a + 0.5, c + 0.5) if a == 0 or c == 0 else (a, c)
    nn1, nn0 = (n1 + 0.5, n0 + 0.5) if a == 0 or c == 0 else (n1, n0)
    rr = (aa / nn1) / (cc / nn0)
    se = math.sqrt(max(1 / aa - 1 / nn1 + 1 / cc - 1 / nn0, 0.0))
    return Lift(
        name,
        fact.size,
        n1,
        n1 / fact.size,
        r1,
        r0,
        rr,
        math.exp(math.log(rr) - Z95 * se),
        math.exp(math.log(rr) + Z95 * se),
    )


def needed_conversions(features: int, per_feature: int = 10) -> int:
    """Positives a regression needs to be trusted: the usual ten events per parameter."""
    return features * per_feature


__all__ = [
    "Lift",
    "auc",
    "calibration",
    "lift",
    "lift_at",
    "needed_conversions",
    "precision_recall",
]
