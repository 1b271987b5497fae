"""Keyset pagination: every row exactly once, both directions, any sort."""

from __future__ import annotations

from datetime import timedelta

from django.test import TestCase
from django.utils import timezone

from django_tasks.backends.database.models import DBTaskResult
from django_tasks.task import ResultStatus
from django_tasks_admin.pagination import KeysetPaginator, parse_sort
from django_tasks_admin.tables import DEFAULT_SORT, SORT_KEYS

from .utils import make_row


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
        paginator = KeysetPaginator(
            DBTaskResult.objects.all(), parse_sort(sort, SORT_KEYS, DEFAULT_SORT), per_page
        )
        pages = [paginator.page()]
        while pages[-1].has_next:
            pages.append(paginator.page(after=pages[-1].next_cursor))
        # Walk back from the last page with the "previous" cursors.
        back = [pages[-1]]
        while back[-1].has_previous:
            back.append(paginator.page(before=back[-1].previous_cursor))
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
        paginator = KeysetPaginator(
            DBTaskResult.objects.all(), parse_sort("-enqueued", SORT_KEYS, DEFAULT_SORT), 5
        )
        first = [r.pk for r in paginator.page().rows]
        assert [r.pk for r in paginator.page(after="!!garbage").rows] == first
        other = KeysetPaginator(
            DBTaskResult.objects.all(), parse_sort("priority", SORT_KEYS, DEFAULT_SORT), 5
        )
        foreign = other.page().next_cursor
        assert [r.pk for r in paginator.page(after=foreign).rows] == first

    def test_unknown_sort_falls_back_to_the_default(self):
        sort = parse_sort("-args_kwargs", SORT_KEYS, DEFAULT_SORT)
        assert sort.param == DEFAULT_SORT
