/*
 * The SQLite registry back-end: one connection in serialized mode
 * (SQLITE_OPEN_FULLMUTEX), WAL journal, synchronous=FULL (a registered
 * reader or note survives a power cut once the call returned).
 *
 * Schema: reg_sqlite_migrations[], applied in order and recorded in
 * PRAGMA user_version.  Append new rows; never edit
 * an applied one.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ml_log.h"
#include "registry.h"

struct reg_sqlite_migration {
	int		 version;
	const char	*what;
	const char	*sql;
};

/*
 *= REQ ID-3
 *# The server stores the serial <-> certificate-number mapping and uses it
 *# for risk control: factory data, read history, error history, report
 *# history, transaction history per reader.
 */
static const struct reg_sqlite_migration reg_sqlite_migrations[] = {
	{ 1, "readers and risk records (ID-3)",
	  "CREATE TABLE readers ("
	  "  serial   TEXT PRIMARY KEY NOT NULL,"
	  "  certno   TEXT NOT NULL,"
	  "  kind     INTEGER NOT NULL,"
	  "  flagged  INTEGER NOT NULL DEFAULT 0,"
	  "  factory  TEXT NOT NULL DEFAULT '',"
	  "  created  INTEGER NOT NULL);"
	  "CREATE UNIQUE INDEX readers_certno ON readers(certno);"
	  "CREATE TABLE reader_events ("
	  "  id       INTEGER PRIMARY KEY,"
	  "  serial   TEXT NOT NULL,"
	  "  kind     INTEGER NOT NULL,"	/* enum reg_event */
	  "  at       INTEGER NOT NULL,"
	  "  detail   TEXT NOT NULL DEFAULT '');"
	  "CREATE INDEX reader_events_serial ON reader_events(serial, kind);" },
	/* SQLite keeps the note tables in note_db.c's own file (BN-7) */
};

struct reg_sqlite {
	struct reg	 base;
	sqlite3		*db;
};

/* One log line for a failed statement; a full disk is ML_ERR_DISK_FULL. */
static int
db_fail(sqlite3 *db, const char *what)
{
	if ((sqlite3_errcode(db) & 0xff) == SQLITE_FULL) {
		ml_err("registry %s: %s: write failed: disk full",
		    sqlite3_db_filename(db, "main"), what);
		return ML_ERR_DISK_FULL;
	}
	ml_err("registry %s: %s: %s", sqlite3_db_filename(db, "main"), what,
	    sqlite3_errmsg(db));
	return ML_ERR_IO;
}

static int
db_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 :
	    db_fail(db, sql);
}

static int
user_version(sqlite3 *db, int *ret)
{
	sqlite3_stmt *st = NULL;
	int r = ML_ERR_IO;

	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st,
	    NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		*ret = sqlite3_column_int(st, 0);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/*
 * Apply the migrations not yet applied.  PRAGMA user_version is the
 * authority; each version is also recorded in schema_version (version,
 * what, applied_at), as on PostgreSQL.  The version is read
 * under the write lock (BEGIN IMMEDIATE), so servers starting together on
 * one file apply each migration once.
 */
static int
migrate(sqlite3 *db)
{
	size_t i;
	int have = 0, r = ML_ERR_INTERNAL;
	char sql[64], *ins = NULL;

	/* under the write lock: a deferred one can fail with SQLITE_BUSY */
	ML_TRY(db_exec(db, "BEGIN IMMEDIATE"));
	if ((r = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version ("
	    " version INTEGER PRIMARY KEY, what TEXT NOT NULL,"
	    " applied_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now')))")) != 0 ||
	    (r = db_exec(db, "COMMIT")) != 0) {
		goto fail;
	}
	for (i = 0; i < ML_NELEM(reg_sqlite_migrations); i++) {
		const struct reg_sqlite_migration *m = &reg_sqlite_migrations[i];

		ML_TRY(db_exec(db, "BEGIN IMMEDIATE"));
		if ((r = user_version(db, &have)) != 0) {
			goto fail;
		}
		if (m->version > have) {
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
			    m->version);
			if ((r = db_exec(db, m->sql)) != 0 ||
			    (r = db_exec(db, sql)) != 0) {
				goto fail;
			}
		}
		/* recorded when applied, back-filled for older files */
		if ((ins = sqlite3_mprintf("INSERT OR IGNORE INTO "
		    "schema_version (version, what) VALUES (%d, %Q)", m->version,
		    m->what)) == NULL) {
			r = ML_ERR_NOMEM;
			goto fail;
		}
		if ((r = db_exec(db, ins)) != 0 ||
		    (r = db_exec(db, "COMMIT")) != 0) {
			goto fail;
		}
		sqlite3_free(ins);
		ins = NULL;
		if (m->version > have) {
			ml_info("registry: migrated to %d (%s)", m->version,
			    m->what);
		}
	}
	r = 0;
out:
	sqlite3_free(ins);
	return r;
fail:
	(void)!db_exec(db, "ROLLBACK");
	sqlite3_free(ins);
	return r;
}

static void
sq_close(struct reg *r)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;

	sqlite3_close(s->db);
	free(s);
}

static int
sq_reader_get(struct reg *rg, const char *serial, struct reg_reader *ret)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	struct reg_reader rd;
	sqlite3_stmt *st = NULL;
	int rc, r = ML_ERR_INTERNAL;

	memset(&rd, 0, sizeof(rd));
	if (sqlite3_prepare_v2(s->db, "SELECT serial, certno, kind, flagged, "
	    "factory, created FROM readers WHERE serial = ?1", -1, &st,
	    NULL) != SQLITE_OK) {
		return ML_ERR_IO;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = ML_ERR_NOT_FOUND;
		goto out;
	}
	ML_ENSURE(rc == SQLITE_ROW, ML_ERR_IO);
	snprintf(rd.serial, sizeof(rd.serial), "%s",
	    (const char *)sqlite3_column_text(st, 0));
	snprintf(rd.certno, sizeof(rd.certno), "%s",
	    (const char *)sqlite3_column_text(st, 1));
	rd.kind = (enum hs_kind)sqlite3_column_int(st, 2);
	rd.flagged = sqlite3_column_int(st, 3) != 0;
	snprintf(rd.factory, sizeof(rd.factory), "%s",
	    (const char *)sqlite3_column_text(st, 4));
	rd.created = sqlite3_column_int64(st, 5);
	*ret = rd;
	r = 0;
out:
	sqlite3_finalize(st);
	return r;
}

static int
sq_reader_put(struct reg *r, const struct reg_reader *rd)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "INSERT INTO readers (serial, certno, "
	    "kind, flagged, factory, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
	    "ON CONFLICT(serial) DO UPDATE SET certno = ?2, kind = ?3, "
	    "flagged = ?4, factory = ?5", -1, &st, NULL) != SQLITE_OK) {
		return ML_ERR_IO;
	}
	sqlite3_bind_text(st, 1, rd->serial, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, rd->certno, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, (int)rd->kind);
	sqlite3_bind_int(st, 4, rd->flagged ? 1 : 0);
	sqlite3_bind_text(st, 5, rd->factory, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 6, rd->created ? rd->created : (int64_t)time(NULL));
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc == SQLITE_CONSTRAINT) {
		return ML_ERR_EXISTS;		/* certno used by another serial */
	}
	return rc == SQLITE_DONE ? 0 : ML_ERR_IO;
}

static int
sq_reader_flag(struct reg *r, const char *serial, bool flagged)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "UPDATE readers SET flagged = ?2 "
	    "WHERE serial = ?1", -1, &st, NULL) != SQLITE_OK) {
		return ML_ERR_IO;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, flagged ? 1 : 0);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	if (rc != SQLITE_DONE) {
		return ML_ERR_IO;
	}
	return sqlite3_changes(s->db) == 1 ? 0 : ML_ERR_NOT_FOUND;
}

static int
sq_event_add(struct reg *r, const char *serial, enum reg_event ev,
    const char *detail)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "INSERT INTO reader_events (serial, kind, "
	    "at, detail) VALUES (?1, ?2, ?3, ?4)", -1, &st, NULL) != SQLITE_OK) {
		return ML_ERR_IO;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)ev);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	sqlite3_bind_text(st, 4, detail != NULL ? detail : "", -1,
	    SQLITE_STATIC);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : ML_ERR_IO;
}

static int
sq_event_count(struct reg *r, const char *serial, enum reg_event ev,
    uint64_t *ret_n)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM reader_events "
	    "WHERE serial = ?1 AND (?2 = 0 OR kind = ?2)", -1, &st,
	    NULL) != SQLITE_OK) {
		return ML_ERR_IO;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, (int)ev);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ret_n = (uint64_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : ML_ERR_IO;
}

static int
sq_event_add_many(struct reg *r, const struct reg_event_rec *evs, size_t n)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc = SQLITE_OK, ret = ML_ERR_IO;

	if (n == 0) {
		return 0;
	}
	if ((ret = db_exec(s->db, "BEGIN IMMEDIATE")) != 0) {
		return ret;
	}
	ret = ML_ERR_IO;
	if (sqlite3_prepare_v2(s->db, "INSERT INTO reader_events (serial, kind, "
	    "at, detail) VALUES (?1, ?2, ?3, ?4)", -1, &st, NULL) != SQLITE_OK) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		sqlite3_bind_text(st, 1, evs[i].serial, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)evs[i].ev);
		sqlite3_bind_int64(st, 3, evs[i].at ? evs[i].at :
		    (int64_t)time(NULL));
		sqlite3_bind_text(st, 4, evs[i].detail, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_DONE) {
			ret = db_fail(s->db, "risk records");
			goto out;
		}
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	st = NULL;
	if ((ret = db_exec(s->db, "COMMIT")) != 0) {
		goto out;
	}
	return 0;
out:
	sqlite3_finalize(st);
	if (!sqlite3_get_autocommit(s->db)) {	/* SQLite may have rolled back */
		(void)sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
	return ret;
}

static const struct reg_ops reg_sqlite_ops = {
	.name = "sqlite",
	.close = sq_close,
	.reader_get = sq_reader_get,
	.reader_put = sq_reader_put,
	.reader_flag = sq_reader_flag,
	.event_add = sq_event_add,
	.event_count = sq_event_count,
	.event_add_many = sq_event_add_many,
};

int
reg_sqlite_open(const char *path, struct reg **ret_reg)
{
	struct reg_sqlite *s = NULL;
	int i, r = ML_ERR_INTERNAL;

	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	s->base.ops = &reg_sqlite_ops;
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) != SQLITE_OK) {
		/* sqlite3's text, and the system's (errno) behind it */
		r = ml_errf(ML_ERR_IO, "%s: %s%s%s", path,
		    s->db ? sqlite3_errmsg(s->db) : "out of memory",
		    s->db && sqlite3_system_errno(s->db) ? ": " : "",
		    s->db && sqlite3_system_errno(s->db) ?
		    strerror(sqlite3_system_errno(s->db)) : "");
		goto out;
	}
	sqlite3_busy_timeout(s->db, 5000);
	/*
	 * Switching a new file to WAL takes an exclusive lock and does not
	 * wait on the busy handler: when several processes create the
	 * registry at once, retry for a while.
	 */
	for (i = 0; (r = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL", NULL,
	    NULL, NULL)) == SQLITE_BUSY && i < 100; i++) {
		usleep(20000);
	}
	ML_ENSURE(r == SQLITE_OK, ML_ERR_IO);
	ML_TRY(db_exec(s->db, "PRAGMA synchronous = FULL"));
	ML_TRY(db_exec(s->db, "PRAGMA foreign_keys = ON"));
	ML_TRY(migrate(s->db));
	*ret_reg = &s->base;
	s = NULL;
	r = 0;
out:
	if (s != NULL) {
		sqlite3_close(s->db);
		free(s);
	}
	return r;
}
