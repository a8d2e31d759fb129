"""Small, dependency-free SVG charts for the report: bars, grouped bars, lines, scatter.

Each function returns one ``<svg>`` element as text, sized by its viewBox so it scales with the
page; every mark carries a ``<title>`` so a reader can hover for the exact figure. No scripts,
no fonts or images from elsewhere: the report opens offline.

A rate is drawn honestly: passed as a :class:`Rate` (k of n), it is drawn with its 95% Wilson
interval, and a small group (fewer than :data:`SMALL_N`) is drawn hollow and never sets the
axis: a one-person 100% cannot stretch a chart of 10% rates. The axis fits the data, so small
rates are not slivers; a mark above it is drawn at the top, with its figure on hover.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

#: Fewer people than this make a rate a small group: drawn hollow, never setting an axis.
SMALL_N = 30
#: The normal quantile of a 95% interval.
Z95 = 1.959964


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of k successes in n: inside [0, 1], sound for small n and
    for rates near 0 or 1 (where the normal approximation gives nonsense)."""
    if n <= 0:
        return (0.0, 1.0)
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass(frozen=True)
class Rate:
    """k of n, as a chart draws it: the rate, its 95% Wilson interval, and whether it is a
    small group."""

    k: float
    n: int

    @classmethod
    def of(cls, rate: float | None, n: int | None) -> Rate | None:
        """The rate ``rate`` of ``n`` people (None when there is no rate or nobody)."""
        if rate is None or not n or (isinstance(rate, float) and math.isnan(rate)):
            return None
        return cls(round(rate * n), int(n))

    @property
    def value(self) -> float:
        return self.k / self.n

    @property
    def low(self) -> float:
        return wilson(self.k, self.n)[0]

    @property
    def high(self) -> float:
        return wilson(self.k, self.n)[1]

    @property
    def small(self) -> bool:
        return self.n < SMALL_N


Value = float | Rate | None


def _value(v: Value) -> float | None:
    if isinstance(v, Rate):
        return v.value
    if v is None or math.isnan(v):
        return None
    return float(v)


def _reach(v: Value) -> float | None:
    """How high a value asks the axis to go: its own height (an interval above the axis is
    cut at its top edge); nothing for a small group."""
    if isinstance(v, Rate) and v.small:
        return None
    return _value(v)


def _axis_max(values: Sequence[Value], extra: Sequence[float] = (), room: float = 1.0) -> float:
    """The top of a linear axis: the data's reach (small groups only when there is nothing
    else) times ``room`` (space for a label above the highest mark), rounded up to a nice
    number."""
    reach = [x for x in (_reach(v) for v in values) if x is not None] + list(extra)
    if not reach:
        reach = [x for x in (_value(v) for v in values) if x is not None]
    return _nice_max(max(reach, default=1.0) * room)


def _note(v: Value, shown: str) -> str:
    """A mark's hover text for a value: the figure, and for a rate its n and interval."""
    if not isinstance(v, Rate):
        return shown
    small = f"; fewer than {SMALL_N}: a small group" if v.small else ""
    return f"{shown} ({v.k:g} of {v.n:,}; 95% interval {v.low:.1%}-{v.high:.1%}{small})"


W, H = 720, 300
M_LEFT, M_RIGHT, M_TOP, M_BOTTOM = 64, 20, 34, 56
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
    for m in (1, 1.2, 1.6, 2, 2.4, 3, 4, 5, 6, 8, 10):  # a quarter of each is a round tick
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
    ticks: Sequence[tuple[float, str]] | None = None,
) -> str:
    """The chart's frame: grid lines and labels at ``ticks`` (share of the height, label;
    by default five, 0 to ``ymax``), axis titles, the body and the legend."""
    out = [
        f'<svg class="chart" data-chart="{escape(kind)}" viewBox="0 0 {W} {H}" role="img" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    ih = H - M_TOP - M_BOTTOM
    if ticks is None:
        ticks = [(i / 4, _tick(ymax * i / 4, percent)) for i in range(5)]
    for share, label in ticks:
        y = M_TOP + ih - ih * share
        out.append(
            f'<line x1="{M_LEFT}" x2="{W - M_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
        )
        out.append(
            f'<text x="{M_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{escape(label)}</text>'
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


def _tick(v: float, percent: bool) -> str:
    if not percent:
        return _fmt(v)
    return f"{v:.0%}" if round(v * 100, 6).is_integer() else f"{v:.1%}"


def _whisker(x: float, rate: Rate, py, color: str = "#111827") -> str:
    """A rate's vertical 95% interval at ``x`` (``py`` maps a value to y, clipped to the
    axis), faint for a small group."""
    y0, y1 = py(rate.low), py(rate.high)
    cls = "whisker small" if rate.small else "whisker"
    paint = f'stroke="{color}"'
    return (
        f'<line class="{cls}" {paint} x1="{x:.1f}" x2="{x:.1f}" y1="{y0:.1f}" y2="{y1:.1f}"/>'
        f'<line class="{cls}" {paint} x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y1:.1f}" y2="{y1:.1f}"/>'
        f'<line class="{cls}" {paint} x1="{x - 4:.1f}" x2="{x + 4:.1f}" y1="{y0:.1f}" y2="{y0:.1f}"/>'
    )


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
    series: Sequence[tuple[str, Sequence[Value]]],
    *,
    percent: bool = False,
    ylabel: str = "",
    xlabel: str = "",
    bands: Sequence[tuple[int, float, float, str]] = (),
    log: bool = False,
) -> str:
    """Grouped vertical bars: one group per label, one bar per series, each with its figure
    above it; a :class:`Rate` with its interval, hollow when a small group. ``bands`` shade a
    range (group index, low, high, note) behind a group, e.g. a reference range; a band never
    sets the axis. ``log``: a logarithmic axis, for counts that span orders of magnitude."""
    values = [v for _, vs in series for v in vs]
    iw, ih = W - M_LEFT - M_RIGHT, H - M_TOP - M_BOTTOM
    ticks: list[tuple[float, str]] | None = None
    if log:
        positive = [x for x in map(_value, values) if x is not None and x > 0]
        bottom = min(1.0, 10 ** math.floor(math.log10(min(positive, default=1.0))))
        ymax = 10 ** max(1, math.ceil(math.log10(max(positive, default=10.0))))
        decades = math.log10(ymax / bottom)

        def share(v: float) -> float:
            return 0.0 if v <= bottom else min(1.0, math.log10(v / bottom) / decades)

        ticks = [(d / decades, _fmt(bottom * 10**d)) for d in range(round(decades) + 1)]
    else:
        ymax = _axis_max(values, room=1.12)

        def share(v: float) -> float:
            return min(1.0, max(0.0, v / ymax))

    def py(v: float) -> float:
        return M_TOP + ih - ih * share(v)

    gw = iw / max(len(labels), 1)
    bw = gw * 0.8 / max(len(series), 1)
    body = []
    for gi, lo, hi, note in bands:
        cut = " (the range goes on above the axis)" if hi > ymax else ""
        body.append(
            f'<rect class="band" x="{M_LEFT + gi * gw:.1f}" y="{py(hi):.1f}" width="{gw:.1f}" '
            f'height="{py(lo) - py(hi):.1f}"><title>{escape(note + cut)}</title></rect>'
        )
    for si, (name, vs) in enumerate(series):
        color = PALETTE[si % len(PALETTE)]
        for gi, raw in enumerate(vs):
            v = _value(raw)
            if v is None:
                continue
            x = M_LEFT + gi * gw + gw * 0.1 + si * bw
            body += _bar(raw, v, x, bw, color, ymax, py, percent, f"{labels[gi]}, {name}")
    body += _xticks(labels, lambda gi: M_LEFT + gi * gw + gw / 2, most=14)
    legend = (
        [(name, PALETTE[i % len(PALETTE)]) for i, (name, _) in enumerate(series)]
        if len(series) > 1
        else []
    )
    return _frame(
        kind,
        title,
        body,
        ymax,
        percent=percent,
        ylabel=ylabel,
        xlabel=xlabel,
        legend=legend,
        ticks=ticks,
    )


def _bar(
    raw: Value,
    v: float,
    x: float,
    bw: float,
    color: str,
    ymax: float,
    py: Callable[[float], float],
    percent: bool,
    what: str,
) -> list[str]:
    """One bar of :func:`bars`: its rectangle (hollow for a small group), its interval, and its
    figure above it (marked when it goes past the axis)."""
    out: list[str] = []
    shown = f"{v:.1%}" if percent else _fmt(v)
    small = isinstance(raw, Rate) and raw.small
    paint = f'fill="none" stroke="{color}" stroke-dasharray="3 2"' if small else f'fill="{color}"'
    above = v > ymax
    out.append(
        f'<rect class="mark{" small" if small else ""}" x="{x:.1f}" y="{py(v):.1f}" '
        f'width="{bw:.1f}" height="{py(0) - py(v):.1f}" '
        f"{paint}><title>{escape(what)}: "
        f"{escape(_note(raw, shown))}{' (above the axis)' if above else ''}</title></rect>"
    )
    top = py(v)
    if isinstance(raw, Rate):
        out.append(_whisker(x + bw / 2, raw, py))
        top = min(top, py(raw.high))
    mark = "n<" + str(SMALL_N) + " " if small else ""
    out.append(
        f'<text class="value" x="{x + bw / 2:.1f}" y="{max(top - 4, M_TOP - 2):.1f}" '
        f'text-anchor="middle">{escape(mark + shown)}{" ▲" if above else ""}</text>'
    )
    return out


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
                f'<line x1="{x0:.1f}" x2="{x1:.1f}" y1="{y + 12}" y2="{y + 12}" class="whisker" stroke="#111827"/>'
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
    series: Sequence[tuple[str, Sequence[Value]]],
    *,
    percent: bool = False,
    ylabel: str = "",
    xlabel: str = "",
    band: tuple[Sequence[float | None], Sequence[float | None]] | None = None,
    marker: int | None = None,
    hline: tuple[float, str] | None = None,
) -> str:
    """Lines over categorical x positions, with an optional shaded band, a marked x and a
    horizontal reference line. A :class:`Rate` is drawn with its interval, hollow when a
    small group; a mark above the axis sits on its top edge with its figure on hover."""
    values = [v for _, vs in series for v in vs]
    extra = [v for v in band[1] if v is not None] if band else []
    if hline:
        extra.append(hline[0])
    ymax = _axis_max(values, extra)
    iw, ih = W - M_LEFT - M_RIGHT, H - M_TOP - M_BOTTOM
    n = max(len(xs) - 1, 1)

    def px(i: int) -> float:
        return M_LEFT + iw * i / n

    def py(v: float) -> float:
        return M_TOP + ih - ih * min(1.0, max(0.0, v / ymax))

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
        marks = [(i, raw, v) for i, raw in enumerate(vs) if (v := _value(raw)) is not None]
        steady = [(i, v) for i, raw, v in marks if not (isinstance(raw, Rate) and raw.small)]
        if len(steady) > 1:
            body.append(
                f'<polyline fill="none" stroke="{color}" stroke-width="2" points="'
                + " ".join(f"{px(i):.1f},{py(v):.1f}" for i, v in steady)
                + '"/>'
            )
        for i, raw, v in marks:
            shown = f"{v:.1%}" if percent else _fmt(v)
            small = isinstance(raw, Rate) and raw.small
            if isinstance(raw, Rate):
                body.append(_whisker(px(i), raw, py, color))
            paint = (
                f'fill="#fff" stroke="{color}" stroke-width="1.5"' if small else f'fill="{color}"'
            )
            above = " (above the axis)" if v > ymax else ""
            body.append(
                f'<circle class="mark{" small" if small else ""}" cx="{px(i):.1f}" cy="{py(v):.1f}" '
                f'r="{4 if small else 3}" {paint}><title>{escape(xs[i])}, {escape(name)}: '
                f"{escape(_note(raw, shown))}{above}</title></circle>"
            )
    body += _xticks(xs, px, most=10)
    legend = [(name, PALETTE[i % len(PALETTE)]) for i, (name, _) in enumerate(series)]
    return _frame(
        kind, title, body, ymax, percent=percent, ylabel=ylabel, xlabel=xlabel, legend=legend
    )


def scatter(
    kind: str,
    title: str,
    points: Sequence[tuple[float, Value, str]],
    *,
    xlabel: str = "",
    ylabel: str = "",
) -> str:
    """Points (x, y, note) on equal percentage axes with the diagonal (calibration); a
    :class:`Rate` y is drawn with its interval, hollow when a small group, and a small group
    does not set the axes."""
    reach = [max(x, r) for x, y, _ in points if (r := _reach(y)) is not None]
    if not reach:
        reach = [max(x, v) for x, y, _ in points if (v := _value(y)) is not None]
    vmax = _nice_max(max(reach, default=0.1))
    iw, ih = W - M_LEFT - M_RIGHT, H - M_TOP - M_BOTTOM

    def py(v: float) -> float:
        return M_TOP + ih - ih * min(1.0, v / vmax)

    body = [f'<line x1="{M_LEFT}" y1="{M_TOP + ih}" x2="{M_LEFT + iw}" y2="{M_TOP}" class="ref"/>']
    for i in range(5):
        x = M_LEFT + iw * i / 4
        body.append(
            f'<text x="{x:.1f}" y="{H - M_BOTTOM + 16}" text-anchor="middle" class="tick">'
            f"{_tick(vmax * i / 4, True)}</text>"
        )
    for x, raw, note in points:
        y = _value(raw)
        if y is None:
            continue
        cx = M_LEFT + iw * min(1.0, x / vmax)
        small = isinstance(raw, Rate) and raw.small
        if isinstance(raw, Rate):
            body.append(_whisker(cx, raw, py, PALETTE[0]))
        paint = (
            f'fill="#fff" stroke="{PALETTE[0]}" stroke-width="1.5"'
            if small
            else f'fill="{PALETTE[0]}"'
        )
        body.append(
            f'<circle class="mark{" small" if small else ""}" cx="{cx:.1f}" cy="{py(y):.1f}" r="5" '
            f"{paint}><title>{escape(note)}: predicted {x:.1%}, observed "
            f"{escape(_note(raw, f'{y:.1%}'))}</title></circle>"
        )
    return _frame(kind, title, body, vmax, percent=True, xlabel=xlabel, ylabel=ylabel)


__all__ = ["SMALL_N", "Rate", "bars", "hbars", "lines", "scatter", "wilson"]
