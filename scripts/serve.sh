#!/usr/bin/env bash
# Sets everything up and runs bokehsite on SQLite and the in-memory channel layer.
#   scripts/serve.sh [ADDRESS:PORT]     (default 127.0.0.1:5006, as bokeh-server)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python manage.py migrate --noinput
exec .venv/bin/python manage.py runserver "${1:-127.0.0.1:5006}"
