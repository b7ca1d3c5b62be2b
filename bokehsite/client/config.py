"""The client's saved logins: ``~/.bokeh/config.json`` (or ``$BOKEH_CONFIG_DIR/config.json``).

The file maps each server URL to the API token its last login or registration got::

    {"servers": {"http://localhost:5006/": {"token": "bks_...", "username": "alice"}}}

It holds secrets, so the directory is created with mode 0700 and the file with mode 0600, and
every write replaces the file atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def config_dir() -> Path:
    return Path(os.environ.get("BOKEH_CONFIG_DIR") or Path.home() / ".bokeh")


def config_path() -> Path:
    return config_dir() / "config.json"


def _read() -> dict[str, Any]:
    try:
        data = json.loads(config_path().read_text())
    except FileNotFoundError:
        return {"servers": {}}
    except (OSError, ValueError):
        return {"servers": {}}  # unreadable or damaged: start over rather than fail every script
    if not isinstance(data, dict) or not isinstance(data.get("servers"), dict):
        return {"servers": {}}
    return data


def _write(data: dict[str, Any]) -> None:
    directory = config_dir()
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    # mkstemp creates the file with mode 0600; rename makes the replacement atomic.
    fd, tmp = tempfile.mkstemp(prefix=".config-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=True)
        os.chmod(tmp, 0o600)
        os.replace(tmp, config_path())
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def saved_login(root_url: str) -> dict[str, Any] | None:
    """``{"token": ..., "username": ...}`` saved for ``root_url``, or ``None``."""
    entry = _read()["servers"].get(root_url)
    return entry if isinstance(entry, dict) and isinstance(entry.get("token"), str) else None


def save_login(root_url: str, token: str, username: str) -> None:
    data = _read()
    data["servers"][root_url] = {"token": token, "username": username}
    _write(data)


def forget_login(root_url: str) -> None:
    data = _read()
    if data["servers"].pop(root_url, None) is not None:
        _write(data)
