/*
 * BER-TLV (ISO/IEC 7816-4 §5.2, the subset smart cards use): tags of one
 * to three bytes, definite lengths in short form or 0x81/0x82/0x83 long
 * form.  Indefinite length (0x80) and longer forms are rejected.
 */
#ifndef ML_TLV_H
#define ML_TLV_H

#include <stdint.h>

#include "ml_rd.h"
#include "ml_wr.h"

#define ML_TLV_MAX_LEN	0xffffffu	/* 0x83 form */

/*
 * Read one TLV.  Returns 0 with the tag in *ret_tag and a child reader over
 * the value in *ret_val; or ML_ERR_SHORT (truncated), ML_ERR_FORMAT (bad
 * tag or length encoding).  On failure rd and the outputs are unchanged.
 */
ML_MUST_CHECK int ml_tlv_next(struct ml_rd *rd, uint32_t *ret_tag,
    struct ml_rd *ret_val);

/*
 * Find the first TLV with this tag among the siblings in rd (rd itself is
 * not advanced).  ML_ERR_NOT_FOUND if absent; parse errors as above.
 */
ML_MUST_CHECK int ml_tlv_find(const struct ml_rd *rd, uint32_t tag,
    struct ml_rd *ret_val);

/* Append tag, length, value. */
ML_MUST_CHECK int ml_tlv_put(struct ml_wr *w, uint32_t tag, const void *v,
    size_t n);
ML_MUST_CHECK int ml_tlv_put_u8(struct ml_wr *w, uint32_t tag, uint8_t v);
ML_MUST_CHECK int ml_tlv_put_u16(struct ml_wr *w, uint32_t tag, uint16_t v);
ML_MUST_CHECK int ml_tlv_put_u32(struct ml_wr *w, uint32_t tag, uint32_t v);

/*
 * Open a constructed TLV whose length is filled in by ml_tlv_close().
 * *ret_mark remembers where; the length is written in the 0x83 form only
 * when needed (the value is moved into place).
 */
ML_MUST_CHECK int ml_tlv_open(struct ml_wr *w, uint32_t tag, size_t *ret_mark);
ML_MUST_CHECK int ml_tlv_close(struct ml_wr *w, size_t mark);

#endif
