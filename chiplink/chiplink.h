/*
 * The chip link: how everything above the chip (the PKCS#11 module, the
 * station, tests, benchmarks) reaches chips, whatever the transport.
 *
 * A link has a fixed set of slots (reader positions) with stable indexes.
 * A slot holds at most one chip at a time; chips come and go.
 *
 * Transports, selected by a spec string:
 *   "inproc:DIR"		the in-process line over directory DIR.
 *				Position i is DIR/pos-NN (NN = %02u), a symlink to
 *				a chip image; present while the symlink exists.
 *				Positions: the count of DIR/pos-* entries at open
 *				time or the "positions" file in DIR (one number).
 *				A "latency" file in DIR makes every chip take
 *				the times of that profile (chip_latency.h).
 *				The applet code runs in this process.
 *   "pcsc:" / "pcsc:FILTER"	every PC/SC reader (whose name contains
 *				FILTER) through libpcsclite; the chip is a real
 *				or virtual (vpcd + mintline-chip) card.
 *
 * Thread safety: every function may be called from any thread; each slot
 * has its own lock around an APDU exchange, so different slots run in
 * parallel and one slot is serialised.
 */
#ifndef CHIPLINK_H
#define CHIPLINK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

struct chiplink;

#define CHIPLINK_NAME_MAX	128

struct chiplink_slot_info {
	char		 name[CHIPLINK_NAME_MAX];	/* reader / position name */
	bool		 present;			/* a chip is in the field */
	uint64_t	 generation;	/* bumps each time a (new) chip arrives */
};

/* Open a link from a spec (above).  *ret_link untouched on failure. */
ML_MUST_CHECK int chiplink_open(const char *spec, struct chiplink **ret_link);
void		 chiplink_close(struct chiplink *l);	/* NULL-safe */

size_t		 chiplink_nslots(const struct chiplink *l);

/* Refresh presence and fill *ret.  ML_ERR_ARG for a bad index. */
ML_MUST_CHECK int chiplink_slot_info(struct chiplink *l, size_t slot,
    struct chiplink_slot_info *ret);

/*
 * Exchange one APDU with the chip in slot.  The chip is powered (and, for
 * inproc, its image opened) on first use after arrival.  ML_ERR_REMOVED if
 * no chip is present or the chip changed since `generation` (pass 0 to
 * accept any).  resp gets data || SW1 SW2.
 */
ML_MUST_CHECK int chiplink_transmit(struct chiplink *l, size_t slot,
    uint64_t generation, const uint8_t *cmd, size_t cmd_len, uint8_t *resp,
    size_t resp_cap, size_t *ret_resp_len);

/*
 * Hold the slot's lock across several APDUs (a command sequence that must
 * not interleave with another thread's, such as VERIFY PIN then SIGN).
 * chiplink_transmit() inside a held section does not re-lock.
 */
void		 chiplink_lock(struct chiplink *l, size_t slot);
void		 chiplink_unlock(struct chiplink *l, size_t slot);

/*
 * Wait up to timeout_ms (-1: forever, 0: poll) for a presence change on any
 * slot.  Returns 0 with the slot in *ret_slot, ML_ERR_TIMEOUT, or an error.
 */
ML_MUST_CHECK int chiplink_wait(struct chiplink *l, int timeout_ms,
    size_t *ret_slot);

/*
 * In-process line only: put the chip image at image_path into position
 * slot (atomically replacing any chip there), or take it out (NULL).
 * ML_ERR_UNSUPPORTED on other transports.
 */
ML_MUST_CHECK int chiplink_inproc_feed(struct chiplink *l, size_t slot,
    const char *image_path);

/* Convenience: exchange and split the status word.  data gets the response
 * data (without SW), *ret_sw the status word. */
ML_MUST_CHECK int chiplink_apdu(struct chiplink *l, size_t slot,
    uint64_t generation, const uint8_t *cmd, size_t cmd_len, uint8_t *data,
    size_t data_cap, size_t *ret_data_len, uint16_t *ret_sw);

#endif
