"""The results list's state: read once from the query string, every URL built from it."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlsplit

from django.http import QueryDict
from django.test import SimpleTestCase

from django_tasks_admin.filters import ResultFilterSet
from django_tasks_admin.list_state import DEFAULT_SORT, ResultListState
from django_tasks_admin.pagination import MAX_PER_PAGE, Page


def state(query: str) -> ResultListState:
    return ResultListState.from_query(
        QueryDict(query), list_url="/results/", retry_matching_url="/retry-matching/"
    )


def params(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query, keep_blank_values=True)


class ReadingTests(SimpleTestCase):
    def test_filters_list_parameters_and_unknown_ones_are_told_apart(self):
        s = state("status=FAILED&sort=queue&after=abc&fp=123&priority_min=2&foo=1&per_page=5")
        assert list(s.filters.items()) == [("status", "FAILED"), ("priority_min", "2")]
        assert s.sort.param == "queue"
        assert (s.after, s.before, s.fingerprint, s.per_page) == ("abc", None, "123", 5)
        assert s.ignored == ("foo",)
        assert s.filters_active

    def test_empty_values_are_not_filters(self):
        s = state("status=&queue=&q=")
        assert not s.filters_active
        assert s.ignored == ()

    def test_page_size_is_bounded_as_the_paginator_bounds_it(self):
        assert state("per_page=0").per_page == 1
        assert state("per_page=-3").per_page == 1
        assert state(f"per_page={MAX_PER_PAGE + 1}").per_page == MAX_PER_PAGE
        assert state(f"per_page={MAX_PER_PAGE + 1}").page_url() == f"?per_page={MAX_PER_PAGE}"

    def test_an_unknown_sort_or_page_size_is_ignored_and_reported(self):
        s = state("sort=-args_kwargs&per_page=lots&page=3")
        assert s.sort.param == DEFAULT_SORT
        assert s.per_page is None
        assert s.ignored == ("sort=-args_kwargs", "per_page=lots", "page")

    def test_the_api_is_a_filter(self):
        s = state("api=django.tasks&sort=task&after=cur")
        assert list(s.filters.items()) == [("api", "django.tasks")]
        assert s.ignored == ()
        assert s.filters_active

    def test_every_range_filter_reads_both_ends(self):
        s = state(
            "priority_max=9&enqueued_after=2026-01-01T10:00&enqueued_before=2026-01-02T10:00"
            "&finished_after=2026-01-01T00:00&finished_before=2026-01-03T00:00&priority_min=1"
        )
        assert s.ignored == ()
        assert len(s.filters) == 6


class UrlTests(SimpleTestCase):
    def test_values_are_query_string_encoded(self):
        s = state("q=a%26b%3Dc+%23x&sort=task")
        link = s.page_url(after="cur")
        assert link.startswith("?")
        assert params(link) == [("q", "a&b=c #x"), ("sort", "task"), ("after", "cur")]
        assert params(s.retry_matching_link) == [("q", "a&b=c #x")]

    def test_pages_keep_filters_sort_and_page_size_and_drop_the_fingerprint(self):
        s = state("status=FAILED&sort=-finished&per_page=7&before=old&fp=123")
        page = Page(rows=[], object_list=[], next_cursor="N", previous_cursor="P")
        pager = s.pager(page)
        assert params(pager.next_url or "") == [
            ("status", "FAILED"),
            ("sort", "-finished"),
            ("per_page", "7"),
            ("after", "N"),
        ]
        assert params(pager.previous_url or "")[-1] == ("before", "P")
        assert params(pager.first_url or "") == [
            ("status", "FAILED"),
            ("sort", "-finished"),
            ("per_page", "7"),
        ]
        last = s.pager(Page(rows=[], object_list=[], next_cursor=None, previous_cursor=None))
        assert last == type(last)(first_url=None, previous_url=None, next_url=None)

    def test_the_poll_asks_for_this_page_with_its_fingerprint(self):
        s = state("queue=emails&after=cur&fp=old")
        url = s.poll_url("new")
        assert url.startswith("/results/?")
        assert params(url) == [("queue", "emails"), ("after", "cur"), ("fp", "new")]
        assert params(s.current_url) == [("queue", "emails"), ("after", "cur")]

    def test_sort_links_start_at_the_first_page_and_toggle(self):
        s = state("status=NEW&sort=queue&after=cur")
        assert params(s.sort_url("queue")) == [("status", "NEW"), ("sort", "-queue")]
        assert params(s.sort_url("task")) == [("status", "NEW"), ("sort", "task")]
        # The default sort is left out of the URL.
        assert params(state("").sort_url("enqueued")) == [("sort", "enqueued")]
        assert params(state("sort=enqueued").sort_url("enqueued")) == []
        with self.assertRaises(ValueError):
            s.sort_url("took")
        # Priority is not offered: no index range serves it (see SORT_KEYS).
        with self.assertRaises(ValueError):
            s.sort_url("priority")

    def test_retry_matching_and_the_filter_url_carry_only_the_filters(self):
        s = state("queue=emails&sort=task&per_page=3&after=cur&foo=1")
        assert s.retry_matching_link == "/retry-matching/?queue=emails"
        assert s.filter_url == "/results/?queue=emails"
        assert state("sort=task").retry_matching_link == "/retry-matching/"
        assert state("").filter_url == "/results/"

    def test_the_api_filter_is_kept_in_every_link(self):
        s = state("api=django.tasks&status=FAILED&sort=task&after=cur")
        assert params(s.page_url(after="N")) == [
            ("api", "django.tasks"),
            ("status", "FAILED"),
            ("sort", "task"),
            ("after", "N"),
        ]
        assert ("api", "django.tasks") in params(s.sort_url("queue"))
        assert ("api", "django.tasks") in params(s.poll_url("fp"))
        assert ("api", "django.tasks") in params(s.current_url)
        assert params(s.retry_matching_link) == [("api", "django.tasks"), ("status", "FAILED")]
        assert params(s.filter_url) == [("api", "django.tasks"), ("status", "FAILED")]
        # A filter of the form, not a hidden field beside it.
        assert s.form_params == [("sort", "task")]

    def test_the_filter_form_keeps_sort_and_page_size(self):
        assert state("status=NEW&sort=task&per_page=3&after=x").form_params == [
            ("sort", "task"),
            ("per_page", "3"),
        ]
        assert state("status=NEW").form_params == []


class SummaryTests(SimpleTestCase):
    def test_summary_names_every_filter_set_including_ranges(self):
        s = state(
            "q=x&status=FAILED&queue=a,b&task=mail&backend=default&priority_min=1&priority_max=5"
            "&enqueued_after=2026-01-01T10:00&finished_before=2026-01-03T00:00"
            "&id=00000000-0000-0000-0000-000000000001&sort=task&foo=1&api=django.tasks"
        )
        summary = dict(s.filter_summary(ResultFilterSet(data=s.filters).form))
        assert summary == {
            "Search": "x",
            "Status": "FAILED",
            "Queue": "a,b",
            "Task path": "mail",
            "Backend": "default",
            "API": "django.tasks",
            "Priority": "min 1, max 5",
            "Enqueued": "after 2026-01-01T10:00",
            "Finished": "before 2026-01-03T00:00",
            "Result id": "00000000-0000-0000-0000-000000000001",
        }
