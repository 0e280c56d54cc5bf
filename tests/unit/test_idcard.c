/*
 * Unit tests for the ID card stand-in: idcard_format.c (GB 11643 check
 * characters, configuration and ID information TLVs, encryption under the
 * SAM key) and the applet_idcard.c profile, driven purely through
 * chip_transmit() on images made by chip_manufacture() in a temp dir.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_secret.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"

#include "apdu.h"
#include "chip.h"
#include "chiptest.h"
#include "chip_int.h"
#include "chip_proto.h"
#include "idcard_format.h"
#include "sw.h"

static char tmpdir[] = "/tmp/ml-test-idcard-XXXXXX";
static unsigned img_counter;

static uint8_t rbuf[CHIP_MAX_RESP];
static size_t rlen;		/* response data length (without SW) */

static const uint8_t sam_key[IDC_SAM_KEY_LEN] = {
	0x53, 0x41, 0x4d, 0x20, 0x74, 0x65, 0x73, 0x74,
	0x20, 0x6b, 0x65, 0x79, 0x20, 0x30, 0x31, 0x21,
	0x9a, 0x0b, 0x1c, 0x2d, 0x3e, 0x4f, 0x50, 0x61,
	0x72, 0x83, 0x94, 0xa5, 0xb6, 0xc7, 0xd8, 0xe9,
};

static void
setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
teardown(void)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	memcpy(tmpdir + strlen(tmpdir) - 6, "XXXXXX", 6);
}

/* Send one APDU built by apdu_build(); returns the SW, data in rbuf. */
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
select_card(struct chip *c)
{
	uint8_t aid[CHIP_AID_LEN] = CHIP_AID_PREFIX;

	aid[CHIP_AID_PREFIX_LEN] = CHIP_KIND_IDCARD;
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid,
	    sizeof(aid), 0), SW_OK);
}

static void
test_config(struct idc_config *cfg, uint8_t tweak)
{
	static const uint8_t uid[IDC_SERIAL_LEN] = {
		0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
	};

	memset(cfg, 0, sizeof(*cfg));
	memcpy(cfg->serial, uid, sizeof(uid));
	cfg->serial[7] ^= tweak;
	cfg->appdata[0] = 0x00;
	cfg->appdata[1] = 0x5a;
	cfg->appdata[2] = 0xa5;
	cfg->appdata[3] = 0x01;
	cfg->appdata_len = 4;
	strcpy(cfg->proto, "ISO14443B");
	cfg->bitrate_kbps = 106;
	cfg->max_frame = 256;
}

/* ~2.3 KB of realistic ID information. */
static void
test_info(struct idc_info *info)
{
	size_t i;

	memset(info, 0, sizeof(*info));
	strcpy(info->name, "张伟");
	info->sex = IDC_SEX_MALE;
	strcpy(info->nation, "汉");
	strcpy(info->birth, "19491231");
	strcpy(info->address, "北京市朝阳区建国路88号院3号楼2单元501室");
	strcpy(info->idnum, "11010519491231002X");
	strcpy(info->authority, "北京市公安局朝阳分局");
	strcpy(info->valid_from, "20150601");
	strcpy(info->valid_until, IDC_LONG_TERM);
	memcpy(info->photo, "P5\n32 32\n255\n", 13);
	for (i = 13; i < 13 + 1024; i++) {
		info->photo[i] = (uint8_t)(i * 7);
	}
	info->photo_len = 13 + 1024;
	for (i = 0; i < 1024; i++) {
		info->finger[i] = (uint8_t)(i ^ 0x5c);
	}
	info->finger_len = 1024;
}

static void
img_path(char *buf, size_t cap)
{
	snprintf(buf, cap, "%s/card%u.img", tmpdir, img_counter++);
}

/*
 * Manufacture and personalise a card through APDUs; lock it if asked.
 * Returns the open chip (selected); ret_blob receives the encrypted data.
 */
static struct chip *
make_card(const struct idc_config *cfg, const struct idc_info *info,
    bool lock, struct ml_wr *ret_blob)
{
	struct ml_wr cw = ml_wr_dyn(IDC_CONFIG_MAX);
	char path[256];
	struct chip *c = NULL;
	size_t off, n;

	img_path(path, sizeof(path));
	ck_assert_int_eq(idc_config_encode(cfg, &cw), 0);
	ck_assert_int_eq(idc_data_seal(sam_key, cfg->serial, info, ret_blob),
	    0);
	ck_assert_int_eq(chip_manufacture(path, CHIP_KIND_IDCARD, "IDC0001"),
	    0);
	ck_assert_int_eq(chip_open(path, &c), 0);
	select_card(c);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_PUT_DATA, 0x00, GD_CARD_CONFIG,
	    cw.p, cw.len, 0), SW_OK);
	for (off = 0; off < ret_blob->len; off += n) {
		n = ret_blob->len - off < 200 ? ret_blob->len - off : 200;
		ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY,
		    (uint8_t)(off >> 8), (uint8_t)off, ret_blob->p + off, n, 0),
		    SW_OK);
	}
	if (lock) {
		ck_assert_uint_eq(xfer(c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
		    SW_OK);
	}
	ml_wr_free(&cw);
	return c;
}

static void
assert_info_eq(const struct idc_info *a, const struct idc_info *b)
{
	ck_assert_str_eq(a->name, b->name);
	ck_assert_uint_eq(a->sex, b->sex);
	ck_assert_str_eq(a->nation, b->nation);
	ck_assert_str_eq(a->birth, b->birth);
	ck_assert_str_eq(a->address, b->address);
	ck_assert_str_eq(a->idnum, b->idnum);
	ck_assert_str_eq(a->authority, b->authority);
	ck_assert_str_eq(a->valid_from, b->valid_from);
	ck_assert_str_eq(a->valid_until, b->valid_until);
	ck_assert_uint_eq(a->photo_len, b->photo_len);
	ck_assert_mem_eq(a->photo, b->photo, a->photo_len);
	ck_assert_uint_eq(a->finger_len, b->finger_len);
	ck_assert_mem_eq(a->finger, b->finger, a->finger_len);
}

/* ---- GB 11643-1999 ---- */

START_TEST(idnum_known_valid)
{
	/* the standard's own example and two widely published ones */
	static const char *const good[] = {
		"11010519491231002X",
		"440524188001010014",
		"110101199003074477",
	};
	static const char *const bad[] = {
		"110105194912310021",	/* check should be X */
		"510107196608290422",	/* check should be X */
		"11010519491231002x",	/* lower-case x */
		"1101051949123100",	/* short */
		"11010519491231002X0",	/* long */
		"1101A519491231002X",	/* not a digit */
		"",
	};
	size_t i;

	for (i = 0; i < ML_NELEM(good); i++) {
		ck_assert_msg(idc_idnum_valid(good[i]), "%s", good[i]);
		ck_assert_int_eq(idc_idnum_check_char(good[i]), good[i][17]);
	}
	for (i = 0; i < ML_NELEM(bad); i++) {
		ck_assert_msg(!idc_idnum_valid(bad[i]), "%s", bad[i]);
	}
	ck_assert_int_eq(idc_idnum_check_char("1101051949123100"), 0);
	ck_assert_int_eq(idc_idnum_check_char(NULL), 0);
	ck_assert_int_eq(idc_idnum_check_char("11010119900307001"), '1');
	ck_assert_int_eq(idc_idnum_check_char("31011519800101123"), '8');
}
END_TEST

/* ---- formats ---- */

START_TEST(config_round_trip)
{
	struct ml_wr w = ml_wr_dyn(IDC_CONFIG_MAX);
	struct idc_config in, out;
	size_t k;

	test_config(&in, 0);
	ck_assert_int_eq(idc_config_encode(&in, &w), 0);
	ck_assert_uint_le(w.len, IDC_CONFIG_MAX);
	ck_assert_int_eq(idc_config_decode(w.p, w.len, &out), 0);
	ck_assert_mem_eq(out.serial, in.serial, IDC_SERIAL_LEN);
	ck_assert_uint_eq(out.appdata_len, 4);
	ck_assert_mem_eq(out.appdata, in.appdata, 4);
	ck_assert_str_eq(out.proto, "ISO14443B");
	ck_assert_uint_eq(out.bitrate_kbps, 106);
	ck_assert_uint_eq(out.max_frame, 256);
	/* every strict prefix is rejected */
	for (k = 0; k < w.len; k++) {
		ck_assert_int_ne(idc_config_decode(w.p, k, NULL), 0);
	}
	ml_wr_free(&w);
}
END_TEST

/* Malformed configurations, each with its exact error. */
static const struct cfg_vec {
	const char	*name;
	uint8_t		 raw[48];
	size_t		 len;
	int		 want;
} cfg_vecs[] = {
#define GOOD_HEAD 0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x81, 0, \
	0x82, 3, 'I', 'S', 'O', 0x83, 2, 0x00, 0x6a
	{ "good", { GOOD_HEAD, 0x84, 2, 0x01, 0x00 }, 25, 0 },
	{ "trailing", { GOOD_HEAD, 0x84, 2, 0x01, 0x00, 0x00 }, 26,
	  ML_ERR_TRAILING },
	{ "extra-tlv", { GOOD_HEAD, 0x84, 2, 0x01, 0x00, 0x85, 0 }, 27,
	  ML_ERR_TRAILING },
	{ "no-maxframe", { GOOD_HEAD }, 21, ML_ERR_SHORT },
	{ "maxframe-small", { GOOD_HEAD, 0x84, 2, 0x00, 0x08 }, 25,
	  ML_ERR_FORMAT },
	{ "maxframe-3bytes", { GOOD_HEAD, 0x84, 3, 0x00, 0x01, 0x00 }, 26,
	  ML_ERR_FORMAT },
	{ "bitrate-zero", { 0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x81, 0,
	  0x82, 3, 'I', 'S', 'O', 0x83, 2, 0, 0, 0x84, 2, 1, 0 }, 25,
	  ML_ERR_FORMAT },
	{ "serial-7", { 0x80, 7, 1, 2, 3, 4, 5, 6, 7, 0x81, 0,
	  0x82, 3, 'I', 'S', 'O', 0x83, 2, 0, 0x6a, 0x84, 2, 1, 0 }, 24,
	  ML_ERR_FORMAT },
	{ "order", { 0x81, 0, 0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8,
	  0x82, 3, 'I', 'S', 'O', 0x83, 2, 0, 0x6a, 0x84, 2, 1, 0 }, 25,
	  ML_ERR_FORMAT },
	{ "dup-serial", { 0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8,
	  0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8 }, 20, ML_ERR_FORMAT },
	{ "proto-empty", { 0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x81, 0,
	  0x82, 0, 0x83, 2, 0, 0x6a, 0x84, 2, 1, 0 }, 22, ML_ERR_FORMAT },
	{ "proto-ctrl", { 0x80, 8, 1, 2, 3, 4, 5, 6, 7, 8, 0x81, 0,
	  0x82, 3, 'I', 0x0a, 'O', 0x83, 2, 0, 0x6a, 0x84, 2, 1, 0 }, 25,
	  ML_ERR_FORMAT },
	{ "len-overrun", { 0x80, 9, 1, 2, 3, 4, 5, 6, 7, 8 }, 10,
	  ML_ERR_SHORT },
	{ "indefinite", { 0x80, 0x80, 1, 2 }, 4, ML_ERR_FORMAT },
	{ "empty", { 0 }, 0, ML_ERR_SHORT },
#undef GOOD_HEAD
};

START_TEST(config_vectors)
{
	const struct cfg_vec *v = &cfg_vecs[_i];

	ck_assert_msg(idc_config_decode(v->raw, v->len, NULL) == v->want,
	    "%s: got %s", v->name,
	    ml_errname(idc_config_decode(v->raw, v->len, NULL)));
}
END_TEST

START_TEST(config_encode_rejects)
{
	struct ml_wr w = ml_wr_dyn(IDC_CONFIG_MAX);
	struct idc_config c;

	test_config(&c, 0);
	c.bitrate_kbps = 0;
	ck_assert_int_eq(idc_config_encode(&c, &w), ML_ERR_ARG);
	test_config(&c, 0);
	c.max_frame = IDC_FRAME_MAX + 1;
	ck_assert_int_eq(idc_config_encode(&c, &w), ML_ERR_ARG);
	test_config(&c, 0);
	c.proto[0] = '\0';
	ck_assert_int_eq(idc_config_encode(&c, &w), ML_ERR_ARG);
	test_config(&c, 0);
	c.appdata_len = IDC_APPDATA_MAX + 1;
	ck_assert_int_eq(idc_config_encode(&c, &w), ML_ERR_ARG);
	ck_assert_uint_eq(w.len, 0);	/* untouched */
	ml_wr_free(&w);
}
END_TEST

START_TEST(info_round_trip_and_rejects)
{
	struct idc_info *in = calloc(1, sizeof(*in));
	struct idc_info *out = calloc(1, sizeof(*out));
	struct ml_wr w = ml_wr_dyn(IDC_INFO_MAX);
	size_t k;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	test_info(in);
	ck_assert_int_eq(idc_info_encode(in, &w), 0);
	ck_assert_int_eq(idc_info_decode(w.p, w.len, out), 0);
	assert_info_eq(in, out);
	/* strict prefixes: the fingerprint is optional, so a cut exactly
	 * before it is a valid card without one; every other cut fails */
	for (k = 0; k < w.len; k++) {
		int r = idc_info_decode(w.p, k, out);

		if (k == w.len - 1024 - 4) {
			ck_assert_int_eq(r, 0);
			ck_assert_uint_eq(out->finger_len, 0);
		} else {
			ck_assert_msg(r != 0, "prefix %zu accepted", k);
		}
	}
	ml_wr_free(&w);

	/* field checks, each alone */
	test_info(in);
	strcpy(in->idnum, "110105194912310021");
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	strcpy(in->birth, "19491331");
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	strcpy(in->valid_until, "forever");
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	strcpy(in->name, "\xe5\xbc");		/* truncated UTF-8 */
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	strcpy(in->address, "\xc0\xaf");	/* overlong '/' */
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	strcpy(in->nation, "\xed\xa0\x80");	/* surrogate */
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	in->name[0] = '\0';
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	in->sex = 3;
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	test_info(in);
	in->photo_len = 0;
	ck_assert_int_eq(idc_info_encode(in, &w), ML_ERR_ARG);
	ck_assert_uint_eq(w.len, 0);
	ml_wr_free(&w);
	idc_info_clear(in);
	free(in);
	free(out);
}
END_TEST

START_TEST(seal_open_and_tamper)
{
	struct idc_info *in = calloc(1, sizeof(*in));
	struct idc_info *out = calloc(1, sizeof(*out));
	struct ml_wr blob = ml_wr_dyn(IDCARD_MAX_DATA);
	struct idc_config cfg;
	uint8_t key2[IDC_SAM_KEY_LEN], serial2[IDC_SERIAL_LEN];
	size_t i;

	ck_assert_ptr_nonnull(in);
	ck_assert_ptr_nonnull(out);
	test_info(in);
	test_config(&cfg, 0);
	ck_assert_int_eq(idc_data_seal(sam_key, cfg.serial, in, &blob), 0);
	/* about 2.3 KB, as on a real card */
	ck_assert_uint_ge(blob.len, 2200);
	ck_assert_uint_le(blob.len, 2400);
	ck_assert_int_eq(idc_data_open(sam_key, cfg.serial, blob.p, blob.len,
	    out), 0);
	assert_info_eq(in, out);

	memcpy(key2, sam_key, sizeof(key2));
	key2[0] ^= 1;
	ck_assert_int_eq(idc_data_open(key2, cfg.serial, blob.p, blob.len,
	    out), ML_ERR_AUTH);
	memcpy(serial2, cfg.serial, sizeof(serial2));
	serial2[7] ^= 1;
	ck_assert_int_eq(idc_data_open(sam_key, serial2, blob.p, blob.len,
	    out), ML_ERR_AUTH);
	/* one-byte tamper anywhere: IV, ciphertext, tag */
	for (i = 0; i < blob.len; i += 97) {
		blob.p[i] ^= 0x01;
		ck_assert_int_eq(idc_data_open(sam_key, cfg.serial, blob.p,
		    blob.len, out), ML_ERR_AUTH);
		blob.p[i] ^= 0x01;
	}
	blob.p[blob.len - 1] ^= 0x80;
	ck_assert_int_eq(idc_data_open(sam_key, cfg.serial, blob.p, blob.len,
	    out), ML_ERR_AUTH);
	blob.p[blob.len - 1] ^= 0x80;
	ck_assert_int_eq(idc_data_open(sam_key, cfg.serial, blob.p,
	    IDC_BLOB_OVERHEAD - 1, out), ML_ERR_SHORT);
	ck_assert_int_eq(idc_data_open(sam_key, cfg.serial, blob.p,
	    blob.len - 1, out), ML_ERR_AUTH);
	/* fresh IV per seal */
	{
		struct ml_wr b2 = ml_wr_dyn(IDCARD_MAX_DATA);

		ck_assert_int_eq(idc_data_seal(sam_key, cfg.serial, in, &b2), 0);
		ck_assert_uint_eq(b2.len, blob.len);
		ck_assert_int_ne(memcmp(b2.p, blob.p, ML_GCM_IV_LEN), 0);
		ml_wr_free(&b2);
	}
	ml_wr_free(&blob);
	free(in);
	free(out);
}
END_TEST

/* ---- the card ---- */

START_TEST(card_read_all_and_decrypt)
{
	struct idc_info *in = calloc(1, sizeof(*in));
	struct idc_info *out = calloc(1, sizeof(*out));
	struct ml_wr blob = ml_wr_dyn(IDCARD_MAX_DATA);
	struct ml_wr cw = ml_wr_dyn(IDC_CONFIG_MAX);
	uint8_t got[IDCARD_MAX_DATA];
	struct idc_config cfg, rcfg;
	uint8_t key2[IDC_SAM_KEY_LEN];
	struct chip *c;
	size_t off = 0;
	uint16_t sw;
	int blocks = 0;

	test_info(in);
	test_config(&cfg, 0);
	c = make_card(&cfg, in, true, &blob);
	ck_assert_int_eq(idc_config_encode(&cfg, &cw), 0);

	/* ID-6: the plaintext configuration */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CARD_CONFIG, 0,
	    NULL, 0, 256), SW_OK);
	ck_assert_uint_eq(rlen, cw.len);
	ck_assert_mem_eq(rbuf, cw.p, cw.len);
	ck_assert_int_eq(idc_config_decode(rbuf, rlen, &rcfg), 0);
	ck_assert_mem_eq(rcfg.serial, cfg.serial, IDC_SERIAL_LEN);
	/* the core still answers GET DATA 01 */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CHIP_INFO, 0,
	    NULL, 0, 256), SW_OK);
	ck_assert_uint_gt(rlen, 0);

	/* ID-8: short reads of 0xE0 bytes until a short answer */
	for (;;) {
		sw = xfer(c, CLA_ISO, INS_READ_BINARY, (uint8_t)(off >> 8),
		    (uint8_t)off, NULL, 0, 0xE0);
		if (sw == SW_WRONG_P1P2) {
			break;		/* exactly at the end */
		}
		ck_assert_uint_eq(sw, SW_OK);
		ck_assert_uint_le(off + rlen, sizeof(got));
		memcpy(got + off, rbuf, rlen);
		off += rlen;
		blocks++;
		if (rlen < 0xE0) {
			break;
		}
	}
	ck_assert_uint_eq(off, blob.len);
	ck_assert_int_eq(blocks, (int)((blob.len + 0xDF) / 0xE0));
	ck_assert_mem_eq(got, blob.p, blob.len);
	ck_assert_int_eq(idc_data_open(sam_key, rcfg.serial, got, off, out), 0);
	assert_info_eq(in, out);

	/* one extended read of everything, and Le 00 (256) short */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0, 0, NULL, 0,
	    65536), SW_OK);
	ck_assert_uint_eq(rlen, blob.len);
	ck_assert_mem_eq(rbuf, blob.p, blob.len);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0, 0x10, NULL, 0,
	    256), SW_OK);
	ck_assert_uint_eq(rlen, 256);
	ck_assert_mem_eq(rbuf, blob.p + 0x10, 256);

	/* the wrong SAM key cannot open it */
	memcpy(key2, sam_key, sizeof(key2));
	key2[31] ^= 0x40;
	ck_assert_int_eq(idc_data_open(key2, rcfg.serial, got, off, out),
	    ML_ERR_AUTH);

	chip_close(c);
	ml_wr_free(&blob);
	ml_wr_free(&cw);
	free(in);
	free(out);
}
END_TEST

START_TEST(card_bounds)
{
	struct idc_info *in = calloc(1, sizeof(*in));
	struct ml_wr blob = ml_wr_dyn(IDCARD_MAX_DATA);
	static uint8_t big[IDCARD_MAX_DATA + 1];
	struct idc_config cfg;
	struct chip *c;
	size_t len;

	test_info(in);
	test_config(&cfg, 0);
	c = make_card(&cfg, in, false, &blob);
	len = blob.len;

	/* READ BINARY at or past the end: 6B00; short EF bit: 6A86 */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, (uint8_t)(len >> 8),
	    (uint8_t)len, NULL, 0, 16), SW_WRONG_P1P2);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0x7f, 0xff, NULL,
	    0, 16), SW_WRONG_P1P2);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0x81, 0x00, NULL,
	    0, 16), SW_INCORRECT_P1P2);
	/* a read that reaches the end returns what is left, 9000 */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY,
	    (uint8_t)((len - 5) >> 8), (uint8_t)(len - 5), NULL, 0, 64), SW_OK);
	ck_assert_uint_eq(rlen, 5);
	/* no Le: nothing to read */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0, 0, NULL, 0, 0),
	    SW_WRONG_LENGTH);

	/* UPDATE BINARY: no holes, not past IDCARD_MAX_DATA */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY,
	    (uint8_t)((len + 1) >> 8), (uint8_t)(len + 1), "x", 1, 0),
	    SW_WRONG_P1P2);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY, 0, 0, big,
	    sizeof(big), 0), SW_NOT_ENOUGH_MEMORY);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY,
	    (uint8_t)(len >> 8), (uint8_t)len, big, IDCARD_MAX_DATA - len + 1,
	    0), SW_NOT_ENOUGH_MEMORY);
	/* appending exactly up to the limit is fine */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY,
	    (uint8_t)(len >> 8), (uint8_t)len, big, IDCARD_MAX_DATA - len, 0),
	    SW_OK);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0, 0, NULL, 0,
	    65536), SW_OK);
	ck_assert_uint_eq(rlen, IDCARD_MAX_DATA);
	ck_assert_mem_eq(rbuf, blob.p, len);

	/* PUT DATA with other P1P2 */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_PUT_DATA, 0x00, 0x01, "x", 1, 0),
	    SW_INCORRECT_P1P2);
	chip_close(c);
	ml_wr_free(&blob);
	free(in);
}
END_TEST

START_TEST(card_rejects_malformed_config)
{
	struct ml_wr cw = ml_wr_dyn(IDC_CONFIG_MAX);
	struct idc_config cfg;
	char path[256];
	struct chip *c;
	size_t i;

	img_path(path, sizeof(path));
	ck_assert_int_eq(chip_manufacture(path, CHIP_KIND_IDCARD, "IDC9"), 0);
	ck_assert_int_eq(chip_open(path, &c), 0);
	select_card(c);
	/* nothing yet */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CARD_CONFIG, 0,
	    NULL, 0, 256), SW_DATA_NOT_FOUND);
	/* LOCK of an empty card refused */
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	for (i = 1; i < ML_NELEM(cfg_vecs); i++) {
		if (cfg_vecs[i].len == 0) {
			continue;	/* an empty Lc is not an APDU */
		}
		ck_assert_msg(xfer(c, CLA_ISO, INS_PUT_DATA, 0x00,
		    GD_CARD_CONFIG, cfg_vecs[i].raw, cfg_vecs[i].len, 0) ==
		    SW_WRONG_DATA, "%s", cfg_vecs[i].name);
		ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CARD_CONFIG,
		    0, NULL, 0, 256), SW_DATA_NOT_FOUND);
	}
	/* a good one, then a bad one leaves the good one */
	test_config(&cfg, 3);
	ck_assert_int_eq(idc_config_encode(&cfg, &cw), 0);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_PUT_DATA, 0x00, GD_CARD_CONFIG,
	    cw.p, cw.len, 0), SW_OK);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_PUT_DATA, 0x00, GD_CARD_CONFIG,
	    cfg_vecs[3].raw, cfg_vecs[3].len, 0), SW_WRONG_DATA);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CARD_CONFIG, 0,
	    NULL, 0, 256), SW_OK);
	ck_assert_uint_eq(rlen, cw.len);
	ck_assert_mem_eq(rbuf, cw.p, cw.len);
	chip_close(c);
	ml_wr_free(&cw);
}
END_TEST

START_TEST(card_locked_is_read_only_and_persistent)
{
	struct idc_info *in = calloc(1, sizeof(*in));
	struct ml_wr blob = ml_wr_dyn(IDCARD_MAX_DATA);
	struct ml_wr cw = ml_wr_dyn(IDC_CONFIG_MAX);
	struct idc_config cfg, other;
	char path[256];
	struct chip *c;

	test_info(in);
	test_config(&cfg, 0);
	test_config(&other, 9);
	c = make_card(&cfg, in, true, &blob);
	ck_assert_int_eq(idc_config_encode(&other, &cw), 0);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_PUT_DATA, 0x00, GD_CARD_CONFIG,
	    cw.p, cw.len, 0), SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY, 0, 0, "x", 1, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_uint_eq(xfer(c, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	/* power cycle: still locked, same contents */
	snprintf(path, sizeof(path), "%s/card%u.img", tmpdir, img_counter - 1);
	chip_close(c);
	ck_assert_int_eq(chip_open(path, &c), 0);
	/* nothing before SELECT */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0, 0, NULL, 0, 16),
	    SW_CONDITIONS_NOT_SATISFIED);
	select_card(c);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY, 0, 0, "x", 1, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0, 0, NULL, 0,
	    65536), SW_OK);
	ck_assert_uint_eq(rlen, blob.len);
	ck_assert_mem_eq(rbuf, blob.p, blob.len);
	ml_wr_clear(&cw);
	ck_assert_int_eq(idc_config_encode(&cfg, &cw), 0);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CARD_CONFIG, 0,
	    NULL, 0, 256), SW_OK);
	ck_assert_mem_eq(rbuf, cw.p, cw.len);
	chip_close(c);
	ml_wr_free(&blob);
	ml_wr_free(&cw);
	free(in);
}
END_TEST

/*
 * Every INS of the profile in every state: either its handler answers
 * (here: 9000 for a well-formed command) or 6985.
 */
START_TEST(every_ins_every_state)
{
	const struct chip_profile *p = &chip_profile_idcard;
	struct idc_info *in = calloc(1, sizeof(*in));
	struct ml_wr cw = ml_wr_dyn(IDC_CONFIG_MAX);
	struct idc_config cfg;
	unsigned st;
	size_t i;

	test_info(in);
	test_config(&cfg, 0);
	ck_assert_int_eq(idc_config_encode(&cfg, &cw), 0);
	ck_assert_uint_eq(p->nstates, 2);
	for (st = 0; st < p->nstates; st++) {
		for (i = 0; i < p->nins; i++) {
			const struct ins_entry *e = &p->ins[i];
			struct ml_wr blob = ml_wr_dyn(IDCARD_MAX_DATA);
			struct chip *c = make_card(&cfg, in, st == 1, &blob);
			uint16_t sw, want;

			ck_assert_uint_eq(p->state(c), 1u << st);
			switch (e->ins) {
			case INS_PUT_DATA:
				sw = xfer(c, e->cla, e->ins, 0, GD_CARD_CONFIG,
				    cw.p, cw.len, 0);
				break;
			case INS_UPDATE_BINARY:
				sw = xfer(c, e->cla, e->ins, 0, 4, "abcd", 4, 0);
				break;
			case INS_LOCK:
				sw = xfer(c, e->cla, e->ins, 0, 0, NULL, 0, 0);
				break;
			case INS_GET_DATA:
				sw = xfer(c, e->cla, e->ins, GD_CARD_CONFIG, 0,
				    NULL, 0, 256);
				break;
			case INS_READ_BINARY:
				sw = xfer(c, e->cla, e->ins, 0, 0, NULL, 0, 32);
				break;
			default:
				ck_abort_msg("INS %02X has no test", e->ins);
				sw = 0;
			}
			want = (e->allowed & (1u << st)) != 0 ? SW_OK :
			    SW_CONDITIONS_NOT_SATISFIED;
			ck_assert_msg(sw == want, "%s in %s: %04X want %04X",
			    e->name, p->state_names[st], sw, want);
			chip_close(c);
			ml_wr_free(&blob);
		}
	}
	ml_wr_free(&cw);
	free(in);
}
END_TEST

/*
 * tools/mintline-mkidcard end to end, when the test runs from a meson
 * build tree (the tool is ../../tools/ from this executable): make cards,
 * read them as a reader would, open them with the SAM key file.
 */
static bool
tool_path(char *buf, size_t cap)
{
	char self[1024], *slash;
	ssize_t n;

	if ((n = readlink("/proc/self/exe", self, sizeof(self) - 1)) <= 0) {
		return false;
	}
	self[n] = '\0';
	if ((slash = strrchr(self, '/')) == NULL) {
		return false;
	}
	*slash = '\0';
	snprintf(buf, cap, "%s/../../tools/mintline-mkidcard", self);
	return access(buf, X_OK) == 0;
}

static int
run_tool(const char *tool, const char *args)
{
	char cmd[2048];
	int st;

	snprintf(cmd, sizeof(cmd), "'%s' %s >/dev/null 2>&1", tool, args);
	st = system(cmd);
	ck_assert_int_ne(st, -1);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Read a tool-made card: config via GET DATA 03, data via READ BINARY. */
static void
read_card(const char *path, struct idc_config *ret_cfg, uint8_t *data,
    size_t *ret_len)
{
	struct chip *c;

	ck_assert_int_eq(chip_open(path, &c), 0);
	select_card(c);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_GET_DATA, GD_CARD_CONFIG, 0,
	    NULL, 0, 256), SW_OK);
	ck_assert_int_eq(idc_config_decode(rbuf, rlen, ret_cfg), 0);
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_READ_BINARY, 0, 0, NULL, 0,
	    65536), SW_OK);
	memcpy(data, rbuf, rlen);
	*ret_len = rlen;
	/* locked */
	ck_assert_uint_eq(xfer(c, CLA_ISO, INS_UPDATE_BINARY, 0, 0, "x", 1, 0),
	    SW_CONDITIONS_NOT_SATISFIED);
	chip_close(c);
}

START_TEST(tool_makes_readable_cards)
{
	static uint8_t data[IDCARD_MAX_DATA], data2[IDCARD_MAX_DATA];
	struct idc_info *info = calloc(1, sizeof(*info));
	struct idc_info *info2 = calloc(1, sizeof(*info2));
	struct idc_config cfg, cfg2;
	char tool[1200], args[1024], keyf[300], img1[300], img2[300];
	uint8_t key[IDC_SAM_KEY_LEN + 1];
	size_t len, len2;

	if (!tool_path(tool, sizeof(tool))) {
		fprintf(stderr, "tool_makes_readable_cards: mintline-mkidcard "
		    "not built next to this test; skipped\n");
		free(info);
		free(info2);
		return;
	}
	snprintf(keyf, sizeof(keyf), "%s/sam.key", tmpdir);
	snprintf(img1, sizeof(img1), "%s/t1.img", tmpdir);
	snprintf(img2, sizeof(img2), "%s/t2.img", tmpdir);
	ck_assert_int_eq(run_tool(tool, "--help"), 0);
	ck_assert_int_eq(run_tool(tool, "only-an-image"), 2);
	snprintf(args, sizeof(args), "--sam-key %s --sex other %s/x.img", keyf,
	    tmpdir);
	ck_assert_int_eq(run_tool(tool, args), 2);

	snprintf(args, sizeof(args), "--sam-key %s --seed 42 --name 李娜 "
	    "--sex female --birth 19900307 --region 110101 --nation 回 "
	    "%s", keyf, img1);
	ck_assert_int_eq(run_tool(tool, args), 0);
	/* the key file was created: 32 bytes as 64 hex digits, 0600 */
	ck_assert_int_eq(ml_keyfile_read(keyf, key, IDC_SAM_KEY_LEN), 0);

	read_card(img1, &cfg, data, &len);
	ck_assert_str_eq(cfg.proto, "ISO14443B");
	ck_assert_uint_eq(cfg.bitrate_kbps, 106);
	ck_assert_uint_ge(len, 2200);
	ck_assert_uint_le(len, 2400);
	ck_assert_int_eq(idc_data_open(key, cfg.serial, data, len, info), 0);
	ck_assert_str_eq(info->name, "李娜");
	ck_assert_uint_eq(info->sex, IDC_SEX_FEMALE);
	ck_assert_str_eq(info->nation, "回");
	ck_assert_str_eq(info->birth, "19900307");
	ck_assert_int_eq(strncmp(info->idnum, "11010119900307", 14), 0);
	ck_assert((info->idnum[16] - '0') % 2 == 0);	/* even: female */
	ck_assert(idc_idnum_valid(info->idnum));
	ck_assert_uint_eq(info->photo_len, 1037);
	ck_assert_mem_eq(info->photo, "P5\n32 32\n255\n", 13);
	ck_assert_uint_eq(info->finger_len, 1024);
	key[0] ^= 1;
	ck_assert_int_eq(idc_data_open(key, cfg.serial, data, len, info2),
	    ML_ERR_AUTH);
	key[0] ^= 1;

	/* the same seed and key file: the same contents, another IV */
	snprintf(args, sizeof(args), "--sam-key %s --seed 42 --name 李娜 "
	    "--sex female --birth 19900307 --region 110101 --nation 回 -q "
	    "%s", keyf, img2);
	ck_assert_int_eq(run_tool(tool, args), 0);
	read_card(img2, &cfg2, data2, &len2);
	ck_assert_mem_eq(cfg.serial, cfg2.serial, IDC_SERIAL_LEN);
	ck_assert_uint_eq(len, len2);
	ck_assert_int_ne(memcmp(data, data2, len), 0);
	ck_assert_int_eq(idc_data_open(key, cfg2.serial, data2, len2, info2),
	    0);
	assert_info_eq(info, info2);

	/* an existing image is refused; a malformed field leaves nothing */
	ck_assert_int_eq(run_tool(tool, args), 1);
	snprintf(args, sizeof(args), "--sam-key %s --birth 19901340 %s/t3.img",
	    keyf, tmpdir);
	ck_assert_int_eq(run_tool(tool, args), 1);
	snprintf(args, sizeof(args), "%s/t3.img", tmpdir);
	ck_assert_int_ne(access(args, F_OK), 0);

	/* seeded random cards are all well-formed */
	for (unsigned k = 0; k < 8; k++) {
		snprintf(args, sizeof(args), "--sam-key %s --seed %u -q "
		    "%s/r%u.img", keyf, k, tmpdir, k);
		ck_assert_int_eq(run_tool(tool, args), 0);
		snprintf(args, sizeof(args), "%s/r%u.img", tmpdir, k);
		read_card(args, &cfg, data, &len);
		ck_assert_int_eq(idc_data_open(key, cfg.serial, data, len,
		    info), 0);
		ck_assert(idc_idnum_valid(info->idnum));
		ck_assert_int_eq(strncmp(info->idnum + 6, info->birth, 8), 0);
		ck_assert_int_eq((info->idnum[16] - '0') % 2,
		    info->sex == IDC_SEX_MALE ? 1 : 0);
	}
	idc_info_clear(info);
	free(info);
	free(info2);
}
END_TEST

static Suite *
idcard_suite(void)
{
	Suite *s = suite_create("idcard");
	TCase *fmt = tcase_create("format");
	TCase *card = tcase_create("card");

	tcase_add_test(fmt, idnum_known_valid);
	tcase_add_test(fmt, config_round_trip);
	tcase_add_loop_test(fmt, config_vectors, 0, ML_NELEM(cfg_vecs));
	tcase_add_test(fmt, config_encode_rejects);
	tcase_add_test(fmt, info_round_trip_and_rejects);
	tcase_add_test(fmt, seal_open_and_tamper);
	suite_add_tcase(s, fmt);

	tcase_add_checked_fixture(card, setup, teardown);
	tcase_set_timeout(card, 60);
	tcase_add_test(card, card_read_all_and_decrypt);
	tcase_add_test(card, card_bounds);
	tcase_add_test(card, card_rejects_malformed_config);
	tcase_add_test(card, card_locked_is_read_only_and_persistent);
	tcase_add_test(card, every_ins_every_state);
	tcase_add_test(card, tool_makes_readable_cards);
	suite_add_tcase(s, card);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(idcard_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed != 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
