/*
 * The note registry (BN-7): enrolled chips, registered notes, flags and
 * reject counters, in SQLite (WAL, synchronous=FULL: a registration is on
 * disk before the server acknowledges it).
 *
 * Until server/registry.{c,h} lands this file opens its own database; its
 * schema (NOTE_DB_SCHEMA) is written to be appended, as is, to the
 * registry's migrations list.
 *
 * Exactly-once: note_id and chip_serial are each UNIQUE in note, so a note
 * is registered once and a chip carries one note whatever the retries; a
 * retry of the same (note, chip, feature) answers the first registration.
 *
 * Thread safety: every function may be called from any thread (one
 * connection behind a mutex).
 */
#ifndef NOTE_DB_H
#define NOTE_DB_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "ml_ossl.h"

#define NOTE_CHIP_SERIAL_LEN	16
#define NOTE_DB_ID_MAX		32
#define NOTE_DB_FEATURE_MAX	1024

struct note_db;

struct note_reg {
	char		 note_id[NOTE_DB_ID_MAX + 1];
	char		 chip_serial[NOTE_CHIP_SERIAL_LEN + 1];
	const uint8_t	*feature;
	size_t		 feature_len;
	uint8_t		 challenge[16];
	uint8_t		 station_sig[ML_P256_SIG_LEN];
	uint8_t		 issuer_pub[ML_P256_PUB_LEN];
};

struct note_row {
	uint64_t	 reg_id;
	char		 chip_serial[NOTE_CHIP_SERIAL_LEN + 1];
	uint8_t		 feature[NOTE_DB_FEATURE_MAX];
	size_t		 feature_len;
};

ML_MUST_CHECK int note_db_open(const char *path, struct note_db **ret);
void		 note_db_close(struct note_db *db);	/* NULL-safe */

/*
 * Enrol a chip key.  0 when new, 1 when the same key was already enrolled,
 * ML_ERR_EXISTS when the serial is enrolled with another key.
 */
ML_MUST_CHECK int note_db_enrol(struct note_db *db, const char *chip_serial,
    const uint8_t pub[static ML_P256_PUB_LEN]);

/* ML_ERR_NOT_FOUND when the chip is not enrolled. */
ML_MUST_CHECK int note_db_chip_pub(struct note_db *db, const char *chip_serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);

/*
 * Register a note in one transaction.  Returns 0 (*ret_reg_id new), 1
 * (the same note/chip/feature was registered before: its *ret_reg_id), or
 * a positive NOTE_R_* + 100 for a refusal (duplicate serial, chip used),
 * or a negative ML_ERR_*.  Durable before returning 0.
 */
ML_MUST_CHECK int note_db_register(struct note_db *db, const struct note_reg *nr,
    uint64_t *ret_reg_id);

/* The note registered under note_id.  ML_ERR_NOT_FOUND if none. */
ML_MUST_CHECK int note_db_lookup(struct note_db *db, const char *note_id,
    struct note_row *ret);

/* Record that note_id was presented by chip_serial in a conflicting way. */
ML_MUST_CHECK int note_db_flag(struct note_db *db, const char *note_id,
    const char *chip_serial, const char *reason);
/* 1 if note_id has flags, 0 if not. */
ML_MUST_CHECK int note_db_flagged(struct note_db *db, const char *note_id);

/* Count one rejection under its reason name. */
ML_MUST_CHECK int note_db_count_reject(struct note_db *db, const char *reason);

/* Registered notes (for tests, the demo summary). */
ML_MUST_CHECK int note_db_count_notes(struct note_db *db, uint64_t *ret_n);

/*
 * Another back-end behind the same API (the shared PostgreSQL
 * registry, server/note_db_reg.c).  Each operation has the semantics and
 * return values of the note_db_* function of the same name; ctx is
 * borrowed and must be thread-safe.  note_db_close() frees the handle only.
 */
struct note_db_ops {
	int	(*enrol)(void *ctx, const char *chip_serial,
		    const uint8_t pub[static ML_P256_PUB_LEN]);
	int	(*chip_pub)(void *ctx, const char *chip_serial,
		    uint8_t ret_pub[static ML_P256_PUB_LEN]);
	int	(*register_note)(void *ctx, const struct note_reg *nr,
		    uint64_t *ret_reg_id);
	int	(*lookup)(void *ctx, const char *note_id, struct note_row *ret);
	int	(*flag)(void *ctx, const char *note_id, const char *chip_serial,
		    const char *reason);
	int	(*flagged)(void *ctx, const char *note_id);
	int	(*count_reject)(void *ctx, const char *reason);
	int	(*count_notes)(void *ctx, uint64_t *ret_n);
};
ML_MUST_CHECK int note_db_open_ops(const struct note_db_ops *ops, void *ctx,
    struct note_db **ret);

#endif
