/*
 * One chip: a card OS instance over a persistent, tear-safe store.
 *
 * The same code runs linked into a host (the in-process line) and behind a
 * virtual reader (mintline-chip over pcscd + vpcd).  The chip itself does no
 * locking: one caller at a time (the chip link serialises).
 */
#ifndef CHIP_H
#define CHIP_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

enum chip_kind {
	CHIP_KIND_READER = 1,	/* reader secure chip (ID-14) */
	CHIP_KIND_NOTE	 = 2,	/* banknote chip (BN-1..BN-8) */
	CHIP_KIND_IDCARD = 3,	/* resident ID card stand-in (ID-6..ID-8) */
	CHIP_KIND_SAM	 = 4,	/* SAM module in a server's SAM slot (ID-10) */
};

#define CHIP_SERIAL_LEN		16	/* printable, fixed width, prefix-free */
#define CHIP_MAX_CMD		(4 + 3 + 65535 + 3)	/* extended case 4 */
#define CHIP_MAX_RESP		(65536 + 2)

struct chip;

/* "reader", "note", "idcard", "sam" -> kind; 0 if unknown. */
enum chip_kind	 chip_kind_from_name(const char *name);
const char	*chip_kind_name(enum chip_kind kind);

/*
 * Manufacture a blank chip image at path (which must not exist): kind,
 * a serial of at most CHIP_SERIAL_LEN printable characters (space padded),
 * a fresh per-chip device key (the store MAC key, kept in path + ".key",
 * standing in for a key fused into silicon), default PINs from the
 * personalisation profile in docs/apdu.md.
 */
ML_MUST_CHECK int chip_manufacture(const char *path, enum chip_kind kind,
    const char *serial);

/*
 * Power on: load the newest valid store copy.  ML_ERR_IO, ML_ERR_FORMAT
 * (no valid copy), ML_ERR_NOMEM.  *ret_chip untouched on failure.
 */
ML_MUST_CHECK int chip_open(const char *path, struct chip **ret_chip);
/* Power off: volatile state (session keys, login state, caches marked
 * volatile) is wiped.  NULL-safe. */
void		 chip_close(struct chip *c);
/* Warm reset: forget selection, login state and live challenges. */
void		 chip_reset(struct chip *c);

enum chip_kind	 chip_kind(const struct chip *c);
const char	*chip_serial(const struct chip *c);	/* NUL-terminated */
/* Answer-to-reset bytes. */
const uint8_t	*chip_atr(const struct chip *c, size_t *ret_len);

/*
 * Exchange one command APDU.  resp receives response data followed by
 * SW1 SW2; resp_cap must be at least CHIP_MAX_RESP... or at least 258 for
 * short-Le use (longer answers are chained with 61xx / GET RESPONSE).
 * Returns 0 (whatever the status word) or ML_ERR_* for a host-side
 * failure (ML_ERR_IO: the store could not be written).
 */
ML_MUST_CHECK int chip_transmit(struct chip *c, const uint8_t *cmd,
    size_t cmd_len, uint8_t *resp, size_t resp_cap, size_t *ret_resp_len);

#ifdef ML_TEST_HOOKS
/* Test hook: make the next store commit stop after `k` bytes (power cut).
 * Negative disables.  Only with -Dtest_hooks=true. */
void		 chip_test_cut_after(struct chip *c, long k);
#endif

#endif
