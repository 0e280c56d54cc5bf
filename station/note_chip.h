/*
 * Banknote chip operations of the station (BN-1..BN-8), over chipcmd:
 * personalisation, write authorisation, write, sealed upload, record and
 * chip-key proof.  No APDU is assembled outside this file and chipcmd.
 */
#ifndef ST_NOTE_CHIP_H
#define ST_NOTE_CHIP_H

#include <stddef.h>
#include <stdint.h>

#include "chip.h"
#include "chip_proto.h"
#include "chipcmd.h"
#include "hs_api.h"
#include "ml_err.h"
#include "ml_ossl.h"

#define NOTE_SEALED_MAX		4096

struct note_record {
	char		 chip_serial[CHIP_SERIAL_LEN + 1];
	uint8_t		 feature[NOTE_MAX_FEATURE];
	size_t		 feature_len;
	uint8_t		 challenge[NOTE_CHALLENGE_LEN];
	uint8_t		 station_sig[ML_P256_SIG_LEN];
	uint8_t		 issuer;
};

/*
 * A chip serial as shown to people (JSON and text lines, the line's page):
 * without the trailing spaces that pad a PC/SC chip's fixed 16-byte serial
 * ("PNOTE0000000000 ").  The padded serial stays what goes on the wire,
 * in signatures and in the journal.  NULL stays NULL.
 */
const char	*note_chip_shown(const char *serial,
    char buf[static CHIP_SERIAL_LEN + 1]);

/* GET DATA 02: the chip authentication key. */
ML_MUST_CHECK int note_chip_pub(struct chipcmd *cc,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);

/*
 * Personalise a blank note chip: INIT TOKEN (sets the SO PIN), VERIFY SO,
 * GENERATE KEY PAIR (chip key, inside), INSTALL ISSUER for each issuer
 * key, INSTALL SERVER, LOCK.  *ret_pub gets the chip key.
 */
ML_MUST_CHECK int note_chip_perso(struct chipcmd *cc, const char *so_pin,
    const char *label, const uint8_t (*issuers)[ML_P256_PUB_LEN],
    size_t nissuers, const uint8_t server_pub[static ML_P256_PUB_LEN],
    uint8_t ret_pub[static ML_P256_PUB_LEN]);

/*
 * BN-3: GET CHALLENGE, sign NOTE_AUTH_DOMAIN || challenge || chip serial
 * || feature with the issuer key (key_sign over its SHA-256), AUTHORIZE
 * WRITE.  Returns 0 with the chip's answer in *ret_sw (9000 confirm-write,
 * 6982 reject-write), or a transport/signing error.
 */
/*
 * BN-4: the chip's installed issuer keys (GET DATA 04), at most
 * NOTE_MAX_ISSUERS, in install order.
 */
ML_MUST_CHECK int note_chip_issuers(struct chipcmd *cc,
    uint8_t (*ret)[ML_P256_PUB_LEN], size_t *ret_n);
/*
 * BN-4: CHANGE ISSUER op (ISSUER_ADD / ISSUER_RETIRE) of pub, authorised
 * by the current issuer key `by` (GET CHALLENGE, signature over
 * note_msg_issuer()), or by the SO PIN when by is NULL (VERIFY SO first).
 * 0, or the chip's refusal as ML_ERR_* (ML_ERR_AUTH: the key is not a
 * current one; ML_ERR_STATE: written, or already installed, or the last
 * key; ML_ERR_NOT_FOUND: not installed).
 */
ML_MUST_CHECK int note_chip_change_issuer(struct chipcmd *cc,
    const struct key *by, const char *so_pin, const char *chip_serial,
    uint8_t op, const uint8_t pub[static ML_P256_PUB_LEN]);

ML_MUST_CHECK int note_chip_authorize(struct chipcmd *cc,
    const struct key *issuer, const char *chip_serial,
    const uint8_t *feature, size_t n, uint16_t *ret_sw);

/* BN-5: WRITE FEATURE (write-once; 9000 once committed in the chip). */
ML_MUST_CHECK int note_chip_write(struct chipcmd *cc, const uint8_t *feature,
    size_t n);

/* BN-6: GET SEALED, the TLV the server takes verbatim. */
ML_MUST_CHECK int note_chip_sealed(struct chipcmd *cc, uint8_t *out,
    size_t cap, size_t *ret_len);

/* READ FEATURE, parsed.  ML_ERR_NOT_FOUND for a blank chip. */
ML_MUST_CHECK int note_chip_record(struct chipcmd *cc, struct note_record *ret);

/*
 * BN-8: INTERNAL AUTHENTICATE on a fresh 32-byte challenge and verify the
 * answer with pub over NOTE_PROVE_DOMAIN || serial || challenge ||
 * SHA-256(feature).  0 or ML_ERR_AUTH.
 */
ML_MUST_CHECK int note_chip_prove(struct chipcmd *cc,
    const uint8_t pub[static ML_P256_PUB_LEN], const char *chip_serial,
    const uint8_t *feature, size_t n);

/* The message the station signs (BN-3); ret has room for cap bytes. */
ML_MUST_CHECK int note_auth_msg(const uint8_t chal[static NOTE_CHALLENGE_LEN],
    const char *chip_serial, const uint8_t *feature, size_t n, uint8_t *ret,
    size_t cap, size_t *ret_len);

#endif
