/*
 * Certificate verification against the configured CA root, through
 * OpenSSL's X509_STORE (never a hand-written ASN.1 parser), in ml_ossl's
 * private OSSL_LIB_CTX (the same context as every other mintline crypto
 * operation; see docs/protocol.md "Certificates").
 *
 * What a certificate must be (all checked by hs_trust_verify):
 *   - chains to the root (X509_verify_cert), valid now, CRL-checked when a
 *     CRL is configured (X509_V_FLAG_CRL_CHECK: a missing/expired CRL fails);
 *   - keyUsage present with digitalSignature and keyAgreement (the key signs
 *     the handshake and receives R3 or R2 by ECDH);
 *   - a P-256 key;
 *   - subject OU "reader", "station" or "server" (the role; a reader key
 *     cannot act as the server) and, for readers and stations, the subject
 *     serialNumber attribute (2.5.4.5) holding the device serial (ID-3).
 * The certificate number is the X.509 serialNumber as upper-case hex.
 *
 * Results (good and bad) are cached by the SHA-256 of the presented chain:
 * good ones until min(notAfter, 5 min), bad ones for 1 min (a flood of the
 * same forged chain costs one verification).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hs_int.h"
#include "ml_log.h"
#include "ml_wipe.h"

#define TRUST_CACHE_SLOTS	1024
#define TRUST_GOOD_TTL_MS	(300 * 1000)
#define TRUST_BAD_TTL_MS	(60 * 1000)

struct trust_entry {
	bool			 used;
	bool			 pending;	/* being verified: wait for it */
	uint64_t		 gen;		/* trust generation it was made in */
	uint8_t			 hash[ML_SHA256_LEN];
	int			 alert;		/* 0: good */
	struct hs_certinfo	 ci;
	uint64_t		 expires_ms;
};

struct hs_trust {
	X509_STORE		*store;		/* replaced under mu (CRL reload) */
	X509			*root;
	uint64_t		 gen;		/* bumped by each CRL reload */
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;		/* a pending entry settled */
	uint64_t		 hits;
	uint64_t		 misses;
	struct trust_entry	 cache[TRUST_CACHE_SLOTS];
};

static X509 *
x509_from_der(const uint8_t *der, size_t len)
{
	const uint8_t *p = der;
	X509 *x;

	if (ml_ossl_init() != 0 || len == 0 || len > HS_MAX_CERT) {
		return NULL;
	}
	if ((x = X509_new_ex(ml_ossl_ctx(), NULL)) == NULL) {
		return NULL;
	}
	if (d2i_X509(&x, &p, (long)len) == NULL || p != der + len) {
		X509_free(x);
		return NULL;
	}
	return x;
}

static int
name_entry(const X509_NAME *nm, int nid, char *buf, size_t cap)
{
	const X509_NAME_ENTRY *e;
	const ASN1_STRING *s;
	int i, n;

	if ((i = X509_NAME_get_index_by_NID(nm, nid, -1)) < 0) {
		return ML_ERR_NOT_FOUND;
	}
	e = X509_NAME_get_entry(nm, i);
	s = X509_NAME_ENTRY_get_data(e);
	n = ASN1_STRING_length(s);
	if (n <= 0 || (size_t)n >= cap) {
		return ML_ERR_FORMAT;
	}
	memcpy(buf, ASN1_STRING_get0_data(s), (size_t)n);
	buf[n] = '\0';
	return 0;
}

static bool
serial_ok(const char *s)
{
	size_t i, n = strlen(s);

	if (n == 0 || n > HS_MAX_SERIAL) {
		return false;
	}
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
		    (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
		    c == '-')) {
			return false;
		}
	}
	return true;
}

/* Facts of one parsed certificate (no verification). */
static int
x509_facts(X509 *x, struct hs_certinfo *ret)
{
	struct hs_certinfo ci;
	const X509_NAME *subj = X509_get_subject_name(x);
	EVP_PKEY *pk = X509_get0_pubkey(x);
	BIGNUM *bn = NULL;
	char *hex = NULL, *h;
	char ou[16], grp[32];
	size_t publen = 0;
	int r = ML_ERR_INTERNAL;

	memset(&ci, 0, sizeof(ci));
	ML_ENSURE(pk != NULL && EVP_PKEY_is_a(pk, "EC"), ML_ERR_CERT);
	ML_ENSURE(EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME,
	    grp, sizeof(grp), NULL) == 1 && strcmp(grp, "prime256v1") == 0,
	    ML_ERR_CERT);
	ML_ENSURE(EVP_PKEY_get_octet_string_param(pk,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, ci.pub, sizeof(ci.pub),
	    &publen) == 1 && publen == ML_P256_PUB_LEN && ci.pub[0] == 0x04,
	    ML_ERR_CERT);
	ML_ENSURE(name_entry(subj, NID_organizationalUnitName, ou,
	    sizeof(ou)) == 0, ML_ERR_CERT);
	if (strcmp(ou, "reader") == 0) {
		ci.kind = HS_KIND_READER;
	} else if (strcmp(ou, "station") == 0) {
		ci.kind = HS_KIND_STATION;
	} else if (strcmp(ou, "server") == 0) {
		ci.kind = HS_CERT_KIND_SERVER;
	} else {
		r = ML_ERR_CERT;
		goto out;
	}
	if (name_entry(subj, NID_serialNumber, ci.serial,
	    sizeof(ci.serial)) == 0) {
		ML_ENSURE(serial_ok(ci.serial), ML_ERR_CERT);
	} else {
		ML_ENSURE(ci.kind == HS_CERT_KIND_SERVER, ML_ERR_CERT);
		snprintf(ci.serial, sizeof(ci.serial), "server");
	}
	ML_ENSURE((bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x),
	    NULL)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(!BN_is_negative(bn), ML_ERR_CERT);
	ML_ENSURE((hex = BN_bn2hex(bn)) != NULL, ML_ERR_NOMEM);
	/* canonical: upper-case hex without leading zeros ("0999" -> "999") */
	for (h = hex; h[0] == '0' && h[1] != '\0'; h++) {
		;
	}
	ML_ENSURE(strlen(h) >= 1 && strlen(h) <= HS_MAX_CERTNO, ML_ERR_CERT);
	snprintf(ci.certno, sizeof(ci.certno), "%s", h);
	*ret = ci;
	r = 0;
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

int
hs_cert_facts(const uint8_t *der, size_t len, struct hs_certinfo *ret)
{
	X509 *x;
	int r;

	if ((x = x509_from_der(der, len)) == NULL) {
		return ML_ERR_CERT;
	}
	r = x509_facts(x, ret);
	X509_free(x);
	return r;
}

/* ---------------------------------------------------------------- load */

static X509 *
load_cert_file(const char *path)
{
	BIO *b;
	X509 *x = NULL;

	if ((b = BIO_new_file(path, "rb")) == NULL) {
		(void)ml_errf_sys(ML_ERR_CERT, "%s", path);
		return NULL;
	}
	if ((x = X509_new_ex(ml_ossl_ctx(), NULL)) == NULL) {
		goto out;
	}
	if (PEM_read_bio_X509(b, &x, NULL, NULL) == NULL) {
		(void)BIO_reset(b);
		ERR_clear_error();
		if (d2i_X509_bio(b, &x) == NULL) {
			X509_free(x);
			x = NULL;
			(void)ml_errf(ML_ERR_CERT, "%s: not a PEM or DER "
			    "certificate", path);
		}
	}
out:
	BIO_free(b);
	return x;
}

static X509_CRL *
load_crl_file(const char *path)
{
	BIO *b;
	X509_CRL *c;

	if ((b = BIO_new_file(path, "rb")) == NULL) {
		(void)ml_errf_sys(ML_ERR_CERT, "%s", path);
		return NULL;
	}
	if ((c = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) == NULL) {
		(void)BIO_reset(b);
		ERR_clear_error();
		if ((c = d2i_X509_CRL_bio(b, NULL)) == NULL) {
			(void)ml_errf(ML_ERR_CERT, "%s: not a PEM or DER CRL",
			    path);
		}
	}
	BIO_free(b);
	return c;
}

static int
store_new(X509 *root, X509_CRL *crl, X509_STORE **ret)
{
	X509_STORE *st;
	unsigned long flags = X509_V_FLAG_X509_STRICT;

	if ((st = X509_STORE_new()) == NULL) {
		return ML_ERR_NOMEM;
	}
	if (X509_STORE_add_cert(st, root) != 1 ||
	    (crl != NULL && X509_STORE_add_crl(st, crl) != 1)) {
		X509_STORE_free(st);
		return ML_ERR_CERT;
	}
	if (crl != NULL) {
		flags |= X509_V_FLAG_CRL_CHECK;
	}
	X509_STORE_set_flags(st, flags);
	X509_STORE_set_depth(st, HS_MAX_CHAIN);
	*ret = st;
	return 0;
}

static int
trust_new(X509 *root, X509_CRL *crl, struct hs_trust **ret_trust)
{
	struct hs_trust *t = NULL;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((t = calloc(1, sizeof(*t))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_init(&t->mu, NULL);
	pthread_cond_init(&t->cv, NULL);
	ML_TRY(store_new(root, crl, &t->store));
	ML_ENSURE(X509_up_ref(root) == 1, ML_ERR_INTERNAL);
	t->root = root;
	*ret_trust = t;
	t = NULL;
	r = 0;
out:
	hs_trust_free(t);
	return r;
}

int
hs_trust_reload_crl(struct hs_trust *t, const char *crl_path)
{
	X509_CRL *crl = NULL;
	X509_STORE *st = NULL, *old;
	int r = ML_ERR_INTERNAL;

	if ((crl = load_crl_file(crl_path)) == NULL) {
		r = ml_errpre(ML_ERR_CERT, "CRL");	/* path + cause */
		goto out;
	}
	ML_TRY(store_new(t->root, crl, &st));
	pthread_mutex_lock(&t->mu);
	old = t->store;
	t->store = st;
	t->gen++;			/* every cached verdict is stale now */
	pthread_mutex_unlock(&t->mu);
	X509_STORE_free(old);		/* verifications in flight hold a ref */
	r = 0;
out:
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

int
hs_trust_load(const char *ca_path, const char *crl_path,
    struct hs_trust **ret_trust)
{
	X509 *root = NULL;
	X509_CRL *crl = NULL;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_ossl_init());
	ML_ENSURE(ca_path != NULL && ret_trust != NULL, ML_ERR_ARG);
	if ((root = load_cert_file(ca_path)) == NULL) {
		r = ml_errpre(ML_ERR_CERT, "CA root");
		ml_err("%s", ml_errmsg(r));
		goto out;
	}
	if (crl_path != NULL && (crl = load_crl_file(crl_path)) == NULL) {
		r = ml_errpre(ML_ERR_CERT, "CRL");
		ml_err("%s", ml_errmsg(r));
		goto out;
	}
	r = trust_new(root, crl, ret_trust);
out:
	X509_free(root);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

int
hs_trust_new_der(const uint8_t *ca_der, size_t ca_len, const uint8_t *crl_der,
    size_t crl_len, struct hs_trust **ret_trust)
{
	X509 *root = NULL;
	X509_CRL *crl = NULL;
	const uint8_t *p = crl_der;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_ossl_init());
	ML_ENSURE((root = x509_from_der(ca_der, ca_len)) != NULL, ML_ERR_CERT);
	if (crl_der != NULL) {
		ML_ENSURE((crl = d2i_X509_CRL(NULL, &p, (long)crl_len)) != NULL,
		    ML_ERR_CERT);
	}
	r = trust_new(root, crl, ret_trust);
out:
	X509_free(root);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

void
hs_trust_free(struct hs_trust *t)
{
	if (t == NULL) {
		return;
	}
	X509_STORE_free(t->store);
	X509_free(t->root);
	pthread_mutex_destroy(&t->mu);
	pthread_cond_destroy(&t->cv);
	ml_freezero(t, sizeof(*t));
}

void
hs_trust_stats(const struct hs_trust *t, uint64_t *ret_hits,
    uint64_t *ret_misses)
{
	struct hs_trust *mt = (struct hs_trust *)t;

	pthread_mutex_lock(&mt->mu);
	*ret_hits = mt->hits;
	*ret_misses = mt->misses;
	pthread_mutex_unlock(&mt->mu);
}

/* ---------------------------------------------------------------- verify */

static int
chain_hash(const struct hs_blob *chain, size_t n, uint8_t ret[ML_SHA256_LEN])
{
	struct ml_sha256 *h;
	uint8_t l[2];
	size_t i;
	int r = ML_ERR_INTERNAL;

	if ((h = ml_sha256_new()) == NULL) {
		return ML_ERR_NOMEM;
	}
	for (i = 0; i < n; i++) {
		l[0] = (uint8_t)(chain[i].len >> 8);
		l[1] = (uint8_t)chain[i].len;
		ML_TRY(ml_sha256_update(h, l, 2));
		ML_TRY(ml_sha256_update(h, chain[i].p, chain[i].len));
	}
	ML_TRY(ml_sha256_final(h, ret));
	r = 0;
out:
	ml_sha256_free(h);
	return r;
}

/* Full verification; returns the alert (0 good) and fills ci, ttl. */
static int
verify_slow(struct hs_trust *t, const struct hs_blob *chain, size_t n,
    struct hs_certinfo *ci, uint64_t *ret_ttl_ms)
{
	X509 *leaf = NULL, *x;
	X509_STORE *store = NULL;
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	struct tm tm;
	time_t na, now = time(NULL);
	uint32_t ku;
	size_t i;
	int err, alert = HS_ALERT_CERT;

	*ret_ttl_ms = TRUST_BAD_TTL_MS;
	if ((leaf = x509_from_der(chain[0].p, chain[0].len)) == NULL) {
		ml_info("trust: certificate does not parse");
		goto out;
	}
	if ((untrusted = sk_X509_new_null()) == NULL) {
		alert = HS_ALERT_INTERNAL;
		goto out;
	}
	for (i = 1; i < n; i++) {
		if ((x = x509_from_der(chain[i].p, chain[i].len)) == NULL ||
		    !sk_X509_push(untrusted, x)) {
			X509_free(x);
			ml_info("trust: intermediate does not parse");
			goto out;
		}
	}
	pthread_mutex_lock(&t->mu);
	store = t->store;
	(void)X509_STORE_up_ref(store);
	pthread_mutex_unlock(&t->mu);
	if ((ctx = X509_STORE_CTX_new_ex(ml_ossl_ctx(), NULL)) == NULL ||
	    X509_STORE_CTX_init(ctx, store, leaf, untrusted) != 1) {
		alert = HS_ALERT_INTERNAL;
		goto out;
	}
	if (X509_verify_cert(ctx) != 1) {
		err = X509_STORE_CTX_get_error(ctx);
		ml_info("trust: certificate rejected: %s",
		    X509_verify_cert_error_string(err));
		alert = err == X509_V_ERR_CERT_REVOKED ? HS_ALERT_REVOKED :
		    HS_ALERT_CERT;
		goto out;
	}
	ku = X509_get_key_usage(leaf);
	if ((X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) == 0 ||
	    (ku & (KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT)) !=
	    (KU_DIGITAL_SIGNATURE | KU_KEY_AGREEMENT)) {
		ml_info("trust: key usage lacks digitalSignature/keyAgreement");
		goto out;
	}
	if (x509_facts(leaf, ci) != 0) {
		ml_info("trust: certificate subject or key not acceptable");
		goto out;
	}
	*ret_ttl_ms = TRUST_GOOD_TTL_MS;
	if (ASN1_TIME_to_tm(X509_get0_notAfter(leaf), &tm) == 1 &&
	    (na = timegm(&tm)) > now &&
	    (uint64_t)(na - now) * 1000u < *ret_ttl_ms) {
		*ret_ttl_ms = (uint64_t)(na - now) * 1000u;
	}
	alert = 0;
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(leaf);
	ERR_clear_error();
	return alert;
}

int
hs_trust_verify(const struct hs_trust *ct, const struct hs_blob *chain,
    size_t n, struct hs_certinfo *ret, int *ret_alert)
{
	struct hs_trust *t = (struct hs_trust *)ct;	/* cache only */
	struct trust_entry *e;
	struct hs_certinfo ci;
	uint8_t h[ML_SHA256_LEN];
	uint64_t now = hs_now_ms(), ttl = 0, gen;
	int alert, r;

	if (t == NULL || chain == NULL || n < 1 || n > HS_MAX_CHAIN) {
		return ML_ERR_ARG;
	}
	if ((r = chain_hash(chain, n, h)) != 0) {
		return r;
	}
	e = &t->cache[((size_t)h[0] << 8 | h[1]) % TRUST_CACHE_SLOTS];
	pthread_mutex_lock(&t->mu);
	/* The same chain being verified by another thread (many positions
	 * or readers connecting at once, a flood of one forged chain): wait
	 * for its verdict instead of verifying it again. */
	while (e->pending && ml_ct_eq(e->hash, h, sizeof(h))) {
		pthread_cond_wait(&t->cv, &t->mu);
	}
	if (e->used && !e->pending && e->gen == t->gen &&
	    e->expires_ms > now && ml_ct_eq(e->hash, h, sizeof(h))) {
		t->hits++;
		alert = e->alert;
		ci = e->ci;
		pthread_mutex_unlock(&t->mu);
	} else {
		bool mine = !e->pending;

		t->misses++;
		gen = t->gen;
		if (mine) {
			/* the slot shows this chain pending until settled */
			e->pending = true;
			e->used = false;
			memcpy(e->hash, h, sizeof(h));
		}
		pthread_mutex_unlock(&t->mu);
		memset(&ci, 0, sizeof(ci));
		alert = verify_slow(t, chain, n, &ci, &ttl);
		pthread_mutex_lock(&t->mu);
		if (mine) {
			e->pending = false;
			e->used = true;
			e->gen = gen;
			e->alert = alert;
			e->ci = ci;
			e->expires_ms = now + ttl;
			pthread_cond_broadcast(&t->cv);
		}
		pthread_mutex_unlock(&t->mu);
	}
	if (alert != 0) {
		if (ret_alert != NULL) {
			*ret_alert = alert;
		}
		return ML_ERR_CERT;
	}
	*ret = ci;
	return 0;
}

/* ---------------------------------------------------------------- chains */

void
hs_chain_free(struct hs_chain *c)
{
	size_t i;

	if (c == NULL) {
		return;
	}
	for (i = 0; i < c->n; i++) {
		free(c->der[i]);
	}
	memset(c, 0, sizeof(*c));
}

int
hs_chain_load(const char *pem_path, struct hs_chain *ret)
{
	struct hs_chain c;
	BIO *b = NULL;
	X509 *x = NULL;
	uint8_t *der = NULL;
	int n, r = ML_ERR_INTERNAL;

	memset(&c, 0, sizeof(c));
	ML_TRY(ml_ossl_init());
	if ((b = BIO_new_file(pem_path, "rb")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", pem_path);
		goto out;
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		ML_ENSURE(c.n < HS_MAX_CHAIN, ML_ERR_TOO_LARGE);
		ML_ENSURE((n = i2d_X509(x, &der)) > 0 && n <= HS_MAX_CERT,
		    ML_ERR_TOO_LARGE);
		ML_ENSURE((c.der[c.n] = malloc((size_t)n)) != NULL, ML_ERR_NOMEM);
		memcpy(c.der[c.n], der, (size_t)n);
		c.blob[c.n].p = c.der[c.n];
		c.blob[c.n].len = (size_t)n;
		c.n++;
		OPENSSL_free(der);
		der = NULL;
		X509_free(x);
		x = NULL;
	}
	if (c.n == 0) {
		r = ml_errf(ML_ERR_CERT, "%s: no PEM certificate in it",
		    pem_path);
		goto out;
	}
	*ret = c;
	memset(&c, 0, sizeof(c));
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(x);
	BIO_free(b);
	hs_chain_free(&c);
	ERR_clear_error();
	return r;
}
