#!/bin/sh
# Stand-in for the official postgres image's entrypoint: on an empty data directory, initdb as
# POSTGRES_USER with POSTGRES_PASSWORD (scram-sha-256 over TCP) and create POSTGRES_DB; then run
# the server as the postgres user, listening on every address, as the official image does.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}"
: "${POSTGRES_USER:=postgres}"
: "${POSTGRES_DB:=$POSTGRES_USER}"
if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "postgres stand-in: POSTGRES_PASSWORD is not set" >&2
    exit 1
fi
mkdir -p "$PGDATA" /run/postgresql
chown -R postgres:postgres "$PGDATA" /run/postgresql
chmod 700 "$PGDATA"
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups "$@"; }
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    password_file=$(mktemp)
    printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
    chown postgres "$password_file"
    as_postgres initdb --username="$POSTGRES_USER" --pwfile="$password_file" \
        --auth-local=trust --auth-host=scram-sha-256 -D "$PGDATA" >/dev/null
    rm -f "$password_file"
    echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
    as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    if [ "$POSTGRES_DB" != postgres ]; then
        as_postgres createdb --username="$POSTGRES_USER" "$POSTGRES_DB"
    fi
    as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
fi
# The official image stops the server with SIGINT (a fast shutdown: open sessions are ended);
# a container is stopped with SIGTERM (a smart shutdown, which waits for every client), so pass
# SIGINT on.
as_postgres postgres -D "$PGDATA" -c listen_addresses='*' "$@" &
server=$!
trap 'kill -INT "$server"; wait "$server"; exit $?' TERM INT
wait "$server"
