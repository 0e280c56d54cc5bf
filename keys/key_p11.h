/*
 * The libp11 implementation of struct key (key.h): a P-256 private key in
 * a PKCS#11 token -- the server's key and the note seal key in the HSM
 * (SoftHSM2 by default), the station's issuer key, the reader or station
 * key in its secure chip (our mintline-pkcs11.so).  The key never leaves
 * the token: sign is C_Sign(CKM_ECDSA), ecdh is C_DeriveKey
 * (CKM_ECDH1_DERIVE), random is C_GenerateRandom.
 *
 * Only programs that may hold a key link this (mintline-station,
 * mintline-monitor, mintline-ca, tests); mintline-server uses the monitor
 * client (server/mon_client.h) instead.
 *
 * Keys are named by RFC 7512 URIs, parsed by p11-kit (p11_kit_uri_parse,
 * the one pkcs11: URI parser of the project):
 *	pkcs11:token=<label>;object=<label>[;id=%01][;type=private]
 *	    [;manufacturer=..;model=..;serial=..]
 *	    [?pin-source=file:<path>][&module-path=<so>]
 * Exactly one initialised token and one private key must match (else
 * ML_ERR_EXISTS or ML_ERR_NOT_FOUND).  The module: the `module` argument,
 * else the URI's module-path, else the p11-kit proxy (every registered
 * module).  pin-value is refused (ML_ERR_ARG): a PIN never travels on a
 * command line.  The PIN (first line of the pin-source file, read with
 * read(2)) is used for C_Login and kept in a locked, MADV_DONTDUMP page
 * for a re-login after the token session is lost; wiped at key_free().
 *
 * Threading: sign, ecdh and random run concurrently on one key (a read
 * lock); libp11 takes a session from its per-slot pool for each call, so
 * N threads keep up to N HSM operations in flight.  A failed call
 * re-opens the token once (write lock: load the module again, log in,
 * find the same key) and tries again.
 */
#ifndef KEY_P11_H
#define KEY_P11_H

#include "key.h"

/*
 * Open the private key `uri` names.  module: NULL or "" for the URI's
 * module-path or the default.  Errors: ML_ERR_ARG (not a pkcs11: URI,
 * pin-value), ML_ERR_IO (module or pin-source unreadable), ML_ERR_NOT_FOUND
 * (no such token or key), ML_ERR_EXISTS (more than one matches),
 * ML_ERR_PIN (login refused), ML_ERR_UNSUPPORTED (not a P-256 key).
 */
ML_MUST_CHECK int key_p11_open(const char *module, const char *uri,
    struct key **ret);
/* The public key `uri` names (public key object, no login; or, with a
 * pin-source, the private key's point). */
ML_MUST_CHECK int key_p11_pub(const char *module, const char *uri,
    uint8_t ret_pub[ML_P256_PUB_LEN]);
/* The provider over key_p11_open/key_p11_pub with `module` (borrowed,
 * may be NULL) as the module argument. */
void	key_p11_provider(struct key_provider *ret, const char *module);

/*
 * Re-open the token of a key from key_p11_open() (what a failed call does
 * by itself).  ML_ERR_CERT if the token now holds a different key;
 * ML_ERR_ARG for a key of another class.
 */
ML_MUST_CHECK int key_p11_reconnect(struct key *k);
/* Reconnects so far (0 for a key of another class). */
uint64_t key_p11_reconnects(const struct key *k);

#endif
