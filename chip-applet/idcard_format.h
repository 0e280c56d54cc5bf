/*
 * The resident ID card stand-in's two data formats (ID-6..ID-8, ID-10):
 * the plaintext configuration that any reader may read, and the encrypted
 * ID data that only a SAM can open.  Used by the card (applet_idcard.c,
 * which checks the configuration it is given), the card maker
 * (tools/mintline-mkidcard) and the server's SAM emulator.
 *
 *= REQ ID-6 (pre-read)
 *# the card's plaintext configuration (serial number, application data,
 *# transport protocol: type, bit rate, maximum frame length)
 *
 * ---- Configuration (GET DATA P1=03, PUT DATA 00 03) ----
 *
 * A flat sequence of BER-TLVs, every one present exactly once, in this
 * order, nothing after the last (at most IDC_CONFIG_MAX bytes):
 *
 *	tag	name		value
 *	80	serial		8 bytes, the card UID
 *	81	app data	0..IDC_APPDATA_MAX bytes, opaque
 *	82	protocol	1..IDC_PROTO_MAX printable ASCII, e.g. "ISO14443B"
 *	83	bit rate	u16 big endian, kbit/s, nonzero (106, 212, 424, 848)
 *	84	max frame	u16 big endian, bytes, IDC_FRAME_MIN..IDC_FRAME_MAX
 *
 * ---- ID information (the plaintext the SAM recovers, ID-10) ----
 *
 * A flat sequence of BER-TLVs in this order; all present except 8A:
 *
 *	tag	name		value
 *	80	name		UTF-8, 1..IDC_NAME_MAX bytes
 *	81	sex		1 byte, GB/T 2261.1 code: 1 male, 2 female
 *	82	nation		UTF-8 民族 name, 1..IDC_NATION_MAX bytes ("汉")
 *	83	birth date	8 ASCII digits YYYYMMDD
 *	84	address		UTF-8, 1..IDC_ADDRESS_MAX bytes
 *	85	ID number	18 ASCII chars, GB 11643-1999 with a valid
 *				ISO 7064 MOD 11-2 check character ('0'..'9', 'X')
 *	86	authority	UTF-8 issuing authority, 1..IDC_AUTHORITY_MAX
 *	87	valid from	8 ASCII digits YYYYMMDD
 *	88	valid until	8 ASCII digits YYYYMMDD, or UTF-8 "长期" (no expiry)
 *	89	photo		1..IDC_PHOTO_MAX bytes (the tool makes a 32x32
 *				binary PGM, 1037 bytes; a real card holds a
 *				1024-byte compressed image)
 *	8A	fingerprint	optional, 1..IDC_FINGER_MAX bytes, opaque (real
 *				cards hold two 512-byte minutiae templates)
 *
 * Text fields must be valid UTF-8 without control characters.  With a
 * ~200-byte text part, the 1037-byte photo and 1024 bytes of fingerprint
 * data the encrypted ID data is about 2.3 KB, as on a real card.
 *
 * ---- Encrypted ID data (READ BINARY, ID-7) ----
 *
 *	iv(12) || ct || tag(16)		AES-256-GCM, aad = card serial (8)
 *	key = HKDF-SHA256(ikm = SAM master key (32), salt = card serial,
 *			  info = IDC_KDF_INFO), 32 bytes
 *
 * The SAM master key is the "SAM test key" of tools/mintline-mkidcard
 * (--sam-key FILE, 32 raw bytes).
 *
 * Every function returns 0 or a negative ML_ERR_*; outputs are untouched
 * on failure (writers are left as they were).
 */
#ifndef IDCARD_FORMAT_H
#define IDCARD_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "ml_wr.h"

#define IDC_SAM_KEY_LEN		32
#define IDC_SERIAL_LEN		8
#define IDC_APPDATA_MAX		64
#define IDC_PROTO_MAX		16
#define IDC_FRAME_MIN		16
#define IDC_FRAME_MAX		4096
#define IDC_CONFIG_MAX		128	/* <= CACHE_MAX_CONFIG */

#define IDC_NAME_MAX		90	/* 30 CJK characters */
#define IDC_NATION_MAX		30
#define IDC_DATE_LEN		8
#define IDC_ADDRESS_MAX		210	/* 70 CJK characters */
#define IDC_IDNUM_LEN		18
#define IDC_AUTHORITY_MAX	90
#define IDC_UNTIL_MAX		16
#define IDC_PHOTO_MAX		4096
#define IDC_FINGER_MAX		2048
#define IDC_INFO_MAX		8000	/* encoded ID information */
#define IDC_BLOB_OVERHEAD	(12 + 16)	/* iv + tag */
#define IDC_KDF_INFO		"mintline idcard v1"
#define IDC_LONG_TERM		"\xe9\x95\xbf\xe6\x9c\x9f"	/* 长期 */

#define IDC_SEX_MALE		1
#define IDC_SEX_FEMALE		2

/* Configuration tags */
#define IDC_CT_SERIAL		0x80
#define IDC_CT_APPDATA		0x81
#define IDC_CT_PROTO		0x82
#define IDC_CT_BITRATE		0x83
#define IDC_CT_MAXFRAME		0x84

/* ID information tags */
#define IDC_IT_NAME		0x80
#define IDC_IT_SEX		0x81
#define IDC_IT_NATION		0x82
#define IDC_IT_BIRTH		0x83
#define IDC_IT_ADDRESS		0x84
#define IDC_IT_IDNUM		0x85
#define IDC_IT_AUTHORITY	0x86
#define IDC_IT_FROM		0x87
#define IDC_IT_UNTIL		0x88
#define IDC_IT_PHOTO		0x89
#define IDC_IT_FINGER		0x8A

struct idc_config {
	uint8_t		 serial[IDC_SERIAL_LEN];
	uint8_t		 appdata[IDC_APPDATA_MAX];
	size_t		 appdata_len;
	char		 proto[IDC_PROTO_MAX + 1];	/* NUL-terminated */
	uint16_t	 bitrate_kbps;
	uint16_t	 max_frame;
};

/* Text fields are NUL-terminated; byte fields carry a length. */
struct idc_info {
	char		 name[IDC_NAME_MAX + 1];
	uint8_t		 sex;
	char		 nation[IDC_NATION_MAX + 1];
	char		 birth[IDC_DATE_LEN + 1];
	char		 address[IDC_ADDRESS_MAX + 1];
	char		 idnum[IDC_IDNUM_LEN + 1];
	char		 authority[IDC_AUTHORITY_MAX + 1];
	char		 valid_from[IDC_DATE_LEN + 1];
	char		 valid_until[IDC_UNTIL_MAX + 1];
	uint8_t		 photo[IDC_PHOTO_MAX];
	size_t		 photo_len;
	uint8_t		 finger[IDC_FINGER_MAX];
	size_t		 finger_len;	/* 0: absent */
};

/* Append the configuration TLVs to w.  ML_ERR_ARG if a field is out of
 * range (the same checks as idc_config_decode). */
ML_MUST_CHECK int idc_config_encode(const struct idc_config *cfg,
    struct ml_wr *w);
/* Parse and check a configuration: ML_ERR_FORMAT for a wrong, missing,
 * duplicate or misordered tag or a bad value, ML_ERR_SHORT / ML_ERR_TRAILING
 * / ML_ERR_TOO_LARGE as the reader says.  ret_cfg may be NULL (check only). */
ML_MUST_CHECK int idc_config_decode(const uint8_t *p, size_t len,
    struct idc_config *ret_cfg);

/* Append the ID information TLVs to w (ML_ERR_ARG for a bad field). */
ML_MUST_CHECK int idc_info_encode(const struct idc_info *info,
    struct ml_wr *w);
/* Parse and check ID information; errors as idc_config_decode. */
ML_MUST_CHECK int idc_info_decode(const uint8_t *p, size_t len,
    struct idc_info *ret_info);
/* Wipe an idc_info (it is personal data).  NULL-safe. */
void		 idc_info_clear(struct idc_info *info);

/*
 * Card maker: encode info and encrypt it for the card with this serial
 * under the SAM master key; appends iv || ct || tag to out.
 */
ML_MUST_CHECK int idc_data_seal(const uint8_t sam_key[static IDC_SAM_KEY_LEN],
    const uint8_t serial[static IDC_SERIAL_LEN], const struct idc_info *info,
    struct ml_wr *out);
/*
 * SAM: decrypt and parse the encrypted ID data of the card with this
 * serial.  ML_ERR_AUTH if the key, serial or data is wrong (tampered),
 * ML_ERR_SHORT if blob is shorter than the overhead, parse errors as
 * idc_info_decode.  Intermediate plaintext is wiped.
 */
ML_MUST_CHECK int idc_data_open(const uint8_t sam_key[static IDC_SAM_KEY_LEN],
    const uint8_t serial[static IDC_SERIAL_LEN], const uint8_t *blob,
    size_t blob_len, struct idc_info *ret_info);

/*
 * GB 11643-1999: the check character ('0'..'9' or 'X') for the first 17
 * digits of an ID number (ISO 7064 MOD 11-2, weights 2^(17-i) mod 11), or
 * 0 if those are not 17 ASCII digits.
 */
char		 idc_idnum_check_char(const char *first17);
/* True if id is 17 digits plus the right check character, NUL-terminated. */
bool		 idc_idnum_valid(const char *id);

#endif
