"""Keyset pagination: every row exactly once, both directions, any sort."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.test import TestCase
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.list_state import DEFAULT_SORT, SORT_KEYS, default_sort, parse_sort
from django_tasks_admin.pagination import MAX_PER_PAGE, KeysetPaginator, Page, Sort

from .utils import make_row


def sorted_by(value: str) -> Sort:
    return parse_sort(value) or default_sort()


class KeysetPaginatorTests(TestCase):
    @classmethod
    def setUpTestData(cls):
        now = timezone.now()
        statuses = list(ResultStatus)
        for i in range(23):
            make_row(
                priority=i % 3,
                queue_name=f"q{i % 4}",
                status=statuses[i % 4],
                # Some NULLs, and ties, in the nullable column.
                finished_at=None if i % 3 == 0 else now - timedelta(minutes=i % 5),
            )

    def walk(self, sort: str, per_page: int = 5) -> list[DBTaskResult]:
        def page(**cursor: str | None) -> Page:
            paginator = KeysetPaginator(
                DBTaskResult.objects.all(), per_page, sort=sorted_by(sort), **cursor
            )
            with CaptureQueriesContext(connection) as queries:
                page = paginator.page()
            # One index range, or two: a nullable column's values then its NULLs, or the
            # rest of the cursor's status (queue, task) then the statuses beyond it.
            assert len(queries.captured_queries) <= 2, (sort, cursor)
            return page

        pages = [page()]
        while pages[-1].has_next:
            pages.append(page(after=pages[-1].next_cursor))
        # Walk back from the last page with the "previous" cursors.
        back = [pages[-1]]
        while back[-1].has_previous:
            back.append(page(before=back[-1].previous_cursor))
        assert [[r.pk for r in p.rows] for p in reversed(back)] == [
            [r.pk for r in p.rows] for p in pages
        ]
        assert not pages[0].has_previous
        return [row for page in pages for row in page.rows]

    def test_every_sort_visits_every_row_once_in_order(self):
        everything = set(DBTaskResult.objects.values_list("pk", flat=True))
        for name, key in SORT_KEYS.items():
            for sort in (name, f"-{name}"):
                rows = self.walk(sort)
                assert len(rows) == 23, sort
                assert {r.pk for r in rows} == everything, sort
                values = [getattr(r, key.field) for r in rows]
                present = [v for v in values if v is not None]
                assert present == sorted(present, reverse=sort.startswith("-")), sort
                if key.nullable:  # NULLs last, both directions
                    assert values[len(present) :] == [None] * (len(values) - len(present))

    def test_bad_or_foreign_cursor_means_first_page(self):
        def rows(sort: str, after: str | None = None) -> list[DBTaskResult]:
            paginator = KeysetPaginator(
                DBTaskResult.objects.all(), 5, sort=sorted_by(sort), after=after
            )
            return paginator.page().rows

        first = [r.pk for r in rows("-enqueued")]
        assert [r.pk for r in rows("-enqueued", after="!!garbage")] == first
        foreign = (
            KeysetPaginator(DBTaskResult.objects.all(), 5, sort=sorted_by("task"))
            .page()
            .next_cursor
        )
        assert [r.pk for r in rows("-enqueued", after=foreign)] == first

    def test_unknown_sort_falls_back_to_the_default(self):
        sort = sorted_by("-args_kwargs")
        assert sort.param == DEFAULT_SORT

    def test_a_page_never_holds_more_than_the_maximum(self):
        paginator = KeysetPaginator(DBTaskResult.objects.all(), 10**6, sort=default_sort())
        assert paginator.per_page == MAX_PER_PAGE
        assert KeysetPaginator(DBTaskResult.objects.all(), 0, sort=default_sort()).per_page == 1


class RangeTests(TestCase):
    """The cursor is a row-value comparison: a range of an index, not a filter on every row."""

    def test_a_later_page_is_a_row_value_range_of_the_sort_columns_and_pk(self):
        rows = [make_row() for _ in range(3)]
        paginator = KeysetPaginator(DBTaskResult.objects.all(), 1, sort=default_sort())
        cursor = paginator.page().next_cursor
        assert cursor is not None
        later = KeysetPaginator(DBTaskResult.objects.all(), 1, sort=default_sort(), after=cursor)
        (queryset,) = later.ranges()
        sql = str(queryset.query)
        assert '("django_tasks_database_dbtaskresult"."enqueued_at", ' in sql
        assert '"django_tasks_database_dbtaskresult"."id") < (' in sql
        assert [r.pk for r in later.page().rows] == [
            sorted(rows, key=lambda r: (r.enqueued_at, r.pk))[1].pk
        ]

    def test_a_sort_by_status_reads_the_rest_of_the_status_then_the_next_ones(self):
        make_row(status=ResultStatus.NEW)
        make_row(status=ResultStatus.NEW)
        make_row(status=ResultStatus.RUNNING)
        sort = sorted_by("status")
        first = KeysetPaginator(DBTaskResult.objects.all(), 1, sort=sort).page()
        later = KeysetPaginator(DBTaskResult.objects.all(), 1, sort=sort, after=first.next_cursor)
        same, beyond = later.ranges()
        assert [r.status for r in same] == [ResultStatus.NEW]  # the other NEW row
        assert [r.status for r in beyond] == [ResultStatus.RUNNING]
        assert [r.status for r in later.page().rows] == [ResultStatus.NEW]
