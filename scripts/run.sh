#!/usr/bin/env bash
# Install socfeed into .venv, update the feed from every enabled source, and serve it.
# Sources come from GitHub when it is reachable, from SOCFEED_MIRROR/<source name> when that
# is set, and otherwise from the sample shipped in the package (the feed then says so).
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q .

.venv/bin/socfeed update
exec .venv/bin/socfeed serve --host "${SOCFEED_HOST:-127.0.0.1}" --port "${SOCFEED_PORT:-8000}"
