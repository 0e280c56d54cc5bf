#include <string.h>

#include "ml_rd.h"

int
ml_rd_bytes(struct ml_rd *rd, size_t n, const uint8_t **v)
{
	if (n > rd->len - rd->off) {	/* never "off + n > len": it can wrap */
		return ML_ERR_SHORT;
	}
	if (v != NULL) {
		*v = ml_rd_ptr(rd);
	}
	rd->off += n;
	return 0;
}

int
ml_rd_copy(struct ml_rd *rd, void *dst, size_t n)
{
	const uint8_t *p;
	int r;

	if ((r = ml_rd_bytes(rd, n, &p)) != 0) {
		return r;
	}
	if (n > 0) {
		memcpy(dst, p, n);
	}
	return 0;
}

int
ml_rd_peek_u8(const struct ml_rd *rd, uint8_t *v)
{
	if (ml_rd_left(rd) < 1) {
		return ML_ERR_SHORT;
	}
	*v = rd->p[rd->off];
	return 0;
}

int
ml_rd_u8(struct ml_rd *rd, uint8_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = ml_rd_bytes(rd, 1, &p)) != 0) {
		return r;
	}
	*v = p[0];
	return 0;
}

int
ml_rd_u16be(struct ml_rd *rd, uint16_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = ml_rd_bytes(rd, 2, &p)) != 0) {
		return r;
	}
	*v = (uint16_t)((p[0] << 8) | p[1]);
	return 0;
}

int
ml_rd_u32be(struct ml_rd *rd, uint32_t *v)
{
	const uint8_t *p;
	int r;

	if ((r = ml_rd_bytes(rd, 4, &p)) != 0) {
		return r;
	}
	*v = ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	    ((uint32_t)p[2] << 8) | p[3];
	return 0;
}

int
ml_rd_u64be(struct ml_rd *rd, uint64_t *v)
{
	const uint8_t *p;
	uint64_t x = 0;
	size_t i;
	int r;

	if ((r = ml_rd_bytes(rd, 8, &p)) != 0) {
		return r;
	}
	for (i = 0; i < 8; i++) {
		x = (x << 8) | p[i];
	}
	*v = x;
	return 0;
}

int
ml_rd_sub(struct ml_rd *rd, size_t n, struct ml_rd *sub)
{
	const uint8_t *p;
	int r;

	if ((r = ml_rd_bytes(rd, n, &p)) != 0) {
		return r;
	}
	*sub = ML_RD_INIT(p, n);
	return 0;
}

static int
rd_lv(struct ml_rd *rd, size_t width, size_t max, struct ml_rd *sub)
{
	struct ml_rd save = *rd;
	uint16_t n16 = 0;
	uint8_t n8 = 0;
	size_t n;
	int r;

	if (width == 1) {
		r = ml_rd_u8(rd, &n8);
		n = n8;
	} else {
		r = ml_rd_u16be(rd, &n16);
		n = n16;
	}
	if (r != 0) {
		return r;
	}
	if (n > max) {
		*rd = save;
		return ML_ERR_TOO_LARGE;
	}
	if ((r = ml_rd_sub(rd, n, sub)) != 0) {
		*rd = save;
		return r;
	}
	return 0;
}

int
ml_rd_lv8(struct ml_rd *rd, size_t max, struct ml_rd *sub)
{
	return rd_lv(rd, 1, max, sub);
}

int
ml_rd_lv16(struct ml_rd *rd, size_t max, struct ml_rd *sub)
{
	return rd_lv(rd, 2, max, sub);
}

int
ml_rd_end(const struct ml_rd *rd)
{
	return ml_rd_left(rd) == 0 ? 0 : ML_ERR_TRAILING;
}
