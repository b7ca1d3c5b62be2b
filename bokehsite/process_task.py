"""One background task per process, such as the renewal of a lease: ``ProcessTask.ensure()``
starts it unless it is already running on the current event loop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any


class ProcessTask:
    """``run()``'s task, at most one at a time; started again when it ended, or when it belongs to
    another event loop (a loop that was closed, as each test's is, never runs its tasks again)."""

    def __init__(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._run = run
        self._task: asyncio.Task[None] | None = None

    def ensure(self) -> None:
        """Start the task unless it runs on this event loop (call it from a coroutine)."""
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._run())

    def cancel(self) -> None:
        """Stop the task, if there is one; ``ensure()`` starts a new one."""
        if self._task is not None:
            self._task.cancel()
            self._task = None
