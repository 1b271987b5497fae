"""Bar charts of finished tasks, drawn as inline SVG from the roll-up (no script, no CDN).

Each bar stacks the completed tasks of one step (a minute or an hour) under the
failed ones.  The SVG scales to its container; its labels are HTML beside it, so
they stay legible at any width, and a table holds the same figures for screen
readers and anyone who wants the numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from django_tasks.backends.database.services.rollup import Counts, Series, series

HEIGHT = 100
"""The plot's height in SVG units; the tallest bar reaches it."""

SLOT = 10
"""Each bar's slot width in SVG units: the bar and the gap after it."""

BAR = 8


@dataclass(frozen=True, slots=True, kw_only=True)
class Bar:
    """One step's bar: where it starts, its figures, and its two stacked rectangles."""

    start: datetime
    counts: Counts
    x: int
    completed_y: float
    completed_height: float
    failed_y: float
    failed_height: float

    @property
    def width(self) -> int:
        return BAR


@dataclass(frozen=True, slots=True, kw_only=True)
class Chart:
    """A chart's bars and what its labels say."""

    key: str
    series: Series
    bars: tuple[Bar, ...]

    @property
    def width(self) -> int:
        return SLOT * len(self.bars)

    @property
    def height(self) -> int:
        return HEIGHT

    @property
    def total(self) -> Counts:
        return self.series.total

    @property
    def peak(self) -> int:
        return self.series.peak

    @property
    def busiest(self) -> Bar | None:
        """The first step with the most finished tasks (None if nothing finished)."""
        if not self.peak:
            return None
        return next(bar for bar in self.bars if bar.counts.finished == self.peak)

    @property
    def first(self) -> datetime:
        return self.series.starts[0]

    @property
    def step_minutes(self) -> int:
        return round(self.series.step / timedelta(minutes=1))


def _height(count: int, peak: int) -> float:
    if not count:
        return 0.0
    # Never thinner than one unit: a single failure among thousands stays visible.
    return max(round(HEIGHT * count / peak, 2), 1.0)


def chart(key: str, data: Series) -> Chart:
    """Lay out ``data`` as stacked bars, scaled to its peak."""
    peak = max(data.peak, 1)
    bars = []
    for index, (start, counts) in enumerate(zip(data.starts, data.points, strict=True)):
        completed = _height(counts.completed, peak)
        failed = _height(counts.failed, peak)
        bars.append(
            Bar(
                start=start,
                counts=counts,
                x=index * SLOT + (SLOT - BAR) // 2,
                completed_y=HEIGHT - completed,
                completed_height=completed,
                failed_y=HEIGHT - completed - failed,
                failed_height=failed,
            )
        )
    return Chart(key=key, series=data, bars=tuple(bars))


def activity_charts(
    backend_name: str, *, queue_name: str | None = None, now: datetime | None = None
) -> tuple[Chart, Chart]:
    """The last hour by minute, and the last 24 hours by hour."""
    now = now or timezone.now()
    minutes = series(
        backend_name, step=timedelta(minutes=1), steps=60, queue_name=queue_name, now=now
    )
    hours = series(backend_name, step=timedelta(hours=1), steps=24, queue_name=queue_name, now=now)
    return chart("hour", minutes), chart("day", hours)
