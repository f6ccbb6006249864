#!/usr/bin/env bash
# Install socfeed with its test tools into .venv, plus Debian's Chromium for the browser
# tests, then run ruff and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,build]"

.venv/bin/ruff check src tests scripts bench
.venv/bin/python -m pytest "$@"
