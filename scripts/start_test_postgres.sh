#!/usr/bin/env bash
# Starts a throwaway PostgreSQL server for the tests (the binaries of Debian's `postgresql`,
# installed by .ci/run) on 127.0.0.1:${VOXBRIDGE_TEST_PG_PORT:-55432}, user and password
# `postgres`, and prints its URL.
#
# Its own cluster in ${VOXBRIDGE_TEST_PG_DIR:-/var/tmp/voxbridge-test-pg}, not Debian's `main`:
# every test creates a database, so a long-lived cluster grows thousands of them, and one that was
# stopped uncleanly (a machine snapshot, a crash) then spends minutes in crash recovery syncing
# them before it accepts a connection (CI once failed exactly so: `pg_ctl: server did not start
# in time`). Test data is worth nothing after the run: a cluster that is not answering is removed
# and created afresh (seconds), never recovered; it runs without fsync.
# Idempotent: a running test cluster is left running.
set -euo pipefail
port=${VOXBRIDGE_TEST_PG_PORT:-55432}
dir=${VOXBRIDGE_TEST_PG_DIR:-/var/tmp/voxbridge-test-pg}
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
url="postgres://postgres:postgres@127.0.0.1:$port/postgres"
# PostgreSQL refuses to run as root: as root, run it as Debian's `postgres` user.
AS=()
if [ "$(id -u)" -eq 0 ]; then AS=(runuser -u postgres --); fi

answers() { PGPASSWORD=postgres "$bin/psql" -qAt -h 127.0.0.1 -p "$port" -U postgres -c "SELECT 1" >/dev/null 2>&1; }

if [ -f "$dir/data/PG_VERSION" ] && answers; then
    echo "$url"
    exit 0
fi

# Only ever a directory this script made (its marker) is removed.
if [ -e "$dir" ] && [ ! -f "$dir/.voxbridge-test-cluster" ] && [ -n "$(ls -A "$dir")" ]; then
    echo "$dir exists and is not a voxbridge test cluster: remove it or set VOXBRIDGE_TEST_PG_DIR" >&2
    exit 1
fi
rm -rf "$dir"
mkdir -p "$dir"
touch "$dir/.voxbridge-test-cluster"
if [ "$(id -u)" -eq 0 ]; then chown postgres: "$dir"; fi
"${AS[@]}" bash -c "umask 077 && echo postgres > '$dir/password'"
"${AS[@]}" "$bin/initdb" -D "$dir/data" -U postgres --pwfile="$dir/password" \
    --auth-local=scram-sha-256 --auth-host=scram-sha-256 -E UTF8 --locale=C --no-sync >"$dir/initdb.log" 2>&1 \
    || { cat "$dir/initdb.log" >&2; exit 1; }
# Each test server opens a pool and tests run in parallel: more than the default 100 connections.
if ! "${AS[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 120 start -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
    >/dev/null; then
    cat "$dir/server.log" >&2
    exit 1
fi
answers || { echo "the test server started but refuses user postgres" >&2; exit 1; }
echo "$url"
