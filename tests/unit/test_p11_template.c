/*
 * Unit tests for pkcs11/template.c (the chip attribute blob) and the
 * variable-length output convention (p11m_out, v2.40 §5.2).
 *
 * The blob is untrusted input: a round trip must be exact, and every
 * strict prefix of a valid blob, and a set of hand-made bad blobs, must
 * fail with the exact ML_ERR_* and leave the output untouched.
 */
#include <stdbool.h>
#include <string.h>

#include <check.h>

#include "ml_wr.h"
#include "p11m.h"
#include "mltest.h"

static void
sample(struct p11m_attrs *a)
{
	static const CK_BYTE id[] = { 0xde, 0xad, 0xbe, 0xef };
	CK_DATE d = { { '2', '0', '2', '6' }, { '1', '1' }, { '2', '3' } };

	ck_assert_int_eq(p11m_attrs_set_ulong(a, CKA_CLASS, CKO_DATA), CKR_OK);
	ck_assert_int_eq(p11m_attrs_set_bool(a, CKA_PRIVATE, true), CKR_OK);
	ck_assert_int_eq(p11m_attrs_set_bool(a, CKA_MODIFIABLE, false), CKR_OK);
	ck_assert_int_eq(p11m_attrs_set(a, CKA_LABEL, "feature", 7), CKR_OK);
	ck_assert_int_eq(p11m_attrs_set(a, CKA_ID, id, sizeof(id)), CKR_OK);
	ck_assert_int_eq(p11m_attrs_set(a, CKA_APPLICATION, "", 0), CKR_OK);
	ck_assert_int_eq(p11m_attrs_set(a, CKA_START_DATE, &d, sizeof(d)),
	    CKR_OK);
	ck_assert_int_eq(p11m_attrs_set_ulong(a, CKA_VALUE_LEN,
	    (CK_ULONG)0x1234567890ULL), CKR_OK);
}

static void
assert_same(const struct p11m_attrs *a, const struct p11m_attrs *b)
{
	size_t i;

	ck_assert_uint_eq(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		const struct p11m_attr *x = &a->v[i];
		const struct p11m_attr *y = p11m_attrs_get(b, x->type);

		ck_assert_msg(y != NULL, "attribute 0x%lx lost",
		    (unsigned long)x->type);
		ck_assert_uint_eq(x->len, y->len);
		ck_assert(x->len == 0 || memcmp(x->val, y->val, x->len) == 0);
	}
}

START_TEST(round_trip)
{
	struct p11m_attrs a = { 0 }, b = { 0 };
	struct ml_wr w = ml_wr_dyn(OBJ_MAX_ATTRS);

	sample(&a);
	ck_assert_r(p11m_blob_write(&a, &w), 0);
	ck_assert_r(p11m_blob_parse(w.p, w.len, &b), 0);
	assert_same(&a, &b);
	/* BOOL is one byte and ULONG eight in the blob, whatever the host. */
	ck_assert_uint_eq(w.len, 3 + 8 * 6 + 8 + 1 + 1 + 7 + 4 + 0 + 8 + 8);
	p11m_attrs_free(&a);
	p11m_attrs_free(&b);
	ml_wr_free(&w);
}
END_TEST

START_TEST(empty_round_trip)
{
	struct p11m_attrs a = { 0 }, b = { 0 };
	uint8_t buf[8];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));

	ck_assert_r(p11m_blob_write(&a, &w), 0);
	ck_assert_uint_eq(w.len, 3);
	ck_assert_r(p11m_blob_parse(w.p, w.len, &b), 0);
	ck_assert_uint_eq(b.n, 0);
}
END_TEST

/* Every strict prefix fails with ML_ERR_SHORT, output untouched. */
START_TEST(every_prefix)
{
	struct p11m_attrs a = { 0 }, b;
	struct ml_wr w = ml_wr_dyn(OBJ_MAX_ATTRS);
	size_t k;

	sample(&a);
	ck_assert_r(p11m_blob_write(&a, &w), 0);
	for (k = 0; k < w.len; k++) {
		memset(&b, 0xA5, sizeof(b));
		ck_assert_msg(p11m_blob_parse(w.p, k, &b) == ML_ERR_SHORT,
		    "prefix %zu of %zu", k, w.len);
		ck_assert_msg(b.n == (size_t)0xA5A5A5A5A5A5A5A5ULL,
		    "output touched at prefix %zu", k);
	}
	p11m_attrs_free(&a);
	ml_wr_free(&w);
}
END_TEST

static const struct bad {
	const char	*name;
	uint8_t		 raw[32];
	size_t		 len;
	int		 want;
} bads[] = {
	{ "version-0",	 { 0x00, 0x00, 0x00 },			3, ML_ERR_FORMAT },
	{ "version-2",	 { 0x02, 0x00, 0x00 },			3, ML_ERR_FORMAT },
	{ "trailing",	 { 0x01, 0x00, 0x00, 0xff },		4, ML_ERR_TRAILING },
	{ "count-huge",	 { 0x01, 0xff, 0xff },			3, ML_ERR_TOO_LARGE },
	{ "bool-2",	 { 0x01, 0x00, 0x01, 0, 0, 0, 0x01, 0x00, 0x01, 0x02 },
	  10, ML_ERR_FORMAT },
	{ "bool-len-2",	 { 0x01, 0x00, 0x01, 0, 0, 0, 0x01, 0x00, 0x02, 0x01,
	  0x00 }, 11, ML_ERR_TRAILING },
	{ "ulong-len-4", { 0x01, 0x00, 0x01, 0, 0, 0, 0x00, 0x00, 0x04, 0, 0,
	  0, 1 }, 13, ML_ERR_SHORT },
	{ "date-len-3",	 { 0x01, 0x00, 0x01, 0, 0, 0x01, 0x10, 0x00, 0x03, '2',
	  '0', '2' }, 12, ML_ERR_FORMAT },
	{ "duplicate",	 { 0x01, 0x00, 0x02, 0, 0, 0, 0x03, 0x00, 0x01, 'a',
	  0, 0, 0, 0x03, 0x00, 0x01, 'b' }, 17, ML_ERR_FORMAT },
	{ "vendor-attr", { 0x01, 0x00, 0x01, 0x80, 0, 0, 0x01, 0x00, 0x00 },
	  9, ML_ERR_FORMAT },
	{ "len-overruns", { 0x01, 0x00, 0x01, 0, 0, 0, 0x03, 0x00, 0x09, 'a' },
	  10, ML_ERR_SHORT },
};

START_TEST(bad_blobs)
{
	const struct bad *v = &bads[_i];
	struct p11m_attrs b = { 0 };

	ck_assert_msg(p11m_blob_parse(v->raw, v->len, &b) == v->want,
	    "%s: %s", v->name, ml_errname(p11m_blob_parse(v->raw, v->len,
	    &b)));
	ck_assert_uint_eq(b.n, 0);
}
END_TEST

START_TEST(write_limit)
{
	struct p11m_attrs a = { 0 };
	uint8_t buf[16];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));

	sample(&a);
	ck_assert_r(p11m_blob_write(&a, &w), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 0);	/* the writer is left as it was */
	p11m_attrs_free(&a);
}
END_TEST

/* v2.40 §5.2: size query, short buffer, exact copy. */
START_TEST(out_convention)
{
	static const uint8_t src[5] = { 1, 2, 3, 4, 5 };
	uint8_t dst[8] = { 0 };
	CK_ULONG n = 0;

	ck_assert_int_eq(p11m_out(src, 5, NULL, &n), CKR_OK);
	ck_assert_uint_eq(n, 5);
	n = 4;
	ck_assert_int_eq(p11m_out(src, 5, dst, &n), CKR_BUFFER_TOO_SMALL);
	ck_assert_uint_eq(n, 5);
	ck_assert_uint_eq(dst[0], 0);
	n = sizeof(dst);
	ck_assert_int_eq(p11m_out(src, 5, dst, &n), CKR_OK);
	ck_assert_uint_eq(n, 5);
	ck_assert(memcmp(dst, src, 5) == 0);
	n = 0;
	ck_assert_int_eq(p11m_out(src, 0, dst, &n), CKR_OK);
	ck_assert_uint_eq(n, 0);
}
END_TEST

/* The two fixed DER shapes of EC keys. */
START_TEST(ec_shapes)
{
	uint8_t der[P11M_EC_POINT_DER_LEN], pt[ML_P256_PUB_LEN], back[65];
	uint8_t priv[ML_P256_PRIV_LEN];

	ck_assert_r(ml_p256_keygen(priv, pt), 0);
	p11m_ec_point_der(pt, der);
	ck_assert_uint_eq(der[0], 0x04);
	ck_assert_uint_eq(der[1], 0x41);
	ck_assert_int_eq(p11m_ec_point_parse(der, sizeof(der), back), CKR_OK);
	ck_assert(memcmp(back, pt, 65) == 0);
	ck_assert_int_eq(p11m_ec_point_parse(pt, sizeof(pt), back), CKR_OK);
	ck_assert_int_eq(p11m_ec_point_parse(pt, 64, back),
	    CKR_ATTRIBUTE_VALUE_INVALID);
	pt[64] ^= 1;		/* off the curve */
	ck_assert_int_eq(p11m_ec_point_parse(pt, sizeof(pt), back),
	    CKR_ATTRIBUTE_VALUE_INVALID);
	ck_assert(p11m_ec_params_ok(ml_p256_oid_der, sizeof(ml_p256_oid_der)));
	ck_assert(!p11m_ec_params_ok(ml_p256_oid_der, 9));
}
END_TEST

static Suite *
template_suite(void)
{
	Suite *s = suite_create("p11_template");
	TCase *tc = tcase_create("blob");

	tcase_add_test(tc, round_trip);
	tcase_add_test(tc, empty_round_trip);
	tcase_add_test(tc, every_prefix);
	tcase_add_loop_test(tc, bad_blobs, 0, (int)ML_NELEM(bads));
	tcase_add_test(tc, write_limit);
	tcase_add_test(tc, out_convention);
	tcase_add_test(tc, ec_shapes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(template_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
