#!/usr/bin/env bash
# Starts Debian's PostgreSQL cluster (installed by .ci/run) on 127.0.0.1:5432 and gives the
# `postgres` role the password the tests use. Idempotent: a running cluster is left running.
set -euo pipefail
AS_POSTGRES=(runuser -u postgres --)
if [ "$(id -u)" -ne 0 ]; then AS_POSTGRES=(sudo -u postgres); fi
version=$(ls /usr/lib/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h 2>/dev/null | grep -q "^$version "; then
    "${AS_POSTGRES[@]}" true 2>/dev/null || true
    pg_createcluster "$version" main >/dev/null
fi
if ! pg_lsclusters -h | awk -v v="$version" '$1 == v && $2 == "main" {print $4}' | grep -q online; then
    pg_ctlcluster "$version" main start
fi
for _ in $(seq 1 50); do
    if "${AS_POSTGRES[@]}" psql -qAt -c "SELECT 1" >/dev/null 2>&1; then break; fi
    sleep 0.2
done
"${AS_POSTGRES[@]}" psql -q -c "ALTER USER postgres PASSWORD 'postgres'"
# Each test server opens a pool and tests run in parallel: more than the default 100 connections.
if [ "$("${AS_POSTGRES[@]}" psql -qAt -c "SHOW max_connections")" -lt 400 ]; then
    "${AS_POSTGRES[@]}" psql -q -c "ALTER SYSTEM SET max_connections = 400"
    pg_ctlcluster "$version" main restart
    for _ in $(seq 1 50); do
        if "${AS_POSTGRES[@]}" psql -qAt -c "SELECT 1" >/dev/null 2>&1; then break; fi
        sleep 0.2
    done
fi
echo "PostgreSQL $version on 127.0.0.1:5432 ready"
