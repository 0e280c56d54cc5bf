/*
 * Issuance batch input: see batch.h for the format.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "batch.h"
#include "ml_rd.h"

/* Duplicate detection: a sorted-on-demand set would do; a hash of the
 * note ids is simpler and the batch is bounded. */
struct seen {
	size_t		 cap, n;
	char		(*slot)[NOTE_ID_MAX + 1];
};

static bool
is_blank(uint8_t c)
{
	return c == ' ' || c == '\t';
}

/* Trim spaces/tabs at both ends of a child reader. */
static void
trim(struct ml_rd *rd)
{
	while (rd->off < rd->len && is_blank(rd->p[rd->off])) {
		rd->off++;
	}
	while (rd->len > rd->off && is_blank(rd->p[rd->len - 1])) {
		rd->len--;
	}
}

static bool
rd_eq_ci(const struct ml_rd *rd, const char *s)
{
	size_t n = strlen(s);

	return ml_rd_left(rd) == n &&
	    strncasecmp((const char *)ml_rd_ptr(rd), s, n) == 0;
}

int
batch_parse_line(const uint8_t *line, size_t n, int allow_header,
    struct note_id *ret_id, const char **ret_why)
{
	struct ml_rd rd = ML_RD_INIT(line, n), pre, ser;
	const uint8_t *comma;
	const char *why = "internal error";
	int r;

	if (n > BATCH_LINE_MAX) {
		why = "line too long";
		r = ML_ERR_TOO_LARGE;
		goto out;
	}
	if (n > 0 && line[n - 1] == '\r') {
		rd.len--;
	}
	trim(&rd);
	if (ml_rd_left(&rd) == 0 || rd.p[rd.off] == '#') {
		return BATCH_SKIP;
	}
	comma = memchr(ml_rd_ptr(&rd), ',', ml_rd_left(&rd));
	if (comma == NULL) {
		why = "expected PREFIX,SERIAL";
		r = ML_ERR_FORMAT;
		goto out;
	}
	ML_TRY(ml_rd_sub(&rd, (size_t)(comma - ml_rd_ptr(&rd)), &pre));
	ML_TRY(ml_rd_bytes(&rd, 1, NULL));
	ML_TRY(ml_rd_sub(&rd, ml_rd_left(&rd), &ser));
	trim(&pre);
	trim(&ser);
	if (allow_header && rd_eq_ci(&pre, "prefix") && rd_eq_ci(&ser, "serial")) {
		return BATCH_SKIP;
	}
	if (memchr(ml_rd_ptr(&ser), ',', ml_rd_left(&ser)) != NULL) {
		why = "too many fields";
		r = ML_ERR_FORMAT;
		goto out;
	}
	r = note_id_set((const char *)ml_rd_ptr(&pre), ml_rd_left(&pre),
	    (const char *)ml_rd_ptr(&ser), ml_rd_left(&ser), ret_id);
	if (r != 0) {
		if (ml_rd_left(&pre) == 0 || ml_rd_left(&pre) > FEATURE_PREFIX_MAX) {
			why = "prefix must be 1..4 characters";
		} else if (ml_rd_left(&ser) < FEATURE_SERIAL_MIN ||
		    ml_rd_left(&ser) > FEATURE_SERIAL_MAX) {
			why = "serial must be 4..12 digits";
		} else {
			why = "prefix: a capital letter then capitals/digits; "
			    "serial: digits";
		}
		goto out;
	}
	return BATCH_NOTE;
out:
	*ret_why = why;
	return r < 0 ? r : ML_ERR_FORMAT;
}

static uint64_t
fnv1a(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	while (*s != '\0') {
		h ^= (uint8_t)*s++;
		h *= 1099511628211ULL;
	}
	return h;
}

/* 1 if id was already in the set, 0 if added, ML_ERR_NOMEM. */
static int
seen_add(struct batch *b, const struct note_id *id)
{
	struct seen *s = b->seen;
	char key[NOTE_ID_MAX + 1];
	size_t i;

	if (s == NULL) {
		if ((s = calloc(1, sizeof(*s))) == NULL) {
			return ML_ERR_NOMEM;
		}
		b->seen = s;
	}
	if ((s->n + 1) * 2 > s->cap) {
		size_t ncap = s->cap ? s->cap * 2 : 1024, j;
		char (*ns)[NOTE_ID_MAX + 1] = calloc(ncap, sizeof(*ns));

		if (ns == NULL) {
			return ML_ERR_NOMEM;
		}
		for (j = 0; j < s->cap; j++) {
			if (s->slot[j][0] == '\0') {
				continue;
			}
			for (i = fnv1a(s->slot[j]) & (ncap - 1); ns[i][0] != '\0';
			    i = (i + 1) & (ncap - 1)) {
			}
			memcpy(ns[i], s->slot[j], sizeof(ns[i]));
		}
		free(s->slot);
		s->slot = ns;
		s->cap = ncap;
	}
	note_id_str(id, key);
	for (i = fnv1a(key) & (s->cap - 1); s->slot[i][0] != '\0';
	    i = (i + 1) & (s->cap - 1)) {
		if (strcmp(s->slot[i], key) == 0) {
			return 1;
		}
	}
	memcpy(s->slot[i], key, sizeof(key));
	s->n++;
	return 0;
}

static int
add_error(struct batch *b, unsigned long lineno, int r, const char *why)
{
	if (b->nerr == b->errcap) {
		size_t ncap = b->errcap ? b->errcap * 2 : 16;
		struct batch_error *ne = reallocarray(b->err, ncap, sizeof(*ne));

		if (ne == NULL) {
			return ML_ERR_NOMEM;
		}
		b->err = ne;
		b->errcap = ncap;
	}
	b->err[b->nerr++] = (struct batch_error){ lineno, r, why };
	return 0;
}

static int
add_line(struct batch *b, const uint8_t *line, size_t n)
{
	struct note_id id;
	const char *why = NULL;
	unsigned long lineno = ++b->lines;
	int r, k;

	/* A CSV saved by a spreadsheet starts with a UTF-8 byte order mark */
	if (lineno == 1 && n >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) {
		line += 3;
		n -= 3;
	}
	k = batch_parse_line(line, n, b->n == 0, &id, &why);
	if (k == BATCH_SKIP) {
		return 0;
	}
	if (k < 0) {
		return add_error(b, lineno, k, why);
	}
	if ((r = seen_add(b, &id)) < 0) {
		return r;
	}
	if (r == 1) {
		return add_error(b, lineno, ML_ERR_EXISTS,
		    "duplicate serial (an earlier line has it)");
	}
	if (b->n >= BATCH_MAX_NOTES) {
		return ML_ERR_TOO_LARGE;
	}
	if (b->n == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 256;
		struct batch_entry *nv = reallocarray(b->v, ncap, sizeof(*nv));

		if (nv == NULL) {
			return ML_ERR_NOMEM;
		}
		b->v = nv;
		b->cap = ncap;
	}
	b->v[b->n++] = (struct batch_entry){ lineno, id };
	return 0;
}

int
batch_parse_buf(struct batch *b, const uint8_t *buf, size_t len)
{
	struct ml_rd rd = ML_RD_INIT(buf, len);
	const uint8_t *nl;
	size_t n;
	int r;

	while (ml_rd_left(&rd) > 0) {
		nl = memchr(ml_rd_ptr(&rd), '\n', ml_rd_left(&rd));
		n = nl != NULL ? (size_t)(nl - ml_rd_ptr(&rd)) : ml_rd_left(&rd);
		if ((r = add_line(b, ml_rd_ptr(&rd), n)) != 0) {
			return r;
		}
		if ((r = ml_rd_bytes(&rd, nl != NULL ? n + 1 : n, NULL)) != 0) {
			return r;
		}
	}
	return 0;
}

int
batch_read(struct batch *b, FILE *f)
{
	uint8_t line[BATCH_LINE_MAX + 2];
	size_t n = 0;
	bool overlong = false;
	int c, r;

	while ((c = getc(f)) != EOF) {
		if (c == '\n') {
			r = add_line(b, line, overlong ? BATCH_LINE_MAX + 1 : n);
			if (r != 0) {
				return r;
			}
			n = 0;
			overlong = false;
			continue;
		}
		if (n < sizeof(line)) {
			line[n++] = (uint8_t)c;
		} else {
			overlong = true;
		}
	}
	if (ferror(f)) {
		return ml_errf_sys(ML_ERR_IO, "cannot read");
	}
	if (n > 0 || overlong) {
		return add_line(b, line, overlong ? BATCH_LINE_MAX + 1 : n);
	}
	return 0;
}

void
batch_clear(struct batch *b)
{
	struct seen *s;

	if (b == NULL) {
		return;
	}
	s = b->seen;
	if (s != NULL) {
		free(s->slot);
		free(s);
	}
	free(b->v);
	free(b->err);
	*b = (struct batch){ 0 };
}
