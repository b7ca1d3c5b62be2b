"""Log lines as JSON objects, one a line (``BOKEHSITE_LOG_FORMAT=json``), for log collectors."""

from __future__ import annotations

import json
import logging
import os
import socket
from datetime import UTC, datetime

_HOST = socket.gethostname()


class JsonFormatter(logging.Formatter):
    """``{"time", "level", "logger", "message", "process", "exception"?}``: ``process`` is
    ``host:pid``, as in the metrics' ``process`` label."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "process": f"{_HOST}:{os.getpid()}",
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)
