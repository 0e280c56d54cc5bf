/*
 * READER_AUTH (flow A), client -> server: the client's first authenticated
 * message.
 *
 *	u8 type = 0x04 | R1[32] | str8 serial | str8 certno | chain | sig[64]
 *
 * sig = ECDSA(SHA-256(HS_LABEL_READER_AUTH || H(KEYREQ, CHALLENGE) ||
 * body without sig)), made inside the reader secure chip (C_Sign).
 *
 *= REQ ID-2
 *# Reader signs data containing at least R1 (optionally its identity,
 *# ID-3) with its private key and sends the signature and its certificate.
 *# Server verifies the reader certificate against the CA root; on failure
 *# the flow ends.  Then it verifies the signature with the certificate's
 *# public key; on failure the flow ends.
 */
#include <string.h>

#include "hs_int.h"

int
hs_parse_reader_auth(const uint8_t *m, size_t len, struct hs_ident_fields *f)
{
	struct ml_rd rd = ML_RD_INIT(m, len);
	uint8_t t;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(&rd, &t));
	ML_ENSURE(t == HS_READER_AUTH, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&rd, f->r1, HS_R_LEN));
	ML_TRY(hs_get_str8(&rd, HS_MAX_SERIAL, false, f->serial));
	ML_TRY(hs_get_str8(&rd, HS_MAX_CERTNO, true, f->certno));
	ML_TRY(hs_get_chain(&rd, f));
	ML_TRY(ml_rd_bytes(&rd, ML_P256_SIG_LEN, &f->sig));
	ML_TRY(ml_rd_end(&rd));
	f->sealed = NULL;
	f->sealed_len = 0;
	r = 0;
out:
	return r;
}

int
hs_reader_auth_send(struct hs *hs, struct ml_wr *w)
{
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_wr_u8(w, HS_READER_AUTH));
	ML_TRY(ml_wr_bytes(w, hs->r1, sizeof(hs->r1)));
	ML_TRY(hs_put_str8(w, hs->serial));
	ML_TRY(hs_put_str8(w, hs->certno));
	ML_TRY(hs_put_chain(w, &hs->ccfg->cred));
	ML_TRY(hs_sign_append(hs, hs->ccfg->cred.key, HS_LABEL_READER_AUTH,
	    w));
	r = 0;
out:
	return r;
}

int
hs_reader_auth_recv(struct hs *hs, const uint8_t *m, size_t len)
{
	struct hs_ident_fields f;
	int r;

	if ((r = hs_parse_reader_auth(m, len, &f)) != 0) {
		return hs_fail(hs, HS_ALERT_FORMAT, r);
	}
	return hs_server_check_client(hs, m, len, &f, HS_LABEL_READER_AUTH);
}
