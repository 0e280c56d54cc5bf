/*
 * The registry schema: ONE list of migrations for every back-end
 * (migrations.c), applied in order at open, each in its own transaction,
 * and recorded in a schema_version table (version, what, applied_at).
 * Applying is idempotent: a version already recorded is skipped, so every
 * server of a fleet may run the list at once (SQLite takes the write lock
 * first, PostgreSQL an advisory lock).
 *
 * Each migration carries the same logical change in two dialects: the
 * tables, columns, keys and constraints are the same on SQLite and on
 * PostgreSQL; only the types differ (INTEGER/BLOB there, bigint/bytea
 * here; times are unix seconds in both, so that dumps compare).
 *
 * Rules: append a row, never edit or reorder an applied one; a migration
 * is plain SQL and must not COMMIT by itself.  A table that must never
 * lose or change a row (an audit trail) gets, in the same migration,
 * triggers refusing UPDATE and DELETE on both back-ends.
 */
#ifndef ML_MIGRATIONS_H
#define ML_MIGRATIONS_H

#include <stddef.h>

struct reg_migration {
	int		 version;	/* 1, 2, ... strictly increasing */
	const char	*what;		/* for the log and schema_version */
	const char	*sqlite;	/* SQLite dialect */
	const char	*pg;		/* PostgreSQL dialect */
};

extern const struct reg_migration	 reg_migrations[];
extern const size_t			 reg_nmigrations;

/* The newest schema version this build knows. */
#define REG_SCHEMA_VERSION	4

/*
 * Take or renew a serial reservation (reg_notes_reserve()) in one
 * statement, the same on both back-ends but for the parameter markers
 * (note_id, chip, station, until, now): the row is written when new, or
 * when the existing promise ran out, is the same chip's or the same
 * named station's; otherwise no row changes and the caller answers
 * "reserved".  Atomic on both: SQLite under its write lock, PostgreSQL
 * under the conflicting row's lock.
 */
#define RESV_PUT_SQL(nid, chip, st, until, now) \
	"INSERT INTO note_reservation (note_id, chip_serial, station, " \
	"expires) VALUES (" nid ", " chip ", " st ", " until ") " \
	"ON CONFLICT (note_id) DO UPDATE SET chip_serial = " \
	"excluded.chip_serial, station = excluded.station, expires = " \
	"excluded.expires WHERE note_reservation.expires <= " now " OR " \
	"note_reservation.chip_serial = excluded.chip_serial OR " \
	"(excluded.station <> '' AND note_reservation.station = " \
	"excluded.station)"

/* The advisory lock key that serialises migrations across servers. */
#define REG_PG_MIGRATION_LOCK	0x6d696e746c696e65LL	/* "mintline" */
/* The advisory lock that serialises audit appends (one hash chain). */
#define REG_PG_AUDIT_LOCK	0x6d6c2d6175646974LL	/* "ml-audit" */

#endif
