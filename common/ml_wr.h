/*
 * ml_wr: a bounded writer.  Either over a caller's fixed buffer
 * (ML_WR_FIXED) or growable on the heap up to a hard maximum
 * (ml_wr_dyn()), in the manner of sshbuf's max_size.  A growable writer
 * wipes its memory whenever it reallocates or is freed.
 *
 * Every ml_wr_* writer returns 0, or ML_ERR_TOO_LARGE / ML_ERR_NOMEM and
 * leaves the writer unchanged.
 */
#ifndef ML_WR_H
#define ML_WR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

struct ml_wr {
	uint8_t		*p;
	size_t		 len;
	size_t		 cap;
	size_t		 max;		/* hard limit on len */
	bool		 dyn;		/* p is ours: realloc and freezero */
};

#define ML_WR_FIXED(buf, n) \
	((struct ml_wr){ .p = (buf), .len = 0, .cap = (n), .max = (n), .dyn = false })

/* A growable writer, empty, limited to max bytes. */
static inline struct ml_wr
ml_wr_dyn(size_t max)
{
	return (struct ml_wr){ .p = NULL, .len = 0, .cap = 0, .max = max, .dyn = true };
}

/* Wipe and free a growable writer's memory; resets it to empty.  NULL-safe. */
void	 ml_wr_free(struct ml_wr *w);
/* Forget the contents (wiped) but keep the buffer. */
void	 ml_wr_clear(struct ml_wr *w);
/*
 * Drop (wiping) everything written after mark, a length the writer had
 * before: how an encoder that failed half way leaves w as it found it.
 * A mark at or past the end changes nothing.
 */
void	 ml_wr_rewind(struct ml_wr *w, size_t mark);
/* Room left before the limit. */
static inline size_t
ml_wr_room(const struct ml_wr *w)
{
	return w->max - w->len;
}

/* Reserve n bytes at the end and return a pointer to them in *ret_p. */
ML_MUST_CHECK int ml_wr_reserve(struct ml_wr *w, size_t n, uint8_t **ret_p);
ML_MUST_CHECK int ml_wr_u8(struct ml_wr *w, uint8_t v);
ML_MUST_CHECK int ml_wr_u16be(struct ml_wr *w, uint16_t v);
ML_MUST_CHECK int ml_wr_u32be(struct ml_wr *w, uint32_t v);
ML_MUST_CHECK int ml_wr_u64be(struct ml_wr *w, uint64_t v);
ML_MUST_CHECK int ml_wr_bytes(struct ml_wr *w, const void *v, size_t n);
/* u8 / u16be length prefix, then the bytes; ML_ERR_TOO_LARGE if n too big. */
ML_MUST_CHECK int ml_wr_lv8(struct ml_wr *w, const void *v, size_t n);
ML_MUST_CHECK int ml_wr_lv16(struct ml_wr *w, const void *v, size_t n);

#endif
