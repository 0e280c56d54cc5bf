/*
 * keys/: the one interface to a party's P-256 private key, and the
 * providers that open keys by name.
 *
 *   struct key		one open key: what it can do (struct key_class:
 *			sign, ECDH, random) and its public point.  The
 *			handshakes (hs/), note authorisation and registration
 *			and the station call key_sign(), key_ecdh(),
 *			key_pub() and never see what is behind.
 *   struct key_provider	what opens a private key from its pkcs11: URI
 *			and reads public keys (pkcs11: URI or PEM file).
 *			Each program picks one at start-up and hands it on:
 *			  key_p11_provider() (key_p11.h): libp11 in this
 *			    process -- mintline-station, mintline-monitor,
 *			    tools;
 *			  mon_key_provider() (server/mon_client.h): every
 *			    operation is a request to mintline-monitor --
 *			    mintline-server, which never links libp11
 *			    (privilege separation, ID-2, BN-7).
 *
 * Implementations of struct key_class: key_p11.c (libp11: the HSM, the
 * reader chip through our PKCS#11 module), key_soft.c (an in-memory key:
 * unit tests, benchmarks, the counterfeit tool), server/mon_client.c (the
 * monitor client), idread/idr_reader.c (the reader chip over an ID-read
 * link).  docs/architecture.md, "Keys", has the picture.
 *
 * Threading: key_sign/key_ecdh/key_random may be called from several
 * threads at once; each class says how it serialises (key_p11.c: not at
 * all, libp11 keeps a session pool per slot).
 *
 * All int-returning functions return 0 or a negative ML_ERR_* (ml_err.h)
 * and leave their ret_ outputs untouched on failure.
 */
#ifndef KEY_H
#define KEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "ml_ossl.h"

/* What one implementation does; a const table, one per implementation. */
struct key_class {
	const char	*name;		/* "pkcs11", "soft", "monitor", ... */
	/* ECDSA P-256 over a SHA-256 digest; raw r||s (CKM_ECDSA). */
	int		(*sign)(void *ctx, const uint8_t digest[ML_SHA256_LEN],
			    uint8_t ret_sig[ML_P256_SIG_LEN]);
	/* ECDH with the private key: the X coordinate (CKM_ECDH1_DERIVE,
	 * CKD_NULL).  The peer point is checked by the caller's parser. */
	int		(*ecdh)(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
			    uint8_t ret_secret[ML_P256_SECRET_LEN]);
	/* Random bytes from the key's own source (C_GenerateRandom, the
	 * chip's GET CHALLENGE); NULL means ml_rand(). */
	int		(*random)(void *ctx, uint8_t *buf, size_t n);
	/* Release ctx (key_free); NULL: ctx is borrowed. */
	void		(*free)(void *ctx);
};

struct key {
	const struct key_class	*cls;
	void			*ctx;
	uint8_t			 pub[ML_P256_PUB_LEN];
	bool			 has_pub;
	bool			 heap;		/* from key_new(): key_free frees */
};

/*
 * A key in the caller's storage (borrowed ctx, nothing to free unless
 * cls->free is set); pub may be NULL when the implementation cannot tell.
 */
void	key_init(struct key *k, const struct key_class *cls, void *ctx,
    const uint8_t *pub);
/* The same on the heap; key_free() releases both. */
ML_MUST_CHECK int key_new(const struct key_class *cls, void *ctx,
    const uint8_t *pub, struct key **ret);
/* cls->free(ctx) if any, then the struct if key_new() made it. NULL-safe. */
void	key_free(struct key *k);

ML_MUST_CHECK int key_sign(const struct key *k,
    const uint8_t digest[ML_SHA256_LEN], uint8_t ret_sig[ML_P256_SIG_LEN]);
ML_MUST_CHECK int key_ecdh(const struct key *k,
    const uint8_t peer[ML_P256_PUB_LEN], uint8_t ret_secret[ML_P256_SECRET_LEN]);
ML_MUST_CHECK int key_random(const struct key *k, uint8_t *buf, size_t n);
/* The public point; ML_ERR_UNSUPPORTED when the implementation has none. */
ML_MUST_CHECK int key_pub(const struct key *k, uint8_t ret_pub[ML_P256_PUB_LEN]);
/* key_ecdh() as an ml_ecdh_fn (ml_seal_open); ctx is the struct key. */
int	key_ecdh_fn(void *key, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN]);
/* Name of the implementation, for logs ("pkcs11", "monitor"). */
const char *key_class_name(const struct key *k);

/* ---------------------------------------------------------------- providers */

struct key_provider {
	const char	*name;
	void		*ctx;
	/* Open the private key the pkcs11: URI names (login with its
	 * pin-source).  *ret is freed with key_free(). */
	int		(*open)(void *ctx, const char *uri, struct key **ret);
	/* The public key a pkcs11: URI names, no login needed when the
	 * public key object is public. */
	int		(*pub)(void *ctx, const char *uri,
			    uint8_t ret_pub[ML_P256_PUB_LEN]);
};

/* p->open(uri): errors as key_p11_open() (key_p11.h). */
ML_MUST_CHECK int key_open(const struct key_provider *p, const char *uri,
    struct key **ret);
/*
 * A public key from `spec`: a "pkcs11:" URI goes to the provider (p may be
 * NULL when the caller accepts PEM files only: ML_ERR_UNSUPPORTED); any
 * other spec is the path of a PEM file (SubjectPublicKeyInfo, or an EC
 * private key whose public point is taken), read here with OpenSSL.
 */
ML_MUST_CHECK int key_pub_load(const struct key_provider *p, const char *spec,
    uint8_t ret_pub[ML_P256_PUB_LEN]);

#endif
