"""Small, dependency-free SVG charts for the report: bars, grouped bars, lines, scatter.

Each function returns one ``<svg>`` element as text, sized by its viewBox so it scales with the
page; every mark carries a ``<title>`` so a reader can hover for the exact figure. No scripts,
no fonts or images from elsewhere: the report opens offline.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

W, H = 720, 300
M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 64, 20, 20, 56
PALETTE = ("#2563eb", "#f97316", "#16a34a", "#9333ea", "#dc2626", "#0891b2")


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if abs(v) >= 100 or float(v).is_integer():
        return f"{v:,.0f}"
    return f"{v:.3g}"


def _nice_max(v: float) -> float:
    if v <= 0 or math.isnan(v):
        return 1.0
    exp = 10 ** math.floor(math.log10(v))
    for m in (1, 2, 2.5, 5, 10):
        if v <= m * exp:
            return m * exp
    return 10 * exp


def _frame(
    kind: str,
    title: str,
    body: list[str],
    ymax: float,
    *,
    percent: bool = False,
    ylabel: str = "",
    xlabel: str = "",
    legend: Sequence[tuple[str, str]] = (),
) -> str:
    out = [
        f'<svg class="chart" data-chart="{escape(kind)}" viewBox="0 0 {W} {H}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    ih = H - M_TOP - M_BOTTOM
    for i in range(5):
        v = ymax * i / 4
        y = M_TOP + ih - ih * i / 4
        label = (
            (f"{v:.0%}" if round(v * 100, 6).is_integer() else f"{v:.1%}") if percent else _fmt(v)
        )
        out.append(
            f'<line x1="{M_LEFT}" x2="{W - M_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        out.append(
            f'<text x="{M_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{label}</text>'
        )
    if ylabel:
        out.append(
            f'<text x="14" y="{M_TOP + ih / 2:.0f}" transform="rotate(-90 14 {M_TOP + ih / 2:.0f})" '
            f'text-anchor="middle" class="axis">{escape(ylabel)}</text>'
        )
    if xlabel:
        out.append(
            f'<text x="{M_LEFT + (W - M_LEFT - M_RIGHT) / 2:.0f}" y="{H - 6}" text-anchor="middle" '
            f'class="axis">{escape(xlabel)}</text>'
        )
    out.extend(body)
    x = M_LEFT
    for name, color in legend:
        out.append(
            f'<rect x="{x}" y="4" width="10" height="10" fill="{color}"/>'
            f'<text x="{x + 14}" y="13" class="tick">{escape(name)}</text>'
        )
        x += 24 + 7 * len(name)
    out.append("</svg>")
    return "".join(out)


def _xticks(labels: Sequence[str], at, *, most: int) -> list[str]:
    """Labels under the x axis, at most ``most`` of them (every n-th)."""
    step = max(1, math.ceil(len(labels) / most))
    return [
        f'<text x="{at(i):.1f}" y="{H - M_BOTTOM + 16}" text-anchor="middle" class="tick">{escape(label)}</text>'
        for i, label in enumerate(labels)
        if i % step == 0
    ]


def bars(
    kind: str,
    title: str,
    labels: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    percent: bool = False,
    ylabel: str = "",
    xlabel: str = "",
    bands: Sequence[tuple[int, float, float, str]] = (),
) -> str:
    """Grouped vertical bars: one group per label, one bar per series. ``bands`` shade a range
    (group index, low, high, note) behind a group, e.g. a reference range."""
    values = [v for _, vs in series for v in vs if v is not None and not math.isnan(v)]
    values += [b[2] for b in bands]
    ymax = _nice_max(max(values, default=1.0))
    iw, ih = W - M_LEFT - M_RIGHT, H - M_TOP - M_BOTTOM
    gw = iw / max(len(labels), 1)
    bw = gw * 0.8 / max(len(series), 1)
    body = []
    for gi, lo, hi, note in bands:
        y1 = M_TOP + ih - ih * hi / ymax
        y0 = M_TOP + ih - ih * lo / ymax
        body.append(
            f'<rect class="band" x="{M_LEFT + gi * gw:.1f}" y="{y1:.1f}" width="{gw:.1f}" '
            f'height="{y0 - y1:.1f}"><title>{escape(note)}</title></rect>'
        )
    for si, (name, vs) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        for gi, v in enumerate(vs):
            if v is None or math.isnan(v):
                continue
            h = ih * v / ymax
            x = M_LEFT + gi * gw + gw * 0.1 + si * bw
            shown = f"{v:.1%}" if percent else _fmt(v)
            body.append(
                f'<rect class="mark" x="{x:.1f}" y="{M_TOP + ih - h:.1f}" width="{bw:.1f}" height="{h:.1f}" '
                f'fill="{color}"><title>{escape(labels[gi])}, {escape(name)}: {shown}</title></rect>'
            )
    body += _xticks(labels, lambda gi: M_LEFT + gi * gw + gw / 2, most=14)
    legend = (
        [(name, PALETTE[i % len(PALETTE)]) for i, (name, _) in enumerate(series)]
        if len(series) > 1
        else []
    )
    return _frame(
        kind, title, body, ymax, percent=percent, ylabel=ylabel, xlabel=xlabel, legend=legend
    )


def hbars(
    kind: str,
    title: str,
    rows: Sequence[tuple[str, float, float, float]],
    *,
    reference: float = 1.0,
    xlabel: str = "",
) -> str:
    """Horizontal bars with an interval whisker (label, value, low, high) and a reference line."""
    n = max(len(rows), 1)
    height = max(H, 26 * n + M_TOP + M_BOTTOM)
    left = 230
    xmax = _nice_max(
        max([r[3] for r in rows if not math.isnan(r[3])] + [r[1] for r in rows] + [reference])
    )
    iw = W - left - M_RIGHT
    out = [
        f'<svg class="chart" data-chart="{escape(kind)}" viewBox="0 0 {W} {height}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for i in range(5):
        x = left + iw * i / 4
        out.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{M_TOP}" y2="{height - M_BOTTOM}" class="grid"/>'
            f'<text x="{x:.1f}" y="{height - M_BOTTOM + 16}" text-anchor="middle" class="tick">'
            f"{_fmt(xmax * i / 4)}</text>"
        )
    rx = left + iw * reference / xmax
    out.append(
        f'<line x1="{rx:.1f}" x2="{rx:.1f}" y1="{M_TOP}" y2="{height - M_BOTTOM}" class="ref"/>'
    )
    for i, (label, v, lo, hi) in enumerate(rows):
        y = M_TOP + 26 * i
        w = iw * v / xmax
        out.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" class="tick">{escape(label[:38])}</text>'
        )
        out.append(
            f'<rect class="mark" x="{left}" y="{y + 4}" width="{w:.1f}" height="16" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: lift {v:.2f} (95% interval {lo:.2f}-{hi:.2f})</title></rect>"
        )
        if not (math.isnan(lo) or math.isnan(hi)):
            x0, x1 = left + iw * lo / xmax, left + iw * min(hi, xmax) / xmax
            out.append(
                f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y + 12}" y2="{y + 12}" class="whisker"/>'
            )
    if xlabel:
        out.append(
            f'<text x="{left + iw / 2:.0f}" y="{height - 6}" text-anchor="middle" class="axis">'
            f"{escape(xlabel)}</text>"
        )
    out.append("</svg>")
    return "".join(out)


def lines(
    kind: str,
    title: str,
    xs: Sequence[str],
    series: Sequence[tuple[str, Sequence[float | None]]],
    *,
    percent: bool = False,
    ylabel: str = "",
    xlabel: str = "",
    band: tuple[Sequence[float | None], Sequence[float | None]] | None = None,
    marker: int | None = None,
    hline: tuple[float, str] | None = None,
) -> str:
    """Lines over categorical x positions, with an optional shaded band, a marked x and a
    horizontal reference line."""
    values = [v for _, vs in series for v in vs if v is not None and not math.isnan(v)]
    if band:
        values += [v for v in band[1] if v is not None]
    if hline:
        values.append(hline[0])
    ymax = _nice_max(max(values, default=1.0))
    iw, ih = W - M_LEFT - M_RIGHT, H - M_TOP - M_BOTTOM
    n = max(len(xs) - 1, 1)

    def px(i: int) -> float:
        return M_LEFT + iw * i / n

    def py(v: float) -> float:
        return M_TOP + ih - ih * v / ymax

    body = []
    if band:
        lo, hi = band
        pts = [(px(i), py(h)) for i, h in enumerate(hi) if h is not None]
        pts += [(px(i), py(v)) for i, v in reversed(list(enumerate(lo))) if v is not None]
        if pts:
            body.append(
                '<polygon class="band" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
                + '"/>'
            )
    if hline:
        body.append(
            f'<line x1="{M_LEFT}" x2="{W - M_RIGHT}" y1="{py(hline[0]):.1f}" y2="{py(hline[0]):.1f}" '
            f'class="ref"><title>{escape(hline[1])}</title></line>'
        )
    if marker is not None:
        body.append(
            f'<line x1="{px(marker):.1f}" x2="{px(marker):.1f}" y1="{M_TOP}" y2="{M_TOP + ih}" class="ref"/>'
        )
    for si, (name, vs) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        marks: list[tuple[int, float]] = [
            (i, v) for i, v in enumerate(vs) if v is not None and not math.isnan(v)
        ]
        if len(marks) > 1:
            body.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                + " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in marks)
                + '"/>'
            )
        for i, v in marks:
            shown = f"{v:.1%}" if percent else _fmt(v)
            body.append(
                f'<circle class="mark" cx="{px(i):.1f}" cy="{py(v):.1f}" r="3" fill="{color}">'
                f"<title>{escape(xs[i])}, {escape(name)}: {shown}</title></circle>"
            )
    body += _xticks(xs, px, most=10)
    legend = [(name, PALETTE[i % len(PALETTE)]) for i, (name, _) in enumerate(series)]
    return _frame(
        kind, title, body, ymax, percent=percent, ylabel=ylabel, xlabel=xlabel, legend=legend
    )


def scatter(
    kind: str,
    title: str,
    points: Sequence[tuple[float, float, str]],
    *,
    xlabel: str = "",
    ylabel: str = "",
) -> str:
    """Points (x, y, note) on equal percentage axes with the diagonal (calibration)."""
    vmax = _nice_max(max([max(x, y) for x, y, _ in points], default=0.1))
    iw, ih = W - M_LEFT - M_RIGHT, H - M_TOP - M_BOTTOM
    body = [f'<line x1="{M_LEFT}" y1="{M_TOP + ih}" x2="{M_LEFT + iw}" y2="{M_TOP}" class="ref"/>']
    for i in range(5):
        x = M_LEFT + iw * i / 4
        body.append(
            f'<text x="{x:.1f}" y="{H - M_BOTTOM + 16}" text-anchor="middle" class="tick">'
            f"{vmax * i / 4:.0%}</text>"
        )
    for x, y, note in points:
        cx, cy = M_LEFT + iw * x / vmax, M_TOP + ih - ih * y / vmax
        body.append(
            f'<circle class="mark" cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="{PALETTE[0]}">'
            f"<title>{escape(note)}: predicted {x:.1%}, observed {y:.1%}</title></circle>"
        )
    return _frame(kind, title, body, vmax, percent=True, xlabel=xlabel, ylabel=ylabel)


__all__ = ["bars", "hbars", "lines", "scatter"]
