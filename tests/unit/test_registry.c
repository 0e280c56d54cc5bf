/*
 * Unit tests for the one registry's schema and migrations
 * (server/migrations.c, registry_sqlite.c):
 *
 *   - the list: versions 1..REG_SCHEMA_VERSION in order, both dialects
 *     present, and the same tables with the same columns in both;
 *   - a new file is migrated to the newest version, every step recorded in
 *     schema_version; reopening applies nothing twice;
 *   - a file of an older server (version 1: readers only) is migrated in
 *     place and keeps its readers; a file of a newer schema is refused;
 *   - readers, risk records, chips and notes live in the one file;
 *   - the one-shot import of an older server's separate note file: rows
 *     and ids unchanged, all or nothing, refused into a registry that
 *     holds notes already and for a file that is not a note database.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>
#include <sqlite3.h>

#include "migrations.h"
#include "ml_log.h"
#include "registry.h"

#define ck_assert_r(expr, want)	do {					\
	int r_ = (expr);						\
	ck_assert_msg(r_ == (want), "%s = %s, want %s", #expr,		\
	    ml_errname(r_), ml_errname(want));				\
} while (0)

static char dir[64];

static void
setup(void)
{
	snprintf(dir, sizeof(dir), "/tmp/test-registry.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void
teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	ck_assert_int_eq(system(cmd), 0);
}

static void
path_in(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", dir, name);
}

/* Run SQL on a file outside the registry (what an older server left). */
static void
sql_file(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	char *err = NULL;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, &err) == SQLITE_OK,
	    "%s: %s", sql, err != NULL ? err : "?");
	sqlite3_close(db);
}

static int64_t
sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v;

	ck_assert_int_eq(sqlite3_open(path, &db), SQLITE_OK);
	ck_assert_int_eq(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/*
 * "table(col,col,...);" for every CREATE TABLE of sql, tables sorted by
 * their order in the text: a dialect-free picture of the logical schema.
 */
static void
schema_shape(const char *sql, char *out, size_t cap)
{
	const char *p = sql, *q;
	size_t o = 0;
	int depth;

	out[0] = '\0';
	while ((p = strstr(p, "CREATE TABLE ")) != NULL) {
		p += strlen("CREATE TABLE ");
		if (strncmp(p, "IF NOT EXISTS ", 14) == 0) {
			p += 14;
		}
		q = strchr(p, ' ');
		ck_assert_ptr_nonnull(q);
		o += (size_t)snprintf(out + o, cap - o, "%.*s(", (int)(q - p), p);
		p = strchr(q, '(') + 1;
		/* items at depth 1: a column's name is its first word */
		for (depth = 1; depth > 0;) {
			while (*p == ' ') {
				p++;
			}
			q = p;
			while (isalnum((unsigned char)*q) || *q == '_') {
				q++;
			}
			if (strncmp(p, "PRIMARY", 7) != 0 &&
			    strncmp(p, "UNIQUE", 6) != 0 &&
			    strncmp(p, "CHECK", 5) != 0) {
				o += (size_t)snprintf(out + o, cap - o, "%.*s,",
				    (int)(q - p), p);
			}
			for (p = q; *p != '\0'; p++) {
				if (*p == '(') {
					depth++;
				} else if (*p == ')' && --depth == 0) {
					break;
				} else if (*p == ',' && depth == 1) {
					break;
				}
			}
			ck_assert(*p != '\0');
			p++;
		}
		o += (size_t)snprintf(out + o, cap - o, ");");
		ck_assert(o < cap);
	}
}

START_TEST(migrations_list)
{
	char a[2048], b[2048];
	size_t i;

	ck_assert_uint_ge(reg_nmigrations, 2);
	for (i = 0; i < reg_nmigrations; i++) {
		const struct reg_migration *m = &reg_migrations[i];

		ck_assert_int_eq(m->version, (int)i + 1);
		ck_assert_ptr_nonnull(m->what);
		ck_assert_ptr_nonnull(m->sqlite);
		ck_assert_ptr_nonnull(m->pg);
		schema_shape(m->sqlite, a, sizeof(a));
		schema_shape(m->pg, b, sizeof(b));
		ck_assert_msg(strcmp(a, b) == 0, "migration %d: SQLite %s, "
		    "PostgreSQL %s", m->version, a, b);
		ck_assert_msg(a[0] != '\0' || i > 1, "migration %d creates "
		    "no table", m->version);
	}
	ck_assert_int_eq(reg_migrations[reg_nmigrations - 1].version,
	    REG_SCHEMA_VERSION);
	/* one picture checked by hand, so that the parser is tested too */
	schema_shape(reg_migrations[1].pg, a, sizeof(a));
	ck_assert_str_eq(a, "note_chip(chip_serial,chip_pub,enrolled_at,);"
	    "note(reg_id,note_id,chip_serial,feature,challenge,station_sig,"
	    "issuer_pub,registered_at,);"
	    "note_flag(note_id,chip_serial,reason,at,);"
	    "note_reject(reason,count,);");
}
END_TEST

START_TEST(migrate_new_file)
{
	char path[128];
	struct reg *r = NULL;
	int v = 0;

	path_in(path, sizeof(path), "new.db");
	ck_assert_r(reg_open(path, NULL, &r), 0);
	ck_assert_r(reg_schema_version(r, &v), 0);
	ck_assert_int_eq(v, REG_SCHEMA_VERSION);
	reg_close(r);
	ck_assert_r(reg_open(path, NULL, &r), 0);	/* nothing to do again */
	reg_close(r);
	ck_assert_int_eq(sql_int(path, "PRAGMA user_version"),
	    REG_SCHEMA_VERSION);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM schema_version"),
	    (int64_t)reg_nmigrations);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM schema_version "
	    "WHERE what = 'banknote registry' AND version = 2"), 1);
}
END_TEST

/* Readers, risk records, chips and notes: one file. */
START_TEST(one_file)
{
	char path[128];
	struct reg *r = NULL;
	struct reg_reader rd = { .kind = HS_KIND_STATION };
	struct note_reg nr = { 0 };
	struct note_row row;
	uint8_t pub[ML_P256_PUB_LEN], feat[40];
	uint64_t id = 0, id2 = 0, n = 0;

	path_in(path, sizeof(path), "one.db");
	ck_assert_r(reg_open(path, NULL, &r), 0);
	snprintf(rd.serial, sizeof(rd.serial), "STN-0001");
	snprintf(rd.certno, sizeof(rd.certno), "1001");
	ck_assert_r(reg_reader_put(r, &rd), 0);
	ck_assert_r(reg_event_add(r, "STN-0001", REG_EV_TRANSACTION, "x"), 0);
	memset(pub, 0x11, sizeof(pub));
	pub[0] = 0x04;
	ck_assert_r(reg_notes_enrol(r, "CHIP000000000001", pub), 0);
	ck_assert_r(reg_notes_enrol(r, "CHIP000000000001", pub), 1);
	pub[1] ^= 1;
	ck_assert_r(reg_notes_enrol(r, "CHIP000000000001", pub), ML_ERR_EXISTS);
	snprintf(nr.note_id, sizeof(nr.note_id), "MX00000001");
	snprintf(nr.chip_serial, sizeof(nr.chip_serial), "CHIP000000000001");
	memset(feat, 0x22, sizeof(feat));
	nr.feature = feat;
	nr.feature_len = sizeof(feat);
	ck_assert_r(reg_notes_register(r, &nr, &id), REG_NOTE_NEW);
	ck_assert_r(reg_notes_register(r, &nr, &id2), REG_NOTE_AGAIN);
	ck_assert_uint_eq(id, id2);
	snprintf(nr.chip_serial, sizeof(nr.chip_serial), "CHIP000000000002");
	ck_assert_r(reg_notes_register(r, &nr, &id2), REG_NOTE_DUP_SERIAL);
	ck_assert_r(reg_notes_flagged(r, "MX00000001"), 1);
	snprintf(nr.note_id, sizeof(nr.note_id), "MX00000002");
	ck_assert_r(reg_notes_register(r, &nr, &id2), REG_NOTE_UNKNOWN_CHIP);
	snprintf(nr.chip_serial, sizeof(nr.chip_serial), "CHIP000000000001");
	ck_assert_r(reg_notes_register(r, &nr, &id2), REG_NOTE_CHIP_USED);
	ck_assert_r(reg_notes_lookup(r, "MX00000001", &row), 0);
	ck_assert_uint_eq(row.reg_id, id);
	ck_assert_r(reg_notes_count(r, &n), 0);
	ck_assert_uint_eq(n, 1);
	reg_close(r);
	/* all of it in the one file, seen by plain SQL */
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM readers"), 1);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM reader_events"), 1);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM note_chip"), 1);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM note"), 1);
}
END_TEST

/*
 * Serial reservations (OP-3) live in the registry: two servers on one
 * file promise a serial to one chip, and a reopened registry (a restart)
 * keeps the promise.
 */
START_TEST(reservations)
{
	char path[128];
	struct reg *a = NULL, *b = NULL;
	int64_t t = 1000000;

	path_in(path, sizeof(path), "resv.db");
	ck_assert_r(reg_open(path, NULL, &a), 0);
	ck_assert_r(reg_open(path, NULL, &b), 0);
	ck_assert_r(reg_notes_reserve(a, "MX01", "CHIPA", "STN-1", t, t + 600),
	    0);
	/* another station, another chip, on the other server: refused */
	ck_assert_r(reg_notes_reserve(b, "MX01", "CHIPB", "STN-2", t, t + 600),
	    ML_ERR_EXISTS);
	ck_assert_r(reg_notes_reserve(b, "MX01", "CHIPB", "", t, t + 600),
	    ML_ERR_EXISTS);
	/* the same chip renews; the same station takes it over */
	ck_assert_r(reg_notes_reserve(b, "MX01", "CHIPA", "STN-9", t + 1,
	    t + 601), 0);
	ck_assert_r(reg_notes_reserve(a, "MX01", "CHIPC", "STN-9", t + 2,
	    t + 602), 0);
	ck_assert_r(reg_notes_reserve(a, "MX01", "CHIPA", "STN-1", t + 3,
	    t + 603), ML_ERR_EXISTS);
	/* a restart keeps it */
	reg_close(a);
	ck_assert_r(reg_open(path, NULL, &a), 0);
	ck_assert_r(reg_notes_reserve(a, "MX01", "CHIPB", "STN-2", t + 4,
	    t + 604), ML_ERR_EXISTS);
	/* run out: anyone may take it */
	ck_assert_r(reg_notes_reserve(a, "MX01", "CHIPB", "STN-2", t + 602,
	    t + 1202), 0);
	ck_assert_r(reg_notes_reserve(b, "MX02", "CHIPD", "STN-2", t, t + 10),
	    0);
	/* registered: the promise goes, with every one that ran out */
	ck_assert_r(reg_notes_unreserve(b, "MX01", t + 700), 0);
	ck_assert_int_eq(sql_int(path, "SELECT count(*) FROM note_reservation"),
	    0);
	ck_assert_r(reg_notes_reserve(b, "MX01", "CHIPE", "STN-3", t + 701,
	    t + 1301), 0);
	reg_close(a);
	reg_close(b);
}
END_TEST

/* An older server's registry (version 1) is migrated in place. */
START_TEST(migrate_old_file)
{
	char path[128], sql[2048];
	struct reg *r = NULL;
	struct reg_reader rd;
	uint8_t pub[ML_P256_PUB_LEN];
	int v = 0;

	path_in(path, sizeof(path), "v1.db");
	snprintf(sql, sizeof(sql), "%s PRAGMA user_version = 1;"
	    "INSERT INTO readers VALUES ('RDR-1', '77', 1, 1, 'line 3', 5);",
	    reg_migrations[0].sqlite);
	sql_file(path, sql);
	ck_assert_r(reg_open(path, NULL, &r), 0);
	ck_assert_r(reg_schema_version(r, &v), 0);
	ck_assert_int_eq(v, REG_SCHEMA_VERSION);
	ck_assert_r(reg_reader_get(r, "RDR-1", &rd), 0);
	ck_assert_str_eq(rd.certno, "77");
	ck_assert(rd.flagged);
	ck_assert_str_eq(rd.factory, "line 3");
	memset(pub, 0x04, sizeof(pub));
	ck_assert_r(reg_notes_enrol(r, "CHIP000000000009", pub), 0);
	reg_close(r);
	/* versions 1 (back-filled) and 2 recorded */
	ck_assert_int_eq(sql_int(path, "SELECT group_concat(version) = '1,2,3,4' "
	    "FROM (SELECT version FROM schema_version ORDER BY version)"), 1);
}
END_TEST

START_TEST(refuse_newer_schema)
{
	char path[128];
	struct reg *r = NULL;

	path_in(path, sizeof(path), "future.db");
	sql_file(path, "CREATE TABLE x (y); PRAGMA user_version = 99;");
	ck_assert_r(reg_open(path, NULL, &r), ML_ERR_UNSUPPORTED);
	ck_assert_ptr_null(r);
	ck_assert_int_eq(sql_int(path, "PRAGMA user_version"), 99);
}
END_TEST

/* An older server's note file: migration 2's tables, with rows. */
static void
old_note_file(const char *path)
{
	char sql[4096];

	snprintf(sql, sizeof(sql), "%s"
	    "INSERT INTO note_chip VALUES ('CHIPA00000000001', "
	    "  zeroblob(65), 100), ('CHIPA00000000002', zeroblob(65), 101);"
	    "INSERT INTO note VALUES (41, 'MX00000041', 'CHIPA00000000001', "
	    "  x'0102', zeroblob(16), zeroblob(64), zeroblob(65), 200);"
	    "INSERT INTO note_flag VALUES ('MX00000041', 'CHIPA00000000002', "
	    "  'serial presented by two chips', 300);"
	    "INSERT INTO note_reject VALUES ('dup_serial', 3);",
	    reg_migrations[1].sqlite);
	sql_file(path, sql);
}

START_TEST(import_old_notes)
{
	char reg_path[128], old[128], bad[128];
	struct reg *r = NULL;
	struct reg_import_counts c;
	struct reg_reader rd = { .kind = HS_KIND_READER };
	struct note_row row;
	uint8_t pub[ML_P256_PUB_LEN];

	path_in(reg_path, sizeof(reg_path), "registry.db");
	path_in(old, sizeof(old), "notes.db");
	path_in(bad, sizeof(bad), "other.db");
	old_note_file(old);
	sql_file(bad, "CREATE TABLE note_chip (chip_serial);");
	ck_assert_r(reg_open(reg_path, NULL, &r), 0);
	snprintf(rd.serial, sizeof(rd.serial), "RDR-2");
	snprintf(rd.certno, sizeof(rd.certno), "88");
	ck_assert_r(reg_reader_put(r, &rd), 0);
	ck_assert_r(reg_notes_count_reject(r, "dup_serial"), 0);
	ck_assert_r(reg_notes_import(r, bad, &c), ML_ERR_FORMAT);
	path_in(bad, sizeof(bad), "missing.db");
	ck_assert_r(reg_notes_import(r, bad, &c), ML_ERR_IO);
	ck_assert_r(reg_notes_import(r, old, &c), 0);
	ck_assert_uint_eq(c.chips, 2);
	ck_assert_uint_eq(c.notes, 1);
	ck_assert_uint_eq(c.flags, 1);
	ck_assert_uint_eq(c.rejects, 1);
	ck_assert_r(reg_notes_lookup(r, "MX00000041", &row), 0);
	ck_assert_uint_eq(row.reg_id, 41);		/* ids kept */
	ck_assert_str_eq(row.chip_serial, "CHIPA00000000001");
	ck_assert_uint_eq(row.feature_len, 2);
	ck_assert_r(reg_notes_flagged(r, "MX00000041"), 1);
	ck_assert_r(reg_notes_chip_pub(r, "CHIPA00000000002", pub), 0);
	ck_assert_r(reg_reader_get(r, "RDR-2", &rd), 0);
	/* a second import would register notes twice: refused, nothing done */
	ck_assert_r(reg_notes_import(r, old, &c), ML_ERR_EXISTS);
	reg_close(r);
	ck_assert_int_eq(sql_int(reg_path, "SELECT count(*) FROM note"), 1);
	ck_assert_int_eq(sql_int(reg_path, "SELECT registered_at FROM note"),
	    200);
	ck_assert_int_eq(sql_int(reg_path, "SELECT count FROM note_reject "
	    "WHERE reason = 'dup_serial'"), 4);	/* 1 here + 3 there */
	/* the old file is never written */
	ck_assert_int_eq(sql_int(old, "SELECT count(*) FROM note"), 1);
}
END_TEST

static Suite *
registry_suite(void)
{
	Suite *s = suite_create("registry");
	TCase *tc = tcase_create("schema");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, migrations_list);
	tcase_add_test(tc, migrate_new_file);
	tcase_add_test(tc, one_file);
	tcase_add_test(tc, reservations);
	tcase_add_test(tc, migrate_old_file);
	tcase_add_test(tc, refuse_newer_schema);
	tcase_add_test(tc, import_old_notes);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(registry_suite());
	int failed;

	ml_log_set_level(ML_LOG_ERROR);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
