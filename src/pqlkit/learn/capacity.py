"""The capacity curve: for every threshold, the new leads a week it lets through, their
conversion, and the conversions sales works given its capacity; the threshold that fits, or,
when none does, the words that say so."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataError


def capacity_curve(r: Any, capacity: float, thresholds=range(0, 101)) -> dict[str, Any]:
    """For each threshold (``r``: a :class:`~pqlkit.learn.backtest.Replay`, which imports this
    module): the users who newly cross it each date (with the PQL gates), their
    conversion, and the conversions sales works when each date's new leads are worked best
    score first, up to ``capacity`` a date. The recommended threshold is, of those whose new
    leads fit the capacity, the one that works the most conversions (ties: the higher
    threshold, less work); when none fits, the one that lets the fewest through, and ``note``
    says so in words."""
    ok = r.rows_complete()
    dates = [i for i in r.reported if r.complete[i]]
    if not dates:
        raise DataError("no complete dates to measure capacity on: move --to back by the horizon")
    order_by_date = {i: np.flatnonzero(ok & (r.date_index == i)) for i in dates}
    curve = []
    for t in thresholds:
        qualified = r.gate & (r.score >= t)
        was = r.prev_gate & (np.nan_to_num(r.prev_score, nan=-1) >= t)
        new = qualified & ~was
        leads = conv = worked = 0.0
        for i in dates:
            rows = order_by_date[i][new[order_by_date[i]]]
            leads += rows.size
            conv += r.opportunity[rows].sum()
            top = rows[np.argsort(-r.score[rows], kind="mergesort")][: int(capacity)]
            worked += r.opportunity[top].sum()
        n = len(dates)
        curve.append(
            {
                "threshold": t,
                "leads_per_week": leads / n,
                "conversion": float(conv / leads) if leads else None,
                "conversions_per_week": float(conv / n),
                "worked_conversions_per_week": float(worked / n),
                "missed_conversions_per_week": float((conv - worked) / n),
            }
        )
    fitting = [c for c in curve if c["leads_per_week"] <= capacity + 1e-9]
    if fitting:
        best = max(
            fitting, key=lambda c: (round(c["worked_conversions_per_week"], 9), c["threshold"])
        )
    else:
        best = min(
            curve,
            key=lambda c: (
                round(c["leads_per_week"], 9),
                -round(c["worked_conversions_per_week"], 9),
                -c["threshold"],
            ),
        )
    return {
        "capacity_per_week": capacity,
        "recommended_threshold": best["threshold"],
        "recommended": best,
        "fits": bool(fitting),
        "note": _capacity_note(best, capacity, bool(fitting)),
        "curve": curve,
    }


def _capacity_note(best: dict[str, Any], capacity: float, fits: bool) -> str:
    """The capacity finding in words: the threshold, and whether it fits."""
    t, leads = best["threshold"], best["leads_per_week"]
    worked = best["worked_conversions_per_week"]
    rate = "" if best["conversion"] is None else f" ({best['conversion']:.0%} convert)"
    if fits:
        return (
            f"Threshold {t} fits a capacity of {capacity:g} leads a week: {leads:.1f} new leads a "
            f"week{rate}, and sales works {worked:.1f} conversions a week."
        )
    return (
        f"No threshold fits a capacity of {capacity:g} leads a week: even the best available, "
        f"{t}, lets {leads:.1f} new leads a week through{rate}. Worked best score first, the "
        f"first {capacity:g} bring {worked:.1f} conversions a week and "
        f"{best['missed_conversions_per_week']:.1f} go unworked; fitting them all takes a "
        f"capacity of {math.ceil(leads):,} a week, or a model that ranks fewer people that high."
    )


__all__ = ["capacity_curve"]
