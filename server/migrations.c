/*
 * The registry schema, both dialects side by side (see migrations.h).
 *
 *= MISSION ID-3
 *# The server stores the serial <-> certificate-number mapping and uses it
 *# for risk control: factory data, read history, error history, report
 *# history, transaction history per reader.
 *
 *= MISSION OP-5
 *# who did what: a tamper-evident trail of enrolments, registrations,
 *# refusals, reader transactions and desk checks (the audit table)
 *
 *= MISSION BN-7
 *# exactly-once registration: note_id and chip_serial are each UNIQUE, so
 *# concurrent servers cannot register a note twice or put two notes on
 *# one chip, whatever the retries.
 */
#include "migrations.h"

const struct reg_migration reg_migrations[] = {
	{ 1, "readers and risk records",
	  /* SQLite */
	  "CREATE TABLE readers ("
	  "  serial   TEXT PRIMARY KEY NOT NULL,"
	  "  certno   TEXT NOT NULL,"
	  "  kind     INTEGER NOT NULL,"
	  "  flagged  INTEGER NOT NULL DEFAULT 0,"
	  "  factory  TEXT NOT NULL DEFAULT '',"
	  "  created  INTEGER NOT NULL);"
	  "CREATE UNIQUE INDEX readers_certno ON readers(certno);"
	  "CREATE TABLE reader_events ("
	  "  id       INTEGER PRIMARY KEY,"
	  "  serial   TEXT NOT NULL,"
	  "  kind     INTEGER NOT NULL,"	/* enum reg_event */
	  "  at       INTEGER NOT NULL,"
	  "  detail   TEXT NOT NULL DEFAULT '');"
	  "CREATE INDEX reader_events_serial ON reader_events(serial, kind);",
	  /* PostgreSQL */
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
	/*
	 * The banknote registry: enrolled chip keys, registered notes, flags
	 * (BN-8) and refusal counts.  On SQLite "IF NOT EXISTS": a file that
	 * already served as a separate note database of an older server and
	 * is now opened as the registry keeps its note tables as they are.
	 */
	{ 2, "banknote registry",
	  "CREATE TABLE IF NOT EXISTS note_chip ("
	  "  chip_serial TEXT PRIMARY KEY,"
	  "  chip_pub    BLOB NOT NULL CHECK (length(chip_pub) = 65),"
	  "  enrolled_at INTEGER NOT NULL);"
	  "CREATE TABLE IF NOT EXISTS note ("
	  "  reg_id      INTEGER PRIMARY KEY,"
	  "  note_id     TEXT NOT NULL UNIQUE,"
	  "  chip_serial TEXT NOT NULL UNIQUE REFERENCES note_chip,"
	  "  feature     BLOB NOT NULL,"
	  "  challenge   BLOB NOT NULL,"
	  "  station_sig BLOB NOT NULL,"
	  "  issuer_pub  BLOB NOT NULL,"
	  "  registered_at INTEGER NOT NULL);"
	  "CREATE TABLE IF NOT EXISTS note_flag ("
	  "  note_id     TEXT NOT NULL,"
	  "  chip_serial TEXT NOT NULL,"
	  "  reason      TEXT NOT NULL,"
	  "  at          INTEGER NOT NULL,"
	  "  PRIMARY KEY (note_id, chip_serial));"
	  "CREATE TABLE IF NOT EXISTS note_reject ("
	  "  reason      TEXT PRIMARY KEY,"
	  "  count       INTEGER NOT NULL);",
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
	/*
	 * The audit trail (OP-5): append-only, enforced by the schema itself
	 * (triggers refuse UPDATE and DELETE, and TRUNCATE on PostgreSQL);
	 * ids are given by the writer (the next after the last, under a
	 * lock) because the hash chain covers them.
	 */
	{ 3, "audit trail",
	  "CREATE TABLE audit ("
	  "  id           INTEGER PRIMARY KEY,"
	  "  at           INTEGER NOT NULL,"
	  "  action       TEXT NOT NULL,"
	  "  actor        TEXT NOT NULL DEFAULT '',"
	  "  actor_certno TEXT NOT NULL DEFAULT '',"
	  "  subject_kind TEXT NOT NULL DEFAULT '',"
	  "  subject      TEXT NOT NULL DEFAULT '',"
	  "  outcome      TEXT NOT NULL DEFAULT '',"
	  "  detail       TEXT NOT NULL DEFAULT '',"
	  "  prev_hash    BLOB NOT NULL CHECK (length(prev_hash) = 32),"
	  "  hash         BLOB NOT NULL CHECK (length(hash) = 32));"
	  "CREATE INDEX audit_subject ON audit(subject_kind, subject, at);"
	  "CREATE INDEX audit_actor ON audit(actor, at);"
	  "CREATE INDEX audit_at ON audit(at);"
	  "CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit "
	  "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;"
	  "CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit "
	  "BEGIN SELECT RAISE(ABORT, 'audit rows are append-only'); END;",
	  "CREATE TABLE audit ("
	  "  id           bigint PRIMARY KEY,"
	  "  at           bigint NOT NULL,"
	  "  action       text NOT NULL,"
	  "  actor        text NOT NULL DEFAULT '',"
	  "  actor_certno text NOT NULL DEFAULT '',"
	  "  subject_kind text NOT NULL DEFAULT '',"
	  "  subject      text NOT NULL DEFAULT '',"
	  "  outcome      text NOT NULL DEFAULT '',"
	  "  detail       text NOT NULL DEFAULT '',"
	  "  prev_hash    bytea NOT NULL CHECK (length(prev_hash) = 32),"
	  "  hash         bytea NOT NULL CHECK (length(hash) = 32));"
	  "CREATE INDEX audit_subject ON audit(subject_kind, subject, at);"
	  "CREATE INDEX audit_actor ON audit(actor, at);"
	  "CREATE INDEX audit_at ON audit(at);"
	  "CREATE FUNCTION audit_append_only() RETURNS trigger "
	  "LANGUAGE plpgsql AS $$ BEGIN "
	  "RAISE EXCEPTION 'audit rows are append-only'; END $$;"
	  "CREATE TRIGGER audit_no_change BEFORE UPDATE OR DELETE ON audit "
	  "FOR EACH ROW EXECUTE FUNCTION audit_append_only();"
	  "CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit "
	  "FOR EACH STATEMENT EXECUTE FUNCTION audit_append_only();" },
	/*
	 * Serial reservations of the issuance pre-check (OP-3): note_id is
	 * the key, so that every server of a fleet on one database promises
	 * a serial to one chip (reg_notes_reserve() takes it in one
	 * INSERT ... ON CONFLICT), and a restart keeps the promises.
	 */
	{ 4, "serial reservations",
	  "CREATE TABLE note_reservation ("
	  "  note_id     TEXT PRIMARY KEY NOT NULL,"
	  "  chip_serial TEXT NOT NULL,"
	  "  station     TEXT NOT NULL DEFAULT '',"
	  "  expires     INTEGER NOT NULL);",
	  "CREATE TABLE note_reservation ("
	  "  note_id     text PRIMARY KEY,"
	  "  chip_serial text NOT NULL,"
	  "  station     text NOT NULL DEFAULT '',"
	  "  expires     bigint NOT NULL);" },
};

const size_t reg_nmigrations =
    sizeof(reg_migrations) / sizeof(reg_migrations[0]);
