#!/usr/bin/env bash
# Sets everything up and runs the whole test suite.
#   1. on the embedded defaults: SQLite and the in-memory channel layer;
#   2. where they answer, again on PostgreSQL with the Redis channel layer, the tests that touch
#      the database, the layer or a server, with the fault tests (which start a PostgreSQL and a
#      Redis of their own, and kill and restart them).
# With CI=true a missing PostgreSQL, Redis or Chromium fails the run instead of skipping.
# Tests run in parallel (pytest-xdist), one worker a core, 2 to 4; TEST_WORKERS=N says otherwise.
# Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
py=.venv/bin/python

POSTGRES_URL=${TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/bokehsite}
REDIS_TEST_URL=${TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
cores=$(nproc)
WORKERS=${TEST_WORKERS:-$(( cores < 2 ? 2 : cores > 4 ? 4 : cores ))}

echo "== SQLite, in-memory channel layer"
env -u DATABASE_URL -u REDIS_URL "$py" -m pytest -n "$WORKERS" -m "not faults" "$@"

missing=$("$py" scripts/services.py "$POSTGRES_URL" "$REDIS_TEST_URL")
if [ -n "$missing" ]; then
  if [ "${CI:-}" = true ]; then
    echo "CI: $missing is not answering" >&2
    exit 1
  fi
  echo "== skipped the PostgreSQL + Redis run: $missing is not answering"
  exit 0
fi
echo "== PostgreSQL, Redis channel layer, faults"
# Only the tests that touch the database, the channel layer or a server (tests/conftest.py).
TEST_STORAGE_ONLY=1 DATABASE_URL=$POSTGRES_URL REDIS_URL=$REDIS_TEST_URL "$py" -m pytest -n "$WORKERS" -m "not browser" "$@"
