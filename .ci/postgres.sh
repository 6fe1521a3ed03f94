#!/usr/bin/env bash
# A throwaway PostgreSQL server for the tests (Debian's `postgresql` package).
#
#   eval "$(bash .ci/postgres.sh)"       # start; exports RETRAINER_TEST_DATABASE_URL
#   bash .ci/postgres.sh stop            # stop it and delete its folder
#
# The server runs as the `postgres` user from a fresh data folder in a temporary directory,
# listens on 127.0.0.1 only, on a random free port, with password authentication. It gets a
# role `retrainer` (random password, CREATEDB) owning a database `retrainer`. `start` prints
# shell `export` lines on stdout (everything else goes to stderr) so `eval` can pick them up.
set -euo pipefail

bindir="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$bindir" ]; then
    echo "postgres.sh: no PostgreSQL server found under /usr/lib/postgresql (apt-get install postgresql)" >&2
    exit 1
fi

as_postgres() {
    if [ "$(id -u)" = 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

stop() {
    local root="${RETRAINER_TEST_PG_ROOT:?postgres.sh stop: RETRAINER_TEST_PG_ROOT is not set}"
    if [ -d "$root/data" ]; then
        as_postgres "$bindir/pg_ctl" -D "$root/data" -m fast -w stop >&2 || true
    fi
    rm -rf -- "$root"
}

start() {
    local root password port url
    root="$(mktemp -d "${TMPDIR:-/tmp}/retrainer-pg.XXXXXX")"
    chmod 700 "$root"
    if [ "$(id -u)" = 0 ]; then
        chown postgres: "$root"
    fi
    password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    printf '%s\n' "$password" >"$root/superuser.pw"
    as_postgres "$bindir/initdb" -D "$root/data" -U postgres --pwfile="$root/superuser.pw" \
        --auth-local=peer --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 --no-instructions >/dev/null
    rm -f "$root/superuser.pw"
    for _ in $(seq 1 20); do
        port=$((20000 + RANDOM % 40000))
        if as_postgres "$bindir/pg_ctl" -D "$root/data" -l "$root/server.log" -w -t 60 \
            -o "-c listen_addresses=127.0.0.1 -p $port -k $root -c fsync=off -c max_connections=300" \
            start >&2; then
            break
        fi
        port=""
    done
    if [ -z "$port" ]; then
        echo "postgres.sh: the server did not start; log:" >&2
        cat "$root/server.log" >&2
        exit 1
    fi
    as_postgres "$bindir/psql" -h "$root" -p "$port" -U postgres -d postgres -v ON_ERROR_STOP=1 -q \
        -c "CREATE ROLE retrainer LOGIN CREATEDB PASSWORD '$password'" \
        -c "CREATE DATABASE retrainer OWNER retrainer" >&2
    url="postgresql+psycopg://retrainer:$password@127.0.0.1:$port/retrainer"
    echo "postgres.sh: PostgreSQL $("$bindir/postgres" -V | awk '{print $3}') on 127.0.0.1:$port ($root)" >&2
    printf 'export RETRAINER_TEST_DATABASE_URL=%q\n' "$url"
    printf 'export RETRAINER_TEST_PG_ROOT=%q\n' "$root"
}

case "${1:-start}" in
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: postgres.sh [start|stop]" >&2
        exit 2
        ;;
esac
