/*
 * Banknote feature information (BN-2).
 *
 *= REQ BN-2
 *# From the note's information (serial prefix number, 字冠号) the client
 *# makes the feature information: the serial number and/or one or more
 *# identification codes tied to it.
 *
 * A note is named by its serial prefix (字冠号, 1..4 characters, a capital
 * letter then capitals or digits) and its serial (4..12 digits).  The
 * feature information written to the note's chip is the ASCII string
 *
 *	"ML1|" prefix "|" serial "|" chk "|" mac "|" kfp
 *
 * chk	public check code: base32(SHA-256("mintline feature chk v1" 00
 *	prefix 00 serial))[0..8) — anyone can recompute it; it catches an
 *	altered or garbled record, not a forgery.
 * mac	keyed identification code: base32(HMAC-SHA256(feature key,
 *	"mintline feature mac v1" 00 prefix 00 serial))[0..16) (80 bits) —
 *	only holders of the issuer's feature key (the issuing stations and the
 *	registration server) can make or check it.
 * kfp	chip key fingerprint: base32(SHA-256(chip public key))[0..20) (100
 *	bits) — ties the record, and so the station's signature over it, to
 *	the key generated inside this chip: an offline desk detects a clone
 *	(same record, another key) without the registry.  (Beyond the
 *	documents: "chip authentication".)
 *
 * base32 is RFC 4648 without padding.  docs/issuance.md has the rationale.
 */
#ifndef NOTE_FEATURE_H
#define NOTE_FEATURE_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

#define FEATURE_PREFIX_MAX	4
#define FEATURE_SERIAL_MIN	4
#define FEATURE_SERIAL_MAX	12
#define FEATURE_KEY_LEN		32
/* feature keys a server accepts at once: the current one and those the
 * stations are moving away from (note-feature-key, OP-5) */
#define FEATURE_MAX_KEYS	4
#define FEATURE_CHK_LEN		8	/* base32 characters */
#define FEATURE_MAC_LEN		16	/* base32 characters */
#define FEATURE_KFP_LEN		20	/* base32 characters */
/* "ML1|" + 4 + "|" + 12 + "|" + 8 + "|" + 16 + "|" + 20 */
#define FEATURE_MAX_LEN		(4 + FEATURE_PREFIX_MAX + 1 + FEATURE_SERIAL_MAX + \
				 1 + FEATURE_CHK_LEN + 1 + FEATURE_MAC_LEN + \
				 1 + FEATURE_KFP_LEN)
/* prefix || serial, the registry's note key */
#define NOTE_ID_MAX		(FEATURE_PREFIX_MAX + FEATURE_SERIAL_MAX)

struct note_id {
	char	 prefix[FEATURE_PREFIX_MAX + 1];
	char	 serial[FEATURE_SERIAL_MAX + 1];
};

/*
 * Check and copy a prefix and serial given as byte ranges (untrusted).
 * Returns 0 and fills *ret, or ML_ERR_FORMAT (bad character) /
 * ML_ERR_TOO_LARGE / ML_ERR_SHORT (length); *ret untouched on failure.
 */
ML_MUST_CHECK int note_id_set(const char *prefix, size_t plen,
    const char *serial, size_t slen, struct note_id *ret);

/* prefix || serial into ret (NUL terminated, at most NOTE_ID_MAX chars). */
void		 note_id_str(const struct note_id *id,
    char ret[static NOTE_ID_MAX + 1]);

/*
 * Make the feature information of a note under the feature key, for the
 * chip whose public key is chip_pub (65 bytes, from GET DATA 02).
 * ret gets FEATURE_MAX_LEN + 1 bytes at most (NUL terminated); *ret_len
 * its length.  0 or ML_ERR_*; outputs untouched on failure.
 */
ML_MUST_CHECK int feature_derive(const uint8_t key[static FEATURE_KEY_LEN],
    const struct note_id *id, const uint8_t chip_pub[static 65],
    char ret[static FEATURE_MAX_LEN + 1], size_t *ret_len);

/*
 * Parse feature information read from a chip or an upload (untrusted) and
 * check its public check code.  Returns 0 and fills *ret_id, ML_ERR_FORMAT
 * for a malformed record, ML_ERR_AUTH when the check code is wrong.
 */
ML_MUST_CHECK int feature_parse(const uint8_t *f, size_t n,
    struct note_id *ret_id);

/*
 * feature_parse() and then the keyed identification code, compared in
 * constant time: ML_ERR_AUTH when it is not the one the key makes.
 */
ML_MUST_CHECK int feature_verify(const uint8_t key[static FEATURE_KEY_LEN],
    const uint8_t *f, size_t n, struct note_id *ret_id);
/*
 * The same for a set of feature keys (a server's note-feature-key while
 * stations move to a new key, OP-6): the keyed code must be made by one
 * of them, every one tried; nkeys == 0 is feature_parse().
 */
ML_MUST_CHECK int feature_verify_keys(const uint8_t (*keys)[FEATURE_KEY_LEN],
    size_t nkeys, const uint8_t *f, size_t n, struct note_id *ret_id);

/*
 * Load a feature key: a file holding 64 hex digits (and optional trailing
 * whitespace), not readable by group or others.  ML_ERR_IO, ML_ERR_PERM
 * (mode too open), ML_ERR_FORMAT.  The value is never echoed.
 */
ML_MUST_CHECK int feature_key_load(const char *path,
    uint8_t ret_key[static FEATURE_KEY_LEN]);

/* Write a fresh random feature key to path (created 0600, must not exist). */
ML_MUST_CHECK int feature_key_create(const char *path);

/*
 * 0 if the record's chip key fingerprint is that of chip_pub, ML_ERR_AUTH
 * if not, ML_ERR_FORMAT for a malformed record.
 */
ML_MUST_CHECK int feature_check_chip(const uint8_t *f, size_t n,
    const uint8_t chip_pub[static 65]);

#endif
