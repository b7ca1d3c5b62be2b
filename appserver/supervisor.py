"""The app hosts a server process starts and keeps running, when it serves apps
(``BOKEHSITE_APPS``): ``BOKEHSITE_APP_PROCESSES`` of them, each started again when it exits.

They start with the first app page this process serves (it knows then the address it is reached
at), or at once when the address is known before (``bokeh-server`` sets ``BOKEHSITE_SERVER_URL``).
A host ends when the server process that started it does.
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
    env = {**os.environ, "BOKEHSITE_APP_HOST_KEY": host_key(), "BOKEHSITE_APPS": os.pathsep.join(settings.BOKEHSITE_APPS),
           "BOKEHSITE_APP_DEV": "1" if settings.BOKEHSITE_APP_DEV else "0"}
    while not _stopping:
        child = subprocess.Popen([sys.executable, "-m", "appserver.host", server_url], env=env)
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
