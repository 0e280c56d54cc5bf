/*
 * A mint line: chips arriving at line positions, one worker thread per
 * position, pipelined (BN-1).
 *
 * In-process line ("inproc:DIR"): a feeder hands out the chip images of a
 * directory (every regular "*.chip" file, in name order) to positions as
 * they become free: chiplink_inproc_feed() puts an image into the
 * position, the worker runs the per-chip job, then takes the chip out.
 * Single-image mode (one path instead of a directory) works the same way.
 * Other transports (PC/SC): each worker runs the job once on the chip
 * present in its position.
 */
#ifndef ST_NOTE_LINE_H
#define ST_NOTE_LINE_H

#include <stdbool.h>
#include <stddef.h>

#include "chipcmd.h"
#include "chiplink.h"
#include "ml_err.h"

/* The per-chip job: return 0 to continue, 1 to stop this worker (nothing
 * more to do), or ML_ERR_* to stop the line. */
typedef int (*note_line_job)(void *ctx, size_t worker, struct chipcmd *cc,
    const char *image);

/* Called once per worker thread before/after its chips (worker state). */
typedef int (*note_line_hook)(void *ctx, size_t worker);

struct note_line_cfg {
	const char	*link_spec;	/* "inproc:DIR", "pcsc:..." */
	const char	*chips;		/* inproc: directory of images or one image */
	size_t		 workers;	/* 0: one per position */
	note_line_job	 job;
	note_line_hook	 start, stop;	/* may be NULL */
	void		*ctx;
};

/*
 * Run the line until the feeder is empty or every worker stopped.
 * *ret_chips gets the number of chips fed.  Returns 0 or the first error.
 */
ML_MUST_CHECK int note_line_run(const struct note_line_cfg *cfg,
    size_t *ret_chips);

/* The number of positions of a link spec (for sizing per-worker state). */
ML_MUST_CHECK int note_line_positions(const char *link_spec, size_t *ret_n);

#endif
