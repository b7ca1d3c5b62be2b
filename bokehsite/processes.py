"""The process manager of ``bokeh-server --workers N --app-workers M``: it runs Daphne workers
and app hosts as children, starts again any that exits, and stops them all on Ctrl-C or SIGTERM,
as supervisord or systemd would.

A child that keeps exiting at once is started again after a growing pause (up to a minute), so
that a broken configuration does not spin a core; each start and exit is said in one line.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass, field

RESTART_PAUSE = 1.0
MAX_RESTART_PAUSE = 60.0
# A child that lived this long before it exited is started again after the shortest pause.
HEALTHY_AFTER = 30.0
STOP_TIMEOUT = 10.0


@dataclass
class Kind:
    """What to run: ``name`` in messages, the command, its environment, descriptors to pass."""

    name: str
    command: list[str]
    env: dict[str, str] | None = None
    pass_fds: tuple[int, ...] = ()


@dataclass
class _Child:
    kind: Kind
    number: int
    process: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)
    pause: float = RESTART_PAUSE


class ProcessManager:
    def __init__(self, say=print):
        self.say = say
        self.children: dict[int, _Child] = {}  # by pid
        self.stopping = False

    def start(self, kind: Kind, count: int) -> None:
        for number in range(count):
            self._spawn(kind, number)

    def _spawn(self, kind: Kind, number: int, pause: float = RESTART_PAUSE) -> None:
        process = subprocess.Popen(kind.command, env=kind.env, pass_fds=kind.pass_fds)
        self.children[process.pid] = _Child(kind, number, process, pause=pause)

    def pids(self, kind_name: str) -> list[int]:
        return [pid for pid, child in self.children.items() if child.kind.name == kind_name]

    def run(self) -> int:
        """Keep the children running until a signal stops them all; the exit status."""
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            child = self.children.pop(pid, None)
            if child is None:
                continue
            child.process.returncode = os.waitstatus_to_exitcode(status)
            if self.stopping:
                continue
            lived = time.monotonic() - child.started
            pause = RESTART_PAUSE if lived >= HEALTHY_AFTER else min(child.pause * 2, MAX_RESTART_PAUSE)
            self.say(f"{child.kind.name} {child.number + 1} (pid {pid}) exited with status "
                     f"{child.process.returncode}; starting it again in {pause:.0f} s")
            deadline = time.monotonic() + pause
            while not self.stopping and time.monotonic() < deadline:
                time.sleep(0.1)  # a signal meanwhile stops everything instead
            if not self.stopping:
                self._spawn(child.kind, child.number, pause)
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        for child in list(self.children.values()):
            if child.process.poll() is None:
                child.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for child in list(self.children.values()):
            try:
                child.process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.process.kill()
                child.process.wait()
        self.children.clear()
