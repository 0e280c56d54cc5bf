/*
 * mintline-server's configuration, its one channel: one file of
 * "key = value" lines (default /etc/mintline/server.conf;
 * man/mintline-server.8 and docs/operations.md list every key), the same
 * names as the long command line options, which override the file.  No
 * setting is read from the environment.  Everything has a default that
 * runs out of the box on one machine except the four paths a server
 * cannot guess (ca, cert, key, registry).  `mintline-server
 * --print-config` prints the effective configuration (srv_config_print).
 *
 * Syntax: '#' starts a comment line; blank lines are skipped; a key is
 * [a-z0-9-]+; the value is the rest of the line with surrounding blanks
 * removed (it may contain '=' and '#').  A line over CONF_MAX_LINE bytes,
 * a NUL byte, an unknown key or a bad value is an error naming the file,
 * the line and the key; the value itself is never echoed (it may be a key
 * URI).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_parse.h"
#include "idpkt.h"
#include "ml_rd.h"
#include "srv.h"

#define CONF_MAX_LINE	4096
#define CONF_MAX_FILE	(256 * 1024)

enum conf_kind { CK_STR, CK_INT, CK_ENUM };

static const char *const log_formats[] = { "text", "kv", "json", NULL };
static const char *const log_levels[] = { "error", "warn", "info", "debug",
	NULL };

static const struct conf_key {
	const char		*name;
	enum conf_kind		 kind;
	size_t			 off;
	size_t			 size;		/* CK_STR: field size */
	long			 min, max;	/* CK_INT */
	const char *const	*names;		/* CK_ENUM */
	bool			 reload;	/* SIGHUP applies it */
} conf_keys[] = {
#define S(n, f, rl) { n, CK_STR, offsetof(struct srv_opts, f), \
	sizeof(((struct srv_opts *)0)->f), 0, 0, NULL, rl }
#define I(n, f, lo, hi, rl) { n, CK_INT, offsetof(struct srv_opts, f), 0, \
	lo, hi, NULL, rl }
#define E(n, f, tab, rl) { n, CK_ENUM, offsetof(struct srv_opts, f), 0, 0, 0, \
	tab, rl }
	S("listen",		listen,		false),
	S("ca",			ca,		false),
	S("crl",		crl,		true),
	S("cert",		cert,		true),
	S("key",		key,		false),
	S("module",		module,		false),
	S("registry",		registry,	false),
	S("monitor",		monitor,	false),
	S("user",		user,		false),
	S("chroot",		chroot_dir,	false),
	S("metrics-listen",	metrics,	false),
	I("workers",		workers,	1, 64,		false),
	I("read-timeout",	read_timeout_ms, 10, 600000,	true),
	I("idle-timeout",	idle_timeout_ms, 10, 86400000,	true),
	I("max-conns",		max_conns,	1, 1000000,	true),
	I("max-unauth",		max_unauth,	1, 1000000,	true),
	I("max-unauth-per-addr", max_unauth_per_addr, 1, 1000000, true),
	I("r1-lifetime",	r1_lifetime_ms,	1, 600000,	true),
	I("stats-interval",	stats_interval_s, 0, 86400,	true),
	I("drain-timeout",	drain_timeout_ms, 0, 600000,	true),
	E("log-format",		log_format,	log_formats,	true),
	E("log-level",		log_level,	log_levels,	true),
	I("registry-pool",	registry_pool,	1, REG_PG_POOL_MAX, false),
	S("note-issuers",	note_issuers,	true),
	S("note-feature-key",	note_feature_key, true),
	S("note-seal-key",	note_seal_key,	false),
	S("sam",		sam,		false),
	I("idread-deadline",	idread_deadline_ms, 1, 600000,	true),
	I("idread-max-rounds",	idread_max_rounds, 1, 64,	true),
#undef S
#undef I
#undef E
};

void
srv_opts_default(struct srv_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->listen, sizeof(o->listen), "127.0.0.1:7443");
	snprintf(o->module, sizeof(o->module), "%s", SRV_DEFAULT_MODULE);
	o->workers = 4;
	o->read_timeout_ms = 5000;
	o->idle_timeout_ms = 300000;
	o->max_conns = 4096;
	o->max_unauth = 1024;
	o->max_unauth_per_addr = 64;
	o->r1_lifetime_ms = HS_R1_LIFETIME_MS;
	o->drain_timeout_ms = 10000;
	o->log_format = ML_LOG_FMT_TEXT;
	o->log_level = -1;		/* unset: ML_LOG_LEVEL, else warn */
	o->registry_pool = REG_PG_POOL_DEFAULT;
	snprintf(o->sam, sizeof(o->sam), "%s", SRV_DEFAULT_SAM);
	o->idread_deadline_ms = IDR_DEADLINE_MS;
	o->idread_max_rounds = IDR_MAX_ROUNDS;
}

static const struct conf_key *
key_find(const char *name, size_t n)
{
	size_t i;

	for (i = 0; i < ML_NELEM(conf_keys); i++) {
		if (strlen(conf_keys[i].name) == n &&
		    memcmp(conf_keys[i].name, name, n) == 0) {
			return &conf_keys[i];
		}
	}
	return NULL;
}

static int
set_value(const struct conf_key *k, struct srv_opts *o, const char *v,
    size_t n)
{
	char num[24];
	int *ip = (int *)(void *)((char *)o + k->off);
	size_t i;

	switch (k->kind) {
	case CK_STR:
		if (n >= k->size) {
			return ML_ERR_TOO_LARGE;
		}
		memcpy((char *)o + k->off, v, n);
		((char *)o + k->off)[n] = '\0';
		return 0;
	case CK_INT:
		if (n == 0 || n >= sizeof(num)) {
			return ML_ERR_ARG;
		}
		memcpy(num, v, n);
		num[n] = '\0';
		return ml_parse_int(num, k->name, (int)k->min, (int)k->max, ip);
	case CK_ENUM:
		for (i = 0; k->names[i] != NULL; i++) {
			if (strlen(k->names[i]) == n &&
			    memcmp(k->names[i], v, n) == 0) {
				*ip = (int)i;
				return 0;
			}
		}
		return ML_ERR_ARG;
	}
	return ML_ERR_INTERNAL;
}

int
srv_config_set(struct srv_opts *o, const char *key, const char *val)
{
	const struct conf_key *k = key_find(key, strlen(key));

	if (k == NULL) {
		return ML_ERR_NOT_FOUND;
	}
	return set_value(k, o, val, strlen(val));
}

const char *
srv_config_key(size_t i)
{
	return i < ML_NELEM(conf_keys) ? conf_keys[i].name : NULL;
}

bool
srv_config_reloadable(const char *key)
{
	const struct conf_key *k = key_find(key, strlen(key));

	return k != NULL && k->reload;
}

static bool
is_blank(uint8_t c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* One line (without its '\n'); *ret_key: the key named, if any. */
static int
parse_line(struct ml_rd *ln, struct srv_opts *o, const char **ret_why,
    const struct conf_key **ret_key, char ret_unknown[static 64])
{
	const uint8_t *p = ml_rd_ptr(ln);
	size_t n = ml_rd_left(ln), i = 0, ks, ke, vs, ve;
	const struct conf_key *k;
	int r;

	if (memchr(p, '\0', n) != NULL) {
		*ret_why = "NUL byte";
		return ML_ERR_FORMAT;
	}
	while (i < n && is_blank(p[i])) {
		i++;
	}
	if (i == n || p[i] == '#') {
		return 0;
	}
	ks = i;
	while (i < n && ((p[i] >= 'a' && p[i] <= 'z') ||
	    (p[i] >= '0' && p[i] <= '9') || p[i] == '-')) {
		i++;
	}
	ke = i;
	while (i < n && is_blank(p[i])) {
		i++;
	}
	if (ke == ks || i == n || p[i] != '=') {
		*ret_why = "expected \"key = value\"";
		return ML_ERR_FORMAT;
	}
	i++;
	while (i < n && is_blank(p[i])) {
		i++;
	}
	vs = i;
	ve = n;
	while (ve > vs && is_blank(p[ve - 1])) {
		ve--;
	}
	if ((k = key_find((const char *)p + ks, ke - ks)) == NULL) {
		/* [a-z0-9-] only: safe to print */
		snprintf(ret_unknown, 64, "%.*s", (int)(ke - ks),
		    (const char *)p + ks);
		*ret_why = "unknown key";
		return ML_ERR_NOT_FOUND;
	}
	*ret_key = k;
	if ((r = set_value(k, o, (const char *)p + vs, ve - vs)) != 0) {
		*ret_why = r == ML_ERR_TOO_LARGE ? "value too long" :
		    "bad value";
		return r;
	}
	return 0;
}

int
srv_config_parse(const uint8_t *buf, size_t len, const char *name,
    struct srv_opts *o, char *err, size_t errlen)
{
	struct ml_rd rd = ML_RD_INIT(buf, len), ln;
	struct srv_opts tmp = *o;
	const struct conf_key *k = NULL;
	const uint8_t *p, *nl;
	const char *why = NULL;
	char unknown[64] = "";
	unsigned lineno = 0;
	size_t n;
	int r = ML_ERR_INTERNAL;

	if (len > CONF_MAX_FILE) {
		snprintf(err, errlen, "%s: file over %u bytes", name,
		    CONF_MAX_FILE);
		return ML_ERR_TOO_LARGE;
	}
	while (ml_rd_left(&rd) > 0) {
		lineno++;
		p = ml_rd_ptr(&rd);
		nl = memchr(p, '\n', ml_rd_left(&rd));
		n = nl != NULL ? (size_t)(nl - p) : ml_rd_left(&rd);
		if (n > CONF_MAX_LINE) {
			why = "line too long";
			r = ML_ERR_TOO_LARGE;
			goto out;
		}
		ML_TRY(ml_rd_sub(&rd, n, &ln));
		if (nl != NULL) {
			ML_TRY(ml_rd_bytes(&rd, 1, NULL));
		}
		k = NULL;
		if ((r = parse_line(&ln, &tmp, &why, &k, unknown)) != 0) {
			goto out;
		}
	}
	*o = tmp;
	r = 0;
out:
	if (r != 0) {
		snprintf(err, errlen, "%s:%u: %s%s%s", name, lineno,
		    k != NULL ? k->name : unknown,
		    k != NULL || unknown[0] != '\0' ? ": " : "",
		    why != NULL ? why : ml_strerror(r));
	}
	return r;
}

int
srv_config_load(const char *path, bool must_exist, struct srv_opts *o,
    char *err, size_t errlen)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	ssize_t k;
	char why[PATH_MAX + 160];
	int fd, r = ML_ERR_INTERNAL;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		if (errno == ENOENT && !must_exist) {
			return 0;
		}
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ML_ERR_IO;
	}
	ML_ENSURE((buf = malloc(CONF_MAX_FILE + 1)) != NULL, ML_ERR_NOMEM);
	while (len <= CONF_MAX_FILE) {
		k = read(fd, buf + len, CONF_MAX_FILE + 1 - len);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k < 0) {
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
			r = ML_ERR_IO;
			goto out;
		}
		if (k == 0) {
			break;
		}
		len += (size_t)k;
	}
	if ((r = srv_config_parse(buf, len, path, o, why, sizeof(why))) != 0) {
		snprintf(err, errlen, "%s", why);
	}
out:
	close(fd);
	free(buf);
	return r;
}

/*
 * Copy v into buf with the secrets it may carry replaced by "(elided)":
 * the value of every "pin-value=" and "password=" parameter (pkcs11: URI
 * query, libpq conninfo or URI query) up to the next '&', ';' or blank,
 * and the password of a URI's "user:password@".
 */
static void
elide(const char *v, char *buf, size_t len)
{
	static const char *const params[] = { "pin-value=", "password=" };
	static const char mark[] = "(elided)";
	const char *at, *colon, *slash;
	size_t o = 0, i, n;

	if (len == 0) {
		return;
	}
	while (*v != '\0' && o + 1 < len) {
		for (i = 0; i < ML_NELEM(params); i++) {
			n = strlen(params[i]);
			if (strncmp(v, params[i], n) == 0) {
				break;
			}
		}
		if (i < ML_NELEM(params)) {
			o += (size_t)snprintf(buf + o, len - o, "%s%s",
			    params[i], mark);
			v += n;
			v += strcspn(v, "&; \t");
			continue;
		}
		/* scheme://user:password@host */
		if (strncmp(v, "://", 3) == 0 &&
		    (at = strchr(v + 3, '@')) != NULL &&
		    (colon = memchr(v + 3, ':', (size_t)(at - v - 3))) != NULL &&
		    ((slash = strchr(v + 3, '/')) == NULL || slash > at)) {
			o += (size_t)snprintf(buf + o, len - o, "%.*s%s",
			    (int)(colon + 1 - v), v, mark);
			v = at;
			continue;
		}
		buf[o++] = *v++;
	}
	buf[o < len ? o : len - 1] = '\0';
}

void
srv_config_value(const struct srv_opts *o, const char *key, char *buf,
    size_t len)
{
	const struct conf_key *k = key_find(key, strlen(key));
	const int *ip;
	char tmp[32];

	if (len == 0) {
		return;
	}
	buf[0] = '\0';
	if (k == NULL) {
		return;
	}
	ip = (const int *)(const void *)((const char *)o + k->off);
	switch (k->kind) {
	case CK_STR:
		elide((const char *)o + k->off, buf, len);
		break;
	case CK_INT:
		snprintf(tmp, sizeof(tmp), "%d", *ip);
		snprintf(buf, len, "%s", tmp);
		break;
	case CK_ENUM:
		/* log-level unset (-1): the default, warn */
		snprintf(buf, len, "%s", *ip >= 0 ? k->names[*ip] :
		    k->names[ML_LOG_WARN]);
		break;
	}
}

void
srv_config_print(const struct srv_opts *o, FILE *f)
{
	char v[CONF_MAX_LINE + 1];
	size_t i;

	for (i = 0; i < ML_NELEM(conf_keys); i++) {
		srv_config_value(o, conf_keys[i].name, v, sizeof(v));
		fprintf(f, "%-19s = %s\n", conf_keys[i].name, v);
	}
}

size_t
srv_config_reload(struct srv_opts *cur, const struct srv_opts *next,
    char *changed, size_t len)
{
	const struct conf_key *k;
	size_t i, n = 0, o = 0, sz;

	if (len > 0) {
		changed[0] = '\0';
	}
	for (i = 0; i < ML_NELEM(conf_keys); i++) {
		k = &conf_keys[i];
		sz = k->kind == CK_STR ? k->size : sizeof(int);
		if (k->kind == CK_STR ? strcmp((const char *)cur + k->off,
		    (const char *)next + k->off) == 0 :
		    memcmp((const char *)cur + k->off,
		    (const char *)next + k->off, sz) == 0) {
			continue;
		}
		if (k->reload) {
			memcpy((char *)cur + k->off, (const char *)next + k->off,
			    sz);
			continue;
		}
		n++;
		if (o < len) {
			o += (size_t)snprintf(changed + o, len - o, "%s%s",
			    o > 0 ? ", " : "", k->name);
		}
	}
	return n;
}
