/*
 * Unit tests for common/ml_rd.c and common/ml_wr.c: the bounded reader
 * and writer that every parser of untrusted bytes goes through.
 *
 * The central property (s2n's stuffer harness, checked here dynamically):
 * every reader, on every strict prefix of a valid input, fails with
 * ML_ERR_SHORT and leaves the cursor and its outputs exactly as they were.
 * A seeded random-operation loop (after OpenSSH's test_sshbuf_fuzz.c) runs
 * the reader and writer against a plain byte-array model and checks
 * ml_rd_valid() and the writer invariants after every step.
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
#include "mltest.h"

/* ---- one table of readers ------------------------------------------ */

enum rd_op {
	OP_U8, OP_PEEK_U8, OP_U16, OP_U32, OP_U64, OP_BYTES, OP_COPY, OP_SUB,
	OP_LV8, OP_LV16, OP_NOPS
};

static const struct rd_case {
	const char	*name;
	enum rd_op	 op;
	uint8_t		 valid[12];	/* a minimal valid input */
	size_t		 len;
	size_t		 consumed;	/* cursor advance on success */
} rd_cases[] = {
	{ "u8",		OP_U8,	    { 0xA5 },					1, 1 },
	{ "peek_u8",	OP_PEEK_U8, { 0x5A },					1, 0 },
	{ "u16be",	OP_U16,	    { 0x12, 0x34 },				2, 2 },
	{ "u32be",	OP_U32,	    { 0x12, 0x34, 0x56, 0x78 },			4, 4 },
	{ "u64be",	OP_U64,	    { 1, 2, 3, 4, 5, 6, 7, 8 },			8, 8 },
	{ "bytes5",	OP_BYTES,   { 'h', 'e', 'l', 'l', 'o' },		5, 5 },
	{ "copy5",	OP_COPY,    { 'w', 'o', 'r', 'l', 'd' },		5, 5 },
	{ "sub5",	OP_SUB,	    { 1, 2, 3, 4, 5 },				5, 5 },
	{ "lv8",	OP_LV8,	    { 0x03, 'a', 'b', 'c' },			4, 4 },
	{ "lv8-empty",	OP_LV8,	    { 0x00 },					1, 1 },
	{ "lv16",	OP_LV16,    { 0x00, 0x04, 'a', 'b', 'c', 'd' },		6, 6 },
	{ "lv16-empty",	OP_LV16,    { 0x00, 0x00 },				2, 2 },
};

/*
 * Outputs of one reader call, all preset to a sentinel so that a failing
 * call can be checked for leaving them alone.
 */
struct rd_out {
	uint8_t		 u8;
	uint16_t	 u16;
	uint32_t	 u32;
	uint64_t	 u64;
	const uint8_t	*ptr;
	uint8_t		 copy[8];
	struct ml_rd	 sub;
};

static void
out_sentinel(struct rd_out *o)
{
	memset(o, 0xEE, sizeof(*o));
	o->ptr = (const uint8_t *)(uintptr_t)0xDEADBEEF;
}

static int
rd_run(enum rd_op op, struct ml_rd *rd, struct rd_out *o)
{
	switch (op) {
	case OP_U8:
		return ml_rd_u8(rd, &o->u8);
	case OP_PEEK_U8:
		return ml_rd_peek_u8(rd, &o->u8);
	case OP_U16:
		return ml_rd_u16be(rd, &o->u16);
	case OP_U32:
		return ml_rd_u32be(rd, &o->u32);
	case OP_U64:
		return ml_rd_u64be(rd, &o->u64);
	case OP_BYTES:
		return ml_rd_bytes(rd, 5, &o->ptr);
	case OP_COPY:
		return ml_rd_copy(rd, o->copy, 5);
	case OP_SUB:
		return ml_rd_sub(rd, 5, &o->sub);
	case OP_LV8:
		return ml_rd_lv8(rd, 255, &o->sub);
	case OP_LV16:
		return ml_rd_lv16(rd, 65535, &o->sub);
	case OP_NOPS:
		break;
	}
	return ML_ERR_INTERNAL;
}

/*
 * Every strict prefix, read from several starting offsets (the cursor is
 * not at zero in real parsers), fails with ML_ERR_SHORT, leaves rd and the
 * outputs as they were; the full input succeeds and advances exactly.
 */
START_TEST(rd_every_strict_prefix_is_short)
{
	const struct rd_case *v = &rd_cases[_i];
	uint8_t buf[32];
	struct rd_out o, o0;
	struct ml_rd rd, save;
	size_t pre, k;

	for (pre = 0; pre < 4; pre++) {
		memset(buf, 0xC3, sizeof(buf));
		memcpy(buf + pre, v->valid, v->len);
		for (k = 0; k < v->len; k++) {
			rd = ML_RD_INIT(buf, pre + k);
			rd.off = pre;
			save = rd;
			out_sentinel(&o);
			memcpy(&o0, &o, sizeof(o0));
			ck_assert_msg(rd_run(v->op, &rd, &o) == ML_ERR_SHORT,
			    "%s: prefix %zu at %zu not SHORT", v->name, k, pre);
			ck_assert_msg(rd.p == save.p && rd.len == save.len &&
			    rd.off == save.off, "%s: cursor moved on prefix %zu",
			    v->name, k);
			ck_assert_msg(memcmp(&o, &o0, sizeof(o)) == 0,
			    "%s: output touched on failure (prefix %zu)",
			    v->name, k);
			ck_assert(ml_rd_valid(&rd));
		}
		/* The whole input, and the whole input followed by more. */
		for (k = v->len; k <= v->len + 3; k++) {
			rd = ML_RD_INIT(buf, pre + k);
			rd.off = pre;
			out_sentinel(&o);
			ck_assert_r(rd_run(v->op, &rd, &o), 0);
			ck_assert_uint_eq(rd.off, pre + v->consumed);
			ck_assert(ml_rd_valid(&rd));
		}
	}
}
END_TEST

/* The values read are the big-endian values of the bytes. */
START_TEST(rd_values)
{
	static const uint8_t b[] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD,
	    0xEF, 0xFE, 0xDC, 0xBA, 0x98, 0x76, 0x54, 0x32, 0x10, 0xFF };
	struct ml_rd rd = ML_RD_INIT(b, sizeof(b)), sub;
	const uint8_t *p;
	uint8_t u8, cp[3];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;

	ck_assert_r(ml_rd_peek_u8(&rd, &u8), 0);
	ck_assert_uint_eq(u8, 0x01);
	ck_assert_uint_eq(rd.off, 0);
	ck_assert_r(ml_rd_u8(&rd, &u8), 0);
	ck_assert_uint_eq(u8, 0x01);
	ck_assert_r(ml_rd_u16be(&rd, &u16), 0);
	ck_assert_uint_eq(u16, 0x2345);
	ck_assert_r(ml_rd_u32be(&rd, &u32), 0);
	ck_assert_uint_eq(u32, 0x6789ABCDu);
	ck_assert_r(ml_rd_u64be(&rd, &u64), 0);
	ck_assert(u64 == 0xEFFEDCBA98765432ull);
	ck_assert_uint_eq(ml_rd_left(&rd), 2);
	ck_assert_ptr_eq(ml_rd_ptr(&rd), b + 15);
	ck_assert_r(ml_rd_end(&rd), ML_ERR_TRAILING);
	ck_assert_r(ml_rd_bytes(&rd, 1, &p), 0);
	ck_assert_ptr_eq(p, b + 15);
	ck_assert_r(ml_rd_bytes(&rd, 1, NULL), 0);	/* skip */
	ck_assert_r(ml_rd_end(&rd), 0);
	ck_assert_r(ml_rd_bytes(&rd, 0, &p), 0);	/* zero bytes at the end */
	ck_assert_ptr_eq(p, b + sizeof(b));
	ck_assert_r(ml_rd_sub(&rd, 0, &sub), 0);
	ck_assert_uint_eq(sub.len, 0);
	ck_assert_r(ml_rd_end(&sub), 0);

	rd = ML_RD_INIT(b, sizeof(b));
	ck_assert_r(ml_rd_copy(&rd, cp, 3), 0);
	ck_assert_mem_eq(cp, b, 3);
	ck_assert_r(ml_rd_copy(&rd, NULL, 0), 0);
	ck_assert_uint_eq(rd.off, 3);
}
END_TEST

/* Lengths that would wrap "off + n" must not: the check is n > len - off. */
START_TEST(rd_no_wrap)
{
	static const uint8_t b[8] = { 0 };
	struct ml_rd rd = ML_RD_INIT(b, sizeof(b)), sub = ML_RD_INIT(b, 1);
	const uint8_t *p = NULL;
	size_t huge[] = { SIZE_MAX, SIZE_MAX - 1, SIZE_MAX - 4, SIZE_MAX / 2 + 1,
	    9 };
	size_t i;

	rd.off = 4;
	for (i = 0; i < ML_NELEM(huge); i++) {
		ck_assert_r(ml_rd_bytes(&rd, huge[i], &p), ML_ERR_SHORT);
		ck_assert_r(ml_rd_bytes(&rd, huge[i], NULL), ML_ERR_SHORT);
		ck_assert_r(ml_rd_sub(&rd, huge[i], &sub), ML_ERR_SHORT);
		ck_assert_uint_eq(rd.off, 4);
		ck_assert_ptr_null(p);
		ck_assert_uint_eq(sub.len, 1);
	}
	ck_assert_r(ml_rd_bytes(&rd, 4, &p), 0);
	ck_assert_r(ml_rd_bytes(&rd, 1, &p), ML_ERR_SHORT);

	/* An empty reader over NULL is valid and reads nothing. */
	rd = ML_RD_INIT(NULL, 0);
	ck_assert(ml_rd_valid(&rd));
	ck_assert_r(ml_rd_end(&rd), 0);
	ck_assert_r(ml_rd_u8(&rd, &(uint8_t){ 0 }), ML_ERR_SHORT);
}
END_TEST

/* lv8/lv16: over the limit is ML_ERR_TOO_LARGE, cursor unchanged. */
START_TEST(rd_lv_limits)
{
	uint8_t b[300];
	struct ml_rd rd, sub = ML_RD_INIT(b, 7), sub0;
	size_t max;

	memset(b, 0x11, sizeof(b));
	b[0] = 10;
	for (max = 0; max < 20; max++) {
		rd = ML_RD_INIT(b, 20);
		sub0 = sub;
		if (max < 10) {
			ck_assert_r(ml_rd_lv8(&rd, max, &sub), ML_ERR_TOO_LARGE);
			ck_assert_uint_eq(rd.off, 0);
			ck_assert(memcmp(&sub, &sub0, sizeof(sub)) == 0);
		} else {
			ck_assert_r(ml_rd_lv8(&rd, max, &sub), 0);
			ck_assert_uint_eq(rd.off, 11);
			ck_assert_ptr_eq(sub.p, b + 1);
			ck_assert_uint_eq(sub.len, 10);
			ck_assert_uint_eq(sub.off, 0);
		}
	}
	/* Over the limit wins over truncation? No: TOO_LARGE is decided on the
	 * length alone, before the bytes are looked at. */
	rd = ML_RD_INIT(b, 5);
	ck_assert_r(ml_rd_lv8(&rd, 9, &sub), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(rd.off, 0);
	ck_assert_r(ml_rd_lv8(&rd, 10, &sub), ML_ERR_SHORT);
	ck_assert_uint_eq(rd.off, 0);

	/* lv16: 0x0100 = 256 bytes. */
	b[0] = 0x01;
	b[1] = 0x00;
	rd = ML_RD_INIT(b, sizeof(b));
	ck_assert_r(ml_rd_lv16(&rd, 255, &sub), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(rd.off, 0);
	ck_assert_r(ml_rd_lv16(&rd, 256, &sub), 0);
	ck_assert_uint_eq(rd.off, 258);
	ck_assert_uint_eq(sub.len, 256);
	rd = ML_RD_INIT(b, 257);
	ck_assert_r(ml_rd_lv16(&rd, 256, &sub), ML_ERR_SHORT);
	ck_assert_uint_eq(rd.off, 0);

	/* The largest encodable lengths. */
	b[0] = 0xFF;
	rd = ML_RD_INIT(b, 256);
	ck_assert_r(ml_rd_lv8(&rd, 255, &sub), 0);
	ck_assert_uint_eq(sub.len, 255);
	ck_assert_r(ml_rd_end(&rd), 0);
	b[1] = 0xFF;
	rd = ML_RD_INIT(b, sizeof(b));
	ck_assert_r(ml_rd_lv16(&rd, 65534, &sub), ML_ERR_TOO_LARGE);
	ck_assert_r(ml_rd_lv16(&rd, 65535, &sub), ML_ERR_SHORT);
	ck_assert_r(ml_rd_lv16(&rd, SIZE_MAX, &sub), ML_ERR_SHORT);
	ck_assert_uint_eq(rd.off, 0);
}
END_TEST

/* A nested parser over ml_rd_sub() cannot read past its own field. */
static int
parse_inner(struct ml_rd *in, uint32_t *ret)
{
	uint32_t v;
	int r;

	if ((r = ml_rd_u32be(in, &v)) != 0) {
		return r;
	}
	if ((r = ml_rd_end(in)) != 0) {
		return r;
	}
	*ret = v;
	return 0;
}

START_TEST(rd_sub_confines)
{
	/* lv8(3 bytes) then 5 more bytes the inner parser must not see */
	static const uint8_t b[] = { 0x03, 0xAA, 0xBB, 0xCC, 0xDD, 1, 2, 3, 4 };
	static const uint8_t b2[] = { 0x05, 1, 2, 3, 4, 5, 0x77 };
	struct ml_rd rd = ML_RD_INIT(b, sizeof(b)), in, in2;
	uint32_t v = 42;
	uint8_t u;

	ck_assert_r(ml_rd_lv8(&rd, 16, &in), 0);
	ck_assert_uint_eq(rd.off, 4);
	ck_assert_r(parse_inner(&in, &v), ML_ERR_SHORT);
	ck_assert_uint_eq(v, 42);
	ck_assert_uint_eq(in.off, 0);
	/* The child can consume exactly its bytes and no more. */
	ck_assert_r(ml_rd_bytes(&in, 3, NULL), 0);
	ck_assert_r(ml_rd_u8(&in, &u), ML_ERR_SHORT);
	ck_assert_r(ml_rd_peek_u8(&in, &u), ML_ERR_SHORT);
	ck_assert_r(ml_rd_end(&in), 0);
	/* The parent goes on after the field, unaffected by the child. */
	ck_assert_r(ml_rd_u8(&rd, &u), 0);
	ck_assert_uint_eq(u, 0xDD);

	/* A child with trailing bytes is caught by ml_rd_end. */
	rd = ML_RD_INIT(b2, sizeof(b2));
	ck_assert_r(ml_rd_lv8(&rd, 16, &in), 0);
	ck_assert_r(parse_inner(&in, &v), ML_ERR_TRAILING);
	ck_assert_r(ml_rd_u8(&rd, &u), 0);
	ck_assert_uint_eq(u, 0x77);
	ck_assert_r(ml_rd_end(&rd), 0);

	/* Sub of a sub: offsets are relative to the child. */
	rd = ML_RD_INIT(b, sizeof(b));
	ck_assert_r(ml_rd_sub(&rd, 6, &in), 0);
	ck_assert_r(ml_rd_u8(&in, &u), 0);
	ck_assert_r(ml_rd_sub(&in, 2, &in2), 0);
	ck_assert_ptr_eq(in2.p, b + 1);
	ck_assert_r(ml_rd_u16be(&in2, &(uint16_t){ 0 }), 0);
	ck_assert_r(ml_rd_u8(&in2, &u), ML_ERR_SHORT);
	ck_assert_uint_eq(ml_rd_left(&in), 3);
}
END_TEST

START_TEST(rd_end)
{
	static const uint8_t b[3] = { 1, 2, 3 };
	struct ml_rd rd = ML_RD_INIT(b, sizeof(b));
	size_t i;

	for (i = 0; i < 3; i++) {
		ck_assert_r(ml_rd_end(&rd), ML_ERR_TRAILING);
		ck_assert_uint_eq(rd.off, i);	/* end never moves */
		ck_assert_r(ml_rd_bytes(&rd, 1, NULL), 0);
	}
	ck_assert_r(ml_rd_end(&rd), 0);
	ck_assert_uint_eq(rd.off, 3);
}
END_TEST

/* ---- writer ------------------------------------------------------- */

/* Try one writer op; on failure the writer must be bit-for-bit unchanged. */
static int
wr_try(struct ml_wr *w, int op, const uint8_t *src, size_t n)
{
	struct ml_wr save = *w;
	int r = ML_ERR_INTERNAL;

	switch (op) {
	case 0:
		r = ml_wr_u8(w, src[0]);
		break;
	case 1:
		r = ml_wr_u16be(w, (uint16_t)(src[0] << 8 | src[1]));
		break;
	case 2:
		r = ml_wr_u32be(w, (uint32_t)src[0] << 24 | (uint32_t)src[1] << 16 |
		    (uint32_t)src[2] << 8 | src[3]);
		break;
	case 3:
		r = ml_wr_u64be(w, 0x0102030405060708ull);
		break;
	case 4:
		r = ml_wr_bytes(w, src, n);
		break;
	case 5:
		r = ml_wr_lv8(w, src, n);
		break;
	case 6:
		r = ml_wr_lv16(w, src, n);
		break;
	case 7:
		r = ml_wr_reserve(w, n, NULL);
		break;
	}
	if (r != 0) {
		/* (field by field: the padding of struct ml_wr is undefined) */
		ck_assert_msg(save.p == w->p && save.len == w->len &&
		    save.cap == w->cap && save.max == w->max && save.dyn == w->dyn,
		    "op %d n %zu changed the writer on failure", op, n);
	}
	return r;
}

/* Bytes each op appends for n (the ops above). */
static size_t
wr_size(int op, size_t n)
{
	static const size_t fixed[] = { 1, 2, 4, 8 };

	if (op < 4) {
		return fixed[op];
	}
	return op == 5 ? n + 1 : op == 6 ? n + 2 : n;
}

START_TEST(wr_fixed_overflow)
{
	uint8_t mem[16 + 8], src[300];
	struct ml_wr w;
	size_t i, cap, n;
	int op;

	for (i = 0; i < sizeof(src); i++) {
		src[i] = (uint8_t)i;
	}
	for (cap = 0; cap <= 16; cap++) {
		for (op = 0; op < 8; op++) {
			for (n = 0; n <= 12; n++) {
				memset(mem, 0xA5, sizeof(mem));
				w = ML_WR_FIXED(mem, cap);
				for (i = 0; ; i++) {
					if (wr_try(&w, op, src, n) != 0) {
						break;
					}
					ck_assert_uint_le(w.len, cap);
					if (wr_size(op, n) == 0 && i > 3) {
						break;
					}
				}
				if (wr_size(op, n) > 0) {
					ck_assert_r(wr_try(&w, op, src, n),
					    ML_ERR_TOO_LARGE);
					/* Filled as far as whole items go. */
					ck_assert_uint_eq(w.len, cap -
					    cap % wr_size(op, n));
				}
				for (i = cap; i < sizeof(mem); i++) {
					ck_assert_msg(mem[i] == 0xA5,
					    "write past cap %zu (op %d)", cap, op);
				}
			}
		}
	}
	/* Limits of the length prefixes themselves. */
	w = ML_WR_FIXED(mem, sizeof(mem));
	ck_assert_r(wr_try(&w, 5, src, 256), ML_ERR_TOO_LARGE);
	ck_assert_r(wr_try(&w, 6, src, 65536), ML_ERR_TOO_LARGE);
	ck_assert_r(wr_try(&w, 7, src, SIZE_MAX), ML_ERR_TOO_LARGE);
	ck_assert_r(wr_try(&w, 4, src, SIZE_MAX - 1), ML_ERR_TOO_LARGE);
	ck_assert_r(ml_wr_u32be(&w, 0xA1B2C3D4), 0);
	ck_assert_r(wr_try(&w, 7, src, SIZE_MAX - 3), ML_ERR_TOO_LARGE);
	ck_assert_uint_eq(w.len, 4);
	ck_assert_mem_eq(mem, "\xA1\xB2\xC3\xD4", 4);
	ck_assert_uint_eq(ml_wr_room(&w), sizeof(mem) - 4);
	ml_wr_clear(&w);
	ck_assert_uint_eq(w.len, 0);
	ck_assert_mem_eq(mem, "\0\0\0\0", 4);	/* cleared bytes are wiped */
}
END_TEST

START_TEST(wr_dyn_respects_max)
{
	static const size_t maxes[] = { 0, 1, 7, 63, 64, 65, 100, 128, 1000,
	    4097 };
	uint8_t src[64];
	struct ml_wr w;
	size_t m, total, step;

	memset(src, 0x3C, sizeof(src));
	for (m = 0; m < ML_NELEM(maxes); m++) {
		for (step = 1; step <= 17; step += 8) {
			w = ml_wr_dyn(maxes[m]);
			total = 0;
			while (total + step <= maxes[m]) {
				ck_assert_r(wr_try(&w, 4, src, step), 0);
				total += step;
				ck_assert_uint_eq(w.len, total);
				ck_assert_uint_le(w.len, w.cap);
				ck_assert_uint_le(w.len, w.max);
			}
			ck_assert_r(wr_try(&w, 4, src, step), ML_ERR_TOO_LARGE);
			ck_assert_r(wr_try(&w, 4, src, maxes[m] - total + 1),
			    ML_ERR_TOO_LARGE);
			ck_assert_r(wr_try(&w, 4, src, maxes[m] - total), 0);
			ck_assert_uint_eq(w.len, maxes[m]);
			ck_assert_uint_eq(ml_wr_room(&w), 0);
			ck_assert_r(wr_try(&w, 0, src, 1), ML_ERR_TOO_LARGE);
			ml_wr_free(&w);
			ck_assert_ptr_null(w.p);
			ck_assert_uint_eq(w.len, 0);
			ml_wr_free(&w);		/* twice is fine */
		}
	}
	ml_wr_free(NULL);

	/* Contents survive growth. */
	w = ml_wr_dyn(1 << 20);
	for (m = 0; m < 5000; m++) {
		ck_assert_r(ml_wr_u16be(&w, (uint16_t)m), 0);
	}
	for (m = 0; m < 5000; m++) {
		ck_assert_uint_eq((w.p[2 * m] << 8) | w.p[2 * m + 1], m);
	}
	ml_wr_free(&w);
}
END_TEST

/*
 * Seeded random operations on a writer and a reader over its contents,
 * against a plain model.  After every step: ml_rd_valid(), the writer's
 * invariants, and agreement with the model.
 */
static uint64_t rng_state;

static uint32_t
rng(void)
{
	/* xorshift64*: deterministic across platforms */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545F4914F6CDD1Dull) >> 32);
}

static size_t
rnd_len(void)
{
	switch (rng() % 8) {
	case 0:
		return 0;
	case 1:
		return rng() % 4;
	case 2:
		return 255 + rng() % 3;
	case 3:
		return 65534 + rng() % 4;
	default:
		return rng() % 40;
	}
}

START_TEST(rd_wr_random_ops)
{
	enum { MAX = 70000, STEPS = 20000 };
	static uint8_t model[MAX], src[MAX], fixed[MAX];
	struct ml_wr w;
	struct ml_rd rd, save, sub;
	size_t mlen = 0, roff = 0, n, need, i;
	uint64_t u64;
	uint32_t u32;
	uint16_t u16;
	uint8_t u8;
	const uint8_t *p;
	int step, op, r;

	rng_state = 0x9E3779B97F4A7C15ull ^ (uint64_t)_i;
	for (i = 0; i < sizeof(src); i++) {
		src[i] = (uint8_t)rng();
	}
	/* Even rounds: a growable writer; odd: a fixed one over fixed[]. */
	w = (_i % 2 == 0) ? ml_wr_dyn(MAX) : ML_WR_FIXED(fixed, MAX);
	for (step = 0; step < STEPS; step++) {
		op = (int)(rng() % 16);
		n = rnd_len();
		if (op < 8) {
			need = wr_size(op, n);
			r = wr_try(&w, op, src, n);
			if ((op == 5 && n > 0xff) || (op == 6 && n > 0xffff) ||
			    need > MAX - mlen) {
				ck_assert_r(r, ML_ERR_TOO_LARGE);
			} else {
				ck_assert_r(r, 0);
				ck_assert(w.len == mlen + need);
				if (op == 7 && need > 0) {
					/* reserve leaves its bytes unspecified */
					memset(w.p + mlen, 0x5C, need);
				}
				if (need > 0) {
					memcpy(model + mlen, w.p + mlen, need);
				}
				if (op != 7) {
					if (op == 4 && n > 0) {
						ck_assert_mem_eq(w.p + mlen, src, n);
					}
				}
				mlen += need;
			}
			ck_assert_uint_eq(w.len, mlen);
			ck_assert_uint_le(w.len, w.max);
			ck_assert(w.len <= w.cap || (w.cap == 0 && w.len == 0));
			if (mlen > 0) {
				ck_assert_mem_eq(w.p, model, mlen);
			}
		} else if (op < 15) {
			rd = ML_RD_INIT(w.p, w.len);
			rd.off = roff;
			save = rd;
			switch (op) {
			case 8:
				need = 1;
				r = ml_rd_u8(&rd, &u8);
				break;
			case 9:
				need = 2;
				r = ml_rd_u16be(&rd, &u16);
				break;
			case 10:
				need = 4;
				r = ml_rd_u32be(&rd, &u32);
				break;
			case 11:
				need = 8;
				r = ml_rd_u64be(&rd, &u64);
				break;
			case 12:
				need = n;
				r = ml_rd_bytes(&rd, n, &p);
				if (r == 0) {
					ck_assert_ptr_eq(p, w.p + roff);
				}
				break;
			case 13:
				need = n;
				r = ml_rd_sub(&rd, n, &sub);
				if (r == 0) {
					ck_assert(ml_rd_valid(&sub));
					ck_assert_uint_eq(sub.len, n);
				}
				break;
			default:
				need = 0;
				r = ml_rd_end(&rd);
				ck_assert_r(r, roff == mlen ? 0 : ML_ERR_TRAILING);
				r = 0;
				break;
			}
			ck_assert(ml_rd_valid(&rd));
			if (need > mlen - roff) {
				ck_assert_r(r, ML_ERR_SHORT);
				ck_assert(memcmp(&rd, &save, sizeof(rd)) == 0);
			} else {
				ck_assert_r(r, 0);
				roff += need;
				ck_assert_uint_eq(rd.off, roff);
			}
		} else {
			/* clear: start over (dyn writers keep their buffer) */
			ml_wr_clear(&w);
			mlen = roff = 0;
		}
	}
	ml_wr_free(&w);
}
END_TEST

static Suite *
ml_rd_suite(void)
{
	Suite *s = suite_create("ml_rd");
	TCase *tc;

	tc = tcase_create("reader");
	tcase_add_loop_test(tc, rd_every_strict_prefix_is_short, 0,
	    ML_NELEM(rd_cases));
	tcase_add_test(tc, rd_values);
	tcase_add_test(tc, rd_no_wrap);
	tcase_add_test(tc, rd_lv_limits);
	tcase_add_test(tc, rd_sub_confines);
	tcase_add_test(tc, rd_end);
	suite_add_tcase(s, tc);

	tc = tcase_create("writer");
	tcase_add_test(tc, wr_fixed_overflow);
	tcase_add_test(tc, wr_dyn_respects_max);
	suite_add_tcase(s, tc);

	tc = tcase_create("random");
	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, rd_wr_random_ops, 0, 8);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ml_rd_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
