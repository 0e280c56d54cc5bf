/*
 * The server's registry: ONE interface, ONE schema, ONE database.
 *
 *   readers	reader/station serial <-> certificate number, kind, risk flag,
 *		factory data (ID-3, ID-5)
 *   risk records	per-reader events: reads, errors, reports, transactions,
 *		handshakes, refusals (ID-3)
 *   chips	enrolled note-chip keys (BN-7)
 *   notes	registered notes, flags and refusal counts (BN-7, BN-8)
 *   note_reservation	serials promised to a chip by a pre-check (OP-3)
 *
 * Back-ends implement struct reg_ops: SQLite (registry_sqlite.c, one file)
 * and PostgreSQL (registry_pg.c, one database shared by a fleet).  Both
 * apply the one list of migrations in migrations.c at open.  Callers use
 * the reg_* wrappers only; every back-end is thread-safe (workers call it
 * concurrently).  docs/architecture.md says where a new back-end goes.
 *
 * Functions return 0 or a negative ML_ERR_*; ret_ outputs are untouched on
 * failure.  ML_ERR_NOT_FOUND for a missing row.  A back-end may leave an
 * operation NULL: the wrapper then returns ML_ERR_UNSUPPORTED.
 */
#ifndef ML_REGISTRY_H
#define ML_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hs_api.h"
#include "ml_err.h"
#include "ml_ossl.h"

#define REG_MAX_FACTORY		512	/* factory data, free text */
#define REG_MAX_DETAIL		256	/* event detail, free text */

#define NOTE_CHIP_SERIAL_LEN	16
#define NOTE_DB_ID_MAX		32
#define NOTE_DB_FEATURE_MAX	1024

#define REG_PG_POOL_DEFAULT	8	/* PostgreSQL connections */
#define REG_PG_POOL_MAX		64

struct reg_reader {
	char		 serial[HS_MAX_SERIAL + 1];
	char		 certno[HS_MAX_CERTNO + 1];
	enum hs_kind	 kind;
	bool		 flagged;		/* risk control: refuse (ID-5) */
	char		 factory[REG_MAX_FACTORY + 1];	/* ID-3 factory data */
	int64_t		 created;		/* unix seconds */
};

/* Risk-record kinds (ID-3): what happened with a reader. */
enum reg_event {
	REG_EV_READ = 1,	/* an ID card read */
	REG_EV_ERROR = 2,	/* an error it caused or reported */
	REG_EV_REPORT = 3,	/* a report filed about it */
	REG_EV_TRANSACTION = 4,	/* a transaction (e.g. a note issued) */
	REG_EV_HANDSHAKE = 5,	/* a completed handshake */
	REG_EV_REJECT = 6,	/* a refused handshake (alert code in detail) */
};

/* One risk record, for batched writes. */
struct reg_event_rec {
	char		 serial[HS_MAX_SERIAL + 1];
	enum reg_event	 ev;
	char		 detail[REG_MAX_DETAIL + 1];
	int64_t		 at;			/* unix seconds */
};

struct reg_audit;

/* A note registration request (BN-7): what the sealed upload proved. */
struct note_reg {
	char		 note_id[NOTE_DB_ID_MAX + 1];
	char		 chip_serial[NOTE_CHIP_SERIAL_LEN + 1];
	const uint8_t	*feature;
	size_t		 feature_len;
	uint8_t		 challenge[16];
	uint8_t		 station_sig[ML_P256_SIG_LEN];
	uint8_t		 issuer_pub[ML_P256_PUB_LEN];
	/*
	 * Who uploaded it (OP-5, ID-3), or NULL: the registry then writes, in
	 * the registration's own transaction, this audit row (outcome set to
	 * "ok" for REG_NOTE_NEW, "again" for REG_NOTE_AGAIN) and, for a new
	 * note, a REG_EV_TRANSACTION risk record for audit->actor.
	 */
	const struct reg_audit *audit;
};

/* A registered note, as the desk query needs it (BN-8). */
struct note_row {
	uint64_t	 reg_id;
	char		 chip_serial[NOTE_CHIP_SERIAL_LEN + 1];
	uint8_t		 feature[NOTE_DB_FEATURE_MAX];
	size_t		 feature_len;
};

/*
 * reg_notes_register() results besides ML_ERR_*: the registry's verdict,
 * which the note application maps to its wire reasons.
 */
enum reg_note_result {
	REG_NOTE_NEW = 0,		/* registered now: *ret_reg_id new */
	REG_NOTE_AGAIN = 1,		/* same note, chip, feature: first id */
	REG_NOTE_DUP_SERIAL = 2,	/* note_id on another chip: both flagged */
	REG_NOTE_CHIP_USED = 3,		/* the chip carries another note */
	REG_NOTE_UNKNOWN_CHIP = 4,	/* the chip is not enrolled */
};

/* What reg_notes_import() copied. */
struct reg_import_counts {
	uint64_t	 chips, notes, flags, rejects;
};

/*
 * The audit trail (OP-5): one append-only table, who did what to what.
 * Rows are never changed or deleted (the schema refuses it on both
 * back-ends) and each carries a SHA-256 hash chain over the one before
 * (reg_audit_hash()), so that reg_audit_verify() finds an edited, removed
 * or inserted row.
 */
#define REG_AUDIT_WORD_MAX	32	/* action, outcome */
#define REG_AUDIT_KIND_MAX	16	/* subject_kind */
#define REG_AUDIT_SUBJECT_MAX	64

struct reg_audit {
	int64_t		 id;			/* set by the registry: 1, 2, ... */
	int64_t		 at;			/* unix seconds; 0: now */
	char		 action[REG_AUDIT_WORD_MAX + 1];	/* "register" */
	char		 actor[HS_MAX_SERIAL + 1];	/* station/reader serial */
	char		 actor_certno[HS_MAX_CERTNO + 1];
	char		 subject_kind[REG_AUDIT_KIND_MAX + 1];	/* "note" */
	char		 subject[REG_AUDIT_SUBJECT_MAX + 1];
	char		 outcome[REG_AUDIT_WORD_MAX + 1];	/* "ok", reason */
	char		 detail[REG_MAX_DETAIL + 1];
	uint8_t		 prev_hash[ML_SHA256_LEN];	/* set by the registry */
	uint8_t		 hash[ML_SHA256_LEN];		/* set by the registry */
};

/* Which rows reg_audit_list() gives: "" / 0 fields match everything. */
struct reg_audit_filter {
	const char	*subject_kind;
	const char	*subject;
	const char	*actor;
	int64_t		 since, until;		/* at, inclusive; 0: open */
	int64_t		 after_id;		/* paging: rows with id > this */
	uint32_t	 limit;			/* 0: no limit */
};

/* Called once per row, in id order; nonzero stops the listing with it. */
typedef int (*reg_audit_fn)(void *ctx, const struct reg_audit *row);

struct reg;

struct reg_ops {
	const char	*name;		/* "sqlite", "postgresql" */
	void		(*close)(struct reg *r);
	/* readers and risk records (ID-3) */
	int		(*reader_get)(struct reg *r, const char *serial,
			    struct reg_reader *ret);
	int		(*reader_put)(struct reg *r, const struct reg_reader *rd);
	int		(*reader_flag)(struct reg *r, const char *serial,
			    bool flagged);
	int		(*event_add)(struct reg *r, const char *serial,
			    enum reg_event ev, const char *detail);
	int		(*event_count)(struct reg *r, const char *serial,
			    enum reg_event ev, uint64_t *ret_n);
	int		(*event_add_many)(struct reg *r,
			    const struct reg_event_rec *evs, size_t n);
	/* chips and notes (BN-7, BN-8) */
	int		(*note_enrol)(struct reg *r, const char *chip_serial,
			    const uint8_t pub[static ML_P256_PUB_LEN]);
	int		(*note_chip_pub)(struct reg *r, const char *chip_serial,
			    uint8_t ret_pub[static ML_P256_PUB_LEN]);
	int		(*note_register)(struct reg *r,
			    const struct note_reg *nr, uint64_t *ret_reg_id);
	int		(*note_lookup)(struct reg *r, const char *note_id,
			    struct note_row *ret);
	int		(*note_flag)(struct reg *r, const char *note_id,
			    const char *chip_serial, const char *reason);
	int		(*note_flagged)(struct reg *r, const char *note_id);
	int		(*note_count_reject)(struct reg *r, const char *reason);
	int		(*note_count)(struct reg *r, uint64_t *ret_n);
	int		(*note_import)(struct reg *r, const char *sqlite_path,
			    struct reg_import_counts *ret);
	int		(*note_reserve)(struct reg *r, const char *note_id,
			    const char *chip_serial, const char *station,
			    int64_t now, int64_t until);
	int		(*note_unreserve)(struct reg *r, const char *note_id,
			    int64_t now);
	/* the audit trail */
	int		(*audit_append)(struct reg *r, struct reg_audit *io);
	int		(*audit_list)(struct reg *r,
			    const struct reg_audit_filter *f, reg_audit_fn fn,
			    void *ctx);
	/* the schema version the database is at */
	int		(*schema_version)(struct reg *r, int *ret_version);
};

/* Every back-end's handle starts with this. */
struct reg {
	const struct reg_ops	*ops;
};

/* Back-end settings (mintline-server's configuration). */
struct reg_cfg {
	int		 pg_pool;	/* PostgreSQL connections; 0: default */
};

/*
 * Open the registry.  target: "sqlite:PATH" or a plain PATH (SQLite; the
 * file is created and migrated; WAL, synchronous=FULL), or a PostgreSQL
 * URI / "pg:CONNINFO" (reg_pg_open() below).  cfg may be NULL (defaults).
 * The schema is migrated to REG_SCHEMA_VERSION before this returns.
 */
ML_MUST_CHECK int reg_open(const char *target, const struct reg_cfg *cfg,
    struct reg **ret_reg);
void	reg_close(struct reg *r);			/* NULL-safe */

ML_MUST_CHECK int reg_reader_get(struct reg *r, const char *serial,
    struct reg_reader *ret);
/* Insert or replace the mapping (certificate renewal); ML_ERR_EXISTS when
 * certno belongs to another serial. */
ML_MUST_CHECK int reg_reader_put(struct reg *r, const struct reg_reader *rd);
ML_MUST_CHECK int reg_reader_flag(struct reg *r, const char *serial,
    bool flagged);
ML_MUST_CHECK int reg_event_add(struct reg *r, const char *serial,
    enum reg_event ev, const char *detail);
/* n records in one transaction (one fsync). */
ML_MUST_CHECK int reg_event_add_many(struct reg *r,
    const struct reg_event_rec *evs, size_t n);
/* Number of events of this kind (0 = any) for serial. */
ML_MUST_CHECK int reg_event_count(struct reg *r, const char *serial,
    enum reg_event ev, uint64_t *ret_n);

/*
 * Enrol a chip key.  0 when new, 1 when the same key was already enrolled,
 * ML_ERR_EXISTS when the serial is enrolled with another key.
 */
ML_MUST_CHECK int reg_notes_enrol(struct reg *r, const char *chip_serial,
    const uint8_t pub[static ML_P256_PUB_LEN]);
/* ML_ERR_NOT_FOUND when the chip is not enrolled. */
ML_MUST_CHECK int reg_notes_chip_pub(struct reg *r, const char *chip_serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);
/*
 * Register a note, exactly once (BN-7): an enum reg_note_result or a
 * negative ML_ERR_*.  Durable before REG_NOTE_NEW is returned.
 */
ML_MUST_CHECK int reg_notes_register(struct reg *r, const struct note_reg *nr,
    uint64_t *ret_reg_id);
/* The note registered under note_id.  ML_ERR_NOT_FOUND if none. */
ML_MUST_CHECK int reg_notes_lookup(struct reg *r, const char *note_id,
    struct note_row *ret);
/* Record that note_id was presented by chip_serial in a conflicting way. */
ML_MUST_CHECK int reg_notes_flag(struct reg *r, const char *note_id,
    const char *chip_serial, const char *reason);
/* 1 if note_id has flags, 0 if not. */
ML_MUST_CHECK int reg_notes_flagged(struct reg *r, const char *note_id);
/* Count one refusal under its reason name. */
ML_MUST_CHECK int reg_notes_count_reject(struct reg *r, const char *reason);
ML_MUST_CHECK int reg_notes_count(struct reg *r, uint64_t *ret_n);
/*
 * One-shot import of an older server's separate SQLite note database
 * (tables note_chip, note, note_flag, note_reject) into this registry, in
 * one transaction, rows unchanged (registration ids and times kept).
 * ML_ERR_EXISTS (nothing copied) when the registry holds notes or chips
 * already; ML_ERR_FORMAT when the file is not a note database.
 */
ML_MUST_CHECK int reg_notes_import(struct reg *r, const char *sqlite_path,
    struct reg_import_counts *ret);

/*
 * Promise note_id to chip_serial until `until` (unix seconds), in one
 * atomic statement (OP-3): 0 when taken, or renewed because the promise
 * had run out (expires <= now), is this chip's, or is the same non-empty
 * station's (it asks again for another chip: the first was never
 * written); ML_ERR_EXISTS when another chip holds a live promise.  Every
 * server on one database sees the same promises.
 */
ML_MUST_CHECK int reg_notes_reserve(struct reg *r, const char *note_id,
    const char *chip_serial, const char *station, int64_t now, int64_t until);
/* The note is registered: drop its promise, and every one run out by now. */
ML_MUST_CHECK int reg_notes_unreserve(struct reg *r, const char *note_id,
    int64_t now);

ML_MUST_CHECK int reg_schema_version(struct reg *r, int *ret_version);

/*
 * Append one audit row.  The caller fills at (or 0) and the text fields
 * (over-long ones are ML_ERR_TOO_LARGE); the registry sets id, prev_hash
 * and hash, in one transaction with the previous row read under a lock,
 * so that concurrent servers append one chain.  Durable when it returns 0.
 */
ML_MUST_CHECK int reg_audit_append(struct reg *r, struct reg_audit *io);
/* The rows that match f, in id order, through fn.  fn's nonzero return
 * ends the listing and is returned. */
ML_MUST_CHECK int reg_audit_list(struct reg *r, const struct reg_audit_filter *f,
    reg_audit_fn fn, void *ctx);
/*
 * Check the whole chain: every row's prev_hash is the hash of the row
 * before (zeros for the first), ids run 1, 2, ... without a gap, and
 * every hash is reg_audit_hash() of its row.  0 and *ret_rows, or
 * ML_ERR_AUTH (context: the first bad row and why; *ret_bad_id set).
 */
ML_MUST_CHECK int reg_audit_verify(struct reg *r, uint64_t *ret_rows,
    int64_t *ret_bad_id);
/* SHA-256("mintline audit v1", prev_hash, id, at, every text field with a
 * length prefix): what a row's hash must be. */
ML_MUST_CHECK int reg_audit_hash(const struct reg_audit *a,
    uint8_t ret[static ML_SHA256_LEN]);

/* SQLite back-end (registry_sqlite.c). */
ML_MUST_CHECK int reg_sqlite_open(const char *path, struct reg **ret_reg);

/*
 * PostgreSQL back-end (registry_pg.c).  target: a libpq URI
 * ("postgresql://..." or "postgres://...") or "pg:" (also "postgresql:")
 * + a keyword/value conninfo ("pg:host=/run/postgresql dbname=mintline").
 * Migrates the schema before returning.  A lost database makes operations
 * fail fast with ML_ERR_IO ("registry unavailable") while the back-end
 * reconnects with backoff by itself.
 */
ML_MUST_CHECK int reg_pg_open(const char *target, const struct reg_cfg *cfg,
    struct reg **ret_reg);
/* True when target names the PostgreSQL back-end. */
bool	reg_target_is_pg(const char *target);

#endif
