/*
 * A P-256 key in a PKCS#11 token, named by an RFC 7512 pkcs11: URI and
 * used through libp11: the station's issuer key (ECDSA, BN-3) and the
 * server's seal key (ECDH, BN-7) in an HSM (SoftHSM2 by default).
 *
 * URI attributes used: token, manufacturer, model, serial (token match);
 * object, id (key match); module-path (the module to load; default the
 * p11-kit proxy, i.e. every registered module); pin-source ("file:PATH" or
 * a path: the first line is the user PIN).  pin-value is refused: a PIN
 * never travels on a command line.  The PIN is wiped after C_Login.
 *
 * This is the issuance engineer's thin local binding; it fills the
 * struct hs_keyops of hs/hs_api.h so that callers switch to hs/'s own
 * PKCS#11 key ops without change.
 *
 * Thread safety: sign and ecdh may be called from several threads; libp11
 * keeps a session pool per slot.
 */
#ifndef NOTE_P11_H
#define NOTE_P11_H

#include <stdint.h>

#include "hs_api.h"
#include "ml_err.h"
#include "ml_ossl.h"

struct note_p11;

/*
 * Open the private key the URI names (and its public point).  Errors:
 * ML_ERR_ARG (bad URI, pin-value given), ML_ERR_IO (module or pin-source
 * unreadable), ML_ERR_NOT_FOUND (no such token/key; or more than one key
 * matches: ML_ERR_EXISTS), ML_ERR_PIN (login refused).  *ret untouched on
 * failure.
 */
ML_MUST_CHECK int note_p11_open(const char *uri, struct note_p11 **ret);
void		 note_p11_free(struct note_p11 *k);	/* NULL-safe */

/* The key's public point (uncompressed, 65 bytes). */
void		 note_p11_pub(const struct note_p11 *k,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);

/* CKM_ECDSA over a SHA-256 digest; raw r||s. */
ML_MUST_CHECK int note_p11_sign_digest(struct note_p11 *k,
    const uint8_t digest[static ML_SHA256_LEN],
    uint8_t ret_sig[static ML_P256_SIG_LEN]);

/* CKM_ECDH1_DERIVE (CKD_NULL): the X coordinate; the key stays inside. */
ML_MUST_CHECK int note_p11_ecdh(struct note_p11 *k,
    const uint8_t peer[static ML_P256_PUB_LEN],
    uint8_t ret_secret[static ML_P256_SECRET_LEN]);

/* hs_keyops over k (sign, ecdh; random from OpenSSL). */
void		 note_p11_keyops(struct note_p11 *k, struct hs_keyops *ret);

/*
 * Read a public key: "pkcs11:..." (the public key object, or the private
 * key's point; no PIN needed when the public key object is public) or the
 * path of a PEM file (SubjectPublicKeyInfo or an EC private key).
 */
ML_MUST_CHECK int note_pub_load(const char *spec,
    uint8_t ret_pub[static ML_P256_PUB_LEN]);

#endif
