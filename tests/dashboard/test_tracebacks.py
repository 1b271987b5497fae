"""Parsing stored tracebacks into chained sections and project/library frames."""

from __future__ import annotations

import json
import traceback

from django.test import SimpleTestCase, override_settings

from django_tasks_admin.tracebacks import is_library_path, parse_traceback


def formatted(exc: BaseException) -> str:
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def chained() -> BaseException:
    try:
        try:
            json.loads("{")
        except ValueError:
            {"other": 1}["key"]
    except KeyError as e:
        try:
            raise RuntimeError("outer\nsecond line") from e
        except RuntimeError as outer:
            return outer
    raise AssertionError


class TracebackTests(SimpleTestCase):
    def test_chain_of_three_exceptions(self):
        sections = parse_traceback(formatted(chained()))
        assert [s.exception_class for s in sections] == [
            "json.decoder.JSONDecodeError",
            "KeyError",
            "RuntimeError",
        ]
        assert sections[0].cause == ""
        assert sections[1].cause.startswith("During handling")
        assert sections[2].cause.startswith("The above exception was the direct cause")
        assert sections[2].exception == "RuntimeError: outer\nsecond line"

    def test_project_and_library_frames(self):
        first = parse_traceback(formatted(chained()))[0]
        assert first.frames[0].library is False  # this test file
        assert first.frames[0].func == "chained"
        assert "json.loads" in first.frames[0].code
        assert all(f.library for f in first.frames[1:])  # the standard library's json
        assert [g.library for g in first.groups] == [False, True]

    def test_site_packages_paths_are_library(self):
        assert is_library_path("/srv/app/.venv/lib/python3.12/site-packages/requests/api.py")
        assert is_library_path("/usr/lib/python3/dist-packages/foo.py")
        assert not is_library_path("/srv/app/myproject/tasks.py")

    @override_settings(DJANGO_TASKS_ADMIN={"LIBRARY_PATH_MARKERS": ("/vendor/",)})
    def test_markers_are_configurable(self):
        assert is_library_path("/srv/app/vendor/lib.py")

    def test_exception_without_traceback(self):
        sections = parse_traceback("ValueError: no frames\n")
        assert len(sections) == 1
        assert sections[0].frames == []
        assert sections[0].exception == "ValueError: no frames"

    def test_recursion_marker_is_kept(self):
        text = (
            "Traceback (most recent call last):\n"
            '  File "/srv/app/x.py", line 2, in f\n'
            "    return f()\n"
            "  [Previous line repeated 996 more times]\n"
            "RecursionError: maximum recursion depth exceeded\n"
        )
        (section,) = parse_traceback(text)
        assert section.other == ["[Previous line repeated 996 more times]"]
        assert section.frames[0].code == "return f()"

    def test_empty(self):
        assert parse_traceback(None) == []
        assert parse_traceback("") == []
