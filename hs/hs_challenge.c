/*
 * CHALLENGE (flow A) and CHALLENGE_CERT (flow B), server -> client.
 *
 *	CHALLENGE:	u8 type = 0x02 | R1[32]
 *	CHALLENGE_CERT:	u8 type = 0x03 | R1[32] | chain
 *
 *= REQ ID-2
 *# Server makes a fresh, never-repeated random factor R1 and sends it.
 *= REQ ID-4
 *# Server sends R1 and its certificate.  Reader verifies the server
 *# certificate.
 * R1 is 256 bits from the server's DRBG: a repeat is as likely as a
 * SHA-256 collision.  It is kept for this connection only, with its issue
 * time, and consumed by the client's first authenticated message (ID-5).
 */
#include <string.h>

#include "hs_int.h"

int
hs_parse_challenge(const uint8_t *m, size_t len, uint8_t r1[HS_R_LEN])
{
	struct ml_rd rd = ML_RD_INIT(m, len);
	uint8_t t;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(&rd, &t));
	ML_ENSURE(t == HS_CHALLENGE, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&rd, r1, HS_R_LEN));
	ML_TRY(ml_rd_end(&rd));
	r = 0;
out:
	return r;
}

int
hs_parse_chcert(const uint8_t *m, size_t len, uint8_t r1[HS_R_LEN],
    struct hs_ident_fields *f)
{
	struct ml_rd rd = ML_RD_INIT(m, len);
	uint8_t t;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(&rd, &t));
	ML_ENSURE(t == HS_CHALLENGE_CERT, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&rd, r1, HS_R_LEN));
	ML_TRY(hs_get_chain(&rd, f));
	ML_TRY(ml_rd_end(&rd));
	r = 0;
out:
	return r;
}

static int
issue_r1(struct hs *hs)
{
	int r;

	if ((r = ml_rand(hs->r1, sizeof(hs->r1))) != 0) {
		return r;
	}
	hs->r1_issued_ms = hs_now_ms();
	hs->r1_used = false;
	return 0;
}

int
hs_challenge_send(struct hs *hs, struct ml_wr *w)
{
	int r = ML_ERR_INTERNAL;

	ML_TRY(issue_r1(hs));
	ML_TRY(ml_wr_u8(w, HS_CHALLENGE));
	ML_TRY(ml_wr_bytes(w, hs->r1, sizeof(hs->r1)));
	r = 0;
out:
	return r;
}

int
hs_challenge_recv(struct hs *hs, const uint8_t *m, size_t len)
{
	int r;

	if ((r = hs_parse_challenge(m, len, hs->r1)) != 0) {
		return hs_fail(hs, HS_ALERT_FORMAT, r);
	}
	return 0;
}

int
hs_chcert_send(struct hs *hs, struct ml_wr *w)
{
	int r = ML_ERR_INTERNAL;

	ML_TRY(issue_r1(hs));
	ML_TRY(ml_wr_u8(w, HS_CHALLENGE_CERT));
	ML_TRY(ml_wr_bytes(w, hs->r1, sizeof(hs->r1)));
	ML_TRY(hs_put_chain(w, &hs->scfg->cred));
	r = 0;
out:
	return r;
}

int
hs_chcert_recv(struct hs *hs, const uint8_t *m, size_t len)
{
	struct hs_ident_fields f;
	struct hs_certinfo ci;
	int alert = HS_ALERT_CERT, r = ML_ERR_INTERNAL;

	if ((r = hs_parse_chcert(m, len, hs->r1, &f)) != 0) {
		return hs_fail(hs, HS_ALERT_FORMAT, r);
	}
	/* the server certificate, against our root (ID-4) */
	if ((r = hs_trust_verify(hs->ccfg->trust, f.chain, f.nchain, &ci,
	    &alert)) != 0) {
		return hs_fail(hs, alert, ML_ERR_CERT);
	}
	ML_ENSURE(ci.kind == HS_CERT_KIND_SERVER,
	    hs_fail(hs, HS_ALERT_CERT, ML_ERR_CERT));
	ML_TRY(hs_set_peer(hs, &ci, &f.chain[0]));
	r = 0;
out:
	return r;
}
