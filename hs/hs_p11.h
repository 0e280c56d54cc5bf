/*
 * hs_keyops backed by a PKCS#11 private key through libp11: the server's
 * key in the HSM (SoftHSM2 by default) and the reader's key in the reader
 * secure chip (our mintline-pkcs11.so).  The key never leaves the token:
 * signing is C_Sign(CKM_ECDSA), ECDH is C_DeriveKey(CKM_ECDH1_DERIVE),
 * random is C_GenerateRandom.
 *
 * The key is named by an RFC 7512 URI:
 *	pkcs11:token=<label>;object=<label>[;id=%01][;type=private]
 *	    [?pin-source=file:<path>|pin-value=<pin>][&module-path=<so>]
 * module (argument) overrides module-path; one of them is required.  The
 * PIN is read into a fixed buffer, used once for C_Login and wiped (libp11
 * 0.4 keeps its own copy for re-login after fork()); a copy stays in a
 * locked, MADV_DONTDUMP page for hs_p11_reconnect().  pin-value works but
 * warns: a URI on a command line is visible to other users.
 */
#ifndef HS_P11_H
#define HS_P11_H

#include "hs_api.h"

struct hs_p11;

ML_MUST_CHECK int hs_p11_open(const char *module, const char *uri,
    struct hs_p11 **ret_key);
/* Fill keyops (ctx = k); thread-safe (calls are serialised per key). */
void	hs_p11_keyops(struct hs_p11 *k, struct hs_keyops *ret);
/* The key's public point (from the token's public key object). */
ML_MUST_CHECK int hs_p11_pub(const struct hs_p11 *k,
    uint8_t ret_pub[ML_P256_PUB_LEN]);
void	hs_p11_free(struct hs_p11 *k);			/* NULL-safe */
/*
 * Unload the module and open the token, log in and find the key again
 * (same URI, the PIN saved at open in a locked MADV_DONTDUMP page).  sign
 * and ecdh do this by themselves, once, when the module call fails (lost
 * session, device error).  Returns 0 or ML_ERR_*; ML_ERR_CERT if the
 * token now holds a different key.
 */
ML_MUST_CHECK int hs_p11_reconnect(struct hs_p11 *k);
uint64_t hs_p11_reconnects(const struct hs_p11 *k);	/* count so far */

#endif
