/*
 * Issuance records over the station's hs channel (see note_chan.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hs.h"
#include "ml_log.h"
#include "note_chan.h"
#include "note_proto.h"

/*
 * Handshakes in flight from one station process.  The server refuses
 * more than max-unauth-per-addr (64 by default, docs/operations.md)
 * unauthenticated connections from one address with HS_ALERT_BUSY; a
 * line or a row of desks with more positions than that opens its
 * channels at start all at once.  Half the server's default leaves room
 * for a second station behind the same address, and 32 handshakes at
 * once already keep two cores busy (OP-1, BN-1 at scale).
 */
#define NOTE_CHAN_MAX_HS	32
/* HS_ALERT_BUSY all the same (other stations behind the address, a
 * flood): try again after 50 ms, doubling to 1 s, for up to 30 s. */
#define NOTE_CHAN_BUSY_FIRST_MS	50
#define NOTE_CHAN_BUSY_MAX_MS	1000
#define NOTE_CHAN_BUSY_FOR_MS	30000

struct note_chan {
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	unsigned		 inflight;	/* handshakes running */
	struct st_conn		 conn;
	struct st_cred		 cred;
	struct hs_client_cfg	 cfg;		/* pointing into cred */
};

int
note_chan_new(const struct st_conn *c, struct note_chan **ret)
{
	struct note_chan *nc = NULL;
	int r;

	ML_ENSURE((nc = calloc(1, sizeof(*nc))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_init(&nc->mu, NULL);
	pthread_cond_init(&nc->cv, NULL);
	nc->conn = *c;
	ML_TRY(st_cred_open(c, &nc->cred, &nc->cfg));
	*ret = nc;
	nc = NULL;
	r = 0;
out:
	note_chan_free(nc);
	return r;
}

void
note_chan_free(struct note_chan *nc)
{
	if (nc == NULL) {
		return;
	}
	st_cred_close(&nc->cred);
	pthread_cond_destroy(&nc->cv);
	pthread_mutex_destroy(&nc->mu);
	free(nc);
}

static int
chan_call(void *ctx, unsigned type, const uint8_t *req, size_t len,
    uint8_t *resp, size_t cap, size_t *ret_len)
{
	uint8_t rtype;
	int r;

	r = hs_chan_call(ctx, (uint8_t)type, req, len, &rtype, resp, cap,
	    ret_len);
	if (r != 0) {
		/* A broken channel: the caller reconnects and repeats (every
		 * issuance request is idempotent). */
		return r == ML_ERR_TOO_LARGE ? r : ml_errrecode(r, ML_ERR_IO);
	}
	if (rtype == HS_REC_ERROR) {
		/* the server answered, without a verdict: its i32be ML_ERR_*
		 * says why; a full registry disk is told apart (the station
		 * reports it as such, never as "unreachable") */
		int32_t code = *ret_len == 4 ? (int32_t)((uint32_t)resp[0] << 24 |
		    (uint32_t)resp[1] << 16 | (uint32_t)resp[2] << 8 |
		    resp[3]) : ML_ERR_INTERNAL;

		ml_debug("server refused the request: %s", ml_strerror(code));
		return code == ML_ERR_DISK_FULL ? ML_ERR_DISK_FULL :
		    ML_ERR_REJECTED;
	}
	if (rtype != NOTE_REC_REPLY) {
		ml_warn("server answered record type 0x%02x", rtype);
		return ML_ERR_FORMAT;
	}
	return 0;
}

static void
chan_close(void *ctx)
{
	hs_chan_close(ctx);
}

static const struct note_uplink_ops chan_ops = {
	.call = chan_call,
	.close = chan_close,
};

/* One handshake, waiting for a turn among NOTE_CHAN_MAX_HS. */
static int
chan_handshake(struct note_chan *nc, struct hs_chan **ch, int *alert)
{
	int r;

	pthread_mutex_lock(&nc->mu);
	while (nc->inflight >= NOTE_CHAN_MAX_HS) {
		pthread_cond_wait(&nc->cv, &nc->mu);
	}
	nc->inflight++;
	pthread_mutex_unlock(&nc->mu);
	r = st_server_connect(nc->conn.server, &nc->cfg, ch, alert);
	pthread_mutex_lock(&nc->mu);
	nc->inflight--;
	pthread_cond_signal(&nc->cv);
	pthread_mutex_unlock(&nc->mu);
	return r;
}

int
note_chan_connect(struct note_chan *nc, struct note_uplink **ret, char *why,
    size_t cap)
{
	struct hs_chan *ch = NULL;
	long waited = 0, nap = NOTE_CHAN_BUSY_FIRST_MS;
	int r, alert = 0;

	while ((r = chan_handshake(nc, &ch, &alert)) != 0 &&
	    alert == HS_ALERT_BUSY && waited < NOTE_CHAN_BUSY_FOR_MS) {
		struct timespec ts = { nap / 1000, (nap % 1000) * 1000000L };

		ml_debug("%s: server busy, handshake again in %ld ms",
		    nc->conn.server, nap);
		nanosleep(&ts, NULL);
		waited += nap;
		nap = nap * 2 < NOTE_CHAN_BUSY_MAX_MS ? nap * 2 :
		    NOTE_CHAN_BUSY_MAX_MS;
	}
	if (r != 0) {
		/* The cause a line operator can act on: the connect's socket
		 * error or the handshake alert, with the address. */
		snprintf(why, cap, "%s", ml_errmsg(r));
		/* unreachable or still busy server: ML_ERR_IO, the caller
		 * may retry */
		if ((r != ML_ERR_REJECTED && r != ML_ERR_CERT) ||
		    alert == HS_ALERT_BUSY) {
			r = ml_errrecode(r, ML_ERR_IO);
		}
		return r;
	}
	if ((r = note_uplink_custom(&chan_ops, ch, ret)) != 0) {
		hs_chan_close(ch);
	}
	return r;
}

static void *
bg_main(void *arg)
{
	struct note_chan_bg *bg = arg;

	bg->r = note_chan_connect(bg->nc, &bg->up, bg->why, sizeof(bg->why));
	return NULL;
}

void
note_chan_bg_start(struct note_chan *nc, struct note_chan_bg *bg)
{
	*bg = (struct note_chan_bg){ .nc = nc };
	bg->running = pthread_create(&bg->th, NULL, bg_main, bg) == 0;
}

int
note_chan_bg_join(struct note_chan_bg *bg, struct note_uplink **ret,
    char *why, size_t cap)
{
	if (!bg->running) {
		return 0;
	}
	pthread_join(bg->th, NULL);
	bg->running = false;
	if (bg->r != 0) {
		snprintf(why, cap, "%s", bg->why);
		return bg->r;
	}
	*ret = bg->up;
	bg->up = NULL;
	return 0;
}

const char *
note_chan_server(const struct note_chan *nc)
{
	return nc->conn.server;
}

int
note_chan_open(struct note_chan *nc, struct note_uplink **ret)
{
	char why[128];
	int r;

	if ((r = note_chan_connect(nc, ret, why, sizeof(why))) != 0) {
		ml_err("%s", why);
	}
	return r;
}
