/*
 * The server's registry: reader/station serial <-> certificate-number
 * mapping, per-reader risk records and flagged status (ID-3), and note
 * registrations (BN-7, BN-8).
 *
 * Back-ends implement struct reg_ops; SQLite (registry_sqlite.c) is the
 * default, PostgreSQL (registry_pg.c) serves several servers
 * sharing one database.  Callers use the reg_* wrappers only.  Every back-end is thread-safe: workers call it
 * concurrently.
 *
 * Schema changes go into each back-end's migrations list
 * (reg_sqlite_migrations[] in registry_sqlite.c, reg_pg_migrations[] in
 * migrations_pg.c): append a row, never edit an applied one; both record
 * the applied versions in a schema_version table.  To add an operation (e.g. note registration), add a
 * function pointer to struct reg_ops, a wrapper below, and the SQLite
 * implementation; a back-end may leave it NULL (the wrapper then returns
 * ML_ERR_UNSUPPORTED).
 *
 * Functions return 0 or a negative ML_ERR_*; ret_ outputs are untouched on
 * failure.  ML_ERR_NOT_FOUND for a missing row.
 */
#ifndef ML_REGISTRY_H
#define ML_REGISTRY_H

#include <stdbool.h>
#include <stdint.h>

#include "hs_api.h"

#define REG_MAX_FACTORY		512	/* factory data, free text */
#define REG_MAX_DETAIL		256	/* event detail, free text */

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

struct reg;
struct note_reg;	/* note_db.h */
struct note_row;

struct reg_ops {
	const char	*name;		/* "sqlite" */
	void		(*close)(struct reg *r);
	int		(*reader_get)(struct reg *r, const char *serial,
			    struct reg_reader *ret);
	/* Insert or replace the mapping (certificate renewal). */
	int		(*reader_put)(struct reg *r, const struct reg_reader *rd);
	int		(*reader_flag)(struct reg *r, const char *serial,
			    bool flagged);
	int		(*event_add)(struct reg *r, const char *serial,
			    enum reg_event ev, const char *detail);
	/* Number of events of this kind (0 = any) for serial. */
	int		(*event_count)(struct reg *r, const char *serial,
			    enum reg_event ev, uint64_t *ret_n);
	/* n records in one transaction (one fsync). */
	int		(*event_add_many)(struct reg *r,
			    const struct reg_event_rec *evs, size_t n);
	/*
	 * The banknote registry (BN-7, BN-8; semantics and return values: see
	 * note_db.h, whose structs these take).  The PostgreSQL back-end
	 * implements them; SQLite deployments use note_db.c.
	 */
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
};

/* Every back-end's handle starts with this. */
struct reg {
	const struct reg_ops	*ops;
};

/*
 * Open a registry.  target: "sqlite:PATH" or a plain PATH (SQLite; the
 * database is created and migrated; WAL, synchronous=FULL), or a
 * PostgreSQL URI / "pg:CONNINFO" (reg_pg_open() below).
 */
ML_MUST_CHECK int reg_open(const char *target, struct reg **ret_reg);
void	reg_close(struct reg *r);			/* NULL-safe */

ML_MUST_CHECK int reg_reader_get(struct reg *r, const char *serial,
    struct reg_reader *ret);
ML_MUST_CHECK int reg_reader_put(struct reg *r, const struct reg_reader *rd);
ML_MUST_CHECK int reg_reader_flag(struct reg *r, const char *serial,
    bool flagged);
ML_MUST_CHECK int reg_event_add(struct reg *r, const char *serial,
    enum reg_event ev, const char *detail);
ML_MUST_CHECK int reg_event_add_many(struct reg *r,
    const struct reg_event_rec *evs, size_t n);
ML_MUST_CHECK int reg_event_count(struct reg *r, const char *serial,
    enum reg_event ev, uint64_t *ret_n);

/*
 * Banknote registry wrappers (BN-7, BN-8; semantics of the note_db_* function
 * of the same name in note_db.h: note_register returns 0 new, 1 the same
 * note again, 100 + NOTE_R_* refused, or a negative ML_ERR_*).
 */
ML_MUST_CHECK int reg_notes_enrol(struct reg *r, const char *chip_serial,
    const uint8_t pub[static ML_P256_PUB_LEN]);
ML_MUST_CHECK int reg_notes_chip_pub(struct reg *r, const char *chip_serial,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);
ML_MUST_CHECK int reg_notes_register(struct reg *r, const struct note_reg *nr,
    uint64_t *ret_reg_id);
ML_MUST_CHECK int reg_notes_lookup(struct reg *r, const char *note_id,
    struct note_row *ret);
ML_MUST_CHECK int reg_notes_flag(struct reg *r, const char *note_id,
    const char *chip_serial, const char *reason);
ML_MUST_CHECK int reg_notes_flagged(struct reg *r, const char *note_id);
ML_MUST_CHECK int reg_notes_count_reject(struct reg *r, const char *reason);
ML_MUST_CHECK int reg_notes_count(struct reg *r, uint64_t *ret_n);

/* SQLite back-end (registry_sqlite.c). */
ML_MUST_CHECK int reg_sqlite_open(const char *path, struct reg **ret_reg);

/*
 * PostgreSQL back-end (registry_pg.c).  target: a libpq URI
 * ("postgresql://..." or "postgres://...") or "pg:" (also "postgresql:")
 * + a keyword/value conninfo ("pg:host=/run/postgresql dbname=mintline").  Migrates the schema (migrations_pg.c) before returning.  A
 * lost database makes operations fail fast with ML_ERR_IO ("registry
 * unavailable") while the back-end reconnects with backoff by itself.
 */
ML_MUST_CHECK int reg_pg_open(const char *target, struct reg **ret_reg);
/* True when target names the PostgreSQL back-end. */
bool	reg_target_is_pg(const char *target);

#endif
