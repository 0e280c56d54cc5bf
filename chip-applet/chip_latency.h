/*
 * Chip latency model: make an emulated chip take as long as a real one.
 *
 * The card OS answers in microseconds; a contactless secure element takes
 * tens of milliseconds per public-key operation and a few per APDU round
 * trip.  A profile gives every APDU a time:
 *
 *	time = apdu.fixed + apdu.per_byte * bytes
 *	     + ins[INS].fixed + ins[INS].per_byte * bytes
 *
 * where bytes is the command plus the response length.  The caller starts
 * a clock before chip_transmit() and waits until start + time afterwards,
 * so the emulator's own work counts toward the modelled time, and holds the
 * chip (its slot lock) while it waits, as a real chip is busy.  Throughput
 * of a line with many positions (BN-1..BN-8 at scale) can then be measured
 * against positions / chip time per note.
 *
 * Profile text, one entry per line, '#' starts a comment:
 *
 *	default				the built-in profile (below), whose
 *					entries the following lines override
 *	apdu FIXED_US [PER_BYTE_NS]	every APDU
 *	XX   FIXED_US [PER_BYTE_NS]	INS XX (two hex digits, any CLA)
 *
 * The built-in profile models a contactless P-256 secure element; its
 * figures and their sources are in docs/benchmarks.md ("Chip latency
 * model").  No profile, no delay: tests and the demo run at full speed.
 */
#ifndef CHIP_LATENCY_H
#define CHIP_LATENCY_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "ml_err.h"

#define CHIP_LATENCY_MAX_FIXED_US	10000000u	/* 10 s */
#define CHIP_LATENCY_MAX_PER_BYTE_NS	1000000u	/* 1 ms a byte */

struct chip_latency;

/*
 * Parse profile text (above).  `what` names its origin (a file path) in the
 * error context: "PATH line N: ...".  ML_ERR_ARG for a malformed line,
 * ML_ERR_NOMEM.  *ret untouched on failure.
 */
ML_MUST_CHECK int chip_latency_parse(const char *text, const char *what,
    struct chip_latency **ret);
/*
 * A profile from a spec: "default" (the built-in profile) or the path of a
 * profile file.  ML_ERR_IO (file path + errno text), or as above.
 */
ML_MUST_CHECK int chip_latency_load(const char *spec,
    struct chip_latency **ret);
void		 chip_latency_free(struct chip_latency *lat);	/* NULL-safe */

/* The built-in profile's text (what "default" stands for). */
const char	*chip_latency_default_text(void);

/* Modelled time of one exchange, in nanoseconds. */
uint64_t	 chip_latency_ns(const struct chip_latency *lat,
		    const uint8_t *cmd, size_t cmd_len, size_t resp_len);

/* Start the clock of one exchange (CLOCK_MONOTONIC). */
void		 chip_latency_start(struct timespec *t0);
/*
 * Wait until t0 + the exchange's modelled time and add it to the totals.
 * NULL lat: returns at once.
 */
void		 chip_latency_wait(struct chip_latency *lat,
		    const struct timespec *t0, const uint8_t *cmd,
		    size_t cmd_len, size_t resp_len);

/* Totals since the profile was made: exchanges and modelled time (ns). */
void		 chip_latency_totals(const struct chip_latency *lat,
		    uint64_t *ret_apdus, uint64_t *ret_ns);

#endif
