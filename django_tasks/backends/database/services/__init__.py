"""Operations on task rows, shared by db_worker, prune_db_task_results and the dashboard.

Commands and views stay thin: they parse input, call one function here, and
report the count or outcome it returns.
"""

from __future__ import annotations

from django_tasks.backends.database.claims import claim_tasks, release_tasks

from .cancelling import (
    CANCELLED_EXC_TYPE,
    CancelRefused,
    TaskCancelled,
    cancel,
    cancel_one,
    cancel_preview,
    is_cancelled,
)
from .pruning import prune
from .queues import (
    QueueState,
    UnknownQueue,
    pause_queue,
    paused_queues,
    queue_states,
    resume_queue,
)
from .retrying import (
    RETRY_BATCH_SIZE,
    RetryOutcome,
    RetryRefused,
    retry,
    retry_one,
    retry_preview,
)
from .running import TaskCache, fail_task, run_task
from .workers import (
    DEFAULT_HEARTBEAT_TIMEOUT,
    LOST_TASK_POLICIES,
    RecoveryOutcome,
    WorkerLost,
    heartbeat,
    heartbeat_timeout_for,
    live_workers,
    lost_task_policy_for,
    lost_workers,
    orphaned_tasks,
    recover_lost_tasks,
    register_worker,
    set_worker_waiting,
    unregister_worker,
)

__all__ = [
    "CANCELLED_EXC_TYPE",
    "CancelRefused",
    "DEFAULT_HEARTBEAT_TIMEOUT",
    "LOST_TASK_POLICIES",
    "QueueState",
    "RETRY_BATCH_SIZE",
    "RecoveryOutcome",
    "RetryOutcome",
    "RetryRefused",
    "TaskCache",
    "TaskCancelled",
    "UnknownQueue",
    "WorkerLost",
    "cancel",
    "cancel_one",
    "cancel_preview",
    "claim_tasks",
    "fail_task",
    "heartbeat",
    "heartbeat_timeout_for",
    "is_cancelled",
    "live_workers",
    "lost_task_policy_for",
    "lost_workers",
    "orphaned_tasks",
    "pause_queue",
    "paused_queues",
    "prune",
    "queue_states",
    "recover_lost_tasks",
    "register_worker",
    "release_tasks",
    "resume_queue",
    "retry",
    "retry_one",
    "retry_preview",
    "run_task",
    "set_worker_waiting",
    "unregister_worker",
]
