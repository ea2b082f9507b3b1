"""The overview's chart, drawn on the server as SVG: no script, nothing for the CSP to allow.

Hourly bars over the last 24 hours: allowed requests stacked upwards by tier, denied
ones downwards, each half scaled to its own busiest hour. Colours are CSS classes
(`tier-<n>` by the tier's rank) from the console's stylesheet.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 260
LEFT, TOP, BOTTOM = 44, 12, 28
HALF = (HEIGHT - TOP - BOTTOM) // 2


@dataclass(frozen=True, slots=True)
class Series:
    """Counts per (hour start, tier) for one decision."""

    counts: dict[tuple[datetime, str], int]

    def total(self, hour: datetime) -> int:
        return sum(n for (h, _), n in self.counts.items() if h == hour)


def hours_until(now: datetime) -> list[datetime]:
    """The 24 hour buckets ending with the current one."""
    top = now.replace(minute=0, second=0, microsecond=0)
    return [top - timedelta(hours=23 - i) for i in range(24)]


def render(hours: list[datetime], allow: Series, deny: Series, tiers: list[str]) -> Markup:
    order = {t: i for i, t in enumerate(tiers)}
    peak_up = max([allow.total(h) for h in hours] + [1])
    peak_down = max([deny.total(h) for h in hours] + [1])
    axis = TOP + HALF
    slot = (WIDTH - LEFT - 8) / len(hours)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="chart-title" xmlns="http://www.w3.org/2000/svg">',
        '<title id="chart-title">Requests per hour by tier: allowed above the line, '
        "denied below</title>",
        f'<line class="axis" x1="{LEFT}" y1="{axis}" x2="{WIDTH - 8}" y2="{axis}"/>',
        f'<text class="label" x="4" y="{TOP + 10}">{peak_up}</text>',
        f'<text class="label" x="4" y="{axis - 4}">allow</text>',
        f'<text class="label" x="4" y="{axis + 14}">deny</text>',
        f'<text class="label" x="4" y="{axis + HALF}">{peak_down}</text>',
    ]
    for i, hour in enumerate(hours):
        x = LEFT + i * slot + 2
        w = max(slot - 4, 1)
        for series, peak, up in ((allow, peak_up, True), (deny, peak_down, False)):
            edge = float(axis)
            cells = sorted(
                ((t, n) for (h, t), n in series.counts.items() if h == hour),
                key=lambda item: order.get(item[0], len(order)),
            )
            for tier, n in cells:
                size = HALF * n / peak
                y = edge - size if up else edge
                edge = y if up else edge + size
                rank = order.get(tier, len(order))
                word = "allowed" if up else "denied"
                parts.append(
                    f'<rect class="bar tier-{rank}" x="{x:.1f}" y="{y:.1f}" '
                    f'width="{w:.1f}" height="{size:.1f}"><title>'
                    f"{hour:%H}:00 {escape(tier)}: {n} {word}</title></rect>"
                )
        if i % 3 == 0:
            parts.append(f'<text class="label" x="{x:.1f}" y="{HEIGHT - 8}">{hour:%H}:00</text>')
    parts.append("</svg>")
    return Markup("".join(parts))
