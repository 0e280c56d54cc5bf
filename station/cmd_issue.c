/*
 * mintline-station issue: the mint line's job (BN-1..BN-7).
 *
 * Reads a batch ("PREFIX,SERIAL" lines, station/batch.h), derives each
 * note's feature information (BN-2, note/feature.h) and, for each chip
 * arriving at a line position, on one worker thread per position:
 *
 *   journal INTENT (note, chip)		fsynced before anything is sent
 *   GET CHALLENGE; sign with the issuer key	BN-3, PKCS#11 via libp11
 *   AUTHORIZE WRITE				BN-4: confirm- or reject-write
 *   WRITE FEATURE on confirm			BN-5 (nothing on reject)
 *   GET SEALED					BN-6
 *   upload over the station's channel, wait for the acknowledgement
 *   journal ACKED / REFUSED
 *
 * A re-run of the same batch resumes from the journal: acknowledged notes
 * are skipped, a chip already written is completed (its sealed upload is
 * sent again; registration is idempotent), and a note whose intent names a
 * chip that has not come back is reserved for that chip and never issued
 * on another (docs/issuance.md: crash safety).
 *
 * --follow --ui ADDR serves the line supervisor's page (ui_http.h, OP-1):
 * positions, results, counters, the server connection, and the page's
 * pause and resume (an operator hold: no job starts while it lasts, so no
 * chip is authorised or written; a job already running finishes).
 *
 * Exit: 0 every note of the batch issued; 2 some notes not issued
 * (reported: malformed line, reject-write, refused, in doubt); 1 error.
 */
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "batch.h"
#include "cmd_note.h"
#include "feature.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "note_chan.h"
#include "note_chip.h"
#include "note_journal.h"
#include "note_line.h"
#include "key_p11.h"
#include "note_proto.h"
#include "note_uplink.h"
#include "sw.h"
#include "ui_http.h"


struct issue_opts {
	const char	*line;
	const char	*chips;
	const char	*key;		/* the issuer key (--issuer-key) */
	struct st_conn	 conn;		/* the channel to the server */
	const char	*feature_key;
	const char	*journal;
	const char	*batch;
	size_t		 workers;
	unsigned	 retry_secs;
	bool		 json;
	bool		 progress;
	bool		 follow;	/* run until SIGINT/SIGTERM */
	const char	*ui, *ui_cert, *ui_key;	/* --ui: the line's page */
};

struct inote {
	struct note_id	 id;
	char		 name[NOTE_ID_MAX + 1];
	unsigned long	 lineno;
	int		 state;			/* J_* */
	char		 jchip[CHIP_SERIAL_LEN + 1];	/* INTENT's chip */
	bool		 taken;			/* a worker has it */
	bool		 elsewhere;	/* another chip holds the serial */
};

struct iss {
	struct issue_opts	 o;
	struct batch		 b;
	struct inote		*notes;
	size_t			 n;
	size_t			*byname;	/* indexes sorted by name */
	size_t			 qhead;		/* next candidate in notes[] */
	size_t			 indoubt;	/* INTENT notes not yet settled */
	struct key		*key;		/* the issuer key (BN-3) */
	uint8_t			 fkey[FEATURE_KEY_LEN];
	struct note_journal	*j;
	struct note_uplink	*up[NL_MAX_WORKERS];
	/* Broken connections, closed only after the line stops: closing an hs
	 * link finalises the PKCS#11 module for the whole process (libp11),
	 * which the issuer key of the other workers still uses. */
	struct note_uplink	*dead[NL_MAX_WORKERS][8];
	size_t			 ndead[NL_MAX_WORKERS];
	/* each position's first handshake, run while its first chip works */
	struct note_chan_bg	 bg[NL_MAX_WORKERS];
	const struct note_server *local;	/* tests/bench: in-process server */
	struct note_chan	*chan;		/* the channel key, CA, chain */
	pthread_mutex_t		 mu;
	size_t			 issued, again, skipped, refused, rejected,
				 errors, completed, foreign, offline, held;
	struct timespec		 t0, tlast;
	/* OP-3: the server is away; no chip is written until it is back. */
	bool			 paused;
	struct timespec		 paused_at;
	int			 pause_r;	/* why (server_fail_text) */
	/* --follow: what each position is doing (live status, events) */
	char			 pos[NL_MAX_WORKERS];
	size_t			 npos;
	struct ui_http		*ui;		/* --ui */
	bool			 hold;		/* the page's pause */
	int			 server_seen;	/* --ui: first answer shown */
	pthread_cond_t		 hold_cv;
};

static double
elapsed(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) + (b->tv_nsec - a->tv_nsec) / 1e9;
}

/*
 * The live status on stdout when stdout is a terminal (with --json the
 * result lines are the status): per position with --follow, else a
 * progress bar.  Caller holds mu.
 */
static void
progress(struct iss *s, bool final)
{
	struct timespec now;
	size_t done = s->issued + s->again + s->skipped + s->refused +
	    s->rejected + s->errors;
	int i, fill;

	if (!s->o.progress) {
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &now);
	if (!final && elapsed(&s->tlast, &now) < 0.1) {
		return;
	}
	s->tlast = now;
	if (s->o.follow) {
		/* per position: . waiting  * working  v done (take it off)
		 * x reader gone */
		fprintf(stdout, "\r\033[K[%.*s] %s%zu issued, %zu refused, %zu "
		    "reject-write, %zu off the line, %.1f notes/s", (int)s->npos,
		    s->pos, s->paused ? "PAUSED (server away) " : "", s->issued,
		    s->refused, s->rejected, s->offline,
		    s->issued / (elapsed(&s->t0, &now) + 1e-9));
		if (final) {
			fputc('\n', stdout);
		}
		fflush(stdout);
		return;
	}
	fill = s->n ? (int)(40 * done / s->n) : 40;
	fputs("\r[", stdout);
	for (i = 0; i < 40; i++) {
		fputc(i < fill ? '#' : ' ', stdout);
	}
	fprintf(stdout, "] %zu/%zu notes %.0f/s", done, s->n,
	    (s->issued + s->again) / (elapsed(&s->t0, &now) + 1e-9));
	if (final) {
		fputc('\n', stdout);
	}
	fflush(stdout);
}

/* The counters on the page (--ui).  Caller holds mu. */
static void
publish_stats(struct iss *s)
{
	if (s->ui == NULL) {
		return;
	}
	ui_http_publish(s->ui, "{\"type\":\"stats\",\"t\":%lld,\"notes\":%zu,"
	    "\"issued\":%zu,\"repeated\":%zu,\"skipped\":%zu,\"refused\":%zu,"
	    "\"reject_write\":%zu,\"off_line\":%zu,\"held\":%zu,"
	    "\"errors\":%zu,\"server_away\":%s,\"paused\":%s}", ui_now_ms(),
	    s->n, s->issued, s->again, s->skipped, s->refused, s->rejected,
	    s->offline, s->held, s->errors, s->paused ? "true" : "false",
	    s->hold ? "true" : "false");
}

/* One report line for a note (JSON lines with --json); the page gets it
 * as a result event of position w. */
static void
report(struct iss *s, size_t w, const struct inote *nt, const char *chip,
    const char *result, const char *why, uint64_t reg_id)
{
	char jn[64], jc[96], jw[256], shown[CHIP_SERIAL_LEN + 1];

	chip = note_chip_shown(chip, shown);
	ui_http_publish(s->ui, "{\"type\":\"result\",\"t\":%lld,"
	    "\"position\":%zu,\"note\":%s,\"chip\":%s,\"result\":\"%s\","
	    "\"reason\":%s}", ui_now_ms(), w, ui_json_str(nt ? nt->name : NULL,
	    jn, sizeof(jn)), ui_json_str(chip, jc, sizeof(jc)), result,
	    ui_json_str(why, jw, sizeof(jw)));
	pthread_mutex_lock(&s->mu);
	if (s->o.json) {
		if (nt != NULL) {
			printf("{\"note\":\"%s\",\"line\":%lu,\"chip\":\"%s\","
			    "\"result\":\"%s\"", nt->name, nt->lineno,
			    chip ? chip : "", result);
		} else {
			printf("{\"chip\":\"%s\",\"result\":\"%s\"",
			    chip ? chip : "", result);
		}
		if (why != NULL) {
			printf(",\"reason\":\"%s\"", why);
		}
		if (reg_id != 0) {
			printf(",\"reg_id\":%llu", (unsigned long long)reg_id);
		}
		printf("}\n");
	} else if (why != NULL) {
		if (s->o.progress) {
			fputs("\r\033[K", stdout);	/* the status line */
			fflush(stdout);
		}
		printf("%s%s%s (chip %s): %s: %s\n", nt ? "note " : "",
		    nt ? nt->name : "", nt ? "" : "chip", chip ? chip : "-",
		    result, why);
	}
	fflush(stdout);
	progress(s, false);
	pthread_mutex_unlock(&s->mu);
}

static void
bump(struct iss *s, size_t *ctr)
{
	pthread_mutex_lock(&s->mu);
	(*ctr)++;
	publish_stats(s);
	pthread_mutex_unlock(&s->mu);
}

/* --follow: a position changed state (note_line events). */
static void
iss_event(void *ctx, const struct note_line_event *ev)
{
	static const char mark[] = { [NL_WAITING] = '.', [NL_WORKING] = '*',
	    [NL_DONE] = 'v', [NL_RESULT] = '*', [NL_GONE] = 'x' };
	struct iss *s = ctx;
	char name[160];

	if (s->ui != NULL) {
		ui_http_publish(s->ui, "{\"type\":\"position\",\"t\":%lld,"
		    "\"position\":%zu,\"name\":%s,\"state\":\"%s\"}",
		    ui_now_ms(), ev->position, ui_json_str(ev->name, name,
		    sizeof(name)), note_line_state_name(ev->state));
	}
	pthread_mutex_lock(&s->mu);
	if (ev->position < NL_MAX_WORKERS) {
		while (s->npos <= ev->position) {
			s->pos[s->npos++] = '.';	/* a reader plugged in */
		}
		s->pos[ev->position] = mark[ev->state];
	}
	if (s->o.json && s->o.follow) {
		printf("{\"event\":\"%s\",\"position\":%zu", 
		    note_line_state_name(ev->state), ev->position);
		if (ev->name != NULL) {
			printf(",\"reader\":\"%s\"", ev->name);
		}
		printf("}\n");
		fflush(stdout);
	}
	progress(s, false);
	pthread_mutex_unlock(&s->mu);
}

static int
cmp_name(const void *a, const void *b, void *ctx)
{
	const struct iss *s = ctx;

	return strcmp(s->notes[*(const size_t *)a].name,
	    s->notes[*(const size_t *)b].name);
}

static struct inote *
find_note(struct iss *s, const char *name)
{
	size_t lo = 0, hi = s->n, mid;
	int c;

	while (lo < hi) {
		mid = (lo + hi) / 2;
		c = strcmp(s->notes[s->byname[mid]].name, name);
		if (c == 0) {
			return &s->notes[s->byname[mid]];
		}
		if (c < 0) {
			lo = mid + 1;
		} else {
			hi = mid;
		}
	}
	return NULL;
}

static void
scan_cb(void *ctx, const char *name, const char *chip, int state)
{
	struct iss *s = ctx;
	struct inote *nt = find_note(s, name);

	if (nt == NULL) {
		return;
	}
	nt->state = state;
	snprintf(nt->jchip, sizeof(nt->jchip), "%s", chip ? chip : "");
}

static int
iss_start(void *ctx, size_t w)
{
	struct iss *s = ctx;

#ifdef ML_TEST_HOOKS
	if (s->local != NULL) {
		return note_uplink_local(s->local, &s->up[w]);
	}
#endif
	/* connected in the background while the first chip is read; a
	 * failure shows at the first request, which retries */
	if (s->chan != NULL) {
		note_chan_bg_start(s->chan, &s->bg[w]);
	}
	return 0;
}

static void
bury(struct iss *s, size_t w)
{
	if (s->ndead[w] < ML_NELEM(s->dead[w])) {
		s->dead[w][s->ndead[w]++] = s->up[w];
	} else {
		note_uplink_close(s->up[w]);
	}
	s->up[w] = NULL;
}

/*
 * What a failed server call means for the operator: the server answered
 * without a verdict (a full registry disk, another registry failure), or
 * it could not be reached.
 */
static const char *
server_fail_text(int r)
{
	switch (r) {
	case ML_ERR_DISK_FULL:
		return "server refused: registry write failed (disk full)";
	case ML_ERR_REJECTED:
		return "server refused: registry write failed";
	case ML_ERR_PERM:
		return "server refused this station's channel (handshake)";
	default:
		return "server unreachable";
	}
}

/* The line stops writing and says so once, with the cause (OP-3). */
static void
line_pause(struct iss *s, const char *why, int r)
{
	pthread_mutex_lock(&s->mu);
	if (!s->paused) {
		s->paused = true;
		s->pause_r = r;
		clock_gettime(CLOCK_MONOTONIC, &s->paused_at);
		if (s->o.progress) {
			fputs("\r\033[K", stdout);	/* the status line */
			fflush(stdout);
		}
		if (r == ML_ERR_DISK_FULL || r == ML_ERR_REJECTED) {
			fprintf(stderr, "issue: line paused: %s (server %s); "
			    "no chip is written until it accepts again, "
			    "retrying\n", server_fail_text(r),
			    s->chan != NULL ? note_chan_server(s->chan) : "");
		} else {
			fprintf(stderr, "issue: line paused: server %s "
			    "unreachable (%s); no chip is written until it is "
			    "back, retrying\n", s->chan != NULL ?
			    note_chan_server(s->chan) : "", why);
		}
		if (s->o.json) {
			printf("{\"event\":\"paused\",\"reason\":\"%s\"}\n", why);
			fflush(stdout);
		}
		if (s->ui != NULL) {
			char jw[256];

			ui_http_publish(s->ui, "{\"type\":\"server\",\"t\":%lld,"
			    "\"state\":\"lost\",\"why\":%s}", ui_now_ms(),
			    ui_json_str(why, jw, sizeof(jw)));
			publish_stats(s);
		}
	}
	pthread_mutex_unlock(&s->mu);
}

static void
line_resume(struct iss *s)
{
	struct timespec now;

	pthread_mutex_lock(&s->mu);
	if (s->paused) {
		s->paused = false;
		clock_gettime(CLOCK_MONOTONIC, &now);
		fprintf(stderr, "issue: line resumed: server back after %.1f s\n",
		    elapsed(&s->paused_at, &now));
		if (s->o.json) {
			printf("{\"event\":\"resumed\",\"seconds\":%.1f}\n",
			    elapsed(&s->paused_at, &now));
			fflush(stdout);
		}
		if (s->ui != NULL) {
			ui_http_publish(s->ui, "{\"type\":\"server\",\"t\":%lld,"
			    "\"state\":\"connected\",\"why\":null}", ui_now_ms());
			publish_stats(s);
		}
	} else if (s->ui != NULL && s->server_seen == 0) {
		s->server_seen = 1;	/* first answer: the page shows it */
		ui_http_publish(s->ui, "{\"type\":\"server\",\"t\":%lld,"
		    "\"state\":\"connected\",\"why\":null}", ui_now_ms());
	}
	pthread_mutex_unlock(&s->mu);
}

/*
 * One request to the server and its reply, reconnecting while the server
 * is away: the line pauses (line_pause), retries with back-off (0.2 s
 * doubling to 5 s) and resumes by itself.  Every issuance request is
 * idempotent, so a repeat is harmless.  Gives up after retry_secs (never
 * with --follow, until the line is stopped) with ML_ERR_TIMEOUT, or with
 * ML_ERR_DISK_FULL / ML_ERR_REJECTED when the server kept answering
 * without a verdict (server_fail_text).
 */
static int
server_call(struct iss *s, size_t w, unsigned type, const uint8_t *req,
    size_t n, struct note_reply *ret)
{
	uint8_t resp[NOTE_REPLY_MAX];
	struct timespec t0, now;
	char why[128];
	useconds_t backoff = 200 * 1000;
	size_t len;
	int r;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		if (s->up[w] == NULL) {
			r = note_chan_bg_join(&s->bg[w], &s->up[w], why,
			    sizeof(why));
			if (r == 0 && s->up[w] == NULL) {
				r = note_chan_connect(s->chan, &s->up[w], why,
				    sizeof(why));
			}
			if (r == ML_ERR_REJECTED || r == ML_ERR_CERT) {
				/* the server or its certificate said no to us:
				 * retrying does not change that */
				ml_err("%s", why);
				return ML_ERR_PERM;
			}
		} else {
			r = 0;
		}
		if (r == 0) {
			r = note_uplink_call(s->up[w], type, req, n, resp,
			    sizeof(resp), &len);
			if (r == 0) {
				line_resume(s);
				return note_reply_parse(resp, len, ret);
			}
			if (s->local != NULL) {
				return r;
			}
			snprintf(why, sizeof(why), "connection lost: %s",
			    ml_errmsg(r));
			if (r != ML_ERR_REJECTED && r != ML_ERR_DISK_FULL) {
				bury(s, w);	/* the channel is gone */
			}
		}
		if (r != ML_ERR_IO && r != ML_ERR_TIMEOUT &&
		    r != ML_ERR_REJECTED && r != ML_ERR_DISK_FULL) {
			return r;
		}
		line_pause(s, why, r);
		if (note_line_stopping()) {
			return r == ML_ERR_DISK_FULL || r == ML_ERR_REJECTED ? r :
			    ML_ERR_TIMEOUT;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!s->o.follow && elapsed(&t0, &now) > s->o.retry_secs) {
			return r == ML_ERR_DISK_FULL || r == ML_ERR_REJECTED ? r :
			    ML_ERR_TIMEOUT;
		}
		usleep(backoff);
		if (backoff < 5 * 1000 * 1000) {
			backoff *= 2;
		}
	}
}

static int
upload(struct iss *s, size_t w, const uint8_t *sealed, size_t n,
    struct note_reply *ret)
{
	return server_call(s, w, NOTE_REC_UPLOAD, sealed, n, ret);
}

/*
 * OP-3 pre-check: can the server register note nt on this chip now
 * (chip enrolled with this key, serial free, the feature information's
 * keyed code made by a feature key it accepts)?  The server promises the
 * serial to the chip for a while, so that a second station with an
 * overlapping batch leaves its chip blank.
 */
static int
precheck(struct iss *s, size_t w, const char *chip,
    const uint8_t pub[static ML_P256_PUB_LEN], const struct inote *nt,
    const char *feat, size_t flen, struct note_reply *ret)
{
	uint8_t req[128 + FEATURE_MAX_LEN];
	struct ml_wr rw = ML_WR_FIXED(req, sizeof(req));
	int r;

	ML_TRY(ml_tlv_put(&rw, TAG_ENROL_SERIAL, chip, CHIP_SERIAL_LEN));
	ML_TRY(ml_tlv_put(&rw, TAG_ENROL_PUB, pub, ML_P256_PUB_LEN));
	ML_TRY(ml_tlv_put(&rw, TAG_REPLY_NOTE, nt->name, strlen(nt->name)));
	/* what will be written: the server checks its keyed code now */
	ML_TRY(ml_tlv_put(&rw, TAG_FEAT_INFO, feat, flen));
	r = server_call(s, w, NOTE_REC_CHECK, rw.p, rw.len, ret);
out:
	return r;
}

/*
 * The chip went away (or stopped answering) after the intent was
 * journaled: the note may be on it or not.  Keep the note for that chip
 * only, as a re-run does from the journal: when the chip comes back it is
 * completed (written) or issued (still blank); no other chip gets it.
 */
static void
hold_for_chip(struct iss *s, struct inote *nt, const char *chip)
{
	pthread_mutex_lock(&s->mu);
	nt->state = J_INTENT;
	snprintf(nt->jchip, sizeof(nt->jchip), "%s", chip);
	nt->taken = false;
	s->indoubt++;
	pthread_mutex_unlock(&s->mu);
}

/* GET SEALED, upload, journal the outcome, report. */
static int
seal_and_upload(struct iss *s, size_t w, struct chipcmd *cc,
    struct inote *nt, const char *chip, bool completing)
{
	uint8_t sealed[NOTE_SEALED_MAX];
	struct note_reply rep;
	char msg[128];
	size_t n;
	int r;

	if ((r = note_chip_sealed(cc, sealed, sizeof(sealed), &n)) != 0) {
		report(s, w, nt, chip, "error", "GET SEALED failed (chip "
		    "removed?): note held for this chip, completed when it comes "
		    "back", 0);
		bump(s, &s->errors);
		hold_for_chip(s, nt, chip);
		return 0;
	}
	if ((r = upload(s, w, sealed, n, &rep)) != 0) {
		snprintf(msg, sizeof(msg), "%s: note left in doubt for the "
		    "next run", server_fail_text(r));
		report(s, w, nt, chip, "error", msg, 0);
		bump(s, &s->errors);
		hold_for_chip(s, nt, chip);
		return r;	/* the line stops: nothing can be acknowledged */
	}
	if (rep.status == NOTE_ST_REJECT) {
		if ((r = note_journal_done(s->j, nt->name, J_REFUSED, 0,
		    rep.reason)) != 0) {
			return r;
		}
		report(s, w, nt, chip, "refused", note_reason_str(rep.reason), 0);
		bump(s, &s->refused);
		return 0;
	}
	if ((r = note_journal_done(s->j, nt->name, J_ACKED, rep.reg_id, 0)) != 0) {
		return r;
	}
	report(s, w, nt, chip, completing ? "completed" :
	    rep.status == NOTE_ST_AGAIN ? "already_registered" : "issued", NULL,
	    rep.reg_id);
	bump(s, rep.status == NOTE_ST_AGAIN || completing ? &s->again :
	    &s->issued);
	return 0;
}

/* A blank chip, pre-checked (OP-3): issue note nt on it, feat the
 * feature information the pre-check carried. */
static int
issue_one(struct iss *s, size_t w, struct chipcmd *cc, struct inote *nt,
    const char *chip, const char *feat, size_t flen)
{
	char why[160];
	uint16_t sw;
	int r;

	/* Intent before the authorisation leaves: the note may be on this
	 * chip from here on. */
	if ((r = note_journal_intent(s->j, nt->name, chip)) != 0) {
		return r;
	}
	if ((r = note_chip_authorize(cc, s->key, chip, (const uint8_t *)feat,
	    flen, &sw)) != 0) {
		snprintf(why, sizeof(why), "AUTHORIZE WRITE failed (%s): chip "
		    "not written; note held for this chip", ml_errmsg(r));
		report(s, w, nt, chip, "error", why, 0);
		bump(s, &s->errors);
		hold_for_chip(s, nt, chip);
		return 0;
	}
	if (sw != SW_OK) {
		/* BN-5: reject-write, nothing is written. */
		snprintf(why, sizeof(why), "reject-write (SW %04X)", sw);
		if ((r = note_journal_done(s->j, nt->name, J_REJECTED, 0, 0)) != 0) {
			return r;
		}
		report(s, w, nt, chip, "reject_write", why, 0);
		bump(s, &s->rejected);
		return 0;
	}
	if ((r = note_chip_write(cc, (const uint8_t *)feat, flen)) != 0) {
		/* the chip's store keeps it blank or written (tear-safe) */
		report(s, w, nt, chip, "error", "WRITE FEATURE interrupted (chip "
		    "removed?): the chip is blank or written; note held for this "
		    "chip, completed or issued when it comes back", 0);
		bump(s, &s->errors);
		hold_for_chip(s, nt, chip);
		return 0;
	}
	return seal_and_upload(s, w, cc, nt, chip, false);
}

/* A chip already written: complete it when it carries a note of ours. */
static int
reconcile(struct iss *s, size_t w, struct chipcmd *cc, const char *chip)
{
	struct note_record rec;
	struct note_id id;
	struct inote *nt;
	char name[NOTE_ID_MAX + 1];
	bool mine = false;
	int r;

	if ((r = note_chip_record(cc, &rec)) != 0 ||
	    feature_parse(rec.feature, rec.feature_len, &id) != 0) {
		report(s, w, NULL, chip, "skipped", "written chip with an unreadable "
		    "record", 0);
		bump(s, &s->foreign);
		return 0;
	}
	note_id_str(&id, name);
	pthread_mutex_lock(&s->mu);
	nt = find_note(s, name);
	if (nt != NULL && !nt->taken && nt->state != J_ACKED &&
	    nt->state != J_REFUSED) {
		nt->taken = true;
		if (nt->state == J_INTENT) {
			s->indoubt--;
		}
		mine = true;
	}
	pthread_mutex_unlock(&s->mu);
	if (nt == NULL) {
		report(s, w, NULL, chip, "skipped", "written chip of another batch", 0);
		bump(s, &s->foreign);
		return 0;
	}
	if (!mine) {
		return 0;	/* issued and acknowledged before: nothing to do */
	}
	if (nt->state == J_NONE || nt->state == J_REJECTED) {
		if ((r = note_journal_intent(s->j, nt->name, chip)) != 0) {
			return r;
		}
	}
	bump(s, &s->completed);
	return seal_and_upload(s, w, cc, nt, chip, true);
}

/* Pick the note for a blank chip, or NULL.  Caller holds mu. */
static struct inote *
pick(struct iss *s, const char *chip, bool *ret_stop)
{
	size_t i;

	*ret_stop = false;
	if (s->indoubt > 0) {
		for (i = 0; i < s->n; i++) {
			struct inote *nt = &s->notes[i];

			if (nt->state == J_INTENT && !nt->taken &&
			    strcmp(nt->jchip, chip) == 0) {
				/* Its chip is back and blank: the note was never
				 * written; issue it here. */
				nt->taken = true;
				s->indoubt--;
				return nt;
			}
		}
	}
	while (s->qhead < s->n) {
		struct inote *nt = &s->notes[s->qhead++];

		if (!nt->taken && !nt->elsewhere &&
		    (nt->state == J_NONE || nt->state == J_REJECTED)) {
			nt->taken = true;
			return nt;
		}
	}
	*ret_stop = s->indoubt == 0;
	return NULL;
}

/* Give a picked note back to the queue (its chip was not written). */
static void
unpick(struct iss *s, struct inote *nt)
{
	size_t idx = (size_t)(nt - s->notes);

	pthread_mutex_lock(&s->mu);
	nt->taken = false;
	if (nt->state == J_INTENT) {
		s->indoubt++;
	} else if (!nt->elsewhere && idx < s->qhead) {
		s->qhead = idx;
	}
	pthread_mutex_unlock(&s->mu);
}

/*
 * A blank chip: find a note the server can accept on it (OP-3) and issue
 * it.  A note registered to another chip is settled as refused and the
 * next one tried; a note another station is issuing right now is left to
 * it; a chip the server does not know goes off the line, blank.
 */
static int
issue_blank(struct iss *s, size_t w, struct chipcmd *cc, const char *chip)
{
	uint8_t pub[ML_P256_PUB_LEN];
	struct note_reply rep;
	struct inote *nt;
	char msg[128], feat[FEATURE_MAX_LEN + 1];
	size_t flen;
	bool stop;
	int r;

	if ((r = note_chip_pub(cc, pub)) != 0) {
		report(s, w, NULL, chip, "error", "chip key unreadable (GET DATA)", 0);
		bump(s, &s->errors);
		return 0;
	}
	for (;;) {
		pthread_mutex_lock(&s->mu);
		nt = pick(s, chip, &stop);
		pthread_mutex_unlock(&s->mu);
		if (nt == NULL) {
			if (s->o.follow) {
				report(s, w, NULL, chip, "left_blank", "no note of the "
				    "batch left for it", 0);
				return 0;
			}
			return stop ? 1 : 0;
		}
		if ((r = feature_derive(s->fkey, &nt->id, pub, feat,
		    &flen)) != 0) {
			report(s, w, nt, chip, "error", ml_errmsg(r), 0);
			bump(s, &s->errors);
			return 0;
		}
		if ((r = precheck(s, w, chip, pub, nt, feat, flen,
		    &rep)) != 0) {
			unpick(s, nt);
			snprintf(msg, sizeof(msg), "%s: chip not written",
			    server_fail_text(r));
			report(s, w, NULL, chip, "left_blank", msg, 0);
			bump(s, &s->offline);
			return note_line_stopping() ? 1 : r;
		}
		if (rep.status == NOTE_ST_OK) {
			return issue_one(s, w, cc, nt, chip, feat, flen);
		}
		if (rep.reason == NOTE_R_BAD_FEATURE) {
			/*
			 * The server does not accept this station's keyed
			 * codes (its --feature-key is not among the server's
			 * note-feature-key): every chip would be refused
			 * after writing, so the line stops with this one
			 * blank (OP-3).
			 */
			unpick(s, nt);
			report(s, w, NULL, chip, "left_blank", "server refuses "
			    "this station's keyed identification code", 0);
			bump(s, &s->offline);
			return ml_errf(ML_ERR_AUTH, "server %s refuses the keyed "
			    "identification code of note %s (this station's "
			    "--feature-key %s is not one of the server's "
			    "note-feature-key): line stopped, chip %s left "
			    "blank", s->chan != NULL ? note_chan_server(s->chan) :
			    "(local)", nt->name, s->o.feature_key, chip);
		}
		if (rep.status == NOTE_ST_AGAIN ||
		    rep.reason == NOTE_R_DUP_SERIAL) {
			/* Registered to another chip: this note is settled. */
			if ((r = note_journal_done(s->j, nt->name, J_REFUSED, 0,
			    NOTE_R_DUP_SERIAL)) != 0) {
				return r;
			}
			nt->state = J_REFUSED;
			report(s, w, nt, chip, "registered_elsewhere", "serial "
			    "registered to another chip (chip left blank)", 0);
			bump(s, &s->refused);
			continue;
		}
		if (rep.reason == NOTE_R_RESERVED) {
			pthread_mutex_lock(&s->mu);
			nt->elsewhere = true;
			pthread_mutex_unlock(&s->mu);
			unpick(s, nt);
			report(s, w, nt, chip, "held", note_reason_str(rep.reason), 0);
			bump(s, &s->held);
			continue;
		}
		/* Unknown or mismatched chip: take it off the line, blank. */
		unpick(s, nt);
		report(s, w, NULL, chip, "off_line", rep.reason == NOTE_R_UNKNOWN_CHIP ?
		    "chip not enrolled (run mintline-station enroll); chip left "
		    "blank" : note_reason_str(rep.reason), 0);
		bump(s, &s->offline);
		return 0;
	}
}

static int
iss_job(void *ctx, size_t w, struct chipcmd *cc, const char *image)
{
	struct iss *s = ctx;
	struct chip_info ci;
	struct timespec until;
	int r;

	/* The page's pause: nothing is sent to this chip until resumed. */
	pthread_mutex_lock(&s->mu);
	while (s->hold && !note_line_stopping()) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += 200 * 1000 * 1000;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&s->hold_cv, &s->mu, &until);
	}
	pthread_mutex_unlock(&s->mu);
	if (note_line_stopping()) {
		return 1;
	}
	if ((r = chipcmd_info(cc, &ci)) != 0 || ci.kind != CHIP_KIND_NOTE) {
		report(s, w, NULL, image, "skipped", "not a note chip", 0);
		return 0;
	}
	if ((ci.state & INFO_F_LOCKED) == 0) {
		report(s, w, NULL, ci.serial, "skipped", "chip not personalised", 0);
		return 0;
	}
	if (ci.state & INFO_F_WRITTEN) {
		return reconcile(s, w, cc, ci.serial);
	}
	return issue_blank(s, w, cc, ci.serial);
}

/* POST /api/pause, /api/resume from the line's page. */
static int
iss_control(void *ctx, const char *action)
{
	struct iss *s = ctx;
	bool hold;

	if (strcmp(action, "pause") == 0) {
		hold = true;
	} else if (strcmp(action, "resume") == 0) {
		hold = false;
	} else {
		return ML_ERR_ARG;
	}
	pthread_mutex_lock(&s->mu);
	if (s->hold != hold) {
		s->hold = hold;
		pthread_cond_broadcast(&s->hold_cv);
		if (s->o.progress) {
			fputs("\r\033[K", stdout);	/* the status line */
			fflush(stdout);
		}
		fprintf(stderr, "issue: line %s from the page\n", hold ? "paused" :
		    "resumed");
		if (s->o.json) {
			printf("{\"event\":\"%s\",\"by\":\"page\"}\n", hold ?
			    "hold" : "release");
			fflush(stdout);
		}
		publish_stats(s);
	}
	pthread_mutex_unlock(&s->mu);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-station issue --line SPEC [--chips DIR]\n"
	    "           --issuer-key URI --feature-key FILE --journal FILE\n"
	    "           --server HOST:PORT --ca FILE --cert FILE --key URI [...]\n"
	    "           [--batch FILE|-] [--workers N] [--retry-secs N] [--json]\n"
	    "           [--no-progress] [--follow [--ui ADDR [--ui-cert F --ui-key F]]]\n"
	    "\n"
	    "  --issuer-key URI   the station's issuer key (signs write\n"
	    "                     authorisations): pkcs11: URI with\n"
	    "                     pin-source=file:PATH (never the PIN itself)\n"
	    "  --feature-key FILE the issuer's feature key (64 hex digits, 0600)\n"
	    "channel to mintline-server (kind station):\n" ST_CONN_USAGE
	    "  --journal FILE     the resume journal (SQLite); keep it per batch\n"
	    "  --batch FILE       PREFIX,SERIAL lines; default stdin\n"
	    "  --follow           keep running: wait for chips at every position\n"
	    "                     (PC/SC readers; in-process positions, or new\n"
	    "                     images in --chips DIR), issue each blank chip\n"
	    "                     the batch allows, until SIGINT/SIGTERM\n"
	    "  --ui ADDR          with --follow: serve the line's page at ADDR\n"
	    "                     (127.0.0.1:8080): positions, counters, pause and\n"
	    "                     resume; any non-loopback address needs\n"
	    "  --ui-cert FILE     a certificate and\n"
	    "  --ui-key FILE      key (PEM): HTTPS\n"
	    "  --retry-secs N     give up after N s without the server (default\n"
	    "                     30; never with --follow): the line pauses, no\n"
	    "                     chip is written while the server is away\n"
	    "exit: 0 all issued, 2 some not issued (reported), 1 error\n");
}

static int
parse_opts(int argc, char **argv, struct issue_opts *o)
{
	static const struct option lo[] = {
		{ "line", required_argument, NULL, 'l' },
		{ "chips", required_argument, NULL, 'c' },
		{ "issuer-key", required_argument, NULL, 'k' },
		{ "feature-key", required_argument, NULL, 'f' },
		ST_CONN_LONG_OPTS,
		{ "journal", required_argument, NULL, 'J' },
		{ "batch", required_argument, NULL, 'b' },
		{ "workers", required_argument, NULL, 'w' },
		{ "retry-secs", required_argument, NULL, 'R' },
		{ "json", no_argument, NULL, 'j' },
		{ "no-progress", no_argument, NULL, 'q' },
		{ "follow", no_argument, NULL, 'F' },
		{ "ui", required_argument, NULL, 'U' },
		{ "ui-cert", required_argument, NULL, 'C' },
		{ "ui-key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	bool has_conn = false;
	int c;

	optind = 1;
	st_conn_default(&o->conn);
	o->conn.kind = HS_KIND_STATION;
	o->retry_secs = 30;
	o->progress = isatty(STDOUT_FILENO);
	while ((c = getopt_long(argc, argv, "l:c:k:f:s:J:b:w:R:jqFh", lo,
	    NULL)) != -1) {
		switch (c) {
		case 'l': o->line = optarg; break;
		case 'c': o->chips = optarg; break;
		case 'k': o->key = optarg; break;
		case 'f': o->feature_key = optarg; break;
		case 'J': o->journal = optarg; break;
		case 'b': o->batch = optarg; break;
		case 'w':
			if (ml_parse_size(optarg, "--workers", 0, NL_MAX_WORKERS,
			    &o->workers) != 0) {
				fprintf(stderr, "issue: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				return 1;
			}
			break;
		case 'R':
			if (ml_parse_uint(optarg, "--retry-secs", 0, 86400,
			    &o->retry_secs) != 0) {
				fprintf(stderr, "issue: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				return 1;
			}
			break;
		case 'j': o->json = true; break;
		case 'q': o->progress = false; break;
		case 'F': o->follow = true; break;
		case 'U': o->ui = optarg; break;
		case 'C': o->ui_cert = optarg; break;
		case 'K': o->ui_key = optarg; break;
		case 'h': usage(stdout); return 2;
		default:
			if (c >= ST_CONN_OPT_BASE &&
			    st_conn_option(&o->conn, c, optarg) == 0) {
				has_conn = true;
				break;
			}
			usage(stderr);
			return 1;
		}
	}
	if (o->json) {
		o->progress = false;
	}
	if ((o->ui != NULL || o->ui_cert != NULL || o->ui_key != NULL) &&
	    (!o->follow || o->ui == NULL)) {
		fprintf(stderr, "issue: --ui ADDR is for a running line (--follow); "
		    "--ui-cert and --ui-key go with --ui\n");
		return 1;
	}
	if (o->line == NULL || o->key == NULL || o->feature_key == NULL ||
	    !has_conn || o->journal == NULL ||
	    o->workers > NL_MAX_WORKERS) {
		usage(stderr);
		return 1;
	}
	return 0;
}

/*
 * issue_run's set-up: options, the feature key, the batch (its malformed
 * lines printed), the journal (a re-run resumes: notes done are skipped,
 * notes in doubt stay reserved for their chip), the issuer key, the
 * channel, the start time and, for a running line, its positions and the
 * line page.  Returns false with *rc the exit status if the run stops here.
 */
static bool
issue_setup(struct iss *s, int argc, char **argv, FILE **bfp,
    const char **bnamep, int *rc)
{
	const char *bname;
	size_t i;
	int r;

	*rc = ST_EXIT_ERROR;
	if ((r = parse_opts(argc, argv, &s->o)) != 0) {
		*rc = r == 2 ? ST_EXIT_OK : ST_EXIT_ERROR;
		return false;
	}
	if ((r = feature_key_load(s->o.feature_key, s->fkey)) != 0) {
		fprintf(stderr, "issue: feature key: %s\n", ml_errmsg(r));
		return false;
	}
	bname = s->o.batch == NULL || strcmp(s->o.batch, "-") == 0 ?
	    "(stdin)" : s->o.batch;
	*bnamep = bname;
	*bfp = s->o.batch == NULL || strcmp(s->o.batch, "-") == 0 ? stdin :
	    fopen(s->o.batch, "re");
	if (*bfp == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", bname);
	} else if ((r = batch_read(&s->b, *bfp)) != 0) {
		(void)ml_errpre(r, "%s", bname);
	}
	if (r != 0) {
		fprintf(stderr, "issue: batch: %s\n", ml_errmsg(r));
		return false;
	}
	for (i = 0; i < s->b.nerr; i++) {
		const struct batch_error *e = &s->b.err[i];

		if (s->o.json) {
			printf("{\"line\":%lu,\"result\":\"malformed\","
			    "\"reason\":\"%s\"}\n", e->lineno, e->why);
		} else {
			printf("batch line %lu: %s\n", e->lineno, e->why);
		}
	}
	if (s->b.n == 0) {
		/* nothing to issue is a mistake (wrong file, export that
		 * failed), not a finished batch */
		fprintf(stderr, "issue: batch: %s: no notes in it (%zu "
		    "malformed line(s))\n", bname, s->b.nerr);
		return false;
	}
	s->n = s->b.n;
	if ((s->notes = calloc(s->n + 1, sizeof(*s->notes))) == NULL ||
	    (s->byname = calloc(s->n + 1, sizeof(size_t))) == NULL) {
		return false;
	}
	for (i = 0; i < s->n; i++) {
		s->notes[i].id = s->b.v[i].id;
		s->notes[i].lineno = s->b.v[i].lineno;
		note_id_str(&s->b.v[i].id, s->notes[i].name);
		s->byname[i] = i;
	}
	qsort_r(s->byname, s->n, sizeof(size_t), cmp_name, s);
	if ((r = note_journal_open(s->o.journal, &s->j)) != 0 ||
	    (r = note_journal_scan(s->j, scan_cb, s)) != 0) {
		if (!ml_errctx_has(r)) {
			(void)ml_errpre(r, "%s", s->o.journal);
		}
		fprintf(stderr, "issue: journal: %s\n", ml_errmsg(r));
		return false;
	}
	for (i = 0; i < s->n; i++) {
		if (s->notes[i].state == J_ACKED || s->notes[i].state == J_REFUSED) {
			s->skipped++;
		} else if (s->notes[i].state == J_INTENT) {
			s->indoubt++;
		}
	}
	if (s->skipped || s->indoubt) {
		fprintf(stderr, "issue: resuming: %zu note(s) already done, %zu in "
		    "doubt (reserved for their chip)\n", s->skipped, s->indoubt);
	}
	if ((r = key_p11_open(NULL, s->o.key, &s->key)) != 0) {
		fprintf(stderr, "issue: issuer key: %s\n", ml_errmsg(r));
		return false;
	}
	if (s->local == NULL && (r = note_chan_new(&s->o.conn, &s->chan)) != 0) {
		fprintf(stderr, "issue: channel: %s\n", ml_errmsg(r));
		return false;
	}
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	if (s->o.follow) {
		size_t np = 0;

		note_line_stop_on_signals();
		if (note_line_positions(s->o.line, &np) == 0) {
			s->npos = np < NL_MAX_WORKERS ? np : NL_MAX_WORKERS;
			memset(s->pos, '.', s->npos);
		}
	}
	if (s->o.ui != NULL) {
		struct ui_http_cfg uc = { .listen = s->o.ui, .cert = s->o.ui_cert,
		    .key = s->o.ui_key, .page = "line", .control = iss_control,
		    .ctx = s };
		char jb[160], jl[160], js[160];

		if ((r = ui_http_start(&uc, &s->ui)) != 0) {
			fprintf(stderr, "issue: %s\n", ml_errmsg(r));
			return false;
		}
		ui_http_publish(s->ui, "{\"type\":\"config\",\"t\":%lld,"
		    "\"batch\":%s,\"line\":%s,\"server\":%s,\"notes\":%zu,"
		    "\"positions\":%zu,\"malformed\":%zu}", ui_now_ms(),
		    ui_json_str(bname, jb, sizeof(jb)),
		    ui_json_str(s->o.line, jl, sizeof(jl)),
		    ui_json_str(s->chan != NULL ? note_chan_server(s->chan) :
		    "in-process", js, sizeof(js)), s->n, s->npos, s->b.nerr);
		pthread_mutex_lock(&s->mu);
		publish_stats(s);
		pthread_mutex_unlock(&s->mu);
	}
	return true;
}

/* issue_run's loop: the line runs iss_job on every chip until the batch is
 * done (with --follow, until a signal); then the uplinks are closed. */
static int
issue_loop(struct iss *s, size_t *chips)
{
	struct note_line_cfg lc;
	size_t i;
	int r;

	lc = (struct note_line_cfg){ .link_spec = s->o.line, .chips = s->o.chips,
	    .workers = s->o.workers ? s->o.workers : NL_MAX_WORKERS,
	    .job = iss_job, .start = iss_start, .ctx = s,
	    .follow = s->o.follow, .event = iss_event };
	r = note_line_run(&lc, chips);
	for (i = 0; i < NL_MAX_WORKERS; i++) {
		struct note_uplink *up = NULL;
		char why[128];
		size_t k;

		/* a position that never needed its channel */
		if (note_chan_bg_join(&s->bg[i], &up, why, sizeof(why)) == 0) {
			note_uplink_close(up);
		}
		note_uplink_close(s->up[i]);
		for (k = 0; k < s->ndead[i]; k++) {
			note_uplink_close(s->dead[i][k]);
		}
	}
	return r;
}

/* issue_run's report: the notes not issued (--json: a line each), the
 * summary, and why the line stopped if it did; returns the exit status. */
static int
issue_report(struct iss *s, size_t chips, int r)
{
	size_t i, notissued;
	struct timespec t1;
	int sig;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	pthread_mutex_lock(&s->mu);
	progress(s, true);
	pthread_mutex_unlock(&s->mu);
	notissued = 0;
	for (i = 0; i < s->n; i++) {
		struct inote *nt = &s->notes[i];

		if (!nt->taken && nt->state != J_ACKED &&
		    nt->state != J_REFUSED) {
			notissued++;
			if (s->o.json) {
				printf("{\"note\":\"%s\",\"line\":%lu,"
				    "\"result\":\"not_issued\",\"reason\":"
				    "\"%s\"}\n", nt->name, nt->lineno,
				    nt->state == J_INTENT ? "in doubt: its "
				    "chip did not come back" : nt->elsewhere ?
				    "being issued by another station" :
				    r != 0 ? "line stopped before it (see "
				    "the message of the stop)" :
				    "no blank chip left");
			}
		}
	}
	fprintf(stderr, "issue: %zu note(s) in batch (%zu malformed "
	    "line(s)), %zu chip(s) seen: %zu issued, %zu completed/repeated, "
	    "%zu skipped (done before), %zu refused, %zu reject-write, "
	    "%zu chip(s) off the line or left blank, %zu held by another "
	    "station, %zu error(s), %zu not issued; %.2f s, %.0f notes/s\n",
	    s->n, s->b.nerr, chips, s->issued, s->again, s->skipped,
	    s->refused, s->rejected, s->offline, s->held, s->errors,
	    notissued, elapsed(&s->t0, &t1),
	    s->issued / (elapsed(&s->t0, &t1) + 1e-9));
	if (s->o.json) {
		printf("{\"summary\":{\"notes\":%zu,\"malformed\":%zu,"
		    "\"chips\":%zu,\"issued\":%zu,\"repeated\":%zu,"
		    "\"skipped\":%zu,\"refused\":%zu,\"reject_write\":%zu,"
		    "\"off_line\":%zu,\"held\":%zu,\"errors\":%zu,"
		    "\"not_issued\":%zu,\"seconds\":%.3f}}\n", s->n,
		    s->b.nerr, chips, s->issued, s->again, s->skipped,
		    s->refused, s->rejected, s->offline, s->held, s->errors,
		    notissued, elapsed(&s->t0, &t1));
	}
	if (note_line_stopping() && s->paused) {
		/* stopped while paused: the signal ended the wait, not
		 * --retry-secs */
		sig = note_line_stop_signal();
		fprintf(stderr, "issue: line stopped by %s while waiting for "
		    "the server (%s for %.0f s; unwritten chips left blank; "
		    "notes in doubt are completed by a re-run)\n",
		    sig == SIGTERM ? "SIGTERM" : sig == SIGINT ? "SIGINT" :
		    "a stop request", server_fail_text(s->pause_r),
		    elapsed(&s->paused_at, &t1));
		if (r == ML_ERR_TIMEOUT || r == ML_ERR_DISK_FULL ||
		    r == ML_ERR_REJECTED) {
			return ST_EXIT_ERROR;
		}
	}
	if (r == ML_ERR_TIMEOUT || r == ML_ERR_DISK_FULL ||
	    r == ML_ERR_REJECTED) {
		fprintf(stderr, "issue: %s for %u s: line stopped "
		    "(unwritten chips left blank; notes in doubt are "
		    "completed by a re-run)\n", server_fail_text(r),
		    s->o.retry_secs);
		return ST_EXIT_ERROR;
	}
	if (r == ML_ERR_PERM) {
		fprintf(stderr, "issue: %s: line stopped, nothing written "
		    "(the station's certificate, enrolment or the server's "
		    "certificate; see above)\n", server_fail_text(r));
		return ST_EXIT_ERROR;
	}
	if (r != 0) {
		fprintf(stderr, "issue: %s\n", ml_errmsg(r));
		return ST_EXIT_ERROR;
	}
	return (s->b.nerr || s->refused || s->rejected || s->errors ||
	    notissued) ? ST_EXIT_PARTIAL : ST_EXIT_OK;
}

/* Shared by cmd_issue() and the benchmark (local != NULL: in-process
 * server, only when compiled with ML_TEST_HOOKS as the benchmark is). */
int	 issue_run(int argc, char **argv, const struct note_server *local);

int
issue_run(int argc, char **argv, const struct note_server *local)
{
	struct iss *s;
	FILE *bf = NULL;
	size_t chips = 0;
	const char *bname = NULL;
	int rc = ST_EXIT_ERROR;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return ST_EXIT_ERROR;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->hold_cv, NULL);
	s->local = local;
	if (issue_setup(s, argc, argv, &bf, &bname, &rc)) {
		int r = issue_loop(s, &chips);

		rc = issue_report(s, chips, r);
	}
	if (bf != NULL && bf != stdin) {
		fclose(bf);
	}
	key_free(s->key);
	note_chan_free(s->chan);
	note_journal_close(s->j);
	batch_clear(&s->b);
	free(s->notes);
	free(s->byname);
	ml_wipe(s->fkey, sizeof(s->fkey));
	ui_http_stop(s->ui);
	pthread_cond_destroy(&s->hold_cv);
	pthread_mutex_destroy(&s->mu);
	free(s);
	return rc;
}

int
cmd_issue(const struct st_opts *so, int argc, char **argv)
{
	(void)so;
	return issue_run(argc, argv, NULL);
}
