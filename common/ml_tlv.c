#include <string.h>

#include "ml_tlv.h"

int
ml_tlv_next(struct ml_rd *rd, uint32_t *ret_tag, struct ml_rd *ret_val)
{
	struct ml_rd c = *rd;
	uint32_t tag;
	uint8_t b, nb;
	size_t len = 0;
	int r, i;

	ML_TRY(ml_rd_u8(&c, &b));
	ML_ENSURE(b != 0x00 && b != 0xff, ML_ERR_FORMAT);
	tag = b;
	if ((b & 0x1f) == 0x1f) {
		for (i = 0; ; i++) {
			ML_ENSURE(i < 2, ML_ERR_FORMAT);	/* at most 3 bytes */
			ML_TRY(ml_rd_u8(&c, &b));
			tag = (tag << 8) | b;
			if ((b & 0x80) == 0) {
				break;
			}
		}
	}
	ML_TRY(ml_rd_u8(&c, &b));
	if (b < 0x80) {
		len = b;
	} else {
		nb = b & 0x7f;
		ML_ENSURE(nb >= 1 && nb <= 3, ML_ERR_FORMAT);
		for (i = 0; i < nb; i++) {
			ML_TRY(ml_rd_u8(&c, &b));
			len = (len << 8) | b;
		}
	}
	ML_TRY(ml_rd_sub(&c, len, ret_val));
	*ret_tag = tag;
	*rd = c;
	r = 0;
out:
	return r;
}

int
ml_tlv_find(const struct ml_rd *rd, uint32_t tag, struct ml_rd *ret_val)
{
	struct ml_rd c = *rd, v;
	uint32_t t;
	int r;

	while (ml_rd_left(&c) > 0) {
		if ((r = ml_tlv_next(&c, &t, &v)) != 0) {
			return r;
		}
		if (t == tag) {
			*ret_val = v;
			return 0;
		}
	}
	return ML_ERR_NOT_FOUND;
}

static size_t
tag_len(uint32_t tag)
{
	return tag > 0xffff ? 3 : tag > 0xff ? 2 : 1;
}

/*
 * Only tags that ml_tlv_next() reads back as the same tag are written:
 * first byte neither 00 nor FF; one byte unless its low five bits are all
 * ones; every later byte but the last has bit 8 set, the last has it clear.
 * (Writing 0x1F or 0x0101 used to succeed and produce bytes that parse as
 * a different tag and length.)
 */
static int
put_tag(struct ml_wr *w, uint32_t tag)
{
	size_t n = tag_len(tag), i;
	uint8_t b[3];

	if (tag == 0 || tag > 0xffffff) {
		return ML_ERR_ARG;
	}
	for (i = 0; i < n; i++) {
		b[i] = (uint8_t)(tag >> (8 * (n - 1 - i)));
	}
	if (b[0] == 0x00 || b[0] == 0xff ||
	    ((b[0] & 0x1f) == 0x1f) != (n > 1) ||
	    (n > 1 && (b[n - 1] & 0x80) != 0) ||
	    (n == 3 && (b[1] & 0x80) == 0)) {
		return ML_ERR_ARG;
	}
	return ml_wr_bytes(w, b, n);
}

static int
put_len(struct ml_wr *w, size_t n)
{
	uint8_t b[4];
	size_t k;

	if (n < 0x80) {
		b[0] = (uint8_t)n;
		k = 1;
	} else if (n <= 0xff) {
		b[0] = 0x81;
		b[1] = (uint8_t)n;
		k = 2;
	} else if (n <= 0xffff) {
		b[0] = 0x82;
		b[1] = (uint8_t)(n >> 8);
		b[2] = (uint8_t)n;
		k = 3;
	} else if (n <= ML_TLV_MAX_LEN) {
		b[0] = 0x83;
		b[1] = (uint8_t)(n >> 16);
		b[2] = (uint8_t)(n >> 8);
		b[3] = (uint8_t)n;
		k = 4;
	} else {
		return ML_ERR_TOO_LARGE;
	}
	return ml_wr_bytes(w, b, k);
}

int
ml_tlv_put(struct ml_wr *w, uint32_t tag, const void *v, size_t n)
{
	size_t save = w->len;
	int r;

	if ((r = put_tag(w, tag)) != 0 || (r = put_len(w, n)) != 0 ||
	    (r = ml_wr_bytes(w, v, n)) != 0) {
		w->len = save;
		return r;
	}
	return 0;
}

int
ml_tlv_put_u8(struct ml_wr *w, uint32_t tag, uint8_t v)
{
	return ml_tlv_put(w, tag, &v, 1);
}

int
ml_tlv_put_u16(struct ml_wr *w, uint32_t tag, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return ml_tlv_put(w, tag, b, 2);
}

int
ml_tlv_put_u32(struct ml_wr *w, uint32_t tag, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	return ml_tlv_put(w, tag, b, 4);
}

/* The mark is the offset of the tag; a 4-byte length slot is reserved. */
int
ml_tlv_open(struct ml_wr *w, uint32_t tag, size_t *ret_mark)
{
	size_t save = w->len;
	int r;

	if ((r = put_tag(w, tag)) != 0 || (r = ml_wr_reserve(w, 4, NULL)) != 0) {
		w->len = save;
		return r;
	}
	*ret_mark = save;
	return 0;
}

int
ml_tlv_close(struct ml_wr *w, size_t mark)
{
	size_t tl, vstart, vlen, k;
	uint8_t lb[4];
	uint32_t tag = w->p[mark];
	struct ml_wr lw = ML_WR_FIXED(lb, sizeof(lb));
	int r;

	tl = 1;
	if ((tag & 0x1f) == 0x1f) {
		while (w->p[mark + tl] & 0x80) {
			tl++;
		}
		tl++;
	}
	vstart = mark + tl + 4;
	if (vstart > w->len) {
		return ML_ERR_INTERNAL;
	}
	vlen = w->len - vstart;
	if ((r = put_len(&lw, vlen)) != 0) {
		return r;
	}
	k = lw.len;
	memcpy(w->p + mark + tl, lb, k);
	memmove(w->p + mark + tl + k, w->p + vstart, vlen);
	w->len -= 4 - k;
	return 0;
}
