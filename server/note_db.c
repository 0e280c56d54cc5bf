/*
 * The note registry in SQLite (see note_db.h).
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "ml_log.h"
#include "note_db.h"
#include "note_proto.h"

/* Append to the registry's migrations list as one step. */
#define NOTE_DB_SCHEMA							\
	"CREATE TABLE IF NOT EXISTS note_chip ("			\
	" chip_serial TEXT PRIMARY KEY,"				\
	" chip_pub BLOB NOT NULL CHECK (length(chip_pub) = 65),"	\
	" enrolled_at INTEGER NOT NULL);"				\
	"CREATE TABLE IF NOT EXISTS note ("				\
	" reg_id INTEGER PRIMARY KEY,"					\
	" note_id TEXT NOT NULL UNIQUE,"				\
	" chip_serial TEXT NOT NULL UNIQUE REFERENCES note_chip,"	\
	" feature BLOB NOT NULL,"					\
	" challenge BLOB NOT NULL,"					\
	" station_sig BLOB NOT NULL,"					\
	" issuer_pub BLOB NOT NULL,"					\
	" registered_at INTEGER NOT NULL);"				\
	"CREATE TABLE IF NOT EXISTS note_flag ("			\
	" note_id TEXT NOT NULL,"					\
	" chip_serial TEXT NOT NULL,"					\
	" reason TEXT NOT NULL,"					\
	" at INTEGER NOT NULL,"						\
	" PRIMARY KEY (note_id, chip_serial));"				\
	"CREATE TABLE IF NOT EXISTS note_reject ("			\
	" reason TEXT PRIMARY KEY,"					\
	" count INTEGER NOT NULL);"

/*
 * Group commit: registrations waiting for the disk.  The first thread to
 * find no commit running becomes the leader: it takes every waiting
 * request, runs them in one transaction (each as it would alone: a later
 * one sees the earlier ones' inserts) and commits once (one fsync), then
 * wakes the others.  Nothing is acknowledged before its commit; a failed
 * commit fails every request of the group.
 */
struct reg_req {
	const struct note_reg	*nr;
	uint64_t		 reg_id;
	int			 r;
	bool			 done;
	struct reg_req		*next;
};

struct note_db {
	pthread_mutex_t	 mu;		/* the connection */
	pthread_mutex_t	 qmu;		/* the group-commit queue */
	pthread_cond_t	 qcv;
	struct reg_req	*queue, **qtail;
	bool		 committing;
	sqlite3		*db;
	sqlite3_stmt	*enrol_get, *enrol_put, *note_by_id, *note_by_chip,
			*note_put, *flag_put, *flag_get, *reject_put, *count;
	const struct note_db_ops *ops;	/* another back-end (PostgreSQL) */
	void		*ctx;
};

/* Forward to the other back-end when there is one. */
#define NOTE_DB_OPS(d, op, ...) do {					\
	if ((d)->ops != NULL) {						\
		return (d)->ops->op((d)->ctx, __VA_ARGS__);		\
	}								\
} while (0)

static int
prep(sqlite3 *db, const char *sql, sqlite3_stmt **ret)
{
	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, ret,
	    NULL) != SQLITE_OK) {
		ml_err("registry: prepare: %s", sqlite3_errmsg(db));
		return ML_ERR_IO;
	}
	return 0;
}

/*
 * A failed statement: one log line, and the error.  A full disk is
 * ML_ERR_DISK_FULL, not ML_ERR_IO, so that the station can say the server
 * answered and why (docs/operations.md, "Disk full").
 */
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
exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 :
	    db_fail(db, sql);
}

int
note_db_open(const char *path, struct note_db **ret)
{
	struct note_db *d = NULL;
	int r;

	ML_ENSURE((d = calloc(1, sizeof(*d))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->qmu, NULL);
	pthread_cond_init(&d->qcv, NULL);
	d->qtail = &d->queue;
	if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
		ml_err("registry %s: %s", path, d->db ? sqlite3_errmsg(d->db) :
		    "cannot open");
		r = ML_ERR_IO;
		goto out;
	}
	sqlite3_busy_timeout(d->db, 10000);
	ML_TRY(exec(d->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "PRAGMA foreign_keys=ON;"));
	ML_TRY(exec(d->db, NOTE_DB_SCHEMA));
	ML_TRY(prep(d->db, "SELECT chip_pub FROM note_chip WHERE chip_serial=?",
	    &d->enrol_get));
	ML_TRY(prep(d->db, "INSERT INTO note_chip VALUES (?, ?, ?)",
	    &d->enrol_put));
	ML_TRY(prep(d->db, "SELECT reg_id, chip_serial, feature FROM note "
	    "WHERE note_id=?", &d->note_by_id));
	ML_TRY(prep(d->db, "SELECT reg_id FROM note WHERE chip_serial=?",
	    &d->note_by_chip));
	ML_TRY(prep(d->db, "INSERT INTO note (note_id, chip_serial, feature, "
	    "challenge, station_sig, issuer_pub, registered_at) "
	    "VALUES (?, ?, ?, ?, ?, ?, ?)", &d->note_put));
	ML_TRY(prep(d->db, "INSERT OR IGNORE INTO note_flag VALUES (?, ?, ?, ?)",
	    &d->flag_put));
	ML_TRY(prep(d->db, "SELECT 1 FROM note_flag WHERE note_id=? LIMIT 1",
	    &d->flag_get));
	ML_TRY(prep(d->db, "INSERT INTO note_reject VALUES (?, 1) ON CONFLICT "
	    "(reason) DO UPDATE SET count = count + 1", &d->reject_put));
	ML_TRY(prep(d->db, "SELECT count(*) FROM note", &d->count));
	*ret = d;
	d = NULL;
	r = 0;
out:
	note_db_close(d);
	return r;
}

int
note_db_open_ops(const struct note_db_ops *ops, void *ctx,
    struct note_db **ret)
{
	struct note_db *d;

	if (ops == NULL) {
		return ML_ERR_ARG;
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		return ML_ERR_NOMEM;
	}
	pthread_mutex_init(&d->mu, NULL);
	pthread_mutex_init(&d->qmu, NULL);
	pthread_cond_init(&d->qcv, NULL);
	d->qtail = &d->queue;
	d->ops = ops;
	d->ctx = ctx;
	*ret = d;
	return 0;
}

void
note_db_close(struct note_db *d)
{
	if (d == NULL) {
		return;
	}
	sqlite3_finalize(d->enrol_get);
	sqlite3_finalize(d->enrol_put);
	sqlite3_finalize(d->note_by_id);
	sqlite3_finalize(d->note_by_chip);
	sqlite3_finalize(d->note_put);
	sqlite3_finalize(d->flag_put);
	sqlite3_finalize(d->flag_get);
	sqlite3_finalize(d->reject_put);
	sqlite3_finalize(d->count);
	sqlite3_close(d->db);
	pthread_mutex_destroy(&d->mu);
	pthread_mutex_destroy(&d->qmu);
	pthread_cond_destroy(&d->qcv);
	free(d);
}

static void
done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

/* Look up a chip key; caller holds the lock. */
static int
chip_pub_locked(struct note_db *d, const char *serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	int rc, r;

	sqlite3_bind_text(d->enrol_get, 1, serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(d->enrol_get);
	if (rc == SQLITE_ROW &&
	    sqlite3_column_bytes(d->enrol_get, 0) == ML_P256_PUB_LEN) {
		memcpy(ret_pub, sqlite3_column_blob(d->enrol_get, 0),
		    ML_P256_PUB_LEN);
		r = 0;
	} else {
		r = rc == SQLITE_DONE ? ML_ERR_NOT_FOUND : ML_ERR_IO;
	}
	done(d->enrol_get);
	return r;
}

int
note_db_enrol(struct note_db *d, const char *serial,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	uint8_t have[ML_P256_PUB_LEN];
	int r;

	NOTE_DB_OPS(d, enrol, serial, pub);

	pthread_mutex_lock(&d->mu);
	r = chip_pub_locked(d, serial, have);
	if (r == 0) {
		r = memcmp(have, pub, ML_P256_PUB_LEN) == 0 ? 1 : ML_ERR_EXISTS;
		goto out;
	}
	if (r != ML_ERR_NOT_FOUND) {
		goto out;
	}
	sqlite3_bind_text(d->enrol_put, 1, serial, -1, SQLITE_STATIC);
	sqlite3_bind_blob(d->enrol_put, 2, pub, ML_P256_PUB_LEN, SQLITE_STATIC);
	sqlite3_bind_int64(d->enrol_put, 3, (sqlite3_int64)time(NULL));
	r = sqlite3_step(d->enrol_put) == SQLITE_DONE ? 0 :
	    db_fail(d->db, "enrolment");
	done(d->enrol_put);
out:
	pthread_mutex_unlock(&d->mu);
	return r;
}

int
note_db_chip_pub(struct note_db *d, const char *serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	int r;

	NOTE_DB_OPS(d, chip_pub, serial, ret_pub);

	pthread_mutex_lock(&d->mu);
	r = chip_pub_locked(d, serial, ret_pub);
	pthread_mutex_unlock(&d->mu);
	return r;
}

static int
lookup_locked(struct note_db *d, const char *note_id, struct note_row *ret)
{
	int rc, r;
	size_t n;

	sqlite3_bind_text(d->note_by_id, 1, note_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(d->note_by_id);
	if (rc == SQLITE_ROW) {
		const unsigned char *cs = sqlite3_column_text(d->note_by_id, 1);

		n = (size_t)sqlite3_column_bytes(d->note_by_id, 2);
		memset(ret, 0, sizeof(*ret));
		ret->reg_id = (uint64_t)sqlite3_column_int64(d->note_by_id, 0);
		snprintf(ret->chip_serial, sizeof(ret->chip_serial), "%s",
		    cs != NULL ? (const char *)cs : "");
		if (n > sizeof(ret->feature)) {
			n = sizeof(ret->feature);
		}
		memcpy(ret->feature, sqlite3_column_blob(d->note_by_id, 2), n);
		ret->feature_len = n;
		r = 0;
	} else {
		r = rc == SQLITE_DONE ? ML_ERR_NOT_FOUND : ML_ERR_IO;
	}
	done(d->note_by_id);
	return r;
}

int
note_db_lookup(struct note_db *d, const char *note_id, struct note_row *ret)
{
	int r;

	NOTE_DB_OPS(d, lookup, note_id, ret);

	pthread_mutex_lock(&d->mu);
	r = lookup_locked(d, note_id, ret);
	pthread_mutex_unlock(&d->mu);
	return r;
}

static int
flag_locked(struct note_db *d, const char *note_id, const char *chip,
    const char *reason)
{
	int r;

	sqlite3_bind_text(d->flag_put, 1, note_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->flag_put, 2, chip, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->flag_put, 3, reason, -1, SQLITE_STATIC);
	sqlite3_bind_int64(d->flag_put, 4, (sqlite3_int64)time(NULL));
	r = sqlite3_step(d->flag_put) == SQLITE_DONE ? 0 :
	    db_fail(d->db, "flag");
	done(d->flag_put);
	return r;
}

/* One registration inside the open transaction; caller holds mu. */
static int
register_one(struct note_db *d, const struct note_reg *nr, uint64_t *ret_reg_id)
{
	struct note_row row;
	int rc, r;

	r = lookup_locked(d, nr->note_id, &row);
	if (r == 0) {
		if (strcmp(row.chip_serial, nr->chip_serial) == 0 &&
		    row.feature_len == nr->feature_len &&
		    memcmp(row.feature, nr->feature, nr->feature_len) == 0) {
			*ret_reg_id = row.reg_id;
			return 1;
		}
		/* One serial, two chips: flag both (BN-8). */
		if ((r = flag_locked(d, nr->note_id, row.chip_serial,
		    "serial presented by two chips")) != 0 ||
		    (r = flag_locked(d, nr->note_id, nr->chip_serial,
		    "serial presented by two chips")) != 0) {
			return r;
		}
		return 100 + NOTE_R_DUP_SERIAL;
	}
	if (r != ML_ERR_NOT_FOUND) {
		return r;
	}
	sqlite3_bind_text(d->note_by_chip, 1, nr->chip_serial, -1, SQLITE_STATIC);
	rc = sqlite3_step(d->note_by_chip);
	done(d->note_by_chip);
	if (rc == SQLITE_ROW) {
		return 100 + NOTE_R_CHIP_USED;
	}
	sqlite3_bind_text(d->note_put, 1, nr->note_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(d->note_put, 2, nr->chip_serial, -1, SQLITE_STATIC);
	sqlite3_bind_blob(d->note_put, 3, nr->feature, (int)nr->feature_len,
	    SQLITE_STATIC);
	sqlite3_bind_blob(d->note_put, 4, nr->challenge, sizeof(nr->challenge),
	    SQLITE_STATIC);
	sqlite3_bind_blob(d->note_put, 5, nr->station_sig,
	    sizeof(nr->station_sig), SQLITE_STATIC);
	sqlite3_bind_blob(d->note_put, 6, nr->issuer_pub, sizeof(nr->issuer_pub),
	    SQLITE_STATIC);
	sqlite3_bind_int64(d->note_put, 7, (sqlite3_int64)time(NULL));
	if ((rc = sqlite3_step(d->note_put)) != SQLITE_DONE) {
		r = db_fail(d->db, "registration");
		done(d->note_put);
		return r;
	}
	done(d->note_put);
	*ret_reg_id = (uint64_t)sqlite3_last_insert_rowid(d->db);
	return 0;
}

/* The leader: run a group in one transaction and commit it. */
static void
commit_group(struct note_db *d, struct reg_req *g)
{
	struct reg_req *q;
	int r;

	pthread_mutex_lock(&d->mu);
	r = exec(d->db, "BEGIN IMMEDIATE");
	for (q = g; q != NULL && r == 0; q = q->next) {
		if ((r = exec(d->db, "SAVEPOINT one")) != 0) {
			break;
		}
		q->r = register_one(d, q->nr, &q->reg_id);
		if (sqlite3_get_autocommit(d->db)) {
			/* SQLite rolled the whole transaction back itself (a
			 * full disk, an I/O error): nothing to undo, nothing
			 * of the group is durable */
			r = q->r < 0 ? q->r : ML_ERR_IO;
			break;
		}
		if (q->r < 0) {
			(void)exec(d->db, "ROLLBACK TO one");
		}
		(void)exec(d->db, "RELEASE one");
	}
	if (r == 0 && (r = exec(d->db, "COMMIT")) != 0 &&
	    !sqlite3_get_autocommit(d->db)) {
		(void)sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
	}
	if (r != 0) {
		if (!sqlite3_get_autocommit(d->db)) {
			(void)sqlite3_exec(d->db, "ROLLBACK", NULL, NULL, NULL);
		}
		for (q = g; q != NULL; q = q->next) {
			q->r = r;	/* nothing of the group is durable */
		}
	}
	pthread_mutex_unlock(&d->mu);
}

int
note_db_register(struct note_db *d, const struct note_reg *nr,
    uint64_t *ret_reg_id)
{
	struct reg_req me = { .nr = nr }, *g, *q, *next;

	NOTE_DB_OPS(d, register_note, nr, ret_reg_id);

	pthread_mutex_lock(&d->qmu);
	*d->qtail = &me;
	d->qtail = &me.next;
	while (!me.done) {
		if (d->committing) {
			pthread_cond_wait(&d->qcv, &d->qmu);
			continue;
		}
		/* Lead: take the whole queue (it includes me). */
		d->committing = true;
		g = d->queue;
		d->queue = NULL;
		d->qtail = &d->queue;
		pthread_mutex_unlock(&d->qmu);
		commit_group(d, g);
		pthread_mutex_lock(&d->qmu);
		for (q = g; q != NULL; q = next) {
			next = q->next;
			q->done = true;	/* q may be gone once done is seen */
		}
		d->committing = false;
		pthread_cond_broadcast(&d->qcv);
	}
	pthread_mutex_unlock(&d->qmu);
	if (me.r == 0 || me.r == 1) {
		*ret_reg_id = me.reg_id;
	}
	return me.r;
}

int
note_db_flag(struct note_db *d, const char *note_id, const char *chip,
    const char *reason)
{
	int r;

	NOTE_DB_OPS(d, flag, note_id, chip, reason);

	pthread_mutex_lock(&d->mu);
	r = flag_locked(d, note_id, chip, reason);
	pthread_mutex_unlock(&d->mu);
	return r;
}

int
note_db_flagged(struct note_db *d, const char *note_id)
{
	int rc;

	NOTE_DB_OPS(d, flagged, note_id);

	pthread_mutex_lock(&d->mu);
	sqlite3_bind_text(d->flag_get, 1, note_id, -1, SQLITE_STATIC);
	rc = sqlite3_step(d->flag_get);
	done(d->flag_get);
	pthread_mutex_unlock(&d->mu);
	return rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : ML_ERR_IO;
}

int
note_db_count_reject(struct note_db *d, const char *reason)
{
	int r;

	NOTE_DB_OPS(d, count_reject, reason);

	pthread_mutex_lock(&d->mu);
	sqlite3_bind_text(d->reject_put, 1, reason, -1, SQLITE_STATIC);
	r = sqlite3_step(d->reject_put) == SQLITE_DONE ? 0 :
	    db_fail(d->db, "refusal count");
	done(d->reject_put);
	pthread_mutex_unlock(&d->mu);
	return r;
}

int
note_db_count_notes(struct note_db *d, uint64_t *ret_n)
{
	int r = ML_ERR_IO;

	NOTE_DB_OPS(d, count_notes, ret_n);

	pthread_mutex_lock(&d->mu);
	if (sqlite3_step(d->count) == SQLITE_ROW) {
		*ret_n = (uint64_t)sqlite3_column_int64(d->count, 0);
		r = 0;
	}
	done(d->count);
	pthread_mutex_unlock(&d->mu);
	return r;
}
