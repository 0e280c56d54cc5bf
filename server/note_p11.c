/*
 * PKCS#11 keys through libp11 (see note_p11.h).
 *
 * libp11 0.4 reaches the token through an EC_KEY_METHOD attached to the
 * EVP_PKEY it returns: ECDSA_do_sign() and ECDH_compute_key() on that
 * EC_KEY become C_Sign and C_DeriveKey.  Those EC_KEY calls are deprecated
 * in OpenSSL 3 and have no EVP equivalent that reaches libp11's method, so
 * this one file suppresses the deprecation warnings (and nothing else).
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/ec.h>
#include <openssl/ecdh.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <p11-kit/uri.h>

#include "ml_log.h"
#include "ml_secret.h"
#include "ml_wipe.h"
#include "note_p11.h"

#ifndef NOTE_P11_DEFAULT_MODULE
#define NOTE_P11_DEFAULT_MODULE "p11-kit-proxy.so"
#endif
#define PIN_MAX	64

struct note_p11 {
	PKCS11_CTX	*ctx;
	PKCS11_SLOT	*slots;
	unsigned int	 nslots;
	EVP_PKEY	*pkey;		/* libp11's; its EC_KEY reaches the token */
	EC_KEY		*ec;		/* borrowed from pkey */
	uint8_t		 pub[ML_P256_PUB_LEN];
};

/* Copy a libp11 string into a space-padded CK_UTF8CHAR field. */
static void
pad(CK_UTF8CHAR *dst, size_t cap, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	memset(dst, ' ', cap);
	memcpy(dst, s, n < cap ? n : cap);
}

static bool
token_matches(P11KitUri *uri, const PKCS11_TOKEN *t)
{
	CK_TOKEN_INFO ti;

	memset(&ti, 0, sizeof(ti));
	pad(ti.label, sizeof(ti.label), t->label);
	pad(ti.manufacturerID, sizeof(ti.manufacturerID), t->manufacturer);
	pad(ti.model, sizeof(ti.model), t->model);
	pad(ti.serialNumber, sizeof(ti.serialNumber), t->serialnr);
	return p11_kit_uri_match_token_info(uri, &ti) == 1;
}

static bool
key_matches(P11KitUri *uri, const PKCS11_KEY *k)
{
	CK_ATTRIBUTE *a;

	if ((a = p11_kit_uri_get_attribute(uri, CKA_LABEL)) != NULL) {
		if (k->label == NULL || strlen(k->label) != a->ulValueLen ||
		    memcmp(k->label, a->pValue, a->ulValueLen) != 0) {
			return false;
		}
	}
	if ((a = p11_kit_uri_get_attribute(uri, CKA_ID)) != NULL) {
		if (k->id_len != a->ulValueLen ||
		    memcmp(k->id, a->pValue, a->ulValueLen) != 0) {
			return false;
		}
	}
	return true;
}

static int
ec_point_bytes(const EC_KEY *ec, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	const EC_GROUP *g = EC_KEY_get0_group(ec);
	const EC_POINT *p = EC_KEY_get0_public_key(ec);

	if (g == NULL || p == NULL ||
	    EC_GROUP_get_curve_name(g) != NID_X9_62_prime256v1) {
		return ML_ERR_UNSUPPORTED;
	}
	if (EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, ret_pub,
	    ML_P256_PUB_LEN, NULL) != ML_P256_PUB_LEN) {
		return ML_ERR_CRYPTO;
	}
	return 0;
}

static int
evp_pub_bytes(EVP_PKEY *pk, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	const EC_KEY *ec = EVP_PKEY_get0_EC_KEY(pk);

	return ec != NULL ? ec_point_bytes(ec, ret_pub) : ML_ERR_UNSUPPORTED;
}

/*
 * Parse the URI, load the module, find the one matching token; log in
 * when want_login.  On success *ret_uri, k->ctx/slots and *ret_token are
 * set.
 */
static int
p11_begin(const char *uristr, bool want_login, struct note_p11 *k,
    P11KitUri **ret_uri, PKCS11_TOKEN **ret_token)
{
	P11KitUri *uri = NULL;
	PKCS11_TOKEN *tok = NULL;
	const char *module, *pinsrc;
	char pin[PIN_MAX + 1];
	unsigned int i;
	int r;

	ML_ENSURE((uri = p11_kit_uri_new()) != NULL, ML_ERR_NOMEM);
	if (p11_kit_uri_parse(uristr, P11_KIT_URI_FOR_ANY, uri) != P11_KIT_URI_OK) {
		r = ml_errf(ML_ERR_ARG, "'%.128s' is not a pkcs11: URI", uristr);
		goto out;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL) {
		/* the URI holds the PIN: never echoed */
		r = ml_errf(ML_ERR_ARG, "pkcs11: URI: pin-value refused; use "
		    "pin-source=file:PATH");
		goto out;
	}
	module = p11_kit_uri_get_module_path(uri);
	if (module == NULL) {
		module = NOTE_P11_DEFAULT_MODULE;
	}
	ML_ENSURE((k->ctx = PKCS11_CTX_new()) != NULL, ML_ERR_NOMEM);
	if (PKCS11_CTX_load(k->ctx, module) != 0) {
		PKCS11_CTX_free(k->ctx);
		k->ctx = NULL;
		r = ml_errf(ML_ERR_IO, "cannot load PKCS#11 module %s", module);
		goto out;
	}
	ML_ENSURE(PKCS11_enumerate_slots(k->ctx, &k->slots, &k->nslots) == 0,
	    ML_ERR_IO);
	for (i = 0; i < k->nslots; i++) {
		PKCS11_TOKEN *t = k->slots[i].token;

		if (t == NULL || !t->initialized || !token_matches(uri, t)) {
			continue;
		}
		if (tok != NULL) {
			r = ml_errf(ML_ERR_EXISTS, "%s: matches more than one "
			    "token in %s", uristr, module);
			goto out;
		}
		tok = t;
	}
	if (tok == NULL) {
		r = ml_errf(ML_ERR_NOT_FOUND, "%s: no such token in %s",
		    uristr, module);
		goto out;
	}
	pinsrc = p11_kit_uri_get_pin_source(uri);
	if (want_login) {
		ML_ENSURE(pinsrc != NULL, ML_ERR_ARG);
		ML_TRY(ml_pin_read(pinsrc, NULL, pin, sizeof(pin)));
		r = PKCS11_login(tok->slot, 0, pin) == 0 ? 0 : ML_ERR_PIN;
		ml_wipe(pin, sizeof(pin));
		if (r != 0) {
			/* libp11 queues the module's CKR as an OpenSSL error */
			const char *why = ERR_reason_error_string(
			    ERR_peek_last_error());

			(void)ml_errf(r, "%s: token \"%.32s\": login refused: "
			    "%s (PIN from %s)", uristr, tok->label,
			    why != NULL ? why : "wrong PIN or PIN locked", pinsrc);
			ERR_clear_error();
			goto out;
		}
	}
	*ret_uri = uri;
	uri = NULL;
	*ret_token = tok;
	r = 0;
out:
	if (uri != NULL) {
		p11_kit_uri_free(uri);
	}
	return r;
}

/*
 * What p11_end(k, false) leaves loaded, held for the life of the process.
 * Only start-up look-ups get here, so the list stays short; holding it
 * says that these are kept on purpose, not lost (LeakSanitizer and
 * valgrind then see them as reachable, not as leaks).
 */
static struct p11_kept {
	PKCS11_CTX		*ctx;
	PKCS11_SLOT		*slots;
	unsigned int		 nslots;
	struct p11_kept		*next;
} *p11_kept;
static pthread_mutex_t p11_kept_lock = PTHREAD_MUTEX_INITIALIZER;

static void
p11_keep(PKCS11_CTX *ctx, PKCS11_SLOT *slots, unsigned int nslots)
{
	struct p11_kept *e;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		return;			/* then it is lost, as before */
	}
	e->ctx = ctx;
	e->slots = slots;
	e->nslots = nslots;
	pthread_mutex_lock(&p11_kept_lock);
	e->next = p11_kept;
	p11_kept = e;
	pthread_mutex_unlock(&p11_kept_lock);
}

/*
 * finalize: release the slots and C_Finalize the module.  Only the owner
 * of a long-lived key does.  A short look-up (a public key) must do
 * neither: libp11's slot release calls C_CloseAllSessions and C_Finalize
 * ends the module, both for every libp11 context of the process (the
 * server's HSM key would stop working).  The look-up keeps its small
 * libp11 slot list and context instead (p11_keep).
 */
static void
p11_end(struct note_p11 *k, bool finalize)
{
	if (!finalize) {
		/* see above: the context and its slot list stay */
		if (k->ctx != NULL || k->slots != NULL) {
			p11_keep(k->ctx, k->slots, k->nslots);
		}
		k->ctx = NULL;
		k->slots = NULL;
		return;
	}
	if (k->slots != NULL) {
		PKCS11_release_all_slots(k->ctx, k->slots, k->nslots);
	}
	k->slots = NULL;
	if (k->ctx != NULL) {
		PKCS11_CTX_unload(k->ctx);
		PKCS11_CTX_free(k->ctx);
		k->ctx = NULL;
	}
}

int
note_p11_open(const char *uristr, struct note_p11 **ret)
{
	struct note_p11 *k = NULL;
	P11KitUri *uri = NULL;
	PKCS11_TOKEN *tok = NULL;
	PKCS11_KEY *keys = NULL, *found = NULL;
	unsigned int nkeys = 0, i;
	int r;

	ML_ENSURE((k = calloc(1, sizeof(*k))) != NULL, ML_ERR_NOMEM);
	ML_TRY(p11_begin(uristr, true, k, &uri, &tok));
	ML_ENSURE(PKCS11_enumerate_keys(tok, &keys, &nkeys) == 0, ML_ERR_IO);
	for (i = 0; i < nkeys; i++) {
		if (!key_matches(uri, &keys[i])) {
			continue;
		}
		if (found != NULL) {
			r = ml_errf(ML_ERR_EXISTS, "%s: matches more than one "
			    "private key", uristr);
			goto out;
		}
		found = &keys[i];
	}
	if (found == NULL) {
		r = ml_errf(ML_ERR_NOT_FOUND, "%s: no such private key",
		    uristr);
		goto out;
	}
	ML_ENSURE((k->pkey = PKCS11_get_private_key(found)) != NULL, ML_ERR_IO);
	ML_ENSURE((k->ec = (EC_KEY *)EVP_PKEY_get0_EC_KEY(k->pkey)) != NULL,
	    ML_ERR_UNSUPPORTED);
	ML_TRY(ec_point_bytes(k->ec, k->pub));
	*ret = k;
	k = NULL;
	r = 0;
out:
	if (uri != NULL) {
		p11_kit_uri_free(uri);
	}
	note_p11_free(k);
	return r;
}

void
note_p11_free(struct note_p11 *k)
{
	if (k == NULL) {
		return;
	}
	EVP_PKEY_free(k->pkey);
	/* The context is left loaded (see p11_end): another key of this
	 * process may use the same module; the OS reclaims it at exit. */
	p11_end(k, false);
	free(k);
}

void
note_p11_pub(const struct note_p11 *k, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	memcpy(ret_pub, k->pub, ML_P256_PUB_LEN);
}

int
note_p11_sign_digest(struct note_p11 *k,
    const uint8_t digest[static ML_SHA256_LEN],
    uint8_t ret_sig[static ML_P256_SIG_LEN])
{
	ECDSA_SIG *s;
	const BIGNUM *br, *bs;
	uint8_t sig[ML_P256_SIG_LEN];
	int r = ML_ERR_CRYPTO;

	if ((s = ECDSA_do_sign(digest, ML_SHA256_LEN, k->ec)) == NULL) {
		return ML_ERR_CRYPTO;
	}
	ECDSA_SIG_get0(s, &br, &bs);
	if (BN_bn2binpad(br, sig, 32) == 32 && BN_bn2binpad(bs, sig + 32, 32) == 32) {
		memcpy(ret_sig, sig, sizeof(sig));
		r = 0;
	}
	ECDSA_SIG_free(s);
	return r;
}

int
note_p11_ecdh(struct note_p11 *k, const uint8_t peer[static ML_P256_PUB_LEN],
    uint8_t ret_secret[static ML_P256_SECRET_LEN])
{
	const EC_GROUP *g = EC_KEY_get0_group(k->ec);
	EC_POINT *p = NULL;
	uint8_t out[ML_P256_SECRET_LEN];
	int r = ML_ERR_CRYPTO;

	if ((p = EC_POINT_new(g)) == NULL) {
		return ML_ERR_NOMEM;
	}
	if (EC_POINT_oct2point(g, p, peer, ML_P256_PUB_LEN, NULL) != 1) {
		goto out;
	}
	if (ECDH_compute_key(out, sizeof(out), p, k->ec, NULL) !=
	    (int)sizeof(out)) {
		goto out;
	}
	memcpy(ret_secret, out, sizeof(out));
	r = 0;
out:
	ml_wipe(out, sizeof(out));
	EC_POINT_free(p);
	return r;
}

static int
ko_sign(void *ctx, const uint8_t digest[ML_SHA256_LEN],
    uint8_t ret_sig[ML_P256_SIG_LEN])
{
	return note_p11_sign_digest(ctx, digest, ret_sig);
}

static int
ko_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	return note_p11_ecdh(ctx, peer, ret_secret);
}

static int
ko_random(void *ctx, uint8_t *buf, size_t n)
{
	return ml_rand(buf, n);
}

void
note_p11_keyops(struct note_p11 *k, struct hs_keyops *ret)
{
	*ret = (struct hs_keyops){ .ctx = k, .sign = ko_sign, .ecdh = ko_ecdh,
	    .random = ko_random };
}

static int
pub_from_uri(const char *uristr, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	struct note_p11 k = { 0 };
	P11KitUri *uri = NULL;
	PKCS11_TOKEN *tok = NULL;
	PKCS11_KEY *keys = NULL, *found = NULL;
	EVP_PKEY *pk = NULL;
	unsigned int nkeys = 0, i;
	int r;

	ML_TRY(p11_begin(uristr, false, &k, &uri, &tok));
	ML_ENSURE(PKCS11_enumerate_public_keys(tok, &keys, &nkeys) == 0,
	    ML_ERR_IO);
	for (i = 0; i < nkeys; i++) {
		if (key_matches(uri, &keys[i])) {
			ML_ENSURE(found == NULL, ML_ERR_EXISTS);
			found = &keys[i];
		}
	}
	ML_ENSURE(found != NULL, ML_ERR_NOT_FOUND);
	ML_ENSURE((pk = PKCS11_get_public_key(found)) != NULL, ML_ERR_IO);
	ML_TRY(evp_pub_bytes(pk, ret_pub));
	r = 0;
out:
	EVP_PKEY_free(pk);
	if (uri != NULL) {
		p11_kit_uri_free(uri);
	}
	p11_end(&k, false);
	return r;
}

int
note_pub_load(const char *spec, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	struct note_p11 *k = NULL;
	EVP_PKEY *pk = NULL;
	BIO *bio = NULL;
	int r;

	if (strncmp(spec, "pkcs11:", 7) == 0) {
		if (strstr(spec, "pin-source=") == NULL) {
			return pub_from_uri(spec, ret_pub);
		}
		if ((r = note_p11_open(spec, &k)) == 0) {
			note_p11_pub(k, ret_pub);
			note_p11_free(k);
		}
		return r;
	}
	if ((bio = BIO_new_file(spec, "r")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", spec);
		goto out;
	}
	pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (pk == NULL) {
		(void)BIO_reset(bio);
		pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	}
	if (pk == NULL) {
		r = ml_errf(ML_ERR_FORMAT, "%s: not a PEM public or private key",
		    spec);
		goto out;
	}
	ML_TRY(evp_pub_bytes(pk, ret_pub));
	r = 0;
out:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return r;
}
