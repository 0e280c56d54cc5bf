/*
 * Mechanisms: the list each token offers and the operations.  Private-key
 * operations (sign, ECDH) and chip-held secret keys run in the chip;
 * hashing, verification and module-held secret keys run here, in the
 * private OSSL_LIB_CTX of common/ml_ossl.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ml_rd.h"
#include "ml_wipe.h"
#include "chip.h"
#include "sw.h"
#include "p11m.h"

#define EC_FLAGS	(CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS)
#define KIND(k)		(1u << (k))
#define ALL_KINDS	(KIND(CHIP_KIND_READER) | KIND(CHIP_KIND_NOTE) | \
			 KIND(CHIP_KIND_IDCARD))

static const struct mech {
	CK_MECHANISM_TYPE	 type;
	CK_ULONG		 min, max;
	CK_FLAGS		 flags;
	unsigned		 kinds;
} mechs[] = {
	{ CKM_EC_KEY_PAIR_GEN,	256, 256, CKF_HW | CKF_GENERATE_KEY_PAIR |
	  EC_FLAGS, ALL_KINDS },
	{ CKM_ECDSA,		256, 256, CKF_HW | CKF_SIGN | CKF_VERIFY |
	  EC_FLAGS, ALL_KINDS },
	{ CKM_ECDSA_SHA256,	256, 256, CKF_HW | CKF_SIGN | CKF_VERIFY |
	  EC_FLAGS, ALL_KINDS },
	{ CKM_ECDH1_DERIVE,	256, 256, CKF_HW | CKF_DERIVE | EC_FLAGS,
	  ALL_KINDS },
	{ CKM_AES_KEY_GEN,	32, 32, CKF_HW | CKF_GENERATE, ALL_KINDS },
	{ CKM_AES_GCM,		16, 32, CKF_ENCRYPT | CKF_DECRYPT, ALL_KINDS },
	{ CKM_SHA256,		0, 0, CKF_DIGEST, ALL_KINDS },
	{ CKM_MINTLINE_INTERNAL_AUTH, 256, 256, CKF_HW | CKF_SIGN,
	  KIND(CHIP_KIND_NOTE) },
};

static const struct mech *
mech_find(const struct p11m_slot *sl, CK_MECHANISM_TYPE type)
{
	size_t i;

	for (i = 0; i < ML_NELEM(mechs); i++) {
		if (mechs[i].type == type && (sl == NULL ||
		    (mechs[i].kinds & KIND(sl->kind)))) {
			return &mechs[i];
		}
	}
	return NULL;
}

CK_RV
p11m_mech_list(struct p11m_slot *sl, CK_MECHANISM_TYPE_PTR list,
    CK_ULONG_PTR count)
{
	CK_ULONG n = 0, room = *count;
	size_t i;
	CK_RV rv;

	pthread_mutex_lock(&sl->lock);
	rv = p11m_slot_refresh(sl);
	if (rv == CKR_OK) {
		for (i = 0; i < ML_NELEM(mechs); i++) {
			if (!(mechs[i].kinds & KIND(sl->kind))) {
				continue;
			}
			if (list != NULL && n < room) {
				list[n] = mechs[i].type;
			}
			n++;
		}
		*count = n;
		if (list != NULL && n > room) {
			rv = CKR_BUFFER_TOO_SMALL;
		}
	}
	pthread_mutex_unlock(&sl->lock);
	return rv;
}

CK_RV
p11m_mech_info(struct p11m_slot *sl, CK_MECHANISM_TYPE type,
    CK_MECHANISM_INFO_PTR info)
{
	const struct mech *m;
	CK_RV rv;

	pthread_mutex_lock(&sl->lock);
	rv = p11m_slot_refresh(sl);
	if (rv == CKR_OK) {
		if ((m = mech_find(sl, type)) == NULL) {
			rv = CKR_MECHANISM_INVALID;
		} else {
			info->ulMinKeySize = m->min;
			info->ulMaxKeySize = m->max;
			info->flags = m->flags;
		}
	}
	pthread_mutex_unlock(&sl->lock);
	return rv;
}

/* ---- helpers ---- */

static CK_RV
need_no_param(const CK_MECHANISM *m)
{
	return (m->pParameter == NULL && m->ulParameterLen == 0) ? CKR_OK :
	    CKR_MECHANISM_PARAM_INVALID;
}

/* Append to an op's input buffer, up to limit bytes in all. */
static CK_RV
op_buffer(struct p11m_op *op, const void *d, CK_ULONG n, size_t limit)
{
	if (op->buf.max == 0) {
		op->buf = ml_wr_dyn(limit);
	}
	if (n > 0 && ml_wr_bytes(&op->buf, d, n) != 0) {
		return CKR_DATA_LEN_RANGE;
	}
	return CKR_OK;
}

static bool
key_is_chipkey(const struct p11m_obj *o)
{
	return o->token && (o->chip_flags & OBJ_F_CHIPKEY);
}

/*
 * One C_SignUpdate / C_VerifyUpdate step: hash into the op for
 * CKM_ECDSA_SHA256, else buffer the raw input (64 bytes at most).  Ends the
 * operation on failure.
 */
static CK_RV
op_update(struct p11m_op *op, CK_BYTE_PTR data, CK_ULONG n)
{
	CK_RV rv = CKR_OK;

	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if (op->single) {
		return CKR_OPERATION_ACTIVE;
	}
	op->multi = true;
	if (op->mech == CKM_ECDSA_SHA256) {
		if (n > 0 && ml_sha256_update(op->sha, data, n) != 0) {
			rv = CKR_FUNCTION_FAILED;
		}
	} else {
		rv = op_buffer(op, data, n, 64);
	}
	if (rv != CKR_OK) {
		p11m_op_end(op);
	}
	return rv;
}

/*
 * For CKM_ECDSA_SHA256, finish the op's hash over *in (the last part) and
 * point *in / *n at the digest, written to md; other mechanisms leave both
 * as they are.  Returns CKR_FUNCTION_FAILED if hashing fails.
 */
static CK_RV
op_hash_input(struct p11m_op *op, const uint8_t **in, size_t *n,
    uint8_t md[static ML_SHA256_LEN])
{
	if (op->mech != CKM_ECDSA_SHA256) {
		return CKR_OK;
	}
	if (ml_sha256_update(op->sha, *in, *n) != 0 ||
	    ml_sha256_final(op->sha, md) != 0) {
		return CKR_FUNCTION_FAILED;
	}
	*in = md;
	*n = ML_SHA256_LEN;
	return CKR_OK;
}

/* ---- sign (chip) ---- */

CK_RV
p11m_sign_init(struct p11m_session *s, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE key)
{
	struct p11m_op *op = &s->op[P11M_OP_SIGN];
	const struct mech *me;
	struct p11m_obj *o;
	CK_RV rv;

	if (op->active) {
		return CKR_OPERATION_ACTIVE;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((me = mech_find(s->slot, m->mechanism)) == NULL ||
	    !(me->flags & CKF_SIGN)) {
		rv = CKR_MECHANISM_INVALID;
		goto out;
	}
	if ((rv = need_no_param(m)) != CKR_OK) {
		goto out;
	}
	if ((o = p11m_obj_lookup(s->slot, s, key)) == NULL) {
		rv = CKR_KEY_HANDLE_INVALID;
		goto out;
	}
	if (o->cls != CKO_PRIVATE_KEY || o->kt != CKK_EC) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto out;
	}
	if (m->mechanism == CKM_MINTLINE_INTERNAL_AUTH) {
		if (!key_is_chipkey(o)) {
			rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
			goto out;
		}
	} else if (key_is_chipkey(o) || !p11m_attrs_bool(&o->a, CKA_SIGN,
	    false)) {
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		goto out;
	}
	p11m_op_end(op);
	op->mech = m->mechanism;
	op->key = key;
	op->chip_id = o->chip_id;
	if (op->mech == CKM_ECDSA_SHA256 &&
	    (op->sha = ml_sha256_new()) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	op->active = true;
out:
	p11m_session_unlock_slot(s);
	return rv;
}

/* Sign the op's digest (or challenge) on the chip; ends the operation
 * unless only the size was asked or the buffer is too small. */
static CK_RV
sign_finish(struct p11m_session *s, const uint8_t *in, size_t n,
    CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	struct p11m_op *op = &s->op[P11M_OP_SIGN];
	uint8_t cmd[2 + 64], out[ML_P256_SIG_LEN], md[ML_SHA256_LEN];
	size_t rlen = 0;
	CK_RV rv;

	if (sig == NULL || *sig_len < ML_P256_SIG_LEN) {
		/* Size query or short buffer: the operation stays. */
		return p11m_out(NULL, ML_P256_SIG_LEN, sig, sig_len);
	}
	if ((rv = op_hash_input(op, &in, &n, md)) != CKR_OK) {
		goto out;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		goto out;
	}
	p11m_chip_lock(s->slot);
	if (op->mech == CKM_MINTLINE_INTERNAL_AUTH) {
		if (n < NOTE_CHALLENGE_LEN || n > 64) {
			rv = CKR_DATA_LEN_RANGE;
		} else {
			rv = p11m_chip_cmd(s->slot, P11M_CTX_KEY, CLA_ISO,
			    INS_INTERNAL_AUTH, 0, 0, in, n, 256, out,
			    sizeof(out), &rlen);
		}
	} else if (n < 1 || n > 64) {
		rv = CKR_DATA_LEN_RANGE;
	} else {
		cmd[0] = (uint8_t)(op->chip_id >> 8);
		cmd[1] = (uint8_t)op->chip_id;
		memcpy(cmd + 2, in, n);
		rv = p11m_chip_cmd(s->slot, P11M_CTX_KEY, CLA_PROP, INS_SIGN,
		    0x9E, 0x9A, cmd, 2 + n, 256, out, sizeof(out), &rlen);
	}
	p11m_chip_unlock(s->slot);
	p11m_session_unlock_slot(s);
	if (rv == CKR_OK && rlen != ML_P256_SIG_LEN) {
		rv = CKR_DEVICE_ERROR;
	}
	if (rv == CKR_OK) {
		rv = p11m_out(out, ML_P256_SIG_LEN, sig, sig_len);
	}
out:
	ml_wipe(cmd, sizeof(cmd));
	p11m_op_end(op);
	return rv;
}

/*
 * The single-part call (C_Sign, C_Verify, C_Digest, C_Encrypt, C_Decrypt)
 * of an operation.  After an Update the multi-part operation is the active
 * one: CKR_OPERATION_ACTIVE, and it stays active.  A NULL buffer of nonzero
 * length is CKR_ARGUMENTS_BAD and ends it.  Otherwise the operation is
 * single-part from now on (a size query keeps it so), and Update/Final
 * answer CKR_OPERATION_ACTIVE (op_multi_part).
 */
static CK_RV
op_single_part(struct p11m_op *op, const void *in, CK_ULONG n)
{
	if (op->multi) {
		return CKR_OPERATION_ACTIVE;
	}
	if (in == NULL && n != 0) {
		p11m_op_end(op);
		return CKR_ARGUMENTS_BAD;
	}
	op->single = true;
	return CKR_OK;
}

/* An Update or Final: refused while a single-part call owns the op. */
static CK_RV
op_multi_part(const struct p11m_op *op)
{
	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	return op->single ? CKR_OPERATION_ACTIVE : CKR_OK;
}

CK_RV
p11m_sign(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n, CK_BYTE_PTR sig,
    CK_ULONG_PTR sig_len)
{
	struct p11m_op *op = &s->op[P11M_OP_SIGN];
	CK_RV rv;

	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((rv = op_single_part(op, data, n)) != CKR_OK) {
		return rv;
	}
	return sign_finish(s, data, n, sig, sig_len);
}

CK_RV
p11m_sign_update(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n)
{
	return op_update(&s->op[P11M_OP_SIGN], data, n);
}

CK_RV
p11m_sign_final(struct p11m_session *s, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
	struct p11m_op *op = &s->op[P11M_OP_SIGN];
	CK_RV rv;

	if ((rv = op_multi_part(op)) != CKR_OK) {
		return rv;
	}
	if (op->mech == CKM_ECDSA_SHA256) {
		return sign_finish(s, NULL, 0, sig, sig_len);
	}
	return sign_finish(s, op->buf.p, op->buf.len, sig, sig_len);
}

/* ---- verify (module) ---- */

CK_RV
p11m_verify_init(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE key)
{
	struct p11m_op *op = &s->op[P11M_OP_VERIFY];
	struct p11m_obj *o;
	uint8_t point[ML_P256_PUB_LEN];
	CK_RV rv;
	int r;

	if (op->active) {
		return CKR_OPERATION_ACTIVE;
	}
	if (m->mechanism != CKM_ECDSA && m->mechanism != CKM_ECDSA_SHA256) {
		return CKR_MECHANISM_INVALID;
	}
	if ((rv = need_no_param(m)) != CKR_OK) {
		return rv;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((o = p11m_obj_lookup(s->slot, s, key)) == NULL) {
		rv = CKR_KEY_HANDLE_INVALID;
		goto out;
	}
	/* Public keys; a private key's own point serves as well. */
	if ((o->cls != CKO_PUBLIC_KEY && o->cls != CKO_PRIVATE_KEY) ||
	    o->kt != CKK_EC || !o->has_point) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto out;
	}
	if (o->cls == CKO_PUBLIC_KEY && !p11m_attrs_bool(&o->a, CKA_VERIFY,
	    false)) {
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		goto out;
	}
	memcpy(point, o->point, sizeof(point));
	p11m_session_unlock_slot(s);

	p11m_op_end(op);
	op->mech = m->mechanism;
	op->key = key;
	/* The session keeps the last verification key (with its reused
	 * OpenSSL context): decoding a point costs more than a verify. */
	if (s->vkey == NULL || memcmp(s->vkey_point, point,
	    sizeof(point)) != 0) {
		ml_p256_key_free(s->vkey);
		s->vkey = NULL;
		if ((r = ml_p256_key_from_pub(point, sizeof(point),
		    &s->vkey)) != 0) {
			p11m_op_end(op);
			return CKR_KEY_HANDLE_INVALID;
		}
		memcpy(s->vkey_point, point, sizeof(point));
	}
	op->vkey = s->vkey;
	op->vkey_borrowed = true;
	if (op->mech == CKM_ECDSA_SHA256 &&
	    (op->sha = ml_sha256_new()) == NULL) {
		p11m_op_end(op);
		return CKR_HOST_MEMORY;
	}
	op->active = true;
	return CKR_OK;
out:
	p11m_session_unlock_slot(s);
	return rv;
}

static CK_RV
verify_finish(struct p11m_op *op, const uint8_t *in, size_t n,
    const uint8_t *sig, size_t sig_len)
{
	uint8_t md[ML_SHA256_LEN];
	CK_RV rv;
	int r;

	if ((rv = op_hash_input(op, &in, &n, md)) != CKR_OK) {
		goto out;
	}
	if (op->mech != CKM_ECDSA_SHA256 && (n < 1 || n > 64)) {
		rv = CKR_DATA_LEN_RANGE;
		goto out;
	}
	if (sig_len != ML_P256_SIG_LEN) {
		rv = CKR_SIGNATURE_LEN_RANGE;
		goto out;
	}
	r = ml_p256_verify_digest(op->vkey, in, n, sig, sig_len);
	rv = r == 0 ? CKR_OK : r == ML_ERR_AUTH ? CKR_SIGNATURE_INVALID :
	    ml_err_to_ckr(r);
out:
	p11m_op_end(op);
	return rv;
}

CK_RV
p11m_verify(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n,
    CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	struct p11m_op *op = &s->op[P11M_OP_VERIFY];
	CK_RV rv;

	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((rv = op_single_part(op, data, n)) != CKR_OK) {
		return rv;
	}
	return verify_finish(op, data, n, sig, sig_len);
}

CK_RV
p11m_verify_update(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n)
{
	return op_update(&s->op[P11M_OP_VERIFY], data, n);
}

CK_RV
p11m_verify_final(struct p11m_session *s, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
	struct p11m_op *op = &s->op[P11M_OP_VERIFY];
	CK_RV rv;

	if ((rv = op_multi_part(op)) != CKR_OK) {
		return rv;
	}
	if (op->mech == CKM_ECDSA_SHA256) {
		return verify_finish(op, NULL, 0, sig, sig_len);
	}
	return verify_finish(op, op->buf.p, op->buf.len, sig, sig_len);
}

/* ---- digest (module) ---- */

CK_RV
p11m_digest_init(struct p11m_session *s, CK_MECHANISM_PTR m)
{
	struct p11m_op *op = &s->op[P11M_OP_DIGEST];
	CK_RV rv;

	if (op->active) {
		return CKR_OPERATION_ACTIVE;
	}
	if (m->mechanism != CKM_SHA256) {
		return CKR_MECHANISM_INVALID;
	}
	if ((rv = need_no_param(m)) != CKR_OK) {
		return rv;
	}
	p11m_op_end(op);
	if ((op->sha = ml_sha256_new()) == NULL) {
		return CKR_HOST_MEMORY;
	}
	op->mech = CKM_SHA256;
	op->active = true;
	return CKR_OK;
}

/* Finish the digest; ends the op unless only the size was asked. */
static CK_RV
digest_finish(struct p11m_op *op, CK_BYTE_PTR md, CK_ULONG_PTR md_len)
{
	uint8_t out[ML_SHA256_LEN];
	CK_RV rv;

	if (md == NULL || *md_len < sizeof(out)) {
		return p11m_out(NULL, sizeof(out), md, md_len);
	}
	rv = ml_sha256_final(op->sha, out) == 0 ?
	    p11m_out(out, sizeof(out), md, md_len) : CKR_FUNCTION_FAILED;
	p11m_op_end(op);
	return rv;
}

CK_RV
p11m_digest_final(struct p11m_session *s, CK_BYTE_PTR md, CK_ULONG_PTR md_len)
{
	struct p11m_op *op = &s->op[P11M_OP_DIGEST];
	CK_RV rv;

	if ((rv = op_multi_part(op)) != CKR_OK) {
		return rv;
	}
	return digest_finish(op, md, md_len);
}

CK_RV
p11m_digest(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n,
    CK_BYTE_PTR md, CK_ULONG_PTR md_len)
{
	struct p11m_op *op = &s->op[P11M_OP_DIGEST];
	CK_RV rv;

	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((rv = op_single_part(op, data, n)) != CKR_OK) {
		return rv;
	}
	if (md == NULL || *md_len < ML_SHA256_LEN) {
		return p11m_out(NULL, ML_SHA256_LEN, md, md_len);
	}
	if (n > 0 && ml_sha256_update(op->sha, data, n) != 0) {
		p11m_op_end(op);
		return CKR_FUNCTION_FAILED;
	}
	return digest_finish(op, md, md_len);
}

CK_RV
p11m_digest_update(struct p11m_session *s, CK_BYTE_PTR data, CK_ULONG n)
{
	struct p11m_op *op = &s->op[P11M_OP_DIGEST];
	CK_RV rv;

	if ((rv = op_multi_part(op)) != CKR_OK) {
		return rv;
	}
	op->multi = true;
	if (n > 0 && ml_sha256_update(op->sha, data, n) != 0) {
		p11m_op_end(op);
		return CKR_FUNCTION_FAILED;
	}
	return CKR_OK;
}

/* ---- AES-GCM ---- */

/* Module-held keys: any AES key size, IV length and tag length. */
static int
gcm_soft(bool enc, const uint8_t *key, size_t klen, const uint8_t *iv,
    size_t iv_len, const uint8_t *aad, size_t aad_len, const uint8_t *in,
    size_t n, size_t tag_len, uint8_t *out)
{
	const char *name = klen == 16 ? "AES-128-GCM" : klen == 24 ?
	    "AES-192-GCM" : "AES-256-GCM";
	EVP_CIPHER *c = NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int len, r = ML_ERR_CRYPTO;
	size_t body = enc ? n : n - tag_len;

	if ((c = EVP_CIPHER_fetch(ml_ossl_ctx(), name, NULL)) == NULL ||
	    (ctx = EVP_CIPHER_CTX_new()) == NULL) {
		goto out;
	}
	if (EVP_CipherInit_ex2(ctx, c, NULL, NULL, enc ? 1 : 0, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, (int)iv_len,
	    NULL) != 1 ||
	    EVP_CipherInit_ex2(ctx, NULL, key, iv, enc ? 1 : 0, NULL) != 1) {
		goto out;
	}
	if (aad_len > 0 && EVP_CipherUpdate(ctx, NULL, &len, aad,
	    (int)aad_len) != 1) {
		goto out;
	}
	if (body > 0 && EVP_CipherUpdate(ctx, out, &len, in, (int)body) != 1) {
		goto out;
	}
	if (!enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG,
	    (int)tag_len, (void *)(in + body)) != 1) {
		goto out;
	}
	if (EVP_CipherFinal_ex(ctx, out + body, &len) != 1) {
		r = enc ? ML_ERR_CRYPTO : ML_ERR_AUTH;
		if (!enc) {
			ml_wipe(out, body);
		}
		goto out;
	}
	if (enc && EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG,
	    (int)tag_len, out + body) != 1) {
		goto out;
	}
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	EVP_CIPHER_free(c);
	return r;
}

CK_RV
p11m_crypt_init(struct p11m_session *s, enum p11m_opkind k, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE key)
{
	struct p11m_op *op = &s->op[k];
	const CK_GCM_PARAMS *gp;
	struct p11m_obj *o;
	CK_RV rv;

	if (op->active) {
		return CKR_OPERATION_ACTIVE;
	}
	if (m->mechanism != CKM_AES_GCM) {
		return CKR_MECHANISM_INVALID;
	}
	if (m->pParameter == NULL || m->ulParameterLen != sizeof(*gp)) {
		return CKR_MECHANISM_PARAM_INVALID;
	}
	gp = m->pParameter;
	if (gp->ulIvLen == 0 || gp->ulIvLen > 128 || gp->pIv == NULL ||
	    (gp->ulAADLen > 0 && gp->pAAD == NULL) ||
	    gp->ulAADLen > P11M_MAX_DATA || gp->ulTagBits < 96 ||
	    gp->ulTagBits > 128 || gp->ulTagBits % 8 != 0) {
		return CKR_MECHANISM_PARAM_INVALID;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	if ((o = p11m_obj_lookup(s->slot, s, key)) == NULL) {
		rv = CKR_KEY_HANDLE_INVALID;
		goto out;
	}
	if (o->cls != CKO_SECRET_KEY || o->kt != CKK_AES) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto out;
	}
	if (!p11m_attrs_bool(&o->a, k == P11M_OP_ENCRYPT ? CKA_ENCRYPT :
	    CKA_DECRYPT, false)) {
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		goto out;
	}
	if (o->chip_secret >= 0 && (gp->ulIvLen != ML_GCM_IV_LEN ||
	    gp->ulTagBits != 128)) {
		/* The chip's GCM takes 96-bit IVs and full tags only. */
		rv = CKR_MECHANISM_PARAM_INVALID;
		goto out;
	}
	p11m_op_end(op);
	op->mech = CKM_AES_GCM;
	op->key = key;
	op->chip_secret = o->chip_secret;
	if (o->secret != NULL) {
		memcpy(op->secret, o->secret, o->secret_len);
		op->secret_len = o->secret_len;
	}
	op->tag_len = gp->ulTagBits / 8;
	if ((op->iv = malloc(gp->ulIvLen)) == NULL ||
	    (gp->ulAADLen > 0 && (op->aad = malloc(gp->ulAADLen)) == NULL)) {
		p11m_op_end(op);
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	memcpy(op->iv, gp->pIv, gp->ulIvLen);
	op->iv_len = gp->ulIvLen;
	if (gp->ulAADLen > 0) {
		memcpy(op->aad, gp->pAAD, gp->ulAADLen);
	}
	op->aad_len = gp->ulAADLen;
	op->active = true;
out:
	p11m_session_unlock_slot(s);
	return rv;
}

/* The chip's SECRET ENCRYPT / DECRYPT: iv(12) lv16(aad) data. */
static CK_RV
gcm_chip(struct p11m_session *s, struct p11m_op *op, bool enc,
    const uint8_t *in, size_t n, uint8_t *out, size_t out_len)
{
	struct ml_wr w = ml_wr_dyn(CHIP_MAX_CMD);
	size_t rlen = 0;
	CK_RV rv;

	if (ml_wr_bytes(&w, op->iv, op->iv_len) != 0 ||
	    ml_wr_lv16(&w, op->aad, op->aad_len) != 0 ||
	    ml_wr_bytes(&w, in, n) != 0 || w.len > 65535) {
		rv = CKR_DATA_LEN_RANGE;
		goto out;
	}
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		goto out;
	}
	p11m_chip_lock(s->slot);
	rv = p11m_chip_cmd(s->slot, enc ? P11M_CTX_DEFAULT : P11M_CTX_DECRYPT,
	    CLA_PROP, enc ? INS_SECRET_ENCRYPT : INS_SECRET_DECRYPT,
	    (uint8_t)op->chip_secret, 0, w.p, w.len, 65536, out, out_len,
	    &rlen);
	p11m_chip_unlock(s->slot);
	p11m_session_unlock_slot(s);
	if (rv == CKR_DATA_INVALID && !enc) {
		rv = CKR_ENCRYPTED_DATA_INVALID;
	}
	if (rv == CKR_OK && rlen != out_len) {
		rv = CKR_DEVICE_ERROR;
	}
out:
	ml_wr_free(&w);
	return rv;
}

/* One whole GCM operation; ends the op unless only sizing. */
static CK_RV
crypt_finish(struct p11m_session *s, enum p11m_opkind k, const uint8_t *in,
    size_t n, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	struct p11m_op *op = &s->op[k];
	bool enc = k == P11M_OP_ENCRYPT;
	uint8_t *tmp = NULL;
	size_t need;
	CK_RV rv;
	int r;

	if (!enc && n < op->tag_len) {
		p11m_op_end(op);
		return CKR_ENCRYPTED_DATA_LEN_RANGE;
	}
	if (n > P11M_MAX_DATA) {
		p11m_op_end(op);
		return enc ? CKR_DATA_LEN_RANGE : CKR_ENCRYPTED_DATA_LEN_RANGE;
	}
	need = enc ? n + op->tag_len : n - op->tag_len;
	if (out == NULL || *out_len < need) {
		return p11m_out(NULL, need, out, out_len);
	}
	if ((tmp = malloc(need + 1)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	if (op->chip_secret >= 0) {
		rv = gcm_chip(s, op, enc, in, n, tmp, need);
	} else {
		r = gcm_soft(enc, op->secret, op->secret_len, op->iv,
		    op->iv_len, op->aad, op->aad_len, in, n, op->tag_len, tmp);
		rv = r == 0 ? CKR_OK : r == ML_ERR_AUTH ?
		    CKR_ENCRYPTED_DATA_INVALID : ml_err_to_ckr(r);
	}
	if (rv == CKR_OK) {
		rv = p11m_out(tmp, need, out, out_len);
	}
out:
	ml_freezero(tmp, need + 1);
	p11m_op_end(op);
	return rv;
}

CK_RV
p11m_crypt(struct p11m_session *s, enum p11m_opkind k, CK_BYTE_PTR in,
    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	struct p11m_op *op = &s->op[k];
	CK_RV rv;

	if (!op->active) {
		return CKR_OPERATION_NOT_INITIALIZED;
	}
	if ((rv = op_single_part(op, in, in_len)) != CKR_OK) {
		return rv;
	}
	return crypt_finish(s, k, in, in_len, out, out_len);
}

/*
 * Multi-part GCM buffers the input and answers everything at Final: a
 * decryption must not release plaintext before the tag is checked.
 */
CK_RV
p11m_crypt_update(struct p11m_session *s, enum p11m_opkind k, CK_BYTE_PTR in,
    CK_ULONG in_len, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
	struct p11m_op *op = &s->op[k];
	CK_RV rv;

	if ((rv = op_multi_part(op)) != CKR_OK) {
		return rv;
	}
	op->multi = true;
	if ((rv = op_buffer(op, in, in_len, P11M_MAX_DATA)) != CKR_OK) {
		p11m_op_end(op);
		return rv;
	}
	(void)out;
	*out_len = 0;
	return CKR_OK;
}

CK_RV
p11m_crypt_final(struct p11m_session *s, enum p11m_opkind k, CK_BYTE_PTR out,
    CK_ULONG_PTR out_len)
{
	struct p11m_op *op = &s->op[k];
	CK_RV rv;

	if ((rv = op_multi_part(op)) != CKR_OK) {
		return rv;
	}
	return crypt_finish(s, k, op->buf.p, op->buf.len, out, out_len);
}

/* ---- key generation and derivation ---- */

static CK_RV
secret_common(struct p11m_obj *o, bool local, CK_MECHANISM_TYPE gen)
{
	CK_RV rv;

	if ((rv = p11m_attrs_set_bool(&o->a, CKA_LOCAL, local)) != CKR_OK ||
	    (rv = p11m_attrs_set_ulong(&o->a, CKA_KEY_GEN_MECHANISM, gen)) !=
	    CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_ALWAYS_SENSITIVE,
	    p11m_attrs_bool(&o->a, CKA_SENSITIVE, false))) != CKR_OK) {
		return rv;
	}
	return p11m_attrs_set_bool(&o->a, CKA_NEVER_EXTRACTABLE,
	    !p11m_attrs_bool(&o->a, CKA_EXTRACTABLE, true));
}

CK_RV
p11m_generate_key(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR tmpl, CK_ULONG n, CK_OBJECT_HANDLE_PTR ret)
{
	bool locked = false;
	struct p11m_slot *sl = s->slot;
	struct p11m_obj *o = NULL;
	const CK_ATTRIBUTE *t;
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	CK_ULONG vlen;
	uint8_t h = 0;
	size_t rlen = 0;
	CK_RV rv;

	if (m->mechanism != CKM_AES_KEY_GEN) {
		return CKR_MECHANISM_INVALID;
	}
	if ((rv = need_no_param(m)) != CKR_OK) {
		return rv;
	}
	if ((rv = p11m_tmpl_class(tmpl, n, CKO_SECRET_KEY, CKK_AES, &cls,
	    &kt)) != CKR_OK) {
		return rv;
	}
	if (cls != CKO_SECRET_KEY || kt != CKK_AES) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if ((o = p11m_obj_new()) == NULL) {
		return CKR_HOST_MEMORY;
	}
	o->cls = cls;
	o->kt = kt;
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		goto out;
	}
	locked = true;
	if ((rv = p11m_attr_apply(P11M_AOP_GENERATE, cls, kt, tmpl, n, NULL,
	    sl->login == CKU_SO, &o->a)) != CKR_OK) {
		goto out;
	}
	/*
	 * The key is made by the chip and stays in its RAM: a session
	 * object, sensitive, never extractable, AES-256.
	 *
	 *= REQ ID-11 (second read)
	 *# The reader decrypts the plaintext ID information, makes a random
	 *# key, encrypts the information under it and stores it in the
	 *# secure chip.
	 */
	if (p11m_attrs_bool(&o->a, CKA_TOKEN, false) ||
	    (p11m_attrs_ulong(&o->a, CKA_VALUE_LEN, &vlen) && vlen != 32) ||
	    ((t = p11m_tmpl_find(tmpl, n, CKA_EXTRACTABLE)) != NULL &&
	    *(CK_BBOOL *)t->pValue) ||
	    ((t = p11m_tmpl_find(tmpl, n, CKA_SENSITIVE)) != NULL &&
	    !*(CK_BBOOL *)t->pValue)) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	if (sl->login != CKU_USER) {
		rv = CKR_USER_NOT_LOGGED_IN;
		goto out;
	}
	if ((rv = p11m_attrs_set_bool(&o->a, CKA_SENSITIVE, true)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_EXTRACTABLE, false)) !=
	    CKR_OK ||
	    (rv = p11m_attrs_set_bool(&o->a, CKA_COPYABLE, false)) != CKR_OK ||
	    (rv = p11m_attrs_set_ulong(&o->a, CKA_VALUE_LEN, 32)) != CKR_OK ||
	    (rv = secret_common(o, true, CKM_AES_KEY_GEN)) != CKR_OK) {
		goto out;
	}
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_MECH, CLA_PROP, INS_GEN_SECRET, 0, 0,
	    NULL, 0, 256, &h, 1, &rlen);
	p11m_chip_unlock(sl);
	if (rv == CKR_OK && rlen != 1) {
		rv = CKR_DEVICE_ERROR;
	}
	if (rv != CKR_OK) {
		goto out;
	}
	o->chip_secret = h;
	o->priv = p11m_attrs_bool(&o->a, CKA_PRIVATE, true);
	o->owner = s->h;
	if ((rv = p11m_objset_add(sl, o)) != CKR_OK) {
		goto out;
	}
	*ret = o->h;
	o = NULL;
out:
	if (locked) {
		p11m_session_unlock_slot(s);
	}
	p11m_obj_free(o);
	return rv;
}

/* Copy CKA_ID / CKA_LABEL from one half of a key pair to the other. */
static CK_RV
pair_attr(struct p11m_obj *a, struct p11m_obj *b, CK_ATTRIBUTE_TYPE type)
{
	const struct p11m_attr *x = p11m_attrs_get(&a->a, type);
	const struct p11m_attr *y = p11m_attrs_get(&b->a, type);

	if (x != NULL && x->len > 0 && (y == NULL || y->len == 0)) {
		return p11m_attrs_set(&b->a, type, x->val, x->len);
	}
	if (y != NULL && y->len > 0 && (x == NULL || x->len == 0)) {
		return p11m_attrs_set(&a->a, type, y->val, y->len);
	}
	return CKR_OK;
}

/* A key pair on its way to the chip (p11m_generate_key_pair). */
struct keypair {
	struct p11m_obj	*pub, *priv;
	bool		 chipkey;	/* a note's chip authentication key */
	size_t		 priv_blob_len, pub_blob_len;
};

/* Mechanism and the class/key type each template names (no lock). */
static CK_RV
keypair_check(const CK_MECHANISM *m, const CK_ATTRIBUTE *pub_tmpl,
    CK_ULONG pub_n, const CK_ATTRIBUTE *priv_tmpl, CK_ULONG priv_n)
{
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	CK_RV rv;

	if (m->mechanism != CKM_EC_KEY_PAIR_GEN) {
		return CKR_MECHANISM_INVALID;
	}
	if ((rv = need_no_param(m)) != CKR_OK) {
		return rv;
	}
	if ((rv = p11m_tmpl_class(pub_tmpl, pub_n, CKO_PUBLIC_KEY, CKK_EC, &cls,
	    &kt)) != CKR_OK) {
		return rv;
	}
	if (cls != CKO_PUBLIC_KEY || kt != CKK_EC) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if ((rv = p11m_tmpl_class(priv_tmpl, priv_n, CKO_PRIVATE_KEY, CKK_EC,
	    &cls, &kt)) != CKR_OK) {
		return rv;
	}
	if (cls != CKO_PRIVATE_KEY || kt != CKK_EC) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	return CKR_OK;
}

/*
 * Build both objects' attributes from the templates (slot locked): the
 * rule tables, P-256 only, a shared CKA_ID/label, and whether this is a
 * note's chip key.
 */
static CK_RV
keypair_build(struct p11m_session *s, struct keypair *kp,
    const CK_ATTRIBUTE *pub_tmpl, CK_ULONG pub_n,
    const CK_ATTRIBUTE *priv_tmpl, CK_ULONG priv_n)
{
	struct p11m_slot *sl = s->slot;
	struct p11m_obj *pub = kp->pub, *priv = kp->priv;
	const struct p11m_attr *at;
	CK_RV rv;

	if ((rv = p11m_attr_apply(P11M_AOP_GENERATE, CKO_PUBLIC_KEY, CKK_EC,
	    pub_tmpl, pub_n, NULL, sl->login == CKU_SO, &pub->a)) != CKR_OK ||
	    (rv = p11m_attr_apply(P11M_AOP_GENERATE, CKO_PRIVATE_KEY, CKK_EC,
	    priv_tmpl, priv_n, NULL, sl->login == CKU_SO, &priv->a)) !=
	    CKR_OK) {
		return rv;
	}
	/* P-256 only, named by its OID. */
	at = p11m_attrs_get(&pub->a, CKA_EC_PARAMS);
	if (at == NULL || !p11m_ec_params_ok(at->val, at->len)) {
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	at = p11m_attrs_get(&priv->a, CKA_EC_PARAMS);
	if (at != NULL && !p11m_ec_params_ok(at->val, at->len)) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if (p11m_tmpl_find(priv_tmpl, priv_n, CKA_PRIVATE) != NULL &&
	    !p11m_attrs_bool(&priv->a, CKA_PRIVATE, true)) {
		/* The chip always guards its private keys with the PIN. */
		return CKR_ATTRIBUTE_VALUE_INVALID;
	}
	pub->token = p11m_attrs_bool(&pub->a, CKA_TOKEN, false);
	priv->token = p11m_attrs_bool(&priv->a, CKA_TOKEN, false);
	if ((pub->token || priv->token) && !p11m_session_rw(s)) {
		return CKR_SESSION_READ_ONLY;
	}
	if (sl->login == (CK_USER_TYPE)-1) {
		return CKR_USER_NOT_LOGGED_IN;
	}
	/* One CKA_ID (and label) for the pair; a random ID if none given. */
	if ((rv = pair_attr(pub, priv, CKA_ID)) != CKR_OK ||
	    (rv = pair_attr(pub, priv, CKA_LABEL)) != CKR_OK) {
		return rv;
	}
	/*
	 * Note personalisation (docs/pkcs11.md, vendor extensions): a token
	 * key pair labelled "chip" on a note is the chip authentication key,
	 * GEN KEYPAIR P1=GENKEY_CHIPKEY; after LOCK it is refused.
	 */
	at = p11m_attrs_get(&priv->a, CKA_LABEL);
	if (sl->kind == CHIP_KIND_NOTE && priv->token && at != NULL &&
	    at->len == 4 && memcmp(at->val, "chip", 4) == 0) {
		if (sl->state & INFO_F_LOCKED) {
			return CKR_ACTION_PROHIBITED;
		}
		kp->chipkey = true;
	}
	at = p11m_attrs_get(&pub->a, CKA_ID);
	if (at == NULL || at->len == 0) {
		uint8_t id[8];

		if (ml_rand(id, sizeof(id)) != 0) {
			return CKR_FUNCTION_FAILED;
		}
		if ((rv = p11m_attrs_set(&pub->a, CKA_ID, id, sizeof(id))) !=
		    CKR_OK ||
		    (rv = p11m_attrs_set(&priv->a, CKA_ID, id, sizeof(id))) !=
		    CKR_OK) {
			return rv;
		}
	}
	if ((rv = p11m_attrs_set_bool(&priv->a, CKA_PRIVATE, true)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&pub->a, CKA_LOCAL, true)) != CKR_OK ||
	    (rv = p11m_attrs_set_bool(&priv->a, CKA_LOCAL, true)) != CKR_OK ||
	    (rv = p11m_attrs_set_ulong(&pub->a, CKA_KEY_GEN_MECHANISM,
	    CKM_EC_KEY_PAIR_GEN)) != CKR_OK ||
	    (rv = p11m_attrs_set_ulong(&priv->a, CKA_KEY_GEN_MECHANISM,
	    CKM_EC_KEY_PAIR_GEN)) != CKR_OK) {
		return rv;
	}
	pub->has_point = pub->chip_point = true;
	priv->has_point = priv->chip_point = true;
	return CKR_OK;
}

/*
 * GEN KEYPAIR (docs/apdu.md): lv16 private blob | lv16 public blob; the
 * answer is u16 private id | u16 public id | the 65-byte point.  Slot
 * locked.
 */
static CK_RV
keypair_chip(struct p11m_slot *sl, struct keypair *kp)
{
	struct p11m_obj *pub = kp->pub, *priv = kp->priv;
	struct ml_wr w = ml_wr_dyn(CHIP_MAX_CMD), pw = ml_wr_dyn(OBJ_MAX_ATTRS);
	uint8_t resp[4 + ML_P256_PUB_LEN];
	struct ml_rd rd;
	size_t rlen = 0;
	CK_RV rv;

	if (p11m_obj_blob(priv, &pw) != 0 ||
	    ml_wr_lv16(&w, pw.p, pw.len) != 0) {
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	kp->priv_blob_len = pw.len;
	ml_wr_clear(&pw);
	if (p11m_obj_blob(pub, &pw) != 0 ||
	    ml_wr_lv16(&w, pw.p, pw.len) != 0) {
		rv = CKR_TEMPLATE_INCONSISTENT;
		goto out;
	}
	kp->pub_blob_len = pw.len;
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_MECH, CLA_PROP, INS_GEN_KEYPAIR,
	    kp->chipkey ? GENKEY_CHIPKEY : GENKEY_NORMAL, 0, w.p, w.len, 256,
	    resp, sizeof(resp), &rlen);
	p11m_chip_unlock(sl);
	if (rv != CKR_OK) {
		goto out;
	}
	rd = ML_RD_INIT(resp, rlen);
	if (ml_rd_u16be(&rd, &priv->chip_id) != 0 ||
	    ml_rd_u16be(&rd, &pub->chip_id) != 0 ||
	    ml_rd_copy(&rd, priv->point, ML_P256_PUB_LEN) != 0 ||
	    ml_rd_end(&rd) != 0) {
		rv = CKR_DEVICE_ERROR;
		goto out;
	}
	memcpy(pub->point, priv->point, ML_P256_PUB_LEN);
	priv->chip_flags = kp->chipkey ? (OBJ_F_PRIVATE | OBJ_F_CHIPKEY) :
	    (OBJ_F_PRIVATE | OBJ_F_SIGN | OBJ_F_DERIVE);
	pub->chip_flags = kp->chipkey ? OBJ_F_CHIPKEY : 0;
	p11m_objset_list_note(sl, priv->chip_id, OBJ_CLASS_PRIVKEY,
	    priv->chip_flags, kp->priv_blob_len);
	p11m_objset_list_note(sl, pub->chip_id, OBJ_CLASS_PUBKEY,
	    pub->chip_flags, kp->pub_blob_len);
out:
	ml_wr_free(&w);
	ml_wr_free(&pw);
	return rv;
}

/*
 * The pair as the module shows it, into the object cache (slot locked).
 * On success the cache owns both objects and kp's pointers are NULL.
 */
static CK_RV
keypair_install(struct p11m_session *s, struct keypair *kp,
    CK_OBJECT_HANDLE *ret_pub, CK_OBJECT_HANDLE *ret_priv)
{
	struct p11m_slot *sl = s->slot;
	struct p11m_obj *pub = kp->pub, *priv = kp->priv;
	size_t i;
	CK_RV rv;

	priv->priv = true;
	pub->priv = p11m_attrs_bool(&pub->a, CKA_PRIVATE, false);
	if (kp->chipkey && ((rv = p11m_obj_chipkey_rule(priv)) != CKR_OK ||
	    (rv = p11m_obj_chipkey_rule(pub)) != CKR_OK)) {
		return rv;
	}
	if (!priv->token) {
		priv->owner = s->h;
	}
	if (!pub->token) {
		pub->owner = s->h;
	}
	if ((rv = p11m_obj_key_fixups(priv)) != CKR_OK ||
	    (rv = p11m_obj_key_fixups(pub)) != CKR_OK) {
		return rv;
	}
	/* The pair is on the chip: if this load fails, a later one finds
	 * it.  And the load may already have read it: keep ours. */
	if ((rv = p11m_objset_load(sl)) != CKR_OK) {
		return rv;
	}
	for (i = sl->objs.n; i > 0; i--) {
		struct p11m_obj *x = sl->objs.v[i - 1];

		if (x->token && (x->chip_id == priv->chip_id ||
		    x->chip_id == pub->chip_id)) {
			p11m_objset_remove(sl, x);
		}
	}
	if ((rv = p11m_objset_add(sl, priv)) != CKR_OK) {
		return rv;
	}
	if ((rv = p11m_objset_add(sl, pub)) != CKR_OK) {
		p11m_objset_remove(sl, priv);
		kp->priv = NULL;
		return rv;
	}
	*ret_pub = pub->h;
	*ret_priv = priv->h;
	kp->priv = kp->pub = NULL;
	return CKR_OK;
}

CK_RV
p11m_generate_key_pair(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_ATTRIBUTE_PTR pub_tmpl, CK_ULONG pub_n, CK_ATTRIBUTE_PTR priv_tmpl,
    CK_ULONG priv_n, CK_OBJECT_HANDLE_PTR ret_pub,
    CK_OBJECT_HANDLE_PTR ret_priv)
{
	struct keypair kp = { 0 };
	CK_RV rv;

	if ((rv = keypair_check(m, pub_tmpl, pub_n, priv_tmpl, priv_n)) !=
	    CKR_OK) {
		return rv;
	}
	if ((kp.pub = p11m_obj_new()) == NULL ||
	    (kp.priv = p11m_obj_new()) == NULL) {
		p11m_obj_free(kp.pub);
		return CKR_HOST_MEMORY;
	}
	kp.pub->cls = CKO_PUBLIC_KEY;
	kp.priv->cls = CKO_PRIVATE_KEY;
	kp.pub->kt = kp.priv->kt = CKK_EC;
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		goto out;
	}
	if ((rv = keypair_build(s, &kp, pub_tmpl, pub_n, priv_tmpl,
	    priv_n)) == CKR_OK &&
	    (rv = keypair_chip(s->slot, &kp)) == CKR_OK) {
		rv = keypair_install(s, &kp, ret_pub, ret_priv);
	}
	p11m_session_unlock_slot(s);
out:
	p11m_obj_free(kp.pub);
	p11m_obj_free(kp.priv);
	return rv;
}

CK_RV
p11m_derive_key(struct p11m_session *s, CK_MECHANISM_PTR m,
    CK_OBJECT_HANDLE base, CK_ATTRIBUTE_PTR tmpl, CK_ULONG n,
    CK_OBJECT_HANDLE_PTR ret)
{
	bool locked = false;
	const CK_ECDH1_DERIVE_PARAMS *dp;
	struct p11m_slot *sl = s->slot;
	struct p11m_obj *k, *o = NULL;
	uint8_t peer[ML_P256_PUB_LEN], secret[ML_P256_SECRET_LEN];
	uint8_t cmd[ML_P256_PUB_LEN];
	CK_OBJECT_CLASS cls;
	CK_KEY_TYPE kt;
	CK_ULONG vlen = 0;
	size_t rlen = 0;
	CK_RV rv;

	if (m->mechanism != CKM_ECDH1_DERIVE) {
		return CKR_MECHANISM_INVALID;
	}
	if (m->pParameter == NULL || m->ulParameterLen != sizeof(*dp)) {
		return CKR_MECHANISM_PARAM_INVALID;
	}
	dp = m->pParameter;
	if (dp->kdf != CKD_NULL || dp->ulSharedDataLen != 0 ||
	    p11m_ec_point_parse(dp->pPublicData, dp->ulPublicDataLen, peer) !=
	    CKR_OK) {
		return CKR_MECHANISM_PARAM_INVALID;
	}
	if ((rv = p11m_tmpl_class(tmpl, n, CKO_SECRET_KEY, CKK_GENERIC_SECRET,
	    &cls, &kt)) != CKR_OK) {
		return rv;
	}
	if (cls != CKO_SECRET_KEY) {
		return CKR_TEMPLATE_INCONSISTENT;
	}
	if ((o = p11m_obj_new()) == NULL) {
		return CKR_HOST_MEMORY;
	}
	o->cls = cls;
	o->kt = kt;
	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		goto out;
	}
	locked = true;
	if ((k = p11m_obj_lookup(sl, s, base)) == NULL) {
		rv = CKR_KEY_HANDLE_INVALID;
		goto out;
	}
	if (k->cls != CKO_PRIVATE_KEY || k->kt != CKK_EC) {
		rv = CKR_KEY_TYPE_INCONSISTENT;
		goto out;
	}
	if (key_is_chipkey(k) || !p11m_attrs_bool(&k->a, CKA_DERIVE, false)) {
		rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
		goto out;
	}
	if ((rv = p11m_attr_apply(P11M_AOP_DERIVE, cls, kt, tmpl, n, NULL,
	    sl->login == CKU_SO, &o->a)) != CKR_OK) {
		goto out;
	}
	if (p11m_attrs_bool(&o->a, CKA_TOKEN, false)) {
		/* Secret keys are session objects (docs/pkcs11.md). */
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	if (!p11m_attrs_ulong(&o->a, CKA_VALUE_LEN, &vlen)) {
		vlen = ML_P256_SECRET_LEN;
	}
	if (vlen == 0 || vlen > ML_P256_SECRET_LEN || (kt == CKK_AES &&
	    vlen != 16 && vlen != 24 && vlen != 32)) {
		rv = CKR_ATTRIBUTE_VALUE_INVALID;
		goto out;
	}
	memcpy(cmd, peer, sizeof(cmd));
	p11m_chip_lock(sl);
	rv = p11m_chip_cmd(sl, P11M_CTX_KEY, CLA_PROP, INS_ECDH,
	    (uint8_t)(k->chip_id >> 8), (uint8_t)k->chip_id, cmd, sizeof(cmd),
	    256, secret, sizeof(secret), &rlen);
	p11m_chip_unlock(sl);
	if (rv == CKR_OK && rlen != sizeof(secret)) {
		rv = CKR_DEVICE_ERROR;
	}
	if (rv != CKR_OK) {
		goto out;
	}
	/* CKD_NULL: the key is the leftmost CKA_VALUE_LEN bytes of Z. */
	if ((o->secret = malloc(vlen)) == NULL) {
		rv = CKR_HOST_MEMORY;
		goto out;
	}
	memcpy(o->secret, secret, vlen);
	o->secret_len = vlen;
	if ((rv = p11m_attrs_set(&o->a, CKA_VALUE, secret, vlen)) != CKR_OK ||
	    (rv = p11m_attrs_set_ulong(&o->a, CKA_VALUE_LEN, vlen)) != CKR_OK ||
	    (rv = secret_common(o, false, CK_UNAVAILABLE_INFORMATION)) !=
	    CKR_OK) {
		goto out;
	}
	o->priv = p11m_attrs_bool(&o->a, CKA_PRIVATE, true);
	o->owner = s->h;
	if ((rv = p11m_objset_add(sl, o)) != CKR_OK) {
		goto out;
	}
	*ret = o->h;
	o = NULL;
out:
	if (locked) {
		p11m_session_unlock_slot(s);
	}
	ml_wipe(secret, sizeof(secret));
	p11m_obj_free(o);
	return rv;
}

/* GET CHALLENGE into out until n bytes (slot and chip locked). */
static CK_RV
chip_random(struct p11m_slot *sl, uint8_t *out, size_t n)
{
	size_t got, chunk, max = 256, off = 0;
	CK_RV rv = CKR_OK;

	while (off < n) {
		uint16_t sw;

		chunk = n - off > max ? max : n - off;
		rv = p11m_chip_apdu(sl, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL,
		    0, (uint32_t)chunk, out + off, chunk, &got, &sw);
		if (rv != CKR_OK) {
			break;
		}
		if ((sw & 0xFF00) == 0x6C00) {
			/* A note answers 16 bytes at a time (6C10). */
			size_t want = (sw & 0xFF) == 0 ? 256 : (sw & 0xFF);

			if (want >= chunk) {
				rv = CKR_DEVICE_ERROR;
				break;
			}
			max = want;
			continue;
		}
		if ((rv = p11m_sw_to_ckr(sw, P11M_CTX_DEFAULT)) == CKR_OK &&
		    got != chunk) {
			rv = CKR_DEVICE_ERROR;
		}
		if (rv != CKR_OK) {
			break;
		}
		off += chunk;
	}
	return rv;
}

CK_RV
p11m_generate_random(struct p11m_session *s, CK_BYTE_PTR out, CK_ULONG n)
{
	struct p11m_slot *sl = s->slot;
	size_t take;
	CK_RV rv = CKR_OK;

	if ((rv = p11m_session_lock_slot(s)) != CKR_OK) {
		return rv;
	}
	/*
	 * The chip's own random source.
	 *
	 *= REQ ID-2 (handshake A)
	 *# Server makes a fresh, never-repeated random factor R1
	 *
	 * Small requests are served from a pool the chip filled (one GET
	 * CHALLENGE of 256 bytes for eight 32-byte requests); every byte is
	 * handed out once and wiped.  Not on a note: its GET CHALLENGE arms
	 * the write challenge, so each call must reach the chip.
	 */
	if (sl->kind == CHIP_KIND_NOTE || n > sizeof(sl->rnd)) {
		p11m_chip_lock(sl);
		rv = chip_random(sl, out, n);
		p11m_chip_unlock(sl);
		goto out;
	}
	while (n > 0 && rv == CKR_OK) {
		if (sl->rnd_len == 0) {
			p11m_chip_lock(sl);
			rv = chip_random(sl, sl->rnd, sizeof(sl->rnd));
			p11m_chip_unlock(sl);
			if (rv != CKR_OK) {
				break;
			}
			sl->rnd_len = sizeof(sl->rnd);
		}
		take = n < sl->rnd_len ? n : sl->rnd_len;
		sl->rnd_len -= take;
		memcpy(out, sl->rnd + sl->rnd_len, take);
		ml_wipe(sl->rnd + sl->rnd_len, take);
		out += take;
		n -= take;
	}
out:
	p11m_session_unlock_slot(s);
	return rv;
}
