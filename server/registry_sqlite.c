/*
 * The SQLite registry back-end: readers, risk records, chips and notes in
 * ONE file.  One connection guarded by one mutex (every statement and
 * every transaction runs under it, so a transaction never interleaves
 * with another thread's statement); WAL journal, synchronous=FULL (a
 * registered reader or note survives a power cut once the call returned).
 *
 * Schema: reg_migrations[] (migrations.c), applied in order at open and
 * recorded in PRAGMA user_version and in schema_version.
 *
 * Note registration, audit rows and the pre-check's serial promises use
 * group commit: the first thread to find no commit running becomes the
 * leader, takes every waiting request, runs them in one transaction (each
 * as it would alone, in a savepoint: a later one sees the earlier ones'
 * inserts) and commits once (one fsync), then wakes the others.  Nothing is acknowledged before its commit; a failed commit
 * fails every request of the group.
 *
 * Exactly-once (BN-7): note_id and chip_serial are each UNIQUE in note, so
 * a note is registered once and a chip carries one note whatever the
 * retries; a retry of the same (note, chip, feature) answers the first
 * registration.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "migrations.h"
#include "ml_log.h"
#include "registry.h"

struct sq_resv;

/* A registration, an audit row or a serial's promise (taken or dropped)
 * waiting for the group commit. */
struct sq_req {
	const struct note_reg	*nr;
	struct reg_audit	*audit;		/* when nr is NULL */
	const struct sq_resv	*resv;		/* when both are NULL */
	uint64_t		 reg_id;
	int			 r;
	bool			 done;
	struct sq_req		*next;
};

struct reg_sqlite {
	struct reg	 base;
	pthread_mutex_t	 mu;		/* the connection */
	pthread_mutex_t	 qmu;		/* the group-commit queue */
	pthread_cond_t	 qcv;
	struct sq_req	*queue, **qtail;
	bool		 committing;
	sqlite3		*db;
	sqlite3_stmt	*enrol_get, *enrol_put, *note_by_id, *note_by_chip,
			*note_put, *flag_put, *flag_get, *reject_put, *count,
			*ev_put, *audit_last, *audit_put, *resv_put, *resv_del,
			*resv_get;
	/* the group commit's statements, prepared once (parsing them per
	 * request was 2% of a note's instructions, BN-7 throughput) */
	sqlite3_stmt	*g_begin, *g_commit, *g_sp, *g_release, *g_undo;
	/*
	 * The read side: the lookups of the hot paths (a chip's key, a note,
	 * its flag) run on a second connection under their own lock.  In WAL
	 * mode a reader sees every committed write and never waits for a
	 * writer, so the requests behind a group commit no longer wait for
	 * its fsync to read (BN-7 with many positions or threads).  NULL for
	 * an in-memory registry (one connection, everything under mu).
	 */
	sqlite3		*rdb;
	pthread_mutex_t	 rmu;
	sqlite3_stmt	*r_enrol_get, *r_note_by_id, *r_flag_get;
};

/*
 * A failed read: the error, its context naming the registry file, what was
 * asked and SQLite's message (the caller decides whether to log it).
 */
static int
db_err(sqlite3 *db, const char *what)
{
	return ml_errf(ML_ERR_IO, "registry %s: %s: %s",
	    sqlite3_db_filename(db, "main"), what, sqlite3_errmsg(db));
}

/*
 * A failed statement: one log line, and the error.  A full disk is
 * ML_ERR_DISK_FULL, not ML_ERR_IO, so that the station can say the server
 * answered and why (docs/operations.md, "Disk full").
 */
static int
db_fail(sqlite3 *db, const char *what)
{
	int r;

	if ((sqlite3_errcode(db) & 0xff) == SQLITE_FULL) {
		r = ml_errf(ML_ERR_DISK_FULL, "registry %s: %s: write failed: "
		    "disk full", sqlite3_db_filename(db, "main"), what);
	} else {
		r = db_err(db, what);
	}
	ml_err("%s", ml_errmsg(r));
	return r;
}

static int
db_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 :
	    db_fail(db, sql);
}

/* Undo an open transaction, unless SQLite already rolled it back itself
 * (a full disk, an I/O error). */
static void
db_rollback(sqlite3 *db)
{
	if (!sqlite3_get_autocommit(db)) {
		(void)sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	}
}

static int
prep(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret,
	    NULL) != SQLITE_OK) {
		return db_fail(db, "prepare");
	}
	return 0;
}

/* Reset a persistent statement for its next use. */
static void
done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
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
	} else {
		r = db_err(db, "schema version");
	}
	sqlite3_finalize(st);
	return r;
}

/*
 * Apply the migrations not yet applied.  PRAGMA user_version is the
 * authority; each version is also recorded in schema_version (version,
 * what, applied_at), as on PostgreSQL.  The version is read under the
 * write lock (BEGIN IMMEDIATE), so servers starting together on one file
 * apply each migration once.  A file of a newer schema than this build
 * knows is refused (an older binary must not write into it).
 */
static int
migrate(sqlite3 *db, const char *path)
{
	size_t i;
	int have = 0, r = ML_ERR_INTERNAL;
	char sql[64], *ins = NULL;

	ML_TRY(user_version(db, &have));
	if (have > REG_SCHEMA_VERSION) {
		ml_err("registry %s: schema version %d is newer than this "
		    "program's (%d)", path, have, REG_SCHEMA_VERSION);
		return ML_ERR_UNSUPPORTED;
	}
	/* under the write lock: a deferred one can fail with SQLITE_BUSY */
	ML_TRY(db_exec(db, "BEGIN IMMEDIATE"));
	if ((r = db_exec(db, "CREATE TABLE IF NOT EXISTS schema_version ("
	    " version INTEGER PRIMARY KEY, what TEXT NOT NULL,"
	    " applied_at INTEGER NOT NULL DEFAULT (strftime('%s', 'now')))")) != 0 ||
	    (r = db_exec(db, "COMMIT")) != 0) {
		goto fail;
	}
	for (i = 0; i < reg_nmigrations; i++) {
		const struct reg_migration *m = &reg_migrations[i];

		ML_TRY(db_exec(db, "BEGIN IMMEDIATE"));
		if ((r = user_version(db, &have)) != 0) {
			goto fail;
		}
		if (m->version > have) {
			snprintf(sql, sizeof(sql), "PRAGMA user_version = %d",
			    m->version);
			if ((r = db_exec(db, m->sqlite)) != 0 ||
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
			ml_info("registry %s: migrated to %d (%s)", path,
			    m->version, m->what);
		}
	}
	r = 0;
out:
	sqlite3_free(ins);
	return r;
fail:
	db_rollback(db);
	sqlite3_free(ins);
	return r;
}

static void
sq_close(struct reg *r)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;

	sqlite3_finalize(s->enrol_get);
	sqlite3_finalize(s->enrol_put);
	sqlite3_finalize(s->note_by_id);
	sqlite3_finalize(s->note_by_chip);
	sqlite3_finalize(s->note_put);
	sqlite3_finalize(s->flag_put);
	sqlite3_finalize(s->flag_get);
	sqlite3_finalize(s->reject_put);
	sqlite3_finalize(s->count);
	sqlite3_finalize(s->audit_last);
	sqlite3_finalize(s->audit_put);
	sqlite3_finalize(s->ev_put);
	sqlite3_finalize(s->resv_put);
	sqlite3_finalize(s->resv_del);
	sqlite3_finalize(s->resv_get);
	sqlite3_finalize(s->g_begin);
	sqlite3_finalize(s->g_commit);
	sqlite3_finalize(s->g_sp);
	sqlite3_finalize(s->g_release);
	sqlite3_finalize(s->g_undo);
	sqlite3_finalize(s->r_enrol_get);
	sqlite3_finalize(s->r_note_by_id);
	sqlite3_finalize(s->r_flag_get);
	sqlite3_close(s->rdb);
	pthread_mutex_destroy(&s->rmu);
	sqlite3_close(s->db);
	pthread_mutex_destroy(&s->mu);
	pthread_mutex_destroy(&s->qmu);
	pthread_cond_destroy(&s->qcv);
	free(s);
}

static int
sq_schema_version(struct reg *rg, int *ret)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	int r;

	pthread_mutex_lock(&s->mu);
	r = user_version(s->db, ret);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* ---------------------------------------------------------------- readers */

static int
sq_reader_get(struct reg *rg, const char *serial, struct reg_reader *ret)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	struct reg_reader rd;
	sqlite3_stmt *st = NULL;
	int rc, r = ML_ERR_INTERNAL;

	memset(&rd, 0, sizeof(rd));
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "SELECT serial, certno, kind, flagged, "
	    "factory, created FROM readers WHERE serial = ?1", -1, &st,
	    NULL) != SQLITE_OK) {
		r = db_err(s->db, "reader lookup");
		goto out;
	}
	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE) {
		r = ML_ERR_NOT_FOUND;
		goto out;
	}
	if (rc != SQLITE_ROW) {
		r = db_err(s->db, "reader lookup");
		goto out;
	}
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
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int
sq_reader_put(struct reg *rg, const struct reg_reader *rd)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_ERROR, r;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "INSERT INTO readers (serial, certno, "
	    "kind, flagged, factory, created) VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
	    "ON CONFLICT(serial) DO UPDATE SET certno = ?2, kind = ?3, "
	    "flagged = ?4, factory = ?5", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, rd->serial, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, rd->certno, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 3, (int)rd->kind);
		sqlite3_bind_int(st, 4, rd->flagged ? 1 : 0);
		sqlite3_bind_text(st, 5, rd->factory, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 6, rd->created ? rd->created :
		    (int64_t)time(NULL));
		rc = sqlite3_step(st);
	}
	if (rc == SQLITE_CONSTRAINT) {
		/* certno used by another serial */
		r = ml_errf(ML_ERR_EXISTS, "registry: reader %s: certificate "
		    "number %s is another reader's", rd->serial, rd->certno);
	} else {
		r = rc == SQLITE_DONE ? 0 : db_fail(s->db, "reader enrolment");
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int
sq_reader_flag(struct reg *r, const char *serial, bool flagged)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_ERROR, changes = 0, ret;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "UPDATE readers SET flagged = ?2 "
	    "WHERE serial = ?1", -1, &st, NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, flagged ? 1 : 0);
		rc = sqlite3_step(st);
		changes = sqlite3_changes(s->db);
	}
	if (rc != SQLITE_DONE) {
		ret = db_fail(s->db, "reader flag");
	} else {
		ret = changes == 1 ? 0 : ML_ERR_NOT_FOUND;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return ret;
}

/* ---------------------------------------------------------------- risk records */

/* One risk record with the persistent statement; caller holds mu. */
static int
event_put_locked(struct reg_sqlite *s, const char *serial, enum reg_event ev,
    const char *detail, int64_t at)
{
	int rc, r;

	sqlite3_bind_text(s->ev_put, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_int(s->ev_put, 2, (int)ev);
	sqlite3_bind_int64(s->ev_put, 3, at != 0 ? at : (int64_t)time(NULL));
	sqlite3_bind_text(s->ev_put, 4, detail != NULL ? detail : "", -1,
	    SQLITE_STATIC);
	rc = sqlite3_step(s->ev_put);
	r = rc == SQLITE_DONE ? 0 : db_fail(s->db, "risk record");
	done(s->ev_put);
	return r;
}

static int
sq_event_add(struct reg *r, const char *serial, enum reg_event ev,
    const char *detail)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	int ret;

	pthread_mutex_lock(&s->mu);
	ret = event_put_locked(s, serial, ev, detail, 0);
	pthread_mutex_unlock(&s->mu);
	return ret;
}

static int
sq_event_count(struct reg *r, const char *serial, enum reg_event ev,
    uint64_t *ret_n)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	sqlite3_stmt *st = NULL;
	int rc = SQLITE_ERROR;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "SELECT count(*) FROM reader_events "
	    "WHERE serial = ?1 AND (?2 = 0 OR kind = ?2)", -1, &st,
	    NULL) == SQLITE_OK) {
		sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, (int)ev);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW) {
			*ret_n = (uint64_t)sqlite3_column_int64(st, 0);
		}
	}
	rc = rc == SQLITE_ROW ? 0 : db_err(s->db, "risk record count");
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int
sq_event_add_many(struct reg *r, const struct reg_event_rec *evs, size_t n)
{
	struct reg_sqlite *s = (struct reg_sqlite *)r;
	size_t i;
	int ret;

	if (n == 0) {
		return 0;
	}
	pthread_mutex_lock(&s->mu);
	if ((ret = db_exec(s->db, "BEGIN IMMEDIATE")) != 0) {
		goto out;
	}
	for (i = 0; i < n; i++) {
		if ((ret = event_put_locked(s, evs[i].serial, evs[i].ev,
		    evs[i].detail, evs[i].at)) != 0) {
			db_rollback(s->db);
			goto out;
		}
	}
	if ((ret = db_exec(s->db, "COMMIT")) != 0) {
		db_rollback(s->db);
		goto out;
	}
out:
	pthread_mutex_unlock(&s->mu);
	return ret;
}

/* ---------------------------------------------------------------- chips */

/* Look up a chip key with st (enrol_get on db); caller holds its lock. */
static int
chip_pub_q(sqlite3 *db, sqlite3_stmt *st, const char *serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	int rc, r;

	sqlite3_bind_text(st, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW &&
	    sqlite3_column_bytes(st, 0) == ML_P256_PUB_LEN) {
		memcpy(ret_pub, sqlite3_column_blob(st, 0), ML_P256_PUB_LEN);
		r = 0;
	} else {
		r = rc == SQLITE_DONE ? ML_ERR_NOT_FOUND :
		    db_err(db, "chip lookup");
	}
	done(st);
	return r;
}

/* Look up a chip key; caller holds mu. */
static int
chip_pub_locked(struct reg_sqlite *s, const char *serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	return chip_pub_q(s->db, s->enrol_get, serial, ret_pub);
}

static int
sq_note_enrol(struct reg *rg, const char *serial,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	uint8_t have[ML_P256_PUB_LEN];
	int r;

	pthread_mutex_lock(&s->mu);
	r = chip_pub_locked(s, serial, have);
	if (r == 0) {
		r = memcmp(have, pub, ML_P256_PUB_LEN) == 0 ? 1 : ML_ERR_EXISTS;
		goto out;
	}
	if (r != ML_ERR_NOT_FOUND) {
		goto out;
	}
	sqlite3_bind_text(s->enrol_put, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s->enrol_put, 2, pub, ML_P256_PUB_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(s->enrol_put, 3, (sqlite3_int64)time(NULL));
	r = sqlite3_step(s->enrol_put) == SQLITE_DONE ? 0 :
	    db_fail(s->db, "enrolment");
	done(s->enrol_put);
out:
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int
sq_note_chip_pub(struct reg *rg, const char *serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	int r;

	if (s->rdb != NULL) {
		pthread_mutex_lock(&s->rmu);
		r = chip_pub_q(s->rdb, s->r_enrol_get, serial, ret_pub);
		pthread_mutex_unlock(&s->rmu);
		return r;
	}
	pthread_mutex_lock(&s->mu);
	r = chip_pub_locked(s, serial, ret_pub);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* ---------------------------------------------------------------- notes */

/* Look up a note with st (note_by_id on db); caller holds its lock. */
static int
lookup_q(sqlite3 *db, sqlite3_stmt *st, const char *note_id,
    struct note_row *ret)
{
	int rc, r;
	size_t n;

	sqlite3_bind_text(st, 1, note_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *cs = sqlite3_column_text(st, 1);

		n = (size_t)sqlite3_column_bytes(st, 2);
		memset(ret, 0, sizeof(*ret));
		ret->reg_id = (uint64_t)sqlite3_column_int64(st, 0);
		snprintf(ret->chip_serial, sizeof(ret->chip_serial), "%s",
		    cs != NULL ? (const char *)cs : "");
		if (n > sizeof(ret->feature)) {
			n = sizeof(ret->feature);
		}
		if (n > 0) {
			memcpy(ret->feature, sqlite3_column_blob(st, 2), n);
		}
		ret->feature_len = n;
		r = 0;
	} else {
		r = rc == SQLITE_DONE ? ML_ERR_NOT_FOUND :
		    db_err(db, "note lookup");
	}
	done(st);
	return r;
}

/* Look up a note; caller holds mu. */
static int
lookup_locked(struct reg_sqlite *s, const char *note_id, struct note_row *ret)
{
	return lookup_q(s->db, s->note_by_id, note_id, ret);
}

static int
sq_note_lookup(struct reg *rg, const char *note_id, struct note_row *ret)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	int r;

	if (s->rdb != NULL) {
		pthread_mutex_lock(&s->rmu);
		r = lookup_q(s->rdb, s->r_note_by_id, note_id, ret);
		pthread_mutex_unlock(&s->rmu);
		return r;
	}
	pthread_mutex_lock(&s->mu);
	r = lookup_locked(s, note_id, ret);
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int
flag_locked(struct reg_sqlite *s, const char *note_id, const char *chip,
    const char *reason)
{
	int r;

	sqlite3_bind_text(s->flag_put, 1, note_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->flag_put, 2, chip, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->flag_put, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->flag_put, 4, (sqlite3_int64)time(NULL));
	r = sqlite3_step(s->flag_put) == SQLITE_DONE ? 0 :
	    db_fail(s->db, "flag");
	done(s->flag_put);
	return r;
}

static int audit_put_locked(struct reg_sqlite *s, struct reg_audit *a);

/*
 * The uploader's audit row and, for a new note, its transaction risk
 * record (OP-5, ID-3), in the registration's transaction: no fsync of
 * their own.  Returns result, or the ML_ERR_* that undoes the
 * registration with them.
 */
static int
register_audit(struct reg_sqlite *s, const struct note_reg *nr, int result)
{
	struct reg_audit a;
	char detail[REG_MAX_DETAIL + 1];
	int r;

	if (nr->audit == NULL) {
		return result;
	}
	a = *nr->audit;
	snprintf(a.outcome, sizeof(a.outcome), "%s",
	    result == REG_NOTE_NEW ? "ok" : "again");
	if ((r = audit_put_locked(s, &a)) != 0) {
		return r;
	}
	if (result == REG_NOTE_NEW) {
		snprintf(detail, sizeof(detail), "note %s registered",
		    nr->note_id);
		if ((r = event_put_locked(s, a.actor, REG_EV_TRANSACTION,
		    detail, a.at)) != 0) {
			return r;
		}
	}
	return result;
}

/*
 * A serial's promise to one chip (OP-3), taken or dropped,
 * in the group's transaction: a pre-check shares the fsync of the
 * registrations running at the same time instead of committing alone
 * under the connection's lock (BN-7 at scale: with many line positions
 * the lone commits serialised every request).
 */
struct sq_resv {
	const char	*note_id, *chip, *station;
	int64_t		 now, until;
	bool		 take;		/* false: drop the promise */
};

/* One promise taken or dropped inside the open transaction; caller holds
 * mu.  0, ML_ERR_EXISTS (another chip's promise kept) or ML_ERR_*. */
static int
resv_one(struct reg_sqlite *s, const struct sq_resv *v)
{
	int r;

	if (!v->take) {
		sqlite3_bind_text(s->resv_del, 1, v->note_id, -1, SQLITE_STATIC);
		sqlite3_bind_int64(s->resv_del, 2, (sqlite3_int64)v->now);
		r = sqlite3_step(s->resv_del) == SQLITE_DONE ? 0 :
		    db_fail(s->db, "serial reservation");
		done(s->resv_del);
		return r;
	}
	sqlite3_bind_text(s->resv_put, 1, v->note_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->resv_put, 2, v->chip, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->resv_put, 3, v->station, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s->resv_put, 4, (sqlite3_int64)v->until);
	sqlite3_bind_int64(s->resv_put, 5, (sqlite3_int64)v->now);
	if (sqlite3_step(s->resv_put) == SQLITE_DONE) {
		/* no row changed: the conflict's WHERE kept another chip's */
		r = sqlite3_changes(s->db) == 1 ? 0 : ML_ERR_EXISTS;
	} else {
		r = db_fail(s->db, "serial reservation");
	}
	done(s->resv_put);
	return r;
}

/*
 * A registered note needs no promise: dropped in the registration's
 * transaction, so that the caller's drop afterwards (reg_notes_unreserve)
 * finds nothing to write.  A failure only leaves a promise that runs out
 * by itself.
 */
static void
drop_promise(struct reg_sqlite *s, const char *note_id)
{
	struct sq_resv v = { .note_id = note_id, .now = (int64_t)time(NULL) };

	(void)resv_one(s, &v);
}

/* One registration inside the open transaction; caller holds mu. */
static int
register_one(struct reg_sqlite *s, const struct note_reg *nr,
    uint64_t *ret_reg_id)
{
	struct note_row row;
	uint8_t pub[ML_P256_PUB_LEN];
	int rc, r;

	r = lookup_locked(s, nr->note_id, &row);
	if (r == 0) {
		if (strcmp(row.chip_serial, nr->chip_serial) == 0 &&
		    row.feature_len == nr->feature_len &&
		    memcmp(row.feature, nr->feature, nr->feature_len) == 0) {
			*ret_reg_id = row.reg_id;
			drop_promise(s, nr->note_id);
			return register_audit(s, nr, REG_NOTE_AGAIN);
		}
		/* One serial, two chips: flag both (BN-8). */
		if ((r = flag_locked(s, nr->note_id, row.chip_serial,
		    "serial presented by two chips")) != 0 ||
		    (r = flag_locked(s, nr->note_id, nr->chip_serial,
		    "serial presented by two chips")) != 0) {
			return r;
		}
		return REG_NOTE_DUP_SERIAL;
	}
	if (r != ML_ERR_NOT_FOUND) {
		return r;
	}
	sqlite3_bind_text(s->note_by_chip, 1, nr->chip_serial, -1,
	    SQLITE_STATIC);
	rc = sqlite3_step(s->note_by_chip);
	done(s->note_by_chip);
	if (rc == SQLITE_ROW) {
		return REG_NOTE_CHIP_USED;
	}
	if ((r = chip_pub_locked(s, nr->chip_serial, pub)) != 0) {
		return r == ML_ERR_NOT_FOUND ? REG_NOTE_UNKNOWN_CHIP : r;
	}
	sqlite3_bind_text(s->note_put, 1, nr->note_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s->note_put, 2, nr->chip_serial, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s->note_put, 3, nr->feature, (int)nr->feature_len,
	    SQLITE_STATIC);
	sqlite3_bind_blob(s->note_put, 4, nr->challenge, sizeof(nr->challenge),
	    SQLITE_STATIC);
	sqlite3_bind_blob(s->note_put, 5, nr->station_sig,
	    sizeof(nr->station_sig), SQLITE_STATIC);
	sqlite3_bind_blob(s->note_put, 6, nr->issuer_pub, sizeof(nr->issuer_pub),
	    SQLITE_STATIC);
	sqlite3_bind_int64(s->note_put, 7, (sqlite3_int64)time(NULL));
	if ((rc = sqlite3_step(s->note_put)) != SQLITE_DONE) {
		r = db_fail(s->db, "registration");
		done(s->note_put);
		return r;
	}
	done(s->note_put);
	*ret_reg_id = (uint64_t)sqlite3_last_insert_rowid(s->db);
	drop_promise(s, nr->note_id);
	return register_audit(s, nr, REG_NOTE_NEW);
}

/* A prepared statement without rows (db_exec's work without the
 * parsing); caller holds mu. */
static int
db_step(struct reg_sqlite *s, sqlite3_stmt *st)
{
	int r = sqlite3_step(st) == SQLITE_DONE ? 0 :
	    db_fail(s->db, sqlite3_sql(st));

	sqlite3_reset(st);
	return r;
}

/* The leader: run a group in one transaction and commit it. */
static void
commit_group(struct reg_sqlite *s, struct sq_req *g)
{
	struct sq_req *q;
	int r;

	pthread_mutex_lock(&s->mu);
	r = db_step(s, s->g_begin);
	for (q = g; q != NULL && r == 0; q = q->next) {
		if ((r = db_step(s, s->g_sp)) != 0) {
			break;
		}
		q->r = q->nr != NULL ? register_one(s, q->nr, &q->reg_id) :
		    q->audit != NULL ? audit_put_locked(s, q->audit) :
		    resv_one(s, q->resv);
		if (sqlite3_get_autocommit(s->db)) {
			/* SQLite rolled the whole transaction back itself (a
			 * full disk, an I/O error): nothing to undo, nothing
			 * of the group is durable */
			r = q->r < 0 ? q->r : db_fail(s->db,
			    "registration (rolled back)");
			break;
		}
		if (q->r < 0) {
			(void)db_step(s, s->g_undo);
		}
		(void)db_step(s, s->g_release);
	}
	if (r == 0) {
		r = db_step(s, s->g_commit);
	}
	if (r != 0) {
		db_rollback(s->db);
		for (q = g; q != NULL; q = q->next) {
			q->r = r;	/* nothing of the group is durable */
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/*
 * Queue me and wait until a group holding it is committed: the first
 * waiter leads, the others' requests ride in its transaction (one fsync
 * for all).  me->r is the request's result.
 */
static void
group_run(struct reg_sqlite *s, struct sq_req *me)
{
	struct sq_req *g, *q, *next;

	pthread_mutex_lock(&s->qmu);
	*s->qtail = me;
	s->qtail = &me->next;
	while (!me->done) {
		if (s->committing) {
			pthread_cond_wait(&s->qcv, &s->qmu);
			continue;
		}
		/* Lead: take the whole queue (it includes me). */
		s->committing = true;
		g = s->queue;
		s->queue = NULL;
		s->qtail = &s->queue;
		pthread_mutex_unlock(&s->qmu);
		commit_group(s, g);
		pthread_mutex_lock(&s->qmu);
		for (q = g; q != NULL; q = next) {
			next = q->next;
			q->done = true;	/* q may be gone once done is seen */
		}
		s->committing = false;
		pthread_cond_broadcast(&s->qcv);
	}
	pthread_mutex_unlock(&s->qmu);
}

static int
sq_note_register(struct reg *rg, const struct note_reg *nr,
    uint64_t *ret_reg_id)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	struct sq_req me = { .nr = nr };

	if (nr == NULL || nr->feature_len > NOTE_DB_FEATURE_MAX) {
		return ML_ERR_ARG;
	}
	group_run(s, &me);
	if (me.r == REG_NOTE_NEW || me.r == REG_NOTE_AGAIN) {
		*ret_reg_id = me.reg_id;
	}
	return me.r;
}

static int
sq_note_flag(struct reg *rg, const char *note_id, const char *chip,
    const char *reason)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	int r;

	pthread_mutex_lock(&s->mu);
	r = flag_locked(s, note_id, chip, reason);
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int
sq_note_flagged(struct reg *rg, const char *note_id)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	sqlite3 *db = s->rdb != NULL ? s->rdb : s->db;
	sqlite3_stmt *st = s->rdb != NULL ? s->r_flag_get : s->flag_get;
	pthread_mutex_t *mu = s->rdb != NULL ? &s->rmu : &s->mu;
	int rc;

	pthread_mutex_lock(mu);
	sqlite3_bind_text(st, 1, note_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	rc = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 :
	    db_err(db, "note flag lookup");
	done(st);
	pthread_mutex_unlock(mu);
	return rc;
}

static int
sq_note_count_reject(struct reg *rg, const char *reason)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	int r;

	pthread_mutex_lock(&s->mu);
	sqlite3_bind_text(s->reject_put, 1, reason, -1, SQLITE_STATIC);
	r = sqlite3_step(s->reject_put) == SQLITE_DONE ? 0 :
	    db_fail(s->db, "refusal count");
	done(s->reject_put);
	pthread_mutex_unlock(&s->mu);
	return r;
}

static int
sq_note_count(struct reg *rg, uint64_t *ret_n)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	int r = ML_ERR_IO;

	pthread_mutex_lock(&s->mu);
	if (sqlite3_step(s->count) == SQLITE_ROW) {
		*ret_n = (uint64_t)sqlite3_column_int64(s->count, 0);
		r = 0;
	} else {
		r = db_err(s->db, "note count");
	}
	done(s->count);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* ---------------------------------------------------------------- import */

/* The single integer a query answers; caller holds mu. */
static int
query_int(sqlite3 *db, const char *sql, int64_t *ret)
{
	sqlite3_stmt *st = NULL;
	int r = ML_ERR_IO;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*ret = sqlite3_column_int64(st, 0);
		r = 0;
	} else {
		r = db_fail(db, sql);
	}
	sqlite3_finalize(st);
	return r;
}

/*
 * The older server kept notes in a file of their own (the same four
 * tables, created by the same SQL as migration 2).  Copy them with their
 * ids and times into the empty note tables, in one transaction: all or
 * nothing.  The old file is attached read-only and never written.
 */
static int
sq_note_import(struct reg *rg, const char *path,
    struct reg_import_counts *ret)
{
	static const char *const tables[] = {
		"note_chip", "note", "note_flag", "note_reject",
	};
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	struct reg_import_counts c;
	char *sql = NULL, *uri = NULL;
	int64_t n = 0, *cnt[4] = { NULL };
	size_t i;
	bool attached = false, began = false;
	int r = ML_ERR_INTERNAL;

	memset(&c, 0, sizeof(c));
	cnt[0] = (int64_t *)&c.chips;
	cnt[1] = (int64_t *)&c.notes;
	cnt[2] = (int64_t *)&c.flags;
	cnt[3] = (int64_t *)&c.rejects;
	if (access(path, R_OK) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "registry: import %s", path);
		ml_err("%s", ml_errmsg(r));
		return r;
	}
	pthread_mutex_lock(&s->mu);
	ML_ENSURE((uri = sqlite3_mprintf("file:%s?mode=ro", path)) != NULL &&
	    (sql = sqlite3_mprintf("ATTACH DATABASE %Q AS old", uri)) != NULL,
	    ML_ERR_NOMEM);
	ML_TRY(db_exec(s->db, sql));
	attached = true;
	for (i = 0; i < ML_NELEM(tables); i++) {
		sqlite3_free(sql);
		ML_ENSURE((sql = sqlite3_mprintf("SELECT count(*) FROM "
		    "old.sqlite_schema WHERE type = 'table' AND name = %Q",
		    tables[i])) != NULL, ML_ERR_NOMEM);
		ML_TRY(query_int(s->db, sql, &n));
		if (n != 1) {
			ml_err("registry: import %s: not a note database (no "
			    "table %s)", path, tables[i]);
			r = ML_ERR_FORMAT;
			goto out;
		}
	}
	ML_TRY(db_exec(s->db, "BEGIN IMMEDIATE"));
	began = true;
	ML_TRY(query_int(s->db, "SELECT (SELECT count(*) FROM main.note_chip) "
	    "+ (SELECT count(*) FROM main.note)", &n));
	if (n != 0) {
		ml_err("registry: import %s: the registry already holds %lld "
		    "chip(s) or note(s); import only into an empty note "
		    "registry", path, (long long)n);
		r = ML_ERR_EXISTS;
		goto out;
	}
	for (i = 0; i < ML_NELEM(tables); i++) {
		sqlite3_free(sql);
		/* refusals counted before the import add up */
		ML_ENSURE((sql = sqlite3_mprintf("INSERT %s INTO main.%s "
		    "SELECT * FROM old.%s WHERE true %s",
		    i == 2 ? "OR IGNORE" : "", tables[i], tables[i],
		    i == 3 ? "ON CONFLICT (reason) DO UPDATE SET "
		    "count = count + excluded.count" : "")) != NULL,
		    ML_ERR_NOMEM);
		ML_TRY(db_exec(s->db, sql));
		*cnt[i] = (int64_t)sqlite3_changes(s->db);
	}
	ML_TRY(db_exec(s->db, "COMMIT"));
	began = false;
	*ret = c;
	r = 0;
out:
	if (began) {
		db_rollback(s->db);
	}
	if (attached) {
		(void)!db_exec(s->db, "DETACH DATABASE old");
	}
	pthread_mutex_unlock(&s->mu);
	sqlite3_free(sql);
	sqlite3_free(uri);
	return r;
}

/* ---------------------------------------------------------------- audit */

/*
 * Append one row inside the open write transaction (BEGIN IMMEDIATE holds
 * the file's write lock, so the chain has one successor per row even with
 * several processes on the file); caller holds mu.  a gets id, prev_hash
 * and hash.
 */
static int
audit_put_locked(struct reg_sqlite *s, struct reg_audit *a)
{
	sqlite3_stmt *st = s->audit_last;
	int rc, r = ML_ERR_INTERNAL;

	if (a->at == 0) {
		a->at = (int64_t)time(NULL);
	}
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_bytes(st, 1) == ML_SHA256_LEN) {
		a->id = sqlite3_column_int64(st, 0) + 1;
		memcpy(a->prev_hash, sqlite3_column_blob(st, 1), ML_SHA256_LEN);
	} else if (rc == SQLITE_DONE) {
		a->id = 1;
		memset(a->prev_hash, 0, sizeof(a->prev_hash));
	} else {
		r = db_fail(s->db, "audit");
		done(st);
		return r;
	}
	done(st);
	if ((r = reg_audit_hash(a, a->hash)) != 0) {
		return r;
	}
	st = s->audit_put;
	sqlite3_bind_int64(st, 1, a->id);
	sqlite3_bind_int64(st, 2, a->at);
	sqlite3_bind_text(st, 3, a->action, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, a->actor, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 5, a->actor_certno, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 6, a->subject_kind, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, a->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 8, a->outcome, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 9, a->detail, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 10, a->prev_hash, ML_SHA256_LEN, SQLITE_STATIC);
	sqlite3_bind_blob(st, 11, a->hash, ML_SHA256_LEN, SQLITE_STATIC);
	r = sqlite3_step(st) == SQLITE_DONE ? 0 : db_fail(s->db, "audit");
	done(st);
	return r;
}

/*
 * One row through the group commit: concurrent appends (desk checks,
 * refusals, ID reads on several workers) and registrations share one
 * transaction and one fsync.
 */
static int
sq_audit_append(struct reg *rg, struct reg_audit *io)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	struct reg_audit a = *io;
	struct sq_req me = { .audit = &a };

	group_run(s, &me);
	if (me.r == 0) {
		*io = a;
	}
	return me.r;
}

/* Copy column i (text) into a fixed field; over-long text is cut there and
 * then fails the hash check, as a changed row should. */
static void
col_copy(sqlite3_stmt *st, int i, char *buf, size_t cap)
{
	const unsigned char *t = sqlite3_column_text(st, i);

	snprintf(buf, cap, "%s", t != NULL ? (const char *)t : "");
}

static int
sq_audit_list(struct reg *rg, const struct reg_audit_filter *f,
    reg_audit_fn fn, void *ctx)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	struct reg_audit a;
	sqlite3_stmt *st = NULL;
	int rc, r = ML_ERR_INTERNAL;

	/* fn runs under the connection mutex: it must not call the registry */
	pthread_mutex_lock(&s->mu);
	if (sqlite3_prepare_v2(s->db, "SELECT id, at, action, actor, "
	    "actor_certno, subject_kind, subject, outcome, detail, prev_hash, "
	    "hash FROM audit WHERE (?1 = '' OR subject_kind = ?1) AND "
	    "(?2 = '' OR subject = ?2) AND (?3 = '' OR actor = ?3) AND "
	    "at >= ?4 AND (?5 = 0 OR at <= ?5) AND id > ?6 ORDER BY id "
	    "LIMIT ?7", -1, &st, NULL) != SQLITE_OK) {
		r = db_fail(s->db, "audit");
		goto out;
	}
	sqlite3_bind_text(st, 1, f->subject_kind ? f->subject_kind : "", -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(st, 2, f->subject ? f->subject : "", -1,
	    SQLITE_STATIC);
	sqlite3_bind_text(st, 3, f->actor ? f->actor : "", -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, f->since);
	sqlite3_bind_int64(st, 5, f->until);
	sqlite3_bind_int64(st, 6, f->after_id);
	sqlite3_bind_int64(st, 7, f->limit != 0 ? (int64_t)f->limit : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		memset(&a, 0, sizeof(a));
		a.id = sqlite3_column_int64(st, 0);
		a.at = sqlite3_column_int64(st, 1);
		col_copy(st, 2, a.action, sizeof(a.action));
		col_copy(st, 3, a.actor, sizeof(a.actor));
		col_copy(st, 4, a.actor_certno, sizeof(a.actor_certno));
		col_copy(st, 5, a.subject_kind, sizeof(a.subject_kind));
		col_copy(st, 6, a.subject, sizeof(a.subject));
		col_copy(st, 7, a.outcome, sizeof(a.outcome));
		col_copy(st, 8, a.detail, sizeof(a.detail));
		if (sqlite3_column_bytes(st, 9) == ML_SHA256_LEN) {
			memcpy(a.prev_hash, sqlite3_column_blob(st, 9),
			    ML_SHA256_LEN);
		}
		if (sqlite3_column_bytes(st, 10) == ML_SHA256_LEN) {
			memcpy(a.hash, sqlite3_column_blob(st, 10),
			    ML_SHA256_LEN);
		}
		if ((r = fn(ctx, &a)) != 0) {
			goto out;
		}
	}
	ML_ENSURE(rc == SQLITE_DONE, db_fail(s->db, "audit"));
	r = 0;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* ---------------------------------------------------------------- reservations */

static int
sq_note_reserve(struct reg *rg, const char *note_id, const char *chip,
    const char *station, int64_t now, int64_t until)
{
	struct sq_resv v = { .note_id = note_id, .chip = chip,
	    .station = station, .now = now, .until = until, .take = true };
	struct sq_req me = { .resv = &v };

	group_run((struct reg_sqlite *)rg, &me);
	return me.r;
}

static int
sq_note_unreserve(struct reg *rg, const char *note_id, int64_t now)
{
	struct reg_sqlite *s = (struct reg_sqlite *)rg;
	struct sq_resv v = { .note_id = note_id, .now = now };
	struct sq_req me = { .resv = &v };
	int rc;

	/* nothing promised (a registration dropped it): nothing to commit */
	pthread_mutex_lock(&s->mu);
	sqlite3_bind_text(s->resv_get, 1, note_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(s->resv_get);
	done(s->resv_get);
	pthread_mutex_unlock(&s->mu);
	if (rc == SQLITE_DONE) {
		return 0;
	}
	group_run(s, &me);
	return me.r;
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
	.note_enrol = sq_note_enrol,
	.note_chip_pub = sq_note_chip_pub,
	.note_register = sq_note_register,
	.note_lookup = sq_note_lookup,
	.note_flag = sq_note_flag,
	.note_flagged = sq_note_flagged,
	.note_count_reject = sq_note_count_reject,
	.note_count = sq_note_count,
	.note_import = sq_note_import,
	.note_reserve = sq_note_reserve,
	.note_unreserve = sq_note_unreserve,
	.audit_append = sq_audit_append,
	.audit_list = sq_audit_list,
	.schema_version = sq_schema_version,
};

/* Lookups prepared on both connections (the read one: open_read_side). */
#define SQL_ENROL_GET	"SELECT chip_pub FROM note_chip WHERE chip_serial = ?"
#define SQL_NOTE_BY_ID	"SELECT reg_id, chip_serial, feature FROM note " \
			"WHERE note_id = ?"
#define SQL_FLAG_GET	"SELECT 1 FROM note_flag WHERE note_id = ? LIMIT 1"

/* The persistent statements of the hot paths. */
static int
prepare_all(struct reg_sqlite *s)
{
	int r = ML_ERR_INTERNAL;

	ML_TRY(prep(s->db, SQL_ENROL_GET, &s->enrol_get));
	ML_TRY(prep(s->db, "INSERT INTO note_chip (chip_serial, chip_pub, "
	    "enrolled_at) VALUES (?, ?, ?)", &s->enrol_put));
	ML_TRY(prep(s->db, SQL_NOTE_BY_ID, &s->note_by_id));
	ML_TRY(prep(s->db, "SELECT reg_id FROM note WHERE chip_serial = ?",
	    &s->note_by_chip));
	ML_TRY(prep(s->db, "INSERT INTO note (note_id, chip_serial, feature, "
	    "challenge, station_sig, issuer_pub, registered_at) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?)", &s->note_put));
	ML_TRY(prep(s->db, "INSERT OR IGNORE INTO note_flag (note_id, "
	    "chip_serial, reason, at) VALUES (?, ?, ?, ?)", &s->flag_put));
	ML_TRY(prep(s->db, SQL_FLAG_GET, &s->flag_get));
	ML_TRY(prep(s->db, "INSERT INTO note_reject (reason, count) VALUES "
	    "(?, 1) ON CONFLICT (reason) DO UPDATE SET count = count + 1",
	    &s->reject_put));
	ML_TRY(prep(s->db, "SELECT count(*) FROM note", &s->count));
	ML_TRY(prep(s->db, "INSERT INTO reader_events (serial, kind, at, "
	    "detail) VALUES (?1, ?2, ?3, ?4)", &s->ev_put));
	ML_TRY(prep(s->db, "SELECT id, hash FROM audit ORDER BY id DESC "
	    "LIMIT 1", &s->audit_last));
	ML_TRY(prep(s->db, "INSERT INTO audit (id, at, action, actor, "
	    "actor_certno, subject_kind, subject, outcome, detail, prev_hash, "
	    "hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", &s->audit_put));
	ML_TRY(prep(s->db, RESV_PUT_SQL("?1", "?2", "?3", "?4", "?5"),
	    &s->resv_put));
	ML_TRY(prep(s->db, "DELETE FROM note_reservation WHERE note_id = ?1 "
	    "OR expires <= ?2", &s->resv_del));
	ML_TRY(prep(s->db, "SELECT 1 FROM note_reservation WHERE note_id = ?1",
	    &s->resv_get));
	ML_TRY(prep(s->db, "BEGIN IMMEDIATE", &s->g_begin));
	ML_TRY(prep(s->db, "COMMIT", &s->g_commit));
	ML_TRY(prep(s->db, "SAVEPOINT one", &s->g_sp));
	ML_TRY(prep(s->db, "RELEASE one", &s->g_release));
	ML_TRY(prep(s->db, "ROLLBACK TO one", &s->g_undo));
	r = 0;
out:
	return r;
}

/* The read connection (see struct reg_sqlite), after the schema is in
 * place; none for an in-memory registry, which a second connection
 * would not see. */
static int
open_read_side(struct reg_sqlite *s, const char *path)
{
	int r = ML_ERR_INTERNAL;

	if (strcmp(path, ":memory:") == 0 || strstr(path, "mode=memory") !=
	    NULL || strncmp(path, "file::memory:", 13) == 0) {
		return 0;
	}
	if (sqlite3_open_v2(path, &s->rdb, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
		r = ml_errf(ML_ERR_IO, "%s: read connection: %s", path,
		    s->rdb ? sqlite3_errmsg(s->rdb) : "out of memory");
		goto out;
	}
	sqlite3_busy_timeout(s->rdb, 10000);
	ML_TRY(prep(s->rdb, SQL_ENROL_GET, &s->r_enrol_get));
	ML_TRY(prep(s->rdb, SQL_NOTE_BY_ID, &s->r_note_by_id));
	ML_TRY(prep(s->rdb, SQL_FLAG_GET, &s->r_flag_get));
	r = 0;
out:
	return r;
}

int
reg_sqlite_open(const char *path, struct reg **ret_reg)
{
	struct reg_sqlite *s = NULL;
	int i, r = ML_ERR_INTERNAL;

	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	s->base.ops = &reg_sqlite_ops;
	pthread_mutex_init(&s->mu, NULL);
	pthread_mutex_init(&s->rmu, NULL);
	pthread_mutex_init(&s->qmu, NULL);
	pthread_cond_init(&s->qcv, NULL);
	s->qtail = &s->queue;
	/* URI names allowed: the import attaches "file:PATH?mode=ro" */
	if (sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_URI,
	    NULL) != SQLITE_OK) {
		/* sqlite3's text, and the system's (errno) behind it */
		r = ml_errf(ML_ERR_IO, "%s: %s%s%s", path,
		    s->db ? sqlite3_errmsg(s->db) : "out of memory",
		    s->db && sqlite3_system_errno(s->db) ? ": " : "",
		    s->db && sqlite3_system_errno(s->db) ?
		    strerror(sqlite3_system_errno(s->db)) : "");
		goto out;
	}
	sqlite3_busy_timeout(s->db, 10000);
	/*
	 * Switching a new file to WAL takes an exclusive lock and does not
	 * wait on the busy handler: when several processes create the
	 * registry at once, retry for a while.
	 */
	for (i = 0; (r = sqlite3_exec(s->db, "PRAGMA journal_mode = WAL", NULL,
	    NULL, NULL)) == SQLITE_BUSY && i < 100; i++) {
		usleep(20000);
	}
	if (r != SQLITE_OK) {
		r = db_fail(s->db, "journal_mode = WAL");
		goto out;
	}
	ML_TRY(db_exec(s->db, "PRAGMA synchronous = FULL"));
	ML_TRY(db_exec(s->db, "PRAGMA foreign_keys = ON"));
	ML_TRY(migrate(s->db, path));
	ML_TRY(prepare_all(s));
	ML_TRY(open_read_side(s, path));
	*ret_reg = &s->base;
	s = NULL;
	r = 0;
out:
	if (s != NULL) {
		sq_close(&s->base);
	}
	return r;
}
