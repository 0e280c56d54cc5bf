# shellcheck shell=bash
# A private PostgreSQL for tests and benchmarks, sourced by
# test-pg-*.sh and tests/bench/bench-server.sh.  Never touches the system
# instance: the cluster lives in $PG_DIR under the build tree, listens on a
# free loopback port and a private unix socket directory, and is stopped
# on exit.  initdb refuses to run as root, so as root the cluster is owned
# by and run as an unprivileged user (PG_RUNAS, default nobody).
#
#   pg_find || exit 77        PGBIN, or return 1 when postgresql is missing
#   pg_init DIR               initdb (trust auth, user mintline, db mintline)
#   pg_start / pg_stop [MODE] pg_ctl start / stop (fast|immediate)
#   PG_URL                    postgresql://mintline@127.0.0.1:PORT/mintline

pg_find() {
	local d
	PGBIN=""
	for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			PGBIN=$d
			break
		fi
	done
	[ -n "$PGBIN" ] || { echo "skip: postgresql (initdb, pg_ctl) not installed"; return 1; }
	command -v psql >/dev/null 2>&1 || { echo "skip: psql missing"; return 1; }
	return 0
}

pg_as() {	# run a command as the cluster owner
	if [ "$(id -u)" -eq 0 ]; then
		if command -v runuser >/dev/null 2>&1; then
			runuser -u "${PG_RUNAS:-nobody}" -- "$@"
		else
			setpriv --reuid="${PG_RUNAS:-nobody}" \
			    --regid="$(id -g "${PG_RUNAS:-nobody}")" --clear-groups -- "$@"
		fi
	else
		"$@"
	fi
}

pg_free_port() {
	python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

pg_init() {	# DIR
	PG_DIR=$1
	rm -rf "$PG_DIR"
	mkdir -p "$PG_DIR/sock"
	if [ "$(id -u)" -eq 0 ]; then
		chown -R "${PG_RUNAS:-nobody}" "$PG_DIR"
		# A build tree under /root (CI) is not reachable by the cluster
		# owner: then the cluster lives in a private /tmp directory.
		if ! pg_as test -w "$PG_DIR/sock"; then
			rm -rf "$PG_DIR"
			PG_DIR=$(mktemp -d "${TMPDIR:-/tmp}/mintline-pg.XXXXXX") || return 1
			mkdir -p "$PG_DIR/sock"
			chown -R "${PG_RUNAS:-nobody}" "$PG_DIR"
			PG_TMPDIR=$PG_DIR
			echo "# cluster in $PG_DIR (the build tree is not reachable by ${PG_RUNAS:-nobody})"
		fi
	fi
	pg_as "$PGBIN/initdb" -D "$PG_DIR/data" -A trust -U mintline -E UTF8 \
	    --no-sync > "$PG_DIR/initdb.log" 2>&1 ||
	    { cat "$PG_DIR/initdb.log"; echo "initdb failed"; return 1; }
	PG_PORT=$(pg_free_port)
	PG_URL="postgresql://mintline@127.0.0.1:$PG_PORT/mintline"
	export PGBIN PG_DIR PG_PORT PG_URL PG_TMPDIR
	pg_start || return 1
	psql -q -h "$PG_DIR/sock" -p "$PG_PORT" -U mintline -d postgres \
	    -c "CREATE DATABASE mintline" >/dev/null || return 1
	trap 'pg_stop immediate; pg_cleanup' EXIT
}

pg_cleanup() {	# the private /tmp cluster, if one was made
	if [ -n "${PG_TMPDIR:-}" ]; then
		rm -rf "$PG_TMPDIR"
		PG_TMPDIR=""
	fi
}

pg_start() {
	pg_as "$PGBIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
	    -o "-k $PG_DIR/sock -p $PG_PORT -h 127.0.0.1 -c max_connections=200" \
	    start >/dev/null || { tail -20 "$PG_DIR/server.log"; return 1; }
}

pg_stop() {	# [fast|immediate]
	pg_as "$PGBIN/pg_ctl" -D "$PG_DIR/data" -m "${1:-fast}" -w stop \
	    >/dev/null 2>&1 || true
}

pg_psql() {	# SQL
	psql -qAt -h "$PG_DIR/sock" -p "$PG_PORT" -U mintline -d mintline -c "$1"
}
