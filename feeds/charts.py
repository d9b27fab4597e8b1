"""Small server-rendered SVG charts for the /impact page: poverty rate over time and band movement.

Hand-built SVG keeps the page free of JavaScript libraries (and of the CSP exceptions they need); every label
is escaped. Coordinates are plain arithmetic on a fixed canvas that scales with the page width.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 48, 150, 24, 36
PALETTE = ("#1b6ca8", "#d1495b", "#edae49", "#00798c", "#6a4c93", "#66a182", "#8d6a9f")
BAND_COLOURS = ("#b2182b", "#ef8a62", "#fddbc7", "#d1e5f0", "#67a9cf", "#2166ac")


@dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float | None]  # one per period, None = no data or withheld
    bold: bool = False


@dataclass(frozen=True)
class BandPeriod:
    counts: dict[str, int]
    improved: int = 0
    worsened: int = 0


def line_chart(periods: Sequence[str], series: Sequence[Series], *, title: str) -> Markup:
    """Poverty rates (0-1) per period as lines with dots; gaps where a value is missing."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_value = _nice_ceiling(max((v for s in series for v in s.values if v is not None), default=1.0))

    def x(index: int) -> float:
        return LEFT + (plot_width * (index + 0.5) / max(len(periods), 1))

    def y(value: float) -> float:
        return TOP + plot_height * (1 - value / top_value)

    parts = [_open(title)]
    for step in range(5):
        value = top_value * step / 4
        parts.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_width}" y1="{y(value):.1f}" y2="{y(value):.1f}" class="grid"/>'
        )
        parts.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:.0%}</text>')
    parts += _period_labels(periods, x)
    for number, line in enumerate(series):
        colour = PALETTE[number % len(PALETTE)]
        parts += _polyline(line, x, y, colour)
        legend_y = TOP + 16 * number + 8
        parts.append(f'<rect x="{WIDTH - RIGHT + 14}" y="{legend_y - 8}" width="12" height="4" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 32}" y="{legend_y}">{escape(_short(line.name))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def band_chart(
    periods: Sequence[str], bands: Sequence[str], points: Sequence[BandPeriod | None], *, title: str
) -> Markup:
    """Stacked 100% bars of clients per band, worst band at the bottom, with moves since the previous period."""
    plot_width, plot_height = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_width / max(len(periods), 1)
    parts = [_open(title)]
    for step in range(5):
        level = TOP + plot_height * step / 4
        parts.append(f'<text x="{LEFT - 6}" y="{level + 4:.1f}" text-anchor="end">{1 - step / 4:.0%}</text>')
    parts += _period_labels(periods, lambda index: LEFT + slot * (index + 0.5))
    for index, point in enumerate(points):
        total = sum(point.counts.values()) if point else 0
        if not point or not total:
            continue
        left, bottom = LEFT + slot * index + slot * 0.2, float(TOP + plot_height)
        for number, band in enumerate(bands):
            share = point.counts.get(band, 0) / total
            height = plot_height * share
            bottom -= height
            colour = BAND_COLOURS[number * (len(BAND_COLOURS) - 1) // max(len(bands) - 1, 1)]
            parts.append(
                f'<rect x="{left:.1f}" y="{bottom:.1f}" width="{slot * 0.6:.1f}" height="{height:.1f}" '
                f'fill="{colour}"><title>{escape(band)}: {share:.0%}</title></rect>'
            )
        if point.improved or point.worsened:
            parts.append(
                f'<text x="{left + slot * 0.3:.1f}" y="{TOP - 6}" text-anchor="middle" class="moves">'
                f"▲{point.improved} ▼{point.worsened}</text>"
            )
    for number, band in enumerate(reversed(bands)):
        colour = BAND_COLOURS[(len(bands) - 1 - number) * (len(BAND_COLOURS) - 1) // max(len(bands) - 1, 1)]
        legend_y = TOP + 16 * number + 8
        parts.append(f'<rect x="{WIDTH - RIGHT + 14}" y="{legend_y - 9}" width="12" height="12" fill="{colour}"/>')
        parts.append(f'<text x="{WIDTH - RIGHT + 32}" y="{legend_y + 1}">{escape(_short(band))}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def _open(title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" class="chart" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    )


def _period_labels(periods: Sequence[str], x: Callable[[int], float]) -> list[str]:
    return [
        f'<text x="{x(index):.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{escape(period)}</text>'
        for index, period in enumerate(periods)
    ]


def _polyline(line: Series, to_x: Callable[[int], float], to_y: Callable[[float], float], colour: str) -> list[str]:
    width = 3.5 if line.bold else 1.8
    parts: list[str] = []
    run: list[tuple[float, float]] = []
    for index, value in enumerate([*line.values, None]):
        if value is not None:
            run.append((to_x(index), to_y(value)))
            continue
        if len(run) > 1:
            points = " ".join(f"{px:.1f},{py:.1f}" for px, py in run)
            parts.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="{width}"/>')
        run = []
    for index, value in enumerate(line.values):
        if value is not None:
            cx, cy = to_x(index), to_y(value)
            parts.append(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="{width + 1}" fill="{colour}">'
                f"<title>{escape(line.name)}: {value:.1%}</title></circle>"
            )
    return parts


def _nice_ceiling(value: float) -> float:
    for ceiling in (0.2, 0.4, 0.6, 0.8, 1.0):  # quarters of these are round percentages
        if value <= ceiling:
            return ceiling
    return 1.0


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
