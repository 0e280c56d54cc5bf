/*
 * Reader side of the upload, and the loopback link (idr_client.h).
 */
#include <stdlib.h>
#include <string.h>

#include "ml_log.h"
#include "ml_rd.h"
#include "ml_wipe.h"

#include "idpkt.h"
#include "idr_client.h"

#define REPLY_MAX	(HS_MAX_RECORD)

/* ---------------------------------------------------------------- loopback */

struct loop {
	hs_handler_fn	 fn;
	void		*ctx;
	struct hs_peer	 peer;
	struct ml_wr	 reply;
	uint8_t		 reply_type;
	bool		 pending;
};

static int
loop_send(void *ctx, uint8_t type, const uint8_t *p, size_t n)
{
	struct loop *lp = ctx;
	uint8_t rt = HS_REC_APP - 1;
	int r;

	ml_wr_clear(&lp->reply);
	lp->pending = false;
	r = lp->fn(lp->ctx, &lp->peer, type, p, n, &lp->reply, &rt);
	if (r != 0) {
		/* what mintline-server does: HS_REC_ERROR with the code */
		ml_wr_clear(&lp->reply);
		if ((r = ml_wr_u32be(&lp->reply, (uint32_t)r)) != 0) {
			return r;
		}
		lp->reply_type = HS_REC_ERROR;
		lp->pending = true;
		return 0;
	}
	if (rt != HS_REC_APP - 1) {
		lp->reply_type = rt;
		lp->pending = true;
	}
	return 0;
}

static int
loop_recv(void *ctx, uint8_t *ret_type, uint8_t *buf, size_t cap,
    size_t *ret_len, int timeout_ms)
{
	struct loop *lp = ctx;

	if (!lp->pending) {
		return ML_ERR_TIMEOUT;
	}
	if (lp->reply.len > cap) {
		return ML_ERR_TOO_LARGE;
	}
	memcpy(buf, lp->reply.p, lp->reply.len);
	*ret_len = lp->reply.len;
	*ret_type = lp->reply_type;
	lp->pending = false;
	ml_wr_clear(&lp->reply);
	return 0;
}

static void
loop_close(void *ctx)
{
	struct loop *lp = ctx;

	if (lp == NULL) {
		return;
	}
	ml_wr_free(&lp->reply);
	ml_freezero(lp, sizeof(*lp));
}

int
idr_link_loop(hs_handler_fn fn, void *ctx, const struct hs_peer *peer,
    struct idr_link *ret)
{
	struct loop *lp;

	if ((lp = calloc(1, sizeof(*lp))) == NULL) {
		return ML_ERR_NOMEM;
	}
	lp->fn = fn;
	lp->ctx = ctx;
	lp->peer = *peer;
	lp->reply = ml_wr_dyn(REPLY_MAX);
	ret->ctx = lp;
	ret->send = loop_send;
	ret->recv = loop_recv;
	ret->close = loop_close;
	return 0;
}

/* ---------------------------------------------------------------- faults */

/* splitmix64: deterministic per seed. */
static uint64_t
rng_next(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static bool
rng_pm(uint64_t *s, unsigned pm)
{
	return pm > 0 && rng_next(s) % 1000 < pm;
}

/* ---------------------------------------------------------------- upload */

struct up {
	const struct idr_link		*l;
	const struct idr_upload_req	*req;
	struct idr_faults		 f;
	uint64_t			 rng;
	struct idr_ready		 rdy;
	const uint8_t			*plain;
	uint32_t			 total;
	uint16_t			 pkt_size;
	uint16_t			 npkts;
	struct ml_wr			 pkt;
	struct ml_wr			 burst;		/* n, then lv16(pkt)... */
	uint8_t				 nburst;
	uint8_t				 per_rec;
	struct idr_upload_stats		 st;
};

/* Send the BURST being built, if any. */
static int
up_flush(struct up *u)
{
	int r;

	if (u->nburst == 0) {
		return 0;
	}
	u->burst.p[0] = u->nburst;
	r = u->l->send(u->l->ctx, IDR_REC_BURST, u->burst.p, u->burst.len);
	ml_wr_clear(&u->burst);
	u->nburst = 0;
	return r;
}

/* One copy of the sealed packet in u->pkt: its own record or the burst. */
static int
up_emit(struct up *u)
{
	int r;

	if (u->per_rec <= 1) {
		return u->l->send(u->l->ctx, IDR_REC_PKT, u->pkt.p, u->pkt.len);
	}
	if (u->nburst > 0 && u->burst.len + 2 + u->pkt.len > HS_MAX_RECORD) {
		ML_TRY(up_flush(u));	/* a record holds HS_MAX_RECORD */
	}
	if (u->nburst == 0) {
		ML_TRY(ml_wr_u8(&u->burst, 0));
	}
	ML_TRY(ml_wr_lv16(&u->burst, u->pkt.p, u->pkt.len));
	if (++u->nburst == u->per_rec) {
		ML_TRY(up_flush(u));
	}
	r = 0;
out:
	return r;
}

/* Seal and send packet i, through the fault injector. */
static int
up_send_pkt(struct up *u, uint16_t i)
{
	int copies = 1, k;
	int r;

	ml_wr_clear(&u->pkt);
	ML_TRY(idr_pkt_seal(u->rdy.key, u->rdy.upload_id, i, u->pkt_size,
	    u->plain, u->total, &u->pkt));
	u->st.pkts++;
	u->st.bytes += u->pkt.len;
	if (u->f.never == (int)i || rng_pm(&u->rng, u->f.loss_pm)) {
		r = 0;		/* lost on the way */
		goto out;
	}
	if (rng_pm(&u->rng, u->f.corrupt_pm)) {
		u->pkt.p[rng_next(&u->rng) % u->pkt.len] ^= 0x5a;
	}
	if (rng_pm(&u->rng, u->f.dup_pm)) {
		copies = 2;
	}
	for (k = 0; k < copies; k++) {
		ML_TRY(up_emit(u));
	}
	r = 0;
out:
	return r;
}

/* Receive one reply; HS_REC_ERROR becomes its code. */
static int
up_recv(struct up *u, uint8_t *ret_type, uint8_t *buf, size_t cap,
    size_t *ret_len)
{
	struct ml_rd rd;
	uint32_t code;
	int tmo = u->req->timeout_ms > 0 ? u->req->timeout_ms : IDR_DEADLINE_MS;
	int r;

	ML_TRY(u->l->recv(u->l->ctx, ret_type, buf, cap, ret_len, tmo));
	if (*ret_type == HS_REC_ERROR) {
		rd = ML_RD_INIT(buf, *ret_len);
		ML_TRY(ml_rd_u32be(&rd, &code));
		r = (int)(int32_t)code;
		ML_ENSURE(r < 0, ML_ERR_FORMAT);
		goto out;
	}
	ML_ENSURE(*ret_type != HS_REC_CLOSE, ML_ERR_IO);
	r = 0;
out:
	return r;
}

static void
up_abort(struct up *u, int reason)
{
	uint8_t b[IDR_ID_LEN + 4];
	struct ml_wr w = ML_WR_FIXED(b, sizeof(b));

	if (idr_abort_encode(u->rdy.upload_id, reason, &w) == 0) {
		(void)u->l->send(u->l->ctx, IDR_REC_ABORT, w.p, w.len);
	}
}

/* BEGIN -> READY: the upload id and key (u->rdy).  buf: REPLY_MAX. */
static int
up_begin(struct up *u, uint8_t *buf)
{
	uint8_t raw[64];
	struct ml_wr msg = ML_WR_FIXED(raw, sizeof(raw));
	struct idr_begin b;
	uint8_t type;
	size_t n = 0;
	int r;

	b.version = IDR_VERSION;
	b.npkts = u->npkts;
	b.pkt_size = u->pkt_size;
	b.total = u->total;
	ML_TRY(ml_sha256(u->plain, u->total, b.digest));
	ML_TRY(idr_begin_encode(&b, &msg));
	ML_TRY(u->l->send(u->l->ctx, IDR_REC_BEGIN, msg.p, msg.len));
	ML_TRY(up_recv(u, &type, buf, REPLY_MAX, &n));
	ML_ENSURE(type == IDR_REC_READY, ML_ERR_FORMAT);
	ML_TRY(idr_ready_decode(buf, n, &u->rdy));
	r = 0;
out:
	ml_wipe(buf, n);
	return r;
}

/*
 *= REQ ID-8 (packets and retransmission)
 *# the reader re-sends only those
 */
static int
up_resend(struct up *u, const struct idr_retx_ent *e, size_t n)
{
	size_t k;
	int r;

	if (u->f.whole_resend) {	/* the benchmark's baseline */
		for (k = 0; k < u->npkts; k++) {
			ML_TRY(up_send_pkt(u, (uint16_t)k));
			u->st.resent++;
		}
	} else {
		for (k = 0; k < n; k++) {
			ML_TRY(up_send_pkt(u, e[k].index));
			u->st.resent++;
		}
	}
	r = 0;
out:
	return r;
}

int
idr_upload(const struct idr_link *l, const struct idr_upload_req *req,
    struct ml_wr *info, struct idr_upload_stats *ret_st)
{
	static const struct idr_faults none = IDR_FAULTS_NONE;
	struct ml_wr plain = ml_wr_dyn(IDR_MAX_TOTAL);
	struct ml_wr msg = ml_wr_dyn(1024);
	struct idr_retx_ent *ents = NULL;
	struct up u;
	uint8_t *buf = NULL, id[IDR_ID_LEN], round = 0, rround;
	uint8_t type;
	size_t n, nents;
	bool begun = false;
	int status = 0;
	long i;
	int r;

	memset(&u, 0, sizeof(u));
	u.l = l;
	u.req = req;
	u.f = req->faults != NULL ? *req->faults : none;
	u.rng = u.f.seed;
	u.pkt = ml_wr_dyn(IDR_PKT_MAX + IDR_PKT_OVERHEAD);
	u.pkt_size = req->pkt_size != 0 ? req->pkt_size : IDR_PKT_DEFAULT;
	u.per_rec = req->per_record == 0 ? IDR_BURST_DEFAULT :
	    req->per_record > IDR_BURST_MAX ? IDR_BURST_MAX : req->per_record;
	u.burst = ml_wr_dyn(1 + IDR_BURST_MAX * (2 + IDR_PKT_MAX +
	    IDR_PKT_OVERHEAD));
	ML_ENSURE((buf = malloc(REPLY_MAX)) != NULL, ML_ERR_NOMEM);

	/* ID-7: configuration + encrypted ID data, one plaintext */
	ML_TRY(idr_upload_encode(req->config, req->config_len, req->data,
	    req->data_len, &plain));
	u.plain = plain.p;
	u.total = (uint32_t)plain.len;
	ML_ENSURE((u.npkts = idr_npkts(u.total, u.pkt_size)) != 0,
	    ML_ERR_TOO_LARGE);
	ML_ENSURE((ents = calloc(u.npkts, sizeof(*ents))) != NULL,
	    ML_ERR_NOMEM);

	ML_TRY(up_begin(&u, buf));
	begun = true;

	/*= REQ ID-8 (packets and retransmission)
	 *# each encrypted and sent in turn */
	for (i = 0; i < u.npkts; i++) {
		uint16_t idx = u.f.reorder ? (uint16_t)(u.npkts - 1 - i) :
		    (uint16_t)i;

		ML_TRY(up_send_pkt(&u, idx));
	}
	for (;;) {
		if (req->check != NULL) {
			ML_TRY(req->check(req->check_ctx));
		}
		ML_TRY(up_flush(&u));
		ml_wr_clear(&msg);
		ML_TRY(idr_end_encode(u.rdy.upload_id, round, &msg));
		ML_TRY(l->send(l->ctx, IDR_REC_END, msg.p, msg.len));
		ML_TRY(up_recv(&u, &type, buf, REPLY_MAX, &n));
		if (type == IDR_REC_RESULT) {
			break;
		}
		ML_ENSURE(type == IDR_REC_RETX, ML_ERR_FORMAT);
		ML_TRY(idr_retx_decode(buf, n, u.npkts, id, &rround, ents,
		    u.npkts, &nents));
		ML_ENSURE(memcmp(id, u.rdy.upload_id, IDR_ID_LEN) == 0 &&
		    rround == (uint8_t)(round + 1), ML_ERR_FORMAT);
		round = rround;
		u.st.rounds++;
		ML_TRY(up_resend(&u, ents, nents));
	}
	begun = false;		/* the server has closed the session */
	ML_TRY(idr_result_decode(buf, n, u.rdy.upload_id, u.rdy.key, &status,
	    info));
	ML_TRY(status);
	r = 0;
out:
	if (r != 0 && begun) {
		up_abort(&u, r);
	}
	if (ret_st != NULL) {
		*ret_st = u.st;
	}
	if (buf != NULL) {
		ml_freezero(buf, REPLY_MAX);
	}
	free(ents);
	ml_wr_free(&plain);
	ml_wr_free(&msg);
	ml_wr_free(&u.pkt);
	ml_wr_free(&u.burst);
	ml_wipe(&u.rdy, sizeof(u.rdy));
	return r;
}

/* ---------------------------------------------------------------- hs link */

static int
hsl_send(void *ctx, uint8_t type, const uint8_t *p, size_t n)
{
	return hs_chan_send(ctx, type, p, n);
}

static int
hsl_recv(void *ctx, uint8_t *ret_type, uint8_t *buf, size_t cap,
    size_t *ret_len, int timeout_ms)
{
	int r = hs_chan_recv(ctx, ret_type, buf, cap, ret_len, timeout_ms);

	/* A record refused by the record layer (replayed, reordered,
	 * tampered: hs_rl_open's ML_ERR_AUTH) is a broken channel, not the
	 * SAM's verdict on the card, which arrives as an ERROR record;
	 * found by tests/fault (a duplicated server record was reported as
	 * "the SAM cannot decrypt this card"). */
	return r == ML_ERR_AUTH ? ML_ERR_IO : r;
}

static void
hsl_close(void *ctx)
{
	hs_chan_close(ctx);
}

void
idr_link_hs(struct hs_chan *c, struct idr_link *ret)
{
	ret->ctx = c;
	ret->send = hsl_send;
	ret->recv = hsl_recv;
	ret->close = hsl_close;
}
