/*
 * SERVER_AUTH (flow A), server -> client.
 *
 *	u8 type = 0x05 | chain | lv16 sealed (64 + ML_SEAL_OVERHEAD) | sig[64]
 *
 * sealed = ml_seal(reader public key, aad = H(KEYREQ..READER_AUTH), R3)
 * with R3 = R1 || R2; sig = ECDSA(SHA-256(HS_LABEL_SERVER_AUTH ||
 * H(KEYREQ..READER_AUTH) || body without sig)) by the HSM key.
 *
 *= REQ ID-2
 *# Then it makes R2, forms R3 from R1 and R2 (concatenation R1||R2),
 *# derives its transport key from R3, encrypts R3 with the reader's public
 *# key, signs that ciphertext, and sends ciphertext, signature and its own
 *# certificate.  Reader verifies the server certificate against the root,
 *# then the signature, then decrypts R3 with its private key and derives
 *# the same transport key.
 */
#include <string.h>

#include "hs_int.h"
#include "ml_wipe.h"

#define R3_LEN		(2 * HS_R_LEN)
#define SEALED_R3_LEN	(R3_LEN + ML_SEAL_OVERHEAD)

int
hs_parse_server_auth(const uint8_t *m, size_t len, struct hs_ident_fields *f)
{
	struct ml_rd rd = ML_RD_INIT(m, len), s;
	uint8_t t;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(&rd, &t));
	ML_ENSURE(t == HS_SERVER_AUTH, ML_ERR_FORMAT);
	ML_TRY(hs_get_chain(&rd, f));
	ML_TRY(ml_rd_lv16(&rd, SEALED_R3_LEN, &s));
	ML_ENSURE(ml_rd_left(&s) == SEALED_R3_LEN, ML_ERR_FORMAT);
	f->sealed = ml_rd_ptr(&s);
	f->sealed_len = ml_rd_left(&s);
	ML_TRY(ml_rd_bytes(&rd, ML_P256_SIG_LEN, &f->sig));
	ML_TRY(ml_rd_end(&rd));
	r = 0;
out:
	return r;
}

int
hs_server_auth_send(struct hs *hs, struct ml_wr *w)
{
	uint8_t sealed[SEALED_R3_LEN];
	size_t sealed_len = 0;
	int r = ML_ERR_INTERNAL;

	/* R3 = R1 || R2; R2 fresh from the server's DRBG */
	memcpy(hs->secret, hs->r1, HS_R_LEN);
	ML_TRY(ml_rand(hs->secret + HS_R_LEN, HS_R_LEN));
	hs->secret_len = R3_LEN;
	ML_TRY(ml_seal(hs->peer.pub, hs->th_prev, sizeof(hs->th_prev),
	    hs->secret, R3_LEN, sealed, sizeof(sealed), &sealed_len));
	ML_TRY(ml_wr_u8(w, HS_SERVER_AUTH));
	ML_TRY(hs_put_chain(w, &hs->scfg->cred));
	ML_TRY(ml_wr_lv16(w, sealed, sealed_len));
	ML_TRY(hs_sign_append(hs, hs->scfg->cred.key, HS_LABEL_SERVER_AUTH,
	    w));
	r = 0;
out:
	return r;
}

int
hs_server_auth_recv(struct hs *hs, const uint8_t *m, size_t len)
{
	const struct key *key = hs->ccfg->cred.key;
	struct hs_ident_fields f;
	struct hs_certinfo ci;
	uint8_t r3[R3_LEN];
	size_t r3_len = 0;
	int alert = HS_ALERT_CERT, r = ML_ERR_INTERNAL;

	if ((r = hs_parse_server_auth(m, len, &f)) != 0) {
		return hs_fail(hs, HS_ALERT_FORMAT, r);
	}
	/* 1. server certificate against our root */
	if ((r = hs_trust_verify(hs->ccfg->trust, f.chain, f.nchain, &ci,
	    &alert)) != 0) {
		r = hs_fail(hs, alert, ML_ERR_CERT);
		goto out;
	}
	ML_ENSURE(ci.kind == HS_CERT_KIND_SERVER,
	    hs_fail(hs, HS_ALERT_CERT, ML_ERR_CERT));
	/* 2. signature over the transcript and the ciphertext */
	if ((r = hs_verify_sig(hs, ci.pub, HS_LABEL_SERVER_AUTH, m, len)) != 0) {
		r = hs_fail(hs, HS_ALERT_SIG, ML_ERR_AUTH);
		goto out;
	}
	/* 3. decrypt R3 with our key (chip C_DeriveKey via key_ecdh) */
	if ((r = ml_seal_open(hs->own_pub, key_ecdh_fn, (void *)key, hs->th_prev,
	    sizeof(hs->th_prev), f.sealed, f.sealed_len, r3, sizeof(r3),
	    &r3_len)) != 0 || r3_len != R3_LEN ||
	    !ml_ct_eq(r3, hs->r1, HS_R_LEN)) {
		r = hs_fail(hs, HS_ALERT_DECRYPT, ML_ERR_AUTH);
		goto out;
	}
	memcpy(hs->secret, r3, R3_LEN);
	hs->secret_len = R3_LEN;
	ML_TRY(hs_set_peer(hs, &ci, &f.chain[0]));
	r = 0;
out:
	ml_wipe(r3, sizeof(r3));
	return r;
}
