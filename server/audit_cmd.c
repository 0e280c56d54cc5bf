/*
 * mintline-server audit: the history of a note, a chip, a station or a
 * reader from the registry's audit trail (OP-5), as text or JSON lines,
 * and the check of its hash chain (--verify).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "ml_log.h"
#include "ml_parse.h"
#include "srv.h"

int
srv_audit_time(const char *s, int64_t *ret)
{
	struct tm tm;
	const char *end;
	int64_t v;

	/* unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC) */
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm)) != NULL &&
	    *end == '\0') {
		*ret = (int64_t)timegm(&tm);
		return 0;
	}
	memset(&tm, 0, sizeof(tm));
	if ((end = strptime(s, "%Y-%m-%d", &tm)) != NULL && *end == '\0') {
		*ret = (int64_t)timegm(&tm);
		return 0;
	}
	if (ml_parse_i64(s, "time", 0, INT64_MAX, &v) != 0) {
		return ml_errf(ML_ERR_ARG, "time %s: not unix seconds, "
		    "YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ", s);
	}
	*ret = v;
	return 0;
}

static void
iso_time(int64_t at, char buf[static 24])
{
	time_t t = (time_t)at;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, 24, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		snprintf(buf, 24, "%lld", (long long)at);
	}
}

static int
print_text(void *ctx, const struct reg_audit *a)
{
	char t[24];

	iso_time(a->at, t);
	fprintf(ctx, "%s #%lld %s by %s%s%s%s %s %s: %s%s%s\n", t,
	    (long long)a->id, a->action, a->actor[0] ? a->actor : "server",
	    a->actor_certno[0] ? " (certno " : "", a->actor_certno,
	    a->actor_certno[0] ? ")" : "",
	    a->subject_kind[0] ? a->subject_kind : "-",
	    a->subject[0] ? a->subject : "-", a->outcome[0] ? a->outcome : "-",
	    a->detail[0] ? ", " : "", a->detail);
	return 0;
}

static int
print_json(void *ctx, const struct reg_audit *a)
{
	const char *const name[] = {
		"action", "actor", "actor_certno", "subject_kind", "subject",
		"outcome", "detail",
	};
	const char *const val[] = {
		a->action, a->actor, a->actor_certno, a->subject_kind,
		a->subject, a->outcome, a->detail,
	};
	char q[sizeof(a->detail) * 6 + 8], t[24];
	size_t i;

	iso_time(a->at, t);
	fprintf(ctx, "{\"id\":%lld,\"at\":%lld,\"time\":\"%s\"",
	    (long long)a->id, (long long)a->at, t);
	for (i = 0; i < ML_NELEM(name); i++) {
		ml_log_quote(q, sizeof(q), val[i]);
		fprintf(ctx, ",\"%s\":\"%s\"", name[i], q);
	}
	fputs(",\"hash\":\"", ctx);
	for (i = 0; i < sizeof(a->hash); i++) {
		fprintf(ctx, "%02x", a->hash[i]);
	}
	fputs("\"}\n", ctx);
	return 0;
}

int
srv_audit_run(struct reg *reg, const struct reg_audit_filter *f, bool json,
    bool verify, FILE *out)
{
	uint64_t rows = 0;
	int64_t bad = 0;
	int r;

	if (verify) {
		if ((r = reg_audit_verify(reg, &rows, &bad)) != 0) {
			return r;
		}
		fprintf(out, "audit: %llu row(s), hash chain intact\n",
		    (unsigned long long)rows);
		return 0;
	}
	return reg_audit_list(reg, f, json ? print_json : print_text, out);
}

/* ---------------------------------------------------------------- revocations */

static int
revoke_seen(void *ctx, const struct reg_audit *row)
{
	(void)ctx;
	return strcmp(row->action, "revoke") == 0 ? 1 : 0;
}

/* One revoked entry: its audit row unless one names it already. */
static int
crl_entry_audit(struct reg *reg, const char *crl_path, X509_REVOKED *rv,
    unsigned *n)
{
	struct reg_audit_filter f;
	struct reg_audit a;
	const ASN1_TIME *when;
	struct tm tm;
	BIGNUM *bn = NULL;
	char *hex = NULL;
	const char *h;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE((bn = ASN1_INTEGER_to_BN(X509_REVOKED_get0_serialNumber(rv),
	    NULL)) != NULL && (hex = BN_bn2hex(bn)) != NULL, ML_ERR_NOMEM);
	/* the certificate number as the handshake names it (hs_trust.c):
	 * upper-case hex without leading zeros */
	for (h = hex; h[0] == '0' && h[1] != '\0'; h++) {
		;
	}
	memset(&a, 0, sizeof(a));
	if (strlen(h) > HS_MAX_CERTNO) {
		r = 0;		/* not one of ours: no peer can carry it */
		goto out;
	}
	memset(&f, 0, sizeof(f));
	f.subject_kind = "certificate";
	f.subject = h;
	if ((r = reg_audit_list(reg, &f, revoke_seen, NULL)) != 0) {
		r = r == 1 ? 0 : r;	/* 1: already in the trail */
		goto out;
	}
	snprintf(a.action, sizeof(a.action), "revoke");
	snprintf(a.actor, sizeof(a.actor), "server");
	snprintf(a.subject_kind, sizeof(a.subject_kind), "certificate");
	snprintf(a.subject, sizeof(a.subject), "%s", h);
	snprintf(a.outcome, sizeof(a.outcome), "revoked");
	when = X509_REVOKED_get0_revocationDate(rv);
	if (when != NULL && ASN1_TIME_to_tm(when, &tm) == 1) {
		snprintf(a.detail, sizeof(a.detail), "CRL %.180s, revoked "
		    "%04d-%02d-%02dT%02d:%02d:%02dZ", crl_path,
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
	} else {
		snprintf(a.detail, sizeof(a.detail), "CRL %.200s", crl_path);
	}
	if ((r = reg_audit_append(reg, &a)) == 0) {
		(*n)++;
	}
out:
	OPENSSL_free(hex);
	BN_free(bn);
	return r;
}

int
srv_audit_crl(struct reg *reg, const char *crl_path, unsigned *ret_new)
{
	STACK_OF(X509_REVOKED) *revs;
	X509_CRL *crl = NULL;
	BIO *b = NULL;
	int i, r = ML_ERR_INTERNAL;

	*ret_new = 0;
	if ((b = BIO_new_file(crl_path, "rb")) == NULL) {
		r = ml_errf_sys(ML_ERR_CERT, "%s", crl_path);
		goto out;
	}
	if ((crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL)) == NULL) {
		(void)BIO_reset(b);
		ERR_clear_error();
		if ((crl = d2i_X509_CRL_bio(b, NULL)) == NULL) {
			r = ml_errf(ML_ERR_CERT, "%s: not a PEM or DER CRL",
			    crl_path);
			goto out;
		}
	}
	revs = X509_CRL_get_REVOKED(crl);
	for (i = 0; i < sk_X509_REVOKED_num(revs); i++) {
		ML_TRY(crl_entry_audit(reg, crl_path,
		    sk_X509_REVOKED_value(revs, i), ret_new));
	}
	r = 0;
out:
	X509_CRL_free(crl);
	BIO_free(b);
	ERR_clear_error();
	return r;
}
