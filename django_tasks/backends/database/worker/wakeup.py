"""The wake-up flag every worker thread waits on: executors, the heartbeat thread, the pool."""

from __future__ import annotations

import select
import socket
from typing import Any


class Wakeup:
    """A wake-up flag a thread can wait on with a timeout, set from any thread or a signal.

    A socket pair rather than a threading.Event, because setting an Event from a
    signal handler can deadlock the thread the handler interrupted.
    """

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)

    def fileno(self) -> int:
        return self._r.fileno()

    def set(self) -> None:
        try:
            self._w.send(b"\0")
        except OSError:  # buffer full: already set
            pass

    def clear(self) -> None:
        try:
            while self._r.recv(4096):
                pass
        except OSError:
            pass

    def wait(self, timeout: float | None, *others: Any) -> list[Any]:
        """Wait until set (or one of ``others`` is readable) or ``timeout``; clear it."""
        timeout = None if timeout is None else max(timeout, 0)
        readable, _, _ = select.select([self, *others], [], [], timeout)
        if self in readable:
            self.clear()
        return readable

    def close(self) -> None:
        self._r.close()
        self._w.close()
