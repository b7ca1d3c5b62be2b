#!/usr/bin/env bash
# Installs bokehsite into ./.venv. Sourced by serve.sh and test.sh; safe to run again.
#   scripts/setup.sh          server and client
#   scripts/setup.sh dev      also the test tools, Chromium for the browser tests, and Node for the SSO tests
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PYTHON=${PYTHON:-$(command -v python3.11 || command -v python3)}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
requirements=requirements.txt
[ "${1:-}" = dev ] && requirements=requirements-dev.txt

# Reinstall only when the requirement files change.
stamp=".venv/.installed-$(cat requirements.txt requirements-dev.txt pyproject.toml | sha1sum | cut -c1-12)-$(basename $requirements .txt)"
if [ ! -e "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -r "$requirements" -e .
  touch "$stamp"
fi

# The browser tests need Chromium; the reverse-proxy tests (tests/test_nginx.py) need nginx.
if [ "${1:-}" = dev ]; then
  packages=()
  [ -x /usr/bin/chromium ] || packages+=(chromium)
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || packages+=(nginx)
  if [ ${#packages[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}" >/dev/null
    else
      echo "setup: ${packages[*]} missing; the browser and reverse-proxy tests need them (apt-get install ${packages[*]})" >&2
    fi
  fi
fi

# The single sign-on tests run a real OpenID provider under Node (tests/oidc_provider.py installs it).
if [ "${1:-}" = dev ] && ! command -v npm >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  else
    echo "setup: node and npm are missing; the single sign-on tests need them (apt-get install nodejs npm)" >&2
  fi
fi
