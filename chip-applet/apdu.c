#include "ml_wr.h"

#include "apdu.h"

/* Short body after the header, first byte nonzero: 3S (Lc data) or 4S (+Le). */
static int
apdu_body_short(struct ml_rd *rd, struct apdu *a)
{
	uint8_t lc, le;
	int r;

	ML_TRY(ml_rd_u8(rd, &lc));
	ML_TRY(ml_rd_sub(rd, lc, &a->data));
	a->kase = APDU_CASE_3;
	if (ml_rd_left(rd) == 1) {
		ML_TRY(ml_rd_u8(rd, &le));
		a->kase = APDU_CASE_4;
		a->ne = (le != 0) ? le : 256;
	}
	r = 0;
out:
	return r;
}

/*
 * Extended body: 00 then
 *   2E: Le(2)                        (body length 3)
 *   3E: Lc(2, nonzero) data          (body length 3 + Lc)
 *   4E: Lc(2) data Le(2)             (body length 5 + Lc)
 */
static int
apdu_body_ext(struct ml_rd *rd, struct apdu *a)
{
	uint16_t n, le;
	uint8_t zero;
	int r;

	ML_TRY(ml_rd_u8(rd, &zero));
	/* A two-byte body 00 xx fits no case (short Lc cannot be 0, the
	 * extended forms need three bytes): malformed, as apdu.h promises. */
	ML_ENSURE(ml_rd_left(rd) >= 2, ML_ERR_FORMAT);
	a->extended = true;
	if (ml_rd_left(rd) == 2) {			/* case 2E */
		ML_TRY(ml_rd_u16be(rd, &le));
		a->kase = APDU_CASE_2;
		a->ne = (le != 0) ? le : 65536;
		r = 0;
		goto out;
	}
	ML_TRY(ml_rd_u16be(rd, &n));
	ML_ENSURE(n != 0, ML_ERR_FORMAT);		/* Lc 0000 is not valid */
	ML_TRY(ml_rd_sub(rd, n, &a->data));
	a->kase = APDU_CASE_3;
	if (ml_rd_left(rd) == 2) {
		ML_TRY(ml_rd_u16be(rd, &le));
		a->kase = APDU_CASE_4;
		a->ne = (le != 0) ? le : 65536;
	}
	r = 0;
out:
	return r;
}

int
apdu_parse(const uint8_t *raw, size_t raw_len, struct apdu *a)
{
	struct ml_rd rd = ML_RD_INIT(raw, raw_len);
	uint8_t b1;
	int r = ML_ERR_INTERNAL;

	*a = (struct apdu){ .kase = APDU_CASE_1, .data = ML_RD_INIT(raw, 0) };
	ML_TRY(ml_rd_u8(&rd, &a->cla));
	ML_TRY(ml_rd_u8(&rd, &a->ins));
	ML_TRY(ml_rd_u8(&rd, &a->p1));
	ML_TRY(ml_rd_u8(&rd, &a->p2));

	if (ml_rd_left(&rd) == 1) {			/* case 2S */
		ML_TRY(ml_rd_u8(&rd, &b1));
		a->kase = APDU_CASE_2;
		a->ne = (b1 != 0) ? b1 : 256;
	} else if (ml_rd_left(&rd) > 1) {
		ML_TRY(ml_rd_peek_u8(&rd, &b1));
		if (b1 != 0) {
			ML_TRY(apdu_body_short(&rd, a));	/* 3S, 4S */
		} else {
			ML_TRY(apdu_body_ext(&rd, a));		/* 2E, 3E, 4E */
		}
	}
	ML_TRY(ml_rd_end(&rd));				/* nothing may trail */
	r = 0;
out:
	return r;
}

int
apdu_build(struct ml_wr *w, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const uint8_t *data, size_t data_len, uint32_t ne)
{
	size_t save = w->len;
	bool ext;
	int r;

	ML_ENSURE(data_len <= APDU_MAX_EXT_DATA && ne <= 65536, ML_ERR_TOO_LARGE);
	ext = data_len > APDU_MAX_SHORT_DATA || ne > 256;
	ML_TRY(ml_wr_u8(w, cla));
	ML_TRY(ml_wr_u8(w, ins));
	ML_TRY(ml_wr_u8(w, p1));
	ML_TRY(ml_wr_u8(w, p2));
	if (data_len > 0) {
		if (ext) {
			ML_TRY(ml_wr_u8(w, 0));
			ML_TRY(ml_wr_u16be(w, (uint16_t)data_len));
		} else {
			ML_TRY(ml_wr_u8(w, (uint8_t)data_len));
		}
		ML_TRY(ml_wr_bytes(w, data, data_len));
	}
	if (ne > 0) {
		if (ext) {
			if (data_len == 0) {
				ML_TRY(ml_wr_u8(w, 0));
			}
			ML_TRY(ml_wr_u16be(w, (uint16_t)(ne == 65536 ? 0 : ne)));
		} else {
			ML_TRY(ml_wr_u8(w, (uint8_t)(ne == 256 ? 0 : ne)));
		}
	}
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, save);
	}
	return r;
}
