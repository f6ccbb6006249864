#!/usr/bin/env bash
# Stop the server started by start-test-postgres.sh and delete its data folder.
# Usage: bash scripts/stop-test-postgres.sh DATA_DIR
set -u
data_dir="$1"
bin_dir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
su postgres -s /bin/sh -c "'$bin_dir/pg_ctl' -D '$data_dir' stop -m fast" >/dev/null 2>&1
rm -rf -- "$data_dir"
