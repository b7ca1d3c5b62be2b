"""What an app host measures of itself to keep within its limits: its resident memory, and the
CPU time each session's thread has spent in the callback it runs now. No Django here: the host
gets the limits from the server, in the reply to its hello (``appserver.consumers``).

A session's event loop (``appserver.running``) waits for work in ``select()``: the thread is busy
from the moment it leaves ``select()`` until it enters it again, which is one run of the ready
callbacks (a slider's ``on_change``, a periodic callback, the document's build...). The
``Watchdog`` looks at every session's ``CallbackClock`` a few times a second; one busy for more
than the limit in CPU time (a sleep or a wait costs none) gets ``CallbackTimedOut`` raised in its
thread, between two of its Python instructions, and is ended.
"""

from __future__ import annotations

import ctypes
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable

logger = logging.getLogger("appserver")

# Seconds between the watchdog's looks.
WATCH_EVERY = 0.2
# Seconds a thread has, once told to stop its callback, to return to its loop: past them it runs
# code that never returns to Python (or that swallows every exception), and cannot be stopped.
RESPONSE_GRACE = 3.0
_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_memory() -> int:
    """This process's resident memory in bytes (0 where /proc is not there)."""
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):
        return 0


class CallbackTimedOut(BaseException):
    """Raised in a session's thread whose callback ran past the CPU time limit. A BaseException,
    so that an app's ``except Exception`` does not catch it."""


def timed_out_reason(limit: float) -> str:
    return f"a callback of this app ran for more than {limit:g} s of CPU time; the session was ended"


class CallbackClock:
    """When one thread left ``select()`` last (its CPU time then), or None while it waits there."""

    def __init__(self) -> None:
        self.busy_since: float | None = None
        self.thread_id: int | None = None
        self._clock: int | None = None

    def selector(self) -> selectors.BaseSelector:
        """The selector for the thread's event loop; call it on that thread."""
        self.thread_id = threading.get_ident()
        if hasattr(time, "pthread_getcpuclockid"):  # not on every system: there, no callback is timed
            self._clock = time.pthread_getcpuclockid(self.thread_id)
        self.busy_since = time.thread_time()
        return _TimedSelector(self)

    def busy_for(self) -> float:
        """CPU seconds the thread has run since it left ``select()``; 0 while it waits or is gone."""
        since, clock = self.busy_since, self._clock
        if since is None or clock is None:
            return 0.0
        try:
            return time.clock_gettime(clock) - since
        except OSError:  # the thread has ended
            return 0.0

    def interrupt(self) -> bool:
        """Raise ``CallbackTimedOut`` in the thread; False if it is gone."""
        if self.thread_id is None:
            return False
        return ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(self.thread_id),
                                                          ctypes.py_object(CallbackTimedOut)) == 1


class _TimedSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, clock: CallbackClock):
        super().__init__()
        self._watched = clock

    def select(self, timeout: float | None = None):  # type: ignore[override]
        self._watched.busy_since = None
        try:
            return super().select(timeout)
        finally:
            self._watched.busy_since = time.thread_time()


class Watchdog:
    """A thread that stops callbacks running past ``limit`` CPU seconds. ``watched()`` gives the
    clocks to look at; ``timed_out(key)`` is called (from the watchdog's thread) once a stopped
    callback's thread is back in its loop, ``stuck(key)`` once it has not come back in ``grace``
    seconds."""

    def __init__(self, limit: float, watched: Callable[[], dict[str, CallbackClock]],
                 timed_out: Callable[[str], None], stuck: Callable[[str], None], grace: float = RESPONSE_GRACE):
        self.limit = limit
        self.grace = grace
        self.watched = watched
        self.timed_out = timed_out
        self.stuck = stuck
        self._told: dict[str, float] = {}  # key -> when its thread was told to stop (monotonic)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="callback-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(WATCH_EVERY):
            try:
                self.look()
            except Exception:
                logger.exception("the callback watchdog failed; it looks again")

    def look(self) -> None:
        clocks = self.watched()
        now = time.monotonic()
        for key, told in list(self._told.items()):
            clock = clocks.get(key)
            if clock is None or clock.busy_for() < self.limit:  # back in its loop (or gone)
                del self._told[key]
                self.timed_out(key)
            elif now - told > self.grace:
                del self._told[key]
                self.stuck(key)
        for key, clock in clocks.items():
            if key not in self._told and clock.busy_for() > self.limit:
                self._told[key] = now
                clock.interrupt()
