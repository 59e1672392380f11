"""Server-side SVG charts: no JavaScript, no chart library, every label escaped.

Colours go in presentation attributes (``fill=``), not ``style=``, so the dashboard's
Content-Security-Policy can forbid inline styles.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from schemas.enums import Severity

SEVERITY_COLOURS: dict[Severity, str] = {
    Severity.SEV1: "#c62828",
    Severity.SEV2: "#ef6c00",
    Severity.SEV3: "#f9a825",
    Severity.SEV4: "#1565c0",
}
#: colours of series that are not severities (services, in the trends chart), in order
PALETTE = ("#00796b", "#5e35b1", "#c2185b", "#3949ab", "#6d4c41", "#546e7a")

WIDTH = 640
HEIGHT = 260
MARGIN_LEFT = 64
MARGIN_RIGHT = 16
MARGIN_TOP = 36
MARGIN_BOTTOM = 48


@dataclass
class Series:
    name: str
    colour: str
    values: Sequence[float | None]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** len(str(int(value))) / 10
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _svg(title: str, body: list[str], height: int = HEIGHT) -> Markup:
    label = escape(title)
    return Markup(
        f'<svg class="chart" viewBox="0 0 {WIDTH} {height}" width="100%" role="img" '
        f'aria-label="{label}" xmlns="http://www.w3.org/2000/svg"><title>{label}</title>'
        f'<text x="{MARGIN_LEFT}" y="20" class="chart-title" font-size="14" '
        f'font-weight="600" fill="#222">{label}</text>' + "".join(body) + "</svg>"
    )


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[Series],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    maximum: float | None = None,
) -> Markup:
    """Vertical bars: one cluster per group, one bar per series, a legend on top."""
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    values = [v for s in series for v in s.values if v is not None]
    top = maximum if maximum is not None else _nice_max(max(values, default=0.0))
    body: list[str] = []
    base_y = MARGIN_TOP + plot_h
    if not values or not groups:
        body.append(
            f'<text x="{WIDTH / 2}" y="{MARGIN_TOP + plot_h / 2}" text-anchor="middle" '
            f'font-size="13" fill="#777">no data</text>'
        )
        return _svg(title, body)
    for i in range(5):  # grid lines and axis labels
        frac = i / 4
        y = base_y - frac * plot_h
        body.append(
            f'<line x1="{MARGIN_LEFT}" x2="{WIDTH - MARGIN_RIGHT}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="#ddd" stroke-width="1"/>'
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#555">{escape(fmt(top * frac))}</text>'
        )
    cluster = plot_w / len(groups)
    bar = max(2.0, min(28.0, (cluster * 0.8) / len(series)))
    for g, group in enumerate(groups):
        x0 = MARGIN_LEFT + g * cluster + (cluster - bar * len(series)) / 2
        for s, ser in enumerate(series):
            value = ser.values[g] if g < len(ser.values) else None
            if value is None:
                continue
            h = 0 if top == 0 else min(1.0, value / top) * plot_h
            x = x0 + s * bar
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{base_y - h:.1f}" width="{bar - 1:.1f}" '
                f'height="{h:.1f}" fill="{escape(ser.colour)}">'
                f"<title>{escape(ser.name)} · {escape(group)}: {escape(fmt(value))}</title></rect>"
            )
        body.append(
            f'<text x="{MARGIN_LEFT + (g + 0.5) * cluster:.1f}" y="{base_y + 16}" '
            f'text-anchor="middle" font-size="11" fill="#333">{escape(group)}</text>'
        )
    lx = WIDTH - MARGIN_RIGHT
    for ser in reversed(series):  # legend, right-aligned on the title line
        lx -= 12 + 7 * len(ser.name) + 14
        body.append(
            f'<rect x="{lx}" y="10" width="10" height="10" fill="{escape(ser.colour)}"/>'
            f'<text x="{lx + 14}" y="19" font-size="11" fill="#333">{escape(ser.name)}</text>'
        )
    return _svg(title, body)


def horizontal_bars(
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    colour: str = "#455a64",
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
) -> Markup:
    """One labelled bar per item, longest first as given."""
    row = 22
    height = MARGIN_TOP + max(1, len(items)) * row + 12
    label_w = 150
    plot_w = WIDTH - label_w - MARGIN_RIGHT - 48
    top = max((v for _, v in items), default=0.0) or 1.0
    body: list[str] = []
    if not items:
        body.append(
            f'<text x="{WIDTH / 2}" y="{MARGIN_TOP + 14}" text-anchor="middle" font-size="13" '
            f'fill="#777">no data</text>'
        )
    for i, (label, value) in enumerate(items):
        y = MARGIN_TOP + i * row
        w = value / top * plot_w
        body.append(
            f'<text x="{label_w - 8}" y="{y + 15}" text-anchor="end" font-size="12" '
            f'fill="#333">{escape(label[:24])}</text>'
            f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" '
            f'fill="{escape(colour)}"><title>{escape(label)}: {escape(fmt(value))}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 15}" font-size="12" '
            f'fill="#333">{escape(fmt(value))}</text>'
        )
    return _svg(title, body, height=height)
