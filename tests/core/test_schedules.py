"""Recurring tasks: settings checks, ticks exactly once, DST, missed ticks, enable, run now.

The scheduling service takes ``now``, so most tests drive many ticks with a fake
clock; the concurrency tests run real OS processes (the service from 4 processes
over hundreds of fake minutes, and 4 real ``db_worker`` processes on a schedule
that ticks every second).
"""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from io import StringIO
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import django
import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.db import IntegrityError, transaction
from django.test import override_settings

from django_tasks import ResultStatus, tasks
from django_tasks.backends.database import services
from django_tasks.backends.database.models import DBSchedule, DBScheduledRun, DBTaskResult
from django_tasks.backends.database.options import DatabaseOptions, InvalidOptions, options_for
from django_tasks.backends.database.schedules import ON_TIME
from django_tasks.backends.database.services import scheduling
from tests.worker_helpers import ROOT, Workers, runs, wait_until, worker_env
from tests.worker_settings import WORKER_TASKS

pytestmark = [pytest.mark.django_db(transaction=True)]

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")
WORKER_ID = uuid.uuid4()


def tasks_with(schedules: dict[str, Any]) -> dict[str, Any]:
    default = {**WORKER_TASKS["default"], "OPTIONS": {"schedules": schedules}}
    return {**WORKER_TASKS, "default": default}


def schedule(cron: str, task: str = "tests.schedule_tasks.nightly_report", **more: Any) -> Any:
    return {"task": task, "cron": cron, **more}


def at(*args: int, tz: Any = UTC) -> datetime:
    return datetime(*args, tzinfo=tz)  # type: ignore[arg-type, misc]


def drive(start: datetime, end: datetime, step: timedelta) -> list[DBScheduledRun]:
    """Call enqueue_due at each ``step`` from ``start`` to ``end``; return the runs enqueued."""
    enqueued = []
    now = start
    while now <= end:
        enqueued += scheduling.enqueue_due(backend_name="default", now=now).enqueued
        now += step
    return enqueued


def run_next() -> ResultStatus | None:
    """Claim one ready task and run it as the worker does."""
    (row,) = services.claim_tasks(backend_name="default", queue_names=None, worker_id=WORKER_ID)
    return services.run_task(row, worker_id=WORKER_ID)


def problems(schedules: Any) -> list[str]:
    with override_settings(TASKS=tasks_with(schedules)):
        return list(options_for("default").errors)


# --- settings checks ------------------------------------------------------------


class TestChecks:
    def test_a_good_schedule_has_no_problems(self) -> None:
        good = schedule(
            "30 2 * * *",
            timezone="Europe/Berlin",
            args=["2026-01-01"],
            kwargs={"rows": 3},
            queue_name="reports",
            priority=5,
            missed="skip",
        )
        assert problems({"nightly-report": good, "hourly": schedule("@hourly")}) == []

    def test_aliases_stand_for_five_fields(self) -> None:
        with override_settings(
            TASKS=tasks_with({"h": schedule("@hourly"), "d": schedule("@DAILY")})
        ):
            parsed = options_for("default").schedules
        assert parsed["h"].expression == "0 * * * *"
        assert parsed["d"].expression == "0 0 * * *"

    def test_timezone_defaults_to_time_zone_setting(self) -> None:
        with override_settings(TIME_ZONE="Asia/Tokyo", TASKS=tasks_with({"a": schedule("@daily")})):
            assert options_for("default").schedules["a"].timezone == "Asia/Tokyo"

    def test_unknown_task_path(self) -> None:
        (message,) = problems({"r": schedule("@daily", task="tests.schedule_tasks.missing")})
        assert message.startswith("OPTIONS['schedules']['r']['task'] of backend 'default': ")
        assert "cannot import 'tests.schedule_tasks.missing'" in message

    def test_not_a_task(self) -> None:
        (message,) = problems({"r": schedule("@daily", task="tests.schedule_tasks.not_a_task")})
        assert "'tests.schedule_tasks.not_a_task' is not a task but function" in message
        assert "@task" in message

    @pytest.mark.parametrize(
        ("cron", "why"),
        [
            ("61 * * * *", "Bad minute"),
            ("* * *", "Wrong number of fields"),
            ("@fortnightly", "unknown alias '@fortnightly'"),
            ("0 0 30 2 *", "Bad day-of-month"),
        ],
    )
    def test_bad_cron_expression(self, cron: str, why: str) -> None:
        (message,) = problems({"r": schedule(cron)})
        assert message.startswith(
            f"OPTIONS['schedules']['r']['cron'] {cron!r} is not a valid cron expression ({why}): "
            "use five fields (minute hour day-of-month month day-of-week)"
        )
        assert "@hourly" in message
        assert message.endswith("(backend 'default')")

    def test_unknown_time_zone(self) -> None:
        (message,) = problems({"r": schedule("@daily", timezone="Mars/Olympus")})
        assert message == (
            "OPTIONS['schedules']['r']['timezone'] 'Mars/Olympus' is not a known time zone: "
            "use an IANA name such as 'Europe/Berlin' or 'UTC' (backend 'default')"
        )

    def test_arguments_that_are_not_json(self) -> None:
        when = datetime(2026, 1, 1)
        (args_message,) = problems({"r": schedule("@daily", args=[when])})
        assert "OPTIONS['schedules']['r']['args'][0] is not JSON serializable" in args_message
        (kwargs_message,) = problems({"r": schedule("@daily", kwargs={"day": float("nan")})})
        assert "OPTIONS['schedules']['r']['kwargs']['day']" in kwargs_message
        assert "stored as JSON" in kwargs_message

    def test_duplicate_names(self) -> None:
        (message,) = problems({"Report": schedule("@daily"), "report": schedule("@hourly")})
        assert message == (
            "OPTIONS['schedules'] of backend 'default' names one schedule twice: 'Report' and "
            "'report' (names are compared ignoring case) (backend 'default')"
        )

    def test_other_mistakes_each_get_a_message(self) -> None:
        messages = problems(
            {
                "a": {"cron": "@daily"},
                "b": schedule("@daily", missed="catch_up", priority=500, crontab="x"),
                "c": "@daily",
                " d": schedule("@daily"),
            }
        )
        assert len(messages) == 6, messages
        text = "\n".join(messages)
        assert "OPTIONS['schedules']['a']['task'] must be the import path of a task" in text
        assert "OPTIONS['schedules']['b'] has unknown key(s) 'crontab'; allowed: task, cron" in text
        assert "['missed'] must be one of 'run_once', 'skip', not 'catch_up'" in text
        assert "['priority'] must be a whole number from -100 to 100, not 500" in text
        assert "OPTIONS['schedules']['c'] must be a dict" in text
        assert "a schedule's name must be a non-empty string without surrounding spaces" in text

    def test_schedules_must_be_a_dict(self) -> None:
        (message,) = problems(["nightly"])
        assert "OPTIONS['schedules'] of backend 'default' must be a dict" in message

    def test_manage_py_check_reports_them(self) -> None:
        with (
            override_settings(TASKS=tasks_with({"r": schedule("5 * * *")})),
            pytest.raises(SystemCheckError) as raised,
        ):
            call_command("check", stdout=StringIO(), stderr=StringIO())
        assert "django_tasks.database.E001" in str(raised.value)
        assert "OPTIONS['schedules']['r']['cron'] '5 * * *'" in str(raised.value)

    def test_the_worker_refuses_to_start(self) -> None:
        with (
            override_settings(TASKS=tasks_with({"r": schedule("@daily", task="nope.nope")})),
            pytest.raises(InvalidOptions, match="cannot import 'nope.nope'"),
        ):
            options_for("default").require_valid()

    def test_parse_never_imports(self) -> None:
        # Parsing happens while settings load: a bad path is reported later, by check().
        parsed = DatabaseOptions.parse(
            {"schedules": {"r": schedule("@daily", task="not.loaded.yet")}}, backend_name="x"
        )
        assert parsed.problems == ()
        assert "cannot import 'not.loaded.yet'" in parsed.errors[0]


# --- ticks, with a fake clock -------------------------------------------------------


@pytest.fixture
def every_minute() -> Any:
    with override_settings(
        TASKS=tasks_with(
            {
                "report": schedule(
                    "* * * * *",
                    args=["today"],
                    kwargs={"rows": 7},
                    queue_name="reports",
                    priority=3,
                )
            }
        )
    ):
        yield


@pytest.mark.usefixtures("every_minute")
class TestTicks:
    def test_first_sight_runs_nothing_then_each_tick_once(self) -> None:
        start = at(2026, 5, 1, 12, 0, 30)
        assert scheduling.enqueue_due(backend_name="default", now=start).enqueued == []
        assert DBSchedule.objects.get().last_tick == start

        enqueued = drive(start, start + timedelta(hours=1), timedelta(seconds=20))

        ticks = [run.tick for run in enqueued]
        assert ticks == [at(2026, 5, 1, 12, 1) + timedelta(minutes=i) for i in range(60)]
        assert DBScheduledRun.objects.count() == DBTaskResult.objects.count() == 60

    def test_each_run_is_an_ordinary_task_result_linked_to_its_tick(self) -> None:
        start = at(2026, 5, 1, 12, 0, 30)
        scheduling.enqueue_due(backend_name="default", now=start)
        (run,) = scheduling.enqueue_due(
            backend_name="default", now=start + timedelta(minutes=1)
        ).enqueued

        row = DBTaskResult.objects.get()
        assert run.result_id == row.pk
        assert run.tick == at(2026, 5, 1, 12, 1)
        assert (run.schedule_name, run.backend_name, run.manual) == ("report", "default", False)
        assert row.task_path == "tests.schedule_tasks.nightly_report"
        assert row.args_kwargs == {"args": ["today"], "kwargs": {"rows": 7}}
        assert (row.queue_name, row.priority, row.status) == ("reports", 3, ResultStatus.NEW)
        assert run_next() == ResultStatus.COMPLETE
        assert tasks["default"].get_result(str(row.pk)).return_value == {"day": "today", "rows": 7}

    def test_a_second_pass_at_the_same_time_enqueues_nothing(self) -> None:
        start = at(2026, 5, 1, 12, 0, 30)
        scheduling.enqueue_due(backend_name="default", now=start)
        later = start + timedelta(minutes=1)
        assert len(scheduling.enqueue_due(backend_name="default", now=later).enqueued) == 1
        assert scheduling.enqueue_due(backend_name="default", now=later).enqueued == []

    def test_the_database_refuses_a_second_run_of_a_tick(self) -> None:
        tick = at(2026, 5, 1, 12, 1)
        DBScheduledRun.objects.create(backend_name="default", schedule_name="report", tick=tick)
        with pytest.raises(IntegrityError), transaction.atomic():
            DBScheduledRun.objects.create(backend_name="default", schedule_name="report", tick=tick)
        # "Run now" runs are extra: they may share a time.
        for _ in range(2):
            DBScheduledRun.objects.create(
                backend_name="default", schedule_name="report", tick=tick, manual=True
            )

    def test_a_tick_already_run_is_not_enqueued_again(self) -> None:
        # As if another worker committed this tick's run but our row read was stale.
        start = at(2026, 5, 1, 12, 0, 30)
        scheduling.enqueue_due(backend_name="default", now=start)
        DBScheduledRun.objects.create(
            backend_name="default", schedule_name="report", tick=at(2026, 5, 1, 12, 1)
        )
        assert (
            scheduling.enqueue_due(
                backend_name="default", now=start + timedelta(minutes=1)
            ).enqueued
            == []
        )
        assert not DBTaskResult.objects.exists()

    def test_next_tick_tells_the_worker_when_to_wake(self) -> None:
        outcome = scheduling.enqueue_due(backend_name="default", now=at(2026, 5, 1, 12, 0, 30))
        assert outcome.next_tick == at(2026, 5, 1, 12, 1)

    def test_changing_the_expression_catches_nothing_up(self) -> None:
        start = at(2026, 5, 1, 12, 0, 30)
        scheduling.enqueue_due(backend_name="default", now=start)
        later = start + timedelta(hours=3)
        with override_settings(TASKS=tasks_with({"report": schedule("*/5 * * * *")})):
            assert scheduling.enqueue_due(backend_name="default", now=later).enqueued == []
            assert DBSchedule.objects.get().expression == "*/5 * * * *"
            runs_ = drive(later, later + timedelta(minutes=10), timedelta(minutes=1))
        assert [r.tick.minute for r in runs_] == [5, 10]


@pytest.fixture
def berlin_nightly() -> Any:
    with override_settings(
        TASKS=tasks_with({"n": schedule("30 2 * * *", timezone="Europe/Berlin")})
    ):
        yield


@pytest.mark.usefixtures("berlin_nightly")
class TestDaylightSaving:
    def test_spring_forward_runs_once_at_three(self) -> None:
        # 2026-03-29: at 02:00 the clocks go to 03:00; 02:30 does not exist.
        enqueued = drive(at(2026, 3, 28, 12), at(2026, 3, 30, 12), timedelta(minutes=1))
        local = [r.tick.astimezone(BERLIN) for r in enqueued]
        assert [t.isoformat() for t in local] == [
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
        ]

    def test_fall_back_runs_once_not_twice(self) -> None:
        # 2026-10-25: at 03:00 the clocks go back to 02:00; 02:30 happens twice.
        enqueued = drive(at(2026, 10, 24, 12), at(2026, 10, 26, 12), timedelta(minutes=1))
        local = [r.tick.astimezone(BERLIN) for r in enqueued]
        assert [t.isoformat() for t in local] == [
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
        ]

    def test_utc_ticks_of_an_hourly_schedule_ignore_dst(self) -> None:
        with override_settings(
            TASKS=tasks_with({"h": schedule("@hourly", timezone="Europe/Berlin")})
        ):
            enqueued = drive(
                at(2026, 10, 24, 22, 0, 1), at(2026, 10, 25, 4, 0, 1), timedelta(minutes=1)
            )
        assert [r.tick.hour for r in enqueued] == [23, 0, 1, 2, 3, 4]


class TestMissedTicks:
    def test_run_once_enqueues_one_run_for_all_missed_ticks(self) -> None:
        with override_settings(TASKS=tasks_with({"h": schedule("@hourly")})):
            scheduling.enqueue_due(backend_name="default", now=at(2026, 5, 1, 0, 30))
            # No worker for ten hours: one run, for the newest tick, not ten.
            enqueued = scheduling.enqueue_due(
                backend_name="default", now=at(2026, 5, 1, 10, 45)
            ).enqueued
            assert [r.tick for r in enqueued] == [at(2026, 5, 1, 10)]
            assert (
                scheduling.enqueue_due(backend_name="default", now=at(2026, 5, 1, 10, 50)).enqueued
                == []
            )
            nxt = scheduling.enqueue_due(
                backend_name="default", now=at(2026, 5, 1, 11, 0, 1)
            ).enqueued
            assert [r.tick for r in nxt] == [at(2026, 5, 1, 11)]
        assert DBTaskResult.objects.count() == 2

    def test_skip_waits_for_the_next_tick(self) -> None:
        with override_settings(TASKS=tasks_with({"h": schedule("@hourly", missed="skip")})):
            scheduling.enqueue_due(backend_name="default", now=at(2026, 5, 1, 0, 30))
            outcome = scheduling.enqueue_due(backend_name="default", now=at(2026, 5, 1, 10, 45))
            assert outcome.enqueued == []
            assert outcome.skipped == [("h", at(2026, 5, 1, 10))]
            assert not DBTaskResult.objects.exists()
            # A tick found due within ON_TIME is on time, not missed.
            on_time = at(2026, 5, 1, 11) + ON_TIME
            enqueued = scheduling.enqueue_due(backend_name="default", now=on_time).enqueued
            assert [r.tick for r in enqueued] == [at(2026, 5, 1, 11)]


@pytest.mark.usefixtures("every_minute")
class TestEnableAndRunNow:
    def test_disabled_schedules_do_not_run_and_enabling_catches_nothing_up(self) -> None:
        start = at(2026, 5, 1, 12, 0, 30)
        scheduling.enqueue_due(backend_name="default", now=start)
        assert scheduling.set_enabled(backend_name="default", name="report", enabled=False)
        assert not scheduling.set_enabled(backend_name="default", name="report", enabled=False)

        assert drive(start, start + timedelta(minutes=30), timedelta(minutes=1)) == []

        enabled_at = start + timedelta(minutes=30, seconds=10)
        assert scheduling.set_enabled(
            backend_name="default", name="report", enabled=True, now=enabled_at
        )
        enqueued = drive(enabled_at, enabled_at + timedelta(minutes=2), timedelta(minutes=1))
        assert [r.tick for r in enqueued] == [at(2026, 5, 1, 12, 31), at(2026, 5, 1, 12, 32)]

    def test_the_flag_is_stored_in_the_database(self) -> None:
        scheduling.set_enabled(backend_name="default", name="report", enabled=False)
        # A fresh backend (a restarted worker) reads it from the row.
        with override_settings(
            TASKS=tasks_with(
                {
                    "report": schedule(
                        "* * * * *",
                        args=["today"],
                        kwargs={"rows": 7},
                        queue_name="reports",
                        priority=3,
                    )
                }
            )
        ):
            (state,) = scheduling.schedule_states()
        assert state.enabled is False
        assert DBSchedule.objects.get().enabled is False

    def test_run_now_enqueues_one_extra_run_even_when_disabled(self) -> None:
        scheduling.set_enabled(backend_name="default", name="report", enabled=False)
        run = scheduling.run_now(backend_name="default", name="report")
        assert run.manual
        row = DBTaskResult.objects.get()
        assert run.result_id == row.pk
        assert row.args_kwargs == {"args": ["today"], "kwargs": {"rows": 7}}

    def test_unknown_schedule(self) -> None:
        with pytest.raises(scheduling.UnknownSchedule, match="No schedule 'nope'"):
            scheduling.run_now(backend_name="default", name="nope")
        with pytest.raises(scheduling.UnknownSchedule):
            scheduling.set_enabled(backend_name="default", name="nope", enabled=False)


class TestStates:
    def test_states_show_next_run_and_last_status(self) -> None:
        config = {
            "broken": schedule("0 3 * * *", task="tests.schedule_tasks.fail_always"),
            "fine": schedule("0 4 * * *", timezone="Europe/Berlin"),
        }
        with override_settings(TASKS=tasks_with(config)):
            start = at(2026, 5, 1, 0, 0)
            scheduling.enqueue_due(backend_name="default", now=start)
            drive(start, at(2026, 5, 1, 3, 1), timedelta(minutes=30))
            assert {run_next(), run_next()} == {ResultStatus.COMPLETE, ResultStatus.FAILED}
            states = {s.name: s for s in scheduling.schedule_states(now=at(2026, 5, 1, 3, 5))}
            failed = scheduling.failed_schedules(now=at(2026, 5, 1, 3, 5))

        assert states["broken"].last_status == "FAILED"
        assert states["broken"].next_run == at(2026, 5, 2, 3)
        assert states["fine"].last_run is not None  # 04:00 Berlin is 02:00 UTC
        assert states["fine"].next_run == at(2026, 5, 2, 2)
        assert states["fine"].schedule.describe() == "At 04:00 every day (Europe/Berlin)"
        assert [s.name for s in failed] == ["broken"]

    def test_a_backend_that_cannot_load_does_not_hide_the_others(self) -> None:
        config = {**tasks_with({"h": schedule("@hourly")}), "gone": {"BACKEND": "no.Such"}}
        with override_settings(TASKS=config):
            assert [s.name for s in scheduling.schedule_states()] == ["h"]

    def test_a_waiting_tick_is_shown_when_no_worker_ran(self) -> None:
        with override_settings(TASKS=tasks_with({"h": schedule("@hourly")})):
            scheduling.schedule_states(now=at(2026, 5, 1, 0, 30))
            (state,) = scheduling.schedule_states(now=at(2026, 5, 1, 3, 30))
        assert state.waiting_tick == at(2026, 5, 1, 3)
        assert state.last_run is None and state.last_status is None

    def test_a_refused_enqueue_loses_only_its_tick(self, caplog: pytest.LogCaptureFixture) -> None:
        # nightly_report takes one positional argument: two are refused at enqueue.
        with override_settings(TASKS=tasks_with({"r": schedule("* * * * *", args=[1, 2])})):
            start = at(2026, 5, 1, 0, 0, 30)
            scheduling.enqueue_due(backend_name="default", now=start)
            assert drive(start, start + timedelta(minutes=2), timedelta(minutes=1)) == []
        assert not DBScheduledRun.objects.exists() and not DBTaskResult.objects.exists()
        assert DBSchedule.objects.get().last_tick == at(2026, 5, 1, 0, 2)
        assert "Could not enqueue schedule=r" in caplog.text

    def test_a_task_enqueued_on_commit_is_written_in_the_ticks_transaction(self) -> None:
        config = {"c": schedule("* * * * *", task="tests.schedule_tasks.waits_for_commit")}
        with override_settings(TASKS=tasks_with(config)):
            start = at(2026, 5, 1, 0, 0, 30)
            scheduling.enqueue_due(backend_name="default", now=start)
            with transaction.atomic():
                later = start + timedelta(minutes=1)
                (run,) = scheduling.enqueue_due(backend_name="default", now=later).enqueued
                # Before any commit: the row was not left to an on_commit callback.
                assert DBTaskResult.objects.get().pk == run.result_id

    def test_runs_keep_the_tasks_own_lifecycle_settings(self) -> None:
        config = {"l": schedule("* * * * *", task="tests.schedule_tasks.with_lifecycle")}
        with override_settings(TASKS=tasks_with(config)):
            scheduling.run_now(backend_name="default", name="l")
        row = DBTaskResult.objects.get()
        assert (row.max_attempts, row.time_limit) == (3, 30.0)

    @pytest.mark.skipif(django.VERSION < (6, 0), reason="django.tasks needs Django 6")
    def test_a_django_tasks_task_runs_on_schedule(self) -> None:
        config = {"d": schedule("* * * * *", task="tests.django_api_tasks.add", args=[2, 3])}
        with override_settings(TASKS=tasks_with(config)):
            assert problems(config) == []
            start = at(2026, 5, 1, 0, 0, 30)
            scheduling.enqueue_due(backend_name="default", now=start)
            (run,) = scheduling.enqueue_due(
                backend_name="default", now=start + timedelta(minutes=1)
            ).enqueued
            assert run_next() == ResultStatus.COMPLETE
        row = DBTaskResult.objects.get()
        assert (row.pk, row.api, row.return_value) == (run.result_id, "django.tasks", 5)

    def test_a_pruned_result_leaves_its_run(self) -> None:
        with override_settings(TASKS=tasks_with({"r": schedule("@daily")})):
            scheduling.run_now(backend_name="default", name="r")
            assert run_next() == ResultStatus.COMPLETE
            assert services.prune(backend_name="default", queue_names=None, min_age_days=0) == 1
            (state,) = scheduling.schedule_states()
        assert state.last_run is not None and state.last_run.result is None
        assert state.last_status is None


# --- the command ----------------------------------------------------------------


@pytest.mark.usefixtures("every_minute")
class TestCommand:
    def call(self, *args: str) -> str:
        out = StringIO()
        call_command("db_task_schedules", *args, stdout=out)
        return out.getvalue()

    def test_lists_schedules(self) -> None:
        scheduling.run_now(backend_name="default", name="report")
        assert run_next() == ResultStatus.COMPLETE
        output = self.call()
        assert "report" in output
        assert "tests.schedule_tasks.nightly_report" in output
        assert "Every minute (UTC)" in output
        assert "enabled" in output
        assert "COMPLETE" in output

    def test_disable_enable_and_run_now(self) -> None:
        assert "Disabled schedule 'report'" in self.call("--disable", "report")
        assert DBSchedule.objects.get().enabled is False
        assert "disabled" in self.call()
        assert "Enabled schedule 'report'" in self.call("--enable", "report")
        assert DBSchedule.objects.get().enabled is True
        output = self.call("--run-now", "report")
        run = DBScheduledRun.objects.get()
        assert f"Enqueued a run of schedule 'report': result {run.result_id}" in output

    def test_a_due_tick_waits_for_a_worker(self) -> None:
        scheduling.schedule_states(now=at(2026, 5, 1))  # counting started long ago
        assert "as soon as a worker runs (tick" in self.call()

    def test_unknown_name_is_an_error(self) -> None:
        with pytest.raises(Exception, match="No schedule 'nope' is configured"):
            self.call("--run-now", "nope")


# --- concurrency: real processes ----------------------------------------------------


@pytest.mark.slow
@override_settings(TASKS=tasks_with({"m": schedule("* * * * *")}))
def test_four_processes_enqueue_each_of_300_ticks_exactly_once(tmp_path: Path) -> None:
    minutes = 300
    base = at(2026, 5, 1, 0, 0, 0)
    scheduling.schedule_states(now=base)  # the schedule's row: counting starts at base
    env = worker_env(tasks_with({"m": schedule("* * * * *")}))
    command = [
        *(sys.executable, "-m", "tests.schedule_driver"),
        *(base.isoformat(), str(minutes), str(tmp_path), "4"),
    ]
    drivers = [
        subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        for _ in range(4)
    ]
    outputs = [d.communicate(timeout=300)[0].decode() for d in drivers]
    assert [d.returncode for d in drivers] == [0, 0, 0, 0], outputs

    ticks = Counter(DBScheduledRun.objects.values_list("tick", flat=True))
    assert len(ticks) == minutes and set(ticks.values()) == {1}
    assert min(ticks) == base + timedelta(minutes=1)
    assert max(ticks) == base + timedelta(minutes=minutes)
    assert DBTaskResult.objects.count() == minutes
    assert set(DBScheduledRun.objects.values_list("result_id", flat=True)) == set(
        DBTaskResult.objects.values_list("pk", flat=True)
    )


EVERY_SECOND = {"s": schedule("* * * * * *", task="tests.schedule_tasks.tick")}


@pytest.mark.slow
def test_four_real_workers_run_each_tick_once(workers: Workers, runs_file: str) -> None:
    config = tasks_with({"s": {**EVERY_SECOND["s"], "args": [runs_file]}})
    with override_settings(TASKS=config):
        started = [workers.start("--interval", "0.1", tasks=config) for _ in range(4)]
        wait_until(lambda: DBScheduledRun.objects.count() >= 6, timeout=60, what="6 ticks")
        for worker in started:
            worker.send_signal()
        assert workers.wait_all(started) == [0, 0, 0, 0], workers.outputs()

    ticks = Counter(DBScheduledRun.objects.values_list("tick", flat=True))
    assert set(ticks.values()) == {1}  # no tick enqueued twice
    assert all(tick.microsecond == 0 for tick in ticks)  # ticks are whole seconds
    results = DBTaskResult.objects.all()
    assert results.count() == len(ticks)
    finished = results.filter(status=ResultStatus.COMPLETE).count()
    assert runs(runs_file)["tick"] == finished


@pytest.mark.slow
def test_real_workers_honour_disable_and_enable(workers: Workers, runs_file: str) -> None:
    config = tasks_with({"s": {**EVERY_SECOND["s"], "args": [runs_file]}})
    with override_settings(TASKS=config):
        started = [workers.start("--interval", "0.1", tasks=config) for _ in range(2)]
        wait_until(lambda: DBScheduledRun.objects.count() >= 2, timeout=60, what="2 ticks")
        scheduling.set_enabled(backend_name="default", name="s", enabled=False)
        time.sleep(1.5)  # a tick being enqueued while we disabled may still commit
        count = DBScheduledRun.objects.count()
        time.sleep(3)  # three ticks pass
        assert DBScheduledRun.objects.count() == count
        scheduling.set_enabled(backend_name="default", name="s", enabled=True)
        wait_until(lambda: DBScheduledRun.objects.count() >= count + 2, timeout=30, what="resume")
        for worker in started:
            worker.send_signal()
        assert workers.wait_all(started) == [0, 0], workers.outputs()


def test_batch_workers_do_not_schedule(workers: Workers) -> None:
    config = tasks_with({"s": EVERY_SECOND["s"] | {"args": ["/dev/null"]}})
    with override_settings(TASKS=config):
        worker = workers.start("--batch", "--interval", "0", tasks=config)
        assert worker.wait() == 0, worker.output()
    assert not DBSchedule.objects.exists()
    assert not DBScheduledRun.objects.exists()
