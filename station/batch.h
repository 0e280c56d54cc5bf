/*
 * Issuance batch input: the notes a printing line feeds to the station.
 *
 * One note per line, "PREFIX,SERIAL" (BN-2's serial prefix number and
 * serial), from a CSV file or stdin.  Blank lines and lines starting with
 * '#' are skipped; so is a header line "prefix,serial" (any case) before
 * the first note.  Spaces or tabs around a field and a CR before the LF
 * are allowed.  Every line is parsed through a bounded reader (ml_rd); a
 * malformed line is reported with its number and the rest of the batch
 * goes on.  A UTF-8 byte order mark before the first line is skipped.  A line longer than BATCH_LINE_MAX is malformed (and skipped to
 * its end).  A serial that appeared on an earlier line is reported as a
 * duplicate.
 */
#ifndef ST_BATCH_H
#define ST_BATCH_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "feature.h"
#include "ml_err.h"

#define BATCH_LINE_MAX		256
#define BATCH_MAX_NOTES		(10 * 1000 * 1000)

enum batch_line_kind {
	BATCH_NOTE = 0,		/* *ret_id filled */
	BATCH_SKIP = 1,		/* blank, comment or header */
};

/*
 * Parse one line (without its LF).  Returns BATCH_NOTE and fills *ret_id,
 * BATCH_SKIP, or a negative ML_ERR_* with a static reason in *ret_why.
 * allow_header: a "prefix,serial" header is accepted on this line.
 */
ML_MUST_CHECK int batch_parse_line(const uint8_t *line, size_t n,
    int allow_header, struct note_id *ret_id, const char **ret_why);

struct batch_entry {
	unsigned long	 lineno;
	struct note_id	 id;
};

struct batch_error {
	unsigned long	 lineno;
	int		 r;
	const char	*why;	/* static */
};

struct batch {
	struct batch_entry	*v;
	size_t			 n, cap;
	struct batch_error	*err;
	size_t			 nerr, errcap;
	unsigned long		 lines;
	void			*seen;	/* duplicate detection (private) */
};

/*
 * Parse a whole batch held in memory, appending to b (zero-initialised the
 * first time).  Malformed lines go to b->err; returns 0, or ML_ERR_NOMEM /
 * ML_ERR_TOO_LARGE (more than BATCH_MAX_NOTES) which stop the parse.
 */
ML_MUST_CHECK int batch_parse_buf(struct batch *b, const uint8_t *buf,
    size_t len);

/* Read a batch from a stream (a file, or stdin). ML_ERR_IO on read error. */
ML_MUST_CHECK int batch_read(struct batch *b, FILE *f);

/* Free what b holds; b is left empty and reusable.  NULL-safe. */
void		 batch_clear(struct batch *b);

#endif
