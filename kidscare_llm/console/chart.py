"""A bar chart of minutes per day, drawn on the server as SVG (no script, no chart library)."""

import datetime as dt
from html import escape
from typing import List, Tuple

WIDTH, HEIGHT, TOP, BOTTOM = 560, 180, 16, 28


def minutes_chart(days: List[Tuple[dt.date, float]], label: str) -> str:
    """Return an SVG of one bar per day (minutes), each with a tooltip; label names the chart."""
    peak = max([m for _, m in days] + [10.0])
    slot = WIDTH / max(1, len(days))
    plot = HEIGHT - TOP - BOTTOM
    parts = [f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(label)}" xmlns="http://www.w3.org/2000/svg">',
             f'<line x1="0" y1="{HEIGHT - BOTTOM}" x2="{WIDTH}" y2="{HEIGHT - BOTTOM}" '
             'class="axis"/>',
             f'<text x="4" y="{TOP - 4}" class="peak">{peak:.0f}′</text>']
    for i, (day, minutes) in enumerate(days):
        h = plot * minutes / peak
        x = i * slot + slot * 0.15
        y = HEIGHT - BOTTOM - h
        parts.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{slot * 0.7:.1f}" height="{h:.1f}" '
                     f'class="bar"><title>{day.isoformat()}: {minutes:.0f} min</title></rect>')
        if minutes >= 0.5:
            parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{y - 3:.1f}" class="value" '
                         f'text-anchor="middle">{minutes:.0f}</text>')
        parts.append(f'<text x="{x + slot * 0.35:.1f}" y="{HEIGHT - 10}" class="day" '
                     f'text-anchor="middle">{day.month}/{day.day}</text>')
    parts.append('</svg>')
    return ''.join(parts)
