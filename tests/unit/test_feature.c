/*
 * BN-2 feature derivation: vectors, round trips, exact errors, tampering.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feature.h"
#include "ml_ossl.h"

static const uint8_t key1[FEATURE_KEY_LEN] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f,
	0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
	0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f,
};
static uint8_t chip_pub[65], other_pub[65];

static void
setup(void)
{
	uint8_t priv[32];

	ck_assert_int_eq(ml_p256_keygen(priv, chip_pub), 0);
	ck_assert_int_eq(ml_p256_keygen(priv, other_pub), 0);
}

static const struct id_vec {
	const char	*prefix, *serial;
	int		 want;
} id_vecs[] = {
	{ "AB", "00001234", 0 },
	{ "A", "0000", 0 },
	{ "Z9Z9", "123456789012", 0 },
	{ "", "00001234", ML_ERR_SHORT },
	{ "AB", "123", ML_ERR_SHORT },
	{ "ABCDE", "00001234", ML_ERR_TOO_LARGE },
	{ "AB", "1234567890123", ML_ERR_TOO_LARGE },
	{ "1B", "00001234", ML_ERR_FORMAT },
	{ "ab", "00001234", ML_ERR_FORMAT },
	{ "A-", "00001234", ML_ERR_FORMAT },
	{ "AB", "0000123A", ML_ERR_FORMAT },
	{ "AB", "0000 234", ML_ERR_FORMAT },
};

START_TEST(id_vectors)
{
	const struct id_vec *v = &id_vecs[_i];
	struct note_id id;

	ck_assert_msg(note_id_set(v->prefix, strlen(v->prefix), v->serial,
	    strlen(v->serial), &id) == v->want, "%s/%s", v->prefix, v->serial);
}
END_TEST

START_TEST(derive_roundtrip)
{
	struct note_id id, back;
	char f[FEATURE_MAX_LEN + 1], f2[FEATURE_MAX_LEN + 1], s[NOTE_ID_MAX + 1];
	size_t n, n2;

	ck_assert_int_eq(note_id_set("AB", 2, "00001234", 8, &id), 0);
	ck_assert_int_eq(feature_derive(key1, &id, chip_pub, f, &n), 0);
	ck_assert_uint_eq(n, strlen(f));
	ck_assert_int_eq(strncmp(f, "ML1|AB|00001234|", 16), 0);
	/* deterministic */
	ck_assert_int_eq(feature_derive(key1, &id, chip_pub, f2, &n2), 0);
	ck_assert_str_eq(f, f2);
	ck_assert_int_eq(feature_parse((uint8_t *)f, n, &back), 0);
	note_id_str(&back, s);
	ck_assert_str_eq(s, "AB00001234");
	ck_assert_int_eq(feature_verify(key1, (uint8_t *)f, n, &back), 0);
	ck_assert_int_eq(feature_check_chip((uint8_t *)f, n, chip_pub), 0);
	ck_assert_int_eq(feature_check_chip((uint8_t *)f, n, other_pub),
	    ML_ERR_AUTH);
}
END_TEST

START_TEST(keyed_code_needs_key)
{
	uint8_t key2[FEATURE_KEY_LEN];
	struct note_id id;
	char f[FEATURE_MAX_LEN + 1];
	size_t n;

	memcpy(key2, key1, sizeof(key2));
	key2[31] ^= 1;
	ck_assert_int_eq(note_id_set("AB", 2, "00001234", 8, &id), 0);
	ck_assert_int_eq(feature_derive(key1, &id, chip_pub, f, &n), 0);
	/* public check passes without the key, the keyed code does not */
	ck_assert_int_eq(feature_parse((uint8_t *)f, n, &id), 0);
	ck_assert_int_eq(feature_verify(key2, (uint8_t *)f, n, &id), ML_ERR_AUTH);
	/* a set of keys (OP-6): one that made the code is enough */
	{
		uint8_t set[2][FEATURE_KEY_LEN];

		memcpy(set[0], key2, FEATURE_KEY_LEN);
		memcpy(set[1], key1, FEATURE_KEY_LEN);
		ck_assert_int_eq(feature_verify_keys(
		    (const uint8_t (*)[FEATURE_KEY_LEN])set, 2, (uint8_t *)f,
		    n, &id), 0);
		ck_assert_int_eq(feature_verify_keys(
		    (const uint8_t (*)[FEATURE_KEY_LEN])set, 1, (uint8_t *)f,
		    n, &id), ML_ERR_AUTH);
		ck_assert_int_eq(feature_verify_keys(NULL, 0, (uint8_t *)f, n,
		    &id), 0);
	}
}
END_TEST

/* Every single-character change of a valid record is refused somewhere. */
START_TEST(tamper_every_byte)
{
	struct note_id id;
	char f[FEATURE_MAX_LEN + 1];
	size_t n, i;

	ck_assert_int_eq(note_id_set("MX", 2, "00000042", 8, &id), 0);
	ck_assert_int_eq(feature_derive(key1, &id, chip_pub, f, &n), 0);
	for (i = 0; i < n; i++) {
		char t[FEATURE_MAX_LEN + 1];
		int r1, r2;

		memcpy(t, f, n + 1);
		t[i] = t[i] == '7' ? '6' : '7';
		r1 = feature_verify(key1, (uint8_t *)t, n, &id);
		r2 = feature_check_chip((uint8_t *)t, n, chip_pub);
		ck_assert_msg(r1 != 0 || r2 != 0, "byte %zu", i);
	}
}
END_TEST

static const struct parse_vec {
	const char	*name;
	const char	*f;
	int		 want;
} parse_vecs[] = {
	{ "empty", "", ML_ERR_SHORT },
	{ "magic", "ML2|AB|00001234|AAAAAAAA|AAAAAAAAAAAAAAAA|AAAAAAAAAAAAAAAAAAAA", ML_ERR_FORMAT },
	{ "fields", "ML1|AB|00001234|AAAAAAAA", ML_ERR_FORMAT },
	{ "extra", "ML1|AB|00001234|AAAAAAAA|AAAAAAAAAAAAAAAA|AAAAAAAAAAAAAAAAAAAA|X", ML_ERR_FORMAT },
	{ "chklen", "ML1|AB|00001234|AAAAAAA|AAAAAAAAAAAAAAAA|AAAAAAAAAAAAAAAAAAAA", ML_ERR_FORMAT },
	{ "badprefix", "ML1|ab|00001234|AAAAAAAA|AAAAAAAAAAAAAAAA|AAAAAAAAAAAAAAAAAAAA", ML_ERR_FORMAT },
	{ "wrongchk", "ML1|AB|00001234|AAAAAAAA|AAAAAAAAAAAAAAAA|AAAAAAAAAAAAAAAAAAAA", ML_ERR_AUTH },
	{ "toolong", "ML1|AB|00001234|AAAAAAAA|AAAAAAAAAAAAAAAA|AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", ML_ERR_TOO_LARGE },
};

START_TEST(parse_vectors)
{
	const struct parse_vec *v = &parse_vecs[_i];
	struct note_id id;

	ck_assert_msg(feature_parse((const uint8_t *)v->f, strlen(v->f), &id) ==
	    v->want, "%s", v->name);
}
END_TEST

/* Every strict prefix of a valid record is refused. */
START_TEST(prefixes)
{
	struct note_id id;
	char f[FEATURE_MAX_LEN + 1];
	size_t n, i;

	ck_assert_int_eq(note_id_set("Q1", 2, "1234", 4, &id), 0);
	ck_assert_int_eq(feature_derive(key1, &id, chip_pub, f, &n), 0);
	for (i = 0; i < n; i++) {
		ck_assert_int_ne(feature_parse((uint8_t *)f, i, &id), 0);
	}
}
END_TEST

START_TEST(key_file)
{
	char path[] = "/tmp/test-feature-key.XXXXXX";
	uint8_t k[FEATURE_KEY_LEN];
	int fd = mkstemp(path);

	ck_assert_int_ge(fd, 0);
	close(fd);
	unlink(path);
	ck_assert_int_eq(feature_key_create(path), 0);
	ck_assert_int_eq(feature_key_create(path), ML_ERR_EXISTS);
	ck_assert_int_eq(feature_key_load(path, k), 0);
	ck_assert_int_eq(chmod(path, 0644), 0);
	ck_assert_int_eq(feature_key_load(path, k), ML_ERR_PERM);
	unlink(path);
}
END_TEST

static Suite *
feature_suite(void)
{
	Suite *s = suite_create("feature");
	TCase *tc = tcase_create("feature");

	tcase_add_unchecked_fixture(tc, setup, NULL);
	tcase_add_loop_test(tc, id_vectors, 0, sizeof(id_vecs) / sizeof(id_vecs[0]));
	tcase_add_test(tc, derive_roundtrip);
	tcase_add_test(tc, keyed_code_needs_key);
	tcase_add_test(tc, tamper_every_byte);
	tcase_add_loop_test(tc, parse_vectors, 0,
	    sizeof(parse_vecs) / sizeof(parse_vecs[0]));
	tcase_add_test(tc, prefixes);
	tcase_add_test(tc, key_file);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(feature_suite());
	int nf;

	srunner_run_all(sr, CK_NORMAL);
	nf = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nf == 0 ? 0 : 1;
}
