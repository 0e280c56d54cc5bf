/*
 * Unit tests for chip-applet/apdu.c, the one command-APDU codec.
 *
 * A vector table over cases 1, 2S, 2E, 3S, 3E, 4S, 4E and the malformed
 * encodings, each with its exact error.  Every successful parse must be
 * faithful: re-encoding the parsed struct in the form it was read gives
 * back exactly the input bytes (so no two readings of one input exist).
 * Every truncated prefix of every valid APDU either fails or parses, in
 * that faithful way, as another valid APDU.  apdu_build -> apdu_parse round
 * trips across the short/extended boundaries.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ml_err.h"
#include "ml_rd.h"
#include "ml_wr.h"
#include "apdu.h"
#include "mltest.h"

#define H	0x00, 0xA4, 0x04, 0x00		/* a header */

static const struct apdu_vec {
	const char	*name;
	uint8_t		 raw[24];
	size_t		 len;
	int		 want_r;
	enum apdu_case	 want_case;
	bool		 want_ext;
	uint32_t	 want_ne;
	size_t		 want_nc;
} apdu_vecs[] = {
	{ "empty",	     { 0 },					  0, ML_ERR_SHORT },
	{ "hdr-1",	     { 0x00 },					  1, ML_ERR_SHORT },
	{ "hdr-3",	     { 0x00, 0xA4, 0x04 },			  3, ML_ERR_SHORT },
	{ "case1",	     { H },					  4, 0, APDU_CASE_1, false, 0, 0 },
	{ "case2s",	     { 0x00, 0xB0, 0x00, 0x00, 0x10 },		  5, 0, APDU_CASE_2, false, 16, 0 },
	{ "case2s-le01",     { 0x00, 0xB0, 0x00, 0x00, 0x01 },		  5, 0, APDU_CASE_2, false, 1, 0 },
	{ "case2s-leff",     { 0x00, 0xB0, 0x00, 0x00, 0xFF },		  5, 0, APDU_CASE_2, false, 255, 0 },
	{ "case2s-le00",     { 0x00, 0xB0, 0x00, 0x00, 0x00 },		  5, 0, APDU_CASE_2, false, 256, 0 },
	{ "case2e",	     { 0x00, 0xB0, 0, 0, 0x00, 0x00, 0x01 },	  7, 0, APDU_CASE_2, true, 1, 0 },
	{ "case2e-le0100",   { 0x00, 0xB0, 0, 0, 0x00, 0x01, 0x00 },	  7, 0, APDU_CASE_2, true, 256, 0 },
	{ "case2e-leffff",   { 0x00, 0xB0, 0, 0, 0x00, 0xFF, 0xFF },	  7, 0, APDU_CASE_2, true, 65535, 0 },
	{ "case2e-le0000",   { 0x00, 0xB0, 0, 0, 0x00, 0x00, 0x00 },	  7, 0, APDU_CASE_2, true, 65536, 0 },
	{ "case3s",	     { H, 0x02, 0x3F, 0x00 },			  7, 0, APDU_CASE_3, false, 0, 2 },
	{ "case3s-data00",   { H, 0x01, 0x00 },				  6, 0, APDU_CASE_3, false, 0, 1 },
	{ "case3s-lc01",     { H, 0x01, 0xAA },				  6, 0, APDU_CASE_3, false, 0, 1 },
	{ "case4s",	     { H, 0x02, 0x3F, 0x00, 0x10 },		  8, 0, APDU_CASE_4, false, 16, 2 },
	{ "case4s-le00",     { H, 0x02, 0x3F, 0x00, 0x00 },		  8, 0, APDU_CASE_4, false, 256, 2 },
	{ "case3e",	     { H, 0x00, 0x00, 0x02, 0x3F, 0x00 },	  9, 0, APDU_CASE_3, true, 0, 2 },
	{ "case3e-lc1",	     { H, 0x00, 0x00, 0x01, 0xAA },		  8, 0, APDU_CASE_3, true, 0, 1 },
	{ "case4e",	     { H, 0x00, 0x00, 0x02, 0x3F, 0x00, 0x00, 0x20 }, 11, 0, APDU_CASE_4, true, 32, 2 },
	{ "case4e-le0000",   { H, 0x00, 0x00, 0x02, 0x3F, 0x00, 0x00, 0x00 }, 11, 0, APDU_CASE_4, true, 65536, 2 },
	{ "case4e-le0101",   { H, 0x00, 0x00, 0x01, 0xAA, 0x01, 0x01 },	 10, 0, APDU_CASE_4, true, 257, 1 },
	{ "cla-ff",	     { 0xFF, 0xFF, 0xFF, 0xFF },		  4, 0, APDU_CASE_1, false, 0, 0 },
	/* Lc promises more than is there */
	{ "lc-overrun",	     { H, 0x05, 0xA0, 0x00 },			  7, ML_ERR_SHORT },
	{ "lc-overrun-1",    { H, 0x02, 0xA0 },				  6, ML_ERR_SHORT },
	{ "lc-ff-overrun",   { H, 0xFF, 0x01 },				  6, ML_ERR_SHORT },
	{ "ext-lc-overrun",  { H, 0x00, 0x00, 0x05, 0xA0, 0x00 },	  9, ML_ERR_SHORT },
	{ "ext-lc-ffff",     { H, 0x00, 0xFF, 0xFF, 0xA0 },		  8, ML_ERR_SHORT },
	/* encodings that fit no case */
	{ "ext-lc-zero",     { H, 0x00, 0x00, 0x00, 0x01 },		  8, ML_ERR_FORMAT },
	{ "ext-lc-zero-le",  { H, 0x00, 0x00, 0x00, 0x00, 0x00 },	  9, ML_ERR_FORMAT },
	{ "ext-lc-zero-data", { H, 0x00, 0x00, 0x00, 0xAA, 0xBB, 0xCC }, 10, ML_ERR_FORMAT },
	{ "body-0000",	     { H, 0x00, 0x00 },				  6, ML_ERR_FORMAT },
	{ "body-00xx",	     { H, 0x00, 0x05 },				  6, ML_ERR_FORMAT },
	{ "body-00ff",	     { H, 0x00, 0xFF },				  6, ML_ERR_FORMAT },
	/* a complete body followed by more */
	{ "case3s-trail2",   { H, 0x01, 0xAA, 0x00, 0x00 },		  8, ML_ERR_TRAILING },
	{ "case4s-trail",    { H, 0x01, 0xAA, 0x10, 0x20 },		  8, ML_ERR_TRAILING },
	{ "case4s-trail3",   { H, 0x01, 0xAA, 0x10, 0x20, 0x30 },	  9, ML_ERR_TRAILING },
	{ "short-lc-ext-le", { H, 0x01, 0xAA, 0x00, 0x01 },		  8, ML_ERR_TRAILING },
	{ "ext-lc-short-le", { H, 0x00, 0x00, 0x01, 0xAA, 0x05 },	  9, ML_ERR_TRAILING },
	{ "case4e-trail",    { H, 0x00, 0x00, 0x01, 0xAA, 0x00, 0x00, 0x00 }, 11, ML_ERR_TRAILING },
};

/*
 * Re-encode a parsed APDU in the form it claims (short/extended).  A
 * faithful parser makes this the identity on accepted inputs.
 */
static size_t
reencode(const struct apdu *a, uint8_t *out)
{
	size_t n = 0, nc = ml_rd_left(&a->data);
	uint32_t le = a->ne;

	out[n++] = a->cla;
	out[n++] = a->ins;
	out[n++] = a->p1;
	out[n++] = a->p2;
	if (a->kase == APDU_CASE_3 || a->kase == APDU_CASE_4) {
		if (a->extended) {
			out[n++] = 0;
			out[n++] = (uint8_t)(nc >> 8);
			out[n++] = (uint8_t)nc;
		} else {
			out[n++] = (uint8_t)nc;
		}
		memcpy(out + n, ml_rd_ptr(&a->data), nc);
		n += nc;
	}
	if (a->kase == APDU_CASE_2 || a->kase == APDU_CASE_4) {
		if (a->extended) {
			if (a->kase == APDU_CASE_2) {
				out[n++] = 0;
			}
			out[n++] = (uint8_t)((le == 65536 ? 0 : le) >> 8);
			out[n++] = (uint8_t)(le == 65536 ? 0 : le);
		} else {
			out[n++] = (uint8_t)(le == 256 ? 0 : le);
		}
	}
	return n;
}

/* The invariants of a parsed APDU, and faithfulness against raw. */
static void
check_parsed(const struct apdu *a, const uint8_t *raw, size_t len,
    const char *what)
{
	static uint8_t out[4 + 3 + 65535 + 3];
	size_t nc = ml_rd_left(&a->data);

	ck_assert_msg(a->kase >= APDU_CASE_1 && a->kase <= APDU_CASE_4, "%s", what);
	ck_assert(ml_rd_valid(&a->data));
	ck_assert_uint_eq(a->data.off, 0);
	if (nc > 0) {
		ck_assert(a->data.p >= raw && a->data.p + nc <= raw + len);
	}
	switch (a->kase) {
	case APDU_CASE_1:
		ck_assert_msg(nc == 0 && a->ne == 0 && !a->extended, "%s", what);
		break;
	case APDU_CASE_2:
		ck_assert_msg(nc == 0 && a->ne >= 1, "%s", what);
		break;
	case APDU_CASE_3:
		ck_assert_msg(nc >= 1 && a->ne == 0, "%s", what);
		break;
	case APDU_CASE_4:
		ck_assert_msg(nc >= 1 && a->ne >= 1, "%s", what);
		break;
	}
	ck_assert_msg(a->ne <= (a->extended ? 65536u : 256u), "%s: ne %u", what,
	    a->ne);
	ck_assert_msg(nc <= (a->extended ? 65535u : 255u), "%s", what);
	ck_assert_msg(reencode(a, out) == len, "%s: re-encoded length differs",
	    what);
	ck_assert_msg(memcmp(out, raw, len) == 0, "%s: re-encoding differs", what);
}

START_TEST(apdu_vectors)
{
	const struct apdu_vec *v = &apdu_vecs[_i];
	struct apdu a;
	int r;

	r = apdu_parse(v->raw, v->len, &a);
	ck_assert_msg(r == v->want_r, "%s: got %s want %s", v->name,
	    ml_errname(r), ml_errname(v->want_r));
	if (v->want_r != 0) {
		return;
	}
	ck_assert_msg(a.kase == v->want_case, "%s: case %d", v->name, a.kase);
	ck_assert_msg(a.extended == v->want_ext, "%s: extended", v->name);
	ck_assert_msg(a.ne == v->want_ne, "%s: ne %u", v->name, a.ne);
	ck_assert_msg(ml_rd_left(&a.data) == v->want_nc, "%s: nc", v->name);
	ck_assert_uint_eq(a.cla, v->raw[0]);
	ck_assert_uint_eq(a.ins, v->raw[1]);
	ck_assert_uint_eq(a.p1, v->raw[2]);
	ck_assert_uint_eq(a.p2, v->raw[3]);
	check_parsed(&a, v->raw, v->len, v->name);
}
END_TEST

/*
 * Every truncated prefix of a valid APDU: header prefixes are ML_ERR_SHORT;
 * longer ones fail with a codec error or parse, faithfully, as another
 * valid APDU (a prefix of 4S is a valid 3S, of 4E a trailing 3E...).
 */
static void
check_prefixes(const uint8_t *raw, size_t len, const char *name)
{
	struct apdu a;
	char what[96];
	size_t k;
	int r;

	for (k = 0; k < len; k++) {
		snprintf(what, sizeof(what), "%s[0..%zu)", name, k);
		r = apdu_parse(raw, k, &a);
		if (k < 4) {
			ck_assert_msg(r == ML_ERR_SHORT, "%s: %s", what, ml_errname(r));
			continue;
		}
		if (r == 0) {
			check_parsed(&a, raw, k, what);
		} else {
			ck_assert_msg(r == ML_ERR_SHORT || r == ML_ERR_FORMAT ||
			    r == ML_ERR_TRAILING, "%s: %s", what, ml_errname(r));
		}
	}
}

START_TEST(apdu_prefixes_of_vectors)
{
	size_t i;

	for (i = 0; i < ML_NELEM(apdu_vecs); i++) {
		if (apdu_vecs[i].want_r == 0) {
			check_prefixes(apdu_vecs[i].raw, apdu_vecs[i].len,
			    apdu_vecs[i].name);
		}
	}
}
END_TEST

/* Exact errors for prefixes where the answer is determined. */
START_TEST(apdu_prefix_exact)
{
	static const uint8_t c4s[] = { H, 0x03, 1, 2, 3, 0x10 };
	static const uint8_t c4e[] = { H, 0x00, 0x00, 0x03, 1, 2, 3, 0x01, 0x00 };
	struct apdu a;

	/* 4S: H Lc alone reads as 2S (Le = Lc); a cut inside the data is
	 * SHORT; data complete is 3S. */
	ck_assert_r(apdu_parse(c4s, 5, &a), 0);
	ck_assert_int_eq(a.kase, APDU_CASE_2);
	ck_assert_uint_eq(a.ne, 3);
	ck_assert_r(apdu_parse(c4s, 6, &a), ML_ERR_SHORT);
	ck_assert_r(apdu_parse(c4s, 7, &a), ML_ERR_SHORT);
	ck_assert_r(apdu_parse(c4s, 8, &a), 0);
	ck_assert_int_eq(a.kase, APDU_CASE_3);
	/* 4E: H 00 is 2S with Le 256; H 00 00 a lone 00 xx body; H 00 00 03
	 * is 2E with Le 3; then inside the data SHORT; then 3E; then 3E + one
	 * trailing byte. */
	ck_assert_r(apdu_parse(c4e, 5, &a), 0);
	ck_assert_int_eq(a.kase, APDU_CASE_2);
	ck_assert_uint_eq(a.ne, 256);
	ck_assert(!a.extended);
	ck_assert_r(apdu_parse(c4e, 6, &a), ML_ERR_FORMAT);
	ck_assert_r(apdu_parse(c4e, 7, &a), 0);
	ck_assert_int_eq(a.kase, APDU_CASE_2);
	ck_assert(a.extended);
	ck_assert_uint_eq(a.ne, 3);
	ck_assert_r(apdu_parse(c4e, 8, &a), ML_ERR_SHORT);
	ck_assert_r(apdu_parse(c4e, 9, &a), ML_ERR_SHORT);
	ck_assert_r(apdu_parse(c4e, 10, &a), 0);
	ck_assert_int_eq(a.kase, APDU_CASE_3);
	ck_assert_r(apdu_parse(c4e, 11, &a), ML_ERR_TRAILING);
	ck_assert_r(apdu_parse(c4e, 12, &a), 0);
	ck_assert_int_eq(a.kase, APDU_CASE_4);
	ck_assert_uint_eq(a.ne, 256);
}
END_TEST

static const size_t build_nc[] = { 0, 1, 2, 127, 128, 254, 255, 256, 257,
    1000, 4096, 65534, 65535 };
static const uint32_t build_ne[] = { 0, 1, 2, 255, 256, 257, 1000, 65535,
    65536 };

/* apdu_build -> apdu_parse gives back what was built, in the right form. */
START_TEST(apdu_build_roundtrip)
{
	static uint8_t data[65535];
	size_t nc = build_nc[_i], j, want_len;
	struct ml_wr w;
	struct apdu a;
	enum apdu_case want_case;
	bool ext;
	uint32_t ne;
	char what[64];

	for (j = 0; j < sizeof(data); j++) {
		data[j] = (uint8_t)(j * 31 + 7);
	}
	for (j = 0; j < ML_NELEM(build_ne); j++) {
		ne = build_ne[j];
		snprintf(what, sizeof(what), "nc %zu ne %u", nc, ne);
		ext = nc > 255 || ne > 256;
		want_case = nc == 0 ? (ne == 0 ? APDU_CASE_1 : APDU_CASE_2) :
		    (ne == 0 ? APDU_CASE_3 : APDU_CASE_4);
		want_len = 4 + (nc > 0 ? (ext ? 3 : 1) + nc : 0) +
		    (ne > 0 ? (ext ? (nc > 0 ? 2 : 3) : 1) : 0);
		w = ml_wr_dyn(4 + 3 + 65535 + 3);
		ck_assert_r(apdu_build(&w, 0x80, 0x2A, 0x9E, 0x9A, data, nc, ne), 0);
		ck_assert_msg(w.len == want_len, "%s: built %zu bytes", what, w.len);
		ck_assert_r(apdu_parse(w.p, w.len, &a), 0);
		ck_assert_msg(a.kase == want_case, "%s: case %d", what, a.kase);
		ck_assert_msg(a.extended == (ext && want_case != APDU_CASE_1),
		    "%s: extended", what);
		ck_assert_uint_eq(a.ne, ne);
		ck_assert_uint_eq(ml_rd_left(&a.data), nc);
		if (nc > 0) {
			ck_assert_mem_eq(ml_rd_ptr(&a.data), data, nc);
		}
		ck_assert_uint_eq(a.cla, 0x80);
		ck_assert_uint_eq(a.ins, 0x2A);
		ck_assert_uint_eq(a.p1, 0x9E);
		ck_assert_uint_eq(a.p2, 0x9A);
		check_parsed(&a, w.p, w.len, what);
		/* Its prefixes behave (sampled for the long ones). */
		if (w.len < 600) {
			check_prefixes(w.p, w.len, what);
		}
		ml_wr_free(&w);
	}
}
END_TEST

START_TEST(apdu_build_refuses)
{
	uint8_t data[8] = { 0 }, buf[16];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));

	ck_assert_r(ml_wr_u8(&w, 0xEE), 0);
	ck_assert_r(apdu_build(&w, 0, 0xB0, 0, 0, data, 65536, 0), ML_ERR_TOO_LARGE);
	ck_assert_r(apdu_build(&w, 0, 0xB0, 0, 0, NULL, 0, 65537), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 1);
	/* Runs out of room half way: taken back entirely. */
	ck_assert_r(apdu_build(&w, 0, 0xA4, 4, 0, data, 8, 256), 0);	/* 1+4+1+8+1 */
	ck_assert_uint_eq(w.len, 15);
	ck_assert_r(apdu_build(&w, 0, 0xA4, 4, 0, NULL, 0, 0), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 15);
	w.len = 1;
	ck_assert_r(apdu_build(&w, 0, 0xA4, 4, 0, data, 8, 257), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 1);
}
END_TEST

/* Random bytes: never a crash, every acceptance faithful. */
START_TEST(apdu_random)
{
	uint8_t buf[300];
	struct apdu a;
	uint32_t x = 0xC0FFEE;
	size_t i, k, n;
	int r, nok = 0;

	for (i = 0; i < 300000; i++) {
		x = x * 1664525u + 1013904223u;
		n = (x >> 8) % 24;
		if ((x >> 28) == 0) {
			n = (x >> 4) % sizeof(buf);
		}
		for (k = 0; k < n; k++) {
			x = x * 1664525u + 1013904223u;
			buf[k] = (uint8_t)(x >> 24);
			if (k >= 4 && (x & 0x300) == 0) {
				buf[k] = (x & 0x400) ? 0 : (uint8_t)(n - k - 1);
			}
		}
		r = apdu_parse(buf, n, &a);
		if (r == 0) {
			check_parsed(&a, buf, n, "random");
			nok++;
		} else {
			ck_assert(r == ML_ERR_SHORT || r == ML_ERR_FORMAT ||
			    r == ML_ERR_TRAILING);
		}
	}
	ck_assert_int_gt(nok, 1000);
}
END_TEST

static Suite *
apdu_suite(void)
{
	Suite *s = suite_create("apdu");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, apdu_vectors, 0, ML_NELEM(apdu_vecs));
	tcase_add_test(tc, apdu_prefixes_of_vectors);
	tcase_add_test(tc, apdu_prefix_exact);
	tcase_add_test(tc, apdu_random);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_loop_test(tc, apdu_build_roundtrip, 0, ML_NELEM(build_nc));
	tcase_add_test(tc, apdu_build_refuses);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(apdu_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
