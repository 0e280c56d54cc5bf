/*
 * The chip's persistent store: one file image holding two copies (slots)
 * of the serialized chip state, each with a header and an HMAC-SHA256 under
 * the chip's device key.  The newest copy that verifies wins.
 *
 * commit: write header+payload into the slot that does not hold the current
 *         copy, then fdatasync.  load: verify both, take the higher gen.
 * A power cut at any byte of a commit leaves either the old valid copy or
 * the new valid copy, never a mix (the tear test checks every byte).
 */
#ifndef STORE_H
#define STORE_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "chip_proto.h"

#define STORE_KEY_LEN	32
#define STORE_HDR_LEN	(4 + 4 + 4 + 32)
#define STORE_SLOT_SIZE	(STORE_HDR_LEN + STORE_MAX_PAYLOAD)
#define STORE_MAGIC	0x4D4C5354u	/* "MLST" */

struct store;

/*
 * Create path (must not exist) and path.key (the device key), then commit
 * payload as generation 1.  Everything is fsynced before returning 0.
 */
ML_MUST_CHECK int store_create(const char *path, const uint8_t *payload,
    size_t len);

/*
 * Open path and load the newest valid copy.  *ret_payload is malloc'd (the
 * caller wipes and frees it with ml_freezero(p, len)).  ML_ERR_FORMAT if no
 * copy verifies, ML_ERR_IO on I/O errors.
 *
 * Several processes may have one store open (a chip shared by several
 * hosts, OP-3).  Each command runs between store_lock() and
 * store_unlock() (flock exclusive on the image: a process that dies
 * holding it releases it) and starts with store_sync().
 */
ML_MUST_CHECK int store_open(const char *path, struct store **ret_store,
    uint8_t **ret_payload, size_t *ret_len);
/* Block until this host has the store to itself.  ML_ERR_IO. */
ML_MUST_CHECK int store_lock(struct store *s);
void		 store_unlock(struct store *s);
/*
 * Locked: has another host committed since our copy?  1: no.  0: yes,
 * and the newest copy is in *ret_payload (as store_open).  ML_ERR_*.
 */
ML_MUST_CHECK int store_sync(struct store *s, uint8_t **ret_payload,
    size_t *ret_len);

/* Commit a new copy (locked, after store_sync).  ML_ERR_TOO_LARGE over
 * STORE_MAX_PAYLOAD, ML_ERR_IO. */
ML_MUST_CHECK int store_commit(struct store *s, const uint8_t *payload,
    size_t len);

/* The current copy's generation: it changes with every commit by any
 * host (GET DATA 01 tag CB, the store change counter). */
uint32_t	 store_generation(const struct store *s);
void		 store_close(struct store *s);	/* NULL-safe; wipes the key */

#ifdef ML_TEST_HOOKS
/*
 * Test hook (-Dtest_hooks=true only): the next commit writes only its
 * first k bytes and then fails with ML_ERR_IO as if power were cut (k < 0:
 * off).  After a cut every commit fails until the store is reopened.
 */
void		 store_test_cut_after(struct store *s, long k);
#endif

#endif
