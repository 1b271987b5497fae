"""The Charts page: finished tasks per minute and per hour, from the roll-up."""

from __future__ import annotations

import re
from datetime import timedelta

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database.services import rollup
from django_tasks_admin.charts import HEIGHT, activity_charts
from tests import tasks as test_tasks

from .utils import XSS, DashboardTestCase, run_attempt, search, url


class ChartsTests(DashboardTestCase):
    def finish(self, queue_name: str = "default", completed: int = 2, failed: int = 1) -> None:
        """Enqueue tasks and run them as the worker does."""
        for _ in range(completed):
            result = test_tasks.calculate_meaning_of_life.using(queue_name=queue_name).enqueue()
            run_attempt(result.id)
        for _ in range(failed):
            failing = test_tasks.failing_task_value_error.using(queue_name=queue_name).enqueue()
            run_attempt(failing.id)

    def bars(self, html: str, chart: str) -> list[tuple[int, int]]:
        figure = search(rf'<figure[^>]*id="dt-chart-{chart}".*?</figure>', html, re.S).group(0)
        return [
            (int(ok), int(failed))
            for ok, failed in re.findall(r'data-completed="(\d+)" data-failed="(\d+)"', figure)
        ]

    def test_each_chart_has_a_bar_per_step_and_the_current_step_holds_the_runs(self) -> None:
        self.finish(completed=3, failed=2)
        response = self.client.get(url("charts"))
        self.assertEqual(response.status_code, 200)
        html = response.content.decode()
        hour, day = self.bars(html, "hour"), self.bars(html, "day")
        self.assertEqual((len(hour), len(day)), (60, 24))
        # The runs are in the current step, or the one before if it just turned.
        for bars in (hour, day):
            recent = bars[-2:]
            self.assertEqual(tuple(map(sum, zip(*recent, strict=True))), (3, 2))
            self.assertEqual(sum(ok + failed for ok, failed in bars[:-2]), 0)
        self.assertIn("3 completed", html)
        self.assertIn("2 failed", html)
        # Accessible: the SVG is an image named by its heading and summary; a table
        # repeats the figures.
        search(
            r'<svg[^>]*role="img"[^>]*aria-labelledby="dt-chart-hour-title dt-chart-hour-desc"',
            html,
        )
        search(r"<td class=\"dt-num\">3</td><td class=\"dt-num\">2</td>", html)

    def test_the_tallest_bar_fills_the_plot_and_failures_stack_on_top(self) -> None:
        self.finish(completed=3, failed=1)
        hour, _day = activity_charts("default")
        bar = max(hour.bars, key=lambda b: b.counts.finished)
        self.assertEqual(bar.completed_height + bar.failed_height, HEIGHT)
        self.assertEqual(bar.failed_y + bar.failed_height, bar.completed_y)
        self.assertEqual(hour.busiest, bar)

    def test_a_queue_picks_its_own_runs(self) -> None:
        self.finish("default", completed=1, failed=0)
        self.finish("mail", completed=2, failed=2)
        # Queues are known from the settings and the roll-up's rows: roll up the
        # minutes these ran in, as a worker would once they closed.
        while rollup.roll_up(backend_name="default", now=timezone.now() + timedelta(minutes=2)):
            pass
        html = self.client.get(url("charts", query="queue=mail")).content.decode()
        self.assertEqual(sum(ok for ok, _ in self.bars(html, "hour")), 2)
        self.assertEqual(sum(f for _, f in self.bars(html, "hour")), 2)
        search(r'<a href="\?backend=default&amp;queue=mail" aria-current="page">mail</a>', html)

    def test_an_unknown_queue_or_backend_says_what_is_there(self) -> None:
        response = self.client.get(url("charts", query="queue=nope"))
        self.assertEqual(response.status_code, 404)
        response = self.client.get(url("charts", query="backend=immediate"))
        self.assertEqual(response.status_code, 404)

    def test_htmx_gets_the_region_only(self) -> None:
        self.finish(completed=1, failed=0)
        response = self.htmx(url("charts"), "dt-charts")
        html = response.content.decode()
        self.assertNotIn("<html", html)
        self.assertTrue(html.lstrip().startswith('<section id="dt-charts"'))

    def test_needs_view_permission(self) -> None:
        self.client.force_login(self.nobody)
        self.assertEqual(self.client.get(url("charts")).status_code, 403)
        self.client.force_login(self.viewer)
        self.assertEqual(self.client.get(url("charts")).status_code, 200)

    def test_queue_names_are_escaped(self) -> None:
        self.finish(XSS, completed=1, failed=0)
        while rollup.roll_up(backend_name="default", now=timezone.now() + timedelta(minutes=2)):
            pass
        html = self.client.get(url("charts")).content.decode()
        self.assertNotIn(XSS, html)
        self.assertIn("&lt;script&gt;", html)

    def test_queries_do_not_grow_with_runs(self) -> None:
        self.finish(completed=1, failed=1)
        with CaptureQueriesContext(connection) as few:
            self.client.get(url("charts"))
        self.finish(completed=20, failed=5)
        with CaptureQueriesContext(connection) as many:
            self.client.get(url("charts"))
        self.assertEqual(len(few), len(many))
        self.assertLessEqual(len(many), 12)
