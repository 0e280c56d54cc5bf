/*
 * Unit tests for keys/: the key interface (key.c) over software keys and
 * over a test class, providers and public keys from PEM files, and the
 * libp11 implementation's refusals that come before any module is loaded
 * (key_p11.c).  The libp11 paths against a real token run in the
 * integration tests (server-privsep: reconnect; hs-server, issuance).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "key.h"
#include "key_p11.h"
#include "key_soft.h"
#include "ml_err.h"
#include "ml_ossl.h"
#include "mltest.h"

static struct ml_p256_key *
soft_key(uint8_t pub[ML_P256_PUB_LEN])
{
	uint8_t priv[ML_P256_PRIV_LEN];
	struct ml_p256_key *k = NULL;

	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	return k;
}

START_TEST(soft_sign_verifies)
{
	uint8_t pub[ML_P256_PUB_LEN], got[ML_P256_PUB_LEN];
	uint8_t md[ML_SHA256_LEN] = { 1, 2, 3 }, sig[ML_P256_SIG_LEN];
	struct ml_p256_key *sk = soft_key(pub), *vk = NULL;
	struct key k;

	key_soft_init(&k, sk);
	ck_assert_str_eq(key_class_name(&k), "soft");
	ck_assert_r(key_pub(&k, got), 0);
	ck_assert_mem_eq(got, pub, sizeof(pub));
	ck_assert_r(key_sign(&k, md, sig), 0);
	ck_assert_r(ml_p256_key_from_pub(pub, sizeof(pub), &vk), 0);
	ck_assert_r(ml_p256_verify_digest(vk, md, sizeof(md), sig, sizeof(sig)),
	    0);
	md[0] ^= 1;
	ck_assert_int_ne(ml_p256_verify_digest(vk, md, sizeof(md), sig,
	    sizeof(sig)), 0);
	key_free(&k);		/* borrowed: frees nothing */
	ml_p256_key_free(vk);
	ml_p256_key_free(sk);
}
END_TEST

START_TEST(soft_ecdh_agrees)
{
	uint8_t pa[ML_P256_PUB_LEN], pb[ML_P256_PUB_LEN];
	uint8_t s1[ML_P256_SECRET_LEN], s2[ML_P256_SECRET_LEN];
	struct ml_p256_key *a = soft_key(pa), *b = soft_key(pb);
	struct key ka, kb;

	key_soft_init(&ka, a);
	key_soft_init(&kb, b);
	ck_assert_r(key_ecdh(&ka, pb, s1), 0);
	ck_assert_r(key_ecdh_fn(&kb, pa, s2), 0);	/* the ml_ecdh_fn form */
	ck_assert_mem_eq(s1, s2, sizeof(s1));
	ml_p256_key_free(a);
	ml_p256_key_free(b);
}
END_TEST

/* ---- a class that only counts ---------------------------------------- */

static int nfree, nrandom;

static int
cnt_random(void *ctx, uint8_t *buf, size_t n)
{
	(void)ctx;
	memset(buf, 0xA5, n);
	nrandom++;
	return 0;
}

static void
cnt_free(void *ctx)
{
	(void)ctx;
	nfree++;
}

static const struct key_class cnt_class = {
	.name = "count",
	.random = cnt_random,
	.free = cnt_free,
};

static const struct key_class empty_class = { .name = "empty" };

START_TEST(missing_operations)
{
	uint8_t md[ML_SHA256_LEN] = { 0 }, sig[ML_P256_SIG_LEN];
	uint8_t pub[ML_P256_PUB_LEN] = { 0 }, sec[ML_P256_SECRET_LEN];
	uint8_t buf[16];
	struct key k;

	key_init(&k, &empty_class, NULL, NULL);
	ck_assert_r(key_sign(&k, md, sig), ML_ERR_UNSUPPORTED);
	ck_assert_r(key_ecdh(&k, pub, sec), ML_ERR_UNSUPPORTED);
	ck_assert_r(key_pub(&k, pub), ML_ERR_UNSUPPORTED);
	ck_assert_r(key_random(&k, buf, sizeof(buf)), 0);	/* ml_rand() */
	ck_assert_r(key_sign(NULL, md, sig), ML_ERR_UNSUPPORTED);
	ck_assert_str_eq(key_class_name(NULL), "none");
}
END_TEST

START_TEST(heap_key_frees_once)
{
	uint8_t pub[ML_P256_PUB_LEN], got[ML_P256_PUB_LEN], buf[8];
	struct key *k = NULL;

	memset(pub, 0x04, sizeof(pub));
	nfree = nrandom = 0;
	ck_assert_r(key_new(&cnt_class, NULL, pub, &k), 0);
	ck_assert_r(key_pub(k, got), 0);
	ck_assert_mem_eq(got, pub, sizeof(pub));
	ck_assert_r(key_random(k, buf, sizeof(buf)), 0);
	ck_assert_int_eq(nrandom, 1);
	ck_assert_uint_eq(buf[7], 0xA5);
	key_free(k);
	ck_assert_int_eq(nfree, 1);
	key_free(NULL);
}
END_TEST

/* ---- providers -------------------------------------------------------- */

static char last_uri[256];

static int
fake_open(void *ctx, const char *uri, struct key **ret)
{
	snprintf(last_uri, sizeof(last_uri), "%s", uri);
	return key_new(&cnt_class, ctx, NULL, ret);
}

static int
fake_pub(void *ctx, const char *uri, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	(void)ctx;
	snprintf(last_uri, sizeof(last_uri), "%s", uri);
	memset(ret_pub, 0x42, ML_P256_PUB_LEN);
	return 0;
}

static const struct key_provider fake_prov = {
	.name = "fake", .open = fake_open, .pub = fake_pub,
};

START_TEST(provider_dispatch)
{
	uint8_t pub[ML_P256_PUB_LEN];
	struct key *k = NULL;

	ck_assert_r(key_open(&fake_prov, "pkcs11:object=a", &k), 0);
	ck_assert_str_eq(last_uri, "pkcs11:object=a");
	ck_assert_str_eq(key_class_name(k), "count");
	key_free(k);
	ck_assert_r(key_open(NULL, "pkcs11:object=a", &k), ML_ERR_ARG);
	ck_assert_r(key_pub_load(&fake_prov, "pkcs11:object=b", pub), 0);
	ck_assert_str_eq(last_uri, "pkcs11:object=b");
	ck_assert_uint_eq(pub[0], 0x42);
	/* no provider: a pkcs11: URI cannot be read, and the error says so */
	ck_assert_r(key_pub_load(NULL, "pkcs11:object=c", pub),
	    ML_ERR_UNSUPPORTED);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_UNSUPPORTED),
	    "pkcs11:object=c"));
}
END_TEST

static void
write_pem(const char *path, const uint8_t priv[ML_P256_PRIV_LEN], bool pubonly)
{
	struct ml_p256_key *k = NULL;
	FILE *f;

	ck_assert_r(ml_p256_key_from_priv(priv, &k), 0);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	if (pubonly) {
		ck_assert_int_eq(PEM_write_PUBKEY(f, ml_p256_key_evp(k)), 1);
	} else {
		ck_assert_int_eq(PEM_write_PrivateKey(f, ml_p256_key_evp(k),
		    NULL, NULL, 0, NULL, NULL), 1);
	}
	fclose(f);
	ml_p256_key_free(k);
}

START_TEST(pem_public_keys)
{
	char dir[] = "/tmp/test-keys.XXXXXX", path[128];
	uint8_t priv[ML_P256_PRIV_LEN], pub[ML_P256_PUB_LEN];
	uint8_t got[ML_P256_PUB_LEN];
	FILE *f;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_r(ml_p256_keygen(priv, pub), 0);
	snprintf(path, sizeof(path), "%s/pub.pem", dir);
	write_pem(path, priv, true);
	ck_assert_r(key_pub_load(NULL, path, got), 0);
	ck_assert_mem_eq(got, pub, sizeof(pub));
	unlink(path);
	snprintf(path, sizeof(path), "%s/priv.pem", dir);
	write_pem(path, priv, false);
	memset(got, 0, sizeof(got));
	ck_assert_r(key_pub_load(&fake_prov, path, got), 0);	/* not a URI */
	ck_assert_mem_eq(got, pub, sizeof(pub));
	unlink(path);
	snprintf(path, sizeof(path), "%s/junk.pem", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", f);
	fclose(f);
	ck_assert_r(key_pub_load(NULL, path, got), ML_ERR_FORMAT);
	unlink(path);
	/* a missing file: IO, and the message names the path and errno */
	ck_assert_r(key_pub_load(NULL, path, got), ML_ERR_IO);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_IO), path));
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_IO),
	    "No such file or directory"));
	rmdir(dir);
}
END_TEST

/* ---- key_p11: refused before any module is loaded --------------------- */

START_TEST(p11_refusals)
{
	uint8_t pub[ML_P256_PUB_LEN];
	struct key *k = NULL;
	struct key_provider prov;

	ck_assert_r(key_p11_open(NULL, "pkcs11:token=a?pin-value=1234", &k),
	    ML_ERR_ARG);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_ARG), "pin-value"));
	ck_assert_ptr_null(k);
	ck_assert_r(key_p11_open(NULL, "file:/etc/passwd", &k), ML_ERR_ARG);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_ARG), "file:/etc/passwd"));
	ck_assert_r(key_p11_pub(NULL, "pkcs11:token=a?pin-value=1", pub),
	    ML_ERR_ARG);
	/* a module that is not there: named in the error */
	key_p11_provider(&prov, "/nonexistent/module.so");
	ck_assert_r(key_open(&prov, "pkcs11:token=a;object=b", &k), ML_ERR_IO);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_IO),
	    "/nonexistent/module.so"));
	/* module-path in the URI, when no module is given */
	ck_assert_r(key_p11_pub(NULL,
	    "pkcs11:token=a;object=b?module-path=/nonexistent/m2.so", pub),
	    ML_ERR_IO);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_IO), "/nonexistent/m2.so"));
	/* a key of another class is no libp11 key */
	ck_assert_r(key_p11_reconnect(NULL), ML_ERR_ARG);
	ck_assert_uint_eq(key_p11_reconnects(NULL), 0);
}
END_TEST

static Suite *
keys_suite(void)
{
	Suite *s = suite_create("keys");
	TCase *tc = tcase_create("key");

	tcase_add_test(tc, soft_sign_verifies);
	tcase_add_test(tc, soft_ecdh_agrees);
	tcase_add_test(tc, missing_operations);
	tcase_add_test(tc, heap_key_frees_once);
	tcase_add_test(tc, provider_dispatch);
	tcase_add_test(tc, pem_public_keys);
	tcase_add_test(tc, p11_refusals);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(keys_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
