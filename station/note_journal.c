/*
 * The station's issuance journal (see note_journal.h).
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "ml_log.h"
#include "note_journal.h"

/*
 * Group commit: every write waits in a queue; the first writer to find no
 * commit running leads — it writes the whole queue in one transaction and
 * commits once (one fsync) — then wakes the others.  A write returns only
 * once it is on disk, so "intent before AUTHORIZE" still holds; the
 * positions of the line share the fsync instead of taking turns.
 */
struct jop {
	const char	*note, *chip;	/* chip == NULL: a done() */
	int		 state, reason;
	uint64_t	 reg_id;
	int		 r;
	char		 why[256];	/* r's context, for the writer's thread */
	bool		 done;
	struct jop	*next;
};

struct note_journal {
	int		 lockfd;	/* PATH.lock, flock()ed: one station */
	char		*path;		/* for messages */
	struct jop	*queue, **qtail;
	bool		 committing;
	pthread_cond_t	 cv;
	pthread_mutex_t	 mu;
	sqlite3		*db;
	sqlite3_stmt	*put, *fin;
};

int
note_journal_open(const char *path, struct note_journal **ret)
{
	struct note_journal *j;
	char *msg = NULL, lock[4096];

	if ((j = calloc(1, sizeof(*j))) == NULL) {
		return ML_ERR_NOMEM;
	}
	pthread_mutex_init(&j->mu, NULL);
	pthread_cond_init(&j->cv, NULL);
	j->qtail = &j->queue;
	if ((j->path = strdup(path)) == NULL) {
		note_journal_close(j);
		return ML_ERR_NOMEM;
	}
	/*
	 * Two stations on one journal would each take the other's notes for
	 * new ones: refuse the second (the lock dies with its process).
	 */
	snprintf(lock, sizeof(lock), "%s.lock", path);
	if ((j->lockfd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC,
	    0600)) < 0) {
		(void)ml_errf_sys(ML_ERR_IO, "%s", lock);
		note_journal_close(j);
		return ML_ERR_IO;
	}
	if (flock(j->lockfd, LOCK_EX | LOCK_NB) != 0) {
		(void)ml_errf(ML_ERR_EXISTS, "%s is in use by another station",
		    path);
		note_journal_close(j);
		return ML_ERR_EXISTS;
	}
	if (sqlite3_open_v2(path, &j->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_exec(j->db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;"
	    "CREATE TABLE IF NOT EXISTS issue_journal ("
	    " note_id TEXT PRIMARY KEY, chip_serial TEXT NOT NULL,"
	    " state INTEGER NOT NULL, reg_id INTEGER, reason INTEGER,"
	    " at INTEGER NOT NULL)", NULL, NULL, &msg) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db, "INSERT INTO issue_journal VALUES "
	    "(?, ?, 1, NULL, NULL, ?) ON CONFLICT (note_id) DO UPDATE SET "
	    "chip_serial = excluded.chip_serial, state = 1, at = excluded.at "
	    "WHERE state NOT IN (2, 3)", -1, &j->put, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(j->db, "UPDATE issue_journal SET state = ?, "
	    "reg_id = ?, reason = ?, at = ? WHERE note_id = ?", -1, &j->fin,
	    NULL) != SQLITE_OK) {
		(void)ml_errf(ML_ERR_IO, "%s: %s", path, msg != NULL ? msg :
		    j->db != NULL ? sqlite3_errmsg(j->db) : "out of memory");
		sqlite3_free(msg);
		note_journal_close(j);
		return ML_ERR_IO;
	}
	sqlite3_busy_timeout(j->db, 10000);
	*ret = j;
	return 0;
}

void
note_journal_close(struct note_journal *j)
{
	if (j == NULL) {
		return;
	}
	sqlite3_finalize(j->put);
	sqlite3_finalize(j->fin);
	sqlite3_close(j->db);
	if (j->lockfd > 0) {
		close(j->lockfd);
	}
	pthread_cond_destroy(&j->cv);
	pthread_mutex_destroy(&j->mu);
	free(j->path);
	free(j);
}

int
note_journal_scan(struct note_journal *j, void (*fn)(void *, const char *,
    const char *, int), void *ctx)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (sqlite3_prepare_v2(j->db, "SELECT note_id, chip_serial, state "
	    "FROM issue_journal", -1, &st, NULL) != SQLITE_OK) {
		return ml_errf(ML_ERR_IO, "journal: %s", sqlite3_errmsg(j->db));
	}
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		fn(ctx, (const char *)sqlite3_column_text(st, 0),
		    (const char *)sqlite3_column_text(st, 1),
		    sqlite3_column_int(st, 2));
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : ml_errf(ML_ERR_IO, "journal: %s",
	    sqlite3_errstr(rc));
}

/* Run one queued write inside the open transaction. */
static int
jop_run(struct note_journal *j, struct jop *o)
{
	sqlite3_stmt *st = o->chip != NULL ? j->put : j->fin;
	int rc;

	if (o->chip != NULL) {
		sqlite3_bind_text(st, 1, o->note, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 2, o->chip, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 3, (sqlite3_int64)time(NULL));
	} else {
		sqlite3_bind_int(st, 1, o->state);
		sqlite3_bind_int64(st, 2, (sqlite3_int64)o->reg_id);
		sqlite3_bind_int(st, 3, o->reason);
		sqlite3_bind_int64(st, 4, (sqlite3_int64)time(NULL));
		sqlite3_bind_text(st, 5, o->note, -1, SQLITE_STATIC);
	}
	rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		snprintf(o->why, sizeof(o->why), "journal %s: note %s: %s",
		    j->path, o->note, sqlite3_errmsg(j->db));
		return ML_ERR_IO;
	}
	return 0;
}

/* A failed transaction step: every write of the group gets its cause. */
static void
jop_fail(struct note_journal *j, struct jop *g, const char *step)
{
	struct jop *q;

	for (q = g; q != NULL; q = q->next) {
		q->r = ML_ERR_IO;
		snprintf(q->why, sizeof(q->why), "journal %s: %s: %s", j->path,
		    step, sqlite3_errmsg(j->db));
	}
}

static int
jop_submit(struct note_journal *j, struct jop *me)
{
	struct jop *g, *q, *next;

	pthread_mutex_lock(&j->mu);
	*j->qtail = me;
	j->qtail = &me->next;
	while (!me->done) {
		if (j->committing) {
			pthread_cond_wait(&j->cv, &j->mu);
			continue;
		}
		j->committing = true;
		g = j->queue;
		j->queue = NULL;
		j->qtail = &j->queue;
		pthread_mutex_unlock(&j->mu);
		/* Only the leader touches the connection. */
		if (sqlite3_exec(j->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) !=
		    SQLITE_OK) {
			jop_fail(j, g, "cannot begin a transaction");
		} else {
			for (q = g; q != NULL; q = q->next) {
				q->r = jop_run(j, q);
			}
			if (sqlite3_exec(j->db, "COMMIT", NULL, NULL, NULL) !=
			    SQLITE_OK) {
				jop_fail(j, g, "cannot commit");
				(void)sqlite3_exec(j->db, "ROLLBACK", NULL,
				    NULL, NULL);
			}
		}
		pthread_mutex_lock(&j->mu);
		for (q = g; q != NULL; q = next) {
			next = q->next;
			q->done = true;
		}
		j->committing = false;
		pthread_cond_broadcast(&j->cv);
	}
	pthread_mutex_unlock(&j->mu);
	if (me->r != 0) {
		/* the context is thread-local: record it on the writer's */
		return ml_errf(me->r, "%s", me->why[0] != '\0' ? me->why :
		    "journal: write failed");
	}
	return 0;
}

int
note_journal_intent(struct note_journal *j, const char *note_id,
    const char *chip_serial)
{
	struct jop o = { .note = note_id, .chip = chip_serial };

	return jop_submit(j, &o);
}

int
note_journal_done(struct note_journal *j, const char *note_id, int state,
    uint64_t reg_id, int reason)
{
	struct jop o = { .note = note_id, .state = state, .reg_id = reg_id,
	    .reason = reason };

	return jop_submit(j, &o);
}
