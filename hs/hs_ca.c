/* See hs_ca.h. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hs_ca.h"
#include "ml_wipe.h"

struct hs_ca {
	EVP_PKEY	*key;
	X509		*cert;
};

void
hs_ca_free(struct hs_ca *ca)
{
	if (ca == NULL) {
		return;
	}
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca);
}

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *val)
{
	X509V3_CTX v3;
	X509_EXTENSION *e;
	int ok;

	X509V3_set_ctx(&v3, issuer, x, NULL, NULL, 0);
	if ((e = X509V3_EXT_conf_nid(NULL, &v3, nid, val)) == NULL) {
		return ML_ERR_CRYPTO;
	}
	ok = X509_add_ext(x, e, -1);
	X509_EXTENSION_free(e);
	return ok ? 0 : ML_ERR_CRYPTO;
}

static int
sign_x509(X509 *x, EVP_PKEY *key)
{
	EVP_MD_CTX *m;
	int ok;

	if ((m = EVP_MD_CTX_new()) == NULL) {
		return ML_ERR_NOMEM;
	}
	ok = EVP_DigestSignInit_ex(m, NULL, "SHA256", ml_ossl_ctx(), NULL, key,
	    NULL) == 1 && X509_sign_ctx(x, m) > 0;
	EVP_MD_CTX_free(m);
	return ok ? 0 : ML_ERR_CRYPTO;
}

static int
set_times(X509 *x, long backdate_s, long valid_s)
{
	time_t now = time(NULL);

	if (X509_time_adj_ex(X509_getm_notBefore(x), 0, -backdate_s, &now) ==
	    NULL || X509_time_adj_ex(X509_getm_notAfter(x), 0,
	    valid_s - backdate_s, &now) == NULL) {
		return ML_ERR_CRYPTO;
	}
	return 0;
}

int
hs_ca_create(const char *cn, long days, struct hs_ca **ret_ca)
{
	struct hs_ca *ca = NULL;
	X509_NAME *nm;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_ossl_init());
	ML_ENSURE((ca = calloc(1, sizeof(*ca))) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((ca->key = EVP_PKEY_Q_keygen(ml_ossl_ctx(), NULL, "EC",
	    "P-256")) != NULL, ML_ERR_CRYPTO);
	ML_ENSURE((ca->cert = X509_new_ex(ml_ossl_ctx(), NULL)) != NULL,
	    ML_ERR_NOMEM);
	ML_ENSURE(X509_set_version(ca->cert, X509_VERSION_3) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(ASN1_INTEGER_set(X509_get_serialNumber(ca->cert), 1) == 1,
	    ML_ERR_CRYPTO);
	ML_TRY(set_times(ca->cert, 60, days * 86400L));
	nm = X509_get_subject_name(ca->cert);
	ML_ENSURE(X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC,
	    (const unsigned char *)"mintline", -1, -1, 0) == 1 &&
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC,
	    (const unsigned char *)cn, -1, -1, 0) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(X509_set_issuer_name(ca->cert, nm) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(X509_set_pubkey(ca->cert, ca->key) == 1, ML_ERR_CRYPTO);
	ML_TRY(add_ext(ca->cert, ca->cert, NID_basic_constraints,
	    "critical,CA:TRUE,pathlen:0"));
	ML_TRY(add_ext(ca->cert, ca->cert, NID_key_usage,
	    "critical,keyCertSign,cRLSign"));
	ML_TRY(add_ext(ca->cert, ca->cert, NID_subject_key_identifier, "hash"));
	ML_TRY(add_ext(ca->cert, ca->cert, NID_authority_key_identifier,
	    "keyid:always"));
	ML_TRY(sign_x509(ca->cert, ca->key));
	*ret_ca = ca;
	ca = NULL;
	r = 0;
out:
	hs_ca_free(ca);
	ERR_clear_error();
	return r;
}

int
hs_ca_load(const char *key_pem, const char *cert_pem, struct hs_ca **ret_ca)
{
	struct hs_ca *ca = NULL;
	BIO *b = NULL;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_ossl_init());
	ML_ENSURE((ca = calloc(1, sizeof(*ca))) != NULL, ML_ERR_NOMEM);
	if ((b = BIO_new_file(key_pem, "rb")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", key_pem);
		goto out;
	}
	if ((ca->key = PEM_read_bio_PrivateKey_ex(b, NULL, NULL, NULL,
	    ml_ossl_ctx(), NULL)) == NULL) {
		r = ml_errf(ML_ERR_CRYPTO, "%s: not a PEM private key",
		    key_pem);
		goto out;
	}
	BIO_free(b);
	if ((b = BIO_new_file(cert_pem, "rb")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", cert_pem);
		goto out;
	}
	ML_ENSURE((ca->cert = X509_new_ex(ml_ossl_ctx(), NULL)) != NULL,
	    ML_ERR_NOMEM);
	ML_ENSURE(PEM_read_bio_X509(b, &ca->cert, NULL, NULL) != NULL,
	    ML_ERR_CRYPTO);
	ML_ENSURE(X509_check_private_key(ca->cert, ca->key) == 1, ML_ERR_CRYPTO);
	*ret_ca = ca;
	ca = NULL;
	r = 0;
out:
	BIO_free(b);
	hs_ca_free(ca);
	ERR_clear_error();
	return r;
}

int
hs_ca_save(const struct hs_ca *ca, const char *key_pem, const char *cert_pem)
{
	BIO *b = NULL;
	int fd, r = ML_ERR_INTERNAL;

	if ((fd = open(key_pem, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    0600)) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s", key_pem);
		goto out;
	}
	ML_ENSURE((b = BIO_new_fd(fd, BIO_CLOSE)) != NULL, ML_ERR_NOMEM);
	if (PEM_write_bio_PrivateKey(b, ca->key, NULL, NULL, 0, NULL,
	    NULL) != 1) {
		r = ml_errf(ML_ERR_IO, "%s: cannot write the key", key_pem);
		goto out;
	}
	BIO_free(b);
	if ((b = BIO_new_file(cert_pem, "wb")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", cert_pem);
		goto out;
	}
	if (PEM_write_bio_X509(b, ca->cert) != 1) {
		r = ml_errf(ML_ERR_IO, "%s: cannot write the certificate",
		    cert_pem);
		goto out;
	}
	r = 0;
out:
	BIO_free(b);
	return r;
}

static int
x509_der(X509 *x, uint8_t **ret_der, size_t *ret_len)
{
	uint8_t *der = NULL;
	int n;

	if ((n = i2d_X509(x, &der)) <= 0) {
		return ML_ERR_CRYPTO;
	}
	*ret_der = malloc((size_t)n);
	if (*ret_der == NULL) {
		OPENSSL_free(der);
		return ML_ERR_NOMEM;
	}
	memcpy(*ret_der, der, (size_t)n);
	OPENSSL_free(der);
	*ret_len = (size_t)n;
	return 0;
}

int
hs_ca_root_der(const struct hs_ca *ca, uint8_t **ret_der, size_t *ret_len)
{
	return x509_der(ca->cert, ret_der, ret_len);
}

int
hs_ca_issue(const struct hs_ca *ca, const struct hs_ca_req *req,
    uint8_t **ret_der, size_t *ret_len)
{
	struct ml_p256_key *k = NULL;
	X509 *x = NULL;
	X509_NAME *nm;
	BIGNUM *bn = NULL;
	char cn[96];
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_ossl_init());
	ML_ENSURE(req->pub != NULL && req->role != NULL && req->certno != 0,
	    ML_ERR_ARG);
	ML_TRY(ml_p256_key_from_pub(req->pub, ML_P256_PUB_LEN, &k));
	ML_ENSURE((x = X509_new_ex(ml_ossl_ctx(), NULL)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(X509_set_version(x, X509_VERSION_3) == 1, ML_ERR_CRYPTO);
	ML_ENSURE((bn = BN_new()) != NULL && BN_set_word(bn, req->certno) == 1 &&
	    BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL,
	    ML_ERR_CRYPTO);
	ML_TRY(set_times(x, req->backdate_s, req->valid_s));
	if (req->cn != NULL) {
		snprintf(cn, sizeof(cn), "%s", req->cn);
	} else {
		snprintf(cn, sizeof(cn), "%s %s", req->role,
		    req->serial != NULL ? req->serial : "mintline");
	}
	nm = X509_get_subject_name(x);
	ML_ENSURE(X509_NAME_add_entry_by_txt(nm, "O", MBSTRING_ASC,
	    (const unsigned char *)"mintline", -1, -1, 0) == 1 &&
	    X509_NAME_add_entry_by_txt(nm, "OU", MBSTRING_ASC,
	    (const unsigned char *)req->role, -1, -1, 0) == 1 &&
	    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_UTF8,
	    (const unsigned char *)cn, -1, -1, 0) == 1, ML_ERR_CRYPTO);
	if (req->serial != NULL) {
		ML_ENSURE(X509_NAME_add_entry_by_NID(nm, NID_serialNumber,
		    MBSTRING_ASC, (const unsigned char *)req->serial, -1, -1,
		    0) == 1, ML_ERR_CRYPTO);
	}
	ML_ENSURE(X509_set_issuer_name(x, X509_get_subject_name(ca->cert)) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE(X509_set_pubkey(x, ml_p256_key_evp(k)) == 1, ML_ERR_CRYPTO);
	ML_TRY(add_ext(x, ca->cert, NID_basic_constraints, "critical,CA:FALSE"));
	ML_TRY(add_ext(x, ca->cert, NID_key_usage, req->sign_only ?
	    "critical,digitalSignature" :
	    "critical,digitalSignature,keyAgreement"));
	ML_TRY(add_ext(x, ca->cert, NID_subject_key_identifier, "hash"));
	ML_TRY(add_ext(x, ca->cert, NID_authority_key_identifier,
	    "keyid:always"));
	ML_TRY(sign_x509(x, ca->key));
	ML_TRY(x509_der(x, ret_der, ret_len));
	r = 0;
out:
	BN_free(bn);
	X509_free(x);
	ml_p256_key_free(k);
	ERR_clear_error();
	return r;
}

int
hs_ca_crl(const struct hs_ca *ca, const uint64_t *revoked, size_t n,
    long valid_s, uint8_t **ret_der, size_t *ret_len)
{
	X509_CRL *crl = NULL;
	X509_REVOKED *rv = NULL;
	ASN1_TIME *t = NULL;
	ASN1_INTEGER *ai = NULL;
	EVP_MD_CTX *m = NULL;
	BIGNUM *bn = NULL;
	X509V3_CTX v3;
	X509_EXTENSION *e;
	uint8_t *der = NULL;
	time_t now = time(NULL);
	size_t i;
	int len, r = ML_ERR_INTERNAL;

	ML_TRY(ml_ossl_init());
	ML_ENSURE((crl = X509_CRL_new_ex(ml_ossl_ctx(), NULL)) != NULL,
	    ML_ERR_NOMEM);
	ML_ENSURE(X509_CRL_set_version(crl, X509_CRL_VERSION_2) == 1 &&
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca->cert)) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE((t = X509_time_adj_ex(NULL, 0, -60, &now)) != NULL &&
	    X509_CRL_set1_lastUpdate(crl, t) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(X509_time_adj_ex(t, 0, valid_s, &now) != NULL &&
	    X509_CRL_set1_nextUpdate(crl, t) == 1, ML_ERR_CRYPTO);
	for (i = 0; i < n; i++) {
		ML_ENSURE((rv = X509_REVOKED_new()) != NULL, ML_ERR_NOMEM);
		ML_ENSURE((bn = BN_new()) != NULL &&
		    BN_set_word(bn, revoked[i]) == 1 &&
		    (ai = BN_to_ASN1_INTEGER(bn, NULL)) != NULL &&
		    X509_REVOKED_set_serialNumber(rv, ai) == 1 &&
		    X509_time_adj_ex(t, 0, -60, &now) != NULL &&
		    X509_REVOKED_set_revocationDate(rv, t) == 1 &&
		    X509_CRL_add0_revoked(crl, rv) == 1, ML_ERR_CRYPTO);
		rv = NULL;
		ASN1_INTEGER_free(ai);
		ai = NULL;
		BN_free(bn);
		bn = NULL;
	}
	ML_ENSURE(X509_CRL_sort(crl) == 1, ML_ERR_CRYPTO);
	X509V3_set_ctx(&v3, ca->cert, NULL, NULL, crl, 0);
	ML_ENSURE((e = X509V3_EXT_conf_nid(NULL, &v3,
	    NID_authority_key_identifier, "keyid:always")) != NULL,
	    ML_ERR_CRYPTO);
	len = X509_CRL_add_ext(crl, e, -1);
	X509_EXTENSION_free(e);
	ML_ENSURE(len == 1, ML_ERR_CRYPTO);
	ML_ENSURE((m = EVP_MD_CTX_new()) != NULL, ML_ERR_NOMEM);
	ML_ENSURE(EVP_DigestSignInit_ex(m, NULL, "SHA256", ml_ossl_ctx(), NULL,
	    ca->key, NULL) == 1 && X509_CRL_sign_ctx(crl, m) > 0, ML_ERR_CRYPTO);
	ML_ENSURE((len = i2d_X509_CRL(crl, &der)) > 0, ML_ERR_CRYPTO);
	ML_ENSURE((*ret_der = malloc((size_t)len)) != NULL, ML_ERR_NOMEM);
	memcpy(*ret_der, der, (size_t)len);
	*ret_len = (size_t)len;
	r = 0;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(m);
	X509_REVOKED_free(rv);
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

int
hs_ca_write_pem(const uint8_t *der, size_t len, bool crl, const char *path)
{
	const uint8_t *p = der;
	BIO *b = NULL;
	X509 *x = NULL;
	X509_CRL *c = NULL;
	int r = ML_ERR_INTERNAL;

	if ((b = BIO_new_file(path, "wb")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		goto out;
	}
	if (crl) {
		ML_ENSURE((c = d2i_X509_CRL(NULL, &p, (long)len)) != NULL,
		    ML_ERR_CRYPTO);
		ML_ENSURE(PEM_write_bio_X509_CRL(b, c) == 1, ML_ERR_IO);
	} else {
		ML_ENSURE((x = d2i_X509(NULL, &p, (long)len)) != NULL,
		    ML_ERR_CRYPTO);
		ML_ENSURE(PEM_write_bio_X509(b, x) == 1, ML_ERR_IO);
	}
	r = 0;
out:
	X509_free(x);
	X509_CRL_free(c);
	BIO_free(b);
	return r;
}

int
hs_ca_read_pub(const char *path, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	BIO *b = NULL;
	EVP_PKEY *pk = NULL;
	size_t n = 0;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_ossl_init());
	if ((b = BIO_new_file(path, "rb")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
		goto out;
	}
	if ((pk = PEM_read_bio_PUBKEY_ex(b, NULL, NULL, NULL, ml_ossl_ctx(),
	    NULL)) == NULL) {
		(void)BIO_reset(b);
		ERR_clear_error();
		pk = d2i_PUBKEY_bio(b, NULL);
	}
	if (pk == NULL || EVP_PKEY_get_octet_string_param(pk,
	    OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, ret_pub, ML_P256_PUB_LEN,
	    &n) != 1 || n != ML_P256_PUB_LEN) {
		r = ml_errf(ML_ERR_FORMAT, "%s: not a P-256 public key (PEM or "
		    "DER SubjectPublicKeyInfo)", path);
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_free(pk);
	BIO_free(b);
	ERR_clear_error();
	return r;
}
