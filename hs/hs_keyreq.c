/*
 * KEYREQ (client -> server), the first message: it names the flow, which
 * never changes afterwards, and carries the identity claim.
 *
 *	u8 type = 0x01 | u8 version = 1 | u8 flow (1 A, 2 B) | u8 kind
 *	(1 reader, 2 station) | str8 serial | str8 certno (hex) | cnonce[32]
 *
 *= REQ ID-1
 *# A read command makes the reader ask the server for a transport key.
 */
#include <string.h>

#include "hs_int.h"

int
hs_parse_keyreq(const uint8_t *m, size_t len, uint8_t *ret_version,
    uint8_t *ret_flow, uint8_t *ret_kind, char *serial, char *certno,
    uint8_t cnonce[HS_R_LEN])
{
	struct ml_rd rd = ML_RD_INIT(m, len);
	uint8_t t;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(&rd, &t));
	ML_ENSURE(t == HS_KEYREQ, ML_ERR_FORMAT);
	ML_TRY(ml_rd_u8(&rd, ret_version));
	ML_TRY(ml_rd_u8(&rd, ret_flow));
	ML_TRY(ml_rd_u8(&rd, ret_kind));
	ML_TRY(hs_get_str8(&rd, HS_MAX_SERIAL, false, serial));
	ML_TRY(hs_get_str8(&rd, HS_MAX_CERTNO, true, certno));
	ML_TRY(ml_rd_copy(&rd, cnonce, HS_R_LEN));
	ML_TRY(ml_rd_end(&rd));
	r = 0;
out:
	return r;
}

int
hs_keyreq_send(struct hs *hs, struct ml_wr *w)
{
	int r = ML_ERR_INTERNAL;

	ML_TRY(key_random(hs->ccfg->cred.key, hs->cnonce,
	    sizeof(hs->cnonce)));
	ML_TRY(ml_wr_u8(w, HS_KEYREQ));
	ML_TRY(ml_wr_u8(w, HS_VERSION));
	ML_TRY(ml_wr_u8(w, (uint8_t)hs->flow));
	ML_TRY(ml_wr_u8(w, (uint8_t)hs->kind));
	ML_TRY(hs_put_str8(w, hs->serial));
	ML_TRY(hs_put_str8(w, hs->certno));
	ML_TRY(ml_wr_bytes(w, hs->cnonce, sizeof(hs->cnonce)));
	r = 0;
out:
	return r;
}

int
hs_keyreq_recv(struct hs *hs, const uint8_t *m, size_t len)
{
	uint8_t version, flow, kind;
	int r = ML_ERR_INTERNAL;

	if ((r = hs_parse_keyreq(m, len, &version, &flow, &kind, hs->serial,
	    hs->certno, hs->cnonce)) != 0) {
		return hs_fail(hs, HS_ALERT_FORMAT, r);
	}
	ML_ENSURE(version == HS_VERSION,
	    hs_fail(hs, HS_ALERT_VERSION, ML_ERR_UNSUPPORTED));
	ML_ENSURE(flow == HS_FLOW_A || flow == HS_FLOW_B,
	    hs_fail(hs, HS_ALERT_VERSION, ML_ERR_UNSUPPORTED));
	ML_ENSURE(kind == HS_KIND_READER || kind == HS_KIND_STATION,
	    hs_fail(hs, HS_ALERT_FORMAT, ML_ERR_FORMAT));
	hs->flow = (enum hs_flow)flow;		/* fixed from here on */
	hs->kind = (enum hs_kind)kind;
	r = 0;
out:
	return r;
}
