/*
 * Unit tests for common/ml_tlv.c: BER-TLV as ISO/IEC 7816-4 uses it.
 *
 * A vector table with the exact error for every malformed encoding; every
 * strict prefix of every valid TLV fails with ML_ERR_SHORT and leaves the
 * cursor and outputs alone; put/next and open/close round trips across the
 * length-form boundaries (127/128, 255/256, 65535/65536).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ml_err.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "mltest.h"

static const struct tlv_vec {
	const char	*name;
	uint8_t		 raw[16];
	size_t		 len;
	int		 want_r;
	uint32_t	 want_tag;
	size_t		 want_vlen;
	size_t		 want_consumed;
} tlv_vecs[] = {
	/* valid */
	{ "short-0",	 { 0x41, 0x00 },				 2, 0, 0x41, 0, 2 },
	{ "short-1",	 { 0x41, 0x01, 0xAA },				 3, 0, 0x41, 1, 3 },
	{ "short-2+more", { 0xC1, 0x02, 0xAA, 0xBB, 0x41, 0x00 },	 6, 0, 0xC1, 2, 4 },
	{ "constructed", { 0x6F, 0x03, 0x84, 0x01, 0x00 },		 5, 0, 0x6F, 3, 5 },
	{ "long-81",	 { 0x41, 0x81, 0x02, 0xAA, 0xBB },		 5, 0, 0x41, 2, 5 },
	{ "long-81-0",	 { 0x41, 0x81, 0x00 },				 3, 0, 0x41, 0, 3 },
	{ "long-82",	 { 0x41, 0x82, 0x00, 0x03, 1, 2, 3 },		 7, 0, 0x41, 3, 7 },
	{ "long-83",	 { 0x41, 0x83, 0x00, 0x00, 0x01, 0xAA },	 6, 0, 0x41, 1, 6 },
	{ "tag2",	 { 0x5F, 0x20, 0x01, 0xAA },			 4, 0, 0x5F20, 1, 4 },
	{ "tag2-9f7f",	 { 0x9F, 0x7F, 0x00 },				 3, 0, 0x9F7F, 0, 3 },
	{ "tag2-1f",	 { 0x1F, 0x01, 0x00 },				 3, 0, 0x1F01, 0, 3 },
	{ "tag3",	 { 0x5F, 0x81, 0x01, 0x00 },			 4, 0, 0x5F8101, 0, 4 },
	{ "tag3-ff",	 { 0xDF, 0xFF, 0x7F, 0x81, 0x01, 0xEE },	 6, 0, 0xDFFF7F, 1, 6 },
	/* truncated */
	{ "empty",	 { 0 },						 0, ML_ERR_SHORT, 0, 0, 0 },
	{ "no-len",	 { 0x41 },					 1, ML_ERR_SHORT, 0, 0, 0 },
	{ "tag2-cut",	 { 0x5F },					 1, ML_ERR_SHORT, 0, 0, 0 },
	{ "tag3-cut",	 { 0x5F, 0x81 },				 2, ML_ERR_SHORT, 0, 0, 0 },
	{ "len81-cut",	 { 0x41, 0x81 },				 2, ML_ERR_SHORT, 0, 0, 0 },
	{ "len82-cut",	 { 0x41, 0x82, 0x01 },				 3, ML_ERR_SHORT, 0, 0, 0 },
	{ "len83-cut",	 { 0x41, 0x83, 0x00, 0x01 },			 4, ML_ERR_SHORT, 0, 0, 0 },
	{ "value-cut",	 { 0x41, 0x03, 0xAA, 0xBB },			 4, ML_ERR_SHORT, 0, 0, 0 },
	{ "value81-cut", { 0x41, 0x81, 0x80, 0xAA },			 4, ML_ERR_SHORT, 0, 0, 0 },
	{ "value83-huge", { 0x41, 0x83, 0xFF, 0xFF, 0xFF, 0xAA },	 6, ML_ERR_SHORT, 0, 0, 0 },
	/* malformed */
	{ "indefinite",	 { 0x41, 0x80, 0xAA, 0x00, 0x00 },		 5, ML_ERR_FORMAT, 0, 0, 0 },
	{ "len-84",	 { 0x41, 0x84, 0x00, 0x00, 0x00, 0x01, 0xAA },	 7, ML_ERR_FORMAT, 0, 0, 0 },
	{ "len-85",	 { 0x41, 0x85, 0, 0, 0, 0, 1, 0xAA },		 8, ML_ERR_FORMAT, 0, 0, 0 },
	{ "len-ff",	 { 0x41, 0xFF },				 2, ML_ERR_FORMAT, 0, 0, 0 },
	{ "len-84-cut",	 { 0x41, 0x84 },				 2, ML_ERR_FORMAT, 0, 0, 0 },
	{ "tag-00",	 { 0x00, 0x01, 0xAA },				 3, ML_ERR_FORMAT, 0, 0, 0 },
	{ "tag-00-pad",	 { 0x00 },					 1, ML_ERR_FORMAT, 0, 0, 0 },
	{ "tag-ff",	 { 0xFF, 0x01, 0xAA },				 3, ML_ERR_FORMAT, 0, 0, 0 },
	{ "tag4",	 { 0x5F, 0x81, 0x81, 0x01, 0x00 },		 5, ML_ERR_FORMAT, 0, 0, 0 },
	{ "tag4-cut",	 { 0x5F, 0x81, 0x81 },				 3, ML_ERR_FORMAT, 0, 0, 0 },
	{ "tag5",	 { 0xDF, 0xFF, 0xFF, 0xFF, 0x01, 0x00 },	 6, ML_ERR_FORMAT, 0, 0, 0 },
};

START_TEST(tlv_vectors)
{
	const struct tlv_vec *v = &tlv_vecs[_i];
	struct ml_rd rd = ML_RD_INIT(v->raw, v->len), val = ML_RD_INIT(NULL, 0);
	uint32_t tag = 0x12345678;
	int r;

	r = ml_tlv_next(&rd, &tag, &val);
	ck_assert_msg(r == v->want_r, "%s: got %s want %s", v->name,
	    ml_errname(r), ml_errname(v->want_r));
	if (v->want_r == 0) {
		ck_assert_uint_eq(tag, v->want_tag);
		ck_assert_uint_eq(val.len, v->want_vlen);
		ck_assert_uint_eq(val.off, 0);
		ck_assert_ptr_eq(val.p, v->raw + v->want_consumed - v->want_vlen);
		ck_assert_uint_eq(rd.off, v->want_consumed);
	} else {
		ck_assert_uint_eq(rd.off, 0);
		ck_assert_uint_eq(tag, 0x12345678);
		ck_assert_ptr_null(val.p);
	}
}
END_TEST

/* Valid TLVs, some generated with long values. */
static uint8_t *
make_tlv(uint32_t tag, size_t vlen, size_t *ret_len)
{
	struct ml_wr w = ml_wr_dyn(vlen + 16);
	uint8_t *v = malloc(vlen ? vlen : 1);
	size_t i;

	ck_assert_ptr_nonnull(v);
	for (i = 0; i < vlen; i++) {
		v[i] = (uint8_t)(i * 7 + 1);
	}
	ck_assert_r(ml_tlv_put(&w, tag, v, vlen), 0);
	free(v);
	*ret_len = w.len;
	return w.p;	/* ownership to the caller (free) */
}

static void
check_prefixes(const uint8_t *tlv, size_t len, size_t stride)
{
	uint8_t *buf = malloc(len + 3);
	struct ml_rd rd, val, val0;
	uint32_t tag;
	size_t pre, k;

	ck_assert_ptr_nonnull(buf);
	for (pre = 0; pre <= 3; pre += 3) {
		memset(buf, 0x41, pre);
		memcpy(buf + pre, tlv, len);
		for (k = 0; k < len; k = (k < 8 || len - k < 8) ? k + 1 : k + stride) {
			rd = ML_RD_INIT(buf, pre + k);
			rd.off = pre;
			tag = 0xA5A5A5A5;
			memset(&val, 0xEE, sizeof(val));
			val0 = val;
			ck_assert_msg(ml_tlv_next(&rd, &tag, &val) == ML_ERR_SHORT,
			    "prefix %zu of %zu not SHORT", k, len);
			ck_assert_uint_eq(rd.off, pre);
			ck_assert_uint_eq(rd.len, pre + k);
			ck_assert_uint_eq(tag, 0xA5A5A5A5);
			ck_assert(memcmp(&val, &val0, sizeof(val)) == 0);
		}
		rd = ML_RD_INIT(buf, pre + len);
		rd.off = pre;
		ck_assert_r(ml_tlv_next(&rd, &tag, &val), 0);
		ck_assert_r(ml_rd_end(&rd), 0);
	}
	free(buf);
}

START_TEST(tlv_every_prefix_short)
{
	static const uint32_t tags[] = { 0x41, 0x5F20, 0x9F8101 };
	static const size_t lens[] = { 0, 1, 127, 128, 255, 256, 65535, 65536 };
	const struct tlv_vec *v;
	uint8_t *t;
	size_t i, j, n;

	for (i = 0; i < ML_NELEM(tlv_vecs); i++) {
		v = &tlv_vecs[i];
		if (v->want_r == 0) {
			check_prefixes(v->raw, v->want_consumed, 1);
		}
	}
	for (i = 0; i < ML_NELEM(tags); i++) {
		for (j = 0; j < ML_NELEM(lens); j++) {
			t = make_tlv(tags[i], lens[j], &n);
			check_prefixes(t, n, lens[j] > 1000 ? 997 : 1);
			free(t);
		}
	}
}
END_TEST

/* put then next: the tag and value come back, in the shortest length form. */
START_TEST(tlv_put_next_roundtrip)
{
	static const uint32_t tags[] = { 0x01, 0x41, 0x6F, 0xC0, 0xFE, 0x1F20,
	    0x5F20, 0x7F49, 0x9F7F, 0x5F8101, 0xDFFF7F };
	static const size_t lens[] = { 0, 1, 126, 127, 128, 129, 200, 255, 256,
	    257, 65534, 65535, 65536, 65537, 200000 };
	struct ml_wr w;
	struct ml_rd rd, val;
	uint8_t *src;
	uint32_t tag;
	size_t i, j, tl, ll, maxn = 200000;

	ck_assert_ptr_nonnull(src = malloc(maxn));
	for (i = 0; i < maxn; i++) {
		src[i] = (uint8_t)(i ^ (i >> 8));
	}
	for (i = 0; i < ML_NELEM(tags); i++) {
		tl = tags[i] > 0xffff ? 3 : tags[i] > 0xff ? 2 : 1;
		for (j = 0; j < ML_NELEM(lens); j++) {
			ll = lens[j] < 0x80 ? 1 : lens[j] <= 0xff ? 2 :
			    lens[j] <= 0xffff ? 3 : 4;
			w = ml_wr_dyn(maxn + 64);
			ck_assert_r(ml_tlv_put(&w, tags[i], src, lens[j]), 0);
			ck_assert_r(ml_tlv_put_u8(&w, 0x41, 0x99), 0);
			ck_assert_uint_eq(w.len, tl + ll + lens[j] + 3);
			if (ll > 1) {
				ck_assert_uint_eq(w.p[tl], 0x80 | (ll - 1));
			}
			rd = ML_RD_INIT(w.p, w.len);
			ck_assert_r(ml_tlv_next(&rd, &tag, &val), 0);
			ck_assert_uint_eq(tag, tags[i]);
			ck_assert_uint_eq(val.len, lens[j]);
			if (lens[j] > 0) {
				ck_assert_mem_eq(val.p, src, lens[j]);
			}
			ck_assert_r(ml_tlv_next(&rd, &tag, &val), 0);
			ck_assert_uint_eq(tag, 0x41);
			ck_assert_uint_eq(val.len, 1);
			ck_assert_uint_eq(val.p[0], 0x99);
			ck_assert_r(ml_rd_end(&rd), 0);
			ml_wr_free(&w);
		}
	}
	free(src);
}
END_TEST

START_TEST(tlv_put_ints_and_find)
{
	uint8_t buf[64];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	struct ml_rd rd, v;
	uint16_t u16;
	uint32_t u32;
	uint8_t u8;

	ck_assert_r(ml_tlv_put_u8(&w, 0xC0, 0x7E), 0);
	ck_assert_r(ml_tlv_put_u16(&w, 0xC1, 0xBEEF), 0);
	ck_assert_r(ml_tlv_put_u32(&w, 0x5F20, 0xDEADBEEF), 0);
	ck_assert_r(ml_tlv_put(&w, 0xC2, NULL, 0), 0);
	ck_assert_uint_eq(w.len, 3 + 4 + 7 + 2);
	ck_assert_mem_eq(buf, "\xC0\x01\x7E\xC1\x02\xBE\xEF\x5F\x20\x04\xDE\xAD"
	    "\xBE\xEF\xC2\x00", 16);

	rd = ML_RD_INIT(buf, w.len);
	ck_assert_r(ml_tlv_find(&rd, 0x5F20, &v), 0);
	ck_assert_r(ml_rd_u32be(&v, &u32), 0);
	ck_assert_uint_eq(u32, 0xDEADBEEF);
	ck_assert_r(ml_tlv_find(&rd, 0xC1, &v), 0);
	ck_assert_r(ml_rd_u16be(&v, &u16), 0);
	ck_assert_uint_eq(u16, 0xBEEF);
	ck_assert_r(ml_tlv_find(&rd, 0xC0, &v), 0);
	ck_assert_r(ml_rd_u8(&v, &u8), 0);
	ck_assert_uint_eq(u8, 0x7E);
	ck_assert_r(ml_tlv_find(&rd, 0xC2, &v), 0);
	ck_assert_uint_eq(ml_rd_left(&v), 0);
	ck_assert_r(ml_tlv_find(&rd, 0xC3, &v), ML_ERR_NOT_FOUND);
	ck_assert_r(ml_tlv_find(&rd, 0x5F, &v), ML_ERR_NOT_FOUND);
	ck_assert_uint_eq(rd.off, 0);	/* find never advances */

	/* A parse error before the tag is found is reported as such. */
	rd = ML_RD_INIT(buf, w.len - 1);	/* last TLV truncated */
	ck_assert_r(ml_tlv_find(&rd, 0xC3, &v), ML_ERR_SHORT);
	ck_assert_r(ml_tlv_find(&rd, 0xC0, &v), 0);	/* found before the cut */
	buf[4] = 0x80;	/* C1's length: indefinite */
	rd = ML_RD_INIT(buf, w.len);
	ck_assert_r(ml_tlv_find(&rd, 0xC2, &v), ML_ERR_FORMAT);
}
END_TEST

/* Bad tags and lengths are refused, and the writer is left as it was. */
START_TEST(tlv_put_refuses)
{
	static const uint32_t bad_tags[] = {
		0x00, 0xFF, 0x1F, 0x3F, 0xDF,	/* 1 byte that announces more */
		0x0101, 0x4100, 0xC1C1,		/* 2 bytes, first not xxx11111 */
		0x5F80, 0x5FFF,			/* 2 bytes, last has bit 8 */
		0xFF20, 0x00,
		0x5F2001,			/* 3 bytes, middle lacks bit 8 */
		0x5F8180,			/* 3 bytes, last has bit 8 */
		0x418101,			/* 3 bytes, first not xxx11111 */
		0x01000000, 0xFFFFFFFF,		/* more than 3 bytes */
	};
	uint8_t buf[16], big[16] = { 0 };
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	size_t i, mark;

	ck_assert_r(ml_tlv_put_u8(&w, 0x41, 1), 0);
	for (i = 0; i < ML_NELEM(bad_tags); i++) {
		ck_assert_msg(ml_tlv_put(&w, bad_tags[i], big, 1) == ML_ERR_ARG,
		    "tag %x accepted", bad_tags[i]);
		ck_assert_msg(ml_tlv_open(&w, bad_tags[i], &mark) == ML_ERR_ARG,
		    "tag %x accepted by open", bad_tags[i]);
		ck_assert_uint_eq(w.len, 3);
	}
	/* Over the 0x83 form: refused before a byte of value is touched. */
	ck_assert_r(ml_tlv_put(&w, 0x41, big, ML_TLV_MAX_LEN + 1), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 3);
	/* Out of room part way: the partial TLV is taken back. */
	ck_assert_r(ml_tlv_put(&w, 0x5F20, big, 11), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 3);
	ck_assert_r(ml_tlv_put(&w, 0x5F20, big, 10), 0);	/* 3+2+1+10 = 16 */
	ck_assert_uint_eq(w.len, 16);
	ck_assert_r(ml_tlv_put(&w, 0x41, NULL, 0), ML_ERR_TOO_LARGE);
	ck_assert_r(ml_tlv_open(&w, 0x41, &mark), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 16);
}
END_TEST

/*
 * open/close: the result is byte-for-byte what ml_tlv_put gives for the
 * same value, across each length-form boundary; nesting works.
 */
START_TEST(tlv_open_close)
{
	static const size_t lens[] = { 0, 1, 126, 127, 128, 254, 255, 256, 257,
	    65534, 65535, 65536, 65537, 100000 };
	static const uint32_t tags[] = { 0x6F, 0x7F21, 0x7F8101 };
	struct ml_wr w, ref;
	struct ml_rd rd, val, in;
	uint8_t *src;
	uint32_t tag;
	size_t i, j, mark, mark2;

	ck_assert_ptr_nonnull(src = malloc(100000));
	for (i = 0; i < 100000; i++) {
		src[i] = (uint8_t)(i * 13);
	}
	for (i = 0; i < ML_NELEM(tags); i++) {
		for (j = 0; j < ML_NELEM(lens); j++) {
			w = ml_wr_dyn(200000);
			ref = ml_wr_dyn(200000);
			ck_assert_r(ml_wr_u8(&w, 0xAB), 0);	/* mark != 0 */
			ck_assert_r(ml_wr_u8(&ref, 0xAB), 0);
			ck_assert_r(ml_tlv_open(&w, tags[i], &mark), 0);
			ck_assert_uint_eq(mark, 1);
			ck_assert_r(ml_wr_bytes(&w, src, lens[j]), 0);
			ck_assert_r(ml_tlv_close(&w, mark), 0);
			ck_assert_r(ml_tlv_put(&ref, tags[i], src, lens[j]), 0);
			ck_assert_uint_eq(w.len, ref.len);
			ck_assert_mem_eq(w.p, ref.p, ref.len);
			ml_wr_free(&w);
			ml_wr_free(&ref);
		}
	}

	/* Nested: 6F { 84 [5], A5 { 88 [300] }, 41 [0] } */
	w = ml_wr_dyn(4096);
	ck_assert_r(ml_tlv_open(&w, 0x6F, &mark), 0);
	ck_assert_r(ml_tlv_put(&w, 0x84, src, 5), 0);
	ck_assert_r(ml_tlv_open(&w, 0xA5, &mark2), 0);
	ck_assert_r(ml_tlv_put(&w, 0x88, src, 300), 0);
	ck_assert_r(ml_tlv_close(&w, mark2), 0);
	ck_assert_r(ml_tlv_put(&w, 0x41, NULL, 0), 0);
	ck_assert_r(ml_tlv_close(&w, mark), 0);
	ck_assert_uint_eq(w.len, 4 + (2 + 5) + (4 + (4 + 300)) + 2);
	rd = ML_RD_INIT(w.p, w.len);
	ck_assert_r(ml_tlv_next(&rd, &tag, &val), 0);
	ck_assert_uint_eq(tag, 0x6F);
	ck_assert_r(ml_rd_end(&rd), 0);
	ck_assert_r(ml_tlv_next(&val, &tag, &in), 0);
	ck_assert_uint_eq(tag, 0x84);
	ck_assert_mem_eq(in.p, src, 5);
	ck_assert_r(ml_tlv_next(&val, &tag, &in), 0);
	ck_assert_uint_eq(tag, 0xA5);
	ck_assert_r(ml_tlv_next(&in, &tag, &rd), 0);
	ck_assert_uint_eq(tag, 0x88);
	ck_assert_uint_eq(rd.len, 300);
	ck_assert_mem_eq(rd.p, src, 300);
	ck_assert_r(ml_rd_end(&in), 0);
	ck_assert_r(ml_tlv_next(&val, &tag, &in), 0);
	ck_assert_uint_eq(tag, 0x41);
	ck_assert_r(ml_rd_end(&val), 0);
	ml_wr_free(&w);

	/* A fixed writer with no room for the 4-byte slot refuses to open. */
	{
		uint8_t b[4];
		struct ml_wr f = ML_WR_FIXED(b, sizeof(b));

		ck_assert_r(ml_tlv_open(&f, 0x6F, &mark), ML_ERR_TOO_LARGE);
		ck_assert_uint_eq(f.len, 0);
	}
	free(src);
}
END_TEST

/* A walk over random bytes never reads out of bounds and never loops. */
START_TEST(tlv_random_walk)
{
	uint8_t buf[64];
	struct ml_rd rd, v;
	uint32_t tag, x = 12345;
	size_t i, n, steps;
	int r;

	for (i = 0; i < 200000; i++) {
		n = (x >> 3) % sizeof(buf);
		for (size_t k = 0; k < n; k++) {
			x = x * 1103515245u + 12345u;
			buf[k] = (uint8_t)(x >> 16);
			if ((x >> 28) < 4) {
				buf[k] = (uint8_t)((x >> 24) & 3);	/* small lengths */
			}
		}
		rd = ML_RD_INIT(buf, n);
		for (steps = 0; ml_rd_left(&rd) > 0; steps++) {
			size_t before = rd.off;

			r = ml_tlv_next(&rd, &tag, &v);
			ck_assert(ml_rd_valid(&rd));
			if (r != 0) {
				ck_assert(r == ML_ERR_SHORT || r == ML_ERR_FORMAT);
				ck_assert_uint_eq(rd.off, before);
				break;
			}
			ck_assert_uint_gt(rd.off, before);
			ck_assert(v.p >= buf && v.p + v.len <= buf + n);
			ck_assert_ptr_eq(v.p + v.len, buf + rd.off);
		}
	}
}
END_TEST

static Suite *
tlv_suite(void)
{
	Suite *s = suite_create("tlv");
	TCase *tc;

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, tlv_vectors, 0, ML_NELEM(tlv_vecs));
	tcase_add_test(tc, tlv_every_prefix_short);
	tcase_add_test(tc, tlv_random_walk);
	suite_add_tcase(s, tc);

	tc = tcase_create("build");
	tcase_add_test(tc, tlv_put_next_roundtrip);
	tcase_add_test(tc, tlv_put_ints_and_find);
	tcase_add_test(tc, tlv_put_refuses);
	tcase_add_test(tc, tlv_open_close);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(tlv_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
