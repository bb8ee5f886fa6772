"""Server-rendered SVG charts for the console (no JavaScript, no third-party code): the
geometry is computed here, the templates draw it (``operator/_charts.html``)."""

from __future__ import annotations

from dataclasses import dataclass

WIDTH = 600
ROW = 28
LABEL_WIDTH = 150


@dataclass(frozen=True)
class Bar:
    """One horizontal bar: its label, value and geometry in the SVG's units."""

    label: str
    value: int
    y: int
    width: int


@dataclass(frozen=True)
class BarChart:
    """Horizontal bars, largest value full width."""

    bars: list[Bar]
    height: int
    label_width: int = LABEL_WIDTH
    width: int = WIDTH


def bar_chart(items: list[tuple[str, int]]) -> BarChart:
    """Bars for ``(label, value)`` items (negative values count as zero)."""
    top = max([value for _, value in items] + [1])
    span = WIDTH - LABEL_WIDTH - 110
    bars = [
        Bar(label, value, index * ROW, round(span * max(value, 0) / top))
        for index, (label, value) in enumerate(items)
    ]
    return BarChart(bars, max(len(bars), 1) * ROW)


@dataclass(frozen=True)
class Column:
    """One day's column."""

    label: str
    value: int
    x: int
    y: int
    height: int


@dataclass(frozen=True)
class ColumnChart:
    """A per-day series as columns."""

    columns: list[Column]
    column_width: int
    width: int = WIDTH
    height: int = 180
    base: int = 160


def column_chart(items: list[tuple[str, int]]) -> ColumnChart:
    """Columns for ``(day, value)`` items, oldest first (at most the last 60)."""
    items = items[-60:]
    top = max([value for _, value in items] + [1])
    step = WIDTH // max(len(items), 1)
    width = max(step - 4, 2)
    columns = []
    for index, (label, value) in enumerate(items):
        height = round(140 * max(value, 0) / top)
        columns.append(Column(label, value, index * step + 2, 160 - height, height))
    return ColumnChart(columns, width)
