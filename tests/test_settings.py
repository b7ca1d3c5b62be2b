"""Settings come from the environment, with safe defaults; bad values fail loudly."""

import contextlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.servers import ROOT, DaphneServer, database_url

PRINT = """
import django, json
from django.conf import settings
django.setup()
print(json.dumps({
    "engine": settings.DATABASES["default"]["ENGINE"],
    "db_name": str(settings.DATABASES["default"]["NAME"]),
    "layer": settings.CHANNEL_LAYERS["default"]["BACKEND"],
    "debug": settings.DEBUG,
    "multi_user": settings.BOKEHSITE_MULTI_USER,
    "secret": settings.SECRET_KEY,
    "hosts": settings.ALLOWED_HOSTS,
    "first_app": settings.INSTALLED_APPS[0],
    "registration": settings.BOKEHSITE_ALLOW_REGISTRATION,
    "rates": settings.BOKEHSITE_THROTTLE_RATES,
    "frame_max_age": settings.BOKEHSITE_FRAME_TOKEN_MAX_AGE,
    "pool": settings.DATABASES["default"].get("OPTIONS", {}).get("pool", False),
    "conn_max_age": settings.DATABASES["default"]["CONN_MAX_AGE"],
    "num_proxies": settings.REST_FRAMEWORK["NUM_PROXIES"],
}))
"""
CLEAR = ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "BOKEHSITE_MULTI_USER",
         "BOKEHSITE_ALLOW_REGISTRATION", "BOKEHSITE_LOGIN_RATE", "BOKEHSITE_REGISTER_RATE",
         "BOKEHSITE_FRAME_TOKEN_MAX_AGE", "DATABASE_POOL", "DATABASE_CONN_MAX_AGE", "BOKEHSITE_TRUSTED_PROXIES")


def load_settings(tmp_path, **env):
    base = {k: v for k, v in os.environ.items() if k not in CLEAR}
    full = {**base, "DJANGO_SETTINGS_MODULE": "bokehsite.settings", "BOKEHSITE_DATA_DIR": str(tmp_path), **env}
    return subprocess.run([sys.executable, "-c", PRINT], cwd=ROOT, env=full, capture_output=True, text=True)


def test_defaults_are_sqlite_in_memory_layer_and_no_debug(tmp_path):
    result = load_settings(tmp_path)
    values = json.loads(result.stdout)
    assert values["engine"] == "django.db.backends.sqlite3"
    assert values["db_name"] == str(tmp_path / "db.sqlite3")
    assert values["layer"] == "streaming.layers.LocalChannelLayer"
    assert values["debug"] is False and values["multi_user"] is False
    assert values["first_app"] == "daphne"
    assert values["hosts"] == ["localhost", "127.0.0.1", "[::1]"]
    assert values["conn_max_age"] == 600  # opening and closing SQLite would cost every change


def test_a_generated_secret_key_is_kept_private_and_reused(tmp_path):
    first = json.loads(load_settings(tmp_path).stdout)["secret"]
    second = json.loads(load_settings(tmp_path).stdout)["secret"]
    assert first == second and len(first) >= 50
    assert (tmp_path / "secret_key").stat().st_mode & 0o777 == 0o600


def test_the_environment_selects_postgresql_and_redis(tmp_path):
    values = json.loads(load_settings(
        tmp_path, DATABASE_URL="postgres://u@db.example:5432/site", REDIS_URL="redis://r.example:6379/0",
        SECRET_KEY="k" * 50, DEBUG="true", ALLOWED_HOSTS="a.example, b.example", BOKEHSITE_MULTI_USER="1",
    ).stdout)
    assert values["engine"] == "django.db.backends.postgresql" and values["db_name"] == "site"
    assert values["layer"] == "streaming.layers.RedisChannelLayer"
    assert values["secret"] == "k" * 50 and values["debug"] is True and values["multi_user"] is True
    assert values["hosts"] == ["a.example", "b.example"]
    assert values["pool"] == {"timeout": 5} and values["conn_max_age"] == 0


def test_postgresql_connections_are_pooled_unless_turned_off(tmp_path):
    url = "postgres://u@db.example:5432/site"
    values = json.loads(load_settings(tmp_path, DATABASE_URL=url, DATABASE_POOL="0", DATABASE_CONN_MAX_AGE="60").stdout)
    assert values["pool"] is False and values["conn_max_age"] == 60
    values = json.loads(load_settings(tmp_path, DATABASE_CONN_MAX_AGE="30").stdout)
    assert values["engine"] == "django.db.backends.sqlite3" and values["pool"] is False and values["conn_max_age"] == 30


def test_a_bad_boolean_fails_loudly(tmp_path):
    result = load_settings(tmp_path, BOKEHSITE_MULTI_USER="maybe")
    assert result.returncode != 0
    assert "BOKEHSITE_MULTI_USER must be a boolean" in result.stderr


def test_account_settings_have_defaults_and_come_from_the_environment(tmp_path):
    values = json.loads(load_settings(tmp_path).stdout)
    assert values["registration"] is True and values["frame_max_age"] == 300
    assert values["rates"] == {"login": "10/min", "register": "10/hour"}
    values = json.loads(load_settings(
        tmp_path, BOKEHSITE_ALLOW_REGISTRATION="0", BOKEHSITE_LOGIN_RATE="5/hour", BOKEHSITE_FRAME_TOKEN_MAX_AGE="60",
    ).stdout)
    assert values["registration"] is False and values["rates"]["login"] == "5/hour" and values["frame_max_age"] == 60


def test_a_bad_rate_fails_loudly(tmp_path):
    result = load_settings(tmp_path, BOKEHSITE_LOGIN_RATE="lots")
    assert result.returncode != 0
    assert "BOKEHSITE_LOGIN_RATE must be a rate such as 10/min" in result.stderr


def test_trusted_proxies_default_to_none_and_set_drfs_num_proxies(tmp_path):
    assert json.loads(load_settings(tmp_path).stdout)["num_proxies"] == 0
    assert json.loads(load_settings(tmp_path, BOKEHSITE_TRUSTED_PROXIES="2").stdout)["num_proxies"] == 2
    result = load_settings(tmp_path, BOKEHSITE_TRUSTED_PROXIES="-1")
    assert result.returncode != 0 and "BOKEHSITE_TRUSTED_PROXIES must be 0 or more" in result.stderr


@pytest.mark.timeout(90)
def test_http_requests_leave_no_database_connection_open(transactional_db):
    """Connections are kept (DATABASE_CONN_MAX_AGE, 600 s on SQLite) by threads that live on; an
    HTTP request has a thread of its own, whose kept connection would hold the database's files
    open until a garbage collection."""
    from django.conf import settings

    db = settings.DATABASES["default"]
    if not db["ENGINE"].endswith("sqlite3"):
        pytest.skip("counts the SQLite files a server holds open")
    with DaphneServer(env={"DATABASE_URL": database_url(db)}) as server:
        for _ in range(30):
            answer = requests.get(server.url + "api/documents/", timeout=10)
            assert answer.status_code == 200, answer.text
        held = []
        for fd in Path(f"/proc/{server.process.pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                held.append(os.readlink(fd))
    assert sum(name == str(db["NAME"]) for name in held) <= 1


LOG_SOMETHING = """
import django, logging
django.setup()
try:
    raise ValueError("boom")
except ValueError:
    logging.getLogger("bokehsite.example").exception("it failed: %s", "badly")
"""


def test_json_logs_are_one_object_a_line(tmp_path):
    env = {**{k: v for k, v in os.environ.items() if k not in CLEAR}, "DJANGO_SETTINGS_MODULE": "bokehsite.settings",
           "BOKEHSITE_DATA_DIR": str(tmp_path)}
    result = subprocess.run([sys.executable, "-c", LOG_SOMETHING], cwd=ROOT, capture_output=True, text=True,
                            env={**env, "BOKEHSITE_LOG_FORMAT": "json"})
    (line,) = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert (line["level"], line["logger"], line["message"]) == ("ERROR", "bokehsite.example", "it failed: badly")
    assert "ValueError: boom" in line["exception"]
    host, pid = line["process"].rsplit(":", 1)
    assert host == socket.gethostname() and pid.isdigit() and pid != str(os.getpid())
    plain = subprocess.run([sys.executable, "-c", LOG_SOMETHING], cwd=ROOT, capture_output=True, text=True, env=env)
    assert "it failed: badly" in plain.stderr and not plain.stderr.lstrip().startswith("{")
    bad = subprocess.run([sys.executable, "-c", LOG_SOMETHING], cwd=ROOT, capture_output=True, text=True,
                         env={**env, "BOKEHSITE_LOG_FORMAT": "xml"})
    assert bad.returncode != 0 and "BOKEHSITE_LOG_FORMAT must be text or json" in bad.stderr
