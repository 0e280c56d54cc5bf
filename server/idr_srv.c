/*
 * Server side of ID reading: sessions, retransmission rounds, SAM, RESULT
 * (idr_srv.h).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ml_log.h"
#include "ml_tlv.h"
#include "ml_wipe.h"

#include "idpkt.h"
#include "idr_srv.h"
#include "sam.h"

#define SRV_DEFAULT_MAX_SESSIONS	4096
#define SRV_DEFAULT_MAX_PER_PEER	4
#define REC_READ			1	/* REG_EV_READ */
#define REC_ERROR			2	/* REG_EV_ERROR */

struct idr_sess {
	char		 serial[HS_MAX_SERIAL + 1];
	char		 certno[HS_MAX_CERTNO + 1];
	uint64_t	 deadline;	/* monotonic ms */
	uint8_t		 rounds;	/* RETX sent */
	uint8_t		 max_rounds;	/* what READY said (limits reload) */
	int		 failed;	/* a limit broke: the RESULT status */
	bool		 busy;		/* a worker holds it (table unlocked) */
	struct idr_asm	 a;
};

struct idr_srv {
	struct idr_srv_cfg	 cfg;
	struct sam		*sam;
	pthread_mutex_t		 mu;
	struct idr_sess		**sess;
	uint32_t		 nsess;
	struct idr_srv_stats	 st;
};

void
idr_srv_set_limits(struct idr_srv *s, uint32_t deadline_ms, uint8_t max_rounds)
{
	pthread_mutex_lock(&s->mu);
	s->cfg.deadline_ms = deadline_ms != 0 ? deadline_ms : IDR_DEADLINE_MS;
	s->cfg.max_rounds = max_rounds != 0 ? max_rounds : IDR_MAX_ROUNDS;
	pthread_mutex_unlock(&s->mu);
}

int
idr_srv_new(const struct idr_srv_cfg *cfg, struct sam *sam,
    struct idr_srv **ret_srv)
{
	struct idr_srv *s = NULL;
	int r;

	ML_ENSURE(sam != NULL, ML_ERR_ARG);
	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	if (cfg != NULL) {
		s->cfg = *cfg;
	}
	if (s->cfg.deadline_ms == 0) {
		s->cfg.deadline_ms = IDR_DEADLINE_MS;
	}
	if (s->cfg.max_rounds == 0) {
		s->cfg.max_rounds = IDR_MAX_ROUNDS;
	}
	if (s->cfg.max_sessions == 0) {
		s->cfg.max_sessions = SRV_DEFAULT_MAX_SESSIONS;
	}
	if (s->cfg.max_per_peer == 0) {
		s->cfg.max_per_peer = SRV_DEFAULT_MAX_PER_PEER;
	}
	ML_ENSURE((s->sess = calloc(s->cfg.max_sessions,
	    sizeof(*s->sess))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_init(&s->mu, NULL);
	s->sam = sam;
	*ret_srv = s;
	s = NULL;
	r = 0;
out:
	free(s);
	return r;
}

static void
sess_free(struct idr_sess *x)
{
	if (x == NULL) {
		return;
	}
	idr_asm_free(&x->a);
	ml_freezero(x, sizeof(*x));
}

void
idr_srv_free(struct idr_srv *s)
{
	uint32_t i;

	if (s == NULL) {
		return;
	}
	for (i = 0; i < s->nsess; i++) {
		sess_free(s->sess[i]);
	}
	free(s->sess);
	pthread_mutex_destroy(&s->mu);
	ml_freezero(s, sizeof(*s));
}

static void
record(struct idr_srv *s, const struct hs_peer *peer, int ev,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
record(struct idr_srv *s, const struct hs_peer *peer, int ev,
    const char *fmt, ...)
{
	char detail[256];
	va_list ap;

	if (s->cfg.record == NULL) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	s->cfg.record(s->cfg.record_ctx, peer, ev, detail);
}

static bool
sess_owned_by(const struct idr_sess *x, const struct hs_peer *peer)
{
	return strcmp(x->serial, peer->serial) == 0 &&
	    strcmp(x->certno, peer->certno) == 0;
}

/* Remove entry i (table locked). */
static struct idr_sess *
table_take(struct idr_srv *s, uint32_t i)
{
	struct idr_sess *x = s->sess[i];

	s->sess[i] = s->sess[--s->nsess];
	s->sess[s->nsess] = NULL;
	return x;
}

#define REAP_BATCH	64

/*
 * Take up to REAP_BATCH expired sessions out of the table (locked) into
 * ret[]; the caller records and frees them unlocked (the registry may be
 * slow).
 */
static uint32_t
reap_locked(struct idr_srv *s, uint64_t now, struct idr_sess **ret)
{
	uint32_t i = 0, n = 0;

	while (i < s->nsess && n < REAP_BATCH) {
		if (!s->sess[i]->busy && now > s->sess[i]->deadline) {
			ret[n++] = table_take(s, i);
			continue;
		}
		i++;
	}
	s->st.expired += n;
	s->st.failed += n;
	s->st.live = s->nsess;
	return n;
}

/* Record (ID-3) and free what reap_locked() took. */
static void
reap_finish(struct idr_srv *s, struct idr_sess **x, uint32_t n)
{
	struct hs_peer peer;
	uint32_t i;

	for (i = 0; i < n; i++) {
		memset(&peer, 0, sizeof(peer));
		peer.kind = HS_KIND_READER;
		memcpy(peer.serial, x[i]->serial, sizeof(peer.serial));
		memcpy(peer.certno, x[i]->certno, sizeof(peer.certno));
		record(s, &peer, REC_ERROR, "idread ML_ERR_TIMEOUT expired "
		    "pkts=%u/%u rounds=%u", x[i]->a.nhave, x[i]->a.npkts,
		    x[i]->rounds);
		sess_free(x[i]);
	}
}

void
idr_srv_reap(struct idr_srv *s)
{
	struct idr_sess *gone[REAP_BATCH];
	uint32_t n;

	pthread_mutex_lock(&s->mu);
	n = reap_locked(s, idr_now_ms(), gone);
	pthread_mutex_unlock(&s->mu);
	reap_finish(s, gone, n);
}

/*
 * Find the peer's session by id and mark it busy.  ML_ERR_NOT_FOUND if
 * absent or someone else's (never tell which); ML_ERR_STATE if busy.
 */
static int
sess_acquire(struct idr_srv *s, const struct hs_peer *peer,
    const uint8_t id[static IDR_ID_LEN], struct idr_sess **ret)
{
	uint32_t i;
	int r = ML_ERR_NOT_FOUND;

	pthread_mutex_lock(&s->mu);
	for (i = 0; i < s->nsess; i++) {
		struct idr_sess *x = s->sess[i];

		if (memcmp(x->a.upload_id, id, IDR_ID_LEN) != 0) {
			continue;
		}
		if (!sess_owned_by(x, peer)) {
			break;
		}
		if (x->busy) {
			r = ML_ERR_STATE;
			break;
		}
		x->busy = true;
		*ret = x;
		r = 0;
		break;
	}
	pthread_mutex_unlock(&s->mu);
	return r;
}

/* Give a session back, or (done) remove and free it. */
static void
sess_release(struct idr_srv *s, struct idr_sess *x, bool done)
{
	uint32_t i;

	pthread_mutex_lock(&s->mu);
	x->busy = false;
	if (done) {
		for (i = 0; i < s->nsess; i++) {
			if (s->sess[i] == x) {
				sess_free(table_take(s, i));
				break;
			}
		}
	}
	pthread_mutex_unlock(&s->mu);
}

/* BEGIN -> READY. */
static int
srv_begin(struct idr_srv *s, const struct hs_peer *peer, const uint8_t *p,
    size_t n, struct ml_wr *reply, uint8_t *reply_type)
{
	struct idr_begin b;
	struct idr_ready rdy;
	struct idr_sess *x = NULL, *gone[REAP_BATCH];
	uint32_t i, mine = 0, max_pkts, ngone;
	uint64_t now = idr_now_ms();
	int r;

	memset(&rdy, 0, sizeof(rdy));
	ML_TRY(idr_begin_decode(p, n, &b));
	ML_ENSURE((x = calloc(1, sizeof(*x))) != NULL, ML_ERR_NOMEM);
	snprintf(x->serial, sizeof(x->serial), "%s", peer->serial);
	snprintf(x->certno, sizeof(x->certno), "%s", peer->certno);
	/* the limits in force now (SIGHUP may change them), for this read */
	pthread_mutex_lock(&s->mu);
	rdy.deadline_ms = s->cfg.deadline_ms;
	x->max_rounds = s->cfg.max_rounds;
	pthread_mutex_unlock(&s->mu);
	x->deadline = now + rdy.deadline_ms;
	rdy.version = IDR_VERSION;
	ML_TRY(ml_rand(rdy.upload_id, sizeof(rdy.upload_id)));
	ML_TRY(ml_rand(rdy.key, sizeof(rdy.key)));
	/* every packet may need up to max_rounds re-sends, plus slack */
	max_pkts = (uint32_t)b.npkts * (x->max_rounds + 1u) + 16u;
	if (max_pkts > 0xffffu) {
		max_pkts = 0xffffu;
	}
	ML_TRY(idr_asm_init(&x->a, &b, rdy.upload_id, rdy.key, max_pkts));
	rdy.max_rounds = x->max_rounds;
	rdy.max_pkts = (uint16_t)max_pkts;
	ML_TRY(idr_ready_encode(&rdy, reply));

	pthread_mutex_lock(&s->mu);
	ngone = reap_locked(s, now, gone);
	for (i = 0; i < s->nsess; i++) {
		mine += sess_owned_by(s->sess[i], peer);
	}
	if (mine >= s->cfg.max_per_peer || s->nsess >= s->cfg.max_sessions) {
		r = ML_ERR_FULL;
	} else {
		s->sess[s->nsess++] = x;
		x = NULL;
		s->st.uploads++;
		s->st.live = s->nsess;
		r = 0;
	}
	pthread_mutex_unlock(&s->mu);
	reap_finish(s, gone, ngone);
	if (r != 0) {
		ml_wipe(reply->p, reply->len);
		reply->len = 0;
		goto out;
	}
	*reply_type = IDR_REC_READY;
out:
	ml_wipe(&rdy, sizeof(rdy));
	sess_free(x);
	return r;
}

/* PKT: never answered. */
static int
srv_pkt(struct idr_srv *s, const struct hs_peer *peer, const uint8_t *p,
    size_t n)
{
	struct idr_pkt_hdr h;
	struct idr_sess *x = NULL;
	int r, pr;

	if (idr_pkt_parse(p, n, &h) != 0) {
		pthread_mutex_lock(&s->mu);
		s->st.pkts++;
		s->st.pkts_bad++;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	if ((r = sess_acquire(s, peer, h.upload_id, &x)) != 0) {
		pthread_mutex_lock(&s->mu);
		s->st.pkts++;
		s->st.pkts_bad++;
		pthread_mutex_unlock(&s->mu);
		return 0;
	}
	pr = x->failed == 0 ? idr_asm_put(&x->a, p, n) : x->failed;
	if (pr == ML_ERR_TOO_LARGE && x->failed == 0) {
		x->failed = ML_ERR_TOO_LARGE;	/* answered at END */
	}
	pthread_mutex_lock(&s->mu);
	s->st.pkts++;
	s->st.pkts_bad += pr != 0 && pr != ML_ERR_TOO_LARGE;
	pthread_mutex_unlock(&s->mu);
	sess_release(s, x, false);
	return 0;
}

/* BURST: each packet as a PKT; a malformed burst is counted, not answered. */
static int
srv_burst(struct idr_srv *s, const struct hs_peer *peer, const uint8_t *p,
    size_t n)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	const uint8_t *pkt;
	size_t len;
	uint8_t cnt, i;

	if (idr_burst_begin(&rd, &cnt) != 0) {
		goto bad;
	}
	for (i = 0; i < cnt; i++) {
		if (idr_burst_next(&rd, &pkt, &len) != 0) {
			goto bad;
		}
		(void)srv_pkt(s, peer, pkt, len);
	}
	if (ml_rd_end(&rd) == 0) {
		return 0;
	}
bad:
	pthread_mutex_lock(&s->mu);
	s->st.pkts_bad++;
	pthread_mutex_unlock(&s->mu);
	return 0;
}

/* Reassembled upload -> SAM -> RESULT (status or sealed information). */
static int
srv_decode(struct idr_srv *s, struct idr_sess *x, struct ml_wr *info)
{
	const uint8_t *up;
	struct ml_rd cfg, dat;
	size_t up_len;
	int r;

	ML_TRY(idr_asm_finish(&x->a, &up, &up_len));
	ML_TRY(idr_upload_decode(up, up_len, &cfg, &dat));
	ML_TRY(sam_decode(s->sam, ml_rd_ptr(&cfg), ml_rd_left(&cfg),
	    ml_rd_ptr(&dat), ml_rd_left(&dat), info));
	r = 0;
out:
	return r;
}

/* The card serial (hex) from the reassembled upload, for the record. */
static void
card_hex(const struct idr_asm *a, char *hex, size_t cap)
{
	const uint8_t *up;
	struct ml_rd cfg, dat, ser;
	uint32_t tag;
	size_t up_len, i;

	snprintf(hex, cap, "?");
	if (!idr_asm_complete(a) || idr_asm_finish(a, &up, &up_len) != 0 ||
	    idr_upload_decode(up, up_len, &cfg, &dat) != 0 ||
	    ml_tlv_next(&cfg, &tag, &ser) != 0 || tag != 0x80) {
		return;
	}
	for (i = 0; i < ml_rd_left(&ser) && 2 * i + 2 < cap; i++) {
		snprintf(hex + 2 * i, 3, "%02X", ml_rd_ptr(&ser)[i]);
	}
}

/* END -> RETX or RESULT. */
static int
srv_end(struct idr_srv *s, const struct hs_peer *peer, const uint8_t *p,
    size_t n, struct ml_wr *reply, uint8_t *reply_type)
{
	struct idr_retx_ent *ents = NULL;
	struct idr_sess *x = NULL;
	struct ml_wr info = ml_wr_dyn(SAM_MAX_INFO);
	uint8_t id[IDR_ID_LEN], round;
	char card[2 * 8 + 2];
	size_t nmiss = 0;
	bool done = false;
	int status = 0;
	int r;

	ML_TRY(idr_end_decode(p, n, id, &round));
	ML_TRY(sess_acquire(s, peer, id, &x));
	if (x->failed != 0) {
		status = x->failed;
	} else if (idr_now_ms() > x->deadline) {
		status = ML_ERR_TIMEOUT;
	} else if (idr_asm_complete(&x->a)) {
		status = srv_decode(s, x, &info);
	} else if (x->rounds >= x->max_rounds) {
		status = ML_ERR_TIMEOUT;	/* a packet never arrived */
	} else {
		ML_ENSURE((ents = calloc(x->a.npkts, sizeof(*ents))) != NULL,
		    ML_ERR_NOMEM);
		idr_asm_missing(&x->a, ents, x->a.npkts, &nmiss);
		ML_TRY(idr_retx_encode(id, ++x->rounds, ents, nmiss, reply));
		*reply_type = IDR_REC_RETX;
		pthread_mutex_lock(&s->mu);
		s->st.retx_rounds++;
		pthread_mutex_unlock(&s->mu);
		r = 0;
		goto out;
	}
	done = true;
	card_hex(&x->a, card, sizeof(card));
	ML_TRY(idr_result_encode(id, status, x->a.key, info.p, info.len,
	    reply));
	*reply_type = IDR_REC_RESULT;
	pthread_mutex_lock(&s->mu);
	s->st.pkts_dup += x->a.dups;
	if (status == 0) {
		s->st.ok++;
	} else {
		s->st.failed++;
	}
	pthread_mutex_unlock(&s->mu);
	if (status == 0) {
		record(s, peer, REC_READ, "idread ok card=%s pkts=%u rounds=%u",
		    card, x->a.received, x->rounds);
	} else {
		record(s, peer, REC_ERROR, "idread %s card=%s pkts=%u/%u "
		    "rounds=%u", ml_errname(status), card, x->a.nhave,
		    x->a.npkts, x->rounds);
	}
	r = 0;
out:
	if (x != NULL) {
		sess_release(s, x, done || r != 0);
	}
	free(ents);
	ml_wr_free(&info);
	if (done || r != 0) {
		pthread_mutex_lock(&s->mu);
		s->st.live = s->nsess;
		pthread_mutex_unlock(&s->mu);
	}
	return r;
}

/* ABORT: the reader gave up (card removed, shutting down). */
static int
srv_abort(struct idr_srv *s, const struct hs_peer *peer, const uint8_t *p,
    size_t n)
{
	struct idr_sess *x = NULL;
	uint8_t id[IDR_ID_LEN];
	int reason, r;

	ML_TRY(idr_abort_decode(p, n, id, &reason));
	if (sess_acquire(s, peer, id, &x) != 0) {
		r = 0;		/* already gone: nothing to do */
		goto out;
	}
	record(s, peer, REC_ERROR, "idread aborted by reader: %s",
	    ml_errname(reason));
	sess_release(s, x, true);
	pthread_mutex_lock(&s->mu);
	s->st.failed++;
	s->st.live = s->nsess;
	pthread_mutex_unlock(&s->mu);
	r = 0;
out:
	return r;
}

int
idr_srv_handle(void *ctx, const struct hs_peer *peer, uint8_t type,
    const uint8_t *payload, size_t len, struct ml_wr *reply,
    uint8_t *reply_type)
{
	struct idr_srv *s = ctx;

	switch (type) {
	case IDR_REC_BEGIN:
		return srv_begin(s, peer, payload, len, reply, reply_type);
	case IDR_REC_PKT:
		return srv_pkt(s, peer, payload, len);
	case IDR_REC_BURST:
		return srv_burst(s, peer, payload, len);
	case IDR_REC_END:
		return srv_end(s, peer, payload, len, reply, reply_type);
	case IDR_REC_ABORT:
		return srv_abort(s, peer, payload, len);
	}
	return ML_ERR_UNSUPPORTED;
}

void
idr_srv_get_stats(struct idr_srv *s, struct idr_srv_stats *ret)
{
	pthread_mutex_lock(&s->mu);
	*ret = s->st;
	ret->live = s->nsess;
	pthread_mutex_unlock(&s->mu);
}
