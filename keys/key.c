/* The key interface (key.h): dispatch, and public keys from PEM files. */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "key.h"
#include "ml_log.h"
#include "ml_wipe.h"

void
key_init(struct key *k, const struct key_class *cls, void *ctx,
    const uint8_t *pub)
{
	memset(k, 0, sizeof(*k));
	k->cls = cls;
	k->ctx = ctx;
	if (pub != NULL) {
		memcpy(k->pub, pub, ML_P256_PUB_LEN);
		k->has_pub = true;
	}
}

int
key_new(const struct key_class *cls, void *ctx, const uint8_t *pub,
    struct key **ret)
{
	struct key *k;

	if ((k = malloc(sizeof(*k))) == NULL) {
		return ML_ERR_NOMEM;
	}
	key_init(k, cls, ctx, pub);
	k->heap = true;
	*ret = k;
	return 0;
}

void
key_free(struct key *k)
{
	if (k == NULL) {
		return;
	}
	if (k->cls != NULL && k->cls->free != NULL) {
		k->cls->free(k->ctx);
	}
	if (k->heap) {
		ml_freezero(k, sizeof(*k));
	}
}

int
key_sign(const struct key *k, const uint8_t digest[ML_SHA256_LEN],
    uint8_t ret_sig[ML_P256_SIG_LEN])
{
	if (k == NULL || k->cls->sign == NULL) {
		return ML_ERR_UNSUPPORTED;
	}
	return k->cls->sign(k->ctx, digest, ret_sig);
}

int
key_ecdh(const struct key *k, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	if (k == NULL || k->cls->ecdh == NULL) {
		return ML_ERR_UNSUPPORTED;
	}
	return k->cls->ecdh(k->ctx, peer, ret_secret);
}

int
key_ecdh_fn(void *key, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	return key_ecdh(key, peer, ret_secret);
}

int
key_random(const struct key *k, uint8_t *buf, size_t n)
{
	if (k != NULL && k->cls->random != NULL) {
		return k->cls->random(k->ctx, buf, n);
	}
	return ml_rand(buf, n);
}

int
key_pub(const struct key *k, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	if (k == NULL || !k->has_pub) {
		return ML_ERR_UNSUPPORTED;
	}
	memcpy(ret_pub, k->pub, ML_P256_PUB_LEN);
	return 0;
}

const char *
key_class_name(const struct key *k)
{
	return k != NULL && k->cls != NULL ? k->cls->name : "none";
}

int
key_open(const struct key_provider *p, const char *uri, struct key **ret)
{
	if (p == NULL || p->open == NULL || uri == NULL) {
		return ML_ERR_ARG;
	}
	return p->open(p->ctx, uri, ret);
}

/* The public point of a PEM file: SubjectPublicKeyInfo or a private key. */
static int
pem_pub(const char *path, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	EVP_PKEY *pk = NULL;
	BIO *bio = NULL;
	uint8_t pub[ML_P256_PUB_LEN];
	size_t n = 0;
	int r = ML_ERR_INTERNAL;

	if ((bio = BIO_new_file(path, "r")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		goto out;
	}
	pk = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
	if (pk == NULL) {
		(void)BIO_reset(bio);
		pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	}
	if (pk == NULL || EVP_PKEY_get_octet_string_param(pk,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &n) != 1 ||
	    n != sizeof(pub) || ml_p256_check_pub(pub, n) != 0) {
		r = ml_errf(ML_ERR_FORMAT, "%s: not a PEM P-256 "
		    "public or private key", path);
		goto out;
	}
	memcpy(ret_pub, pub, sizeof(pub));
	r = 0;
out:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	ERR_clear_error();
	return r;
}

int
key_pub_load(const struct key_provider *p, const char *spec,
    uint8_t ret_pub[ML_P256_PUB_LEN])
{
	if (spec == NULL) {
		return ML_ERR_ARG;
	}
	if (strncmp(spec, "pkcs11:", 7) == 0) {
		if (p == NULL || p->pub == NULL) {
			return ml_errf(ML_ERR_UNSUPPORTED,
			    "%s: no PKCS#11 provider here", spec);
		}
		return p->pub(p->ctx, spec, ret_pub);
	}
	return pem_pub(spec, ret_pub);
}
