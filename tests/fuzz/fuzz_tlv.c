/*
 * libFuzzer target: BER-TLV (common/ml_tlv.c).
 *
 * Walks the input with ml_tlv_next(), descending into constructed TLVs
 * (bit 6 of the first tag byte) to a fixed depth.  Checks: a failing call
 * leaves the cursor where it was; a succeeding one advances it and returns
 * a value inside the input that ends where the cursor now is; every parsed
 * (tag, value) can be written back with ml_tlv_put() and reads back the
 * same; ml_tlv_find() finds the first sibling with each tag.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ml_err.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wr.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)	do { if (!(cond)) { abort(); } } while (0)
#define MAX_DEPTH	8

static const uint8_t *base;
static size_t base_len;

static void
first_tag_byte(uint32_t tag, uint8_t *ret)
{
	*ret = (uint8_t)(tag > 0xffff ? tag >> 16 : tag > 0xff ? tag >> 8 : tag);
}

static void
walk(struct ml_rd rd, int depth)
{
	struct ml_rd c = rd, v, v2, found;
	struct ml_wr w;
	uint32_t tag, tag2;
	size_t before;
	uint8_t b0;
	int r;

	while (ml_rd_left(&c) > 0) {
		before = c.off;
		r = ml_tlv_next(&c, &tag, &v);
		CHECK(ml_rd_valid(&c));
		if (r != 0) {
			CHECK(r == ML_ERR_SHORT || r == ML_ERR_FORMAT);
			CHECK(c.off == before);
			/* find() meets the same error on the same sibling */
			CHECK(ml_tlv_find(&rd, 0xFFFFFF, &found) == r);
			return;
		}
		CHECK(c.off > before);
		CHECK(v.off == 0 && v.p >= base && v.p + v.len <= base + base_len);
		CHECK(v.p + v.len == c.p + c.off);

		/* Round trip through the writer. */
		w = ml_wr_dyn(v.len + 16);
		CHECK(ml_tlv_put(&w, tag, v.p, v.len) == 0);
		v2 = ML_RD_INIT(w.p, w.len);
		CHECK(ml_tlv_next(&v2, &tag2, &found) == 0);
		CHECK(tag2 == tag && found.len == v.len);
		CHECK(v.len == 0 || memcmp(found.p, v.p, v.len) == 0);
		CHECK(ml_rd_end(&v2) == 0);
		ml_wr_free(&w);

		/* find() returns the first sibling with this tag. */
		CHECK(ml_tlv_find(&rd, tag, &found) == 0);
		CHECK(found.p <= v.p);

		first_tag_byte(tag, &b0);
		if ((b0 & 0x20) != 0 && depth < MAX_DEPTH) {
			walk(v, depth + 1);
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	base = data;
	base_len = size;
	walk(ML_RD_INIT(data, size), 0);
	return 0;
}
