"""The app hosts a server process starts and keeps running, when it serves apps
(``BOKEHSITE_APPS``) and ``BOKEHSITE_APP_PROCESSES`` is more than 0: that many, each started
again when it exits. A host ends when the server process that started it does.

They start with the first app page this process serves (it knows then the address it is reached
at), or at once when the address is known before (``BOKEHSITE_SERVER_URL``).

This suits ``runserver`` and a single Daphne. With several server processes, hosts are better
run apart from them (``bokeh-server --workers N --app-workers M`` does that, as does
``bokehsite app-hosts``): a server process that dies then takes no session with it.
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
import time

from django.conf import settings

from appserver.hosts import host_key

logger = logging.getLogger("appserver")
RESTART_PAUSE = 1.0

_lock = threading.Lock()
_children: list[subprocess.Popen[bytes]] = []
_started = False
_stopping = False


def host_command(server_url: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of an app host that reaches the server at ``server_url``."""
    env = {**os.environ, "BOKEHSITE_APP_HOST_KEY": host_key(), "BOKEHSITE_APPS": os.pathsep.join(settings.BOKEHSITE_APPS),
           "BOKEHSITE_APP_DEV": "1" if settings.BOKEHSITE_APP_DEV else "0"}
    return [sys.executable, "-m", "appserver.host", server_url], env


def ensure_started(server_url: str) -> None:
    """Start this process's hosts, reaching the server at ``server_url``, unless they run already."""
    global _started
    with _lock:
        if _started or not settings.BOKEHSITE_APPS:
            return
        _started = True
    for number in range(settings.BOKEHSITE_APP_PROCESSES):
        threading.Thread(target=_keep_running, args=(server_url,), name=f"app-host-{number}", daemon=True).start()


def _keep_running(server_url: str) -> None:
    command, env = host_command(server_url)
    while not _stopping:
        child = subprocess.Popen(command, env=env)
        with _lock:
            _children.append(child)
        code = child.wait()
        with _lock:
            _children.remove(child)
        if _stopping:
            return
        if code == 0:  # recycled (it was full: appserver.host), or told to stop
            logger.info("an app host ended (recycled, or told to stop); starting another")
        else:
            logger.error("an app host stopped (exit code %s); starting another", code)
        time.sleep(RESTART_PAUSE)


@atexit.register
def _stop() -> None:
    global _stopping
    _stopping = True
    with _lock:
        children = list(_children)
    for child in children:
        child.terminate()
    for child in children:
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
