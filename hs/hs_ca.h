/*
 * A small certification authority for the key ceremony (mintline-ca) and
 * for tests and benchmarks: a software P-256 root key (kept in a test-CA
 * directory, see man/mintline-ca.1) that signs reader, station and server
 * certificates for public keys generated elsewhere (reader secure chips,
 * the HSM), and CRLs.  Everything through OpenSSL's X509 API.
 */
#ifndef HS_CA_H
#define HS_CA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "ml_ossl.h"

struct hs_ca;

/* A new self-signed root ("CN=<cn>, O=mintline"), valid `days`. */
ML_MUST_CHECK int hs_ca_create(const char *cn, long days, struct hs_ca **ret_ca);
ML_MUST_CHECK int hs_ca_load(const char *key_pem, const char *cert_pem,
    struct hs_ca **ret_ca);
/* Write key (mode 0600) and cert as PEM. */
ML_MUST_CHECK int hs_ca_save(const struct hs_ca *ca, const char *key_pem,
    const char *cert_pem);
void	hs_ca_free(struct hs_ca *ca);

/* DER of the root certificate (malloc'd). */
ML_MUST_CHECK int hs_ca_root_der(const struct hs_ca *ca, uint8_t **ret_der,
    size_t *ret_len);

struct hs_ca_req {
	const uint8_t	*pub;		/* 65-byte P-256 point */
	const char	*role;		/* "reader", "station", "server" -> OU */
	const char	*serial;	/* device serial -> subject serialNumber;
					 * NULL for the server */
	const char	*cn;		/* NULL: role-serial */
	uint64_t	 certno;	/* X.509 serialNumber; unique per CA */
	long		 backdate_s;	/* notBefore = now - backdate_s */
	long		 valid_s;	/* notAfter = notBefore + valid_s */
	bool		 sign_only;	/* keyUsage digitalSignature only (tests) */
};

ML_MUST_CHECK int hs_ca_issue(const struct hs_ca *ca,
    const struct hs_ca_req *req, uint8_t **ret_der, size_t *ret_len);

/* A CRL revoking these certificate numbers, next update in valid_s. */
ML_MUST_CHECK int hs_ca_crl(const struct hs_ca *ca, const uint64_t *revoked,
    size_t n, long valid_s, uint8_t **ret_der, size_t *ret_len);

/* Write DER as PEM ("CERTIFICATE" or "X509 CRL"). */
ML_MUST_CHECK int hs_ca_write_pem(const uint8_t *der, size_t len, bool crl,
    const char *path);

/* Read an SPKI public key (PEM or DER file) as a 65-byte P-256 point. */
ML_MUST_CHECK int hs_ca_read_pub(const char *path,
    uint8_t ret_pub[ML_P256_PUB_LEN]);

#endif
