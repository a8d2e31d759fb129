"""Monitoring a replay: PQL conversion per date against the band the earlier dates set, and
drift in signal coverage (the share of users each signal fires for) and in the score
distribution."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError

#: Control limits of the conversion band, in standard errors: three, as on a p-chart, so a
#: steady model raises a false alarm about once in 370 dates, not once in 20.
CONTROL_SIGMAS = 3.0


def _psi(expected: np.ndarray, actual: np.ndarray, edges: np.ndarray) -> float:
    """Population stability index of ``actual`` against ``expected`` over ``edges``."""
    e = np.histogram(expected, edges)[0].astype(float)
    a = np.histogram(actual, edges)[0].astype(float)
    e = np.maximum(e / max(e.sum(), 1), 1e-4)
    a = np.maximum(a / max(a.sum(), 1), 1e-4)
    return float(np.sum((a - e) * np.log(a / e)))


def _drift_alerts(drift: list[dict[str, Any]]) -> list[str]:
    """One line per drifting thing: since when, and where it is now."""
    out = []
    names = sorted({f for d in drift for f in d["flags"]}, key=lambda f: (f != "score", f))
    for name in names:
        hit = [d for d in drift if name in d["flags"]]
        last = drift[-1]
        if name == "score":
            out.append(
                f"score distribution: PSI {last['psi']:.2f} on {last['as_of']:%Y-%m-%d} "
                f"(above 0.25 since {hit[0]['as_of']:%Y-%m-%d})"
            )
        else:
            out.append(
                f"{name} coverage {last['baseline_coverage'][name]:.0%} in the baseline, "
                f"{last['coverage'][name]:.0%} on {last['as_of']:%Y-%m-%d} (moved since {hit[0]['as_of']:%Y-%m-%d})"
            )
    return out


def monitor(r: Any, *, baseline_share: float = 0.5) -> dict[str, Any]:
    """PQL-to-opportunity conversion per date against the band the baseline dates (the
    earlier ``baseline_share`` of complete dates) set (a p-chart: the baseline rate plus or
    minus three standard errors for that date's number of new PQLs), and drift of signal coverage
    (the share of users the signal fires for, as its kind decides: a recency signal fires when
    the last activity is old enough, not when its value is above zero) and of the score
    distribution (PSI) against the same baseline."""
    reported = list(r.reported)
    complete = [i for i in reported if r.complete[i]]
    if len(reported) < 2:
        raise DataError("monitoring needs at least two replayed dates")
    k = max(1, int(len(complete or reported) * baseline_share))
    base_dates = (complete or reported)[:k]
    base = np.isin(r.date_index, base_dates)
    base_pql = base & r.new_pql
    p0 = float(r.opportunity[base_pql].mean()) if base_pql.any() else float("nan")
    fired = {name: r.fired.get(name, values > 0) for name, values in r.signals.items()}
    base_cover = {name: float(f[base].mean()) if base.any() else 0.0 for name, f in fired.items()}
    edges = np.linspace(0, 100, 11)
    edges[-1] = 100.0001
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
            half = CONTROL_SIGMAS * math.sqrt(p0 * (1 - p0) / n)
            row.update(
                rate=k_conv / n, expected=p0, low=max(0.0, p0 - half), high=min(1.0, p0 + half)
            )
            row["outside"] = not (row["low"] <= row["rate"] <= row["high"])
        conversion.append(row)
        flags = []
        psi = _psi(r.score[base], r.score[at], edges)
        if psi > 0.25:
            flags.append("score")
        cover = {}
        for name, fires in fired.items():
            c0 = base_cover[name]
            c1 = float(fires[at].mean()) if at.any() else 0.0
            cover[name] = c1
            se = math.sqrt(
                max(c0 * (1 - c0), 1e-9) * (1 / max(base.sum(), 1) + 1 / max(at.sum(), 1))
            )
            if abs(c1 - c0) >= 0.05 and abs(c1 - c0) / se > 3:
                flags.append(name)
        drift.append(
            {
                "as_of": r.dates[i],
                "psi": psi,
                "coverage": cover,
                "baseline_coverage": base_cover,
                "flags": flags,
            }
        )
    later = [row for row in conversion if not row["baseline"]]
    alerts = [
        f"{row['as_of']:%Y-%m-%d}: PQL to opportunity {row['rate']:.1%} of {row['new_pqls']} new PQLs, "
        f"{'above' if row['rate'] > row['high'] else 'below'} the expected {row['low']:.1%}-{row['high']:.1%}"
        for row in later
        if row.get("outside")
    ]
    alerts += _drift_alerts(
        [d for d in drift if d["as_of"] not in {r.dates[i] for i in base_dates}]
    )
    return {
        "baseline_dates": [r.dates[i] for i in base_dates],
        "expected_rate": None if math.isnan(p0) else p0,
        "conversion": conversion,
        "drift": drift,
        "alerts": alerts,
    }


__all__ = ["CONTROL_SIGMAS", "monitor"]
