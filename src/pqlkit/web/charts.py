"""A lead's score over its stored runs, on a real time axis: runs a day apart sit close, runs a
month apart far apart (the report's line chart spaces its points evenly, which suits weekly
snapshots, not runs made whenever someone ran `pql score`)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from html import escape

W, H = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 48, 20, 16, 40


def _ticks(start: datetime, end: datetime, most: int = 6) -> list[datetime]:
    """Whole days between ``start`` and ``end``, at most ``most`` of them, evenly stepped."""
    days = max(1, (end - start).days)
    step = max(1, -(-days // most))
    first = datetime(start.year, start.month, start.day) + timedelta(days=1)
    if first - timedelta(days=1) == start:
        first = start
    out, at = [], first
    while at <= end:
        out.append(at)
        at += timedelta(days=step)
    return out


def score_timeline(
    points: Sequence[tuple[datetime, float | None]],
    *,
    top: float = 100,
    threshold: float | None = None,
) -> str:
    """An ``<svg>`` of (as_of, score) points on a time axis, each point with its date and score
    as its title; ``threshold`` a dashed reference line."""
    marks = sorted((t, v) for t, v in points if v is not None)
    start, end = marks[0][0], marks[-1][0]
    span = (end - start).total_seconds() or 1.0
    ymax = max([top, *(v for _, v in marks)])
    iw, ih = W - LEFT - RIGHT, H - TOP - BOTTOM

    def px(t: datetime) -> float:
        return LEFT + iw * (t - start).total_seconds() / span if end > start else LEFT + iw / 2

    def py(v: float) -> float:
        return TOP + ih - ih * max(v, 0) / ymax

    out = [
        f'<svg class="chart" data-chart="score-history" viewBox="0 0 {W} {H}" role="img" '
        'xmlns="http://www.w3.org/2000/svg"><title>Score over stored runs, by date</title>'
    ]
    for i in range(5):
        v = ymax * i / 4
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(v):.1f}" y2="{py(v):.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{py(v) + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>'
        )
    if end > start:
        for t in _ticks(start, end):
            out.append(
                f'<text x="{px(t):.1f}" y="{H - BOTTOM + 16}" text-anchor="middle" '
                f'class="tick">{t:%b %d}</text>'
            )
    if threshold is not None:
        out.append(
            f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{py(threshold):.1f}" y2="{py(threshold):.1f}" '
            f'class="ref"><title>PQL threshold {threshold:g}</title></line>'
        )
    if len(marks) > 1:
        line = " ".join(f"{px(t):.1f},{py(v):.1f}" for t, v in marks)
        out.append(f'<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{line}"/>')
    for t, v in marks:
        out.append(
            f'<circle class="mark" cx="{px(t):.1f}" cy="{py(v):.1f}" r="3.5" fill="#2563eb">'
            f"<title>{escape(f'{t:%Y-%m-%d %H:%M}')}: score {v:g}</title></circle>"
        )
    out.append("</svg>")
    return "".join(out)


__all__ = ["score_timeline"]
