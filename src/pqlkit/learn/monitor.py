"""Monitoring a replay: PQL conversion per date against the band the earlier dates set, and
drift in signal coverage (the share of users each signal fires for) and in the score
distribution.

Three things make a naive comparison with the first dates cry wolf (the demo's own data raised
9 to 13 alerts), and each is handled here:

- **Users age.** A young product's users are all new at the first dates, and a signal that
  counts over a lifetime (projects created, teammates invited) fires for more of them every
  week with nothing changed. Coverage and scores are compared within tenure bands (days since
  signup): the expected coverage of a date is the reference's coverage in each band, weighted
  by how many of the date's users are in that band (indirect standardisation); users in a band
  the reference saw too few of are left out of the comparison.
- **The data has a start.** A 60-day window 20 days after the first event holds 20 days of
  events, and a lifetime count holds as much history as the log does: both grow for that
  reason alone. Drift is measured against the :data:`DRIFT_REFERENCE` dates just before (a
  change, not a slow climb), and a signal whose window reaches before the first event is not
  compared until it fits.
- **Many tests.** Every signal at every date is one test: twenty signals over fourteen dates
  are 280 chances of a three-sigma false alarm in every report (about one in two). The limits
  are widened (Bonferroni) so that each family, conversion and coverage, raises a false alarm
  about as often as one three-sigma test: once in 370 reports.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from ..errors import DataError

#: Control limits of one test alone, in standard errors: three, as on a p-chart.
CONTROL_SIGMAS = 3.0
#: The chance of a false alarm each family of tests (conversion; coverage) is allowed per
#: report: that of one three-sigma test.
FAMILY_ALPHA = 2 * (1 - NormalDist().cdf(CONTROL_SIGMAS))
#: Tenure bands, in days since signup, within which coverage and scores are compared.
TENURE_EDGES = (0, 7, 14, 21, 28, 35, 42, 49, 56, 70, 90, 120, 180, 365, math.inf)
#: A tenure band the baseline has fewer rows in than this sets no expectation.
MIN_BAND_ROWS = 30
#: A coverage change smaller than this (absolute) is never an alert, however many users.
MIN_COVERAGE_CHANGE = 0.05
#: Drift is measured against this many dates just before (week over week, by default).
DRIFT_REFERENCE = 2
#: A population stability index above this is a moved score distribution.
PSI_LIMIT = 0.25
SCORE_EDGES = np.append(np.linspace(0, 100, 11)[:-1], 100.0001)


def sigmas(tests: int) -> float:
    """Control limits, in standard errors, for ``tests`` tests sharing :data:`FAMILY_ALPHA`."""
    return NormalDist().inv_cdf(1 - FAMILY_ALPHA / (2 * max(tests, 1)))


def tenure_bands(tenure: np.ndarray) -> np.ndarray:
    """Each row's tenure band (an index into :data:`TENURE_EDGES`; -1: tenure unknown)."""
    t = np.nan_to_num(np.asarray(tenure, float), nan=-1.0)
    band = np.searchsorted(np.asarray(TENURE_EDGES[1:-1]), t, side="right")
    return np.where(t < 0, -1, band)


def _psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """Population stability index of the ``actual`` histogram against the ``expected`` one."""
    e = np.maximum(expected / max(expected.sum(), 1e-12), 1e-4)
    a = np.maximum(actual / max(actual.sum(), 1e-12), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _drift_alerts(drift: list[dict[str, Any]]) -> list[str]:
    """One line per drifting thing: since when, and where it is now."""
    out = []
    names = sorted({f for d in drift for f in d["flags"]}, key=lambda f: (f != "score", f))
    for name in names:
        hit = [d for d in drift if name in d["flags"]]
        last = hit[-1]
        if name == "score":
            out.append(
                f"score distribution: PSI {last['psi']:.2f} on {last['as_of']:%Y-%m-%d} "
                f"(above 0.25 since {hit[0]['as_of']:%Y-%m-%d}; users of the same tenure compared)"
            )
        else:
            out.append(
                f"{name} coverage {last['coverage'][name]:.0%} on {last['as_of']:%Y-%m-%d} against "
                f"{last['expected_coverage'][name]:.0%} expected from the dates before for users of "
                f"the same tenure (moved since {hit[0]['as_of']:%Y-%m-%d})"
            )
    return out


def monitor(r: Any, *, baseline_share: float = 0.5) -> dict[str, Any]:
    """PQL-to-opportunity conversion per date against the band the baseline dates (the
    earlier ``baseline_share`` of complete dates) set (a p-chart: the baseline rate plus or
    minus :func:`sigmas` standard errors for that date's number of new PQLs), and drift of
    signal coverage (the share of users the signal fires for, as its kind decides: a recency
    signal fires when the last activity is old enough, not when its value is above zero) and of
    the score distribution (PSI) against the :data:`DRIFT_REFERENCE` dates before, users of the
    same tenure compared."""
    reported = list(r.reported)
    complete = [i for i in reported if r.complete[i]]
    if len(reported) < 2:
        raise DataError("monitoring needs at least two replayed dates")
    k = max(1, int(len(complete or reported) * baseline_share))
    base_dates = (complete or reported)[:k]
    base_pql = np.isin(r.date_index, base_dates) & r.new_pql
    p0 = float(r.opportunity[base_pql].mean()) if base_pql.any() else float("nan")
    fired = {name: r.fired.get(name, values > 0) for name, values in r.signals.items()}
    tenure = getattr(r, "tenure", None)
    band = tenure_bands(tenure if tenure is not None else np.full(r.score.size, np.nan))
    z_conv = sigmas(sum(1 for i in reported if r.complete[i] and i not in base_dates))
    z_cover = sigmas(len(reported) * len(fired))
    conversion, drift = [], []
    for i in reported:
        at = r.date_index == i
        group = at & r.new_pql
        n = int(group.sum())
        row: dict[str, Any] = {
            "as_of": r.dates[i],
            "complete": r.complete[i],
            "new_pqls": n,
            "baseline": i in base_dates,
        }
        if r.complete[i] and n and not math.isnan(p0):
            k_conv = int(r.opportunity[group].sum())
            half = z_conv * math.sqrt(p0 * (1 - p0) / n)
            row.update(
                rate=k_conv / n, expected=p0, low=max(0.0, p0 - half), high=min(1.0, p0 + half)
            )
            row["outside"] = not (row["low"] <= row["rate"] <= row["high"])
        conversion.append(row)
        ref = (r.date_index >= i - DRIFT_REFERENCE) & (r.date_index < i)
        sub = np.flatnonzero(at | ref)  # the date and its reference only: a few of many dates
        found = _drift_at(
            r.score[sub],
            {name: f[sub] for name, f in fired.items()},
            _whole_windows(r, i, fired),
            band[sub],
            at[sub],
            ref[sub],
            z_cover,
        )
        drift.append({"as_of": r.dates[i], **found})
    alerts = [
        f"{row['as_of']:%Y-%m-%d}: PQL to opportunity {row['rate']:.1%} of {row['new_pqls']} new PQLs, "
        f"{'above' if row['rate'] > row['high'] else 'below'} the expected {row['low']:.1%}-{row['high']:.1%}"
        for row in conversion
        if row.get("outside") and not row["baseline"]
    ]
    alerts += _drift_alerts(drift)
    return {
        "baseline_dates": [r.dates[i] for i in base_dates],
        "expected_rate": None if math.isnan(p0) else p0,
        "control_sigmas": {"conversion": z_conv, "coverage": z_cover},
        "conversion": conversion,
        "drift": drift,
        "alerts": alerts,
    }


def _whole_windows(r: Any, i: int, fired: dict[str, np.ndarray]) -> set[str]:
    """The signals whose window, at date ``i`` and at the reference dates before it, lies
    wholly after the first event: a window cut short by the start of the data counts less
    than the same window will later, so comparing it would show growth that is not there."""
    start = getattr(r, "data_start", None)
    lookback = getattr(r, "lookback", {}) or {}
    first = r.dates[max(0, i - DRIFT_REFERENCE)]
    return {
        name
        for name in fired
        if start is None
        or name not in lookback
        or (first - start).total_seconds() >= lookback[name] * 86400
    }


def _drift_at(
    score: np.ndarray,
    fired: dict[str, np.ndarray],
    whole: set[str],
    band: np.ndarray,
    at: np.ndarray,
    ref: np.ndarray,
    z: float,
) -> dict[str, Any]:
    """One date's drift: its users whose tenure band the reference rows know, against what the
    reference's users of the same bands did, weighted by this date's mix of bands."""
    bands = [b for b in np.unique(band[ref]) if (ref & (band == b)).sum() >= MIN_BAND_ROWS]
    in_ref = {b: ref & (band == b) for b in bands}
    counts = {b: int((at & (band == b)).sum()) for b in bands}
    comparable = sum(counts.values())
    out: dict[str, Any] = {
        "users": int(at.sum()),
        "compared": comparable,
        "psi": 0.0,
        "coverage": {},
        "expected_coverage": {},
        "flags": [],
        "window_cut_short": sorted(set(fired) - whole),
    }
    if not comparable:
        return out
    w = {b: c / comparable for b, c in counts.items()}
    rows = at & np.isin(band, bands)
    expected = sum(
        w[b] * np.histogram(score[m], SCORE_EDGES)[0] / m.sum() for b, m in in_ref.items()
    )
    out["psi"] = psi = _psi(expected, np.histogram(score[rows], SCORE_EDGES)[0].astype(float))
    if psi > PSI_LIMIT:
        out["flags"].append("score")
    for name, fires in fired.items():
        c0_b = {b: float(fires[m].mean()) for b, m in in_ref.items()}
        c1 = float(fires[rows].mean())
        c0 = sum(w[b] * c0_b[b] for b in bands)
        var = sum(
            w[b] ** 2 * max(c0_b[b] * (1 - c0_b[b]), 1e-9) * (1 / counts[b] + 1 / in_ref[b].sum())
            for b in bands
            if counts[b]
        )
        out["coverage"][name], out["expected_coverage"][name] = c1, c0
        if (
            name in whole
            and abs(c1 - c0) >= MIN_COVERAGE_CHANGE
            and abs(c1 - c0) / math.sqrt(var) > z
        ):
            out["flags"].append(name)
    return out


__all__ = [
    "CONTROL_SIGMAS",
    "DRIFT_REFERENCE",
    "FAMILY_ALPHA",
    "MIN_BAND_ROWS",
    "MIN_COVERAGE_CHANGE",
    "TENURE_EDGES",
    "monitor",
    "sigmas",
    "tenure_bands",
]
