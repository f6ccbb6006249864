#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on 127.0.0.1 for the tests and print its URL.
# Needs Debian's postgresql package; run as root (the server runs as the postgres user).
# Usage: eval "$(bash scripts/start-test-postgres.sh)"   # sets SOCFEED_TEST_PG_URL
set -euo pipefail

# A free port, so that a server already running on the machine is left alone.
port="${SOCFEED_TEST_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
bin_dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
data_dir=$(mktemp -d /tmp/socfeed-pg.XXXXXX)
chown postgres:postgres "$data_dir"

run_as_postgres() { su postgres -s /bin/sh -c "$*"; }

run_as_postgres "'$bin_dir/initdb' -D '$data_dir' -A trust -U postgres -E UTF8 --no-locale" \
    >/dev/null
run_as_postgres "'$bin_dir/pg_ctl' -D '$data_dir' -l '$data_dir/server.log' -w \
    -o \"-h 127.0.0.1 -p $port -k '$data_dir'\" start" >/dev/null
run_as_postgres "'$bin_dir/createdb' -h 127.0.0.1 -p $port -U postgres socfeed_test"

echo "export SOCFEED_TEST_PG_URL=postgresql://postgres@127.0.0.1:$port/socfeed_test"
echo "export SOCFEED_TEST_PG_DATA=$data_dir"
