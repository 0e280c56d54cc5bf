/*
 * OpenSSL 3 glue (see ml_ossl.h for the contract).
 *
 * Everything runs inside one private OSSL_LIB_CTX with only the built-in
 * "default" provider loaded into it, explicitly.  The host's openssl.cnf is
 * never read for it, so an application that loads our PKCS#11 module through
 * libp11 or pkcs11-provider cannot make us recurse into ourselves.
 *
 * Algorithms are fetched once at init and kept in ossl_st; per-call work is
 * only the operation context.  No deprecated API (no EC_KEY, no low-level
 * digest or cipher calls): EC_GROUP/EC_POINT are used only to check points
 * and to compute a public point from a scalar, both non-deprecated in 3.0.
 *
 * Every exported function brackets its OpenSSL calls with ERR_set_mark() /
 * ERR_pop_to_mark(), so that errors we provoke (a bad tag, a bad point) never
 * leak into the error queue of the application that hosts us.
 */
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/provider.h>
#include <openssl/rand.h>

#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_wipe.h"

/* DER ECDSA-Sig-Value for P-256: 30 len 02 21 00|r 02 21 00|s is 72 bytes. */
#define ML_ECDSA_DER_MAX	72
/* Feed EVP update calls at most this much at a time (they take an int). */
#define ML_EVP_CHUNK		(1u << 30)
#define ML_HKDF_MAX_OUT		(255 * ML_SHA256_LEN)
#define ML_SEAL_INFO		"mintline seal v1"

const uint8_t ml_p256_oid_der[10] = {
	0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07
};

/* Non-const because OSSL_PARAM_construct_utf8_string() takes char *. */
static char p256_group_name[] = "prime256v1";
static char sha256_name[] = "SHA256";

struct ossl_state {
	OSSL_LIB_CTX	*libctx;
	OSSL_PROVIDER	*prov;
	EVP_MD		*sha256;
	EVP_MAC		*hmac;
	EVP_KDF		*hkdf;
	EVP_CIPHER	*gcm;
	EC_GROUP	*p256;		/* read-only after init; shared */
	BIGNUM		*p256_order;
	EVP_PKEY	*p256_tmpl;	/* public key G: parameters to dup */
};

/*
 * A mutex, not pthread_once: C_Finalize (ml_ossl_fini) followed by
 * C_Initialize must be able to build the context again.  The flag makes the
 * implicit ml_ossl_init() at the top of every call a single atomic load.
 */
static pthread_mutex_t ossl_lock = PTHREAD_MUTEX_INITIALIZER;
static atomic_bool ossl_ready;
static struct ossl_state ossl_st;

struct ml_sha256 {
	EVP_MD_CTX	*md;
	bool		 done;		/* final called; update needs reset */
};

/*
 * One initialised sign and one verify context per key, reused from call
 * to call as `openssl speed` does (building a context per operation cost
 * ~30% of a P-256 signature).  An EVP_PKEY_CTX is not for two threads at
 * once: a caller that finds the lock taken uses a fresh context.
 */
struct p256_ctxs {
	pthread_mutex_t	 lock;
	EVP_PKEY_CTX	*sign, *verify;
};

struct ml_p256_key {
	EVP_PKEY	*pkey;
	bool		 has_priv;
	uint8_t		 pub[ML_P256_PUB_LEN];
	struct p256_ctxs *ctxs;		/* NULL: fresh contexts only */
};

/*
 * Drop whatever OpenSSL queued since the matching ERR_set_mark(); log the
 * reason at debug level when the operation failed.  Only OpenSSL's reason
 * text is logged, never the data.
 */
static void
ossl_done(int r, const char *what)
{
	char buf[256];
	unsigned long e;

	if (r != 0 && ml_log_enabled(ML_LOG_DEBUG)) {
		if ((e = ERR_peek_last_error()) != 0) {
			ERR_error_string_n(e, buf, sizeof(buf));
			ml_debug("%s: %s (%s)", what, ml_errname(r), buf);
		} else {
			ml_debug("%s: %s", what, ml_errname(r));
		}
	}
	ERR_pop_to_mark();
}

static void
ossl_state_free(struct ossl_state *s)
{
	EVP_PKEY_free(s->p256_tmpl);
	EC_GROUP_free(s->p256);
	BN_free(s->p256_order);
	EVP_CIPHER_free(s->gcm);
	EVP_KDF_free(s->hkdf);
	EVP_MAC_free(s->hmac);
	EVP_MD_free(s->sha256);
	if (s->prov != NULL) {
		(void)OSSL_PROVIDER_unload(s->prov);
	}
	OSSL_LIB_CTX_free(s->libctx);
	*s = (struct ossl_state){ 0 };
}

/* Import already-checked key material into an EVP_PKEY of libctx. */
static int
p256_fromdata(OSSL_LIB_CTX *libctx, OSSL_PARAM *params, int selection,
    EVP_PKEY **ret_pkey)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r = ML_ERR_INTERNAL;

	/*
	 * By OID, not "EC": when the host loaded the pkcs11 engine (libp11:
	 * openssl -engine pkcs11 -> this module), OpenSSL 3.0 hands the "EC"
	 * name to the engine's legacy method even in a private library
	 * context, and the import fails.
	 */
	ML_ENSURE((pctx = EVP_PKEY_CTX_new_from_name(libctx,
	    "1.2.840.10045.2.1", NULL)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_PKEY_fromdata_init(pctx) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(EVP_PKEY_fromdata(pctx, &pkey, selection, params) == 1,
	    ML_ERR_CRYPTO);
	*ret_pkey = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

/*
 * A P-256 public key (the generator) imported once.  Importing by group
 * name builds a new EC_GROUP each time (about 20 us); duplicating this
 * key and setting the point is about four times cheaper, and public keys
 * are imported on every verify and ECDH.
 */
static int
p256_tmpl_new(struct ossl_state *s)
{
	OSSL_PARAM params[3];
	uint8_t g[ML_P256_PUB_LEN];
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(EC_POINT_point2oct(s->p256, EC_GROUP_get0_generator(s->p256),
	    POINT_CONVERSION_UNCOMPRESSED, g, sizeof(g), NULL) == sizeof(g),
	    ML_ERR_CRYPTO);
	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, p256_group_name, 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    g, sizeof(g));
	params[2] = OSSL_PARAM_construct_end();
	ML_TRY(p256_fromdata(s->libctx, params, EVP_PKEY_PUBLIC_KEY,
	    &s->p256_tmpl));
	r = 0;
out:
	return r;
}

static int
ossl_state_new(struct ossl_state *ret)
{
	struct ossl_state s = { 0 };
	int r = ML_ERR_INTERNAL;

	/* A fresh context reads no configuration file unless told to. */
	ML_ENSURE((s.libctx = OSSL_LIB_CTX_new()) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((s.prov = OSSL_PROVIDER_load(s.libctx, "default")) != NULL,
	    ML_ERR_CRYPTO);
	ML_ENSURE((s.sha256 = EVP_MD_fetch(s.libctx, "SHA2-256", NULL)) != NULL,
	    ML_ERR_CRYPTO);
	ML_ENSURE((s.hmac = EVP_MAC_fetch(s.libctx, "HMAC", NULL)) != NULL,
	    ML_ERR_CRYPTO);
	ML_ENSURE((s.hkdf = EVP_KDF_fetch(s.libctx, "HKDF", NULL)) != NULL,
	    ML_ERR_CRYPTO);
	ML_ENSURE((s.gcm = EVP_CIPHER_fetch(s.libctx, "AES-256-GCM",
	    NULL)) != NULL, ML_ERR_CRYPTO);
	ML_ENSURE((s.p256 = EC_GROUP_new_by_curve_name_ex(s.libctx, NULL,
	    NID_X9_62_prime256v1)) != NULL, ML_ERR_CRYPTO);
	ML_ENSURE((s.p256_order = BN_dup(EC_GROUP_get0_order(s.p256))) != NULL,
	    ML_ERR_NOMEM);
	ML_TRY(p256_tmpl_new(&s));
	*ret = s;
	s = (struct ossl_state){ 0 };
	r = 0;
out:
	ossl_state_free(&s);
	return r;
}

int
ml_ossl_init(void)
{
	int r = ML_ERR_INTERNAL;

	if (atomic_load_explicit(&ossl_ready, memory_order_acquire)) {
		return 0;
	}
	if (pthread_mutex_lock(&ossl_lock) != 0) {
		return ML_ERR_INTERNAL;
	}
	ERR_set_mark();
	if (atomic_load_explicit(&ossl_ready, memory_order_relaxed)) {
		r = 0;
		goto out;
	}
	ML_TRY(ossl_state_new(&ossl_st));
	atomic_store_explicit(&ossl_ready, true, memory_order_release);
	r = 0;
out:
	ossl_done(r, "ml_ossl_init");
	(void)pthread_mutex_unlock(&ossl_lock);
	return r;
}

void
ml_ossl_fini(void)
{
	if (pthread_mutex_lock(&ossl_lock) != 0) {
		return;
	}
	if (atomic_load_explicit(&ossl_ready, memory_order_relaxed)) {
		atomic_store_explicit(&ossl_ready, false, memory_order_release);
		ossl_state_free(&ossl_st);
	}
	(void)pthread_mutex_unlock(&ossl_lock);
}

OSSL_LIB_CTX *
ml_ossl_ctx(void)
{
	if (ml_ossl_init() != 0) {
		return NULL;
	}
	return ossl_st.libctx;
}

int
ml_rand(void *buf, size_t n)
{
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(buf != NULL || n == 0, ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	if (n > 0) {
		ML_ENSURE(RAND_bytes_ex(ossl_st.libctx, buf, n, 0) == 1,
		    ML_ERR_CRYPTO);
	}
	r = 0;
out:
	ossl_done(r, "ml_rand");
	return r;
}

/* ---- SHA-256 and HMAC ---------------------------------------------- */

int
ml_sha256(const void *d, size_t n, uint8_t ret_md[static ML_SHA256_LEN])
{
	uint8_t md[ML_SHA256_LEN];
	unsigned int md_len = 0;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(d != NULL || n == 0, ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	ML_ENSURE(EVP_Digest(n > 0 ? d : "", n, md, &md_len, ossl_st.sha256,
	    NULL) == 1 && md_len == sizeof(md), ML_ERR_CRYPTO);
	memcpy(ret_md, md, sizeof(md));
	r = 0;
out:
	ossl_done(r, "ml_sha256");
	return r;
}

struct ml_sha256 *
ml_sha256_new(void)
{
	struct ml_sha256 *h = NULL;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_TRY(ml_ossl_init());
	ML_ENSURE((h = calloc(1, sizeof(*h))) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((h->md = EVP_MD_CTX_new()) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_DigestInit_ex2(h->md, ossl_st.sha256, NULL) == 1,
	    ML_ERR_CRYPTO);
	r = 0;
out:
	if (r != 0) {
		ml_sha256_free(h);
		h = NULL;
	}
	ossl_done(r, "ml_sha256_new");
	return h;
}

int
ml_sha256_update(struct ml_sha256 *h, const void *d, size_t n)
{
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(h != NULL && (d != NULL || n == 0), ML_ERR_ARG);
	ML_ENSURE(!h->done, ML_ERR_STATE);
	if (n > 0) {
		ML_ENSURE(EVP_DigestUpdate(h->md, d, n) == 1, ML_ERR_CRYPTO);
	}
	r = 0;
out:
	ossl_done(r, "ml_sha256_update");
	return r;
}

int
ml_sha256_final(struct ml_sha256 *h, uint8_t ret_md[static ML_SHA256_LEN])
{
	uint8_t md[ML_SHA256_LEN];
	unsigned int md_len = 0;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(h != NULL, ML_ERR_ARG);
	ML_ENSURE(!h->done, ML_ERR_STATE);
	h->done = true;
	ML_ENSURE(EVP_DigestFinal_ex(h->md, md, &md_len) == 1 &&
	    md_len == sizeof(md), ML_ERR_CRYPTO);
	memcpy(ret_md, md, sizeof(md));
	r = 0;
out:
	ossl_done(r, "ml_sha256_final");
	return r;
}

int
ml_sha256_reset(struct ml_sha256 *h)
{
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(h != NULL, ML_ERR_ARG);
	/* A NULL type re-initialises with the digest the context already has. */
	ML_ENSURE(EVP_DigestInit_ex2(h->md, NULL, NULL) == 1, ML_ERR_CRYPTO);
	h->done = false;
	r = 0;
out:
	ossl_done(r, "ml_sha256_reset");
	return r;
}

struct ml_sha256 *
ml_sha256_dup(const struct ml_sha256 *h)
{
	struct ml_sha256 *c = NULL;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(h != NULL, ML_ERR_ARG);
	ML_ENSURE((c = calloc(1, sizeof(*c))) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((c->md = EVP_MD_CTX_new()) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_MD_CTX_copy_ex(c->md, h->md) == 1, ML_ERR_CRYPTO);
	c->done = h->done;
	r = 0;
out:
	if (r != 0) {
		ml_sha256_free(c);
		c = NULL;
	}
	ossl_done(r, "ml_sha256_dup");
	return c;
}

void
ml_sha256_free(struct ml_sha256 *h)
{
	if (h == NULL) {
		return;
	}
	EVP_MD_CTX_free(h->md);		/* cleanses the digest state */
	ml_freezero(h, sizeof(*h));
}

int
ml_hmac_sha256(const void *key, size_t klen, const void *d, size_t n,
    uint8_t ret_mac[static ML_SHA256_LEN])
{
	/* EVP_MAC_init() reads a NULL key as "keep the previous key". */
	static const uint8_t empty[1];
	EVP_MAC_CTX *mctx = NULL;
	OSSL_PARAM params[2];
	uint8_t mac[ML_SHA256_LEN];
	size_t mac_len = 0;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE((key != NULL || klen == 0) && (d != NULL || n == 0),
	    ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
	    sha256_name, 0);
	params[1] = OSSL_PARAM_construct_end();
	ML_ENSURE((mctx = EVP_MAC_CTX_new(ossl_st.hmac)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_MAC_init(mctx, klen > 0 ? key : empty, klen,
	    params) == 1, ML_ERR_CRYPTO);
	if (n > 0) {
		ML_ENSURE(EVP_MAC_update(mctx, d, n) == 1, ML_ERR_CRYPTO);
	}
	ML_ENSURE(EVP_MAC_final(mctx, mac, &mac_len, sizeof(mac)) == 1 &&
	    mac_len == sizeof(mac), ML_ERR_CRYPTO);
	memcpy(ret_mac, mac, sizeof(mac));
	r = 0;
out:
	EVP_MAC_CTX_free(mctx);		/* cleanses the keyed state */
	ml_wipe(mac, sizeof(mac));
	ossl_done(r, "ml_hmac_sha256");
	return r;
}

/*
 * On failure out is wiped rather than left untouched: a half-written key
 * must never be mistaken for a usable one.
 */
int
ml_hkdf_sha256(const void *salt, size_t salt_len, const void *ikm,
    size_t ikm_len, const void *info, size_t info_len, void *out,
    size_t out_len)
{
	static uint8_t empty[1];
	EVP_KDF_CTX *kctx = NULL;
	OSSL_PARAM params[5], *p = params;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE((salt != NULL || salt_len == 0) &&
	    (ikm != NULL || ikm_len == 0) && (info != NULL || info_len == 0) &&
	    out != NULL, ML_ERR_ARG);
	ML_ENSURE(out_len > 0 && out_len <= ML_HKDF_MAX_OUT, ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	/* The OSSL_PARAM constructors take void *; nothing is written. */
	*p++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    sha256_name, 0);
	*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    ikm_len > 0 ? (void *)ikm : empty, ikm_len);
	if (salt_len > 0) {
		/* Absent salt is RFC 5869's HashLen zeros (HMAC pads the key). */
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
		    (void *)salt, salt_len);
	}
	if (info_len > 0) {
		*p++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
		    (void *)info, info_len);
	}
	*p = OSSL_PARAM_construct_end();
	ML_ENSURE((kctx = EVP_KDF_CTX_new(ossl_st.hkdf)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_KDF_derive(kctx, out, out_len, params) == 1,
	    ML_ERR_CRYPTO);
	r = 0;
out:
	if (r != 0 && out != NULL && out_len <= ML_HKDF_MAX_OUT) {
		ml_wipe(out, out_len);
	}
	EVP_KDF_CTX_free(kctx);		/* cleanses the PRK */
	ossl_done(r, "ml_hkdf_sha256");
	return r;
}

/* ---- P-256 keys ---------------------------------------------------- */

/*
 * 0 if pub is 04||X||Y with X, Y < p on the curve (and so not the point at
 * infinity, which has no uncompressed encoding).  P-256 has cofactor 1, so
 * on-curve means in the prime-order group: no small-subgroup check needed.
 */
static int
p256_point_ok(const uint8_t *pub, size_t len)
{
	EC_POINT *pt = NULL;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(pub != NULL && len == ML_P256_PUB_LEN && pub[0] == 0x04,
	    ML_ERR_CRYPTO);
	ML_ENSURE((pt = EC_POINT_new(ossl_st.p256)) != NULL, ML_ERR_NOMEM);
	/* oct2point rejects coordinates >= p and points off the curve. */
	ML_ENSURE(EC_POINT_oct2point(ossl_st.p256, pt, pub, len, NULL) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE(EC_POINT_is_on_curve(ossl_st.p256, pt, NULL) == 1 &&
	    EC_POINT_is_at_infinity(ossl_st.p256, pt) == 0, ML_ERR_CRYPTO);
	r = 0;
out:
	EC_POINT_free(pt);
	return r;
}

int
ml_p256_check_pub(const uint8_t *pub, size_t len)
{
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_TRY(ml_ossl_init());
	ML_TRY(p256_point_ok(pub, len));
	r = 0;
out:
	ossl_done(r, "ml_p256_check_pub");
	return r;
}

/*
 * pub must already have passed p256_point_ok() (the provider checks the
 * point again when it decodes it).  See p256_tmpl_new() for why dup.
 */
static int
p256_pkey_from_pub(const uint8_t pub[static ML_P256_PUB_LEN],
    EVP_PKEY **ret_pkey)
{
	EVP_PKEY *pkey = NULL;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((pkey = EVP_PKEY_dup(ossl_st.p256_tmpl)) != NULL,
	    ML_ERR_NOMEM);
	ML_ENSURE(EVP_PKEY_set1_encoded_public_key(pkey, pub,
	    ML_P256_PUB_LEN) == 1, ML_ERR_CRYPTO);
	*ret_pkey = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	return r;
}

/*
 * Scalar -> EVP_PKEY holding d and Q = d*G (fromdata does not compute Q,
 * and a key without Q cannot export its public point).  d must be in
 * [1, n-1]; anything else is ML_ERR_CRYPTO.
 */
static int
p256_pkey_from_priv(const uint8_t priv[static ML_P256_PRIV_LEN],
    EVP_PKEY **ret_pkey, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	BN_CTX *bnctx = NULL;
	BIGNUM *d = NULL;
	EC_POINT *q = NULL;
	EVP_PKEY *pkey = NULL;
	OSSL_PARAM params[4];
	uint8_t d_native[ML_P256_PRIV_LEN];	/* host-endian copy of d */
	uint8_t pub[ML_P256_PUB_LEN];
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((bnctx = BN_CTX_secure_new_ex(ossl_st.libctx)) != NULL,
	    ML_ERR_NOMEM);
	ML_ENSURE((d = BN_secure_new()) != NULL, ML_ERR_NOMEM);
	BN_set_flags(d, BN_FLG_CONSTTIME);
	ML_ENSURE(BN_bin2bn(priv, ML_P256_PRIV_LEN, d) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(!BN_is_zero(d) && BN_cmp(d, ossl_st.p256_order) < 0,
	    ML_ERR_CRYPTO);
	ML_ENSURE((q = EC_POINT_new(ossl_st.p256)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EC_POINT_mul(ossl_st.p256, q, d, NULL, NULL, bnctx) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE(EC_POINT_point2oct(ossl_st.p256, q,
	    POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), bnctx) ==
	    sizeof(pub), ML_ERR_CRYPTO);
	ML_ENSURE(BN_bn2nativepad(d, d_native, sizeof(d_native)) ==
	    (int)sizeof(d_native), ML_ERR_CRYPTO);

	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, p256_group_name, 0);
	params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, d_native,
	    sizeof(d_native));
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    pub, sizeof(pub));
	params[3] = OSSL_PARAM_construct_end();
	ML_TRY(p256_fromdata(ossl_st.libctx, params, EVP_PKEY_KEYPAIR,
	    &pkey));
	*ret_pkey = pkey;
	pkey = NULL;
	memcpy(ret_pub, pub, sizeof(pub));
	r = 0;
out:
	ml_wipe(d_native, sizeof(d_native));
	EVP_PKEY_free(pkey);
	EC_POINT_free(q);
	BN_clear_free(d);
	BN_CTX_free(bnctx);
	return r;
}

/* The 65-byte uncompressed public point of an EC EVP_PKEY. */
static int
p256_pkey_pub(const EVP_PKEY *pkey, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	uint8_t pub[ML_P256_PUB_LEN];
	size_t len = 0;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY,
	    pub, sizeof(pub), &len) == 1 && len == sizeof(pub) &&
	    pub[0] == 0x04, ML_ERR_CRYPTO);
	memcpy(ret_pub, pub, sizeof(pub));
	r = 0;
out:
	return r;
}

static int
p256_generate(EVP_PKEY **ret_pkey)
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *pkey = NULL;
	int r = ML_ERR_INTERNAL;

	/* Parameters from the template: no EC_GROUP built from the name. */
	ML_ENSURE((pctx = EVP_PKEY_CTX_new_from_pkey(ossl_st.libctx,
	    ossl_st.p256_tmpl, NULL)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_PKEY_keygen_init(pctx) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(EVP_PKEY_generate(pctx, &pkey) == 1, ML_ERR_CRYPTO);
	*ret_pkey = pkey;
	pkey = NULL;
	r = 0;
out:
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pctx);
	return r;
}

int
ml_p256_keygen(uint8_t ret_priv[static ML_P256_PRIV_LEN],
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	EVP_PKEY *pkey = NULL;
	BIGNUM *d = NULL;
	uint8_t priv[ML_P256_PRIV_LEN];
	uint8_t pub[ML_P256_PUB_LEN];
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_TRY(ml_ossl_init());
	ML_TRY(p256_generate(&pkey));
	ML_ENSURE(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_PRIV_KEY,
	    &d) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(BN_bn2binpad(d, priv, sizeof(priv)) == (int)sizeof(priv),
	    ML_ERR_CRYPTO);
	ML_TRY(p256_pkey_pub(pkey, pub));
	memcpy(ret_priv, priv, sizeof(priv));
	memcpy(ret_pub, pub, sizeof(pub));
	r = 0;
out:
	ml_wipe(priv, sizeof(priv));
	BN_clear_free(d);
	EVP_PKEY_free(pkey);
	ossl_done(r, "ml_p256_keygen");
	return r;
}

static struct ml_p256_key *
p256_key_alloc(void)
{
	struct ml_p256_key *k = calloc(1, sizeof(*k));

	if (k != NULL && (k->ctxs = calloc(1, sizeof(*k->ctxs))) != NULL) {
		pthread_mutex_init(&k->ctxs->lock, NULL);
	}
	return k;
}

int
ml_p256_pub_from_priv(const uint8_t priv[static ML_P256_PRIV_LEN],
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	struct ml_p256_key *k = NULL;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_p256_key_from_priv(priv, &k));
	memcpy(ret_pub, k->pub, sizeof(k->pub));
	r = 0;
out:
	ml_p256_key_free(k);
	return r;
}

int
ml_p256_key_from_priv(const uint8_t priv[static ML_P256_PRIV_LEN],
    struct ml_p256_key **ret_key)
{
	struct ml_p256_key *k = NULL;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(priv != NULL && ret_key != NULL, ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	ML_ENSURE((k = p256_key_alloc()) != NULL, ML_ERR_NOMEM);
	ML_TRY(p256_pkey_from_priv(priv, &k->pkey, k->pub));
	k->has_priv = true;
	*ret_key = k;
	k = NULL;
	r = 0;
out:
	ml_p256_key_free(k);
	ossl_done(r, "ml_p256_key_from_priv");
	return r;
}

int
ml_p256_key_from_pub(const uint8_t *pub, size_t len,
    struct ml_p256_key **ret_key)
{
	struct ml_p256_key *k = NULL;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(ret_key != NULL, ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	ML_TRY(p256_point_ok(pub, len));
	ML_ENSURE((k = p256_key_alloc()) != NULL, ML_ERR_NOMEM);
	memcpy(k->pub, pub, sizeof(k->pub));
	ML_TRY(p256_pkey_from_pub(k->pub, &k->pkey));
	*ret_key = k;
	k = NULL;
	r = 0;
out:
	ml_p256_key_free(k);
	ossl_done(r, "ml_p256_key_from_pub");
	return r;
}

void
ml_p256_key_free(struct ml_p256_key *k)
{
	if (k == NULL) {
		return;
	}
	if (k->ctxs != NULL) {
		EVP_PKEY_CTX_free(k->ctxs->sign);
		EVP_PKEY_CTX_free(k->ctxs->verify);
		pthread_mutex_destroy(&k->ctxs->lock);
		free(k->ctxs);
	}
	EVP_PKEY_free(k->pkey);		/* the provider clears the scalar */
	ml_freezero(k, sizeof(*k));
}

int
ml_p256_key_pub(const struct ml_p256_key *k,
    uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	if (k == NULL) {
		return ML_ERR_ARG;
	}
	memcpy(ret_pub, k->pub, sizeof(k->pub));
	return 0;
}

EVP_PKEY *
ml_p256_key_evp(const struct ml_p256_key *k)
{
	return k != NULL ? k->pkey : NULL;
}

/* ---- ECDSA ----------------------------------------------------------- */

int
ml_ecdsa_raw_to_der(const uint8_t sig[static ML_P256_SIG_LEN], uint8_t *der,
    size_t der_cap, size_t *ret_der_len)
{
	ECDSA_SIG *es = NULL;
	BIGNUM *br = NULL, *bs = NULL;
	uint8_t buf[ML_ECDSA_DER_MAX], *p = buf;
	int n;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(der != NULL && ret_der_len != NULL, ML_ERR_ARG);
	ML_ENSURE((es = ECDSA_SIG_new()) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((br = BN_bin2bn(sig, ML_P256_SIG_LEN / 2, NULL)) != NULL &&
	    (bs = BN_bin2bn(sig + ML_P256_SIG_LEN / 2, ML_P256_SIG_LEN / 2,
	    NULL)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(ECDSA_SIG_set0(es, br, bs) == 1, ML_ERR_INTERNAL);
	br = bs = NULL;			/* owned by es now */
	n = i2d_ECDSA_SIG(es, NULL);
	ML_ENSURE(n > 0 && (size_t)n <= sizeof(buf), ML_ERR_CRYPTO);
	ML_ENSURE((size_t)n <= der_cap, ML_ERR_TOO_LARGE);
	ML_ENSURE(i2d_ECDSA_SIG(es, &p) == n, ML_ERR_CRYPTO);
	memcpy(der, buf, (size_t)n);
	*ret_der_len = (size_t)n;
	r = 0;
out:
	BN_free(br);
	BN_free(bs);
	ECDSA_SIG_free(es);
	ossl_done(r, "ml_ecdsa_raw_to_der");
	return r;
}

/*
 * Strict: exactly one DER SEQUENCE (d2i refuses BER and non-minimal
 * integers), no trailing bytes, r and s non-negative and at most 32 bytes.
 */
int
ml_ecdsa_der_to_raw(const uint8_t *der, size_t der_len,
    uint8_t ret_sig[static ML_P256_SIG_LEN])
{
	ECDSA_SIG *es = NULL;
	const BIGNUM *br, *bs;
	const uint8_t *p = der;
	uint8_t sig[ML_P256_SIG_LEN];
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(der != NULL, ML_ERR_ARG);
	ML_ENSURE(der_len <= ML_ECDSA_DER_MAX, ML_ERR_FORMAT);
	ML_ENSURE((es = d2i_ECDSA_SIG(NULL, &p, (long)der_len)) != NULL,
	    ML_ERR_FORMAT);
	ML_ENSURE(p == der + der_len, ML_ERR_TRAILING);
	ECDSA_SIG_get0(es, &br, &bs);
	ML_ENSURE(!BN_is_negative(br) && !BN_is_negative(bs), ML_ERR_FORMAT);
	ML_ENSURE(BN_bn2binpad(br, sig, ML_P256_SIG_LEN / 2) ==
	    ML_P256_SIG_LEN / 2 && BN_bn2binpad(bs, sig + ML_P256_SIG_LEN / 2,
	    ML_P256_SIG_LEN / 2) == ML_P256_SIG_LEN / 2, ML_ERR_FORMAT);
	memcpy(ret_sig, sig, sizeof(sig));
	r = 0;
out:
	ECDSA_SIG_free(es);
	ossl_done(r, "ml_ecdsa_der_to_raw");
	return r;
}

/*
 * An initialised sign (or verify) context for k: the key's own when no
 * other thread has it (*ret_cached true; give it back with p256_ctx_put),
 * else a fresh one.
 */
static int
p256_ctx_take(const struct ml_p256_key *k, bool sign, EVP_PKEY_CTX **ret,
    bool *ret_cached)
{
	struct p256_ctxs *c = k->ctxs;
	EVP_PKEY_CTX **slot, *pctx;

	*ret_cached = false;
	if (c != NULL && pthread_mutex_trylock(&c->lock) == 0) {
		slot = sign ? &c->sign : &c->verify;
		if (*slot != NULL) {
			*ret = *slot;
			*ret_cached = true;
			return 0;
		}
		pthread_mutex_unlock(&c->lock);
	}
	if ((pctx = EVP_PKEY_CTX_new_from_pkey(ossl_st.libctx, k->pkey,
	    NULL)) == NULL) {
		return ML_ERR_NOMEM;
	}
	if ((sign ? EVP_PKEY_sign_init(pctx) : EVP_PKEY_verify_init(pctx)) !=
	    1) {
		EVP_PKEY_CTX_free(pctx);
		return ML_ERR_CRYPTO;
	}
	/* The first context made for a key becomes its own. */
	if (c != NULL && pthread_mutex_trylock(&c->lock) == 0) {
		slot = sign ? &c->sign : &c->verify;
		if (*slot == NULL) {
			*slot = pctx;
			*ret_cached = true;
		} else {
			pthread_mutex_unlock(&c->lock);
		}
	}
	*ret = pctx;
	return 0;
}

/* After use: a failed operation's cached context is not trusted again. */
static void
p256_ctx_put(const struct ml_p256_key *k, bool sign, EVP_PKEY_CTX *pctx,
    bool cached, bool failed)
{
	struct p256_ctxs *c = k->ctxs;

	if (!cached) {
		EVP_PKEY_CTX_free(pctx);
		return;
	}
	if (failed) {
		EVP_PKEY_CTX_free(pctx);
		if (sign) {
			c->sign = NULL;
		} else {
			c->verify = NULL;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

int
ml_p256_sign_digest(const struct ml_p256_key *k, const uint8_t *digest,
    size_t dlen, uint8_t ret_sig[static ML_P256_SIG_LEN])
{
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t der[ML_ECDSA_DER_MAX];
	size_t der_len = sizeof(der);
	uint8_t sig[ML_P256_SIG_LEN];
	bool cached = false, failed = true;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(k != NULL && digest != NULL && dlen > 0, ML_ERR_ARG);
	ML_ENSURE(k->has_priv, ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	ML_TRY(p256_ctx_take(k, true, &pctx, &cached));
	ML_ENSURE(EVP_PKEY_sign(pctx, der, &der_len, digest, dlen) == 1,
	    ML_ERR_CRYPTO);
	failed = false;
	ML_TRY(ml_ecdsa_der_to_raw(der, der_len, sig));
	memcpy(ret_sig, sig, sizeof(sig));
	r = 0;
out:
	if (pctx != NULL) {
		p256_ctx_put(k, true, pctx, cached, failed);
	}
	ossl_done(r, "ml_p256_sign_digest");
	return r;
}

int
ml_p256_verify_digest(const struct ml_p256_key *k, const uint8_t *digest,
    size_t dlen, const uint8_t *sig, size_t sig_len)
{
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t der[ML_ECDSA_DER_MAX];
	size_t der_len = 0;
	bool cached = false;
	int r = ML_ERR_INTERNAL, v = 0;

	ERR_set_mark();
	ML_ENSURE(k != NULL && digest != NULL && dlen > 0, ML_ERR_ARG);
	ML_ENSURE(sig != NULL && sig_len == ML_P256_SIG_LEN, ML_ERR_AUTH);
	ML_TRY(ml_ossl_init());
	ML_TRY(ml_ecdsa_raw_to_der(sig, der, sizeof(der), &der_len));
	ML_TRY(p256_ctx_take(k, false, &pctx, &cached));
	/* 0 is a bad signature, < 0 one OpenSSL could not even parse
	 * (r or s zero or >= n): both are simply not valid. */
	v = EVP_PKEY_verify(pctx, der, der_len, digest, dlen);
	ML_ENSURE(v == 1, ML_ERR_AUTH);
	r = 0;
out:
	if (pctx != NULL) {
		/* A context that said "invalid" is fine; one that failed to
		 * run (< 0) is made again. */
		p256_ctx_put(k, false, pctx, cached, r != 0 && v < 0);
	}
	ossl_done(r, "ml_p256_verify_digest");
	return r;
}

int
ml_p256_sign(const struct ml_p256_key *k, const void *msg, size_t n,
    uint8_t ret_sig[static ML_P256_SIG_LEN])
{
	uint8_t md[ML_SHA256_LEN];
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_sha256(msg, n, md));
	ML_TRY(ml_p256_sign_digest(k, md, sizeof(md), ret_sig));
	r = 0;
out:
	return r;
}

int
ml_p256_verify(const struct ml_p256_key *k, const void *msg, size_t n,
    const uint8_t *sig, size_t sig_len)
{
	uint8_t md[ML_SHA256_LEN];
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_sha256(msg, n, md));
	ML_TRY(ml_p256_verify_digest(k, md, sizeof(md), sig, sig_len));
	r = 0;
out:
	return r;
}

/* ---- ECDH ------------------------------------------------------------ */

/*
 * x(priv * peer).  The peer point is checked here (on curve, not infinity)
 * and the EVP-level check is skipped: for P-256 (cofactor 1) it would only
 * add a full scalar multiplication by n.
 */
static int
p256_derive(EVP_PKEY *priv, const uint8_t *peer_pub, size_t peer_len,
    uint8_t ret_secret[static ML_P256_SECRET_LEN])
{
	EVP_PKEY_CTX *pctx = NULL;
	EVP_PKEY *peer = NULL;
	uint8_t secret[ML_P256_SECRET_LEN];
	size_t len = sizeof(secret);
	int r = ML_ERR_INTERNAL;

	ML_TRY(p256_point_ok(peer_pub, peer_len));
	ML_TRY(p256_pkey_from_pub(peer_pub, &peer));
	ML_ENSURE((pctx = EVP_PKEY_CTX_new_from_pkey(ossl_st.libctx, priv,
	    NULL)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_PKEY_derive_init(pctx) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(EVP_PKEY_derive_set_peer_ex(pctx, peer, 0) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE(EVP_PKEY_derive(pctx, secret, &len) == 1 &&
	    len == sizeof(secret), ML_ERR_CRYPTO);
	memcpy(ret_secret, secret, sizeof(secret));
	r = 0;
out:
	ml_wipe(secret, sizeof(secret));
	EVP_PKEY_CTX_free(pctx);
	EVP_PKEY_free(peer);
	return r;
}

int
ml_p256_ecdh(const struct ml_p256_key *k, const uint8_t *peer_pub,
    size_t peer_len, uint8_t ret_secret[static ML_P256_SECRET_LEN])
{
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(k != NULL && k->has_priv, ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	ML_TRY(p256_derive(k->pkey, peer_pub, peer_len, ret_secret));
	r = 0;
out:
	ossl_done(r, "ml_p256_ecdh");
	return r;
}

/* ---- AES-256-GCM ----------------------------------------------------- */

/* EVP_*Update take int lengths: feed large buffers in chunks. */
static int
gcm_update(EVP_CIPHER_CTX *cctx, uint8_t *out, const uint8_t *in, size_t n)
{
	size_t chunk;
	int outl;

	while (n > 0) {
		chunk = n < ML_EVP_CHUNK ? n : ML_EVP_CHUNK;
		if (EVP_CipherUpdate(cctx, out, &outl, in, (int)chunk) != 1 ||
		    (out != NULL && (size_t)outl != chunk)) {
			return ML_ERR_CRYPTO;
		}
		if (out != NULL) {
			out += chunk;
		}
		in += chunk;
		n -= chunk;
	}
	return 0;
}

/*
 * Start AES-256-GCM (enc 1 to seal, 0 to open) and run aad, then the n bytes
 * of in, through it into out.  Returns 0 and sets *ret_cctx, which the
 * caller frees, or a negative ML_ERR_*; *ret_cctx is untouched on failure
 * and out may hold partial output.
 */
static int
gcm_begin(int enc, const uint8_t key[static ML_AES256_KEY_LEN],
    const uint8_t iv[static ML_GCM_IV_LEN], const void *aad, size_t aad_len,
    const void *in, size_t n, uint8_t *out, EVP_CIPHER_CTX **ret_cctx)
{
	EVP_CIPHER_CTX *cctx = NULL;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((aad != NULL || aad_len == 0) &&
	    ((in != NULL && out != NULL) || n == 0), ML_ERR_ARG);
	ML_TRY(ml_ossl_init());
	ML_ENSURE((cctx = EVP_CIPHER_CTX_new()) != NULL, ML_ERR_NOMEM);
	/* The default GCM IV length is 12, which is ML_GCM_IV_LEN. */
	ML_ENSURE(EVP_CipherInit_ex2(cctx, ossl_st.gcm, key, iv, enc,
	    NULL) == 1, ML_ERR_CRYPTO);
	ML_TRY(gcm_update(cctx, NULL, aad, aad_len));
	ML_TRY(gcm_update(cctx, out, in, n));
	*ret_cctx = cctx;
	cctx = NULL;
	r = 0;
out:
	EVP_CIPHER_CTX_free(cctx);	/* cleanses the key schedule */
	return r;
}

/*
 * On failure ct is wiped (it may hold a partial encryption); ret_tag is
 * untouched.
 */
int
ml_gcm_seal(const uint8_t key[static ML_AES256_KEY_LEN],
    const uint8_t iv[static ML_GCM_IV_LEN], const void *aad, size_t aad_len,
    const void *pt, size_t pt_len, uint8_t *ct,
    uint8_t ret_tag[static ML_GCM_TAG_LEN])
{
	EVP_CIPHER_CTX *cctx = NULL;
	uint8_t tag[ML_GCM_TAG_LEN];
	uint8_t fin[16];
	int outl = 0;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_TRY(gcm_begin(1, key, iv, aad, aad_len, pt, pt_len, ct, &cctx));
	ML_ENSURE(EVP_EncryptFinal_ex(cctx, fin, &outl) == 1 && outl == 0,
	    ML_ERR_CRYPTO);
	ML_ENSURE(EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_AEAD_GET_TAG,
	    (int)sizeof(tag), tag) == 1, ML_ERR_CRYPTO);
	memcpy(ret_tag, tag, sizeof(tag));
	r = 0;
out:
	if (r != 0 && ct != NULL && pt_len > 0) {
		ml_wipe(ct, pt_len);
	}
	EVP_CIPHER_CTX_free(cctx);	/* cleanses the key schedule */
	ossl_done(r, "ml_gcm_seal");
	return r;
}

int
ml_gcm_open(const uint8_t key[static ML_AES256_KEY_LEN],
    const uint8_t iv[static ML_GCM_IV_LEN], const void *aad, size_t aad_len,
    const void *ct, size_t ct_len, const uint8_t tag[static ML_GCM_TAG_LEN],
    uint8_t *pt)
{
	EVP_CIPHER_CTX *cctx = NULL;
	uint8_t fin[16];
	int outl = 0;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_TRY(gcm_begin(0, key, iv, aad, aad_len, ct, ct_len, pt, &cctx));
	/*
	 * The AEAD ctrls (not deprecated in 3.0) rather than
	 * EVP_CIPHER_CTX_set_params(): under valgrind 3.19 the latter made
	 * 3.0.22's tag check depend on undefined memory.
	 */
	ML_ENSURE(EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_AEAD_SET_TAG,
	    ML_GCM_TAG_LEN, (void *)tag) == 1, ML_ERR_CRYPTO);
	/* The tag comparison inside is constant time. */
	ML_ENSURE(EVP_DecryptFinal_ex(cctx, fin, &outl) == 1 && outl == 0,
	    ML_ERR_AUTH);
	r = 0;
out:
	if (r != 0 && pt != NULL && ct_len > 0) {
		ml_wipe(pt, ct_len);	/* never release unauthenticated data */
	}
	EVP_CIPHER_CTX_free(cctx);
	ossl_done(r, "ml_gcm_open");
	return r;
}

/* ---- ECIES-style seal ------------------------------------------------ */

/* key = HKDF-SHA256(salt = eph_pub || rcpt_pub, ikm = secret, info). */
static int
seal_kdf(const uint8_t eph_pub[static ML_P256_PUB_LEN],
    const uint8_t rcpt_pub[static ML_P256_PUB_LEN],
    const uint8_t secret[static ML_P256_SECRET_LEN],
    uint8_t ret_key[static ML_AES256_KEY_LEN])
{
	uint8_t salt[2 * ML_P256_PUB_LEN];

	memcpy(salt, eph_pub, ML_P256_PUB_LEN);
	memcpy(salt + ML_P256_PUB_LEN, rcpt_pub, ML_P256_PUB_LEN);
	return ml_hkdf_sha256(salt, sizeof(salt), secret, ML_P256_SECRET_LEN,
	    ML_SEAL_INFO, sizeof(ML_SEAL_INFO) - 1, ret_key,
	    ML_AES256_KEY_LEN);
}

/*
 * out must not overlap pt.  If a failure comes after out was checked to be
 * big enough, its first pt_len + ML_SEAL_OVERHEAD bytes are wiped (they may
 * hold part of a seal); *ret_out_len is untouched.
 */
int
ml_seal(const uint8_t recipient_pub[static ML_P256_PUB_LEN],
    const void *aad, size_t aad_len, const void *pt, size_t pt_len,
    uint8_t *out, size_t out_cap, size_t *ret_out_len)
{
	EVP_PKEY *eph = NULL;
	uint8_t secret[ML_P256_SECRET_LEN];
	uint8_t key[ML_AES256_KEY_LEN];
	uint8_t *eph_pub, *iv, *ct, *tag;
	size_t need = 0;
	bool writing = false;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(out != NULL && ret_out_len != NULL &&
	    (pt != NULL || pt_len == 0), ML_ERR_ARG);
	ML_ENSURE(pt_len <= SIZE_MAX - ML_SEAL_OVERHEAD, ML_ERR_TOO_LARGE);
	need = pt_len + ML_SEAL_OVERHEAD;
	ML_ENSURE(out_cap >= need, ML_ERR_TOO_LARGE);
	ML_TRY(ml_ossl_init());
	ML_TRY(p256_point_ok(recipient_pub, ML_P256_PUB_LEN));

	eph_pub = out;
	iv = eph_pub + ML_P256_PUB_LEN;
	ct = iv + ML_GCM_IV_LEN;
	tag = ct + pt_len;
	writing = true;

	ML_TRY(p256_generate(&eph));
	ML_TRY(p256_pkey_pub(eph, eph_pub));
	ML_TRY(p256_derive(eph, recipient_pub, ML_P256_PUB_LEN, secret));
	ML_TRY(seal_kdf(eph_pub, recipient_pub, secret, key));
	ML_TRY(ml_rand(iv, ML_GCM_IV_LEN));
	ML_TRY(ml_gcm_seal(key, iv, aad, aad_len, pt, pt_len, ct, tag));
	*ret_out_len = need;
	r = 0;
out:
	if (r != 0 && writing) {
		ml_wipe(out, need);
	}
	ml_wipe(secret, sizeof(secret));
	ml_wipe(key, sizeof(key));
	EVP_PKEY_free(eph);		/* the ephemeral scalar dies here */
	ossl_done(r, "ml_seal");
	return r;
}

/*
 * Every failure that a modified input can cause is ML_ERR_AUTH, including
 * an ephemeral point that is not on the curve (checked here, before the
 * callback sees it): a caller cannot tell which part was damaged.  Too
 * short an input is ML_ERR_SHORT, too small a pt ML_ERR_TOO_LARGE; errors
 * from the ecdh callback are passed through.
 */
int
ml_seal_open(const uint8_t recipient_pub[static ML_P256_PUB_LEN],
    ml_ecdh_fn ecdh, void *ecdh_ctx, const void *aad, size_t aad_len,
    const uint8_t *in, size_t in_len, uint8_t *pt, size_t pt_cap,
    size_t *ret_pt_len)
{
	uint8_t secret[ML_P256_SECRET_LEN];
	uint8_t key[ML_AES256_KEY_LEN];
	const uint8_t *eph_pub, *iv, *ct, *tag;
	size_t ct_len;
	int r = ML_ERR_INTERNAL;

	ERR_set_mark();
	ML_ENSURE(ecdh != NULL && in != NULL && ret_pt_len != NULL,
	    ML_ERR_ARG);
	ML_ENSURE(in_len >= ML_SEAL_OVERHEAD, ML_ERR_SHORT);
	ct_len = in_len - ML_SEAL_OVERHEAD;
	ML_ENSURE(pt != NULL || ct_len == 0, ML_ERR_ARG);
	ML_ENSURE(pt_cap >= ct_len, ML_ERR_TOO_LARGE);
	ML_TRY(ml_ossl_init());

	eph_pub = in;
	iv = eph_pub + ML_P256_PUB_LEN;
	ct = iv + ML_GCM_IV_LEN;
	tag = ct + ct_len;

	ML_ENSURE(p256_point_ok(eph_pub, ML_P256_PUB_LEN) == 0, ML_ERR_AUTH);
	ML_TRY(ecdh(ecdh_ctx, eph_pub, secret));
	ML_TRY(seal_kdf(eph_pub, recipient_pub, secret, key));
	ML_TRY(ml_gcm_open(key, iv, aad, aad_len, ct, ct_len, tag, pt));
	*ret_pt_len = ct_len;
	r = 0;
out:
	ml_wipe(secret, sizeof(secret));
	ml_wipe(key, sizeof(key));
	ossl_done(r, "ml_seal_open");
	return r;
}
