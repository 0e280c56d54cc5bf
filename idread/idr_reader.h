/*
 * The reader host (ID-1, ID-6, ID-7, ID-9, ID-11..ID-13): the card in the
 * field, the reader secure chip's ID cache, and one read.  Used by
 * `mintline-station id-read` (one shot) and `mintline-station reader`
 * (long-running), the integration tests and the benchmark.
 *
 * Both chips are reached through one chip link (chiplink.h): the reader
 * secure chip at reader_slot, the RF field at card_slot.  The secure chip
 * must be initialised with a user PIN; this host logs in once at open.
 *
 * Not thread-safe: one thread drives a struct idr_reader.
 */
#ifndef IDR_READER_H
#define IDR_READER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "chiplink.h"
#include "idcard_format.h"
#include "idr_client.h"

#define IDR_IDLE_DEFAULT_MS	30000

struct idr_reader_cfg {
	size_t		 reader_slot;	/* position of the reader secure chip */
	size_t		 card_slot;	/* the RF field */
	const char	*pin;		/* reader chip user PIN */
	uint8_t		 cache_mode;	/* 0: keep the chip's; else CACHE_MODE_*
					 * (ID-13), set with so_pin */
	const char	*so_pin;
	uint32_t	 idle_ms;	/* no card this long: forget (ID-9/12);
					 * 0: IDR_IDLE_DEFAULT_MS */
	uint16_t	 pkt_size;	/* 0: IDR_PKT_DEFAULT */
	uint8_t		 per_record;	/* 0: IDR_BURST_DEFAULT; 1: PKT each */
	int		 timeout_ms;	/* per server reply; 0: default */
};

struct idr_reader;

/*
 * Bind to the reader secure chip, log in, apply cache_mode.  Errors:
 * ML_ERR_REMOVED (no chip at reader_slot), ML_ERR_PIN, ML_ERR_LOCKED,
 * chip errors.
 */
ML_MUST_CHECK int idr_reader_open(struct chiplink *l,
    const struct idr_reader_cfg *cfg, struct idr_reader **ret);
/*
 * Before power-off (ID-12): CACHE CLEAR 0, which also destroys the random
 * key; then free.  NULL-safe.
 */
void		 idr_reader_close(struct idr_reader *r);

/*
 * Look at the field once: a new card is pre-read (ID-6); no card for
 * idle_ms clears the cache (ID-9, ID-12).  Call it on every slot event and
 * periodically (cmd_reader does so every poll interval).
 */
ML_MUST_CHECK int idr_reader_tick(struct idr_reader *r);

/* Open a link to the server for one read (an hs/ channel or loopback). */
typedef int (*idr_connect_fn)(void *ctx, struct idr_link *ret_link);

struct idr_read_info {
	bool			 from_cache;	/* answered by the chip (ID-11) */
	bool			 data_cached;	/* encrypted data from the chip (ID-7) */
	struct idr_upload_stats	 up;
	uint8_t			 card_serial[IDC_SERIAL_LEN];
};

/*
 * One read command (ID-1): answered from the secure chip's plaintext cache
 * when this card's information is there (no server round trip, ID-11);
 * else the encrypted ID data (secure chip cache, or the card then cached,
 * ID-7) is uploaded over connect()'s link and the returned information is
 * cached under the chip's random key.  ret_info gets the information
 * (personal data: idc_info_clear() it).  Errors: ML_ERR_REMOVED (no card,
 * or the card left during the read: nothing is cached for it), the upload
 * errors of idr_upload() (ML_ERR_AUTH: the SAM cannot decrypt this card).
 */
ML_MUST_CHECK int idr_reader_read(struct idr_reader *r, idr_connect_fn connect,
    void *cctx, const struct idr_faults *faults, struct idc_info *ret_info,
    struct idr_read_info *ret);

/* Forget everything now (CACHE CLEAR 0). */
ML_MUST_CHECK int idr_reader_forget(struct idr_reader *r);

#ifdef ML_TEST_HOOKS
/* Test hook (-Dtest_hooks=true only): remove the card (inproc line) after
 * this many READ BINARY blocks; -1 off. */
void		 idr_reader_test_remove_after(struct idr_reader *r, int blocks);
#endif

/* ---- provisioning (tests, benchmark, tools) ---- */

/* INIT TOKEN with so_pin and label, set the user PIN, optionally set the
 * cache mode (0: leave). */
ML_MUST_CHECK int idr_reader_personalize(struct chiplink *l, size_t slot,
    const char *so_pin, const char *user_pin, uint8_t mode);

/* ---- output ---- */

/* "text" or "json" on f; photo to photo_path unless NULL. */
ML_MUST_CHECK int idr_print_info(FILE *f, const struct idc_info *info,
    bool json, const char *photo_path);

/* ---- the reader key inside the secure chip (ID-14) ---- */

/*
 * The reader key (keys/key.h, in the caller's *ret) over this reader's
 * chip session: SIGN (CKM_ECDSA), ECDH and GET CHALLENGE for random, with
 * the first private key that may sign (LIST OBJECTS).  ret->ctx is ir:
 * valid while ir lives.  ML_ERR_NOT_FOUND if the chip holds no such key.
 */
ML_MUST_CHECK int idr_reader_key(struct idr_reader *ir, struct key *ret);
/* Provisioning: generate a key pair inside the chip (user logged in);
 * the public point in ret_pub. */
ML_MUST_CHECK int idr_reader_genkey(struct idr_reader *ir,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);
/* The reader chip's serial, trailing spaces removed. */
const char	*idr_reader_serial(const struct idr_reader *ir);

#endif
