#include <stdlib.h>
#include <string.h>

#include "ml_wipe.h"
#include "ml_wr.h"

void
ml_wr_free(struct ml_wr *w)
{
	if (w == NULL) {
		return;
	}
	if (w->dyn) {
		ml_freezero(w->p, w->cap);
		w->p = NULL;
		w->cap = 0;
	} else if (w->p != NULL) {
		ml_wipe(w->p, w->len);
	}
	w->len = 0;
}

void
ml_wr_clear(struct ml_wr *w)
{
	if (w->p != NULL) {
		ml_wipe(w->p, w->len);
	}
	w->len = 0;
}

void
ml_wr_rewind(struct ml_wr *w, size_t mark)
{
	if (mark >= w->len) {
		return;
	}
	ml_wipe(w->p + mark, w->len - mark);
	w->len = mark;
}

static int
wr_grow(struct ml_wr *w, size_t need)
{
	uint8_t *np;
	size_t ncap;

	if (need <= w->cap) {
		return 0;
	}
	if (!w->dyn) {
		return ML_ERR_TOO_LARGE;
	}
	ncap = w->cap < 64 ? 64 : w->cap;
	while (ncap < need) {
		ncap = (ncap > w->max / 2) ? w->max : ncap * 2;
	}
	/* Never realloc: the old block may hold secrets and must be wiped. */
	if ((np = malloc(ncap)) == NULL) {
		return ML_ERR_NOMEM;
	}
	if (w->len > 0) {
		memcpy(np, w->p, w->len);
	}
	ml_freezero(w->p, w->cap);
	w->p = np;
	w->cap = ncap;
	return 0;
}

int
ml_wr_reserve(struct ml_wr *w, size_t n, uint8_t **ret_p)
{
	int r;

	if (n > w->max - w->len) {
		return ML_ERR_TOO_LARGE;
	}
	if ((r = wr_grow(w, w->len + n)) != 0) {
		return r;
	}
	if (ret_p != NULL) {
		/* An empty growable writer has no buffer yet (p NULL, only when
		 * n == 0 and nothing was written): NULL + 0 is undefined in C. */
		*ret_p = (w->p != NULL) ? w->p + w->len : NULL;
	}
	w->len += n;
	return 0;
}

int
ml_wr_bytes(struct ml_wr *w, const void *v, size_t n)
{
	uint8_t *p;
	int r;

	if ((r = ml_wr_reserve(w, n, &p)) != 0) {
		return r;
	}
	if (n > 0) {
		memcpy(p, v, n);
	}
	return 0;
}

int
ml_wr_u8(struct ml_wr *w, uint8_t v)
{
	return ml_wr_bytes(w, &v, 1);
}

int
ml_wr_u16be(struct ml_wr *w, uint16_t v)
{
	uint8_t b[2] = { (uint8_t)(v >> 8), (uint8_t)v };

	return ml_wr_bytes(w, b, sizeof(b));
}

int
ml_wr_u32be(struct ml_wr *w, uint32_t v)
{
	uint8_t b[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16),
	    (uint8_t)(v >> 8), (uint8_t)v };

	return ml_wr_bytes(w, b, sizeof(b));
}

int
ml_wr_u64be(struct ml_wr *w, uint64_t v)
{
	uint8_t b[8];
	int i;

	for (i = 7; i >= 0; i--) {
		b[i] = (uint8_t)v;
		v >>= 8;
	}
	return ml_wr_bytes(w, b, sizeof(b));
}

int
ml_wr_lv8(struct ml_wr *w, const void *v, size_t n)
{
	uint8_t *p;
	int r;

	if (n > 0xff) {
		return ML_ERR_TOO_LARGE;
	}
	if ((r = ml_wr_reserve(w, 1 + n, &p)) != 0) {
		return r;
	}
	p[0] = (uint8_t)n;
	if (n > 0) {
		memcpy(p + 1, v, n);
	}
	return 0;
}

int
ml_wr_lv16(struct ml_wr *w, const void *v, size_t n)
{
	uint8_t *p;
	int r;

	if (n > 0xffff) {
		return ML_ERR_TOO_LARGE;
	}
	if ((r = ml_wr_reserve(w, 2 + n, &p)) != 0) {
		return r;
	}
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	if (n > 0) {
		memcpy(p + 2, v, n);
	}
	return 0;
}
