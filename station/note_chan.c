/*
 * Issuance records over the station's hs channel (see note_chan.h).
 */
#include <stdlib.h>

#include "ml_log.h"
#include "note_chan.h"
#include "note_proto.h"

static int
chan_call(void *ctx, unsigned type, const uint8_t *req, size_t len,
    uint8_t *resp, size_t cap, size_t *ret_len)
{
	struct st_link *l = ctx;
	uint8_t rtype;
	int r;

	r = hs_chan_call(l->chan, (uint8_t)type, req, len, &rtype, resp, cap,
	    ret_len);
	if (r != 0) {
		/* A broken channel: the caller reconnects and repeats (every
		 * issuance request is idempotent). */
		return r == ML_ERR_TOO_LARGE ? r : ML_ERR_IO;
	}
	if (rtype != NOTE_REC_REPLY) {
		ml_warn("server answered record type 0x%02x", rtype);
		return rtype == HS_REC_ERROR ? ML_ERR_REJECTED : ML_ERR_FORMAT;
	}
	return 0;
}

static void
chan_close(void *ctx)
{
	st_link_close(ctx);
}

static const struct note_uplink_ops chan_ops = {
	.call = chan_call,
	.close = chan_close,
};

int
note_chan_open(const struct st_conn *conn, struct note_uplink **ret)
{
	struct st_link *l = NULL;
	int r;

	if ((r = st_link_open(conn, &l)) != 0) {
		return r;
	}
	if ((r = note_uplink_custom(&chan_ops, l, ret)) != 0) {
		st_link_close(l);
	}
	return r;
}
