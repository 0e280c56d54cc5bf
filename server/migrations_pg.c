/*
 * The PostgreSQL registry schema (see migrations.h).  Same tables and
 * meaning as the SQLite back-end (registry_sqlite.c, note_db.c), in
 * PostgreSQL types: times are unix seconds (bigint) as in SQLite, so that
 * dumps of the two compare.
 *
 *= REQ ID-3
 *# The server stores the serial <-> certificate-number mapping and uses it
 *# for risk control
 *
 *= REQ BN-7
 *# exactly-once registration: note_id and chip_serial are each UNIQUE, so
 *# concurrent servers cannot register a note twice or put two notes on
 *# one chip, whatever the retries.
 */
#include "migrations.h"

const struct reg_migration reg_pg_migrations[] = {
	{ 1, "readers and risk records (ID-3)",
	  "CREATE TABLE readers ("
	  "  serial   text PRIMARY KEY,"
	  "  certno   text NOT NULL UNIQUE,"
	  "  kind     integer NOT NULL,"
	  "  flagged  boolean NOT NULL DEFAULT false,"
	  "  factory  text NOT NULL DEFAULT '',"
	  "  created  bigint NOT NULL);"
	  "CREATE TABLE reader_events ("
	  "  id       bigserial PRIMARY KEY,"
	  "  serial   text NOT NULL,"
	  "  kind     integer NOT NULL,"
	  "  at       bigint NOT NULL,"
	  "  detail   text NOT NULL DEFAULT '');"
	  "CREATE INDEX reader_events_serial ON reader_events(serial, kind);" },
	{ 2, "banknote registry (BN-7)",
	  "CREATE TABLE note_chip ("
	  "  chip_serial text PRIMARY KEY,"
	  "  chip_pub    bytea NOT NULL CHECK (length(chip_pub) = 65),"
	  "  enrolled_at bigint NOT NULL);"
	  "CREATE TABLE note ("
	  "  reg_id      bigserial PRIMARY KEY,"
	  "  note_id     text NOT NULL UNIQUE,"
	  "  chip_serial text NOT NULL UNIQUE REFERENCES note_chip,"
	  "  feature     bytea NOT NULL,"
	  "  challenge   bytea NOT NULL,"
	  "  station_sig bytea NOT NULL,"
	  "  issuer_pub  bytea NOT NULL,"
	  "  registered_at bigint NOT NULL);"
	  "CREATE TABLE note_flag ("
	  "  note_id     text NOT NULL,"
	  "  chip_serial text NOT NULL,"
	  "  reason      text NOT NULL,"
	  "  at          bigint NOT NULL,"
	  "  PRIMARY KEY (note_id, chip_serial));"
	  "CREATE TABLE note_reject ("
	  "  reason      text PRIMARY KEY,"
	  "  count       bigint NOT NULL);" },
};

const size_t reg_pg_nmigrations =
    sizeof(reg_pg_migrations) / sizeof(reg_pg_migrations[0]);
