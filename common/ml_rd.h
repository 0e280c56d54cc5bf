/*
 * ml_rd: a read cursor over borrowed bytes.  Every parser of untrusted
 * input in mintline reads through it.  It never owns memory.
 *
 * Contract for every ml_rd_* reader: returns 0 and advances, or returns a
 * negative ML_ERR_* and leaves the cursor exactly as it was (the s2n
 * stuffer property; tests check it on every strict prefix).
 */
#ifndef ML_RD_H
#define ML_RD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

struct ml_rd {
	const uint8_t	*p;
	size_t		 len;
	size_t		 off;
};

#define ML_RD_INIT(ptr, n)	((struct ml_rd){ .p = (ptr), .len = (n), .off = 0 })

static inline size_t
ml_rd_left(const struct ml_rd *rd)
{
	return rd->len - rd->off;
}

static inline bool
ml_rd_valid(const struct ml_rd *rd)
{
	return (rd->p != NULL || rd->len == 0) && rd->off <= rd->len;
}

/* Pointer to the unread bytes (valid for ml_rd_left() bytes).  An empty
 * reader over NULL gives NULL (NULL + 0 is undefined in C). */
static inline const uint8_t *
ml_rd_ptr(const struct ml_rd *rd)
{
	return rd->p != NULL ? rd->p + rd->off : rd->p;
}

ML_MUST_CHECK int ml_rd_u8(struct ml_rd *rd, uint8_t *v);
ML_MUST_CHECK int ml_rd_peek_u8(const struct ml_rd *rd, uint8_t *v);
ML_MUST_CHECK int ml_rd_u16be(struct ml_rd *rd, uint16_t *v);
ML_MUST_CHECK int ml_rd_u32be(struct ml_rd *rd, uint32_t *v);
ML_MUST_CHECK int ml_rd_u64be(struct ml_rd *rd, uint64_t *v);
/* Borrow n bytes; *v may be NULL to skip. */
ML_MUST_CHECK int ml_rd_bytes(struct ml_rd *rd, size_t n, const uint8_t **v);
/* Copy exactly n bytes into dst. */
ML_MUST_CHECK int ml_rd_copy(struct ml_rd *rd, void *dst, size_t n);
/* A child reader over the next n bytes; the parent skips them. */
ML_MUST_CHECK int ml_rd_sub(struct ml_rd *rd, size_t n, struct ml_rd *sub);
/* u8 length then that many bytes, at most max; ML_ERR_TOO_LARGE over max. */
ML_MUST_CHECK int ml_rd_lv8(struct ml_rd *rd, size_t max, struct ml_rd *sub);
/* u16be length then bytes, at most max. */
ML_MUST_CHECK int ml_rd_lv16(struct ml_rd *rd, size_t max, struct ml_rd *sub);
/* ML_ERR_TRAILING if bytes remain. */
ML_MUST_CHECK int ml_rd_end(const struct ml_rd *rd);

#endif
