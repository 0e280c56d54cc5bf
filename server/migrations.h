/*
 * Registry schema migrations (ID-3, BN-7): one list per back-end, applied in
 * order at start-up inside a transaction each, recorded in a
 * schema_version table (version, what, applied_at).  Applying is
 * idempotent: a version already in schema_version is skipped, so every
 * server of a fleet may run the list at once (the PostgreSQL back-end
 * serialises them with an advisory lock).
 *
 * Rules: append a row, never edit or reorder an applied one; a migration
 * is plain SQL for its back-end and must not COMMIT by itself.
 */
#ifndef ML_MIGRATIONS_H
#define ML_MIGRATIONS_H

#include <stddef.h>

struct reg_migration {
	int		 version;	/* 1, 2, ... strictly increasing */
	const char	*what;		/* for the log and schema_version */
	const char	*sql;
};

/* PostgreSQL (registry_pg.c). */
extern const struct reg_migration	 reg_pg_migrations[];
extern const size_t			 reg_pg_nmigrations;

/* The advisory lock key that serialises migrations across servers. */
#define REG_PG_MIGRATION_LOCK	0x6d696e746c696e65LL	/* "mintline" */

#endif
