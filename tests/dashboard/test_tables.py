"""The results table: columns, sorting headers, cell formatting."""

from __future__ import annotations

import re
from datetime import timedelta

from django.utils import timezone

from django_tasks import django_api
from django_tasks.task import ResultStatus
from django_tasks_admin.list_state import DEFAULT_SORT, SORT_KEYS

from .utils import DashboardTestCase, make_complete, make_row, search, url


class TableTests(DashboardTestCase):
    def test_sort_links_toggle_and_drop_the_cursor(self):
        make_row()
        response = self.client.get(url("changelist", query="status=NEW&sort=queue&after=abc"))
        content = response.content.decode()
        link = search(r'<th [^>]*class="[^"]*asc[^"]*"[^>]*>\s*<a href="([^"]+)"', content)
        assert link, "the sorted column is marked"
        href = link[1].replace("&amp;", "&")
        assert "sort=-queue" in href and "status=NEW" in href and "after=" not in href

    def test_the_sortable_columns_are_the_sort_keys(self):
        make_row()
        table = self.client.get(url("changelist")).context["table"]
        assert {c.name for c in table.columns if c.orderable} == set(SORT_KEYS)
        assert [str(o) for o in table.order_by] == [DEFAULT_SORT]

    def test_sorting_by_task_path(self):
        b = make_row(task_path="tests.tasks.b")
        a = make_row(task_path="tests.tasks.a")
        rows = self.client.get(url("changelist", query="sort=task")).context["table"].page.rows
        assert [r.pk for r in rows] == [a.pk, b.pk]

    def test_cells(self):
        now = timezone.now()
        make_complete(started_at=now - timedelta(seconds=90), finished_at=now)
        deferred = make_row(run_after=now + timedelta(hours=1, minutes=59))
        content = self.client.get(url("changelist")).content.decode()
        assert '<span class="dt-status dt-status-complete">COMPLETE</span>' in content
        assert "1 min 30 s" in content
        assert "calculate_meaning_of_life</a>" in content
        row = search(rf'<tr [^>]*id="dt-row-{deferred.pk}"[^>]*>.*?</tr>', content, re.S)[0]
        assert "runs <time" in row
        assert "in 1 h 59 m" in row  # exact: not "in 1 hour"
        assert f'data-status="{ResultStatus.NEW}"' in row

    def test_rows_of_django_tasks_name_their_api_and_django_status(self):
        theirs_complete = make_complete(api=django_api.DJANGO)
        theirs_new = make_row(api=django_api.DJANGO)
        theirs_failed = make_row(api=django_api.DJANGO, status=ResultStatus.FAILED)
        ours_complete = make_complete()
        content = self.client.get(url("changelist")).content.decode()

        def row(result):
            return search(rf'<tr [^>]*id="dt-row-{result.pk}"[^>]*>.*?</tr>', content, re.S)[0]

        badge = '<span class="dt-api" title="Enqueued with django.tasks">django.tasks</span>'
        # One status vocabulary (ours); django.tasks' name, where it differs, as a tooltip.
        assert (
            '<span class="dt-status dt-status-complete" title="django.tasks: SUCCESSFUL">'
            "COMPLETE</span>" in row(theirs_complete)
        )
        assert badge in row(theirs_complete)
        assert 'data-api="django.tasks"' in row(theirs_complete)
        assert 'title="django.tasks: READY">NEW</span>' in row(theirs_new)
        assert '<span class="dt-status dt-status-failed">FAILED</span>' in row(theirs_failed)
        assert badge in row(theirs_failed)
        assert '<span class="dt-status dt-status-complete">COMPLETE</span>' in row(ours_complete)
        assert "dt-api" not in row(ours_complete)
