/*
 * ID card stand-in formats: see idcard_format.h for the layouts.  All
 * parsing goes through ml_rd / ml_tlv with a limit on every field.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"

#include "idcard_format.h"

/* ---- field checks shared by encode and decode ---- */

static bool
is_printable_ascii(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] > 0x7e) {
			return false;
		}
	}
	return true;
}

/*
 * Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF)
 * without C0/C1 controls or DEL.
 */
static bool
is_utf8_text(const uint8_t *p, size_t n)
{
	size_t i = 0, k, need;
	uint32_t cp, min;

	while (i < n) {
		if (p[i] < 0x80) {
			if (p[i] < 0x20 || p[i] == 0x7f) {
				return false;
			}
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			need = 1;
			cp = p[i] & 0x1f;
			min = 0x80;
		} else if ((p[i] & 0xf0) == 0xe0) {
			need = 2;
			cp = p[i] & 0x0f;
			min = 0x800;
		} else if ((p[i] & 0xf8) == 0xf0) {
			need = 3;
			cp = p[i] & 0x07;
			min = 0x10000;
		} else {
			return false;
		}
		if (n - i - 1 < need) {
			return false;
		}
		for (k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80) {
				return false;
			}
			cp = (cp << 6) | (p[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) ||
		    (cp >= 0x80 && cp <= 0x9f)) {
			return false;
		}
		i += need + 1;
	}
	return true;
}

static bool
is_digits(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9') {
			return false;
		}
	}
	return true;
}

/* YYYYMMDD with a plausible month and day (no calendar beyond that). */
static bool
is_date(const uint8_t *p, size_t n)
{
	unsigned m, d;

	if (n != IDC_DATE_LEN || !is_digits(p, n)) {
		return false;
	}
	m = (p[4] - '0') * 10u + (p[5] - '0');
	d = (p[6] - '0') * 10u + (p[7] - '0');
	return m >= 1 && m <= 12 && d >= 1 && d <= 31;
}

static bool
is_until(const uint8_t *p, size_t n)
{
	return is_date(p, n) || (n == strlen(IDC_LONG_TERM) &&
	    memcmp(p, IDC_LONG_TERM, n) == 0);
}

char
idc_idnum_check_char(const char *first17)
{
	static const char map[11] = "10X98765432";
	unsigned sum = 0, w = 1;
	int i;

	if (first17 == NULL) {
		return 0;
	}
	/* weight of digit i (0-based, left to right) is 2^(17-i) mod 11 */
	for (i = 16; i >= 0; i--) {
		if (first17[i] < '0' || first17[i] > '9') {
			return 0;
		}
		w = (w * 2) % 11;
		sum += (unsigned)(first17[i] - '0') * w;
	}
	return map[sum % 11];
}

bool
idc_idnum_valid(const char *id)
{
	char c;

	if (id == NULL || strnlen(id, IDC_IDNUM_LEN + 1) != IDC_IDNUM_LEN) {
		return false;
	}
	if ((c = idc_idnum_check_char(id)) == 0) {
		return false;
	}
	return id[17] == c;
}

/* ---- configuration ---- */

static int
config_check(const struct idc_config *c)
{
	size_t pl = strnlen(c->proto, IDC_PROTO_MAX + 1);

	if (c->appdata_len > IDC_APPDATA_MAX || pl == 0 ||
	    pl > IDC_PROTO_MAX ||
	    !is_printable_ascii((const uint8_t *)c->proto, pl) ||
	    c->bitrate_kbps == 0 || c->max_frame < IDC_FRAME_MIN ||
	    c->max_frame > IDC_FRAME_MAX) {
		return ML_ERR_ARG;
	}
	return 0;
}

int
idc_config_encode(const struct idc_config *cfg, struct ml_wr *w)
{
	size_t save = w->len;
	int r = ML_ERR_INTERNAL;

	ML_TRY(config_check(cfg));
	ML_TRY(ml_tlv_put(w, IDC_CT_SERIAL, cfg->serial, IDC_SERIAL_LEN));
	ML_TRY(ml_tlv_put(w, IDC_CT_APPDATA, cfg->appdata, cfg->appdata_len));
	ML_TRY(ml_tlv_put(w, IDC_CT_PROTO, cfg->proto, strlen(cfg->proto)));
	ML_TRY(ml_tlv_put_u16(w, IDC_CT_BITRATE, cfg->bitrate_kbps));
	ML_TRY(ml_tlv_put_u16(w, IDC_CT_MAXFRAME, cfg->max_frame));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, save);
	}
	return r;
}

/* Next TLV, which must carry `tag`; its value is in *ret_val. */
static int
expect_tlv(struct ml_rd *rd, uint32_t tag, struct ml_rd *ret_val)
{
	struct ml_rd v;
	uint32_t t;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_tlv_next(rd, &t, &v));
	ML_ENSURE(t == tag, ML_ERR_FORMAT);
	*ret_val = v;
	r = 0;
out:
	return r;
}

/* The value as a big-endian u16, exactly two bytes. */
static int
val_u16(struct ml_rd *v, uint16_t *ret)
{
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(ml_rd_left(v) == 2, ML_ERR_FORMAT);
	ML_TRY(ml_rd_u16be(v, ret));
	r = 0;
out:
	return r;
}

int
idc_config_decode(const uint8_t *p, size_t len, struct idc_config *ret_cfg)
{
	struct ml_rd rd = ML_RD_INIT(p, len), v;
	struct idc_config c;
	size_t n;
	int r = ML_ERR_INTERNAL;

	memset(&c, 0, sizeof(c));
	ML_ENSURE(len <= IDC_CONFIG_MAX, ML_ERR_TOO_LARGE);

	ML_TRY(expect_tlv(&rd, IDC_CT_SERIAL, &v));
	ML_ENSURE(ml_rd_left(&v) == IDC_SERIAL_LEN, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&v, c.serial, IDC_SERIAL_LEN));

	ML_TRY(expect_tlv(&rd, IDC_CT_APPDATA, &v));
	n = ml_rd_left(&v);
	ML_ENSURE(n <= IDC_APPDATA_MAX, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&v, c.appdata, n));
	c.appdata_len = n;

	ML_TRY(expect_tlv(&rd, IDC_CT_PROTO, &v));
	n = ml_rd_left(&v);
	ML_ENSURE(n >= 1 && n <= IDC_PROTO_MAX &&
	    is_printable_ascii(ml_rd_ptr(&v), n), ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&v, c.proto, n));

	ML_TRY(expect_tlv(&rd, IDC_CT_BITRATE, &v));
	ML_TRY(val_u16(&v, &c.bitrate_kbps));
	ML_ENSURE(c.bitrate_kbps != 0, ML_ERR_FORMAT);

	ML_TRY(expect_tlv(&rd, IDC_CT_MAXFRAME, &v));
	ML_TRY(val_u16(&v, &c.max_frame));
	ML_ENSURE(c.max_frame >= IDC_FRAME_MIN && c.max_frame <= IDC_FRAME_MAX,
	    ML_ERR_FORMAT);

	ML_TRY(ml_rd_end(&rd));
	if (ret_cfg != NULL) {
		*ret_cfg = c;
	}
	r = 0;
out:
	return r;
}

/* ---- ID information ---- */

enum fkind {
	F_UTF8,		/* UTF-8 text, 1..max */
	F_DATE,		/* YYYYMMDD */
	F_UNTIL,	/* YYYYMMDD or 长期 */
	F_IDNUM,	/* GB 11643 */
};

/*
 * The text fields of struct idc_info as a table, in wire order; encode and
 * decode both walk it so the two cannot disagree.
 */
static const struct text_field {
	uint32_t	 tag;
	enum fkind	 kind;
	size_t		 max;
	size_t		 off;
} text_fields[] = {
#define IDC_OFF(m)	offsetof(struct idc_info, m)
	{ IDC_IT_NAME,	    F_UTF8,  IDC_NAME_MAX,	IDC_OFF(name) },
	/* IDC_IT_SEX (1 byte) goes between name and nation */
	{ IDC_IT_NATION,    F_UTF8,  IDC_NATION_MAX,	IDC_OFF(nation) },
	{ IDC_IT_BIRTH,	    F_DATE,  IDC_DATE_LEN,	IDC_OFF(birth) },
	{ IDC_IT_ADDRESS,   F_UTF8,  IDC_ADDRESS_MAX,	IDC_OFF(address) },
	{ IDC_IT_IDNUM,	    F_IDNUM, IDC_IDNUM_LEN,	IDC_OFF(idnum) },
	{ IDC_IT_AUTHORITY, F_UTF8,  IDC_AUTHORITY_MAX,	IDC_OFF(authority) },
	{ IDC_IT_FROM,	    F_DATE,  IDC_DATE_LEN,	IDC_OFF(valid_from) },
	{ IDC_IT_UNTIL,	    F_UNTIL, IDC_UNTIL_MAX,	IDC_OFF(valid_until) },
#undef IDC_OFF
};

static bool
text_ok(const struct text_field *f, const uint8_t *p, size_t n)
{
	char id[IDC_IDNUM_LEN + 1];

	if (n == 0 || n > f->max) {
		return false;
	}
	switch (f->kind) {
	case F_UTF8:
		return is_utf8_text(p, n);
	case F_DATE:
		return is_date(p, n);
	case F_UNTIL:
		return is_until(p, n);
	case F_IDNUM:
		if (n != IDC_IDNUM_LEN) {
			return false;
		}
		memcpy(id, p, n);
		id[n] = '\0';
		return idc_idnum_valid(id);
	}
	return false;
}

static int
put_text(struct ml_wr *w, const struct idc_info *info,
    const struct text_field *f)
{
	const char *s = (const char *)info + f->off;
	size_t n = strnlen(s, f->max + 1);

	if (!text_ok(f, (const uint8_t *)s, n)) {
		return ML_ERR_ARG;
	}
	return ml_tlv_put(w, f->tag, s, n);
}

static int
get_text(struct ml_rd *rd, struct idc_info *info, const struct text_field *f)
{
	char *s = (char *)info + f->off;
	struct ml_rd v;
	size_t n;
	int r = ML_ERR_INTERNAL;

	ML_TRY(expect_tlv(rd, f->tag, &v));
	n = ml_rd_left(&v);
	ML_ENSURE(text_ok(f, ml_rd_ptr(&v), n), ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&v, s, n));
	s[n] = '\0';
	r = 0;
out:
	return r;
}

static bool
sex_ok(uint8_t sex)
{
	/* GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 unstated */
	return sex == 0 || sex == 1 || sex == 2 || sex == 9;
}

int
idc_info_encode(const struct idc_info *info, struct ml_wr *w)
{
	size_t save = w->len, i;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(sex_ok(info->sex), ML_ERR_ARG);
	ML_ENSURE(info->photo_len >= 1 && info->photo_len <= IDC_PHOTO_MAX &&
	    info->finger_len <= IDC_FINGER_MAX, ML_ERR_ARG);
	for (i = 0; i < ML_NELEM(text_fields); i++) {
		ML_TRY(put_text(w, info, &text_fields[i]));
		if (text_fields[i].tag == IDC_IT_NAME) {
			ML_TRY(ml_tlv_put_u8(w, IDC_IT_SEX, info->sex));
		}
	}
	ML_TRY(ml_tlv_put(w, IDC_IT_PHOTO, info->photo, info->photo_len));
	if (info->finger_len > 0) {
		ML_TRY(ml_tlv_put(w, IDC_IT_FINGER, info->finger,
		    info->finger_len));
	}
	ML_ENSURE(w->len - save <= IDC_INFO_MAX, ML_ERR_ARG);
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(w, save);
	}
	return r;
}

int
idc_info_decode(const uint8_t *p, size_t len, struct idc_info *ret_info)
{
	struct ml_rd rd = ML_RD_INIT(p, len), v;
	struct idc_info *t = NULL;
	size_t i, n;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(len <= IDC_INFO_MAX, ML_ERR_TOO_LARGE);
	/* about 7 KB: keep it off the stack, and wipe it whatever happens */
	ML_ENSURE((t = calloc(1, sizeof(*t))) != NULL, ML_ERR_NOMEM);
	for (i = 0; i < ML_NELEM(text_fields); i++) {
		ML_TRY(get_text(&rd, t, &text_fields[i]));
		if (text_fields[i].tag == IDC_IT_NAME) {
			ML_TRY(expect_tlv(&rd, IDC_IT_SEX, &v));
			ML_ENSURE(ml_rd_left(&v) == 1, ML_ERR_FORMAT);
			ML_TRY(ml_rd_u8(&v, &t->sex));
			ML_ENSURE(sex_ok(t->sex), ML_ERR_FORMAT);
		}
	}
	ML_TRY(expect_tlv(&rd, IDC_IT_PHOTO, &v));
	n = ml_rd_left(&v);
	ML_ENSURE(n >= 1 && n <= IDC_PHOTO_MAX, ML_ERR_FORMAT);
	ML_TRY(ml_rd_copy(&v, t->photo, n));
	t->photo_len = n;
	if (ml_rd_left(&rd) > 0) {
		ML_TRY(expect_tlv(&rd, IDC_IT_FINGER, &v));
		n = ml_rd_left(&v);
		ML_ENSURE(n >= 1 && n <= IDC_FINGER_MAX, ML_ERR_FORMAT);
		ML_TRY(ml_rd_copy(&v, t->finger, n));
		t->finger_len = n;
	}
	ML_TRY(ml_rd_end(&rd));
	memcpy(ret_info, t, sizeof(*t));
	r = 0;
out:
	ml_freezero(t, sizeof(*t));
	return r;
}

void
idc_info_clear(struct idc_info *info)
{
	ml_wipe(info, info == NULL ? 0 : sizeof(*info));
}

/* ---- encryption under the SAM key ---- */

static int
card_key(const uint8_t sam_key[static IDC_SAM_KEY_LEN],
    const uint8_t serial[static IDC_SERIAL_LEN],
    uint8_t ret_key[static ML_AES256_KEY_LEN])
{
	return ml_hkdf_sha256(serial, IDC_SERIAL_LEN, sam_key, IDC_SAM_KEY_LEN,
	    IDC_KDF_INFO, strlen(IDC_KDF_INFO), ret_key, ML_AES256_KEY_LEN);
}

int
idc_data_seal(const uint8_t sam_key[static IDC_SAM_KEY_LEN],
    const uint8_t serial[static IDC_SERIAL_LEN], const struct idc_info *info,
    struct ml_wr *out)
{
	struct ml_wr pt = ml_wr_dyn(IDC_INFO_MAX);
	uint8_t key[ML_AES256_KEY_LEN];
	uint8_t *iv, *ct, *tag;
	size_t save = out->len;
	int r = ML_ERR_INTERNAL;

	ML_TRY(idc_info_encode(info, &pt));
	ML_TRY(card_key(sam_key, serial, key));
	ML_TRY(ml_wr_reserve(out, ML_GCM_IV_LEN + pt.len + ML_GCM_TAG_LEN,
	    &iv));
	ct = iv + ML_GCM_IV_LEN;
	tag = ct + pt.len;
	ML_TRY(ml_rand(iv, ML_GCM_IV_LEN));
	ML_TRY(ml_gcm_seal(key, iv, serial, IDC_SERIAL_LEN, pt.p, pt.len, ct,
	    tag));
	r = 0;
out:
	if (r != 0) {
		ml_wr_rewind(out, save);
	}
	ml_wipe(key, sizeof(key));
	ml_wr_free(&pt);
	return r;
}

int
idc_data_open(const uint8_t sam_key[static IDC_SAM_KEY_LEN],
    const uint8_t serial[static IDC_SERIAL_LEN], const uint8_t *blob,
    size_t blob_len, struct idc_info *ret_info)
{
	struct ml_rd rd = ML_RD_INIT(blob, blob_len);
	uint8_t key[ML_AES256_KEY_LEN];
	const uint8_t *iv, *ct, *tag;
	uint8_t *pt = NULL;
	size_t ct_len = 0;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(blob_len >= IDC_BLOB_OVERHEAD, ML_ERR_SHORT);
	ct_len = blob_len - IDC_BLOB_OVERHEAD;
	ML_ENSURE(ct_len <= IDC_INFO_MAX, ML_ERR_TOO_LARGE);
	ML_TRY(ml_rd_bytes(&rd, ML_GCM_IV_LEN, &iv));
	ML_TRY(ml_rd_bytes(&rd, ct_len, &ct));
	ML_TRY(ml_rd_bytes(&rd, ML_GCM_TAG_LEN, &tag));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE((pt = malloc(ct_len > 0 ? ct_len : 1)) != NULL,
	    ML_ERR_NOMEM);
	ML_TRY(card_key(sam_key, serial, key));
	ML_TRY(ml_gcm_open(key, iv, serial, IDC_SERIAL_LEN, ct, ct_len, tag,
	    pt));
	ML_TRY(idc_info_decode(pt, ct_len, ret_info));
	r = 0;
out:
	ml_wipe(key, sizeof(key));
	ml_freezero(pt, ct_len);
	return r;
}
