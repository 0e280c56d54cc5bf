/*
 * Presence watching on a chip link: wait for a chip to arrive in a slot,
 * or for the chip in a slot to be taken away, without polling each slot
 * from its own thread.
 *
 * One watcher thread per link blocks in chiplink_wait() (PC/SC:
 * SCardGetStatusChange on every reader; in-process: the position
 * directory) and wakes every waiter on any presence change; a waiter then
 * looks at its own slot (chiplink_slot_info).  Waiters also look again at
 * least every CHIPLINK_WATCH_RECHECK_MS, so a missed change costs latency,
 * never a stuck position.  A reader that goes away reads as "no chip"
 * (PC/SC: SCARD_STATE_UNAVAILABLE / UNKNOWN); *ret_gone tells which.
 *
 * Thread safety: any number of threads may wait on any slots at once.
 */
#ifndef CHIPLINK_WATCH_H
#define CHIPLINK_WATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chiplink.h"
#include "ml_err.h"

#define CHIPLINK_WATCH_RECHECK_MS	250

struct chiplink_watch;

/* Start watching l (borrowed; outlives the watch).  *ret untouched on
 * failure. */
ML_MUST_CHECK int chiplink_watch_new(struct chiplink *l,
    struct chiplink_watch **ret);
/* Stop the watcher thread and free.  No waiter may be running.  NULL-safe. */
void		 chiplink_watch_free(struct chiplink_watch *w);

/*
 * Wait until slot holds a chip whose generation is not `seen` (0: any
 * chip), for at most timeout_ms (-1: until chiplink_watch_cancel()).
 * 0 with *ret filled; ML_ERR_TIMEOUT; ML_ERR_STATE after chiplink_watch_cancel().
 */
ML_MUST_CHECK int chiplink_watch_arrival(struct chiplink_watch *w,
    size_t slot, uint64_t seen, int timeout_ms,
    struct chiplink_slot_info *ret);

/*
 * Wait until the chip of generation gen has left slot (the slot is empty
 * or holds another chip).  0, ML_ERR_TIMEOUT or ML_ERR_STATE (cancelled).
 */
ML_MUST_CHECK int chiplink_watch_removal(struct chiplink_watch *w,
    size_t slot, uint64_t gen, int timeout_ms);

/* Make every present and future wait return ML_ERR_STATE (signal-safe:
 * only sets a flag; waiters notice within CHIPLINK_WATCH_RECHECK_MS). */
void		 chiplink_watch_cancel(struct chiplink_watch *w);

#endif
