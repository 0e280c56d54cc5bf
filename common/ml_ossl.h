/*
 * OpenSSL 3 glue: every cryptographic operation in mintline goes through
 * here, through EVP, inside one private OSSL_LIB_CTX (so that
 * OpenSSL -> libp11 -> our PKCS#11 module -> OpenSSL never recurses into the
 * host's providers or configuration).
 *
 * Keys are raw bytes at this boundary: P-256 private scalars (32 bytes, big
 * endian), public points uncompressed (65 bytes, 04||X||Y), signatures raw
 * r||s (64 bytes, the CKM_ECDSA format).  All functions return 0 or a
 * negative ML_ERR_*; outputs are untouched on failure.  Verification and
 * AEAD-open failures are ML_ERR_AUTH; everything else OpenSSL refuses is
 * ML_ERR_CRYPTO (bad point, bad scalar) or ML_ERR_NOMEM.
 */
#ifndef ML_OSSL_H
#define ML_OSSL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/types.h>

#include "ml_err.h"

#define ML_P256_PRIV_LEN	32
#define ML_P256_PUB_LEN		65
#define ML_P256_SIG_LEN		64
#define ML_P256_SECRET_LEN	32
#define ML_SHA256_LEN		32
#define ML_AES256_KEY_LEN	32
#define ML_GCM_IV_LEN		12
#define ML_GCM_TAG_LEN		16

/* DER of the P-256 OID (06 08 2A 86 48 CE 3D 03 01 07): CKA_EC_PARAMS. */
extern const uint8_t ml_p256_oid_der[10];

/*
 * Create the private library context (idempotent, thread-safe).  Every
 * other function calls it implicitly; ml_ossl_fini() frees the context
 * (call only when no other thread uses it, e.g. from C_Finalize).  Free
 * every ml_p256_key and ml_sha256 first: they live in the context.  A
 * later ml_ossl_init() (or any call) builds a fresh one.
 */
ML_MUST_CHECK int ml_ossl_init(void);
void		 ml_ossl_fini(void);
OSSL_LIB_CTX	*ml_ossl_ctx(void);

ML_MUST_CHECK int ml_rand(void *buf, size_t n);

ML_MUST_CHECK int ml_sha256(const void *d, size_t n,
    uint8_t ret_md[static ML_SHA256_LEN]);

/* Multi-part SHA-256. */
struct ml_sha256;
struct ml_sha256 *ml_sha256_new(void);		/* NULL on failure */
ML_MUST_CHECK int ml_sha256_update(struct ml_sha256 *h, const void *d, size_t n);
/* Finish; the context can be reused after ml_sha256_reset(). */
ML_MUST_CHECK int ml_sha256_final(struct ml_sha256 *h,
    uint8_t ret_md[static ML_SHA256_LEN]);
ML_MUST_CHECK int ml_sha256_reset(struct ml_sha256 *h);
/* Copy state (for transcript hashes that fork). NULL on failure. */
struct ml_sha256 *ml_sha256_dup(const struct ml_sha256 *h);
void		 ml_sha256_free(struct ml_sha256 *h);	/* NULL-safe */

ML_MUST_CHECK int ml_hmac_sha256(const void *key, size_t klen, const void *d,
    size_t n, uint8_t ret_mac[static ML_SHA256_LEN]);

/* RFC 5869 HKDF-SHA256, extract and expand; out_len at most 255*32. */
ML_MUST_CHECK int ml_hkdf_sha256(const void *salt, size_t salt_len,
    const void *ikm, size_t ikm_len, const void *info, size_t info_len,
    void *out, size_t out_len);

/* P-256 keys as raw bytes. */
ML_MUST_CHECK int ml_p256_keygen(uint8_t ret_priv[static ML_P256_PRIV_LEN],
    uint8_t ret_pub[static ML_P256_PUB_LEN]);
ML_MUST_CHECK int ml_p256_pub_from_priv(const uint8_t priv[static ML_P256_PRIV_LEN],
    uint8_t ret_pub[static ML_P256_PUB_LEN]);
/* 0 if pub is an uncompressed point on P-256, else ML_ERR_CRYPTO. */
ML_MUST_CHECK int ml_p256_check_pub(const uint8_t *pub, size_t len);

/*
 * A loaded P-256 key (private and/or public) kept as an EVP_PKEY, so that
 * repeated operations do not re-import the key.  ml_p256_key_free() wipes.
 */
struct ml_p256_key;
ML_MUST_CHECK int ml_p256_key_from_priv(const uint8_t priv[static ML_P256_PRIV_LEN],
    struct ml_p256_key **ret_key);
ML_MUST_CHECK int ml_p256_key_from_pub(const uint8_t *pub, size_t len,
    struct ml_p256_key **ret_key);
void		 ml_p256_key_free(struct ml_p256_key *k);	/* NULL-safe */
/* The public point of a loaded key. */
ML_MUST_CHECK int ml_p256_key_pub(const struct ml_p256_key *k,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);
/* Borrow the EVP_PKEY (owned by k). */
EVP_PKEY	*ml_p256_key_evp(const struct ml_p256_key *k);

/*
 * ECDSA over a caller-computed digest (CKM_ECDSA semantics: dlen bytes,
 * truncated/left-padded per the curve order as OpenSSL does).  Raw r||s.
 */
ML_MUST_CHECK int ml_p256_sign_digest(const struct ml_p256_key *k,
    const uint8_t *digest, size_t dlen, uint8_t ret_sig[static ML_P256_SIG_LEN]);
/* 0 if valid, ML_ERR_AUTH if not. */
ML_MUST_CHECK int ml_p256_verify_digest(const struct ml_p256_key *k,
    const uint8_t *digest, size_t dlen, const uint8_t *sig, size_t sig_len);
/* Convenience: SHA-256 then sign/verify. */
ML_MUST_CHECK int ml_p256_sign(const struct ml_p256_key *k, const void *msg,
    size_t n, uint8_t ret_sig[static ML_P256_SIG_LEN]);
ML_MUST_CHECK int ml_p256_verify(const struct ml_p256_key *k, const void *msg,
    size_t n, const uint8_t *sig, size_t sig_len);

/* ECDH: the x coordinate of priv * peer (CKM_ECDH1_DERIVE, CKD_NULL). */
ML_MUST_CHECK int ml_p256_ecdh(const struct ml_p256_key *k,
    const uint8_t *peer_pub, size_t peer_len,
    uint8_t ret_secret[static ML_P256_SECRET_LEN]);

/* Raw r||s <-> DER ECDSA-Sig-Value (for X.509 and libp11 interop). */
ML_MUST_CHECK int ml_ecdsa_raw_to_der(const uint8_t sig[static ML_P256_SIG_LEN],
    uint8_t *der, size_t der_cap, size_t *ret_der_len);
ML_MUST_CHECK int ml_ecdsa_der_to_raw(const uint8_t *der, size_t der_len,
    uint8_t ret_sig[static ML_P256_SIG_LEN]);

/*
 * AES-256-GCM with a 12-byte IV and 16-byte tag.  ct has pt_len bytes.
 * open returns ML_ERR_AUTH on a bad tag and then leaves pt wiped.
 */
ML_MUST_CHECK int ml_gcm_seal(const uint8_t key[static ML_AES256_KEY_LEN],
    const uint8_t iv[static ML_GCM_IV_LEN], const void *aad, size_t aad_len,
    const void *pt, size_t pt_len, uint8_t *ct,
    uint8_t ret_tag[static ML_GCM_TAG_LEN]);
ML_MUST_CHECK int ml_gcm_open(const uint8_t key[static ML_AES256_KEY_LEN],
    const uint8_t iv[static ML_GCM_IV_LEN], const void *aad, size_t aad_len,
    const void *ct, size_t ct_len, const uint8_t tag[static ML_GCM_TAG_LEN],
    uint8_t *pt);

/*
 * ECIES-style sealing to a P-256 public key (BN-6: the chip seals feature
 * information to the server key).  Format, all fixed-size except ct:
 *
 *	eph_pub(65) || iv(12) || ct(pt_len) || tag(16)
 *
 * key = HKDF-SHA256(salt = eph_pub || recipient_pub, ikm = ECDH(eph, rcpt),
 *                   info = "mintline seal v1"), 32 bytes; aad is caller's.
 * ML_SEAL_OVERHEAD is the size added to pt_len.
 */
#define ML_SEAL_OVERHEAD	(ML_P256_PUB_LEN + ML_GCM_IV_LEN + ML_GCM_TAG_LEN)
ML_MUST_CHECK int ml_seal(const uint8_t recipient_pub[static ML_P256_PUB_LEN],
    const void *aad, size_t aad_len, const void *pt, size_t pt_len,
    uint8_t *out, size_t out_cap, size_t *ret_out_len);
/*
 * Open with the recipient's key; the ECDH step is a callback so that the
 * private key can stay in an HSM (PKCS#11 C_DeriveKey) or chip.
 * ecdh(ctx, eph_pub, ret_secret) returns 0 or ML_ERR_*.
 * pt has room for in_len - ML_SEAL_OVERHEAD bytes.
 * Any modified input fails with ML_ERR_AUTH, including an eph_pub that is
 * not on the curve (checked before ecdh is called); ML_ERR_SHORT if in_len
 * is below ML_SEAL_OVERHEAD, ML_ERR_TOO_LARGE if pt_cap is too small;
 * ecdh's own errors pass through.  pt never keeps unauthenticated
 * plaintext: on failure it is untouched or wiped.
 */
typedef int (*ml_ecdh_fn)(void *ctx, const uint8_t eph_pub[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN]);
ML_MUST_CHECK int ml_seal_open(const uint8_t recipient_pub[static ML_P256_PUB_LEN],
    ml_ecdh_fn ecdh, void *ecdh_ctx, const void *aad, size_t aad_len,
    const uint8_t *in, size_t in_len, uint8_t *pt, size_t pt_cap,
    size_t *ret_pt_len);

#endif
