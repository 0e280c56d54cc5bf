/*
 * The reader host (idread/idr_reader.c) with the in-process chips: a
 * reader secure chip and ID-card stand-ins on an inproc line, uploads
 * through the loopback link into idr_srv + the SAM emulator.
 *
 * ID-6 pre-read, ID-7 data cache, ID-9/ID-12 idle expiry, ID-11 second
 * read from the chip, ID-13 cache modes, card removed mid-read, unknown
 * card.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>

#include "ml_wipe.h"
#include "idr_testkit.h"
#include "mltest.h"

static struct tk t;
static struct idc_info *info;
static char card_a[600], card_b[600], card_x[600];

static void
start(uint8_t mode, uint32_t idle_ms)
{
	uint8_t other[IDC_SAM_KEY_LEN];

	ck_assert_r(tk_init(&t, "/tmp", mode, idle_ms, NULL, true), 0);
	ck_assert_r(tk_make_card(&t, "a", 1001, card_a, sizeof(card_a)), 0);
	ck_assert_r(tk_make_card(&t, "b", 2002, card_b, sizeof(card_b)), 0);
	memcpy(other, t.sam_key, sizeof(other));
	other[5] ^= 0x33;
	ck_assert_r(tk_make_card_key(&t, "x", 3003, other, card_x,
	    sizeof(card_x)), 0);
	info = calloc(1, sizeof(*info));
	ck_assert_ptr_nonnull(info);
}

static void
stop(void)
{
	idc_info_clear(info);
	free(info);
	tk_fini(&t);
}

static int
rd(struct idr_read_info *ri)
{
	idc_info_clear(info);
	return idr_reader_read(t.rdr, tk_loop_connect, &t, NULL, info, ri);
}

static uint64_t
server_ok(void)
{
	struct idr_srv_stats s;

	idr_srv_get_stats(t.srv, &s);
	return s.ok;
}

START_TEST(no_card)
{
	struct idr_read_info ri;

	start(CACHE_MODE_MULTI, 0);
	ck_assert_r(rd(&ri), ML_ERR_REMOVED);
	stop();
}
END_TEST

/* ID-11: the second read is answered by the secure chip alone. */
START_TEST(second_read_from_chip)
{
	struct idr_read_info ri;
	struct idc_info want;

	start(CACHE_MODE_MULTI, 0);
	tk_fill_info(1001, &want);
	ck_assert_r(tk_feed(&t, card_a), 0);
	ck_assert_r(idr_reader_tick(t.rdr), 0);		/* ID-6 pre-read */
	ck_assert_r(rd(&ri), 0);
	ck_assert(!ri.from_cache);
	ck_assert(!ri.data_cached);
	ck_assert_str_eq(info->idnum, want.idnum);
	ck_assert_str_eq(info->address, want.address);
	ck_assert_uint_eq(server_ok(), 1);
	ck_assert_r(rd(&ri), 0);
	ck_assert(ri.from_cache);
	ck_assert_str_eq(info->idnum, want.idnum);
	ck_assert_uint_eq(info->photo_len, want.photo_len);
	ck_assert_mem_eq(info->photo, want.photo, want.photo_len);
	ck_assert_uint_eq(server_ok(), 1);		/* no round trip */
	idc_info_clear(&want);
	stop();
}
END_TEST

/* ID-7: with the plaintext forgotten, the encrypted data comes from the
 * secure chip, not the card. */
START_TEST(data_from_chip_cache)
{
	struct idr_read_info ri;
	struct chipcmd cc;

	start(CACHE_MODE_MULTI, 0);
	ck_assert_r(tk_feed(&t, card_a), 0);
	ck_assert_r(rd(&ri), 0);
	/* forget only the plaintext and the random key (ID-12 alone) */
	ck_assert_r(chipcmd_begin(&cc, t.link, TK_READER_SLOT), 0);
	ck_assert_r(chipcmd_ok(&cc, CLA_PROP, INS_CACHE_CLEAR, 1, 0, NULL, 0,
	    0, NULL, 0, NULL), 0);
	ck_assert_r(rd(&ri), 0);
	ck_assert(!ri.from_cache);
	ck_assert(ri.data_cached);		/* not read from the card */
	ck_assert_uint_eq(server_ok(), 2);
	ck_assert_r(rd(&ri), 0);
	ck_assert(ri.from_cache);
	stop();
}
END_TEST

/* ID-9, ID-12: no card for the idle time clears everything; the next
 * read goes to the server again. */
START_TEST(idle_timeout_forgets)
{
	struct idr_read_info ri;

	start(CACHE_MODE_MULTI, 50);
	ck_assert_r(tk_feed(&t, card_a), 0);
	ck_assert_r(rd(&ri), 0);
	ck_assert_r(rd(&ri), 0);
	ck_assert(ri.from_cache);
	ck_assert_r(tk_feed(&t, NULL), 0);
	ck_assert_r(idr_reader_tick(t.rdr), 0);
	usleep(30 * 1000);
	ck_assert_r(idr_reader_tick(t.rdr), 0);	/* not yet */
	ck_assert_r(tk_feed(&t, card_a), 0);
	ck_assert_r(rd(&ri), 0);
	ck_assert(ri.from_cache);		/* card back within the time */
	ck_assert_r(tk_feed(&t, NULL), 0);
	ck_assert_r(idr_reader_tick(t.rdr), 0);
	usleep(80 * 1000);
	ck_assert_r(idr_reader_tick(t.rdr), 0);	/* expired: cleared */
	ck_assert_r(tk_feed(&t, card_a), 0);
	ck_assert_r(rd(&ri), 0);
	ck_assert(!ri.from_cache && !ri.data_cached);
	ck_assert_uint_eq(server_ok(), 2);
	stop();
}
END_TEST

/* ID-13: multi-card keeps both cards; single-card clears on a new one. */
START_TEST(cache_modes)
{
	struct idr_read_info ri;
	int single;

	for (single = 0; single <= 1; single++) {
		start(single ? CACHE_MODE_SINGLE : CACHE_MODE_MULTI, 0);
		ck_assert_r(tk_feed(&t, card_a), 0);
		ck_assert_r(rd(&ri), 0);
		ck_assert_r(tk_feed(&t, card_b), 0);
		ck_assert_r(rd(&ri), 0);
		ck_assert(!ri.from_cache);
		ck_assert_r(tk_feed(&t, card_a), 0);
		ck_assert_r(rd(&ri), 0);
		ck_assert_msg(ri.from_cache == !single, "mode %s",
		    single ? "single" : "multi");
		ck_assert_uint_eq(server_ok(), single ? 3 : 2);
		stop();
	}
}
END_TEST

/* Card removed mid-read: a clear error and nothing cached for it. */
START_TEST(card_removed_mid_read)
{
	struct idr_read_info ri;

	start(CACHE_MODE_MULTI, 0);
	ck_assert_r(tk_feed(&t, card_a), 0);
	idr_reader_test_remove_after(t.rdr, 3);
	ck_assert_r(rd(&ri), ML_ERR_REMOVED);
	idr_reader_test_remove_after(t.rdr, -1);
	ck_assert_uint_eq(server_ok(), 0);
	ck_assert_r(tk_feed(&t, card_a), 0);
	ck_assert_r(rd(&ri), 0);
	ck_assert(!ri.from_cache && !ri.data_cached);	/* no partial data */
	stop();
}
END_TEST

/* The SAM cannot decrypt: ML_ERR_AUTH, and nothing plain is cached. */
START_TEST(unknown_card)
{
	struct idr_read_info ri;

	start(CACHE_MODE_MULTI, 0);
	ck_assert_r(tk_feed(&t, card_x), 0);
	ck_assert_r(rd(&ri), ML_ERR_AUTH);
	ck_assert_r(rd(&ri), ML_ERR_AUTH);		/* again to the server */
	ck_assert_uint_eq(server_ok(), 0);
	stop();
}
END_TEST

/* Loss on the way is recovered and the result cached as usual. */
START_TEST(lossy_first_read)
{
	struct idr_faults f = { .seed = 9, .loss_pm = 150, .corrupt_pm = 50,
	    .dup_pm = 50, .reorder = true, .never = -1 };
	struct idr_read_info ri;

	start(CACHE_MODE_MULTI, 0);
	ck_assert_r(tk_feed(&t, card_b), 0);
	idc_info_clear(info);
	ck_assert_r(idr_reader_read(t.rdr, tk_loop_connect, &t, &f, info,
	    &ri), 0);
	ck_assert_uint_ge(ri.up.rounds, 1);
	ck_assert_r(rd(&ri), 0);
	ck_assert(ri.from_cache);
	stop();
}
END_TEST

/* A packet that never arrives: the read fails cleanly, nothing cached,
 * and the reader can read again. */
START_TEST(never_arrives)
{
	struct idr_faults f = { .never = 2 };
	struct idr_read_info ri;

	start(CACHE_MODE_MULTI, 0);
	ck_assert_r(tk_feed(&t, card_a), 0);
	ck_assert_r(idr_reader_read(t.rdr, tk_loop_connect, &t, &f, info,
	    &ri), ML_ERR_TIMEOUT);
	ck_assert_r(rd(&ri), 0);
	ck_assert(!ri.from_cache && ri.data_cached);
	stop();
}
END_TEST

/* Output: JSON escaping and the text layout. */
START_TEST(print_info)
{
	struct idc_info *ii = calloc(1, sizeof(*ii));
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	tk_fill_info(3, ii);
	snprintf(ii->name, sizeof(ii->name), "a\"b\\c");
	f = open_memstream(&buf, &len);
	ck_assert_r(idr_print_info(f, ii, true, NULL), 0);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "{\"name\":\"a\\\"b\\\\c\",\"sex\":\"male\""));
	ck_assert_ptr_nonnull(strstr(buf, "\"photo_file\":null"));
	ck_assert_ptr_nonnull(strstr(buf, "\"valid_until\":\"2040-01-01\""));
	free(buf);
	buf = NULL;
	f = open_memstream(&buf, &len);
	ck_assert_r(idr_print_info(f, ii, false, NULL), 0);
	fclose(f);
	ck_assert_ptr_nonnull(strstr(buf, "ID number:          "));
	ck_assert_ptr_nonnull(strstr(buf, ii->idnum));
	ck_assert_ptr_nonnull(strstr(buf, "valid:              2020-01-01 - 2040-01-01"));
	free(buf);
	idc_info_clear(ii);
	free(ii);
}
END_TEST

static Suite *
idread_suite(void)
{
	Suite *s = suite_create("idread");
	TCase *tc = tcase_create("reader");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, no_card);
	tcase_add_test(tc, second_read_from_chip);
	tcase_add_test(tc, data_from_chip_cache);
	tcase_add_test(tc, idle_timeout_forgets);
	tcase_add_test(tc, cache_modes);
	tcase_add_test(tc, card_removed_mid_read);
	tcase_add_test(tc, unknown_card);
	tcase_add_test(tc, lossy_first_read);
	tcase_add_test(tc, never_arrives);
	tcase_add_test(tc, print_info);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(idread_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
