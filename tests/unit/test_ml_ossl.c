/*
 * Unit tests for common/ml_ossl.c: known answers from the RFCs and NIST,
 * round trips each followed by tampering that must fail with the exact
 * error, and the lifecycle/thread-safety promises of ml_ossl.h.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_wipe.h"
#include "mltest.h"

/* Decode a hex string into buf (which must have room); returns the length. */
static size_t
unhex(const char *hex, uint8_t *buf, size_t cap)
{
	size_t n = strlen(hex) / 2, i;
	unsigned int v;

	ck_assert_uint_eq(strlen(hex) % 2, 0);
	ck_assert_uint_le(n, cap);
	for (i = 0; i < n; i++) {
		ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
		buf[i] = (uint8_t)v;
	}
	return n;
}

static void
setup(void)
{
	ck_assert_r(ml_ossl_init(), 0);
}

static void
teardown(void)
{
	ml_ossl_fini();
}

/* ---- known answers -------------------------------------------------- */

START_TEST(sha256_abc)
{
	uint8_t want[ML_SHA256_LEN], md[ML_SHA256_LEN];
	struct ml_sha256 *h, *fork;

	unhex("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
	    want, sizeof(want));
	ck_assert_r(ml_sha256("abc", 3, md), 0);
	ck_assert_mem_eq(md, want, sizeof(want));

	/* Multi-part, forked half way, reset and reused. */
	ck_assert_ptr_nonnull(h = ml_sha256_new());
	ck_assert_r(ml_sha256_update(h, "a", 1), 0);
	ck_assert_ptr_nonnull(fork = ml_sha256_dup(h));
	ck_assert_r(ml_sha256_update(h, "bc", 2), 0);
	ck_assert_r(ml_sha256_final(h, md), 0);
	ck_assert_mem_eq(md, want, sizeof(want));
	ck_assert_r(ml_sha256_update(h, "x", 1), ML_ERR_STATE);
	ck_assert_r(ml_sha256_final(h, md), ML_ERR_STATE);
	ck_assert_r(ml_sha256_update(fork, "b", 1), 0);
	ck_assert_r(ml_sha256_update(fork, "c", 1), 0);
	memset(md, 0, sizeof(md));
	ck_assert_r(ml_sha256_final(fork, md), 0);
	ck_assert_mem_eq(md, want, sizeof(want));
	ck_assert_r(ml_sha256_reset(h), 0);
	ck_assert_r(ml_sha256_update(h, "abc", 3), 0);
	memset(md, 0, sizeof(md));
	ck_assert_r(ml_sha256_final(h, md), 0);
	ck_assert_mem_eq(md, want, sizeof(want));
	ml_sha256_free(fork);
	ml_sha256_free(h);
	ml_sha256_free(NULL);

	/* Empty input. */
	unhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	    want, sizeof(want));
	ck_assert_r(ml_sha256(NULL, 0, md), 0);
	ck_assert_mem_eq(md, want, sizeof(want));
}
END_TEST

/* RFC 4231 test cases 1 and 2. */
START_TEST(hmac_rfc4231)
{
	uint8_t key[20], want[ML_SHA256_LEN], mac[ML_SHA256_LEN];

	memset(key, 0x0b, sizeof(key));
	unhex("b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
	    want, sizeof(want));
	ck_assert_r(ml_hmac_sha256(key, 20, "Hi There", 8, mac), 0);
	ck_assert_mem_eq(mac, want, sizeof(want));

	unhex("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
	    want, sizeof(want));
	ck_assert_r(ml_hmac_sha256("Jefe", 4, "what do ya want for nothing?",
	    28, mac), 0);
	ck_assert_mem_eq(mac, want, sizeof(want));
}
END_TEST

/* RFC 5869 test cases 1 (salt and info) and 3 (both empty). */
START_TEST(hkdf_rfc5869)
{
	uint8_t ikm[22], salt[13], info[10], want[42], okm[42];
	size_t i;

	memset(ikm, 0x0b, sizeof(ikm));
	for (i = 0; i < sizeof(salt); i++) {
		salt[i] = (uint8_t)i;
	}
	for (i = 0; i < sizeof(info); i++) {
		info[i] = (uint8_t)(0xf0 + i);
	}
	unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf"
	    "34007208d5b887185865", want, sizeof(want));
	ck_assert_r(ml_hkdf_sha256(salt, sizeof(salt), ikm, sizeof(ikm), info,
	    sizeof(info), okm, sizeof(okm)), 0);
	ck_assert_mem_eq(okm, want, sizeof(want));

	unhex("8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d"
	    "9d201395faa4b61a96c8", want, sizeof(want));
	ck_assert_r(ml_hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0, okm,
	    sizeof(okm)), 0);
	ck_assert_mem_eq(okm, want, sizeof(want));

	/* Output length limits: 1 .. 255 * HashLen. */
	ck_assert_r(ml_hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0, okm, 0),
	    ML_ERR_ARG);
	{
		uint8_t *big = malloc(255 * 32 + 1);

		ck_assert_ptr_nonnull(big);
		ck_assert_r(ml_hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0,
		    big, 255 * 32), 0);
		ck_assert_r(ml_hkdf_sha256(NULL, 0, ikm, sizeof(ikm), NULL, 0,
		    big, 255 * 32 + 1), ML_ERR_ARG);
		free(big);
	}
}
END_TEST

/* McGrew & Viega, "The Galois/Counter Mode of Operation", test case 16. */
static const char gcm16_key[] =
    "feffe9928665731c6d6a8f9467308308feffe9928665731c6d6a8f9467308308";
static const char gcm16_iv[] = "cafebabefacedbaddecaf888";
static const char gcm16_aad[] = "feedfacedeadbeeffeedfacedeadbeefabaddad2";
static const char gcm16_pt[] =
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39";
static const char gcm16_ct[] =
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662";
static const char gcm16_tag[] = "76fc6ece0f4e1768cddf8853bb2d551b";

struct gcm_vec {
	uint8_t	key[32], iv[12], aad[20], pt[60], ct[60], tag[16];
	size_t	aad_len, pt_len;
};

static void
gcm16_load(struct gcm_vec *v)
{
	unhex(gcm16_key, v->key, sizeof(v->key));
	unhex(gcm16_iv, v->iv, sizeof(v->iv));
	v->aad_len = unhex(gcm16_aad, v->aad, sizeof(v->aad));
	v->pt_len = unhex(gcm16_pt, v->pt, sizeof(v->pt));
	ck_assert_uint_eq(unhex(gcm16_ct, v->ct, sizeof(v->ct)), v->pt_len);
	unhex(gcm16_tag, v->tag, sizeof(v->tag));
}

START_TEST(gcm_mcgrew_viega_16)
{
	struct gcm_vec v;
	uint8_t ct[60], pt[60], tag[16];

	gcm16_load(&v);
	ck_assert_r(ml_gcm_seal(v.key, v.iv, v.aad, v.aad_len, v.pt, v.pt_len,
	    ct, tag), 0);
	ck_assert_mem_eq(ct, v.ct, v.pt_len);
	ck_assert_mem_eq(tag, v.tag, sizeof(tag));
	ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len, v.ct, v.pt_len,
	    v.tag, pt), 0);
	ck_assert_mem_eq(pt, v.pt, v.pt_len);
}
END_TEST

/* McGrew & Viega test case 13: zero key and IV, nothing to encrypt. */
START_TEST(gcm_mcgrew_viega_13)
{
	uint8_t key[32] = { 0 }, iv[12] = { 0 }, tag[16], want[16];

	unhex("530f8afbc74536b9a963b4f1c4cb738b", want, sizeof(want));
	ck_assert_r(ml_gcm_seal(key, iv, NULL, 0, NULL, 0, NULL, tag), 0);
	ck_assert_mem_eq(tag, want, sizeof(want));
	ck_assert_r(ml_gcm_open(key, iv, NULL, 0, NULL, 0, tag, NULL), 0);
	tag[15] ^= 1;
	ck_assert_r(ml_gcm_open(key, iv, NULL, 0, NULL, 0, tag, NULL),
	    ML_ERR_AUTH);
}
END_TEST

/* Every byte of ct, tag and aad, one bit each: ML_ERR_AUTH, pt wiped. */
START_TEST(gcm_tamper)
{
	struct gcm_vec v;
	static const uint8_t zero[60];
	uint8_t pt[60];
	size_t i;

	gcm16_load(&v);
	for (i = 0; i < v.pt_len; i++) {
		v.ct[i] ^= 0x01;
		memset(pt, 0xaa, sizeof(pt));
		ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len, v.ct,
		    v.pt_len, v.tag, pt), ML_ERR_AUTH);
		ck_assert_mem_eq(pt, zero, v.pt_len);
		v.ct[i] ^= 0x01;
	}
	for (i = 0; i < sizeof(v.tag); i++) {
		v.tag[i] ^= 0x80;
		memset(pt, 0xaa, sizeof(pt));
		ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len, v.ct,
		    v.pt_len, v.tag, pt), ML_ERR_AUTH);
		ck_assert_mem_eq(pt, zero, v.pt_len);
		v.tag[i] ^= 0x80;
	}
	for (i = 0; i < v.aad_len; i++) {
		v.aad[i] ^= 0x10;
		ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len, v.ct,
		    v.pt_len, v.tag, pt), ML_ERR_AUTH);
		v.aad[i] ^= 0x10;
	}
	/* Dropped or truncated AAD, wrong IV, truncated ct. */
	ck_assert_r(ml_gcm_open(v.key, v.iv, NULL, 0, v.ct, v.pt_len, v.tag,
	    pt), ML_ERR_AUTH);
	ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len - 1, v.ct,
	    v.pt_len, v.tag, pt), ML_ERR_AUTH);
	v.iv[0] ^= 1;
	ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len, v.ct, v.pt_len,
	    v.tag, pt), ML_ERR_AUTH);
	v.iv[0] ^= 1;
	ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len, v.ct,
	    v.pt_len - 1, v.tag, pt), ML_ERR_AUTH);
	/* And the untampered one still opens: the loop restored everything. */
	ck_assert_r(ml_gcm_open(v.key, v.iv, v.aad, v.aad_len, v.ct, v.pt_len,
	    v.tag, pt), 0);
	ck_assert_mem_eq(pt, v.pt, v.pt_len);
	/* Failures must not leak into the host application's error queue. */
	ck_assert_uint_eq(ERR_peek_error(), 0);
}
END_TEST

START_TEST(gcm_round_trip_in_place)
{
	uint8_t key[32], iv[12], buf[1000], orig[1000], tag[16];

	ck_assert_r(ml_rand(key, sizeof(key)), 0);
	ck_assert_r(ml_rand(iv, sizeof(iv)), 0);
	ck_assert_r(ml_rand(orig, sizeof(orig)), 0);
	memcpy(buf, orig, sizeof(buf));
	ck_assert_r(ml_gcm_seal(key, iv, "hdr", 3, buf, sizeof(buf), buf, tag),
	    0);
	ck_assert_mem_ne(buf, orig, sizeof(buf));
	ck_assert_r(ml_gcm_open(key, iv, "hdr", 3, buf, sizeof(buf), tag, buf),
	    0);
	ck_assert_mem_eq(buf, orig, sizeof(buf));
}
END_TEST

/* ---- P-256 ---------------------------------------------------------- */

/* RFC 6979 A.2.5: P-256 key, SHA-256 over "sample". */
static const char rfc6979_priv[] =
    "c9afa9d845ba75166b5c215767b1d6934e50c3db36e89b127b8a622b120f6721";
static const char rfc6979_pub[] = "04"
    "60fed4ba255a9d31c961eb74c6356d68c049b8923b61fa6ce669622e60f29fb6"
    "7903fe1008b8bc99a41ae9e95628bc64f2f1b20c2d7e9f5177a3c294d4462299";
static const char rfc6979_sig[] =
    "efd48b2aacb6a8fd1140dd9cd45e81d69d2c877b56aaf991c34d0ea84eaf3716"
    "f7cb1c942d657c41d436c7a1b6e29f65f3e900dbb9aff4064dc4ab2f843acda8";

START_TEST(p256_rfc6979_known_answer)
{
	uint8_t priv[32], want_pub[65], pub[65], sig[64];
	struct ml_p256_key *k = NULL, *kp = NULL;

	unhex(rfc6979_priv, priv, sizeof(priv));
	unhex(rfc6979_pub, want_pub, sizeof(want_pub));
	unhex(rfc6979_sig, sig, sizeof(sig));

	ck_assert_r(ml_p256_pub_from_priv(priv, pub), 0);
	ck_assert_mem_eq(pub, want_pub, sizeof(pub));
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	memset(pub, 0, sizeof(pub));
	ck_assert_r(ml_p256_key_pub(k, pub), 0);
	ck_assert_mem_eq(pub, want_pub, sizeof(pub));
	ck_assert_ptr_nonnull(ml_p256_key_evp(k));

	ck_assert_r(ml_p256_key_from_pub(want_pub, sizeof(want_pub), &kp), 0);
	ck_assert_r(ml_p256_verify(kp, "sample", 6, sig, sizeof(sig)), 0);
	ck_assert_r(ml_p256_verify(k, "sample", 6, sig, sizeof(sig)), 0);
	ck_assert_r(ml_p256_verify(kp, "samplf", 6, sig, sizeof(sig)),
	    ML_ERR_AUTH);
	/* A public-only key cannot sign or derive. */
	ck_assert_r(ml_p256_sign(kp, "sample", 6, sig), ML_ERR_ARG);
	ck_assert_r(ml_p256_ecdh(kp, want_pub, sizeof(want_pub), priv),
	    ML_ERR_ARG);
	ml_p256_key_free(kp);
	ml_p256_key_free(k);
	ml_p256_key_free(NULL);
}
END_TEST

START_TEST(ecdsa_round_trip_and_tamper)
{
	uint8_t priv[32], pub[65], sig[64], bad[65];
	uint8_t msg[] = "banknote serial 0001 feature record";
	struct ml_p256_key *k = NULL, *kp = NULL;
	size_t i;

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_check_pub(pub, sizeof(pub)), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	ck_assert_r(ml_p256_key_from_pub(pub, sizeof(pub), &kp), 0);
	ck_assert_r(ml_p256_sign(k, msg, sizeof(msg), sig), 0);
	ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), sig, sizeof(sig)), 0);

	for (i = 0; i < sizeof(sig); i++) {
		sig[i] ^= 0x04;
		ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), sig,
		    sizeof(sig)), ML_ERR_AUTH);
		sig[i] ^= 0x04;
	}
	for (i = 0; i < sizeof(msg); i++) {
		msg[i] ^= 0x01;
		ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), sig,
		    sizeof(sig)), ML_ERR_AUTH);
		msg[i] ^= 0x01;
	}
	/* Wrong length is a bad signature, not a bad argument. */
	ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), sig, 63), ML_ERR_AUTH);
	memcpy(bad, sig, sizeof(sig));
	bad[64] = 0;
	ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), bad, 65), ML_ERR_AUTH);
	ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), NULL, 0), ML_ERR_AUTH);
	/* r = 0 or s = 0 never verifies. */
	memset(bad, 0, sizeof(bad));
	ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), bad, 64), ML_ERR_AUTH);
	/* Someone else's key. */
	{
		uint8_t priv2[32], pub2[65];
		struct ml_p256_key *k2 = NULL;

		ck_assert_r(ml_p256_keygen(priv2, pub2), 0);
		ck_assert_r(ml_p256_key_from_pub(pub2, sizeof(pub2), &k2), 0);
		ck_assert_r(ml_p256_verify(k2, msg, sizeof(msg), sig,
		    sizeof(sig)), ML_ERR_AUTH);
		ml_p256_key_free(k2);
	}
	/* The untampered one still verifies. */
	ck_assert_r(ml_p256_verify(kp, msg, sizeof(msg), sig, sizeof(sig)), 0);
	ck_assert_uint_eq(ERR_peek_error(), 0);
	ml_p256_key_free(kp);
	ml_p256_key_free(k);
}
END_TEST

/* CKM_ECDSA: caller's digest of any length (OpenSSL truncates/pads). */
START_TEST(ecdsa_digest_lengths)
{
	uint8_t priv[32], pub[65], sig[64], d[64];
	struct ml_p256_key *k = NULL;
	static const size_t lens[] = { 1, 20, 32, 48, 64 };
	size_t i;

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	ck_assert_r(ml_rand(d, sizeof(d)), 0);
	for (i = 0; i < ML_NELEM(lens); i++) {
		ck_assert_r(ml_p256_sign_digest(k, d, lens[i], sig), 0);
		ck_assert_r(ml_p256_verify_digest(k, d, lens[i], sig,
		    sizeof(sig)), 0);
	}
	ck_assert_r(ml_p256_sign_digest(k, d, 0, sig), ML_ERR_ARG);
	ml_p256_key_free(k);
}
END_TEST

START_TEST(ecdsa_raw_der)
{
	uint8_t priv[32], pub[65], sig[64], back[64], der[80], raw[64];
	size_t der_len = 0, n = 0;
	struct ml_p256_key *k = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t md[32];

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	ck_assert_r(ml_p256_sign(k, "x", 1, sig), 0);
	ck_assert_r(ml_ecdsa_raw_to_der(sig, der, sizeof(der), &der_len), 0);
	ck_assert_uint_ge(der_len, 8);
	ck_assert_uint_le(der_len, 72);
	ck_assert_r(ml_ecdsa_der_to_raw(der, der_len, back), 0);
	ck_assert_mem_eq(back, sig, sizeof(sig));

	/* The DER form verifies with plain EVP in our context (interop). */
	ck_assert_r(ml_sha256("x", 1, md), 0);
	pctx = EVP_PKEY_CTX_new_from_pkey(ml_ossl_ctx(), ml_p256_key_evp(k),
	    NULL);
	ck_assert_ptr_nonnull(pctx);
	ck_assert_int_eq(EVP_PKEY_verify_init(pctx), 1);
	ck_assert_int_eq(EVP_PKEY_verify(pctx, der, der_len, md, sizeof(md)), 1);
	EVP_PKEY_CTX_free(pctx);

	/* Minimal encodings: a high bit gets a 00 pad, leading zeros go. */
	memset(raw, 0, sizeof(raw));
	raw[31] = 0x01;
	memset(raw + 32, 0xff, 32);
	ck_assert_r(ml_ecdsa_raw_to_der(raw, der, sizeof(der), &der_len), 0);
	{
		static const uint8_t head[] = { 0x30, 0x26, 0x02, 0x01, 0x01,
		    0x02, 0x21, 0x00, 0xff };

		ck_assert_uint_eq(der_len, 40);
		ck_assert_mem_eq(der, head, sizeof(head));
	}
	ck_assert_r(ml_ecdsa_der_to_raw(der, der_len, back), 0);
	ck_assert_mem_eq(back, raw, sizeof(raw));

	/* Too small a buffer, trailing bytes, truncation, garbage. */
	n = der_len;
	ck_assert_r(ml_ecdsa_raw_to_der(raw, der, n - 1, &der_len),
	    ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(der_len, n);
	der[n] = 0x00;
	ck_assert_r(ml_ecdsa_der_to_raw(der, n + 1, back), ML_ERR_TRAILING);
	ck_assert_r(ml_ecdsa_der_to_raw(der, n - 1, back), ML_ERR_FORMAT);
	ck_assert_r(ml_ecdsa_der_to_raw((const uint8_t *)"\x30\x00", 2, back),
	    ML_ERR_FORMAT);
	/* An integer wider than 32 bytes does not fit P-256. */
	{
		uint8_t wide[] = { 0x30, 0x26, 0x02, 0x21, 0x01,
		    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
		    0x02, 0x01, 0x01 };

		ck_assert_r(ml_ecdsa_der_to_raw(wide, sizeof(wide), back),
		    ML_ERR_FORMAT);
	}
	ml_p256_key_free(k);
}
END_TEST

START_TEST(ecdh_agreement)
{
	uint8_t pa[32], qa[65], pb[32], qb[65], sab[32], sba[32];
	static const uint8_t zero[32];
	struct ml_p256_key *a = NULL, *b = NULL;

	ck_assert_r(ml_p256_keygen(pa, qa), 0);
	ck_assert_r(ml_p256_keygen(pb, qb), 0);
	ck_assert_mem_ne(pa, pb, sizeof(pa));
	{
		uint8_t q[65];

		/* keygen's public point is the one its scalar gives. */
		ck_assert_r(ml_p256_pub_from_priv(pa, q), 0);
		ck_assert_mem_eq(q, qa, sizeof(q));
	}
	ck_assert_r(ml_p256_key_from_priv(pa, &a), 0);
	ck_assert_r(ml_p256_key_from_priv(pb, &b), 0);
	ck_assert_r(ml_p256_ecdh(a, qb, sizeof(qb), sab), 0);
	ck_assert_r(ml_p256_ecdh(b, qa, sizeof(qa), sba), 0);
	ck_assert_mem_eq(sab, sba, sizeof(sab));
	ck_assert_mem_ne(sab, zero, sizeof(sab));
	ml_p256_key_free(a);
	ml_p256_key_free(b);
}
END_TEST

START_TEST(invalid_points_rejected)
{
	uint8_t priv[32], pub[65], bad[65], secret[32], keep[32];
	uint8_t n_order[32];
	struct ml_p256_key *k = NULL, *kbad = NULL;

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);

	/* Off the curve: y + 1. */
	memcpy(bad, pub, sizeof(bad));
	bad[64] ^= 0x01;
	ck_assert_r(ml_p256_check_pub(bad, sizeof(bad)), ML_ERR_CRYPTO);
	ck_assert_r(ml_p256_key_from_pub(bad, sizeof(bad), &kbad),
	    ML_ERR_CRYPTO);
	ck_assert_ptr_null(kbad);
	memset(secret, 0x5a, sizeof(secret));
	memcpy(keep, secret, sizeof(keep));
	ck_assert_r(ml_p256_ecdh(k, bad, sizeof(bad), secret), ML_ERR_CRYPTO);
	ck_assert_mem_eq(secret, keep, sizeof(secret));	/* untouched */

	/* Compressed form, wrong lengths, infinity, all zeros. */
	memcpy(bad, pub, sizeof(bad));
	bad[0] = 0x02;
	ck_assert_r(ml_p256_check_pub(bad, sizeof(bad)), ML_ERR_CRYPTO);
	ck_assert_r(ml_p256_check_pub(pub, 33), ML_ERR_CRYPTO);
	ck_assert_r(ml_p256_check_pub(pub, 64), ML_ERR_CRYPTO);
	ck_assert_r(ml_p256_check_pub((const uint8_t *)"\x00", 1),
	    ML_ERR_CRYPTO);
	ck_assert_r(ml_p256_check_pub(NULL, 65), ML_ERR_CRYPTO);
	memset(bad, 0, sizeof(bad));
	bad[0] = 0x04;
	ck_assert_r(ml_p256_check_pub(bad, sizeof(bad)), ML_ERR_CRYPTO);
	ck_assert_r(ml_p256_ecdh(k, bad, sizeof(bad), secret), ML_ERR_CRYPTO);
	/* x = p (coordinate out of range). */
	unhex("04ffffffff00000001000000000000000000000000ffffffffffffffffffffffff"
	    "0000000000000000000000000000000000000000000000000000000000000000",
	    bad, sizeof(bad));
	ck_assert_r(ml_p256_check_pub(bad, sizeof(bad)), ML_ERR_CRYPTO);

	/* Scalars out of [1, n-1]. */
	memset(priv, 0, sizeof(priv));
	ck_assert_r(ml_p256_pub_from_priv(priv, pub), ML_ERR_CRYPTO);
	unhex("ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
	    n_order, sizeof(n_order));
	ck_assert_r(ml_p256_key_from_priv(n_order, &kbad), ML_ERR_CRYPTO);
	ck_assert_ptr_null(kbad);
	n_order[31] -= 1;	/* n - 1 is fine */
	ck_assert_r(ml_p256_key_from_priv(n_order, &kbad), 0);
	ml_p256_key_free(kbad);
	ck_assert_uint_eq(ERR_peek_error(), 0);
	ml_p256_key_free(k);
}
END_TEST

/* ---- seal ------------------------------------------------------------ */

static int
test_ecdh_cb(void *ctx, const uint8_t eph_pub[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	return ml_p256_ecdh(ctx, eph_pub, ML_P256_PUB_LEN, ret_secret);
}

START_TEST(seal_round_trip_and_tamper)
{
	static const char msg[] = "feature record: serial 0001, 20 EUR";
	static const char aad[] = "note-0001";
	uint8_t priv[32], pub[65], box[sizeof(msg) + ML_SEAL_OVERHEAD];
	uint8_t box2[sizeof(box)], pt[sizeof(msg)];
	static const uint8_t zero[sizeof(msg)];
	size_t box_len = 0, pt_len = 0, i;
	struct ml_p256_key *k = NULL;

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	ck_assert_r(ml_seal(pub, aad, sizeof(aad), msg, sizeof(msg), box,
	    sizeof(box), &box_len), 0);
	ck_assert_uint_eq(box_len, sizeof(box));
	ck_assert_r(ml_p256_check_pub(box, ML_P256_PUB_LEN), 0);
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, aad, sizeof(aad), box,
	    box_len, pt, sizeof(pt), &pt_len), 0);
	ck_assert_uint_eq(pt_len, sizeof(msg));
	ck_assert_mem_eq(pt, msg, sizeof(msg));

	/* Two seals of the same message differ (fresh ephemeral key, IV). */
	ck_assert_r(ml_seal(pub, aad, sizeof(aad), msg, sizeof(msg), box2,
	    sizeof(box2), &box_len), 0);
	ck_assert_mem_ne(box, box2, ML_P256_PUB_LEN);
	ck_assert_mem_ne(box + ML_P256_PUB_LEN, box2 + ML_P256_PUB_LEN,
	    ML_GCM_IV_LEN);

	/* Every byte of every region: eph_pub, iv, ct, tag. */
	for (i = 0; i < sizeof(box); i++) {
		box[i] ^= 0x01;
		memset(pt, 0xaa, sizeof(pt));
		pt_len = 12345;
		ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, aad, sizeof(aad),
		    box, sizeof(box), pt, sizeof(pt), &pt_len), ML_ERR_AUTH);
		ck_assert_uint_eq(pt_len, 12345);
		box[i] ^= 0x01;
	}
	/* Tampered pt is wiped (a failure past the tag check). */
	box[sizeof(box) - 1] ^= 0x01;
	memset(pt, 0xaa, sizeof(pt));
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, aad, sizeof(aad), box,
	    sizeof(box), pt, sizeof(pt), &pt_len), ML_ERR_AUTH);
	ck_assert_mem_eq(pt, zero, sizeof(pt));
	box[sizeof(box) - 1] ^= 0x01;

	/* Wrong aad, wrong recipient_pub in the KDF, truncated input. */
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, "note-0002", 10, box,
	    sizeof(box), pt, sizeof(pt), &pt_len), ML_ERR_AUTH);
	{
		uint8_t p2[32], q2[65];

		ck_assert_r(ml_p256_keygen(p2, q2), 0);
		ck_assert_r(ml_seal_open(q2, test_ecdh_cb, k, aad, sizeof(aad),
		    box, sizeof(box), pt, sizeof(pt), &pt_len), ML_ERR_AUTH);
	}
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, aad, sizeof(aad), box,
	    sizeof(box) - 1, pt, sizeof(pt), &pt_len), ML_ERR_AUTH);
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, aad, sizeof(aad), box,
	    ML_SEAL_OVERHEAD - 1, pt, sizeof(pt), &pt_len), ML_ERR_SHORT);
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, aad, sizeof(aad), box,
	    sizeof(box), pt, sizeof(pt) - 1, &pt_len), ML_ERR_TOO_LARGE);
	/* Output too small, bad recipient. */
	ck_assert_r(ml_seal(pub, aad, sizeof(aad), msg, sizeof(msg), box2,
	    sizeof(box2) - 1, &box_len), ML_ERR_TOO_LARGE);
	memcpy(box2, pub, sizeof(pub));
	box2[64] ^= 1;
	ck_assert_r(ml_seal(box2, aad, sizeof(aad), msg, sizeof(msg), box,
	    sizeof(box), &box_len), ML_ERR_CRYPTO);

	/* Unchanged input still opens. */
	ck_assert_r(ml_seal(pub, NULL, 0, msg, sizeof(msg), box, sizeof(box),
	    &box_len), 0);
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, NULL, 0, box, box_len,
	    pt, sizeof(pt), &pt_len), 0);
	ck_assert_mem_eq(pt, msg, sizeof(msg));
	ck_assert_uint_eq(ERR_peek_error(), 0);
	ml_p256_key_free(k);
}
END_TEST

START_TEST(seal_empty_plaintext)
{
	uint8_t priv[32], pub[65], box[ML_SEAL_OVERHEAD];
	size_t box_len = 0, pt_len = 1;
	struct ml_p256_key *k = NULL;

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	ck_assert_r(ml_seal(pub, NULL, 0, NULL, 0, box, sizeof(box), &box_len),
	    0);
	ck_assert_uint_eq(box_len, ML_SEAL_OVERHEAD);
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, NULL, 0, box, box_len,
	    NULL, 0, &pt_len), 0);
	ck_assert_uint_eq(pt_len, 0);
	box[box_len - 1] ^= 1;
	ck_assert_r(ml_seal_open(pub, test_ecdh_cb, k, NULL, 0, box, box_len,
	    NULL, 0, &pt_len), ML_ERR_AUTH);
	ml_p256_key_free(k);
}
END_TEST

/* ---- lifecycle and threads ------------------------------------------- */

START_TEST(private_context)
{
	OSSL_LIB_CTX *ctx = ml_ossl_ctx();
	uint8_t a[32], b[32];

	ck_assert_ptr_nonnull(ctx);
	ck_assert_ptr_ne(ctx, OSSL_LIB_CTX_get0_global_default());
	ck_assert_r(ml_rand(a, sizeof(a)), 0);
	ck_assert_r(ml_rand(b, sizeof(b)), 0);
	ck_assert_mem_ne(a, b, sizeof(a));
	ck_assert_r(ml_rand(NULL, 0), 0);
}
END_TEST

START_TEST(fini_then_init)
{
	uint8_t priv[32], pub[65], sig[64], md[32];
	struct ml_p256_key *k = NULL;
	int round;

	for (round = 0; round < 3; round++) {
		ck_assert_r(ml_ossl_init(), 0);
		ck_assert_r(ml_ossl_init(), 0);		/* idempotent */
		ck_assert_ptr_nonnull(ml_ossl_ctx());
		ck_assert_r(ml_p256_keygen(priv, pub), 0);
		ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
		ck_assert_r(ml_p256_sign(k, "m", 1, sig), 0);
		ck_assert_r(ml_p256_verify(k, "m", 1, sig, sizeof(sig)), 0);
		ml_p256_key_free(k);
		k = NULL;
		ml_ossl_fini();
		ml_ossl_fini();				/* harmless twice */
	}
	/* Implicit init after fini. */
	ck_assert_r(ml_sha256("abc", 3, md), 0);
	ck_assert_uint_eq(md[0], 0xba);
	ck_assert_ptr_nonnull(ml_ossl_ctx());
}
END_TEST

#define THREAD_ROUNDS	200

struct sign_job {
	const struct ml_p256_key	*k;
	int				 id;
	int				 failures;
};

static void *
sign_thread(void *arg)
{
	struct sign_job *j = arg;
	uint8_t msg[8], sig[64];
	int i;

	for (i = 0; i < THREAD_ROUNDS; i++) {
		memset(msg, 0, sizeof(msg));
		msg[0] = (uint8_t)j->id;
		msg[1] = (uint8_t)i;
		if (ml_p256_sign(j->k, msg, sizeof(msg), sig) != 0 ||
		    ml_p256_verify(j->k, msg, sizeof(msg), sig,
		    sizeof(sig)) != 0) {
			j->failures++;
			continue;
		}
		msg[2] ^= 1;
		if (ml_p256_verify(j->k, msg, sizeof(msg), sig,
		    sizeof(sig)) != ML_ERR_AUTH) {
			j->failures++;
		}
	}
	return NULL;
}

/* One key, two threads signing and verifying with it at once. */
START_TEST(concurrent_sign)
{
	uint8_t priv[32], pub[65];
	struct ml_p256_key *k = NULL;
	struct sign_job jobs[2];
	pthread_t th[2];
	int i;

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	for (i = 0; i < 2; i++) {
		jobs[i] = (struct sign_job){ .k = k, .id = i };
		ck_assert_int_eq(pthread_create(&th[i], NULL, sign_thread,
		    &jobs[i]), 0);
	}
	for (i = 0; i < 2; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	}
	ck_assert_int_eq(jobs[0].failures, 0);
	ck_assert_int_eq(jobs[1].failures, 0);
	ml_p256_key_free(k);
}
END_TEST

static void *
init_thread(void *arg)
{
	int *r = arg;

	*r = ml_ossl_init();
	return NULL;
}

/* Racing first use: everyone sees success, one context results. */
START_TEST(concurrent_init)
{
	pthread_t th[4];
	int res[4], i;

	ml_ossl_fini();
	for (i = 0; i < 4; i++) {
		res[i] = -100;
		ck_assert_int_eq(pthread_create(&th[i], NULL, init_thread,
		    &res[i]), 0);
	}
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
		ck_assert_r(res[i], 0);
	}
	ck_assert_ptr_nonnull(ml_ossl_ctx());
}
END_TEST

static Suite *
ml_ossl_suite(void)
{
	Suite *s = suite_create("ml_ossl");
	TCase *kat = tcase_create("known-answer");
	TCase *p256 = tcase_create("p256");
	TCase *aead = tcase_create("aead");
	TCase *life = tcase_create("lifecycle");

	tcase_add_checked_fixture(kat, setup, teardown);
	tcase_add_test(kat, sha256_abc);
	tcase_add_test(kat, hmac_rfc4231);
	tcase_add_test(kat, hkdf_rfc5869);
	tcase_add_test(kat, gcm_mcgrew_viega_16);
	tcase_add_test(kat, gcm_mcgrew_viega_13);
	tcase_add_test(kat, p256_rfc6979_known_answer);
	suite_add_tcase(s, kat);

	tcase_add_checked_fixture(p256, setup, teardown);
	tcase_add_test(p256, ecdsa_round_trip_and_tamper);
	tcase_add_test(p256, ecdsa_digest_lengths);
	tcase_add_test(p256, ecdsa_raw_der);
	tcase_add_test(p256, ecdh_agreement);
	tcase_add_test(p256, invalid_points_rejected);
	suite_add_tcase(s, p256);

	tcase_add_checked_fixture(aead, setup, teardown);
	tcase_add_test(aead, gcm_tamper);
	tcase_add_test(aead, gcm_round_trip_in_place);
	tcase_add_test(aead, seal_round_trip_and_tamper);
	tcase_add_test(aead, seal_empty_plaintext);
	suite_add_tcase(s, aead);

	tcase_add_checked_fixture(life, setup, teardown);
	tcase_add_test(life, private_context);
	tcase_add_test(life, fini_then_init);
	tcase_add_test(life, concurrent_sign);
	tcase_add_test(life, concurrent_init);
	suite_add_tcase(s, life);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ml_ossl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
