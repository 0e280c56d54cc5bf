/*
 * Unit tests for the reader secure chip's ID-card cache (applet_reader.c:
 * ID-6, ID-7, ID-9, ID-11..ID-13), driven purely through chip_transmit()
 * on images made by chip_manufacture() in a temp dir.  A few assertions
 * look at struct chip (chip_int.h) to check what no APDU can show: that
 * the plaintext is kept encrypted and that the random key is wiped.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ml_err.h"
#include "ml_tlv.h"
#include "ml_wr.h"

#include "apdu.h"
#include "chip.h"
#include "chiptest.h"
#include "chip_int.h"
#include "chip_proto.h"
#include "idcard_format.h"
#include "sw.h"

#define SO_PIN		"87654321"
#define USER_PIN	"1234"

static char tmpdir[] = "/tmp/ml-test-reader-XXXXXX";
static char img[300];

static uint8_t rbuf[CHIP_MAX_RESP];
static size_t rlen;		/* response data length (without SW) */

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(img, sizeof(img), "%s/reader.img", tmpdir);
}

static void
teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

static uint16_t
xfer_cap(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t len, uint32_t ne, size_t cap)
{
	return ct_cmd_cap(c, cla, ins, p1, p2, data, len, ne, cap, rbuf,
	    sizeof(rbuf), &rlen);
}

static uint16_t
xfer(struct chip *c, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t len, uint32_t ne)
{
	return xfer_cap(c, cla, ins, p1, p2, data, len, ne, sizeof(rbuf));
}

static void
select_reader(struct chip *c)
{
	uint8_t aid[CHIP_AID_LEN] = CHIP_AID_PREFIX;

	aid[CHIP_AID_PREFIX_LEN] = CHIP_KIND_READER;
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid,
	    sizeof(aid), 0), SW_OK);
}

static void
verify(struct chip *c, uint8_t who)
{
	const char *pin = who == PIN_SO ? SO_PIN : USER_PIN;

	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_VERIFY, 0, who, pin,
	    strlen(pin), 0), SW_OK);
}

/* A manufactured, selected, uninitialised reader chip. */
static struct chip *
blank_reader(void)
{
	struct chip *c = NULL;

	ck_assert_int_eq(chip_manufacture(img, CHIP_KIND_READER, "RDR0001"), 0);
	ck_assert_int_eq(chip_open(img, &c), 0);
	select_reader(c);
	return c;
}

/* INIT TOKEN, VERIFY SO, RESET RETRY (user PIN), VERIFY user. */
static struct chip *
ready_reader(void)
{
	struct chip *c = blank_reader();
	uint8_t d[64];
	size_t n = 0;

	d[n++] = (uint8_t)strlen(SO_PIN);
	memcpy(d + n, SO_PIN, strlen(SO_PIN));
	n += strlen(SO_PIN);
	d[n++] = 6;
	memcpy(d + n, "reader", 6);
	n += 6;
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_INIT_TOKEN, 0, 0, d, n, 0),
	    SW_OK);
	verify(c, PIN_SO);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_RESET_RETRY, 0, PIN_USER,
	    USER_PIN, strlen(USER_PIN), 0), SW_OK);
	verify(c, PIN_USER);
	return c;
}

/* A card configuration as an ID card would give it (idcard_format.h). */
static size_t
card_config(unsigned k, uint8_t *buf)
{
	struct ml_wr w = ML_WR_FIXED(buf, CACHE_MAX_CONFIG);
	struct idc_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.serial, "\x11\x22\x33\x44\x55\x66\x00\x00", 8);
	cfg.serial[6] = (uint8_t)(k >> 8);
	cfg.serial[7] = (uint8_t)k;
	cfg.appdata_len = 4;
	strcpy(cfg.proto, "ISO14443B");
	cfg.bitrate_kbps = 106;
	cfg.max_frame = 256;
	ck_assert_int_eq(idc_config_encode(&cfg, &w), 0);
	return w.len;
}

static void
fill(uint8_t *p, size_t n, unsigned k)
{
	size_t i;

	for (i = 0; i < n; i++) {
		p[i] = (uint8_t)(i * 31 + k * 7 + 1);
	}
}

/* PUT CONFIG for card k; returns the slot, checks `new`. */
static uint8_t
put_config(struct chip *c, unsigned k, bool want_new)
{
	uint8_t cfg[CACHE_MAX_CONFIG];
	size_t n = card_config(k, cfg);

	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_CONFIG, 0, 0, cfg, n,
	    2), SW_OK);
	ck_assert_uint_eq(rlen, 2);
	ck_assert_uint_lt(rbuf[0], CACHE_MAX_ENTRIES);
	ck_assert_uint_eq(rbuf[1], want_new ? 1 : 0);
	return rbuf[0];
}

static void
put_data(struct chip *c, uint8_t slot, unsigned k, size_t n)
{
	static uint8_t d[CACHE_MAX_DATA];

	fill(d, n, k);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_DATA, slot, 0, d, n,
	    0), SW_OK);
}

/* CACHE GET for card k: the SW; on 9000 checks config and data (of
 * data_len bytes from fill(k), 0: none) and returns has_plain. */
static uint16_t
get_entry(struct chip *c, unsigned k, size_t data_len, int *ret_slot,
    int *ret_has_plain)
{
	uint8_t cfg[CACHE_MAX_CONFIG];
	static uint8_t d[CACHE_MAX_DATA];
	size_t n = card_config(k, cfg);
	struct ml_rd rd, v;
	uint8_t b;
	uint16_t sw;

	sw = xfer(c, CLA_PROP, INS_CACHE_GET, 0, 0, cfg, n, 65536);
	if (sw != SW_OK) {
		return sw;
	}
	rd = ML_RD_INIT(rbuf, rlen);
	ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_SLOT, &v), 0);
	ck_assert_int_eq(ml_rd_u8(&v, &b), 0);
	if (ret_slot != NULL) {
		*ret_slot = b;
	}
	ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_CONFIG, &v), 0);
	ck_assert_uint_eq(ml_rd_left(&v), n);
	ck_assert_mem_eq(ml_rd_ptr(&v), cfg, n);
	if (data_len == 0) {
		ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_DATA, &v),
		    ML_ERR_NOT_FOUND);
	} else {
		fill(d, data_len, k);
		ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_DATA, &v), 0);
		ck_assert_uint_eq(ml_rd_left(&v), data_len);
		ck_assert_mem_eq(ml_rd_ptr(&v), d, data_len);
	}
	ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_HAS_PLAIN, &v), 0);
	ck_assert_int_eq(ml_rd_u8(&v, &b), 0);
	ck_assert_uint_le(b, 1);
	if (ret_has_plain != NULL) {
		*ret_has_plain = b;
	}
	return sw;
}

static bool
all_zero(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] != 0) {
			return false;
		}
	}
	return true;
}

/* ---- ID-13 multi-card (embodiment 6) ---- */

START_TEST(multi_card_cache)
{
	struct chip *c = ready_reader();
	uint8_t s[3], cfg[CACHE_MAX_CONFIG], d[100];
	struct ml_rd rd, v;
	int slot, plain;
	unsigned k;

	for (k = 0; k < 3; k++) {
		s[k] = put_config(c, k, true);
		put_data(c, s[k], k, 2300 + k);
	}
	ck_assert_uint_ne(s[0], s[1]);
	ck_assert_uint_ne(s[1], s[2]);
	ck_assert_uint_ne(s[0], s[2]);
	/* ID-6: stored only if not already stored */
	ck_assert_uint_eq(put_config(c, 1, false), s[1]);
	for (k = 0; k < 3; k++) {
		ck_assert_uint_eq(get_entry(c, k, 2300 + k, &slot, &plain),
		    SW_OK);
		ck_assert_int_eq(slot, s[k]);
		ck_assert_int_eq(plain, 0);
	}
	/* a config without data yet, and one never seen */
	put_config(c, 7, true);
	ck_assert_uint_eq(get_entry(c, 7, 0, NULL, NULL), SW_OK);
	ck_assert_uint_eq(get_entry(c, 8, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	/* data replaced */
	put_data(c, s[0], 40, 100);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET, 0, 0, cfg,
	    card_config(0, cfg), 65536), SW_OK);
	rd = ML_RD_INIT(rbuf, rlen);
	ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_DATA, &v), 0);
	ck_assert_uint_eq(ml_rd_left(&v), 100);
	fill(d, 100, 40);
	ck_assert_mem_eq(ml_rd_ptr(&v), d, 100);
	/* slots: out of range 6A86, unused 6A88 */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_DATA,
	    CACHE_MAX_ENTRIES, 0, "x", 1, 0), SW_INCORRECT_P1P2);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_DATA, 15, 0, "x", 1,
	    0), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, 200, 0, NULL,
	    0, 256), SW_INCORRECT_P1P2);
	chip_close(c);
}
END_TEST

START_TEST(multi_card_evicts_oldest)
{
	struct chip *c = ready_reader();
	uint8_t first, s;
	unsigned k;

	first = put_config(c, 0, true);
	put_data(c, first, 0, 64);
	for (k = 1; k < CACHE_MAX_ENTRIES; k++) {
		put_config(c, k, true);
	}
	/* seeing card 0 again does not make it younger: insertion order */
	ck_assert_uint_eq(put_config(c, 0, false), first);
	s = put_config(c, 100, true);
	ck_assert_uint_eq(s, first);
	ck_assert_uint_eq(get_entry(c, 0, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(get_entry(c, 100, 0, NULL, NULL), SW_OK);
	for (k = 1; k < CACHE_MAX_ENTRIES; k++) {
		ck_assert_uint_eq(get_entry(c, k, 0, NULL, NULL), SW_OK);
	}
	/* the next one evicts card 1 */
	put_config(c, 101, true);
	ck_assert_uint_eq(get_entry(c, 1, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(get_entry(c, 2, 0, NULL, NULL), SW_OK);
	chip_close(c);
}
END_TEST

/* ---- ID-13 single-card (embodiment 7) ---- */

START_TEST(single_card_mode)
{
	struct chip *c = ready_reader();
	uint8_t sa, sb, pt[300];
	struct ml_rd rd, v;
	uint8_t mode;

	/* the mode is the SO's */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_MODE, CACHE_MODE_SINGLE,
	    0, NULL, 0, 0), SW_SECURITY_NOT_SATISFIED);
	verify(c, PIN_SO);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_MODE, 3, 0, NULL, 0, 0),
	    SW_INCORRECT_P1P2);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_MODE, CACHE_MODE_SINGLE,
	    0, NULL, 0, 0), SW_OK);
	verify(c, PIN_USER);

	sa = put_config(c, 1, true);
	put_data(c, sa, 1, 2000);
	fill(pt, sizeof(pt), 77);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, sa, 0, pt,
	    sizeof(pt), 0), SW_OK);
	ck_assert(c->has_cache_key);
	/* the same card again: kept */
	ck_assert_uint_eq(put_config(c, 1, false), sa);
	/* another card: the store is cleared first, random key included */
	sb = put_config(c, 2, true);
	ck_assert_uint_eq(get_entry(c, 1, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(get_entry(c, 2, 0, NULL, NULL), SW_OK);
	ck_assert(!c->has_cache_key);
	ck_assert(all_zero(c->cache_key, sizeof(c->cache_key)));
	if (sb != sa) {
		ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, sa, 0,
		    NULL, 0, 256), SW_DATA_NOT_FOUND);
	}
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, sb, 0, NULL,
	    0, 256), SW_DATA_NOT_FOUND);

	/* the mode survives a power cycle */
	chip_close(c);
	ck_assert_int_eq(chip_open(img, &c), 0);
	select_reader(c);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0, NULL,
	    0, 256), SW_OK);
	rd = ML_RD_INIT(rbuf, rlen);
	ck_assert_int_eq(ml_tlv_find(&rd, TAG_INFO_MODE, &v), 0);
	ck_assert_int_eq(ml_rd_u8(&v, &mode), 0);
	ck_assert_uint_eq(mode, CACHE_MODE_SINGLE);
	verify(c, PIN_USER);
	put_config(c, 3, true);
	put_config(c, 4, true);
	ck_assert_uint_eq(get_entry(c, 3, 0, NULL, NULL), SW_DATA_NOT_FOUND);

	/* back to multi: the cache made under single-card rules goes */
	verify(c, PIN_SO);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_MODE, CACHE_MODE_MULTI,
	    0, NULL, 0, 0), SW_OK);
	verify(c, PIN_USER);
	ck_assert_uint_eq(get_entry(c, 4, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	put_config(c, 3, true);
	put_config(c, 4, true);
	ck_assert_uint_eq(get_entry(c, 3, 0, NULL, NULL), SW_OK);
	chip_close(c);
}
END_TEST

/* ---- ID-11 / ID-12 ---- */

START_TEST(plain_round_trip_and_clear)
{
	struct chip *c = ready_reader();
	static uint8_t pt[2300];
	uint8_t iv1[ML_GCM_IV_LEN], s;
	int plain;

	s = put_config(c, 5, true);
	put_data(c, s, 5, 2304);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    65536), SW_DATA_NOT_FOUND);
	ck_assert(!c->has_cache_key);

	fill(pt, sizeof(pt), 99);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, s, 0, pt,
	    sizeof(pt), 0), SW_OK);
	/* the random key was made; the entry holds ciphertext, not pt */
	ck_assert(c->has_cache_key);
	ck_assert(!all_zero(c->cache_key, sizeof(c->cache_key)));
	ck_assert_uint_eq(c->cache[s].plain_ct_len, sizeof(pt));
	ck_assert_int_ne(memcmp(c->cache[s].plain_ct, pt, sizeof(pt)), 0);
	memcpy(iv1, c->cache[s].plain_iv, sizeof(iv1));

	ck_assert_uint_eq(get_entry(c, 5, 2304, NULL, &plain), SW_OK);
	ck_assert_int_eq(plain, 1);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    65536), SW_OK);
	ck_assert_uint_eq(rlen, sizeof(pt));
	ck_assert_mem_eq(rbuf, pt, sizeof(pt));

	/* again: fresh IV under the same key */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, s, 0, pt,
	    sizeof(pt), 0), SW_OK);
	ck_assert_int_ne(memcmp(iv1, c->cache[s].plain_iv, sizeof(iv1)), 0);
	/* a tampered ciphertext does not come back as plaintext */
	c->cache[s].plain_ct[10] ^= 1;
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    65536), SW_SECURITY_NOT_SATISFIED);
	ck_assert_uint_eq(rlen, 0);
	c->cache[s].plain_ct[10] ^= 1;
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    65536), SW_OK);

	/* ID-12: CLEAR 1 forgets plaintext and key; config and data stay */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_CLEAR, 1, 0, NULL, 0, 0),
	    SW_OK);
	ck_assert(!c->has_cache_key);
	ck_assert(all_zero(c->cache_key, sizeof(c->cache_key)));
	ck_assert_ptr_null(c->cache[s].plain_ct);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    65536), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(get_entry(c, 5, 2304, NULL, &plain), SW_OK);
	ck_assert_int_eq(plain, 0);

	/* a new plaintext gets a new random key */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, s, 0, pt, 10,
	    0), SW_OK);
	ck_assert(c->has_cache_key);

	/* ID-9: CLEAR 0 forgets everything */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_CLEAR, 0, 0, NULL, 0, 0),
	    SW_OK);
	ck_assert_uint_eq(get_entry(c, 5, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    65536), SW_DATA_NOT_FOUND);
	ck_assert(!c->has_cache_key);
	ck_assert(all_zero(c->cache_key, sizeof(c->cache_key)));
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_CLEAR, 2, 0, NULL, 0, 0),
	    SW_INCORRECT_P1P2);
	chip_close(c);
}
END_TEST

/* ID-9, ID-12: power-off loses the cache and the random key. */
START_TEST(power_cycle_forgets)
{
	struct chip *c = ready_reader();
	uint8_t s, pt[64];

	s = put_config(c, 9, true);
	put_data(c, s, 9, 1000);
	fill(pt, sizeof(pt), 1);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, s, 0, pt,
	    sizeof(pt), 0), SW_OK);

	/* a warm reset keeps it (RAM stays powered), behind the login */
	chip_reset(c);
	select_reader(c);
	ck_assert_uint_eq(get_entry(c, 9, 0, NULL, NULL),
	    SW_SECURITY_NOT_SATISFIED);
	verify(c, PIN_USER);
	ck_assert_uint_eq(get_entry(c, 9, 1000, NULL, NULL), SW_OK);
	ck_assert(c->has_cache_key);

	chip_close(c);
	ck_assert_int_eq(chip_open(img, &c), 0);
	ck_assert(!c->has_cache_key);
	select_reader(c);
	verify(c, PIN_USER);
	ck_assert_uint_eq(get_entry(c, 9, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    256), SW_DATA_NOT_FOUND);
	chip_close(c);
}
END_TEST

START_TEST(oversize_and_lengths)
{
	struct chip *c = ready_reader();
	static uint8_t big[CACHE_MAX_DATA + 1];
	uint8_t s;

	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_CONFIG, 0, 0, big,
	    CACHE_MAX_CONFIG + 1, 0), SW_WRONG_LENGTH);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_CONFIG, 0, 0, NULL,
	    0, 0), SW_WRONG_LENGTH);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_CONFIG, 1, 0, "x", 1,
	    0), SW_INCORRECT_P1P2);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET, 0, 0, NULL, 0, 256),
	    SW_WRONG_LENGTH);
	/* any opaque config up to the limit is accepted */
	fill(big, CACHE_MAX_CONFIG, 3);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_CONFIG, 0, 0, big,
	    CACHE_MAX_CONFIG, 0), SW_OK);
	s = put_config(c, 1, true);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_DATA, s, 0, big,
	    CACHE_MAX_DATA + 1, 0), SW_NOT_ENOUGH_MEMORY);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_DATA, s, 0, NULL, 0,
	    0), SW_WRONG_LENGTH);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, s, 0, big,
	    CACHE_MAX_DATA + 1, 0), SW_NOT_ENOUGH_MEMORY);
	ck_assert_uint_eq(get_entry(c, 1, 0, NULL, NULL), SW_OK);
	/* exactly the limit: fine, and it comes back whole */
	put_data(c, s, 1, CACHE_MAX_DATA);
	ck_assert_uint_eq(get_entry(c, 1, CACHE_MAX_DATA, NULL, NULL), SW_OK);
	fill(big, CACHE_MAX_DATA, 4);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, s, 0, big,
	    CACHE_MAX_DATA, 0), SW_OK);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    65536), SW_OK);
	ck_assert_uint_eq(rlen, CACHE_MAX_DATA);
	ck_assert_mem_eq(rbuf, big, CACHE_MAX_DATA);
	chip_close(c);
}
END_TEST

/* Short Le and a 258-byte host buffer: the answer is chained (61xx). */
START_TEST(get_chained_short_le)
{
	struct chip *c = ready_reader();
	static uint8_t all[CACHE_MAX_DATA + 512];
	uint8_t cfg[CACHE_MAX_CONFIG];
	size_t n = card_config(6, cfg), got = 0;
	struct ml_rd rd, v;
	uint16_t sw;
	uint8_t s;

	s = put_config(c, 6, true);
	put_data(c, s, 6, 3000);
	sw = xfer_cap(c, CLA_PROP, INS_CACHE_GET, 0, 0, cfg, n, 256, 258);
	for (;;) {
		ck_assert_uint_le(got + rlen, sizeof(all));
		memcpy(all + got, rbuf, rlen);
		got += rlen;
		if (sw == SW_OK) {
			break;
		}
		ck_assert_uint_eq(sw & 0xff00, 0x6100);
		sw = xfer_cap(c, CLA_ISO, INS_GET_RESPONSE, 0, 0, NULL, 0,
		    (sw & 0xff) == 0 ? 256 : (sw & 0xff), 258);
	}
	rd = ML_RD_INIT(all, got);
	ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_DATA, &v), 0);
	ck_assert_uint_eq(ml_rd_left(&v), 3000);
	chip_close(c);
}
END_TEST

START_TEST(login_required)
{
	struct chip *c = ready_reader();
	uint8_t cfg[CACHE_MAX_CONFIG], s;
	size_t n = card_config(1, cfg);

	s = put_config(c, 1, true);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0, 0),
	    SW_OK);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_CONFIG, 0, 0, cfg, n,
	    0), SW_SECURITY_NOT_SATISFIED);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET, 0, 0, cfg, n, 256),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_DATA, s, 0, "x", 1,
	    0), SW_SECURITY_NOT_SATISFIED);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN, s, 0, "x", 1,
	    0), SW_SECURITY_NOT_SATISFIED);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, s, 0, NULL, 0,
	    256), SW_SECURITY_NOT_SATISFIED);
	/* the SO is not the user */
	verify(c, PIN_SO);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_GET, 0, 0, cfg, n, 256),
	    SW_SECURITY_NOT_SATISFIED);
	/* forgetting needs nobody */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0, 0),
	    SW_OK);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_CLEAR, 0, 0, NULL, 0, 0),
	    SW_OK);
	verify(c, PIN_USER);
	ck_assert_uint_eq(get_entry(c, 1, 0, NULL, NULL), SW_DATA_NOT_FOUND);
	chip_close(c);
}
END_TEST

/*
 * Every INS of the reader profile in every state: either its handler
 * answers (the SW listed) or 0x6985.
 */
START_TEST(every_ins_every_state)
{
	const struct chip_profile *p = &chip_profile_reader;
	uint8_t cfg[CACHE_MAX_CONFIG];
	size_t n = card_config(1, cfg), i;
	unsigned st;

	ck_assert_uint_eq(p->nstates, 2);
	for (st = 0; st < p->nstates; st++) {
		for (i = 0; i < p->nins; i++) {
			const struct ins_entry *e = &p->ins[i];
			struct chip *c;
			uint16_t sw, handler_sw = SW_OK;

			if (st == 0) {
				c = blank_reader();
			} else {
				c = ready_reader();
				put_config(c, 1, true);	/* slot 0 */
				put_data(c, 0, 1, 10);
				ck_assert_uint_eq(xfer(c, CLA_PROP,
				    INS_CACHE_PUT_PLAIN, 0, 0, "abc", 3, 0),
				    SW_OK);
			}
			ck_assert_uint_eq(p->state(c), 1u << st);
			switch (e->ins) {
			case INS_CACHE_MODE:
				sw = xfer(c, e->cla, e->ins, CACHE_MODE_MULTI,
				    0, NULL, 0, 0);
				handler_sw = SW_SECURITY_NOT_SATISFIED;
				break;
			case INS_CACHE_PUT_CONFIG:
				sw = xfer(c, e->cla, e->ins, 0, 0, cfg, n, 2);
				break;
			case INS_CACHE_PUT_DATA:
				sw = xfer(c, e->cla, e->ins, 0, 0, "d", 1, 0);
				break;
			case INS_CACHE_GET:
				sw = xfer(c, e->cla, e->ins, 0, 0, cfg, n, 256);
				break;
			case INS_CACHE_PUT_PLAIN:
				sw = xfer(c, e->cla, e->ins, 0, 0, "p", 1, 0);
				break;
			case INS_CACHE_GET_PLAIN:
				sw = xfer(c, e->cla, e->ins, 0, 0, NULL, 0, 256);
				break;
			case INS_CACHE_CLEAR:
				sw = xfer(c, e->cla, e->ins, 1, 0, NULL, 0, 0);
				break;
			default:
				ck_abort_msg("INS %02X has no test", e->ins);
				sw = 0;
			}
			if ((e->allowed & (1u << st)) == 0) {
				handler_sw = SW_CONDITIONS_NOT_SATISFIED;
			}
			ck_assert_msg(sw == handler_sw, "%s in %s: %04X want "
			    "%04X", e->name, p->state_names[st], sw, handler_sw);
			chip_close(c);
			ck_assert_int_eq(remove(img), 0);
			{
				char key[320];

				snprintf(key, sizeof(key), "%s.key", img);
				ck_assert_int_eq(remove(key), 0);
			}
		}
	}
}
END_TEST

/*
 * A seeded random walk over the cache commands against a model of
 * ID-13: both modes, eviction of the oldest, ID-12 / ID-9 clears.
 */
#define MODEL_CARDS	24

struct model {
	bool		 present[MODEL_CARDS];
	uint32_t	 seq[MODEL_CARDS];
	uint8_t		 slot[MODEL_CARDS];
	unsigned	 data[MODEL_CARDS];	/* 0: none, else fill tag */
	unsigned	 plain[MODEL_CARDS];	/* 0: none, else fill tag */
	uint32_t	 next_seq;
	bool		 single;
};

static uint32_t
lcg(uint32_t *x)
{
	*x = *x * 1103515245u + 12345u;
	return *x >> 8;
}

static unsigned
model_count(const struct model *m)
{
	unsigned k, n = 0;

	for (k = 0; k < MODEL_CARDS; k++) {
		n += m->present[k];
	}
	return n;
}

static void
model_step(struct chip *c, struct model *m, uint32_t *x)
{
	static uint8_t buf[1024];
	uint8_t cfg[CACHE_MAX_CONFIG];
	unsigned k = lcg(x) % MODEL_CARDS, t = 1 + lcg(x) % 200, j, old;
	size_t n = card_config(k, cfg);
	struct ml_rd rd, v;
	uint8_t b;
	uint16_t sw;

	switch (lcg(x) % 8) {
	case 0:
	case 1:		/* PUT CONFIG */
		sw = xfer(c, CLA_PROP, INS_CACHE_PUT_CONFIG, 0, 0, cfg, n, 2);
		ck_assert_uint_eq(sw, SW_OK);
		if (m->present[k]) {
			ck_assert_uint_eq(rbuf[1], 0);
			ck_assert_uint_eq(rbuf[0], m->slot[k]);
			break;
		}
		ck_assert_uint_eq(rbuf[1], 1);
		if (m->single) {
			memset(m->present, 0, sizeof(m->present));
		} else if (model_count(m) == CACHE_MAX_ENTRIES) {
			old = MODEL_CARDS;
			for (j = 0; j < MODEL_CARDS; j++) {
				if (m->present[j] && (old == MODEL_CARDS ||
				    m->seq[j] < m->seq[old])) {
					old = j;
				}
			}
			m->present[old] = false;
			ck_assert_uint_eq(rbuf[0], m->slot[old]);
		}
		m->present[k] = true;
		m->seq[k] = m->next_seq++;
		m->slot[k] = rbuf[0];
		m->data[k] = 0;
		m->plain[k] = 0;
		break;
	case 2:		/* PUT DATA */
		if (!m->present[k]) {
			break;
		}
		fill(buf, 50 + t, t);
		ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_DATA,
		    m->slot[k], 0, buf, 50 + t, 0), SW_OK);
		m->data[k] = t;
		break;
	case 3:		/* PUT PLAIN */
		if (!m->present[k]) {
			break;
		}
		fill(buf, 30 + t, t + 1000);
		ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_PUT_PLAIN,
		    m->slot[k], 0, buf, 30 + t, 0), SW_OK);
		m->plain[k] = t;
		break;
	case 4:
	case 5:		/* GET */
		sw = xfer(c, CLA_PROP, INS_CACHE_GET, 0, 0, cfg, n, 65536);
		if (!m->present[k]) {
			ck_assert_uint_eq(sw, SW_DATA_NOT_FOUND);
			break;
		}
		ck_assert_uint_eq(sw, SW_OK);
		rd = ML_RD_INIT(rbuf, rlen);
		if (m->data[k] == 0) {
			ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_DATA, &v),
			    ML_ERR_NOT_FOUND);
		} else {
			ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_DATA, &v),
			    0);
			fill(buf, 50 + m->data[k], m->data[k]);
			ck_assert_uint_eq(ml_rd_left(&v), 50 + m->data[k]);
			ck_assert_mem_eq(ml_rd_ptr(&v), buf, 50 + m->data[k]);
		}
		ck_assert_int_eq(ml_tlv_find(&rd, TAG_CACHE_HAS_PLAIN, &v), 0);
		ck_assert_int_eq(ml_rd_u8(&v, &b), 0);
		ck_assert_uint_eq(b, m->plain[k] != 0);
		break;
	case 6:		/* GET PLAIN */
		if (!m->present[k]) {
			break;
		}
		sw = xfer(c, CLA_PROP, INS_CACHE_GET_PLAIN, m->slot[k], 0,
		    NULL, 0, 65536);
		if (m->plain[k] == 0) {
			ck_assert_uint_eq(sw, SW_DATA_NOT_FOUND);
			break;
		}
		ck_assert_uint_eq(sw, SW_OK);
		fill(buf, 30 + m->plain[k], m->plain[k] + 1000);
		ck_assert_uint_eq(rlen, 30 + m->plain[k]);
		ck_assert_mem_eq(rbuf, buf, rlen);
		break;
	case 7:		/* rarely: CLEAR 1 or 0 */
		if (t > 20) {
			break;
		}
		ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_CLEAR, t & 1, 0,
		    NULL, 0, 0), SW_OK);
		for (j = 0; j < MODEL_CARDS; j++) {
			m->plain[j] = 0;
			if ((t & 1) == 0) {
				m->present[j] = false;
			}
		}
		break;
	}
}

START_TEST(random_walk_against_model)
{
	struct chip *c = ready_reader();
	struct model m;
	uint32_t x = 0x5eed0000u + (uint32_t)_i;
	unsigned i;

	memset(&m, 0, sizeof(m));
	if (_i == 1) {
		verify(c, PIN_SO);
		ck_assert_uint_eq(xfer(c, CLA_PROP, INS_CACHE_MODE,
		    CACHE_MODE_SINGLE, 0, NULL, 0, 0), SW_OK);
		verify(c, PIN_USER);
		m.single = true;
	}
	for (i = 0; i < 3000; i++) {
		model_step(c, &m, &x);
		ck_assert_uint_le(model_count(&m),
		    m.single ? 1 : CACHE_MAX_ENTRIES);
	}
	chip_close(c);
}
END_TEST

static Suite *
reader_suite(void)
{
	Suite *s = suite_create("reader");
	TCase *tc = tcase_create("cache");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, multi_card_cache);
	tcase_add_test(tc, multi_card_evicts_oldest);
	tcase_add_test(tc, single_card_mode);
	tcase_add_test(tc, plain_round_trip_and_clear);
	tcase_add_test(tc, power_cycle_forgets);
	tcase_add_test(tc, oversize_and_lengths);
	tcase_add_test(tc, get_chained_short_le);
	tcase_add_test(tc, login_required);
	tcase_add_test(tc, every_ins_every_state);
	tcase_add_loop_test(tc, random_walk_against_model, 0, 2);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(reader_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
