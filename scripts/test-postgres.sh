#!/usr/bin/env bash
# Starts (or stops) a throw-away PostgreSQL server on loopback for the store tests.
#   scripts/test-postgres.sh start   prints the URL to use (FULFILLMENT_TEST_POSTGRES)
#   scripts/test-postgres.sh stop
#   scripts/test-postgres.sh restart   an immediate stop (as a crash leaves it) and a start
# Needs Debian's `postgresql` package (make deps installs it). The server's files live in
# $PGTEST_DIR (default /tmp/fulfillment-test-pg) and are removed on stop.
set -euo pipefail
PGTEST_DIR=${PGTEST_DIR:-/tmp/fulfillment-test-pg}
PGTEST_PORT=${PGTEST_PORT:-55432}
BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
[ -x "$BIN/initdb" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 2; }
# initdb and postgres refuse to run as root: run them as the postgres user then.
as_owner() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
start_server() {
    as_owner "$BIN/pg_ctl" -D "$PGTEST_DIR/data" -l "$PGTEST_DIR/server.log" -w \
        -o "-c listen_addresses=127.0.0.1 -p $PGTEST_PORT -k $PGTEST_DIR -c max_connections=200 -c fsync=on" start >/dev/null \
        || { cat "$PGTEST_DIR/server.log" >&2; exit 2; }
}

case "${1:-}" in
start)
    if as_owner "$BIN/pg_ctl" -D "$PGTEST_DIR/data" status >/dev/null 2>&1; then
        echo "postgres://postgres@127.0.0.1:$PGTEST_PORT/fulfillment_test"
        exit 0
    fi
    rm -rf "$PGTEST_DIR"
    mkdir -p "$PGTEST_DIR"
    [ "$(id -u)" = 0 ] && chown postgres "$PGTEST_DIR"
    as_owner "$BIN/initdb" -D "$PGTEST_DIR/data" -U postgres --auth=trust --encoding=UTF8 --locale=C >"$PGTEST_DIR/initdb.log" 2>&1 \
        || { cat "$PGTEST_DIR/initdb.log" >&2; exit 2; }
    start_server
    "$BIN/createdb" -h 127.0.0.1 -p "$PGTEST_PORT" -U postgres fulfillment_test
    echo "postgres://postgres@127.0.0.1:$PGTEST_PORT/fulfillment_test"
    ;;
stop)
    as_owner "$BIN/pg_ctl" -D "$PGTEST_DIR/data" -m fast stop >/dev/null 2>&1 || true
    rm -rf "$PGTEST_DIR"
    ;;
restart)
    # -m immediate: no shutdown checkpoint, clients cut mid-transaction; the start recovers.
    as_owner "$BIN/pg_ctl" -D "$PGTEST_DIR/data" -m immediate stop >/dev/null
    sleep "${PGTEST_DOWN_SECONDS:-0}"
    start_server
    ;;
*)
    echo "usage: $0 start|stop|restart" >&2
    exit 2
    ;;
esac
