/*
 * The SAM back-end (ID-10): whatever turns a card's configuration and
 * encrypted ID data into the plaintext ID information.  The server holds
 * one struct sam, shared by every reader connection at once: back-ends
 * must be thread-safe (sam_decode() is called concurrently from worker
 * threads).
 *
 *= REQ ID-10 (remote SAM)
 *# The server hands configuration + encrypted ID data to a SAM (in the
 *# server or separate; shared by many readers), gets the plaintext ID
 *# information
 *
 * Back-ends: "emul:" (in process, sam_emul.c) and "pcsc:" (SAM modules
 * behind PC/SC over the chip link, sam_pcsc.c).  Another driver (a SAM
 * server over the network) is one more struct sam_ops and one line in
 * sam_backends[] (sam.c); docs/idcard.md says what each operation must do.
 *
 * Functions return 0 or a negative ML_ERR_*; outputs untouched on failure.
 */
#ifndef SAM_H
#define SAM_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "ml_wr.h"

#define SAM_MAX_INFO	8192	/* ID information TLV */

struct sam_ops {
	const char	*name;		/* the spec prefix: "emul" */
	/* arg: the spec after "name:" (never NULL, may be empty). */
	int		(*open)(const char *arg, void **ret_ctx);
	void		(*close)(void *ctx);
	/*
	 * Decode one card: config (the card's plaintext configuration,
	 * idcard_format.h) and data (its encrypted ID data).  Append the ID
	 * information TLV (idcard_format.h) to info, or fail with:
	 * ML_ERR_AUTH	 the SAM cannot decrypt this card (unknown card,
	 *		 wrong key, tampered data);
	 * ML_ERR_FORMAT the configuration or the decrypted data is malformed;
	 * ML_ERR_BUSY-like conditions as ML_ERR_TIMEOUT;
	 * ML_ERR_IO	 the SAM device failed.
	 * Must be thread-safe; must wipe any intermediate plaintext.
	 */
	int		(*decode)(void *ctx, const uint8_t *config,
			    size_t config_len, const uint8_t *data,
			    size_t data_len, struct ml_wr *info);
};

struct sam;

/*
 * Open a SAM from a spec "NAME:ARG", e.g. "emul:/etc/mintline/sam.key" or
 * "emul:/etc/mintline/sam.key,slots=4".  ML_ERR_NOT_FOUND for an unknown
 * back-end name.
 */
ML_MUST_CHECK int sam_open(const char *spec, struct sam **ret_sam);
void		 sam_close(struct sam *s);		/* NULL-safe */
const char	*sam_name(const struct sam *s);

/* Thread-safe: see struct sam_ops decode. */
ML_MUST_CHECK int sam_decode(struct sam *s, const uint8_t *config,
    size_t config_len, const uint8_t *data, size_t data_len,
    struct ml_wr *info);

/* Counters since open (thread-safe snapshots). */
struct sam_stats {
	uint64_t	 decodes;
	uint64_t	 failures;
};
void		 sam_get_stats(const struct sam *s, struct sam_stats *ret);

/* Back-ends. */
extern const struct sam_ops sam_emul_ops;	/* sam_emul.c */
extern const struct sam_ops sam_pcsc_ops;	/* sam_pcsc.c: "pcsc:FILTER" */

#endif
