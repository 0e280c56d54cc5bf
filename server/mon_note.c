/*
 * The note application's PKCS#11 calls (server/note_p11.h), answered
 * through the monitor inside mintline-server, so that the network process
 * never loads a PKCS#11 module (privilege separation: the HSM key of BN-7
 * is used by mintline-monitor only).
 *
 * mintline-server links this file and not server/note_p11.c (nor
 * libp11): see server/meson.build.  If note_app.c starts to use another
 * note_p11 function, the link fails loudly with an undefined symbol: add
 * its stand-in here.
 *
 *   note_p11_open(uri)	the seal key: the monitor opened
 *			MINTLINE_NOTE_SEAL_KEY itself at start (same
 *			environment); ecdh goes out as MON_DECRYPT_FEATURE
 *   note_pub_load(spec)	pkcs11: URIs through MON_PUBKEY (start-up
 *			only); PEM files read here
 *   note_p11_sign_digest	refused: the server signs nothing for notes
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "ml_log.h"
#include "ml_wipe.h"
#include "mon_client.h"
#include "note_p11.h"

struct note_p11 {
	struct mon	*m;
	uint8_t		 pub[ML_P256_PUB_LEN];
};

int
note_p11_open(const char *uri, struct note_p11 **ret)
{
	struct note_p11 *k;
	struct mon *m = mon_global();

	(void)uri;	/* the monitor read the same variable */
	if (m == NULL || !mon_has_seal(m)) {
		ml_err("note: the monitor has no seal key (MINTLINE_NOTE_SEAL_KEY "
		    "must be set when mintline-server starts)");
		return ML_ERR_NOT_FOUND;
	}
	if ((k = calloc(1, sizeof(*k))) == NULL) {
		return ML_ERR_NOMEM;
	}
	k->m = m;
	mon_seal_pub(m, k->pub);
	*ret = k;
	return 0;
}

void
note_p11_free(struct note_p11 *k)
{
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
	(void)k;
	(void)digest;
	(void)ret_sig;
	return ML_ERR_PERM;
}

int
note_p11_ecdh(struct note_p11 *k, const uint8_t peer[static ML_P256_PUB_LEN],
    uint8_t ret_secret[static ML_P256_SECRET_LEN])
{
	struct hs_keyops ko;

	/* in a record handler (POSTAUTH): MON_DECRYPT_FEATURE */
	mon_keyops(k->m, &ko);
	return ko.ecdh(ko.ctx, peer, ret_secret);
}

static int
ko_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	return note_p11_ecdh(ctx, peer, ret_secret);
}

void
note_p11_keyops(struct note_p11 *k, struct hs_keyops *ret)
{
	*ret = (struct hs_keyops){ .ctx = k, .ecdh = ko_ecdh };
}

int
note_pub_load(const char *spec, uint8_t ret_pub[static ML_P256_PUB_LEN])
{
	struct mon *m = mon_global();
	EVP_PKEY *pk = NULL;
	BIO *bio = NULL;
	uint8_t pub[ML_P256_PUB_LEN];
	size_t n = 0;
	int r = ML_ERR_INTERNAL;

	if (strncmp(spec, "pkcs11:", 7) == 0) {
		ML_ENSURE(m != NULL, ML_ERR_STATE);
		return mon_pubkey(m, spec, ret_pub);
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
	ML_ENSURE(EVP_PKEY_get_octet_string_param(pk,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pub, sizeof(pub), &n) == 1 &&
	    n == sizeof(pub), ML_ERR_FORMAT);
	ML_TRY(ml_p256_check_pub(pub, n));
	memcpy(ret_pub, pub, sizeof(pub));
	r = 0;
out:
	EVP_PKEY_free(pk);
	BIO_free(bio);
	return r;
}
