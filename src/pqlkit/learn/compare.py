"""Champion against challenger on the outcomes as they arrive.

:func:`paired` is one query: every user scored by both models at the same date (the live
model's stored scores and the challenger's, scored beside that very run), users already
converted before the date left out, and what they did after it: the outcome within the
horizon, closed-won within the won horizon. Everything else is plain numpy over those rows:

- :func:`figures`: per model, AUC (with a bootstrap interval), precision at sales capacity
  (the top ``capacity`` users a date, ties counted in proportion), and PQL to opportunity and
  to won (Wilson intervals);
- :func:`compare`: both models' figures on the same rows and the challenger's AUC minus the
  live model's, with a paired bootstrap interval (the same resampled rows for both).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np

from .dataset import outcome_times
from .metrics import Z95

BOOTSTRAP = 400
"""Resamples for the AUC intervals (a fixed seed: the same rows give the same interval)."""


def _flags(pairs: ir.Table, times: ir.Table, on: str, horizon: timedelta) -> ir.Table:
    """Per (as_of, user_id): whether an outcome of ``times`` came before the date, and
    whether one came within ``horizon`` after it, matched on ``on`` (user or account)."""
    p = pairs.select("as_of", "user_id", _k=pairs[on])
    t = times.filter(times[on].notnull()).select(_k2=times[on], _when=times.when)
    j = p.join(t, p._k == t._k2)
    end = j.as_of + ibis.interval(seconds=int(horizon.total_seconds()))
    return j.group_by(["as_of", "user_id"]).aggregate(
        _before=(j._when < j.as_of).any(),
        _hit=((j._when >= j.as_of) & (j._when < end)).any(),
    )


def paired(
    live: ir.Table,
    challenger: ir.Table,
    outcomes: ir.Table,
    version: str,
    *,
    outcome: str = "opportunity",
    horizon: timedelta = timedelta(days=30),
    won_horizon: timedelta = timedelta(days=60),
) -> ir.Table:
    """Users scored by the live model and by challenger ``version`` at the same dates (the
    live version the challenger was scored beside), not converted before the date: as_of,
    user_id, both scores and flags, ``converted`` (``outcome`` within ``horizon``) and
    ``won`` (closed-won within ``won_horizon``)."""
    c = challenger.filter(challenger.model_version == version)
    c = c.select(
        "as_of",
        "user_id",
        _cv=c.champion_version,
        challenger_score=c.score,
        challenger_pql=c.is_pql,
    )
    lv = live.select(
        _as_of=live.as_of,
        _uid=live.user_id,
        _lv=live.model_version,
        account_id=live.account_id,
        live_score=live.score,
        live_pql=live.is_pql,
    )
    j = c.join(lv, [c.as_of == lv._as_of, c.user_id == lv._uid, c._cv == lv._lv])
    pairs = j.select(
        "as_of",
        "user_id",
        "account_id",
        "live_score",
        "live_pql",
        "challenger_score",
        "challenger_pql",
        live_version=j._cv,
    )
    out = pairs
    for name, kind, span in (("c", outcome, horizon), ("w", "closed_won", won_horizon)):
        times = outcome_times(outcomes, kind)
        for on in ("user_id", "account_id"):
            f = _flags(pairs, times, on, span).rename(
                {f"_{name}{on[0]}b": "_before", f"_{name}{on[0]}h": "_hit"}
            )
            out = out.left_join(
                f, [out.as_of == f.as_of, out.user_id == f.user_id], rname="{name}_r"
            )
            out = out.drop("as_of_r", "user_id_r")
    converted_before = out._cub.fill_null(False) | out._cab.fill_null(False)
    return out.filter(~converted_before).select(
        "as_of",
        "user_id",
        "live_version",
        "live_score",
        "live_pql",
        "challenger_score",
        "challenger_pql",
        converted=out._cuh.fill_null(False) | out._cah.fill_null(False),
        won=out._wuh.fill_null(False) | out._wah.fill_null(False),
    )


# --- plain numbers -----------------------------------------------------------------------------


def fast_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve by average ranks (ties count half), vectorised for the
    bootstrap; equal to :func:`pqlkit.learn.metrics.auc`."""
    y = np.asarray(y, bool)
    n1 = int(y.sum())
    n0 = y.size - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    _, inverse, counts = np.unique(
        np.asarray(score, float), return_inverse=True, return_counts=True
    )
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2.0) / (n1 * n0))


def wilson(k: float, n: int) -> tuple[float, float, float]:
    """The rate k/n and its 95% Wilson interval (nan without rows)."""
    if n <= 0:
        return float("nan"), float("nan"), float("nan")
    p = k / n
    z2 = Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    return p, max(0.0, centre - half), min(1.0, centre + half)


def top_hits(y: np.ndarray, score: np.ndarray, k: int) -> float:
    """Conversions among the top ``k`` by score, rows tied at the cut counted in proportion
    (the expected number if ties were broken at random)."""
    y = np.asarray(y, bool)
    s = np.asarray(score, float)
    k = min(k, y.size)
    if k <= 0:
        return 0.0
    cut = np.sort(s)[::-1][k - 1]
    above, at = s > cut, s == cut
    take = k - int(above.sum())
    return float(y[above].sum()) + float(y[at].sum()) * take / int(at.sum())


@dataclass
class Rate:
    """A rate with its 95% interval and what it is counted over."""

    rate: float
    low: float
    high: float
    hits: float
    n: int

    @classmethod
    def of(cls, k: float, n: int) -> Rate:
        rate, low, high = wilson(k, n)
        return cls(rate, low, high, k, n)

    def to_dict(self) -> dict[str, Any]:
        return {
            k: (None if isinstance(v, float) and math.isnan(v) else v)
            for k, v in self.__dict__.items()
        }


@dataclass
class Figures:
    """One model on the paired rows."""

    name: str
    version: str
    auc: float
    auc_low: float
    auc_high: float
    precision_at_capacity: Rate
    pqls: int
    pql_to_outcome: Rate
    pql_to_won: Rate

    def to_dict(self) -> dict[str, Any]:
        nan = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        return {
            "name": self.name,
            "version": self.version,
            "auc": nan(self.auc),
            "auc_low": nan(self.auc_low),
            "auc_high": nan(self.auc_high),
            "precision_at_capacity": self.precision_at_capacity.to_dict(),
            "pqls": self.pqls,
            "pql_to_outcome": self.pql_to_outcome.to_dict(),
            "pql_to_won": self.pql_to_won.to_dict(),
        }


@dataclass
class Comparison:
    """Both models on the same users and dates, and which ranks better."""

    outcome: str
    dates: list[datetime]
    open_dates: list[datetime]
    """Dates whose horizon reaches past the data: their outcomes are still arriving."""
    rows: int
    conversions: int
    won: int
    capacity: int
    live: Figures
    challenger: Figures
    auc_difference: float
    auc_difference_low: float
    auc_difference_high: float
    warnings: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """Which model ranks better, or that the interval cannot tell yet."""
        if math.isnan(self.auc_difference_low):
            return "not enough outcomes yet to tell which model ranks better"
        if self.auc_difference_low > 0:
            return "the challenger ranks better (its AUC interval over the live model's is above 0)"
        if self.auc_difference_high < 0:
            return "the live model ranks better (the challenger's AUC difference is below 0)"
        return "no difference yet: the AUC difference's interval includes 0"

    def to_dict(self) -> dict[str, Any]:
        nan = lambda v: None if isinstance(v, float) and math.isnan(v) else v  # noqa: E731
        return {
            "outcome": self.outcome,
            "dates": [d.isoformat() for d in self.dates],
            "open_dates": [d.isoformat() for d in self.open_dates],
            "rows": self.rows,
            "conversions": self.conversions,
            "won": self.won,
            "capacity": self.capacity,
            "live": self.live.to_dict(),
            "challenger": self.challenger.to_dict(),
            "auc_difference": nan(self.auc_difference),
            "auc_difference_low": nan(self.auc_difference_low),
            "auc_difference_high": nan(self.auc_difference_high),
            "verdict": self.verdict,
            "warnings": self.warnings,
        }


def _bootstrap(y: np.ndarray, a: np.ndarray, b: np.ndarray, reps: int, seed: int) -> np.ndarray:
    """AUCs of ``a``, of ``b`` and their difference on ``reps`` resamples of the same rows."""
    rng = np.random.default_rng(seed)
    out = np.full((reps, 3), np.nan)
    for i in range(reps):
        idx = rng.integers(0, y.size, y.size)
        ya = fast_auc(y[idx], a[idx])
        yb = fast_auc(y[idx], b[idx])
        out[i] = (ya, yb, yb - ya)
    return out


def _interval(values: np.ndarray) -> tuple[float, float]:
    v = values[np.isfinite(values)]
    if v.size < 10:
        return float("nan"), float("nan")
    return float(np.quantile(v, 0.025)), float(np.quantile(v, 0.975))


def compare(
    rows: dict[str, np.ndarray],
    *,
    outcome: str,
    capacity: int,
    versions: tuple[str, str],
    data_end: datetime,
    horizon: timedelta,
    reps: int = BOOTSTRAP,
    seed: int = 0,
) -> Comparison:
    """Both models' figures on ``rows`` (the columns of :func:`paired`, as arrays)."""
    as_of = np.asarray(rows["as_of"], object)
    y = np.asarray(rows["converted"], bool)
    won = np.asarray(rows["won"], bool)
    dates = sorted(set(as_of.tolist()))
    scores = {
        "live": np.asarray(rows["live_score"], float),
        "challenger": np.asarray(rows["challenger_score"], float),
    }
    flags = {
        "live": np.asarray(rows["live_pql"], bool),
        "challenger": np.asarray(rows["challenger_pql"], bool),
    }
    boot = _bootstrap(y, scores["live"], scores["challenger"], reps, seed) if y.size else None
    figures = {}
    for i, name in enumerate(("live", "challenger")):
        s, flag = scores[name], flags[name]
        hits = sum(top_hits(y[as_of == d], s[as_of == d], capacity) for d in dates)
        worked = sum(min(capacity, int((as_of == d).sum())) for d in dates)
        low, high = _interval(boot[:, i]) if boot is not None else (float("nan"),) * 2
        figures[name] = Figures(
            name=name,
            version=versions[i],
            auc=fast_auc(y, s),
            auc_low=low,
            auc_high=high,
            precision_at_capacity=Rate.of(hits, worked),
            pqls=int(flag.sum()),
            pql_to_outcome=Rate.of(int((flag & y).sum()), int(flag.sum())),
            pql_to_won=Rate.of(int((flag & won).sum()), int(flag.sum())),
        )
    diff_low, diff_high = _interval(boot[:, 2]) if boot is not None else (float("nan"),) * 2
    open_dates = [d for d in dates if d + horizon > data_end]
    warnings = []
    if open_dates:
        warnings.append(
            f"{len(open_dates)} of {len(dates)} dates have a horizon reaching past the data "
            f"({', '.join(f'{d:%Y-%m-%d}' for d in open_dates)}): their outcomes are still "
            "arriving, so rates there will rise"
        )
    if not y.any():
        warnings.append(
            f"no {outcome} outcome yet among the {y.size:,} users both models scored: nothing to "
            "tell the models apart by; compare again as outcomes arrive"
        )
    return Comparison(
        outcome=outcome,
        dates=dates,
        open_dates=open_dates,
        rows=int(y.size),
        conversions=int(y.sum()),
        won=int(won.sum()),
        capacity=capacity,
        live=figures["live"],
        challenger=figures["challenger"],
        auc_difference=figures["challenger"].auc - figures["live"].auc,
        auc_difference_low=diff_low,
        auc_difference_high=diff_high,
        warnings=warnings,
    )


__all__ = [
    "BOOTSTRAP",
    "Comparison",
    "Figures",
    "Rate",
    "compare",
    "fast_auc",
    "paired",
    "top_hits",
    "wilson",
]
