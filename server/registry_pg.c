/*
 * The PostgreSQL registry back-end (ID-3, BN-7): the same struct reg_ops and the same
 * schema (migrations.c) as registry_sqlite.c, for several mintline-server
 * instances sharing one database.
 *
 * Connections: a small pool (REG_PG_POOL_DEFAULT, or the server's
 * "registry-pool" setting), each
 * connection used by one thread at a time, opened lazily.  Every statement
 * runs in autocommit unless stated: PostgreSQL's default
 * synchronous_commit=on makes a row durable (WAL flushed) before the call
 * returns, so the caller may acknowledge it.
 *
 * Outage: when a statement fails because the connection is gone, the
 * connection is dropped and reopened once at once (the database may have
 * restarted); after that, reconnection attempts back off exponentially
 * (REG_PG_BACKOFF_MIN_MS .. REG_PG_BACKOFF_MAX_MS) and, between attempts,
 * every operation fails fast with ML_ERR_IO and a log line that says the
 * registry is unavailable.  Nothing is acknowledged that is not committed;
 * idempotent operations (reads, reader_put, flags, note enrolment and
 * registration) are retried once on a fresh connection, so a commit whose
 * reply was lost is answered as "the same note again" with the first
 * registration id.
 *
 * Exactly-once registration across servers: note.note_id and
 * note.chip_serial are UNIQUE; the insert is INSERT .. ON CONFLICT DO
 * NOTHING RETURNING, and the loser of a race reads the winner's row
 * (PostgreSQL waits for the conflicting transaction before deciding).
 */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libpq-fe.h>
#include <sqlite3.h>

#include "migrations.h"
#include "ml_log.h"
#include "registry.h"

#define REG_PG_BACKOFF_MIN_MS	250
#define REG_PG_BACKOFF_MAX_MS	5000
#define REG_PG_CONNECT_TIMEOUT	"3"		/* seconds */
#define REG_PG_STMT_TIMEOUT	"-c statement_timeout=15000"

struct pg_slot {
	PGconn		*c;
	bool		 busy;
};

struct reg_pg {
	struct reg	 base;
	char		*conninfo;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct pg_slot	 slot[REG_PG_POOL_MAX];
	int		 nslot;
	bool		 down;		/* last connection attempt failed */
	int		 backoff_ms;
	int64_t		 next_try_ms;	/* no attempt before (monotonic) */
};

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool
reg_target_is_pg(const char *t)
{
	/* "postgresql:dbname=x" too: never let it become a SQLite file name */
	return t != NULL && (strncmp(t, "postgresql:", 11) == 0 ||
	    strncmp(t, "postgres:", 9) == 0 || strncmp(t, "pg:", 3) == 0);
}

/* The conninfo without credentials, for logs: scheme and host only. */
static void
redact(const char *ci, char *buf, size_t n)
{
	const char *at = strchr(ci, '@'), *s = strstr(ci, "://");

	if (s != NULL && at != NULL) {
		snprintf(buf, n, "%.*s://***%s", (int)(s - ci), ci, at);
	} else if (strncmp(ci, "pg:", 3) == 0 && strstr(ci, "password") != NULL) {
		snprintf(buf, n, "pg:(conninfo with password)");
	} else {
		snprintf(buf, n, "%s", ci);
	}
}

/*
 * A failure the user of the registry may see: one log line, and the same
 * words as the error context of r (ml_err.h).  Returns r.
 */
static int __attribute__((format(printf, 2, 3)))
pg_fail(int r, const char *fmt, ...)
{
	char buf[ML_ERRCTX_MAX];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	ml_err("%s", buf);
	return ml_errf(r, "%s", buf);
}

static PGconn *
pg_connect(struct reg_pg *p)
{
	const char *kw[] = { "connect_timeout", "application_name", "options",
	    "keepalives_idle", "dbname", NULL };
	const char *val[] = { REG_PG_CONNECT_TIMEOUT, "mintline-server",
	    REG_PG_STMT_TIMEOUT, "30", p->conninfo, NULL };
	PGconn *c;

	c = PQconnectdbParams(kw, val, 1);
	if (c == NULL) {
		(void)ml_errf(ML_ERR_IO, "registry: PostgreSQL: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		char msg[256], where[256];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(c));
		msg[strcspn(msg, "\n")] = '\0';
		redact(p->conninfo, where, sizeof(where));
		(void)pg_fail(ML_ERR_IO, "registry: PostgreSQL %s unavailable: "
		    "%s", where, msg);
		PQfinish(c);
		return NULL;
	}
	return c;
}

/*
 * Take a pool slot with a live (or freshly opened) connection.  Returns 0
 * and the slot, or ML_ERR_IO at once while the database is down and the
 * backoff has not expired.
 */
static int
slot_get(struct reg_pg *p, struct pg_slot **ret)
{
	struct pg_slot *s = NULL;
	PGconn *c;
	int i;

	pthread_mutex_lock(&p->mu);
	for (;;) {
		/* Prefer a slot that already holds a connection. */
		for (i = 0; i < p->nslot; i++) {
			if (!p->slot[i].busy && p->slot[i].c != NULL) {
				s = &p->slot[i];
				break;
			}
		}
		for (i = 0; s == NULL && i < p->nslot; i++) {
			if (!p->slot[i].busy) {
				s = &p->slot[i];
			}
		}
		if (s != NULL) {
			break;
		}
		pthread_cond_wait(&p->cv, &p->mu);
	}
	s->busy = true;
	if (s->c != NULL) {
		pthread_mutex_unlock(&p->mu);
		*ret = s;
		return 0;
	}
	if (p->down && now_ms() < p->next_try_ms) {
		s->busy = false;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		ml_debug("registry: PostgreSQL down, refusing at once");
		return ml_errf(ML_ERR_IO, "registry: PostgreSQL unavailable "
		    "(reconnecting with backoff)");
	}
	/* Hold off other attempts while this one runs. */
	p->next_try_ms = now_ms() + REG_PG_BACKOFF_MIN_MS;
	pthread_mutex_unlock(&p->mu);

	c = pg_connect(p);

	pthread_mutex_lock(&p->mu);
	if (c == NULL) {
		p->backoff_ms = p->backoff_ms == 0 ? REG_PG_BACKOFF_MIN_MS :
		    p->backoff_ms * 2;
		if (p->backoff_ms > REG_PG_BACKOFF_MAX_MS) {
			p->backoff_ms = REG_PG_BACKOFF_MAX_MS;
		}
		p->next_try_ms = now_ms() + p->backoff_ms;
		if (!p->down) {
			ml_err("registry: unavailable; refusing work, reconnecting "
			    "with backoff");
		}
		p->down = true;
		s->busy = false;
		pthread_cond_signal(&p->cv);
		pthread_mutex_unlock(&p->mu);
		return ML_ERR_IO;
	}
	if (p->down) {
		ml_warn("registry: PostgreSQL reachable again; resuming");
	}
	p->down = false;
	p->backoff_ms = 0;
	s->c = c;
	pthread_mutex_unlock(&p->mu);
	*ret = s;
	return 0;
}

/* Give a slot back; broken: its connection failed and is dropped. */
static void
slot_put(struct reg_pg *p, struct pg_slot *s, bool broken)
{
	PGconn *c = NULL;

	pthread_mutex_lock(&p->mu);
	if (broken) {
		c = s->c;
		s->c = NULL;
	}
	s->busy = false;
	pthread_cond_signal(&p->cv);
	pthread_mutex_unlock(&p->mu);
	PQfinish(c);		/* NULL-safe; outside the lock */
}

/* Drop every idle connection (after one broke: the others likely did). */
static void
pool_flush_idle(struct reg_pg *p)
{
	PGconn *drop[REG_PG_POOL_MAX];
	int i, n = 0;

	pthread_mutex_lock(&p->mu);
	for (i = 0; i < p->nslot; i++) {
		if (!p->slot[i].busy && p->slot[i].c != NULL) {
			drop[n++] = p->slot[i].c;
			p->slot[i].c = NULL;
		}
	}
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < n; i++) {
		PQfinish(drop[i]);
	}
}

/* ---------------------------------------------------------------- statements */

/* Parameters for one statement: text or binary, by value. */
struct pg_params {
	int		 n;
	const char	*v[12];
	int		 len[12];
	int		 fmt[12];
	char		 num[12][24];	/* storage for integers as text */
};

static void
par_text(struct pg_params *pp, const char *s)
{
	pp->v[pp->n] = s;
	pp->len[pp->n] = 0;
	pp->fmt[pp->n] = 0;
	pp->n++;
}

static void
par_int(struct pg_params *pp, int64_t x)
{
	snprintf(pp->num[pp->n], sizeof(pp->num[0]), "%lld", (long long)x);
	par_text(pp, pp->num[pp->n]);
}

static void
par_bytes(struct pg_params *pp, const void *b, size_t n)
{
	pp->v[pp->n] = b;
	pp->len[pp->n] = (int)n;
	pp->fmt[pp->n] = 1;
	pp->n++;
}

/* How a statement ended. */
enum pg_outcome {
	PG_OK,			/* res is the result */
	PG_CONSTRAINT,		/* unique/foreign key violation (23xxx) */
	PG_FAILED,		/* other SQL error; connection fine */
	PG_LOST,		/* the connection is gone */
	PG_DISK_FULL,		/* 53100: the server's disk is full */
};

/*
 * Run one statement on slot s; results in binary format.  On PG_OK the
 * caller owns *ret_res (PQclear).
 */
static enum pg_outcome
pg_run(struct pg_slot *s, const char *sql, const struct pg_params *pp,
    PGresult **ret_res)
{
	PGresult *res;
	ExecStatusType st;
	const char *state;

	res = PQexecParams(s->c, sql, pp != NULL ? pp->n : 0, NULL,
	    pp != NULL ? pp->v : NULL, pp != NULL ? pp->len : NULL,
	    pp != NULL ? pp->fmt : NULL, 1);
	st = res != NULL ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
		*ret_res = res;
		return PG_OK;
	}
	if (PQstatus(s->c) != CONNECTION_OK) {
		char msg[200];

		snprintf(msg, sizeof(msg), "%s", PQerrorMessage(s->c));
		msg[strcspn(msg, "\n")] = '\0';
		(void)pg_fail(ML_ERR_IO, "registry: PostgreSQL connection "
		    "lost: %s", msg);
		PQclear(res);
		return PG_LOST;
	}
	state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	if (state != NULL && strncmp(state, "23", 2) == 0) {
		PQclear(res);
		return PG_CONSTRAINT;
	}
	/* 57P01 admin shutdown, 08xxx connection exceptions: treat as lost */
	if (state != NULL && (strncmp(state, "57P", 3) == 0 ||
	    strncmp(state, "08", 2) == 0)) {
		(void)pg_fail(ML_ERR_IO, "registry: PostgreSQL going away "
		    "(SQLSTATE %s)", state);
		PQclear(res);
		return PG_LOST;
	}
	if (state != NULL && strcmp(state, "53100") == 0) {
		(void)pg_fail(ML_ERR_DISK_FULL, "registry: PostgreSQL: write "
		    "failed: disk full (SQLSTATE 53100)");
		PQclear(res);
		return PG_DISK_FULL;
	}
	(void)pg_fail(ML_ERR_IO, "registry: PostgreSQL: %s (SQLSTATE %s)",
	    res != NULL ? PQresultErrorMessage(res) : "no result",
	    state != NULL ? state : "?");
	PQclear(res);
	return PG_FAILED;
}

/* Binary result helpers. */
static int64_t
col_int(const PGresult *res, int row, int col)
{
	const uint8_t *b = (const uint8_t *)PQgetvalue(res, row, col);
	int n = PQgetlength(res, row, col);
	uint64_t v = 0;
	int i;

	for (i = 0; i < n && i < 8; i++) {
		v = (v << 8) | b[i];
	}
	if (n == 4) {
		return (int32_t)(uint32_t)v;
	}
	if (n == 1) {
		return b[0];	/* boolean */
	}
	return (int64_t)v;
}

static void
col_text(const PGresult *res, int row, int col, char *buf, size_t cap)
{
	int n = PQgetlength(res, row, col);

	if ((size_t)n >= cap) {
		n = (int)cap - 1;
	}
	memcpy(buf, PQgetvalue(res, row, col), (size_t)n);
	buf[n] = '\0';
}

/*
 * One operation: a callback run with a connected slot.  The callback
 * returns 0 / positive results or ML_ERR_*; it sets *lost when the
 * connection broke.  Idempotent operations are retried once on a new
 * connection after a loss.
 */
typedef int (*pg_op_fn)(struct pg_slot *s, void *arg, bool *lost);

static int
pg_do(struct reg_pg *p, pg_op_fn fn, void *arg, bool idempotent)
{
	struct pg_slot *s;
	bool lost;
	int attempt, r = ML_ERR_IO;

	for (attempt = 0; attempt < 2; attempt++) {
		if ((r = slot_get(p, &s)) != 0) {
			return r;
		}
		lost = false;
		r = fn(s, arg, &lost);
		slot_put(p, s, lost);
		if (!lost) {
			return r;
		}
		pool_flush_idle(p);
		if (!idempotent) {
			return ML_ERR_IO;
		}
	}
	return ML_ERR_IO;
}

/* Map an outcome to an error, noting loss. */
static int
outcome_err(enum pg_outcome o, bool *lost)
{
	switch (o) {
	case PG_OK:
		return 0;
	case PG_CONSTRAINT:
		return ML_ERR_EXISTS;
	case PG_LOST:
		*lost = true;
		return ML_ERR_IO;
	case PG_DISK_FULL:
		return ML_ERR_DISK_FULL;
	default:
		return ML_ERR_IO;
	}
}

/* A statement whose result is not needed (BEGIN, an INSERT, COMMIT). */
static int
pg_cmd(struct pg_slot *s, const char *sql, const struct pg_params *pp,
    bool *lost)
{
	PGresult *res = NULL;
	int r = outcome_err(pg_run(s, sql, pp, &res), lost);

	PQclear(res);
	return r;
}

/* End a transaction that failed, unless the connection went with it. */
static void
pg_abort(struct pg_slot *s, bool lost)
{
	PGresult *res = NULL;

	if (!lost && pg_run(s, "ROLLBACK", NULL, &res) == PG_OK) {
		PQclear(res);
	}
}

/* ---------------------------------------------------------------- migrations */

static int
exec_simple(PGconn *c, const char *sql)
{
	PGresult *res = PQexec(c, sql);
	ExecStatusType st = PQresultStatus(res);
	int r = 0;

	if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
		r = pg_fail(ML_ERR_IO, "registry: PostgreSQL: %s",
		    PQerrorMessage(c));
	}
	PQclear(res);
	return r;
}

/*
 * Apply every migration not yet in schema_version, each in its own
 * transaction holding a transaction-scoped advisory lock, so concurrent
 * servers starting together apply each exactly once.
 */
static int
pg_migrate(PGconn *c)
{
	char sql[256];
	PGresult *res = NULL;
	size_t i;
	int r = ML_ERR_INTERNAL;

	snprintf(sql, sizeof(sql), "SELECT pg_advisory_xact_lock(%lld)",
	    (long long)REG_PG_MIGRATION_LOCK);
	ML_TRY(exec_simple(c, "SET client_min_messages = warning"));
	/* CREATE .. IF NOT EXISTS alone races with itself: lock first. */
	ML_TRY(exec_simple(c, "BEGIN"));
	if ((r = exec_simple(c, sql)) != 0 ||
	    (r = exec_simple(c, "CREATE TABLE IF NOT EXISTS schema_version ("
	    " version integer PRIMARY KEY,"
	    " what text NOT NULL,"
	    " applied_at timestamptz NOT NULL DEFAULT now())")) != 0 ||
	    (r = exec_simple(c, "COMMIT")) != 0) {
		goto fail;
	}
	for (i = 0; i < reg_nmigrations; i++) {
		const struct reg_migration *m = &reg_migrations[i];
		const char *pv[2];
		char ver[16];
		bool have;

		ML_TRY(exec_simple(c, "BEGIN"));
		if ((r = exec_simple(c, sql)) != 0) {
			goto fail;
		}
		snprintf(ver, sizeof(ver), "%d", m->version);
		pv[0] = ver;
		res = PQexecParams(c, "SELECT 1 FROM schema_version WHERE "
		    "version = $1", 1, NULL, pv, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_TUPLES_OK) {
			r = pg_fail(ML_ERR_IO, "registry: PostgreSQL: %s",
			    PQerrorMessage(c));
			goto fail;
		}
		have = PQntuples(res) > 0;
		PQclear(res);
		res = NULL;
		if (have) {
			ML_TRY(exec_simple(c, "COMMIT"));
			continue;
		}
		if ((r = exec_simple(c, m->pg)) != 0) {
			goto fail;
		}
		pv[1] = m->what;
		res = PQexecParams(c, "INSERT INTO schema_version (version, what) "
		    "VALUES ($1, $2)", 2, NULL, pv, NULL, NULL, 0);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			r = pg_fail(ML_ERR_IO, "registry: PostgreSQL: %s",
			    PQerrorMessage(c));
			goto fail;
		}
		PQclear(res);
		res = NULL;
		if ((r = exec_simple(c, "COMMIT")) != 0) {
			goto fail;
		}
		ml_info("registry: PostgreSQL schema migrated to %d (%s)",
		    m->version, m->what);
	}
	r = 0;
out:
	return r;
fail:
	PQclear(res);
	(void)!exec_simple(c, "ROLLBACK");
	return r;
}

/* ---------------------------------------------------------------- readers */

struct a_reader {
	const char		*serial;
	const struct reg_reader	*in;
	struct reg_reader	*out;
	bool			 flagged;
};

static int
op_reader_get(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_reader *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	struct reg_reader rd;
	int r;

	par_text(&pp, a->serial);
	if ((r = outcome_err(pg_run(s, "SELECT serial, certno, kind, flagged, "
	    "factory, created FROM readers WHERE serial = $1", &pp, &res),
	    lost)) != 0) {
		return r;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ML_ERR_NOT_FOUND;
	}
	memset(&rd, 0, sizeof(rd));
	col_text(res, 0, 0, rd.serial, sizeof(rd.serial));
	col_text(res, 0, 1, rd.certno, sizeof(rd.certno));
	rd.kind = (enum hs_kind)col_int(res, 0, 2);
	rd.flagged = col_int(res, 0, 3) != 0;
	col_text(res, 0, 4, rd.factory, sizeof(rd.factory));
	rd.created = col_int(res, 0, 5);
	PQclear(res);
	*a->out = rd;
	return 0;
}

static int
op_reader_put(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_reader *a = arg;
	const struct reg_reader *rd = a->in;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, rd->serial);
	par_text(&pp, rd->certno);
	par_int(&pp, (int64_t)rd->kind);
	par_text(&pp, rd->flagged ? "true" : "false");
	par_text(&pp, rd->factory);
	par_int(&pp, rd->created ? rd->created : (int64_t)time(NULL));
	r = outcome_err(pg_run(s, "INSERT INTO readers (serial, certno, kind, "
	    "flagged, factory, created) VALUES ($1, $2, $3, $4, $5, $6) "
	    "ON CONFLICT (serial) DO UPDATE SET certno = $2, kind = $3, "
	    "flagged = $4, factory = $5", &pp, &res), lost);
	PQclear(res);
	return r;		/* ML_ERR_EXISTS: certno taken by another serial */
}

static int
op_reader_flag(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_reader *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, a->serial);
	par_text(&pp, a->flagged ? "true" : "false");
	if ((r = outcome_err(pg_run(s, "UPDATE readers SET flagged = $2 "
	    "WHERE serial = $1", &pp, &res), lost)) != 0) {
		return r;
	}
	r = strcmp(PQcmdTuples(res), "1") == 0 ? 0 : ML_ERR_NOT_FOUND;
	PQclear(res);
	return r;
}

static int
pg_reader_get(struct reg *rg, const char *serial, struct reg_reader *ret)
{
	struct a_reader a = { .serial = serial, .out = ret };

	return pg_do((struct reg_pg *)rg, op_reader_get, &a, true);
}

static int
pg_reader_put(struct reg *rg, const struct reg_reader *rd)
{
	struct a_reader a = { .in = rd };

	return pg_do((struct reg_pg *)rg, op_reader_put, &a, true);
}

static int
pg_reader_flag(struct reg *rg, const char *serial, bool flagged)
{
	struct a_reader a = { .serial = serial, .flagged = flagged };

	return pg_do((struct reg_pg *)rg, op_reader_flag, &a, true);
}

/* ---------------------------------------------------------------- events */

struct a_events {
	const struct reg_event_rec	*evs;
	size_t				 n;
	const char			*serial;
	enum reg_event			 ev;
	uint64_t			 count;
	bool				 sent_commit;	/* outcome unknown if lost */
};

static int
op_events_add(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_events *a = arg;
	PGresult *res = NULL;
	size_t i;
	int r;

	if (a->n > 1 && (r = outcome_err(pg_run(s, "BEGIN", NULL, &res),
	    lost)) != 0) {
		return r;
	}
	PQclear(res);
	res = NULL;
	for (i = 0; i < a->n; i++) {
		struct pg_params pp = { 0 };

		par_text(&pp, a->evs[i].serial);
		par_int(&pp, (int64_t)a->evs[i].ev);
		par_int(&pp, a->evs[i].at ? a->evs[i].at : (int64_t)time(NULL));
		par_text(&pp, a->evs[i].detail);
		r = outcome_err(pg_run(s, "INSERT INTO reader_events (serial, "
		    "kind, at, detail) VALUES ($1, $2, $3, $4)", &pp, &res),
		    lost);
		PQclear(res);
		res = NULL;
		if (r != 0) {
			goto fail;
		}
	}
	a->sent_commit = true;
	if (a->n > 1 && (r = outcome_err(pg_run(s, "COMMIT", NULL, &res),
	    lost)) != 0) {
		goto fail;
	}
	PQclear(res);
	return 0;
fail:
	if (!*lost && a->n > 1) {
		(void)!exec_simple(s->c, "ROLLBACK");
	}
	return r;
}

static int
pg_event_add(struct reg *rg, const char *serial, enum reg_event ev,
    const char *detail)
{
	struct reg_event_rec rec;
	struct a_events a = { .evs = &rec, .n = 1 };

	memset(&rec, 0, sizeof(rec));
	snprintf(rec.serial, sizeof(rec.serial), "%s", serial);
	rec.ev = ev;
	snprintf(rec.detail, sizeof(rec.detail), "%s",
	    detail != NULL ? detail : "");
	return pg_do((struct reg_pg *)rg, op_events_add, &a, false);
}

static int
pg_event_add_many(struct reg *rg, const struct reg_event_rec *evs, size_t n)
{
	struct a_events a = { .evs = evs, .n = n };
	int r;

	if (n == 0) {
		return 0;
	}
	/*
	 * Not idempotent, but a batch whose connection broke before COMMIT
	 * was sent committed nothing (typically: the first statement on a
	 * pooled connection after a database restart): run it once more.
	 */
	r = pg_do((struct reg_pg *)rg, op_events_add, &a, false);
	if (r == ML_ERR_IO && !a.sent_commit && n > 1) {
		r = pg_do((struct reg_pg *)rg, op_events_add, &a, false);
	}
	return r;
}

static int
op_event_count(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_events *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, a->serial);
	par_int(&pp, (int64_t)a->ev);
	if ((r = outcome_err(pg_run(s, "SELECT count(*) FROM reader_events "
	    "WHERE serial = $1 AND ($2::integer = 0 OR kind = $2::integer)",
	    &pp, &res), lost)) != 0) {
		return r;
	}
	a->count = (uint64_t)col_int(res, 0, 0);
	PQclear(res);
	return 0;
}

static int
pg_event_count(struct reg *rg, const char *serial, enum reg_event ev,
    uint64_t *ret_n)
{
	struct a_events a = { .serial = serial, .ev = ev };
	int r;

	if ((r = pg_do((struct reg_pg *)rg, op_event_count, &a, true)) == 0) {
		*ret_n = a.count;
	}
	return r;
}

/* ---------------------------------------------------------------- notes */

struct a_note {
	const char		*serial;
	const char		*note_id;
	const char		*reason;
	const uint8_t		*pub_in;
	uint8_t			 pub[ML_P256_PUB_LEN];
	const struct note_reg	*nr;
	struct note_row		*row;
	uint64_t		 n;
};

/* chip key of serial into a->pub */
static int
op_chip_pub(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, a->serial);
	if ((r = outcome_err(pg_run(s, "SELECT chip_pub FROM note_chip WHERE "
	    "chip_serial = $1", &pp, &res), lost)) != 0) {
		return r;
	}
	if (PQntuples(res) == 0) {
		r = ML_ERR_NOT_FOUND;
	} else if (PQgetlength(res, 0, 0) != ML_P256_PUB_LEN) {
		r = ML_ERR_FORMAT;
	} else {
		memcpy(a->pub, PQgetvalue(res, 0, 0), ML_P256_PUB_LEN);
		r = 0;
	}
	PQclear(res);
	return r;
}

/* 0 new, 1 same key already, ML_ERR_EXISTS another key. */
static int
op_enrol(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	bool inserted;
	int r;

	par_text(&pp, a->serial);
	par_bytes(&pp, a->pub_in, ML_P256_PUB_LEN);
	par_int(&pp, (int64_t)time(NULL));
	if ((r = outcome_err(pg_run(s, "INSERT INTO note_chip VALUES "
	    "($1, $2, $3) ON CONFLICT DO NOTHING", &pp, &res), lost)) != 0) {
		return r;
	}
	inserted = strcmp(PQcmdTuples(res), "1") == 0;
	PQclear(res);
	if (inserted) {
		return 0;
	}
	if ((r = op_chip_pub(s, a, lost)) != 0) {
		return r;
	}
	return memcmp(a->pub, a->pub_in, ML_P256_PUB_LEN) == 0 ? 1 :
	    ML_ERR_EXISTS;
}

static int
pg_note_enrol(struct reg *rg, const char *serial,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	struct a_note a = { .serial = serial, .pub_in = pub };

	return pg_do((struct reg_pg *)rg, op_enrol, &a, true);
}

static int
pg_note_chip_pub(struct reg *rg, const char *serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	struct a_note a = { .serial = serial };
	int r;

	if ((r = pg_do((struct reg_pg *)rg, op_chip_pub, &a, true)) == 0) {
		memcpy(ret_pub, a.pub, ML_P256_PUB_LEN);
	}
	return r;
}

static int
lookup(struct pg_slot *s, const char *note_id, struct note_row *ret,
    bool *lost)
{
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	size_t n;
	int r;

	par_text(&pp, note_id);
	if ((r = outcome_err(pg_run(s, "SELECT reg_id, chip_serial, feature "
	    "FROM note WHERE note_id = $1", &pp, &res), lost)) != 0) {
		return r;
	}
	if (PQntuples(res) == 0) {
		PQclear(res);
		return ML_ERR_NOT_FOUND;
	}
	memset(ret, 0, sizeof(*ret));
	ret->reg_id = (uint64_t)col_int(res, 0, 0);
	col_text(res, 0, 1, ret->chip_serial, sizeof(ret->chip_serial));
	n = (size_t)PQgetlength(res, 0, 2);
	if (n > sizeof(ret->feature)) {
		n = sizeof(ret->feature);
	}
	memcpy(ret->feature, PQgetvalue(res, 0, 2), n);
	ret->feature_len = n;
	PQclear(res);
	return 0;
}

static int
op_lookup(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;

	return lookup(s, a->note_id, a->row, lost);
}

static int
pg_note_lookup(struct reg *rg, const char *note_id, struct note_row *ret)
{
	struct note_row row;
	struct a_note a = { .note_id = note_id, .row = &row };
	int r;

	if ((r = pg_do((struct reg_pg *)rg, op_lookup, &a, true)) == 0) {
		*ret = row;
	}
	return r;
}

static int
flag_two(struct pg_slot *s, const char *note_id, const char *chip1,
    const char *chip2, const char *reason, bool *lost)
{
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, note_id);
	par_text(&pp, chip1);
	par_text(&pp, chip2 != NULL ? chip2 : chip1);
	par_text(&pp, reason);
	par_int(&pp, (int64_t)time(NULL));
	r = outcome_err(pg_run(s, "INSERT INTO note_flag VALUES "
	    "($1, $2, $4, $5), ($1, $3, $4, $5) ON CONFLICT DO NOTHING", &pp,
	    &res), lost);
	PQclear(res);
	return r;
}

static int
op_flag(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;

	return flag_two(s, a->note_id, a->serial, NULL, a->reason, lost);
}

static int
pg_note_flag(struct reg *rg, const char *note_id, const char *chip,
    const char *reason)
{
	struct a_note a = { .note_id = note_id, .serial = chip,
	    .reason = reason };

	return pg_do((struct reg_pg *)rg, op_flag, &a, true);
}

/*
 * BN-7 exactly once.  Returns REG_NOTE_NEW (a->n = reg_id), REG_NOTE_AGAIN
 * (the same note, chip and feature were registered before: its reg_id),
 * REG_NOTE_DUP_SERIAL (note_id registered to another chip or with another
 * feature: both chips flagged), REG_NOTE_CHIP_USED (the chip carries
 * another note), REG_NOTE_UNKNOWN_CHIP, or ML_ERR_*.
 */
static int
register_body(struct pg_slot *s, struct a_note *a, bool *lost)
{
	const struct note_reg *nr = a->nr;
	struct pg_params pp = { 0 };
	struct note_row row;
	PGresult *res = NULL;
	int r;

	par_text(&pp, nr->note_id);
	par_text(&pp, nr->chip_serial);
	par_bytes(&pp, nr->feature, nr->feature_len);
	par_bytes(&pp, nr->challenge, sizeof(nr->challenge));
	par_bytes(&pp, nr->station_sig, sizeof(nr->station_sig));
	par_bytes(&pp, nr->issuer_pub, sizeof(nr->issuer_pub));
	par_int(&pp, (int64_t)time(NULL));
	r = outcome_err(pg_run(s, "INSERT INTO note (note_id, chip_serial, "
	    "feature, challenge, station_sig, issuer_pub, registered_at) "
	    "VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING "
	    "RETURNING reg_id", &pp, &res), lost);
	if (r == ML_ERR_EXISTS) {
		/* only the foreign key can fire here: chip not enrolled */
		ml_warn("registry: note %s: chip %s not enrolled", nr->note_id,
		    nr->chip_serial);
		return REG_NOTE_UNKNOWN_CHIP;
	}
	if (r != 0) {
		return r;
	}
	if (PQntuples(res) == 1) {
		a->n = (uint64_t)col_int(res, 0, 0);
		PQclear(res);
		return REG_NOTE_NEW;
	}
	PQclear(res);
	/* A conflict: on note_id (again, or a second chip) or chip_serial. */
	r = lookup(s, nr->note_id, &row, lost);
	if (r == 0) {
		if (strcmp(row.chip_serial, nr->chip_serial) == 0 &&
		    row.feature_len == nr->feature_len &&
		    memcmp(row.feature, nr->feature, nr->feature_len) == 0) {
			a->n = row.reg_id;
			return REG_NOTE_AGAIN;
		}
		/* One serial, two chips: flag both (BN-8). */
		if ((r = flag_two(s, nr->note_id, row.chip_serial,
		    nr->chip_serial, "serial presented by two chips",
		    lost)) != 0) {
			return r;
		}
		return REG_NOTE_DUP_SERIAL;
	}
	if (r != ML_ERR_NOT_FOUND) {
		return r;
	}
	return REG_NOTE_CHIP_USED;
}

static int audit_put(struct pg_slot *s, struct reg_audit *a, bool *lost);

/*
 * With nr->audit: the registration, the uploader's audit row and (new
 * note) its transaction risk record in one transaction (OP-5, ID-3).  A
 * refusal commits what it wrote (the flags of a duplicate serial); COMMIT
 * after a failed statement rolls back.  Safe to retry after a lost
 * connection: a committed registration comes back as REG_NOTE_AGAIN.
 */
static int
op_register(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;
	const struct note_reg *nr = a->nr;
	struct pg_params pp = { 0 };
	struct reg_audit au;
	char detail[REG_MAX_DETAIL + 1];
	int res, r = ML_ERR_INTERNAL;

	if (nr->audit == NULL) {
		return register_body(s, a, lost);
	}
	au = *nr->audit;
	ML_TRY(pg_cmd(s, "BEGIN", NULL, lost));
	res = register_body(s, a, lost);
	ML_ENSURE(res >= 0, res);
	if (res == REG_NOTE_NEW || res == REG_NOTE_AGAIN) {
		snprintf(au.outcome, sizeof(au.outcome), "%s",
		    res == REG_NOTE_NEW ? "ok" : "again");
		ML_TRY(audit_put(s, &au, lost));
	}
	if (res == REG_NOTE_NEW) {
		snprintf(detail, sizeof(detail), "note %s registered",
		    nr->note_id);
		par_text(&pp, au.actor);
		par_int(&pp, (int64_t)REG_EV_TRANSACTION);
		par_int(&pp, au.at);
		par_text(&pp, detail);
		ML_TRY(pg_cmd(s, "INSERT INTO reader_events (serial, kind, at, "
		    "detail) VALUES ($1, $2, $3, $4)", &pp, lost));
	}
	ML_TRY(pg_cmd(s, "COMMIT", NULL, lost));
	r = res;
out:
	if (r < 0) {
		pg_abort(s, *lost);
	}
	return r;
}

static int
pg_note_register(struct reg *rg, const struct note_reg *nr,
    uint64_t *ret_reg_id)
{
	struct a_note a = { .nr = nr };
	int r;

	if (nr == NULL || nr->feature_len > NOTE_DB_FEATURE_MAX) {
		return ML_ERR_ARG;
	}
	r = pg_do((struct reg_pg *)rg, op_register, &a, true);
	if (r == 0 || r == 1) {
		*ret_reg_id = a.n;
	}
	return r;
}

static int
op_flagged(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, a->note_id);
	if ((r = outcome_err(pg_run(s, "SELECT 1 FROM note_flag WHERE "
	    "note_id = $1 LIMIT 1", &pp, &res), lost)) != 0) {
		return r;
	}
	r = PQntuples(res) > 0 ? 1 : 0;
	PQclear(res);
	return r;
}

static int
pg_note_flagged(struct reg *rg, const char *note_id)
{
	struct a_note a = { .note_id = note_id };

	return pg_do((struct reg_pg *)rg, op_flagged, &a, true);
}

static int
op_count_reject(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, a->reason);
	r = outcome_err(pg_run(s, "INSERT INTO note_reject VALUES ($1, 1) "
	    "ON CONFLICT (reason) DO UPDATE SET count = note_reject.count + 1",
	    &pp, &res), lost);
	PQclear(res);
	return r;
}

static int
pg_note_count_reject(struct reg *rg, const char *reason)
{
	struct a_note a = { .reason = reason };

	return pg_do((struct reg_pg *)rg, op_count_reject, &a, false);
}

static int
op_count(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;
	PGresult *res = NULL;
	int r;

	if ((r = outcome_err(pg_run(s, "SELECT count(*) FROM note", NULL,
	    &res), lost)) != 0) {
		return r;
	}
	a->n = (uint64_t)col_int(res, 0, 0);
	PQclear(res);
	return 0;
}

static int
pg_note_count(struct reg *rg, uint64_t *ret_n)
{
	struct a_note a = { 0 };
	int r;

	if ((r = pg_do((struct reg_pg *)rg, op_count, &a, true)) == 0) {
		*ret_n = a.n;
	}
	return r;
}

static int
op_schema_version(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_note *a = arg;
	PGresult *res = NULL;
	int r;

	if ((r = outcome_err(pg_run(s, "SELECT coalesce(max(version), 0) "
	    "FROM schema_version", NULL, &res), lost)) != 0) {
		return r;
	}
	a->n = (uint64_t)col_int(res, 0, 0);
	PQclear(res);
	return 0;
}

static int
pg_schema_version(struct reg *rg, int *ret_version)
{
	struct a_note a = { 0 };
	int r;

	if ((r = pg_do((struct reg_pg *)rg, op_schema_version, &a, true)) == 0) {
		*ret_version = (int)a.n;
	}
	return r;
}

/* ---------------------------------------------------------------- import */

/*
 * The import (registry.h): the older server's SQLite note file, read
 * read-only, its rows inserted in one PostgreSQL transaction with their
 * ids and times; the note id sequence moves past the highest id copied.
 */
static const struct pg_import_table {
	const char	*select;	/* from the SQLite file */
	const char	*insert;	/* into PostgreSQL, $1.. in that order */
	int		 ncol;
	unsigned	 blobs;		/* bit i: column i is binary */
	size_t		 counter;	/* offset in struct reg_import_counts */
} pg_import_tables[] = {
	{ "SELECT chip_serial, chip_pub, enrolled_at FROM note_chip",
	  "INSERT INTO note_chip (chip_serial, chip_pub, enrolled_at) "
	  "VALUES ($1, $2, $3)", 3, 1u << 1,
	  offsetof(struct reg_import_counts, chips) },
	{ "SELECT reg_id, note_id, chip_serial, feature, challenge, "
	  "station_sig, issuer_pub, registered_at FROM note",
	  "INSERT INTO note (reg_id, note_id, chip_serial, feature, challenge, "
	  "station_sig, issuer_pub, registered_at) VALUES ($1, $2, $3, $4, "
	  "$5, $6, $7, $8)", 8, (1u << 3) | (1u << 4) | (1u << 5) | (1u << 6),
	  offsetof(struct reg_import_counts, notes) },
	{ "SELECT note_id, chip_serial, reason, at FROM note_flag",
	  "INSERT INTO note_flag (note_id, chip_serial, reason, at) VALUES "
	  "($1, $2, $3, $4) ON CONFLICT DO NOTHING", 4, 0,
	  offsetof(struct reg_import_counts, flags) },
	{ "SELECT reason, count FROM note_reject",
	  "INSERT INTO note_reject (reason, count) VALUES ($1, $2) ON CONFLICT "
	  "(reason) DO UPDATE SET count = note_reject.count + excluded.count",
	  2, 0, offsetof(struct reg_import_counts, rejects) },
};

struct a_import {
	sqlite3				*old;
	const char			*path;
	struct reg_import_counts	 c;
};

/* Copy one table; inside the transaction. */
static int
import_table(struct pg_slot *s, struct a_import *a,
    const struct pg_import_table *t, bool *lost)
{
	sqlite3_stmt *st = NULL;
	struct pg_params pp;
	PGresult *res = NULL;
	uint64_t *cnt = (uint64_t *)(void *)((char *)&a->c + t->counter);
	int i, rc, r = ML_ERR_INTERNAL;

	if (sqlite3_prepare_v2(a->old, t->select, -1, &st, NULL) != SQLITE_OK) {
		ml_err("registry: import %s: not a note database (%s)",
		    a->path, sqlite3_errmsg(a->old));
		return ML_ERR_FORMAT;
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&pp, 0, sizeof(pp));
		for (i = 0; i < t->ncol; i++) {
			if ((t->blobs & (1u << i)) != 0) {
				par_bytes(&pp, sqlite3_column_blob(st, i),
				    (size_t)sqlite3_column_bytes(st, i));
			} else {
				par_text(&pp, (const char *)
				    sqlite3_column_text(st, i));
			}
		}
		if ((r = outcome_err(pg_run(s, t->insert, &pp, &res),
		    lost)) != 0) {
			ml_err("registry: import %s: row %llu of \"%s\" refused",
			    a->path, (unsigned long long)*cnt + 1, t->select);
			goto out;
		}
		PQclear(res);
		res = NULL;
		(*cnt)++;
	}
	if (rc != SQLITE_DONE) {
		r = pg_fail(ML_ERR_IO, "registry: import %s: \"%s\": %s",
		    a->path, t->select, sqlite3_errstr(rc));
		goto out;
	}
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

static int
op_import(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_import *a = arg;
	PGresult *res = NULL;
	size_t i;
	int r = ML_ERR_INTERNAL;

	ML_TRY(pg_cmd(s, "BEGIN", NULL, lost));
	ML_TRY(pg_cmd(s, "LOCK TABLE note_chip, note IN EXCLUSIVE MODE", NULL,
	    lost));
	ML_TRY(outcome_err(pg_run(s, "SELECT (SELECT count(*) FROM note_chip) "
	    "+ (SELECT count(*) FROM note)", NULL, &res), lost));
	if (col_int(res, 0, 0) != 0) {
		ml_err("registry: import %s: the registry already holds %lld "
		    "chip(s) or note(s); import only into an empty note "
		    "registry", a->path, (long long)col_int(res, 0, 0));
		r = ML_ERR_EXISTS;
		goto out;
	}
	for (i = 0; i < ML_NELEM(pg_import_tables); i++) {
		ML_TRY(import_table(s, a, &pg_import_tables[i], lost));
	}
	ML_TRY(pg_cmd(s, "SELECT setval(pg_get_serial_sequence('note', "
	    "'reg_id'), (SELECT coalesce(max(reg_id), 0) + 1 FROM note), "
	    "false)", NULL, lost));
	ML_TRY(pg_cmd(s, "COMMIT", NULL, lost));
	r = 0;
out:
	PQclear(res);
	if (r != 0) {
		pg_abort(s, *lost);
	}
	return r;
}

static int
pg_note_import(struct reg *rg, const char *path, struct reg_import_counts *ret)
{
	struct a_import a = { .path = path };
	int r;

	if (sqlite3_open_v2(path, &a.old, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK) {
		r = pg_fail(ML_ERR_IO, "registry: import %s: %s", path,
		    a.old != NULL ? sqlite3_errmsg(a.old) : "cannot open");
		sqlite3_close(a.old);
		return r;
	}
	if ((r = pg_do((struct reg_pg *)rg, op_import, &a, false)) == 0) {
		*ret = a.c;
	}
	sqlite3_close(a.old);
	return r;
}

/* ---------------------------------------------------------------- audit */

/*
 * Append one row inside the open transaction, under an advisory lock held
 * to its end, so that the servers of a fleet append one chain: read the
 * last row, insert the next.  a gets id, prev_hash and hash.
 */
static int
audit_put(struct pg_slot *s, struct reg_audit *a, bool *lost)
{
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	char lock[80];
	int r = ML_ERR_INTERNAL;

	if (a->at == 0) {
		a->at = (int64_t)time(NULL);
	}
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_xact_lock(%lld)",
	    (long long)REG_PG_AUDIT_LOCK);
	ML_TRY(pg_cmd(s, lock, NULL, lost));
	ML_TRY(outcome_err(pg_run(s, "SELECT id, hash FROM audit ORDER BY id "
	    "DESC LIMIT 1", NULL, &res), lost));
	if (PQntuples(res) == 1 && PQgetlength(res, 0, 1) == ML_SHA256_LEN) {
		a->id = col_int(res, 0, 0) + 1;
		memcpy(a->prev_hash, PQgetvalue(res, 0, 1), ML_SHA256_LEN);
	} else {
		if (PQntuples(res) != 0) {
			r = pg_fail(ML_ERR_IO, "registry: PostgreSQL: the last "
			    "audit row has no 32-byte hash");
			goto out;
		}
		a->id = 1;
		memset(a->prev_hash, 0, sizeof(a->prev_hash));
	}
	ML_TRY(reg_audit_hash(a, a->hash));
	par_int(&pp, a->id);
	par_int(&pp, a->at);
	par_text(&pp, a->action);
	par_text(&pp, a->actor);
	par_text(&pp, a->actor_certno);
	par_text(&pp, a->subject_kind);
	par_text(&pp, a->subject);
	par_text(&pp, a->outcome);
	par_text(&pp, a->detail);
	par_bytes(&pp, a->prev_hash, ML_SHA256_LEN);
	par_bytes(&pp, a->hash, ML_SHA256_LEN);
	ML_TRY(pg_cmd(s, "INSERT INTO audit (id, at, action, actor, "
	    "actor_certno, subject_kind, subject, outcome, detail, prev_hash, "
	    "hash) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)", &pp,
	    lost));
	r = 0;
out:
	PQclear(res);
	return r;
}

/*
 * One row in its own transaction.  Not retried after a lost connection
 * (the row may have been committed): the caller sees ML_ERR_IO.
 */
static int
op_audit_append(struct pg_slot *s, void *arg, bool *lost)
{
	struct reg_audit *a = arg;
	int r = ML_ERR_INTERNAL;

	ML_TRY(pg_cmd(s, "BEGIN", NULL, lost));
	ML_TRY(audit_put(s, a, lost));
	ML_TRY(pg_cmd(s, "COMMIT", NULL, lost));
out:
	if (r != 0) {
		pg_abort(s, *lost);
	}
	return r;
}

static int
pg_audit_append(struct reg *rg, struct reg_audit *io)
{
	struct reg_audit a = *io;
	int r;

	if (a.at == 0) {
		a.at = (int64_t)time(NULL);
	}
	if ((r = pg_do((struct reg_pg *)rg, op_audit_append, &a, false)) == 0) {
		*io = a;
	}
	return r;
}

#define PG_AUDIT_BATCH	512

struct a_audit_list {
	const struct reg_audit_filter	*f;
	int64_t				 after_id;
	uint32_t			 limit;
	struct reg_audit		*rows;	/* PG_AUDIT_BATCH */
	int				 n;
};

/* One batch of rows into a->rows (the slot is not held while fn runs). */
static int
op_audit_list(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_audit_list *a = arg;
	const struct reg_audit_filter *f = a->f;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	struct reg_audit *row;
	int i, r;

	par_text(&pp, f->subject_kind != NULL ? f->subject_kind : "");
	par_text(&pp, f->subject != NULL ? f->subject : "");
	par_text(&pp, f->actor != NULL ? f->actor : "");
	par_int(&pp, f->since);
	par_int(&pp, f->until);
	par_int(&pp, a->after_id);
	par_int(&pp, a->limit);
	if ((r = outcome_err(pg_run(s, "SELECT id, at, action, actor, "
	    "actor_certno, subject_kind, subject, outcome, detail, prev_hash, "
	    "hash FROM audit WHERE ($1 = '' OR subject_kind = $1) AND "
	    "($2 = '' OR subject = $2) AND ($3 = '' OR actor = $3) AND "
	    "at >= $4::bigint AND ($5::bigint = 0 OR at <= $5::bigint) AND "
	    "id > $6::bigint ORDER BY id LIMIT $7::bigint", &pp, &res),
	    lost)) != 0) {
		return r;
	}
	a->n = PQntuples(res);
	for (i = 0; i < a->n; i++) {
		row = &a->rows[i];
		memset(row, 0, sizeof(*row));
		row->id = col_int(res, i, 0);
		row->at = col_int(res, i, 1);
		col_text(res, i, 2, row->action, sizeof(row->action));
		col_text(res, i, 3, row->actor, sizeof(row->actor));
		col_text(res, i, 4, row->actor_certno, sizeof(row->actor_certno));
		col_text(res, i, 5, row->subject_kind, sizeof(row->subject_kind));
		col_text(res, i, 6, row->subject, sizeof(row->subject));
		col_text(res, i, 7, row->outcome, sizeof(row->outcome));
		col_text(res, i, 8, row->detail, sizeof(row->detail));
		if (PQgetlength(res, i, 9) == ML_SHA256_LEN) {
			memcpy(row->prev_hash, PQgetvalue(res, i, 9),
			    ML_SHA256_LEN);
		}
		if (PQgetlength(res, i, 10) == ML_SHA256_LEN) {
			memcpy(row->hash, PQgetvalue(res, i, 10), ML_SHA256_LEN);
		}
	}
	PQclear(res);
	return 0;
}

static int
pg_audit_list(struct reg *rg, const struct reg_audit_filter *f,
    reg_audit_fn fn, void *ctx)
{
	struct a_audit_list a = { .f = f, .after_id = f->after_id };
	uint64_t left = f->limit != 0 ? f->limit : UINT64_MAX;
	int i, r = 0;

	if ((a.rows = calloc(PG_AUDIT_BATCH, sizeof(*a.rows))) == NULL) {
		return ML_ERR_NOMEM;
	}
	while (left > 0) {
		a.limit = left < PG_AUDIT_BATCH ? (uint32_t)left : PG_AUDIT_BATCH;
		if ((r = pg_do((struct reg_pg *)rg, op_audit_list, &a,
		    true)) != 0) {
			break;
		}
		for (i = 0; i < a.n && r == 0; i++) {
			r = fn(ctx, &a.rows[i]);
		}
		if (r != 0 || a.n < (int)a.limit) {
			break;
		}
		a.after_id = a.rows[a.n - 1].id;
		left -= (uint64_t)a.n;
	}
	free(a.rows);
	return r;
}

/* ---------------------------------------------------------------- open/close */

static void
pg_close(struct reg *rg)
{
	struct reg_pg *p = (struct reg_pg *)rg;
	int i;

	for (i = 0; i < p->nslot; i++) {
		PQfinish(p->slot[i].c);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p->conninfo);
	free(p);
}

/* ---------------------------------------------------------------- reservations */

struct a_resv {
	const char	*note_id, *chip, *station;
	int64_t		 now, until;
};

static int
op_reserve(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_resv *a = arg;
	struct pg_params pp = { 0 };
	PGresult *res = NULL;
	int r;

	par_text(&pp, a->note_id);
	par_text(&pp, a->chip);
	par_text(&pp, a->station);
	par_int(&pp, a->until);
	par_int(&pp, a->now);
	if ((r = outcome_err(pg_run(s, RESV_PUT_SQL("$1", "$2", "$3", "$4",
	    "$5"), &pp, &res), lost)) != 0) {
		return r;
	}
	/* no row: the conflict's WHERE kept another chip's promise */
	r = strcmp(PQcmdTuples(res), "1") == 0 ? 0 : ML_ERR_EXISTS;
	PQclear(res);
	return r;
}

static int
pg_note_reserve(struct reg *rg, const char *note_id, const char *chip,
    const char *station, int64_t now, int64_t until)
{
	struct a_resv a = { note_id, chip, station, now, until };

	/* idempotent: a retry after a lost connection renews this chip's */
	return pg_do((struct reg_pg *)rg, op_reserve, &a, true);
}

static int
op_unreserve(struct pg_slot *s, void *arg, bool *lost)
{
	struct a_resv *a = arg;
	struct pg_params pp = { 0 };

	par_text(&pp, a->note_id);
	par_int(&pp, a->now);
	return pg_cmd(s, "DELETE FROM note_reservation WHERE note_id = $1 "
	    "OR expires <= $2", &pp, lost);
}

static int
pg_note_unreserve(struct reg *rg, const char *note_id, int64_t now)
{
	struct a_resv a = { .note_id = note_id, .now = now };

	return pg_do((struct reg_pg *)rg, op_unreserve, &a, true);
}

static const struct reg_ops reg_pg_ops = {
	.name = "postgresql",
	.close = pg_close,
	.reader_get = pg_reader_get,
	.reader_put = pg_reader_put,
	.reader_flag = pg_reader_flag,
	.event_add = pg_event_add,
	.event_count = pg_event_count,
	.event_add_many = pg_event_add_many,
	.note_enrol = pg_note_enrol,
	.note_chip_pub = pg_note_chip_pub,
	.note_register = pg_note_register,
	.note_lookup = pg_note_lookup,
	.note_flag = pg_note_flag,
	.note_flagged = pg_note_flagged,
	.note_count_reject = pg_note_count_reject,
	.note_count = pg_note_count,
	.note_import = pg_note_import,
	.note_reserve = pg_note_reserve,
	.note_unreserve = pg_note_unreserve,
	.audit_append = pg_audit_append,
	.audit_list = pg_audit_list,
	.schema_version = pg_schema_version,
};

int
reg_pg_open(const char *target, const struct reg_cfg *cfg,
    struct reg **ret_reg)
{
	struct reg_pg *p = NULL;
	PGconn *c = NULL;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(reg_target_is_pg(target) && ret_reg != NULL, ML_ERR_ARG);
	ML_ENSURE(PQisthreadsafe(), ML_ERR_UNSUPPORTED);
	ML_ENSURE((p = calloc(1, sizeof(*p))) != NULL, ML_ERR_NOMEM);
	p->base.ops = &reg_pg_ops;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	/* a URI as is; "pg:", "postgresql:", "postgres:" + keyword=value */
	if (strstr(target, "://") != NULL) {
		p->conninfo = strdup(target);
	} else {
		p->conninfo = strdup(strchr(target, ':') + 1);
	}
	ML_ENSURE(p->conninfo != NULL, ML_ERR_NOMEM);
	p->nslot = REG_PG_POOL_DEFAULT;
	if (cfg != NULL && cfg->pg_pool > 0) {
		p->nslot = cfg->pg_pool > REG_PG_POOL_MAX ? REG_PG_POOL_MAX :
		    cfg->pg_pool;
	}
	/* At start-up the database must be there: the schema is checked. */
	ML_ENSURE((c = pg_connect(p)) != NULL, ML_ERR_IO);
	ML_TRY(pg_migrate(c));
	p->slot[0].c = c;
	c = NULL;
	*ret_reg = &p->base;
	p = NULL;
	r = 0;
out:
	PQfinish(c);
	if (p != NULL) {
		pg_close(&p->base);
	}
	return r;
}
