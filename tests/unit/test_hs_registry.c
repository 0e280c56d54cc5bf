/*
 * The SQLite registry (server/registry.h): mapping serial <-> certificate
 * number, kind, flag, risk events; migrations run once; a certificate
 * number belongs to one serial only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "registry.h"

#define ck_assert_r(expr, want)	do {					\
	int r_ = (expr);						\
	ck_assert_msg(r_ == (want), "%s = %s, want %s", #expr,		\
	    ml_errname(r_), ml_errname(want));				\
} while (0)

static char dbpath[64];

static void
setup(void)
{
	snprintf(dbpath, sizeof(dbpath), "/tmp/test-hs-registry-%d.db",
	    (int)getpid());
	unlink(dbpath);
}

static void
teardown(void)
{
	char p[80];

	unlink(dbpath);
	snprintf(p, sizeof(p), "%s-wal", dbpath);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", dbpath);
	unlink(p);
}

static struct reg_reader
reader(const char *serial, const char *certno)
{
	struct reg_reader rd;

	memset(&rd, 0, sizeof(rd));
	snprintf(rd.serial, sizeof(rd.serial), "%s", serial);
	snprintf(rd.certno, sizeof(rd.certno), "%s", certno);
	rd.kind = HS_KIND_READER;
	snprintf(rd.factory, sizeof(rd.factory), "line 1");
	return rd;
}

START_TEST(mapping_flag_events)
{
	struct reg *r;
	struct reg_reader a = reader("RDR-1", "1001"), b = reader("RDR-2", "1001"),
	    got;
	uint64_t n = 99;

	ck_assert_r(reg_open(dbpath, NULL, &r), 0);
	ck_assert_r(reg_reader_get(r, "RDR-1", &got), ML_ERR_NOT_FOUND);
	ck_assert_r(reg_reader_put(r, &a), 0);
	ck_assert_r(reg_reader_get(r, "RDR-1", &got), 0);
	ck_assert_str_eq(got.certno, "1001");
	ck_assert_str_eq(got.factory, "line 1");
	ck_assert_int_eq(got.kind, HS_KIND_READER);
	ck_assert(!got.flagged);
	/* one certificate number, one serial */
	ck_assert_r(reg_reader_put(r, &b), ML_ERR_EXISTS);
	/* renewal: same serial, new certificate number */
	snprintf(a.certno, sizeof(a.certno), "1002");
	ck_assert_r(reg_reader_put(r, &a), 0);
	ck_assert_r(reg_reader_get(r, "RDR-1", &got), 0);
	ck_assert_str_eq(got.certno, "1002");
	ck_assert_r(reg_reader_flag(r, "RDR-1", true), 0);
	ck_assert_r(reg_reader_get(r, "RDR-1", &got), 0);
	ck_assert(got.flagged);
	ck_assert_r(reg_reader_flag(r, "RDR-9", true), ML_ERR_NOT_FOUND);
	ck_assert_r(reg_event_add(r, "RDR-1", REG_EV_READ, "card 1"), 0);
	ck_assert_r(reg_event_add(r, "RDR-1", REG_EV_READ, "card 2"), 0);
	ck_assert_r(reg_event_add(r, "RDR-1", REG_EV_ERROR, "bad crc"), 0);
	ck_assert_r(reg_event_count(r, "RDR-1", REG_EV_READ, &n), 0);
	ck_assert_uint_eq(n, 2);
	ck_assert_r(reg_event_count(r, "RDR-1", 0, &n), 0);
	ck_assert_uint_eq(n, 3);
	{
		struct reg_event_rec ev[3];

		memset(ev, 0, sizeof(ev));
		for (int i = 0; i < 3; i++) {
			snprintf(ev[i].serial, sizeof(ev[i].serial), "RDR-1");
			ev[i].ev = REG_EV_HANDSHAKE;
		}
		ck_assert_r(reg_event_add_many(r, ev, 3), 0);
		ck_assert_r(reg_event_add_many(r, ev, 0), 0);
		ck_assert_r(reg_event_count(r, "RDR-1", REG_EV_HANDSHAKE, &n), 0);
		ck_assert_uint_eq(n, 3);
	}
	reg_close(r);
	/* reopen: migrations do not run twice, data is there */
	ck_assert_r(reg_open(dbpath, NULL, &r), 0);
	ck_assert_r(reg_reader_get(r, "RDR-1", &got), 0);
	ck_assert(got.flagged);
	reg_close(r);
}
END_TEST

START_TEST(open_errors)
{
	struct reg *r = NULL;

	ck_assert_r(reg_open("/nonexistent-dir/x.db", NULL, &r), ML_ERR_IO);
	ck_assert_r(reg_open(NULL, NULL, &r), ML_ERR_ARG);
}
END_TEST

static Suite *
registry_suite(void)
{
	Suite *s = suite_create("hs_registry");
	TCase *tc = tcase_create("sqlite");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, mapping_flag_events);
	tcase_add_test(tc, open_errors);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(registry_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
