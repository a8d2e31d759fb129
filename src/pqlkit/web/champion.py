"""The model page's challenger section: the live model against the challenger scored beside
it (`pql compare`'s figures), as one HTML block; nothing when no challenger was scored."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from ..errors import PqlkitError


def _pct(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.1%}"


def _auc(v: float | None) -> str:
    return "-" if v is None or math.isnan(v) else f"{v:.3f}"


def _rate(r: dict[str, Any]) -> str:
    if r["rate"] is None:
        return "-"
    return f"{_pct(r['rate'])} ({_pct(r['low'])}-{_pct(r['high'])}; {r['hits']:.4g} of {r['n']:,})"


def section(engine: Any, outcome: str = "opportunity") -> str:
    """The challenger section for the model page (empty before any challenger run)."""
    from ..usecases.champion import compare, scored_any
    from ..usecases.session import Session

    session = Session.of(engine)
    if not scored_any(session):
        return ""
    try:
        c = compare(session, outcome=outcome).to_dict()
    except PqlkitError as exc:  # e.g. no outcomes mapped: said in the section, the page goes on
        return (
            '<section id="challenger"><h2>Challenger</h2>'
            f'<div class="alert">{escape(str(exc))}</div></section>'
        )
    head = [
        "model",
        "AUC (95%)",
        f"precision at {c['capacity']}",
        "PQLs",
        "PQL to outcome",
        "PQL to won",
    ]
    rows = []
    for who in ("live", "challenger"):
        m = c[who]
        cells = [
            f"{who} {m['version']}",
            f"{_auc(m['auc'])} ({_auc(m['auc_low'])}-{_auc(m['auc_high'])})",
            _rate(m["precision_at_capacity"]),
            f"{m['pqls']:,}",
            _rate(m["pql_to_outcome"]),
            _rate(m["pql_to_won"]),
        ]
        rows.append("<tr>" + "".join(f"<td>{escape(x)}</td>" for x in cells) + "</tr>")
    table = (
        "<table><thead><tr>"
        + "".join(f"<th>{escape(h)}</th>" for h in head)
        + f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )
    alerts = "".join(f'<div class="alert">{escape(w)}</div>' for w in c["warnings"])
    return (
        '<section id="challenger"><h2>Challenger beside the live model</h2>'
        f'<p class="muted">{c["rows"]:,} users scored by both at {len(c["dates"])} runs, '
        f"{c['conversions']:,} converted ({escape(c['outcome'])}). Challenger AUC minus live: "
        f"{_auc(c['auc_difference'])} ({_auc(c['auc_difference_low'])}-"
        f"{_auc(c['auc_difference_high'])}): {escape(c['verdict'])}.</p>"
        f"{table}{alerts}</section>"
    )


__all__ = ["section"]
