/*
 * The SAM profile (ID-10, chip-applet/applet_sam.c): keyed once, locked,
 * then SAM DECODE opens the ID-card stand-in's encrypted data with the
 * key it holds and answers the ID information; another key's card, a
 * tampered card and malformed input are refused with their status words;
 * the key survives power-off and is never read back.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ml_err.h"
#include "ml_wr.h"

#include "apdu.h"
#include "chip.h"
#include "chiptest.h"
#include "chip_int.h"
#include "chip_proto.h"
#include "idcard_format.h"
#include "sw.h"

#define SAM_DECODE_NE	8192

static char tmpdir[] = "/tmp/ml-test-sam-XXXXXX";
static char path[300];
static uint8_t rbuf[CHIP_MAX_RESP];
static size_t rlen;

static const uint8_t key1[IDC_SAM_KEY_LEN] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t key2[IDC_SAM_KEY_LEN] = { 9, 9, 9, 9, 9, 9, 9, 9 };

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
	snprintf(path, sizeof(path), "%s/sam.img", tmpdir);
}

static void
teardown(void)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

static uint16_t
xfer(struct chip *c, uint8_t cla, uint8_t ins, const void *data, size_t len,
    uint32_t ne)
{
	return ct_cmd_cap(c, cla, ins, 0, 0, data, len, ne, sizeof(rbuf), rbuf,
	    sizeof(rbuf), &rlen);
}

static void
select_sam(struct chip *c)
{
	uint8_t aid[CHIP_AID_LEN] = CHIP_AID_PREFIX;

	aid[CHIP_AID_PREFIX_LEN] = CHIP_KIND_SAM;
	ck_assert_uint_eq(ct_cmd_cap(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid,
	    sizeof(aid), 0, sizeof(rbuf), rbuf, sizeof(rbuf), &rlen), SW_OK);
}

/* A card's configuration and its data sealed under key for that card. */
static void
card(const uint8_t *key, struct ml_wr *cfgw, struct ml_wr *blob,
    struct idc_info *info)
{
	struct idc_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	memcpy(cfg.serial, "\x01\x23\x45\x67\x89\xab\xcd\xef", IDC_SERIAL_LEN);
	cfg.appdata_len = 4;
	memcpy(cfg.appdata, "\x00\x5a\xa5\x01", 4);
	strcpy(cfg.proto, "ISO14443B");
	cfg.bitrate_kbps = 106;
	cfg.max_frame = 256;
	memset(info, 0, sizeof(*info));
	strcpy(info->name, "张伟");
	info->sex = IDC_SEX_MALE;
	strcpy(info->nation, "汉");
	strcpy(info->birth, "19491231");
	strcpy(info->address, "北京市朝阳区建国路88号");
	strcpy(info->idnum, "11010519491231002X");
	strcpy(info->authority, "北京市公安局朝阳分局");
	strcpy(info->valid_from, "20150601");
	strcpy(info->valid_until, IDC_LONG_TERM);
	memcpy(info->photo, "P5\n1 1\n255\n\x80", 12);
	info->photo_len = 12;
	ck_assert_int_eq(idc_config_encode(&cfg, cfgw), 0);
	ck_assert_int_eq(idc_data_seal(key, cfg.serial, info, blob), 0);
}

/* lv8(config) || data, as the server's pcsc: back-end sends it */
static void
decode_cmd(const struct ml_wr *cfgw, const struct ml_wr *blob,
    struct ml_wr *cmd)
{
	ck_assert_int_eq(ml_wr_u8(cmd, (uint8_t)cfgw->len), 0);
	ck_assert_int_eq(ml_wr_bytes(cmd, cfgw->p, cfgw->len), 0);
	ck_assert_int_eq(ml_wr_bytes(cmd, blob->p, blob->len), 0);
}

static struct chip *
keyed_sam(void)
{
	struct chip *c = NULL;

	ck_assert_int_eq(chip_manufacture(path, CHIP_KIND_SAM, "SAM-01"), 0);
	ck_assert_int_eq(chip_open(path, &c), 0);
	select_sam(c);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_PUT_KEY, key1, 31, 0),
	    SW_WRONG_LENGTH);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_PUT_KEY, key1,
	    sizeof(key1), 0), SW_OK);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_LOCK, NULL, 0, 0), SW_OK);
	return c;
}

START_TEST(decode_opens_its_cards)
{
	struct ml_wr cfgw = ml_wr_dyn(IDC_CONFIG_MAX), blob = ml_wr_dyn(8192);
	struct ml_wr cmd = ml_wr_dyn(9000);
	struct idc_info *want = calloc(1, sizeof(*want));
	struct idc_info *got = calloc(1, sizeof(*got));
	struct chip *c = keyed_sam();

	card(key1, &cfgw, &blob, want);
	decode_cmd(&cfgw, &blob, &cmd);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_DECODE, cmd.p, cmd.len,
	    SAM_DECODE_NE), SW_OK);
	ck_assert_int_eq(idc_info_decode(rbuf, rlen, got), 0);
	ck_assert_str_eq(got->idnum, want->idnum);
	ck_assert_str_eq(got->name, want->name);
	/* the key survives power-off; no command reads it back */
	chip_close(c);
	ck_assert_int_eq(chip_open(path, &c), 0);
	select_sam(c);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_DECODE, cmd.p, cmd.len,
	    SAM_DECODE_NE), SW_OK);
	ck_assert_ptr_null(memmem(rbuf, rlen, key1, sizeof(key1)));
	ck_assert_uint_ne(xfer(c, CLA_PROP, INS_SAM_PUT_KEY, key2,
	    sizeof(key2), 0), SW_OK);		/* locked: no new key */
	chip_close(c);
	ml_wr_free(&cfgw);
	ml_wr_free(&blob);
	ml_wr_free(&cmd);
	free(want);
	free(got);
}
END_TEST

START_TEST(decode_refuses)
{
	struct ml_wr cfgw = ml_wr_dyn(IDC_CONFIG_MAX), blob = ml_wr_dyn(8192);
	struct ml_wr cmd = ml_wr_dyn(9000);
	struct idc_info *info = calloc(1, sizeof(*info));
	struct chip *c = keyed_sam();

	/* a card of another SAM key: 6982 */
	card(key2, &cfgw, &blob, info);
	decode_cmd(&cfgw, &blob, &cmd);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_DECODE, cmd.p, cmd.len,
	    SAM_DECODE_NE), SW_SECURITY_NOT_SATISFIED);
	/* a tampered card: 6982 */
	ml_wr_clear(&cfgw);
	ml_wr_clear(&blob);
	ml_wr_clear(&cmd);
	card(key1, &cfgw, &blob, info);
	blob.p[blob.len / 2] ^= 1;
	decode_cmd(&cfgw, &blob, &cmd);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_DECODE, cmd.p, cmd.len,
	    SAM_DECODE_NE), SW_SECURITY_NOT_SATISFIED);
	/* a malformed configuration: 6A80 */
	cmd.p[2] ^= 0xff;
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_DECODE, cmd.p, cmd.len,
	    SAM_DECODE_NE), SW_WRONG_DATA);
	/* configuration without data, a length byte past the end: 6700 */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_DECODE, cmd.p,
	    1 + cfgw.len, SAM_DECODE_NE), SW_WRONG_LENGTH);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_SAM_DECODE, "\x40\x01", 2,
	    SAM_DECODE_NE), SW_WRONG_LENGTH);
	chip_close(c);
	ml_wr_free(&cfgw);
	ml_wr_free(&blob);
	ml_wr_free(&cmd);
	free(info);
}
END_TEST

START_TEST(perso_rules)
{
	struct chip *c = NULL;

	ck_assert_int_eq(chip_manufacture(path, CHIP_KIND_SAM, "SAM-02"), 0);
	ck_assert_int_eq(chip_open(path, &c), 0);
	ck_assert_int_eq(chip_kind(c), CHIP_KIND_SAM);
	select_sam(c);
	/* no DECODE before LOCK, no LOCK without a key */
	ck_assert_uint_ne(xfer(c, CLA_PROP, INS_SAM_DECODE, "\x01\x00\x00", 3,
	    SAM_DECODE_NE), SW_OK);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_LOCK, NULL, 0, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	chip_close(c);
}
END_TEST

static Suite *
sam_suite(void)
{
	Suite *s = suite_create("sam");
	TCase *tc = tcase_create("sam");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, decode_opens_its_cards);
	tcase_add_test(tc, decode_refuses);
	tcase_add_test(tc, perso_rules);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sam_suite());
	int nfail;

	srunner_run_all(sr, CK_NORMAL);
	nfail = srunner_ntests_failed(sr);
	srunner_free(sr);
	return nfail == 0 ? 0 : 1;
}
