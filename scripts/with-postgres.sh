#!/usr/bin/env bash
# with-postgres.sh CMD...: runs CMD with a throwaway PostgreSQL 15 cluster on
# a free loopback port, exported as APPKEYS_TEST_DATABASE_URL, and removes the
# cluster afterwards. The server refuses to run as root, so as root it runs
# as the unprivileged "postgres" user.
set -euo pipefail

PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
if [ ! -x "$PGBIN/initdb" ]; then
	if [ "${CI:-}" = "true" ]; then
		echo "with-postgres: no PostgreSQL server at $PGBIN (install postgresql-15)" >&2
		exit 1
	fi
	echo "with-postgres: no PostgreSQL server at $PGBIN; PostgreSQL tests will be skipped" >&2
	exec "$@"
fi

dir=$(mktemp -d /tmp/appkeys-pg.XXXXXX)
as_pg=()
if [ "$(id -u)" = 0 ]; then
	id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
	chown postgres "$dir"
	as_pg=(runuser -u postgres --)
fi

port=
for p in $(shuf -i 20000-45000 -n 50); do
	if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
		port=$p
		break
	fi
done
[ -n "$port" ] || { echo "with-postgres: no free port found" >&2; exit 1; }

cleanup() {
	"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap cleanup EXIT

"${as_pg[@]}" "$PGBIN/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
	{ cat "$dir/initdb.log" >&2; exit 1; }
# Durability is not under test here: fsync off makes the suite faster.
"${as_pg[@]}" "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start \
	-o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" >/dev/null ||
	{ cat "$dir/server.log" >&2; exit 1; }

export APPKEYS_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres?sslmode=disable"
export APPKEYS_TEST_PGBIN="$PGBIN" APPKEYS_TEST_PGDATA="$dir/data"
echo "with-postgres: PostgreSQL 15 on 127.0.0.1:$port" >&2
set +e
"$@"
status=$?
set -e
exit $status
