/*
 * Unit tests for the card OS core (chip-applet/chip.c) through
 * chip_transmit, on a reader-kind chip: the dispatcher (SELECT, CLA/INS
 * checks, state masks, malformed APDUs), PINs and their retry counters,
 * objects and their login rules, the key operations (each crypto round
 * trip followed by a one-byte tamper that must fail), volatile secrets,
 * GET RESPONSE chaining, and the promise that no APDU answer ever carries
 * a private scalar.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ml_err.h"
#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "chip_int.h"
#include "chip_state.h"

#include "chiptest.h"

#define SO_PIN		"87654321"
#define USER_PIN	"1234"
#define SERIAL		"CORE0001"

static char dir[256];
static char path[320];
static struct chip *c;
/* Every answer of every test, scanned for key material at teardown. */
static struct ml_wr all_answers;

static bool leaks(const uint8_t *hay, size_t hn, const uint8_t *secret,
    size_t sn);

static void
setup(void)
{
	ck_assert_r(ml_ossl_init(), 0);
	ml_log_set_level(ML_LOG_ERROR);
	ct_mkdtemp(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/reader.img", dir);
	ck_assert_r(chip_manufacture(path, CHIP_KIND_READER, SERIAL), 0);
	ck_assert_r(chip_open(path, &c), 0);
	all_answers = ml_wr_dyn(64 << 20);
	ct_transcript = &all_answers;
}

/*
 * Whatever a test did: no answer it got carries a private scalar the store
 * holds, or a volatile secret key still in RAM.
 */
static void
teardown(void)
{
	struct chip_state st;
	size_t i;

	ct_transcript = NULL;
	if (c != NULL && chip_state_parse(c->last, c->last_len, &st) == 0) {
		for (i = 0; i < st.nobjs; i++) {
			ck_assert_msg(!st.objs[i].has_priv ||
			    !leaks(all_answers.p, all_answers.len, st.objs[i].priv,
			    ML_P256_PRIV_LEN), "a private scalar was answered");
		}
		chip_state_clear(&st);
		for (i = 0; i < CHIP_MAX_SECRETS; i++) {
			ck_assert_msg(!c->secrets[i].used ||
			    !leaks(all_answers.p, all_answers.len, c->secrets[i].key,
			    ML_AES256_KEY_LEN), "a secret key was answered");
		}
	}
	ml_wr_free(&all_answers);
	chip_close(c);
	c = NULL;
	ct_rmtree(dir);
}

/* Power cycle. */
static void
repower(void)
{
	chip_close(c);
	c = NULL;
	ck_assert_r(chip_open(path, &c), 0);
}

static uint16_t
get_info(uint8_t *out, size_t cap, size_t *ret_len)
{
	return ct_cmd(c, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0, NULL, 0, 256,
	    out, cap, ret_len);
}

/* One GET DATA chip-info field as an integer. */
static uint32_t
info_field(uint32_t tag)
{
	uint8_t info[256];
	struct ml_rd rd, v;
	uint32_t x = 0;
	size_t n;
	uint8_t b;

	ck_assert_sw(get_info(info, sizeof(info), &n), SW_OK);
	rd = ML_RD_INIT(info, n);
	ck_assert_r(ml_tlv_find(&rd, tag, &v), 0);
	while (ml_rd_u8(&v, &b) == 0) {
		x = (x << 8) | b;
	}
	return x;
}

/* ---- SELECT and the dispatcher ---------------------------------- */

START_TEST(select_aids)
{
	uint8_t aid[CHIP_AID_LEN + 1] = CHIP_AID_PREFIX, fci[128];
	struct ml_rd rd, v, f;
	uint32_t tag;
	size_t n, k;

	aid[CHIP_AID_PREFIX_LEN] = CHIP_KIND_READER;
	/* Full AID with FCI. */
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_SELECT, 0x04, 0x00, aid, CHIP_AID_LEN,
	    256, fci, sizeof(fci), &n), SW_OK);
	rd = ML_RD_INIT(fci, n);
	ck_assert_r(ml_tlv_next(&rd, &tag, &v), 0);
	ck_assert_uint_eq(tag, 0x6F);
	ck_assert_r(ml_rd_end(&rd), 0);
	ck_assert_r(ml_tlv_find(&v, 0x84, &f), 0);
	ck_assert_uint_eq(f.len, CHIP_AID_LEN);
	ck_assert_mem_eq(f.p, aid, CHIP_AID_LEN);
	ck_assert_r(ml_tlv_find(&v, TAG_INFO_KIND, &f), 0);
	ck_assert_uint_eq(f.len, 1);
	ck_assert_uint_eq(f.p[0], CHIP_KIND_READER);
	ck_assert_r(ml_tlv_find(&v, TAG_INFO_SERIAL, &f), 0);
	ck_assert_uint_eq(f.len, CHIP_SERIAL_LEN);
	ck_assert_mem_eq(f.p, SERIAL "        ", CHIP_SERIAL_LEN);
	ck_assert_sw(get_info(NULL, 0, NULL), SW_OK);

	/* Every partial AID (a prefix of ours) selects. */
	for (k = 1; k <= CHIP_AID_LEN; k++) {
		ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid, k),
		    SW_OK);
		ck_assert_uint_eq(info_field(TAG_INFO_KIND), CHIP_KIND_READER);
	}

	/* Another kind's AID, a wrong byte, a longer AID, no AID: 6A82, and
	 * the applet is no longer selected. */
	aid[CHIP_AID_PREFIX_LEN] = CHIP_KIND_NOTE;
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid,
	    CHIP_AID_LEN), SW_FILE_NOT_FOUND);
	ck_assert_sw(get_info(NULL, 0, NULL), SW_CONDITIONS_NOT_SATISFIED);
	aid[CHIP_AID_PREFIX_LEN] = CHIP_KIND_READER;
	ck_assert_sw(ct_select(c), SW_OK);
	aid[0] = 0xA1;
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid, 3),
	    SW_FILE_NOT_FOUND);
	ck_assert_sw(get_info(NULL, 0, NULL), SW_CONDITIONS_NOT_SATISFIED);
	aid[0] = 0xA0;
	aid[CHIP_AID_LEN] = 0x00;
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid,
	    CHIP_AID_LEN + 1), SW_FILE_NOT_FOUND);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, NULL, 0),
	    SW_FILE_NOT_FOUND);
	/* Wrong P1/P2. */
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_SELECT, 0x00, 0x0C, aid,
	    CHIP_AID_LEN), SW_INCORRECT_P1P2);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_SELECT, 0x04, 0x01, aid,
	    CHIP_AID_LEN), SW_INCORRECT_P1P2);
}
END_TEST

/* Before SELECT every core command is 6985 (GET RESPONSE too: nothing). */
START_TEST(before_select)
{
	const struct chip_profile *core = &chip_profile_core;
	uint8_t data[8] = { 0 };
	size_t i;

	for (i = 0; i < core->nins; i++) {
		ck_assert_msg(ct_cmd0(c, core->ins[i].cla, core->ins[i].ins, 0, 0,
		    data, sizeof(data)) == SW_CONDITIONS_NOT_SATISFIED,
		    "%s before SELECT", core->ins[i].name);
	}
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_RESPONSE, 0, 0, NULL, 0, 256,
	    NULL, 0, NULL), SW_CONDITIONS_NOT_SATISFIED);
	/* A warm reset forgets the selection. */
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(get_info(NULL, 0, NULL), SW_OK);
	chip_reset(c);
	ck_assert_sw(get_info(NULL, 0, NULL), SW_CONDITIONS_NOT_SATISFIED);
}
END_TEST

/* (cla, ins) known to the reader profile or the core? */
static bool
in_table(const struct chip_profile *p, uint8_t cla, uint8_t ins)
{
	size_t i;

	for (i = 0; i < p->nins; i++) {
		if (p->ins[i].cla == cla && p->ins[i].ins == ins) {
			return true;
		}
	}
	return false;
}

static bool
ins_known(uint8_t ins)
{
	return in_table(&chip_profile_reader, CLA_ISO, ins) ||
	    in_table(&chip_profile_reader, CLA_PROP, ins) ||
	    in_table(&chip_profile_core, CLA_ISO, ins) ||
	    in_table(&chip_profile_core, CLA_PROP, ins) ||
	    ins == INS_SELECT || ins == INS_GET_RESPONSE;
}

START_TEST(unknown_ins_and_cla)
{
	static const uint8_t bad_cla[] = { 0x01, 0x02, 0x03, 0x04, 0x08, 0x0C,
	    0x10, 0x20, 0x40, 0x60, 0x81, 0x84, 0x8C, 0x90, 0xA0, 0xC0, 0xE0,
	    0xFE, 0xFF };
	unsigned ins, i;
	uint8_t cla;
	uint16_t sw;

	ck_assert_sw(ct_select(c), SW_OK);
	for (ins = 0; ins < 256; ins++) {
		for (i = 0; i < 2; i++) {
			cla = i ? CLA_PROP : CLA_ISO;
			sw = ct_cmd0(c, cla, (uint8_t)ins, 0, 0, NULL, 0);
			if (!ins_known((uint8_t)ins)) {
				ck_assert_msg(sw == SW_INS_NOT_SUPPORTED,
				    "CLA %02X INS %02X: %04X", cla, ins, sw);
			} else if (!in_table(&chip_profile_reader, cla, (uint8_t)ins) &&
			    !in_table(&chip_profile_core, cla, (uint8_t)ins) &&
			    !(cla == CLA_ISO && (ins == INS_SELECT ||
			    ins == INS_GET_RESPONSE))) {
				/* the INS exists, under the other CLA */
				ck_assert_msg(sw == SW_CLA_NOT_SUPPORTED,
				    "CLA %02X INS %02X: %04X", cla, ins, sw);
			} else {
				ck_assert_msg(sw != SW_INS_NOT_SUPPORTED &&
				    sw != SW_CLA_NOT_SUPPORTED,
				    "CLA %02X INS %02X: %04X", cla, ins, sw);
			}
		}
		for (i = 0; i < ML_NELEM(bad_cla); i++) {
			/* Channels, secure messaging, chaining: not here. */
			ck_assert_msg(ct_cmd0(c, bad_cla[i], (uint8_t)ins, 0, 0, NULL,
			    0) == SW_CLA_NOT_SUPPORTED, "CLA %02X INS %02X",
			    bad_cla[i], ins);
		}
	}
	/* Still selected, nothing changed. */
	ck_assert_uint_eq(info_field(TAG_INFO_KIND), CHIP_KIND_READER);
}
END_TEST

/* Malformed APDUs: 6700, and no change to flash, RAM, login, selection. */
START_TEST(malformed_apdus)
{
	static const struct {
		uint8_t	 raw[12];
		size_t	 len;
	} bad[] = {
		{ { 0x80 }, 1 },
		{ { 0x80, 0x64, 0x00 }, 3 },
		{ { 0x80, 0x64, 0x00, 0x00, 0x05, 0x00, 0x00 }, 7 },	/* Lc overrun */
		{ { 0x80, 0x64, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00 }, 9 }, /* trailing */
		{ { 0x80, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 }, 8 }, /* ext Lc 0 */
		{ { 0x80, 0x64, 0x00, 0x00, 0x00, 0x00 }, 6 },		/* 00 00 body */
		{ { 0x80, 0x64, 0x00, 0x00, 0x00, 0x00, 0x03, 0x00 }, 8 }, /* ext overrun */
		{ { 0x80, 0x68, 0x00, 0x01, 0x00, 0x00, 0x01, 0xAA, 0x00 }, 9 },
		{ { 0x00, 0x20, 0x00, 0x81, 0x04, '1', '2', '3' }, 8 },
		{ { 0x00, 0x20, 0x00, 0x81, 0x04, '1', '2', '3', '4', 0, 0 }, 11 },
		{ { 0x00, 0xA4, 0x04, 0x00, 0x09, 0xA0 }, 6 },
	};
	uint8_t *before;
	size_t blen, i;
	uint32_t gen;

	ct_personalise(c, SO_PIN, USER_PIN);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_CREATE_OBJECT, 0, 0, "\0\0abc", 5),
	    SW_OK);
	blen = c->last_len;
	ck_assert_ptr_nonnull(before = malloc(blen));
	memcpy(before, c->last, blen);
	gen = store_generation(c->store);
	for (i = 0; i < ML_NELEM(bad); i++) {
		ck_assert_msg(ct_send(c, bad[i].raw, bad[i].len, NULL, 0, NULL) ==
		    SW_WRONG_LENGTH, "bad[%zu]", i);
		ck_assert_uint_eq(store_generation(c->store), gen);
		ck_assert_uint_eq(c->last_len, blen);
		ck_assert_mem_eq(c->last, before, blen);
		ck_assert_uint_eq(c->st.nobjs, 1);
		ck_assert(c->selected);
		ck_assert_int_eq(c->login, LOGIN_USER);
	}
	/* Still logged in (status query), still selected, PIN tries full. */
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, PIN_USER, NULL, 0), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_USER_TRIES), PIN_MAX_TRIES);
	free(before);
}
END_TEST

/* ---- PINs -------------------------------------------------------- */

START_TEST(pin_lifecycle)
{
	uint8_t buf[80];

	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_STATE), 0);
	/* BLANK: PIN commands are not there yet. */
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_CONDITIONS_NOT_SATISFIED);
	/* INIT TOKEN refuses a short SO PIN or a long label. */
	ck_assert_sw(ct_init_token(c, "123", "x"), SW_WRONG_DATA);
	ck_assert_sw(ct_init_token(c, SO_PIN,
	    "0123456789012345678901234567890123"), SW_WRONG_LENGTH);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_INIT_TOKEN, 0, 0, buf,
	    ct_lv8x2(buf, SO_PIN, "lbl") - 1), SW_WRONG_LENGTH);
	ck_assert_sw(ct_init_token(c, SO_PIN, "my label"), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_STATE), INFO_F_INITIALIZED);

	/* The user PIN does not exist until the SO sets it. */
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_DATA_NOT_FOUND);
	ck_assert_sw(ct_init_pin(c, USER_PIN), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_verify(c, PIN_SO, "00000000"), SW_WARN_PIN_TRIES(4));
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_SO_TRIES), SO_PIN_MAX_TRIES);
	ck_assert_uint_eq(info_field(TAG_INFO_LOGIN), LOGIN_SO);
	ck_assert_sw(ct_init_pin(c, "12"), SW_WRONG_DATA);	/* too short */
	ck_assert_sw(ct_init_pin(c, USER_PIN), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_STATE),
	    INFO_F_INITIALIZED | INFO_F_USER_PIN_SET);

	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_LOGIN), LOGIN_USER);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, PIN_USER, NULL, 0), SW_OK);
	/* VERIFY P2 other than 81/82, P1 not 0. */
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, 0x83, USER_PIN, 4),
	    SW_INCORRECT_P1P2);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 1, PIN_USER, USER_PIN, 4),
	    SW_INCORRECT_P1P2);

	/* CHANGE PIN: wrong old PIN counts; right one changes it. */
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_CHANGE_PIN, 0, PIN_USER, buf,
	    ct_lv8x2(buf, "9999", "5678")), SW_WARN_PIN_TRIES(2));
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_CHANGE_PIN, 0, PIN_USER, buf,
	    ct_lv8x2(buf, USER_PIN, "56")), SW_WRONG_DATA);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_CHANGE_PIN, 0, PIN_USER, buf,
	    ct_lv8x2(buf, USER_PIN, "5678")), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_USER_TRIES), PIN_MAX_TRIES);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_WARN_PIN_TRIES(2));
	ck_assert_uint_eq(info_field(TAG_INFO_LOGIN), LOGIN_NONE);
	ck_assert_sw(ct_verify(c, PIN_USER, "5678"), SW_OK);

	/* LOGOUT; state survives a power cycle; login does not. */
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_LOGIN), LOGIN_NONE);
	ck_assert_sw(ct_verify(c, PIN_USER, "5678"), SW_OK);
	repower();
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_LOGIN), LOGIN_NONE);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, PIN_USER, NULL, 0),
	    SW_WARN_PIN_TRIES(3));
	ck_assert_sw(ct_verify(c, PIN_USER, "5678"), SW_OK);
	{
		uint8_t info[256], *p;
		size_t n;

		ck_assert_sw(get_info(info, sizeof(info), &n), SW_OK);
		p = memmem(info, n, "my label", 8);
		ck_assert_ptr_nonnull(p);
	}
}
END_TEST

START_TEST(pin_retry_and_block)
{
	ct_personalise(c, SO_PIN, USER_PIN);
	ck_assert_sw(ct_verify(c, PIN_USER, "0000"), SW_WARN_PIN_TRIES(2));
	ck_assert_sw(ct_verify(c, PIN_USER, "000"), SW_WARN_PIN_TRIES(1));	/* short counts */
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, PIN_USER, NULL, 0),
	    SW_WARN_PIN_TRIES(1));
	ck_assert_sw(ct_verify(c, PIN_USER, "0000"), SW_AUTH_BLOCKED);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_AUTH_BLOCKED);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, PIN_USER, NULL, 0),
	    SW_AUTH_BLOCKED);
	ck_assert(info_field(TAG_INFO_STATE) & INFO_F_USER_LOCKED);
	ck_assert_uint_eq(info_field(TAG_INFO_USER_TRIES), 0);
	/* Blocked persists across power. */
	repower();
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_AUTH_BLOCKED);
	ck_assert(info_field(TAG_INFO_STATE) & INFO_F_USER_LOCKED);
	/* A blocked user cannot change the PIN either. */
	{
		uint8_t buf[20];

		ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_CHANGE_PIN, 0, PIN_USER, buf,
		    ct_lv8x2(buf, USER_PIN, "4321")), SW_AUTH_BLOCKED);
	}
	/* The SO unblocks with RESET RETRY. */
	ck_assert_sw(ct_init_pin(c, "4321"), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_OK);
	ck_assert_sw(ct_init_pin(c, "4321"), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_USER_TRIES), PIN_MAX_TRIES);
	ck_assert(!(info_field(TAG_INFO_STATE) & INFO_F_USER_LOCKED));
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_WARN_PIN_TRIES(2));
	ck_assert_sw(ct_verify(c, PIN_USER, "4321"), SW_OK);
	ck_assert_uint_eq(info_field(TAG_INFO_USER_TRIES), PIN_MAX_TRIES);

	/* The SO PIN has its own counter of 5 and blocks too. */
	ck_assert_sw(ct_verify(c, PIN_SO, "x1234567"), SW_WARN_PIN_TRIES(4));
	ck_assert_sw(ct_verify(c, PIN_SO, "x1234567"), SW_WARN_PIN_TRIES(3));
	ck_assert_sw(ct_verify(c, PIN_SO, "x1234567"), SW_WARN_PIN_TRIES(2));
	ck_assert_sw(ct_verify(c, PIN_SO, "x1234567"), SW_WARN_PIN_TRIES(1));
	ck_assert_sw(ct_verify(c, PIN_SO, "x1234567"), SW_AUTH_BLOCKED);
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_AUTH_BLOCKED);
	ck_assert(info_field(TAG_INFO_STATE) & INFO_F_SO_LOCKED);
	/* and re-initialising the token needs the SO PIN: blocked as well */
	ck_assert_sw(ct_init_token(c, SO_PIN, "again"), SW_AUTH_BLOCKED);
	repower();
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_AUTH_BLOCKED);
	/* The user is unaffected. */
	ck_assert_sw(ct_verify(c, PIN_USER, "4321"), SW_OK);
}
END_TEST

/* ---- objects ---------------------------------------------------- */

static uint16_t
create_obj(uint8_t cls, uint8_t flags, const void *attrs, size_t n,
    uint16_t *ret_id)
{
	uint8_t *buf = malloc(n + 2), id[2];
	size_t rl = 0;
	uint16_t sw;

	ck_assert_ptr_nonnull(buf);
	buf[0] = cls;
	buf[1] = flags;
	if (n > 0) {
		memcpy(buf + 2, attrs, n);
	}
	sw = ct_cmd(c, CLA_PROP, INS_CREATE_OBJECT, 0, 0, buf, n + 2, 0, id,
	    sizeof(id), &rl);
	free(buf);
	if (sw == SW_OK) {
		ck_assert_uint_eq(rl, 2);
		*ret_id = (uint16_t)(id[0] << 8 | id[1]);
	}
	return sw;
}

/* READ OBJECT; returns the SW and the attrs (copied) if 9000. */
static uint16_t
read_attrs(uint16_t id, uint8_t *attrs, size_t cap, size_t *ret_n)
{
	static uint8_t obj[OBJ_MAX_ATTRS + 256];
	struct ml_rd rd, v;
	size_t n;
	uint16_t sw;

	sw = ct_cmd(c, CLA_PROP, INS_READ_OBJECT, id >> 8, id & 0xff, NULL, 0,
	    65536, obj, sizeof(obj), &n);
	if (sw != SW_OK) {
		return sw;
	}
	rd = ML_RD_INIT(obj, n);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_ID, &v), 0);
	ck_assert_uint_eq(v.len, 2);
	ck_assert_uint_eq(v.p[0] << 8 | v.p[1], id);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_ATTRS, &v), 0);
	ck_assert_uint_le(v.len, cap);
	memcpy(attrs, v.p, v.len);
	*ret_n = v.len;
	return sw;
}

START_TEST(objects_and_login)
{
	uint8_t got[OBJ_MAX_ATTRS + 100], big[OBJ_MAX_ATTRS + 1];
	uint16_t pub, priv, ro, bigid, id;
	size_t n;

	memset(big, 0x5A, sizeof(big));
	ct_personalise(c, SO_PIN, USER_PIN);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0), SW_OK);
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, "pub", 3, &pub),
	    SW_SECURITY_NOT_SATISFIED);
	/* The SO is not the user. */
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_OK);
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, "pub", 3, &pub),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);

	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, "public attrs", 12, &pub), SW_OK);
	ck_assert_sw(create_obj(OBJ_CLASS_CERT, OBJ_F_PRIVATE, "secret attrs", 12,
	    &priv), SW_OK);
	ck_assert_sw(create_obj(OBJ_CLASS_PUBKEY, OBJ_F_READONLY, "ro", 2, &ro),
	    SW_OK);
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, big, OBJ_MAX_ATTRS, &bigid),
	    SW_OK);
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, NULL, 0, &id), SW_OK);
	ck_assert_uint_ne(pub, priv);
	/* Refused: too big, a private key, unknown flags, chip-only flags. */
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, big, OBJ_MAX_ATTRS + 1, &id),
	    SW_WRONG_LENGTH);
	ck_assert_sw(create_obj(OBJ_CLASS_PRIVKEY, 0, "k", 1, &id), SW_WRONG_DATA);
	ck_assert_sw(create_obj(4, 0, "k", 1, &id), SW_WRONG_DATA);
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, OBJ_F_SIGN, "k", 1, &id),
	    SW_WRONG_DATA);
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, OBJ_F_CHIPKEY, "k", 1, &id),
	    SW_WRONG_DATA);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_CREATE_OBJECT, 0, 0, "\0", 1),
	    SW_WRONG_LENGTH);

	ck_assert_sw(read_attrs(bigid, got, sizeof(got), &n), SW_OK);
	ck_assert_uint_eq(n, OBJ_MAX_ATTRS);
	ck_assert_mem_eq(got, big, n);

	/* Logged out: public readable, private not; no writes. */
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0), SW_OK);
	ck_assert_sw(read_attrs(pub, got, sizeof(got), &n), SW_OK);
	ck_assert_uint_eq(n, 12);
	ck_assert_mem_eq(got, "public attrs", 12);
	ck_assert_sw(read_attrs(priv, got, sizeof(got), &n),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_UPDATE_OBJECT, pub >> 8, pub & 0xff,
	    "x", 1), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_DELETE_OBJECT, pub >> 8, pub & 0xff,
	    NULL, 0), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(read_attrs(0x7777, got, sizeof(got), &n), SW_DATA_NOT_FOUND);

	/* Logged in: everything, except read-only objects stay as they are. */
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
	ck_assert_sw(read_attrs(priv, got, sizeof(got), &n), SW_OK);
	ck_assert_mem_eq(got, "secret attrs", 12);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_UPDATE_OBJECT, pub >> 8, pub & 0xff,
	    "new public attrs", 16), SW_OK);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_UPDATE_OBJECT, ro >> 8, ro & 0xff,
	    "x", 1), SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_DELETE_OBJECT, ro >> 8, ro & 0xff,
	    NULL, 0), SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_UPDATE_OBJECT, 0x77, 0x77, "x", 1),
	    SW_DATA_NOT_FOUND);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_UPDATE_OBJECT, pub >> 8, pub & 0xff,
	    big, OBJ_MAX_ATTRS + 1), SW_WRONG_LENGTH);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_DELETE_OBJECT, priv >> 8,
	    priv & 0xff, NULL, 0), SW_OK);
	ck_assert_sw(read_attrs(priv, got, sizeof(got), &n), SW_DATA_NOT_FOUND);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_DELETE_OBJECT, priv >> 8,
	    priv & 0xff, NULL, 0), SW_DATA_NOT_FOUND);

	/* All of it persists. */
	repower();
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(read_attrs(pub, got, sizeof(got), &n), SW_OK);
	ck_assert_uint_eq(n, 16);
	ck_assert_mem_eq(got, "new public attrs", 16);
	ck_assert_sw(read_attrs(ro, got, sizeof(got), &n), SW_OK);
	ck_assert_sw(read_attrs(priv, got, sizeof(got), &n), SW_DATA_NOT_FOUND);
	{
		uint8_t list[256];
		size_t ln, i;
		bool seen_ro = false;

		ck_assert_sw(ct_cmd(c, CLA_PROP, INS_LIST_OBJECTS, 0, 0, NULL, 0,
		    256, list, sizeof(list), &ln), SW_OK);
		ck_assert_uint_eq(ln, 4 * OBJ_LIST_ENTRY_LEN);
		for (i = 0; i < ln; i += OBJ_LIST_ENTRY_LEN) {
			if ((list[i] << 8 | list[i + 1]) == ro) {
				seen_ro = true;
				ck_assert_uint_eq(list[i + 2], OBJ_CLASS_PUBKEY);
				ck_assert_uint_eq(list[i + 3], OBJ_F_READONLY);
				ck_assert_uint_eq(list[i + 4] << 8 | list[i + 5], 2);
			}
		}
		ck_assert(seen_ro);
	}

	/* INIT TOKEN again (right SO PIN): every object and the user PIN go. */
	ck_assert_sw(ct_init_token(c, "wrong-so", "relabel"), SW_WARN_PIN_TRIES(4));
	ck_assert_sw(read_attrs(pub, got, sizeof(got), &n), SW_OK);
	ck_assert_sw(ct_init_token(c, SO_PIN, "relabel"), SW_OK);
	ck_assert_sw(read_attrs(pub, got, sizeof(got), &n), SW_DATA_NOT_FOUND);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_DATA_NOT_FOUND);
	ck_assert_uint_eq(info_field(TAG_INFO_STATE), INFO_F_INITIALIZED);
}
END_TEST

/* ---- keys -------------------------------------------------------- */

struct kp {
	uint16_t	 priv, pub;
	uint8_t		 point[ML_P256_PUB_LEN];
};

static void
gen_keypair(struct kp *k)
{
	static const uint8_t attrs[] = { 0x00, 0x03, 'p', 'r', 'v', 0x00, 0x02,
	    'p', 'b' };
	uint8_t out[128];
	size_t n;

	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_NORMAL, 0, attrs,
	    sizeof(attrs), 256, out, sizeof(out), &n), SW_OK);
	ck_assert_uint_eq(n, 4 + ML_P256_PUB_LEN);
	k->priv = (uint16_t)(out[0] << 8 | out[1]);
	k->pub = (uint16_t)(out[2] << 8 | out[3]);
	memcpy(k->point, out + 4, ML_P256_PUB_LEN);
	ck_assert_uint_eq(k->point[0], 0x04);
	ck_assert_r(ml_p256_check_pub(k->point, ML_P256_PUB_LEN), 0);
}

static uint16_t
sign(uint16_t id, const uint8_t *dg, size_t dlen, uint8_t sig[64])
{
	uint8_t buf[2 + 80];
	size_t n = 0;
	uint16_t sw;

	buf[0] = (uint8_t)(id >> 8);
	buf[1] = (uint8_t)id;
	memcpy(buf + 2, dg, dlen);
	sw = ct_cmd(c, CLA_PROP, INS_SIGN, 0x9E, 0x9A, buf, 2 + dlen, 256, sig,
	    64, &n);
	if (sw == SW_OK) {
		ck_assert_uint_eq(n, ML_P256_SIG_LEN);
	}
	return sw;
}

START_TEST(keypair_sign_verify)
{
	struct ml_p256_key *pk;
	uint8_t dg[64], sig[ML_P256_SIG_LEN], got[128], obj[512];
	struct ml_rd rd, v;
	struct kp k;
	size_t n, i;

	for (i = 0; i < sizeof(dg); i++) {
		dg[i] = (uint8_t)(i * 3 + 1);
	}
	ct_personalise(c, SO_PIN, USER_PIN);
	gen_keypair(&k);
	ck_assert_r(ml_p256_key_from_pub(k.point, sizeof(k.point), &pk), 0);

	ck_assert_sw(sign(k.priv, dg, 32, sig), SW_OK);
	ck_assert_r(ml_p256_verify_digest(pk, dg, 32, sig, sizeof(sig)), 0);
	/* One-byte tampers: of the signature, of the digest. */
	for (i = 0; i < sizeof(sig); i += 7) {
		sig[i] ^= 0x01;
		ck_assert_r(ml_p256_verify_digest(pk, dg, 32, sig, sizeof(sig)),
		    ML_ERR_AUTH);
		sig[i] ^= 0x01;
	}
	dg[31] ^= 0x80;
	ck_assert_r(ml_p256_verify_digest(pk, dg, 32, sig, sizeof(sig)),
	    ML_ERR_AUTH);
	dg[31] ^= 0x80;
	/* Other digest lengths 1..64. */
	ck_assert_sw(sign(k.priv, dg, 1, sig), SW_OK);
	ck_assert_r(ml_p256_verify_digest(pk, dg, 1, sig, sizeof(sig)), 0);
	ck_assert_sw(sign(k.priv, dg, 64, sig), SW_OK);
	ck_assert_r(ml_p256_verify_digest(pk, dg, 64, sig, sizeof(sig)), 0);
	ck_assert_sw(sign(k.priv, dg, 0, sig), SW_WRONG_LENGTH);
	{
		uint8_t buf[2 + 65] = { (uint8_t)(k.priv >> 8), (uint8_t)k.priv };

		ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SIGN, 0x9E, 0x9A, buf,
		    sizeof(buf)), SW_WRONG_LENGTH);
		ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SIGN, 0x9E, 0x9A, buf, 1),
		    SW_WRONG_LENGTH);
	}
	/* Not a private key, no such key, wrong P1P2, not logged in. */
	ck_assert_sw(sign(k.pub, dg, 32, sig), SW_DATA_NOT_FOUND);
	ck_assert_sw(sign(0x4242, dg, 32, sig), SW_DATA_NOT_FOUND);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SIGN, 0x9E, 0x00, "\0\1x", 3),
	    SW_INCORRECT_P1P2);
	/* The key objects: a point, never a private value. */
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_READ_OBJECT, k.priv >> 8,
	    k.priv & 0xff, NULL, 0, 256, obj, sizeof(obj), &n), SW_OK);
	rd = ML_RD_INIT(obj, n);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_CLASS, &v), 0);
	ck_assert_uint_eq(v.p[0], OBJ_CLASS_PRIVKEY);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_FLAGS, &v), 0);
	ck_assert(v.p[0] & OBJ_F_PRIVATE);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_POINT, &v), 0);
	ck_assert_mem_eq(v.p, k.point, ML_P256_PUB_LEN);
	ck_assert_r(ml_tlv_find(&rd, TAG_OBJ_ATTRS, &v), 0);
	ck_assert_mem_eq(v.p, "prv", 3);
	ck_assert_sw(read_attrs(k.pub, got, sizeof(got), &n), SW_OK);
	ck_assert_mem_eq(got, "pb", 2);

	/* Survives power; needs the user logged in. */
	repower();
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(sign(k.priv, dg, 32, sig), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_OK);
	ck_assert_sw(sign(k.priv, dg, 32, sig), SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
	ck_assert_sw(sign(k.priv, dg, 32, sig), SW_OK);
	ck_assert_r(ml_p256_verify_digest(pk, dg, 32, sig, sizeof(sig)), 0);
	/* GEN KEYPAIR refuses bad P1/P2, trailing data, the note-only chip key. */
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_GEN_KEYPAIR, 2, 0, "\0\0\0\0", 4),
	    SW_INCORRECT_P1P2);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_GEN_KEYPAIR, 0, 0, "\0\0\0\0\0", 5),
	    SW_WRONG_LENGTH);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_CHIPKEY, 0,
	    "\0\0\0\0", 4), SW_FUNC_NOT_SUPPORTED);
	ml_p256_key_free(pk);
}
END_TEST

START_TEST(ecdh_matches_peer)
{
	uint8_t peer_priv[ML_P256_PRIV_LEN], peer_pub[ML_P256_PUB_LEN];
	uint8_t x[64], want[ML_P256_SECRET_LEN];
	struct ml_p256_key *peer;
	struct kp k;
	size_t n;
	int i;

	ct_personalise(c, SO_PIN, USER_PIN);
	gen_keypair(&k);
	for (i = 0; i < 3; i++) {
		ck_assert_r(ml_p256_keygen(peer_priv, peer_pub), 0);
		ck_assert_r(ml_p256_key_from_priv(peer_priv, &peer), 0);
		ck_assert_r(ml_p256_ecdh(peer, k.point, sizeof(k.point), want), 0);
		ck_assert_sw(ct_cmd(c, CLA_PROP, INS_ECDH, k.priv >> 8,
		    k.priv & 0xff, peer_pub, sizeof(peer_pub), 256, x, sizeof(x),
		    &n), SW_OK);
		ck_assert_uint_eq(n, ML_P256_SECRET_LEN);
		ck_assert_mem_eq(x, want, sizeof(want));
		/* A one-byte change of the peer point: not on the curve. */
		peer_pub[40] ^= 0x01;
		ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_ECDH, k.priv >> 8,
		    k.priv & 0xff, peer_pub, sizeof(peer_pub)), SW_WRONG_DATA);
		peer_pub[40] ^= 0x01;
		ml_p256_key_free(peer);
		ml_wipe(peer_priv, sizeof(peer_priv));
	}
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_ECDH, k.priv >> 8, k.priv & 0xff,
	    peer_pub, 64), SW_WRONG_LENGTH);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_ECDH, k.pub >> 8, k.pub & 0xff,
	    peer_pub, sizeof(peer_pub)), SW_DATA_NOT_FOUND);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0), SW_OK);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_ECDH, k.priv >> 8, k.priv & 0xff,
	    peer_pub, sizeof(peer_pub)), SW_SECURITY_NOT_SATISFIED);
}
END_TEST

/* ---- volatile secrets ------------------------------------------- */

static size_t
aead_msg(uint8_t *buf, const uint8_t iv[12], const char *aad, const void *body,
    size_t n)
{
	size_t na = strlen(aad);

	memcpy(buf, iv, 12);
	buf[12] = (uint8_t)(na >> 8);
	buf[13] = (uint8_t)na;
	memcpy(buf + 14, aad, na);
	memcpy(buf + 14 + na, body, n);
	return 14 + na + n;
}

START_TEST(secret_roundtrip_and_tamper)
{
	static uint8_t pt[1000], ct[1100], out[1100], msg[1200];
	uint8_t iv[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 }, h;
	size_t n, ctn, m, i;

	for (i = 0; i < sizeof(pt); i++) {
		pt[i] = (uint8_t)(i * 11);
	}
	ct_personalise(c, SO_PIN, USER_PIN);
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_GEN_SECRET, 0, 0, NULL, 0, 256, &h,
	    1, &n), SW_OK);
	ck_assert_uint_eq(n, 1);
	m = aead_msg(msg, iv, "header", pt, sizeof(pt));
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_SECRET_ENCRYPT, h, 0, msg, m, 65536,
	    ct, sizeof(ct), &ctn), SW_OK);
	ck_assert_uint_eq(ctn, sizeof(pt) + ML_GCM_TAG_LEN);
	ck_assert(memcmp(ct, pt, 32) != 0);

	m = aead_msg(msg, iv, "header", ct, ctn);
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m, 65536,
	    out, sizeof(out), &n), SW_OK);
	ck_assert_uint_eq(n, sizeof(pt));
	ck_assert_mem_eq(out, pt, sizeof(pt));

	/* One-byte tampers: ciphertext, tag, AAD, IV. */
	for (i = 0; i < ctn; i += 97) {
		ct[i] ^= 0x20;
		m = aead_msg(msg, iv, "header", ct, ctn);
		ck_assert_sw(ct_cmd(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m,
		    65536, out, sizeof(out), &n), SW_DATA_INVALID);
		ck_assert_uint_eq(n, 0);
		ct[i] ^= 0x20;
	}
	ct[ctn - 1] ^= 1;
	m = aead_msg(msg, iv, "header", ct, ctn);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m),
	    SW_DATA_INVALID);
	ct[ctn - 1] ^= 1;
	m = aead_msg(msg, iv, "headeR", ct, ctn);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m),
	    SW_DATA_INVALID);
	iv[0] ^= 1;
	m = aead_msg(msg, iv, "header", ct, ctn);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m),
	    SW_DATA_INVALID);
	iv[0] ^= 1;
	/* Shorter than a tag; a truncated AAD length. */
	m = aead_msg(msg, iv, "", ct, 15);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m),
	    SW_WRONG_LENGTH);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, 13),
	    SW_WRONG_LENGTH);
	/* Untouched message still opens. */
	m = aead_msg(msg, iv, "header", ct, ctn);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m), SW_OK);

	/* A second key is another key. */
	{
		uint8_t h2;

		ck_assert_sw(ct_cmd(c, CLA_PROP, INS_GEN_SECRET, 0, 0, NULL, 0, 256,
		    &h2, 1, &n), SW_OK);
		ck_assert_uint_ne(h2, h);
		ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h2, 0, msg, m),
		    SW_DATA_INVALID);
		/* all slots; then full */
		for (i = 2; i < CHIP_MAX_SECRETS; i++) {
			ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_GEN_SECRET, 0, 0, NULL,
			    0), SW_OK);
		}
		ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_GEN_SECRET, 0, 0, NULL, 0),
		    SW_NOT_ENOUGH_MEMORY);
		ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DESTROY, h2, 0, NULL,
		    0), SW_OK);
		ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h2, 0, msg, m),
		    SW_DATA_NOT_FOUND);
	}
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, CHIP_MAX_SECRETS, 0,
	    msg, m), SW_DATA_NOT_FOUND);
	/* Needs the user; gone at power-off (volatile). */
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0), SW_OK);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m),
	    SW_SECURITY_NOT_SATISFIED);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_GEN_SECRET, 0, 0, NULL, 0),
	    SW_SECURITY_NOT_SATISFIED);
	repower();
	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DECRYPT, h, 0, msg, m),
	    SW_DATA_NOT_FOUND);
	ck_assert_sw(ct_cmd0(c, CLA_PROP, INS_SECRET_DESTROY, 0xFF, 0, NULL, 0),
	    SW_OK);
}
END_TEST

/* ---- GET RESPONSE chaining -------------------------------------- */

/*
 * Send raw (one command) with a response buffer of cap bytes, then follow
 * 61xx with GET RESPONSE (Le from the SW) until the end; returns the final
 * SW and everything collected.  *ret_chunks counts the answers.
 */
static uint16_t
chained(const uint8_t *raw, size_t len, size_t cap, uint8_t *acc,
    size_t acc_cap, size_t *ret_n, int *ret_chunks)
{
	uint8_t gr[5] = { CLA_ISO, INS_GET_RESPONSE, 0, 0, 0 };
	size_t n, total = 0;
	uint16_t sw;
	int chunks = 1;

	struct apdu a;

	ck_assert_r(apdu_parse(raw, len, &a), 0);
	sw = ct_send_cap(c, raw, len, cap, acc, acc_cap, &n);
	/* never more than Le asked for, nor than the host can take */
	ck_assert_uint_le(n, a.ne ? a.ne : 65536);
	ck_assert_uint_le(n + 2, cap);
	total = n;
	while ((sw & 0xFF00) == 0x6100) {
		gr[4] = (uint8_t)(sw & 0xFF);
		ck_assert_uint_le(total + 256, acc_cap);
		sw = ct_send_cap(c, gr, sizeof(gr), cap, acc + total,
		    acc_cap - total, &n);
		ck_assert_uint_le(n, gr[4] ? gr[4] : 256);
		/* a full answer unless it is the last one */
		if ((sw & 0xFF00) == 0x6100) {
			ck_assert_uint_eq(n, gr[4] ? gr[4] : 256);
		}
		total += n;
		chunks++;
		ck_assert_int_lt(chunks, 1000);
	}
	*ret_n = total;
	*ret_chunks = chunks;
	return sw;
}

START_TEST(get_response_chaining)
{
	static uint8_t want[70000], got[70000];
	static const size_t caps[] = { 258, 300, 1024, CHIP_MAX_RESP };
	uint8_t attrs[1000], cmd[8];
	size_t wn, gn, i, ci;
	uint16_t id = 0, bigid = 0;
	int chunks;

	for (i = 0; i < sizeof(attrs); i++) {
		attrs[i] = (uint8_t)(i ^ 0x5A);
	}
	ct_personalise(c, SO_PIN, USER_PIN);
	for (i = 0; i < 60; i++) {
		ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, attrs, i % 5, &id), SW_OK);
	}
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, attrs, sizeof(attrs), &bigid),
	    SW_OK);

	/* LIST OBJECTS, 366 bytes: the whole answer with extended Le ... */
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_LIST_OBJECTS, 0, 0, NULL, 0, 65536,
	    want, sizeof(want), &wn), SW_OK);
	ck_assert_uint_eq(wn, 61 * OBJ_LIST_ENTRY_LEN);
	for (ci = 0; ci < ML_NELEM(caps); ci++) {
		/* ... and with a short Le 00: 256 bytes + 61 6E, then 110. */
		memcpy(cmd, "\x80\x60\x00\x00\x00", 5);
		ck_assert_sw(ct_send_cap(c, cmd, 5, caps[ci], got, sizeof(got),
		    &gn), SW_BYTES_REMAINING(wn - 256));
		ck_assert_uint_eq(gn, 256);
		ck_assert_sw(chained(cmd, 5, caps[ci], got, sizeof(got), &gn,
		    &chunks), SW_OK);
		ck_assert_int_eq(chunks, 2);
		ck_assert_uint_eq(gn, wn);
		ck_assert_mem_eq(got, want, wn);
		/* A small Le: many pieces, the same bytes. */
		cmd[4] = 0x10;
		ck_assert_sw(chained(cmd, 5, caps[ci], got, sizeof(got), &gn,
		    &chunks), SW_OK);
		ck_assert_uint_eq(gn, wn);
		ck_assert_mem_eq(got, want, wn);
		ck_assert_int_ge(chunks, 3);
	}

	/* READ OBJECT of a 1000-byte attribute blob with Le 00. */
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_READ_OBJECT, bigid >> 8, bigid & 0xff,
	    NULL, 0, 65536, want, sizeof(want), &wn), SW_OK);
	ck_assert_uint_gt(wn, 1000);
	for (ci = 0; ci < ML_NELEM(caps); ci++) {
		uint8_t rd[5] = { CLA_PROP, INS_READ_OBJECT, (uint8_t)(bigid >> 8),
		    (uint8_t)bigid, 0x00 };

		ck_assert_sw(ct_send_cap(c, rd, 5, caps[ci], got, sizeof(got), &gn),
		    SW_BYTES_REMAINING(0));
		ck_assert_uint_eq(gn, 256);
		ck_assert_sw(chained(rd, 5, caps[ci], got, sizeof(got), &gn,
		    &chunks), SW_OK);
		ck_assert_uint_eq(gn, wn);
		ck_assert_mem_eq(got, want, wn);
		ck_assert_int_eq(chunks, (int)((wn + 255) / 256));
	}

	/* Another command in between discards the remainder. */
	ck_assert_sw(ct_send(c, (const uint8_t *)"\x80\x60\x00\x00\x00", 5, NULL,
	    0, NULL), SW_BYTES_REMAINING(0x6E));
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_VERIFY, 0, PIN_USER, NULL, 0), SW_OK);
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_RESPONSE, 0, 0, NULL, 0, 256, NULL,
	    0, NULL), SW_CONDITIONS_NOT_SATISFIED);
	/* GET RESPONSE with P1/P2 set. */
	ck_assert_sw(ct_send(c, (const uint8_t *)"\x80\x60\x00\x00\x00", 5, NULL,
	    0, NULL), SW_BYTES_REMAINING(0x6E));
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_RESPONSE, 1, 0, NULL, 0, 256, NULL,
	    0, NULL), SW_INCORRECT_P1P2);
}
END_TEST

/*
 * A host with a short-Le buffer (258 bytes) sending a command whose answer
 * is longer, with no Le (case 1/3) or a small one: it gets at most what it
 * asked for and what fits, then 61xx, never more than its Le.
 */
START_TEST(get_response_small_host)
{
	uint8_t got[4096], attrs[600];
	size_t gn;
	uint16_t id, sw;

	memset(attrs, 0xC3, sizeof(attrs));
	ct_personalise(c, SO_PIN, USER_PIN);
	ck_assert_sw(create_obj(OBJ_CLASS_DATA, 0, attrs, sizeof(attrs), &id),
	    SW_OK);
	{
		uint8_t cmd[5] = { CLA_PROP, INS_READ_OBJECT, (uint8_t)(id >> 8),
		    (uint8_t)id, 0x20 };

		sw = ct_send_cap(c, cmd, 5, 258, got, sizeof(got), &gn);
		ck_assert_uint_eq(sw & 0xFF00, 0x6100);
		ck_assert_uint_eq(gn, 0x20);
		cmd[4] = 0x00;
		/* case 1 (no Le) with a 258-byte host buffer */
		sw = ct_send_cap(c, cmd, 4, 258, got, sizeof(got), &gn);
		ck_assert_uint_eq(sw & 0xFF00, 0x6100);
		ck_assert_uint_eq(gn, 256);
	}
}
END_TEST

/* ---- secrets never leave -------------------------------------- */

/* A 16-byte window of secret anywhere in hay? */
static bool
leaks(const uint8_t *hay, size_t hn, const uint8_t *secret, size_t sn)
{
	size_t i;

	if (hay == NULL || hn < 16) {
		return false;
	}
	for (i = 0; i + 16 <= sn; i++) {
		if (memmem(hay, hn, secret + i, 16) != NULL) {
			return true;
		}
	}
	return false;
}

START_TEST(private_scalars_never_leave)
{
	struct ml_wr tr = ml_wr_dyn(8 << 20);
	struct chip_state st;
	uint8_t dg[32], peer_priv[32], peer_pub[65], buf[128], out[8192];
	struct kp k[3];
	size_t i, j, n, npriv = 0;
	uint8_t h;

	memset(dg, 0x11, sizeof(dg));
	ct_transcript = &tr;	/* this test's own, on top of the fixture's */
	ct_personalise(c, SO_PIN, USER_PIN);
	ck_assert_r(ml_p256_keygen(peer_priv, peer_pub), 0);
	for (i = 0; i < ML_NELEM(k); i++) {
		gen_keypair(&k[i]);
		ck_assert_sw(sign(k[i].priv, dg, sizeof(dg), out), SW_OK);
		ck_assert_sw(ct_cmd(c, CLA_PROP, INS_ECDH, k[i].priv >> 8,
		    k[i].priv & 0xff, peer_pub, 65, 256, out, sizeof(out), &n),
		    SW_OK);
	}
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_GEN_SECRET, 0, 0, NULL, 0, 256, &h,
	    1, &n), SW_OK);
	n = aead_msg(buf, (const uint8_t *)"0123456789ab", "", "plaintext", 9);
	ck_assert_sw(ct_cmd(c, CLA_PROP, INS_SECRET_ENCRYPT, h, 0, buf, n, 256,
	    out, sizeof(out), NULL), SW_OK);
	/* Read and list everything, every way. */
	for (j = 0; j < 2; j++) {
		for (i = 0; i < c->st.nobjs; i++) {
			uint16_t id = c->st.objs[i].id;

			(void)ct_cmd(c, CLA_PROP, INS_READ_OBJECT, id >> 8, id & 0xff,
			    NULL, 0, 65536, out, sizeof(out), NULL);
		}
		(void)ct_cmd(c, CLA_PROP, INS_LIST_OBJECTS, 0, 0, NULL, 0, 65536,
		    out, sizeof(out), NULL);
		(void)ct_cmd(c, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0, NULL, 0,
		    256, out, sizeof(out), NULL);
		(void)ct_cmd(c, CLA_ISO, INS_SELECT, 4, 0, "\xA0\x00\x00\x08\x88",
		    5, 256, out, sizeof(out), NULL);
		(void)ct_cmd0(c, CLA_PROP, INS_LOGOUT, 0, 0, NULL, 0);
	}
	/* Every INS with some data, to shake out debugging answers. */
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
	memset(buf, 0, sizeof(buf));
	for (i = 0; i < 256; i++) {
		if (i == INS_INIT_TOKEN || i == INS_DELETE_OBJECT) {
			continue;
		}
		(void)ct_cmd(c, CLA_PROP, (uint8_t)i, k[0].priv >> 8,
		    k[0].priv & 0xff, buf, 4, 256, out, sizeof(out), NULL);
		(void)ct_cmd(c, CLA_ISO, (uint8_t)i, 0, 0, buf, 4, 256, out,
		    sizeof(out), NULL);
	}
	ct_transcript = &all_answers;
	ck_assert_uint_gt(tr.len, 1000);

	/* The scalars, from what the store holds (and the RAM keys). */
	ck_assert_r(chip_state_parse(c->last, c->last_len, &st), 0);
	for (i = 0; i < st.nobjs; i++) {
		if (st.objs[i].has_priv) {
			npriv++;
			ck_assert_msg(!leaks(tr.p, tr.len, st.objs[i].priv,
			    ML_P256_PRIV_LEN), "object %u's private key in a response",
			    st.objs[i].id);
		}
	}
	ck_assert_uint_eq(npriv, ML_NELEM(k));
	for (i = 0; i < CHIP_MAX_SECRETS; i++) {
		if (c->secrets[i].used) {
			ck_assert(!leaks(tr.p, tr.len, c->secrets[i].key,
			    ML_AES256_KEY_LEN));
		}
	}
	/* The PIN hashes either. */
	ck_assert(!leaks(tr.p, tr.len, st.user_pin.hash, ML_SHA256_LEN));
	ck_assert(!leaks(tr.p, tr.len, st.so_pin.hash, ML_SHA256_LEN));
	chip_state_clear(&st);
	ml_wr_free(&tr);
	ml_wipe(peer_priv, sizeof(peer_priv));
}
END_TEST

/* ---- every core INS in every core state ---------------------------- */

/*
 * For each core table entry (that the reader profile does not take over),
 * in each core state: a state the entry allows reaches its handler (which
 * with this minimal input answers something other than 6985/6D00/6E00),
 * a state it does not allow answers exactly 6985.
 */
static void
every_ins(unsigned state_bit, const char *state)
{
	const struct chip_profile *core = &chip_profile_core;
	const struct ins_entry *e;
	uint8_t out[512];
	size_t i;
	uint16_t sw;

	ck_assert_uint_eq(core->state(c), state_bit);
	for (i = 0; i < core->nins; i++) {
		e = &core->ins[i];
		if (in_table(&chip_profile_reader, e->cla, e->ins)) {
			continue;
		}
		sw = ct_cmd(c, e->cla, e->ins, 0, 0, NULL, 0, 0, out, sizeof(out),
		    NULL);
		if (e->allowed & state_bit) {
			ck_assert_msg(sw != SW_CONDITIONS_NOT_SATISFIED &&
			    sw != SW_INS_NOT_SUPPORTED && sw != SW_CLA_NOT_SUPPORTED,
			    "%s in %s: %04X", e->name, state, sw);
		} else {
			ck_assert_msg(sw == SW_CONDITIONS_NOT_SATISFIED,
			    "%s in %s: %04X", e->name, state, sw);
		}
		ck_assert_uint_eq(core->state(c), state_bit);
	}
}

START_TEST(every_core_ins_in_every_state)
{
	ck_assert_sw(ct_select(c), SW_OK);
	every_ins(1u << 0, chip_profile_core.state_names[0]);
	ck_assert_sw(ct_init_token(c, SO_PIN, "x"), SW_OK);
	every_ins(1u << 1, chip_profile_core.state_names[1]);
	/* Also logged in as user and as SO. */
	ck_assert_sw(ct_verify(c, PIN_SO, SO_PIN), SW_OK);
	ck_assert_sw(ct_init_pin(c, USER_PIN), SW_OK);
	every_ins(1u << 1, "READY/SO");
	ck_assert_sw(ct_verify(c, PIN_USER, USER_PIN), SW_OK);
	every_ins(1u << 1, "READY/user");
	ck_assert_uint_eq(chip_profile_core.nstates, 2);
}
END_TEST

START_TEST(get_challenge)
{
	uint8_t a[256], b[256];
	size_t n;

	ck_assert_sw(ct_select(c), SW_OK);
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0, 8, a,
	    sizeof(a), &n), SW_OK);
	ck_assert_uint_eq(n, 8);
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0, 256, a,
	    sizeof(a), &n), SW_OK);
	ck_assert_uint_eq(n, 256);
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0, 256, b,
	    sizeof(b), &n), SW_OK);
	ck_assert(memcmp(a, b, 256) != 0);
	ck_assert_sw(ct_cmd0(c, CLA_ISO, INS_GET_CHALLENGE, 0, 0, NULL, 0),
	    SW_WRONG_LENGTH);
	ck_assert_sw(ct_cmd(c, CLA_ISO, INS_GET_CHALLENGE, 1, 0, NULL, 0, 8, a,
	    sizeof(a), &n), SW_INCORRECT_P1P2);
}
END_TEST

static Suite *
chip_core_suite(void)
{
	Suite *s = suite_create("chip_core");
	TCase *tc;

	tc = tcase_create("dispatch");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, select_aids);
	tcase_add_test(tc, before_select);
	tcase_add_test(tc, unknown_ins_and_cla);
	tcase_add_test(tc, malformed_apdus);
	tcase_add_test(tc, every_core_ins_in_every_state);
	tcase_add_test(tc, get_challenge);
	suite_add_tcase(s, tc);

	tc = tcase_create("pins");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, pin_lifecycle);
	tcase_add_test(tc, pin_retry_and_block);
	suite_add_tcase(s, tc);

	tc = tcase_create("objects");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, objects_and_login);
	tcase_add_test(tc, get_response_chaining);
	tcase_add_test(tc, get_response_small_host);
	suite_add_tcase(s, tc);

	tc = tcase_create("crypto");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, keypair_sign_verify);
	tcase_add_test(tc, ecdh_matches_peer);
	tcase_add_test(tc, secret_roundtrip_and_tamper);
	tcase_add_test(tc, private_scalars_never_leave);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(chip_core_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
