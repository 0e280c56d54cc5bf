/*
 * Banknote feature information (BN-2): derivation, parsing, checking.
 * Format and rationale in feature.h and docs/issuance.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "feature.h"
#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_secret.h"
#include "ml_wipe.h"
#include "ml_wr.h"

#define FEATURE_MAGIC		"ML1|"
#define FEATURE_CHK_DOMAIN	"mintline feature chk v1"
#define FEATURE_MAC_DOMAIN	"mintline feature mac v1"

static const char b32_alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

static bool
is_upper(char c)
{
	return c >= 'A' && c <= 'Z';
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int
note_id_set(const char *prefix, size_t plen, const char *serial, size_t slen,
    struct note_id *ret)
{
	size_t i;

	if (plen == 0 || slen < FEATURE_SERIAL_MIN) {
		return ML_ERR_SHORT;
	}
	if (plen > FEATURE_PREFIX_MAX || slen > FEATURE_SERIAL_MAX) {
		return ML_ERR_TOO_LARGE;
	}
	if (!is_upper(prefix[0])) {
		return ML_ERR_FORMAT;
	}
	for (i = 1; i < plen; i++) {
		if (!is_upper(prefix[i]) && !is_digit(prefix[i])) {
			return ML_ERR_FORMAT;
		}
	}
	for (i = 0; i < slen; i++) {
		if (!is_digit(serial[i])) {
			return ML_ERR_FORMAT;
		}
	}
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->prefix, prefix, plen);
	memcpy(ret->serial, serial, slen);
	return 0;
}

void
note_id_str(const struct note_id *id, char ret[static NOTE_ID_MAX + 1])
{
	snprintf(ret, NOTE_ID_MAX + 1, "%s%s", id->prefix, id->serial);
}

/* First `nchars` base32 characters of in (enough bytes must be given). */
static void
b32_prefix(const uint8_t *in, size_t nchars, char *out)
{
	size_t i, bit;

	for (i = 0; i < nchars; i++) {
		unsigned v = 0;

		bit = i * 5;
		v = (unsigned)((in[bit / 8] << 8) | in[bit / 8 + 1]);
		v = (v >> (11 - bit % 8)) & 0x1f;
		out[i] = b32_alpha[v];
	}
}

/* domain 00 prefix 00 serial, the input of both codes. */
static int
code_input(const char *domain, const struct note_id *id, struct ml_wr *w)
{
	int r;

	ML_TRY(ml_wr_bytes(w, domain, strlen(domain)));
	ML_TRY(ml_wr_u8(w, 0));
	ML_TRY(ml_wr_bytes(w, id->prefix, strlen(id->prefix)));
	ML_TRY(ml_wr_u8(w, 0));
	ML_TRY(ml_wr_bytes(w, id->serial, strlen(id->serial)));
	r = 0;
out:
	return r;
}

static int
codes(const uint8_t *key, const struct note_id *id,
    char ret_chk[FEATURE_CHK_LEN], char ret_mac[FEATURE_MAC_LEN])
{
	uint8_t buf[96], md[ML_SHA256_LEN + 1];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	int r;

	md[ML_SHA256_LEN] = 0;
	ML_TRY(code_input(FEATURE_CHK_DOMAIN, id, &w));
	ML_TRY(ml_sha256(w.p, w.len, md));
	b32_prefix(md, FEATURE_CHK_LEN, ret_chk);
	if (key != NULL) {
		w.len = 0;
		ML_TRY(code_input(FEATURE_MAC_DOMAIN, id, &w));
		ML_TRY(ml_hmac_sha256(key, FEATURE_KEY_LEN, w.p, w.len, md));
		b32_prefix(md, FEATURE_MAC_LEN, ret_mac);
	}
	r = 0;
out:
	ml_wipe(md, sizeof(md));
	return r;
}

static int
kfp(const uint8_t chip_pub[static 65], char ret[FEATURE_KFP_LEN])
{
	uint8_t md[ML_SHA256_LEN + 1];
	int r;

	md[ML_SHA256_LEN] = 0;
	ML_TRY(ml_sha256(chip_pub, 65, md));
	b32_prefix(md, FEATURE_KFP_LEN, ret);
	r = 0;
out:
	return r;
}

int
feature_derive(const uint8_t key[static FEATURE_KEY_LEN],
    const struct note_id *id, const uint8_t chip_pub[static 65],
    char ret[static FEATURE_MAX_LEN + 1], size_t *ret_len)
{
	char chk[FEATURE_CHK_LEN], mac[FEATURE_MAC_LEN], fp[FEATURE_KFP_LEN];
	int n, r;

	ML_TRY(note_id_set(id->prefix, strlen(id->prefix), id->serial,
	    strlen(id->serial), &(struct note_id){ 0 }));
	ML_TRY(codes(key, id, chk, mac));
	ML_TRY(kfp(chip_pub, fp));
	n = snprintf(ret, FEATURE_MAX_LEN + 1,
	    FEATURE_MAGIC "%s|%s|%.*s|%.*s|%.*s", id->prefix, id->serial,
	    FEATURE_CHK_LEN, chk, FEATURE_MAC_LEN, mac, FEATURE_KFP_LEN, fp);
	ML_ENSURE(n > 0 && n <= FEATURE_MAX_LEN, ML_ERR_INTERNAL);
	*ret_len = (size_t)n;
	r = 0;
out:
	ml_wipe(mac, sizeof(mac));
	return r;
}

/* Read up to the next '|' (or the end when last); the separator is eaten. */
static int
rd_field(struct ml_rd *rd, bool last, struct ml_rd *ret)
{
	const uint8_t *p = ml_rd_ptr(rd), *bar;
	size_t left = ml_rd_left(rd);
	int r;

	if (last) {
		bar = memchr(p, '|', left);
		ML_ENSURE(bar == NULL, ML_ERR_FORMAT);
		ML_TRY(ml_rd_sub(rd, left, ret));
		return 0;
	}
	bar = memchr(p, '|', left);
	ML_ENSURE(bar != NULL, ML_ERR_FORMAT);
	ML_TRY(ml_rd_sub(rd, (size_t)(bar - p), ret));
	ML_TRY(ml_rd_bytes(rd, 1, NULL));
	r = 0;
out:
	return r;
}

/*
 * Parse f and check its codes: the public check code always; the keyed
 * code when nkeys > 0, made by any of keys (each one is tried, so the
 * time does not say which matched); the chip key fingerprint when
 * chip_pub is given.
 */
static int
parse(const uint8_t (*keys)[FEATURE_KEY_LEN], size_t nkeys,
    const uint8_t *chip_pub, const uint8_t *f, size_t n,
    struct note_id *ret_id)
{
	struct ml_rd rd = ML_RD_INIT(f, n), magic, pre, ser, chk, mac, fp;
	char want_fp[FEATURE_KFP_LEN];
	char want_chk[FEATURE_CHK_LEN], want_mac[FEATURE_MAC_LEN];
	struct note_id id;
	bool any = false;
	size_t i;
	int r;

	ML_ENSURE(f != NULL || n == 0, ML_ERR_ARG);
	ML_ENSURE(n <= FEATURE_MAX_LEN, ML_ERR_TOO_LARGE);
	ML_TRY(ml_rd_sub(&rd, strlen(FEATURE_MAGIC), &magic));
	ML_ENSURE(memcmp(ml_rd_ptr(&magic), FEATURE_MAGIC,
	    strlen(FEATURE_MAGIC)) == 0, ML_ERR_FORMAT);
	ML_TRY(rd_field(&rd, false, &pre));
	ML_TRY(rd_field(&rd, false, &ser));
	ML_TRY(rd_field(&rd, false, &chk));
	ML_TRY(rd_field(&rd, false, &mac));
	ML_TRY(rd_field(&rd, true, &fp));
	ML_TRY(note_id_set((const char *)ml_rd_ptr(&pre), ml_rd_left(&pre),
	    (const char *)ml_rd_ptr(&ser), ml_rd_left(&ser), &id));
	ML_ENSURE(ml_rd_left(&chk) == FEATURE_CHK_LEN &&
	    ml_rd_left(&mac) == FEATURE_MAC_LEN &&
	    ml_rd_left(&fp) == FEATURE_KFP_LEN, ML_ERR_FORMAT);
	ML_TRY(codes(NULL, &id, want_chk, want_mac));
	ML_ENSURE(ml_ct_eq(ml_rd_ptr(&chk), want_chk, FEATURE_CHK_LEN),
	    ML_ERR_AUTH);
	for (i = 0; i < nkeys; i++) {
		ML_TRY(codes(keys[i], &id, want_chk, want_mac));
		any |= ml_ct_eq(ml_rd_ptr(&mac), want_mac, FEATURE_MAC_LEN);
	}
	ML_ENSURE(nkeys == 0 || any, ML_ERR_AUTH);
	if (chip_pub != NULL) {
		ML_TRY(kfp(chip_pub, want_fp));
		ML_ENSURE(ml_ct_eq(ml_rd_ptr(&fp), want_fp, FEATURE_KFP_LEN),
		    ML_ERR_AUTH);
	}
	if (ret_id != NULL) {
		*ret_id = id;
	}
	r = 0;
out:
	ml_wipe(want_mac, sizeof(want_mac));
	return r;
}

int
feature_parse(const uint8_t *f, size_t n, struct note_id *ret_id)
{
	return parse(NULL, 0, NULL, f, n, ret_id);
}

int
feature_check_chip(const uint8_t *f, size_t n, const uint8_t chip_pub[static 65])
{
	return parse(NULL, 0, chip_pub, f, n, NULL);
}

int
feature_verify(const uint8_t key[static FEATURE_KEY_LEN], const uint8_t *f,
    size_t n, struct note_id *ret_id)
{
	return parse((const uint8_t (*)[FEATURE_KEY_LEN])key, 1, NULL, f, n,
	    ret_id);
}

int
feature_verify_keys(const uint8_t (*keys)[FEATURE_KEY_LEN], size_t nkeys,
    const uint8_t *f, size_t n, struct note_id *ret_id)
{
	return parse(keys, nkeys, NULL, f, n, ret_id);
}

/* The key file format and its checks are common/ml_secret.c's. */
int
feature_key_load(const char *path, uint8_t ret_key[static FEATURE_KEY_LEN])
{
	return ml_keyfile_read(path, ret_key, FEATURE_KEY_LEN);
}

int
feature_key_create(const char *path)
{
	return ml_keyfile_create(path, FEATURE_KEY_LEN);
}
