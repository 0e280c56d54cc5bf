/*
 * mintline-server audit: the history of a note, a chip, a station or a
 * reader from the registry's audit trail (OP-5), as text or JSON lines,
 * and the check of its hash chain (--verify).
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

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
