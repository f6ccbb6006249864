#!/usr/bin/env bash
# Install socfeed with its test tools into .venv, plus Debian's Chromium for the browser
# tests, then run ruff and the test suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian's Chromium drives the browser tests and a throwaway PostgreSQL server runs the
# store tests a second time; both need root to install, and are skipped without them.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    missing=()
    [ -x /usr/bin/chromium ] || missing+=(chromium)
    compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
    if [ ${#missing[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    if [ -z "${SOCFEED_TEST_PG_URL:-}" ]; then
        eval "$(bash scripts/start-test-postgres.sh)"
        trap 'bash scripts/stop-test-postgres.sh "$SOCFEED_TEST_PG_DATA"' EXIT
    fi
fi

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test,build]"

.venv/bin/ruff check .
.venv/bin/python -m pytest "$@"
