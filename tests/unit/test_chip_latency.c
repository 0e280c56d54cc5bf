/*
 * Unit tests for the chip latency model (chip-applet/chip_latency.c): the
 * arithmetic of a profile, its refusals (each naming the line), and that a
 * chip on the in-process line with DIR/latency takes the configured time
 * (lower bound exact, upper bound with a wide tolerance for a loaded
 * machine; no throughput is timed here).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "chip.h"
#include "chip_latency.h"
#include "chiplink.h"
#include "chiptest.h"
#include "mltest.h"

/* Scheduling on a shared 2-core machine: how late an answer may be. */
#define LAT_SLACK_NS	400000000ull

static const uint8_t sign_apdu[] = {	/* SIGN, 2-byte key id, 32-byte digest */
	0x80, 0x2A, 0x9E, 0x9A, 34, 0x00, 0x01,
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
};

START_TEST(default_profile_costs)
{
	struct chip_latency *lat = NULL;
	uint8_t get_resp[] = { 0x00, 0xC0, 0x00, 0x00, 0x00 };

	ck_assert_r(chip_latency_load("default", &lat), 0);
	/* apdu 5 ms + 19 ns a byte; SIGN 60 ms; 66 bytes back + SW */
	ck_assert_uint_eq(chip_latency_ns(lat, sign_apdu, sizeof(sign_apdu),
	    66), 5000000ull + 19000ull * (sizeof(sign_apdu) + 66) +
	    60000000ull);
	/* an INS without an entry costs the round trip only */
	ck_assert_uint_eq(chip_latency_ns(lat, get_resp, sizeof(get_resp), 2),
	    5000000ull + 19000ull * 7);
	chip_latency_free(lat);
}
END_TEST

START_TEST(override_and_comments)
{
	struct chip_latency *lat = NULL;

	ck_assert_r(chip_latency_parse("default\n"
	    "# only SIGN changes\n"
	    "2a 1000 10   # lower-case hex\n"
	    "apdu 0\n", "t", &lat), 0);
	ck_assert_uint_eq(chip_latency_ns(lat, sign_apdu, sizeof(sign_apdu), 2),
	    1000000ull + 10ull * (sizeof(sign_apdu) + 2));
	chip_latency_free(lat);
	ck_assert_r(chip_latency_parse("", "empty", &lat), 0);
	ck_assert_uint_eq(chip_latency_ns(lat, sign_apdu, sizeof(sign_apdu),
	    2), 0);
	chip_latency_free(lat);
	ck_assert_uint_eq(chip_latency_ns(NULL, sign_apdu, 5, 2), 0);
}
END_TEST

static const struct bad_profile {
	const char	*text;
	const char	*want;	/* in the error context */
} bad_profiles[] = {
	{ "apdu\n", "t line 1: want apdu FIXED_US" },
	{ "apdu 1 2 3\n", "t line 1: want apdu FIXED_US" },
	{ "\n2A x\n", "t line 2" },
	{ "2A -1\n", "t line 1" },
	{ "2A 10000001\n", "t line 1" },
	{ "2A 1 1000001\n", "t line 1" },
	{ "2AB 1\n", "t line 1: '2AB'" },
	{ "sign 1\n", "t line 1: 'sign'" },
	{ "default 1\n", "t line 1: 'default'" },
};

START_TEST(bad_profile_refused)
{
	const struct bad_profile *b = &bad_profiles[_i];
	struct chip_latency *lat = (struct chip_latency *)1;
	int r;

	r = chip_latency_parse(b->text, "t", &lat);
	ck_assert_msg(r == ML_ERR_ARG, "%s: %s", b->text, ml_errname(r));
	ck_assert_msg(strstr(ml_errmsg(r), b->want) != NULL,
	    "%s: context '%s' lacks '%s'", b->text, ml_errmsg(r), b->want);
	ck_assert_ptr_eq(lat, (struct chip_latency *)1);
}
END_TEST

START_TEST(missing_file_named)
{
	struct chip_latency *lat = NULL;
	int r = chip_latency_load("/nonexistent/profile", &lat);

	ck_assert_int_eq(r, ML_ERR_IO);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(r), "/nonexistent/profile"));
	ck_assert_ptr_nonnull(strstr(ml_errmsg(r), "No such file"));
}
END_TEST

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Time one APDU through the link; checks it ends in 9000. */
static uint64_t
timed_apdu(struct chiplink *l, const uint8_t *cmd, size_t n, size_t *ret_len)
{
	uint8_t resp[CHIP_MAX_RESP];
	uint64_t t0 = now_ns(), t1;
	size_t rlen = 0;

	ck_assert_r(chiplink_transmit(l, 0, 0, cmd, n, resp, sizeof(resp),
	    &rlen), 0);
	t1 = now_ns();
	ck_assert_uint_ge(rlen, 2);
	ck_assert_uint_eq(resp[rlen - 2], 0x90);
	*ret_len = rlen;
	return t1 - t0;
}

/* A chip on an in-process line whose DIR/latency holds profile. */
static struct chiplink *
line_with(char *dir, size_t cap, const char *profile)
{
	char path[512], spec[600];
	struct chiplink *l = NULL;
	FILE *f;

	ct_mkdtemp(dir, cap);
	snprintf(path, sizeof(path), "%s/chip", dir);
	ck_assert_r(chip_manufacture(path, CHIP_KIND_READER, "LAT-0001"), 0);
	snprintf(path, sizeof(path), "%s/positions", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("1\n", f);
	fclose(f);
	if (profile != NULL) {
		snprintf(path, sizeof(path), "%s/latency", dir);
		ck_assert_ptr_nonnull(f = fopen(path, "w"));
		fputs(profile, f);
		fclose(f);
	}
	snprintf(spec, sizeof(spec), "inproc:%s", dir);
	ck_assert_r(chiplink_open(spec, &l), 0);
	snprintf(path, sizeof(path), "%s/chip", dir);
	ck_assert_r(chiplink_inproc_feed(l, 0, path), 0);
	return l;
}

START_TEST(inproc_applies_profile)
{
	static const uint8_t get_data[] = { 0x00, 0xCA, 0x01, 0x00, 0x00 };
	static const uint8_t get_chal[] = { 0x00, 0x84, 0x00, 0x00, 0x08 };
	static const uint8_t select[] = { 0x00, 0xA4, 0x04, 0x00, 0x09,
	    0xA0, 0x00, 0x00, 0x08, 0x88, 0x4D, 0x4C, 0x01, CHIP_KIND_READER };
	char dir[128];
	struct chiplink *l;
	uint64_t t, want;
	size_t rlen;

	/* GET DATA 40 ms + 100 us a byte; every APDU 3 ms */
	l = line_with(dir, sizeof(dir), "apdu 3000\nCA 40000 100000\n");
	t = timed_apdu(l, select, sizeof(select), &rlen);
	ck_assert_msg(t >= 3000000ull, "SELECT took %llu ns, profile says 3 ms",
	    (unsigned long long)t);
	t = timed_apdu(l, get_data, sizeof(get_data), &rlen);
	want = 43000000ull + 100000ull * (sizeof(get_data) + rlen);
	ck_assert_msg(t >= want && t < want + LAT_SLACK_NS,
	    "GET DATA took %llu ns, profile says %llu",
	    (unsigned long long)t, (unsigned long long)want);
	t = timed_apdu(l, get_chal, sizeof(get_chal), &rlen);
	ck_assert_msg(t >= 3000000ull && t < 3000000ull + LAT_SLACK_NS,
	    "GET CHALLENGE took %llu ns, profile says 3 ms",
	    (unsigned long long)t);
	chiplink_close(l);
	ct_rmtree(dir);
}
END_TEST

START_TEST(inproc_bad_profile_refused)
{
	char dir[128], path[512], spec[600];
	struct chiplink *l = NULL;
	FILE *f;
	int r;

	ct_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/latency", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fputs("apdu 5000\nZZ 1\n", f);
	fclose(f);
	snprintf(spec, sizeof(spec), "inproc:%s", dir);
	r = chiplink_open(spec, &l);
	ck_assert_int_eq(r, ML_ERR_ARG);
	ck_assert_ptr_null(l);
	ck_assert_msg(strstr(ml_errmsg(r), "latency line 2") != NULL,
	    "context: %s", ml_errmsg(r));
	ct_rmtree(dir);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("chip_latency");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, default_profile_costs);
	tcase_add_test(tc, override_and_comments);
	tcase_add_loop_test(tc, bad_profile_refused, 0,
	    (int)ML_NELEM(bad_profiles));
	tcase_add_test(tc, missing_file_named);
	tcase_add_test(tc, inproc_applies_profile);
	tcase_add_test(tc, inproc_bad_profile_refused);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
