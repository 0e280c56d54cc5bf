/*
 * Unit tests for the in-process line (chiplink/link_inproc.c): a chip fed
 * or removed at one position by another process (a rename or unlink in
 * the line directory, seen through inotify) is seen at that position and
 * only there (BN-2: each position looks again only when its own link
 * changed), including positions numbered past 99 and names that only
 * look like a position's.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "chip.h"
#include "chiplink.h"
#include "chiptest.h"
#include "mltest.h"

#define NPOS	101		/* so that pos-100 exists */

static char dir[128];
static struct chiplink *link_;

static void
make_chip(const char *name, const char *serial)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	ck_assert_r(chip_manufacture(path, CHIP_KIND_READER, serial), 0);
}

static void
setup(void)
{
	char path[512], spec[600];
	FILE *f;

	ct_mkdtemp(dir, sizeof(dir));
	make_chip("chip-a", "INP-000A");
	make_chip("chip-b", "INP-000B");
	make_chip("chip-c", "INP-000C");
	snprintf(path, sizeof(path), "%s/positions", dir);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	fprintf(f, "%d\n", NPOS);
	fclose(f);
	snprintf(spec, sizeof(spec), "inproc:%s", dir);
	ck_assert_r(chiplink_open(spec, &link_), 0);
}

static void
teardown(void)
{
	chiplink_close(link_);
	link_ = NULL;
	ct_rmtree(dir);
}

/* What another process does: a new symlink renamed over pos-NN. */
static void
outside_feed(const char *pos, const char *chip)
{
	char tmp[600], link[512], target[512];

	snprintf(target, sizeof(target), "%s/%s", dir, chip);
	snprintf(link, sizeof(link), "%s/%s", dir, pos);
	snprintf(tmp, sizeof(tmp), "%s.new", link);
	ck_assert_int_eq(symlink(target, tmp), 0);
	ck_assert_int_eq(rename(tmp, link), 0);
}

static struct chiplink_slot_info
info(size_t slot)
{
	struct chiplink_slot_info si;

	ck_assert_r(chiplink_slot_info(link_, slot, &si), 0);
	return si;
}

static void
feed(size_t slot, const char *chip)
{
	char path[512];

	snprintf(path, sizeof(path), "%s/%s", dir, chip);
	ck_assert_r(chiplink_inproc_feed(link_, slot, path), 0);
}

START_TEST(outside_swap_seen_at_its_position_only)
{
	static const uint8_t get_chal[] = { 0x00, 0x84, 0x00, 0x00, 0x08 };
	uint8_t resp[CHIP_MAX_RESP];
	struct chiplink_slot_info a, b, s;
	size_t rlen;

	feed(0, "chip-a");
	feed(1, "chip-b");
	a = info(0);
	b = info(1);
	ck_assert(a.present && b.present);
	ck_assert_uint_ne(a.generation, b.generation);

	/* another process puts chip C at position 1 */
	outside_feed("pos-01", "chip-c");
	s = info(1);
	ck_assert(s.present);
	ck_assert_uint_ne(s.generation, b.generation);
	ck_assert_uint_eq(info(0).generation, a.generation);
	/* a command meant for the chip that left is refused */
	ck_assert_r(chiplink_transmit(link_, 1, b.generation, get_chal,
	    sizeof(get_chal), resp, sizeof(resp), &rlen), ML_ERR_REMOVED);

	/* names that only look like a position's change nothing */
	outside_feed("pos-1", "chip-a");
	outside_feed("pos-01x", "chip-a");
	ck_assert_uint_eq(info(1).generation, s.generation);
	ck_assert_uint_eq(info(0).generation, a.generation);

	/* taken out by another process: seen at position 0 */
	{
		char link[512];

		snprintf(link, sizeof(link), "%s/pos-00", dir);
		ck_assert_int_eq(unlink(link), 0);
	}
	ck_assert(!info(0).present);
	ck_assert(info(1).present);
	ck_assert_uint_eq(info(1).generation, s.generation);
}
END_TEST

START_TEST(position_past_99)
{
	struct chiplink_slot_info s0, s1;

	feed(100, "chip-a");
	s0 = info(100);
	ck_assert(s0.present);
	outside_feed("pos-100", "chip-b");
	s1 = info(100);
	ck_assert(s1.present);
	ck_assert_uint_ne(s1.generation, s0.generation);
	ck_assert(!info(10).present);
}
END_TEST

static Suite *
suite(void)
{
	Suite *s = suite_create("link_inproc");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, outside_swap_seen_at_its_position_only);
	tcase_add_test(tc, position_past_99);
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
