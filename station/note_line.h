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
 *
 * Follow mode (cfg.follow, OP-1's continuous line and desk): the line runs
 * until note_line_stop() (SIGINT/SIGTERM with note_line_stop_on_signals()).
 * Each position waits for a chip to arrive (chiplink/chiplink_watch.h:
 * PC/SC SCardGetStatusChange on every reader; in-process, the position
 * directory), runs the job on it once, waits for it to be taken away, and
 * waits for the next.  In-process with cfg.chips a directory, the feeder
 * instead waits for new images to appear in it.  A job in progress when
 * the stop comes is finished; no new chip is started.
 *
 * Events: cfg.event (may be NULL) gets every position state change, from
 * the position's thread; the commands add their own per-chip results
 * through the same struct, so one subscriber (the terminal status, JSON
 * lines, a web page) sees the whole line.
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

enum note_line_state {
	NL_WAITING,	/* no chip: waiting for one */
	NL_WORKING,	/* a chip arrived; the job runs */
	NL_DONE,	/* job finished: waiting for the chip to be taken off */
	NL_RESULT,	/* a command's per-chip result (result, detail) */
	NL_GONE,	/* the position's reader is not answering */
};

struct note_line_event {
	size_t			 position;
	const char		*name;		/* reader / position name */
	enum note_line_state	 state;
	const char		*chip;		/* chip serial, or NULL */
	const char		*result;	/* NL_RESULT: "issued", "GENUINE" */
	const char		*detail;	/* reason, or NULL */
};

typedef void (*note_line_event_fn)(void *ctx, const struct note_line_event *ev);

/* "waiting", "working", "done", "result", "gone" */
const char	*note_line_state_name(enum note_line_state st);

/* The most worker threads, so positions served at once, one line runs (the
 * in-process line has 256 positions): the commands size their per-worker
 * state (uplinks, position marks) by it and bound --workers with it. */
#define NL_MAX_WORKERS		256

struct note_line_cfg {
	const char	*link_spec;	/* "inproc:DIR", "pcsc:..." */
	const char	*chips;		/* inproc: directory of images or one image */
	size_t		 workers;	/* 0: one per position */
	note_line_job	 job;
	note_line_hook	 start, stop;	/* may be NULL */
	void		*ctx;
	bool		 follow;	/* run until note_line_stop() */
	note_line_event_fn event;	/* may be NULL; called with ctx */
};

/*
 * Run the line until the feeder is empty or every worker stopped.
 * *ret_chips gets the number of chips fed.  Returns 0 or the first error.
 */
ML_MUST_CHECK int note_line_run(const struct note_line_cfg *cfg,
    size_t *ret_chips);

/* The number of positions of a link spec (for sizing per-worker state). */
ML_MUST_CHECK int note_line_positions(const char *link_spec, size_t *ret_n);

/* Stop every running line (async-signal-safe). */
void		 note_line_stop(void);
/* SIGINT and SIGTERM call note_line_stop(). */
void		 note_line_stop_on_signals(void);
/* True once note_line_stop() was called. */
bool		 note_line_stopping(void);
/* The signal that stopped the lines (SIGINT, SIGTERM), or 0. */
int		 note_line_stop_signal(void);

#endif
