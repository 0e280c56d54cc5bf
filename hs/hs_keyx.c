/*
 * READER_KEYX (flow B), client -> server: the client's first (and only)
 * authenticated message.
 *
 *	u8 type = 0x06 | R1[32] | str8 serial | str8 certno | chain |
 *	lv16 sealed (32 + ML_SEAL_OVERHEAD) | sig[64]
 *
 * sealed = ml_seal(server public key, aad = H(KEYREQ, CHALLENGE_CERT), R2);
 * sig = ECDSA(SHA-256(HS_LABEL_READER_KEYX || H(KEYREQ, CHALLENGE_CERT) ||
 * body without sig)), so R1 and the ciphertext are both signed.
 *
 *= REQ ID-4
 *# Reader verifies the server certificate, makes R2, encrypts R2 with the
 *# server's public key, signs R1 + that ciphertext, sends ciphertext,
 *# signature and its certificate, and derives its transport key from R2.
 *# Server verifies the reader certificate, then the signature (failure
 *# ends the flow), decrypts R2 with its private key, derives the same key.
 */
#include <string.h>

#include "hs_int.h"
#include "ml_wipe.h"

#define SEALED_R2_LEN	(HS_R_LEN + ML_SEAL_OVERHEAD)

int
hs_parse_keyx(const uint8_t *m, size_t len, struct hs_ident_fields *f)
{
	struct ml_rd rd = ML_RD_INIT(m, len), s;
	uint8_t t;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(&rd, &t));
	ML_ENSURE(t == HS_READER_KEYX, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&rd, f->r1, HS_R_LEN));
	ML_TRY(hs_get_str8(&rd, HS_MAX_SERIAL, false, f->serial));
	ML_TRY(hs_get_str8(&rd, HS_MAX_CERTNO, true, f->certno));
	ML_TRY(hs_get_chain(&rd, f));
	ML_TRY(ml_rd_lv16(&rd, SEALED_R2_LEN, &s));
	ML_ENSURE(ml_rd_left(&s) == SEALED_R2_LEN, ML_ERR_FORMAT);
	f->sealed = ml_rd_ptr(&s);
	f->sealed_len = ml_rd_left(&s);
	ML_TRY(ml_rd_bytes(&rd, ML_P256_SIG_LEN, &f->sig));
	ML_TRY(ml_rd_end(&rd));
	r = 0;
out:
	return r;
}

int
hs_keyx_send(struct hs *hs, struct ml_wr *w)
{
	const struct key *key = hs->ccfg->cred.key;
	uint8_t sealed[SEALED_R2_LEN];
	size_t sealed_len = 0;
	int r = ML_ERR_INTERNAL;

	/* R2 from the reader's own RNG (the chip's C_GenerateRandom) */
	ML_TRY(key_random(key, hs->secret, HS_R_LEN));
	hs->secret_len = HS_R_LEN;
	ML_TRY(ml_seal(hs->peer.pub, hs->th_prev, sizeof(hs->th_prev),
	    hs->secret, HS_R_LEN, sealed, sizeof(sealed), &sealed_len));
	ML_TRY(ml_wr_u8(w, HS_READER_KEYX));
	ML_TRY(ml_wr_bytes(w, hs->r1, sizeof(hs->r1)));
	ML_TRY(hs_put_str8(w, hs->serial));
	ML_TRY(hs_put_str8(w, hs->certno));
	ML_TRY(hs_put_chain(w, &hs->ccfg->cred));
	ML_TRY(ml_wr_lv16(w, sealed, sealed_len));
	ML_TRY(hs_sign_append(hs, key, HS_LABEL_READER_KEYX, w));
	r = 0;
out:
	ml_wipe(sealed, sizeof(sealed));
	return r;
}

int
hs_keyx_recv(struct hs *hs, const uint8_t *m, size_t len)
{
	const struct key *key = hs->scfg->cred.key;
	struct hs_ident_fields f;
	uint8_t r2[HS_R_LEN];
	size_t r2_len = 0;
	int r = ML_ERR_INTERNAL;

	if ((r = hs_parse_keyx(m, len, &f)) != 0) {
		return hs_fail(hs, HS_ALERT_FORMAT, r);
	}
	ML_TRY(hs_server_check_client(hs, m, len, &f, HS_LABEL_READER_KEYX));
	/* only now: the HSM's ECDH (C_DeriveKey) to decrypt R2 */
	if ((r = ml_seal_open(hs->own_pub, key_ecdh_fn, (void *)key, hs->th_prev,
	    sizeof(hs->th_prev), f.sealed, f.sealed_len, r2, sizeof(r2),
	    &r2_len)) != 0 || r2_len != HS_R_LEN) {
		r = hs_fail(hs, HS_ALERT_DECRYPT, ML_ERR_AUTH);
		goto out;
	}
	memcpy(hs->secret, r2, HS_R_LEN);
	hs->secret_len = HS_R_LEN;
	r = 0;
out:
	ml_wipe(r2, sizeof(r2));
	return r;
}
