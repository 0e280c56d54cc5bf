/*
 * Issuance records over the station's hs channel (see note_chan.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hs.h"
#include "ml_log.h"
#include "note_chan.h"
#include "note_proto.h"

struct note_chan {
	struct st_conn		 conn;
	struct key		*key;
	struct hs_trust		*trust;
	struct hs_chain		 chain;
	struct hs_client_cfg	 cfg;
	char			 serial[HS_MAX_SERIAL + 1];
};

int
note_chan_new(const struct st_conn *c, struct note_chan **ret)
{
	struct note_chan *nc = NULL;
	struct hs_certinfo ci;
	int r;

	ML_ENSURE(c->ca[0] && c->cert[0] && c->key[0], ML_ERR_ARG);
	ML_ENSURE((nc = calloc(1, sizeof(*nc))) != NULL, ML_ERR_NOMEM);
	nc->conn = *c;
	ML_TRY(hs_trust_load(c->ca, c->crl[0] ? c->crl : NULL, &nc->trust));
	if ((r = hs_chain_load(c->cert, &nc->chain)) != 0) {
		ml_err("certificate chain: %s", ml_errmsg(r));
		goto out;
	}
	if ((r = key_p11_open(c->module, c->key, &nc->key)) != 0) {
		ml_err("cannot open the channel key: %s", ml_errmsg(r));
		goto out;
	}
	ML_TRY(hs_cert_facts(nc->chain.blob[0].p, nc->chain.blob[0].len, &ci));
	snprintf(nc->serial, sizeof(nc->serial), "%s",
	    c->serial[0] ? c->serial : ci.serial);
	nc->cfg.flow = c->flow;
	nc->cfg.kind = c->kind;
	nc->cfg.cred.key = nc->key;
	nc->cfg.cred.chain = nc->chain.blob;
	nc->cfg.cred.nchain = nc->chain.n;
	nc->cfg.trust = nc->trust;
	nc->cfg.serial = nc->serial;
	nc->cfg.timeout_ms = c->timeout_ms;
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
	key_free(nc->key);
	hs_trust_free(nc->trust);
	hs_chain_free(&nc->chain);
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
		return r == ML_ERR_TOO_LARGE ? r : ML_ERR_IO;
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

int
note_chan_connect(struct note_chan *nc, struct note_uplink **ret, char *why,
    size_t cap)
{
	struct hs_chan *ch = NULL;
	int r, alert = 0;

	if ((r = st_server_connect(nc->conn.server, &nc->cfg, &ch,
	    &alert)) != 0) {
		/* The cause a line operator can act on: the connect's socket
		 * error or the handshake alert, with the address. */
		snprintf(why, cap, "%s", ml_errmsg(r));
		/* unreachable server: ML_ERR_IO, the caller may retry */
		if (r != ML_ERR_REJECTED && r != ML_ERR_CERT) {
			r = ml_errrecode(r, ML_ERR_IO);
		}
		return r;
	}
	if ((r = note_uplink_custom(&chan_ops, ch, ret)) != 0) {
		hs_chan_close(ch);
	}
	return r;
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
