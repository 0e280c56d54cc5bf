/*
 * ISO/IEC 7816-4 command APDU codec: the only parser of command bytes in
 * the card OS.  Profiles only ever see a parsed struct apdu.
 */
#ifndef APDU_H
#define APDU_H

#include <stdbool.h>
#include <stdint.h>

#include "ml_rd.h"
#include "ml_wr.h"

enum apdu_case {
	APDU_CASE_1 = 1,	/* no data, no Le */
	APDU_CASE_2,		/* Le only */
	APDU_CASE_3,		/* Lc + data */
	APDU_CASE_4,		/* Lc + data + Le */
};

#define APDU_MAX_SHORT_DATA	255
#define APDU_MAX_EXT_DATA	65535

struct apdu {
	uint8_t		 cla, ins, p1, p2;
	enum apdu_case	 kase;
	bool		 extended;
	struct ml_rd	 data;	/* the Lc bytes, borrowed from the raw buffer */
	uint32_t	 ne;	/* expected response length: 0 (case 1/3),
				 * 1..256 short, 1..65536 extended */
};

/*
 * Parse raw into *a.  Cases 1-4, short (1-byte) or extended (00 + 2-byte)
 * lengths.  Returns 0; ML_ERR_SHORT if fewer than 4 header bytes or Lc
 * promises more than present; ML_ERR_FORMAT for an encoding that fits no
 * case (extended Lc 0, a lone 00 00 body...); ML_ERR_TRAILING if bytes
 * follow a complete body.  *a is fully reset before parsing; on failure it
 * holds nothing useful.
 */
ML_MUST_CHECK int apdu_parse(const uint8_t *raw, size_t raw_len, struct apdu *a);

/*
 * Build a command APDU into w, choosing short form when data_len <= 255 and
 * ne <= 256, else extended.  ne = 0: no Le.  ne = 256 (short) / 65536
 * (extended) are encoded as 00 / 00 00.
 */
ML_MUST_CHECK int apdu_build(struct ml_wr *w, uint8_t cla, uint8_t ins,
    uint8_t p1, uint8_t p2, const uint8_t *data, size_t data_len, uint32_t ne);

#endif
