"""The data directory, the SQLite database and its companion files are readable by their owner only."""

import os
import sqlite3
import subprocess
import sys

from tests.servers import ROOT


def mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_migrate_creates_the_data_directory_and_database_owner_only(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(DJANGO_SETTINGS_MODULE="bokehsite.settings", BOKEHSITE_DATA_DIR=str(data))
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=100, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    assert mode(data) == 0o700
    assert mode(data / "db.sqlite3") == 0o600 and mode(data / "secret_key") == 0o600

    # In WAL mode SQLite gives its -wal and -shm files the database file's permissions.
    old_umask = os.umask(0o022)
    try:
        connection = sqlite3.connect(data / "db.sqlite3")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE wal_probe (x)")
        connection.commit()
        assert mode(data / "db.sqlite3-wal") == 0o600 and mode(data / "db.sqlite3-shm") == 0o600
        connection.close()
    finally:
        os.umask(old_umask)


def test_a_database_elsewhere_is_created_owner_only_too(tmp_path):
    path = tmp_path / "elsewhere" / "plots.db"
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(DJANGO_SETTINGS_MODULE="bokehsite.settings", BOKEHSITE_DATA_DIR=str(tmp_path / "data"),
               DATABASE_URL=f"sqlite:///{path}", SECRET_KEY="k" * 50)
    result = subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=100, preexec_fn=lambda: os.umask(0o022))
    assert result.returncode == 0, result.stderr
    assert mode(path.parent) == 0o700 and mode(path) == 0o600
