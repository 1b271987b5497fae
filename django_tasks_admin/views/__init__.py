"""The dashboard's views, which ``TaskResultAdmin.get_urls()`` mounts.

Pages that only read (overview, results list, result detail) and the action views
(retry, cancel, prune), each a POST that is CSRF-protected, permission-checked and logged.
"""

from __future__ import annotations

from .cancel import BulkCancelView, CancelMatchingView
from .overview import OverviewView
from .prune import PruneView
from .result import CancelOneView, ResultDetailView, RetryOneView
from .results import ResultListView
from .retry import BulkRetryView, RetryMatchingView, RunActionView

__all__ = [
    "BulkCancelView",
    "BulkRetryView",
    "CancelMatchingView",
    "CancelOneView",
    "OverviewView",
    "PruneView",
    "ResultDetailView",
    "ResultListView",
    "RetryMatchingView",
    "RetryOneView",
    "RunActionView",
]
