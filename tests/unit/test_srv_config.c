/*
 * Unit tests for server/config.c: mintline-server's configuration file.
 *
 * A vector table of files with the exact error code and
 * "FILE:LINE: KEY: reason" for each malformed one (and the options
 * untouched); valid files with the values they set; CLI-style overrides
 * through srv_config_set(); the value of a refused line never appears in
 * the message; --print-config's text (every key, secrets elided) read
 * back gives the same options; the settings that were environment
 * variables are keys now and the environment is not read.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <check.h>

#include "ml_log.h"
#include "srv.h"

#define ck_assert_r(expr, want)	do {					\
	int r_ = (expr);						\
	ck_assert_msg(r_ == (want), "%s = %s, want %s", #expr,		\
	    ml_errname(r_), ml_errname(want));				\
} while (0)

static const struct conf_vec {
	const char	*text;
	int		 want_r;
	const char	*want_err;	/* prefix */
	size_t		 len;		/* 0: strlen(text) */
} conf_vecs[] = {
	{ "", 0, NULL },
	{ "# only a comment\n\n   \n\t# indented\n", 0, NULL },
	{ "workers = 8\n", 0, NULL },
	{ "workers=8", 0, NULL },				/* no newline */
	{ "workers = 8\r\n", 0, NULL },				/* CRLF */
	{ "workers = 0\n", ML_ERR_ARG, "t.conf:1: workers: bad value" },
	{ "workers = 65\n", ML_ERR_ARG, "t.conf:1: workers: bad value" },
	{ "workers = +8\n", ML_ERR_ARG, "t.conf:1: workers: bad value" },
	{ "workers = 8x\n", ML_ERR_ARG, "t.conf:1: workers: bad value" },
	{ "workers =\n", ML_ERR_ARG, "t.conf:1: workers: bad value" },
	{ "\n\nworkers 8\n", ML_ERR_FORMAT, "t.conf:3: expected" },
	{ "= 8\n", ML_ERR_FORMAT, "t.conf:1: expected" },
	{ "Workers = 8\n", ML_ERR_FORMAT, "t.conf:1: expected" },
	{ "workers = 8\nnope = 1\n", ML_ERR_NOT_FOUND,
	  "t.conf:2: nope: unknown key" },
	{ "log-format = xml\n", ML_ERR_ARG, "t.conf:1: log-format: bad value" },
	{ "log-level = verbose\n", ML_ERR_ARG,
	  "t.conf:1: log-level: bad value" },
	{ "listen = a\0b\n", ML_ERR_FORMAT, "t.conf:1: NUL byte", 13 },
	{ "registry-pool = 0\n", ML_ERR_ARG,
	  "t.conf:1: registry-pool: bad value" },
	{ "registry-pool = 65\n", ML_ERR_ARG,
	  "t.conf:1: registry-pool: bad value" },
	{ "idread-max-rounds = 65\n", ML_ERR_ARG,
	  "t.conf:1: idread-max-rounds: bad value" },
	{ "idread-deadline = 0\n", ML_ERR_ARG,
	  "t.conf:1: idread-deadline: bad value" },
	{ "note-db = /var/lib/notes.db\n", ML_ERR_NOT_FOUND,
	  "t.conf:1: note-db: unknown key" },		/* one registry now */
};

START_TEST(conf_vectors)
{
	const struct conf_vec *v = &conf_vecs[_i];
	struct srv_opts o, before;
	char err[128] = "";
	size_t len = v->len != 0 ? v->len : strlen(v->text);

	srv_opts_default(&o);
	before = o;
	ck_assert_r(srv_config_parse((const uint8_t *)v->text, len, "t.conf",
	    &o, err,
	    sizeof(err)), v->want_r);
	if (v->want_r != 0) {
		ck_assert_msg(strncmp(err, v->want_err, strlen(v->want_err)) == 0,
		    "vector %d: \"%s\", want \"%s...\"", _i, err, v->want_err);
		ck_assert(memcmp(&o, &before, sizeof(o)) == 0);
	}
}
END_TEST

START_TEST(conf_values)
{
	static const char text[] =
	    "# comment\n"
	    "listen        = 0.0.0.0:7443   \n"
	    "key = pkcs11:token=a;object=b?pin-source=file:/x=y#z\n"
	    "workers = 2\n"
	    "max-unauth-per-addr = 3\n"
	    "log-format = json\n"
	    "log-level = debug\n"
	    "workers = 6\n";				/* the last one wins */
	struct srv_opts o;
	char err[128];

	srv_opts_default(&o);
	ck_assert_int_eq(o.workers, 4);
	ck_assert_int_eq(o.max_unauth_per_addr, 64);
	ck_assert_int_eq(o.log_level, -1);
	ck_assert_r(srv_config_parse((const uint8_t *)text, sizeof(text) - 1,
	    "t.conf", &o, err, sizeof(err)), 0);
	ck_assert_str_eq(o.listen, "0.0.0.0:7443");
	ck_assert_str_eq(o.key, "pkcs11:token=a;object=b?pin-source=file:/x=y#z");
	ck_assert_int_eq(o.workers, 6);
	ck_assert_int_eq(o.max_unauth_per_addr, 3);
	ck_assert_int_eq(o.log_format, ML_LOG_FMT_JSON);
	ck_assert_int_eq(o.log_level, ML_LOG_DEBUG);
	/* the command line over it */
	ck_assert_r(srv_config_set(&o, "workers", "3"), 0);
	ck_assert_int_eq(o.workers, 3);
	ck_assert_r(srv_config_set(&o, "workers", "x"), ML_ERR_ARG);
	ck_assert_r(srv_config_set(&o, "no-such", "1"), ML_ERR_NOT_FOUND);
	ck_assert(srv_config_reloadable("read-timeout"));
	ck_assert(!srv_config_reloadable("key"));
	ck_assert(srv_config_reloadable("note-issuers"));
}
END_TEST

START_TEST(conf_limits_and_secrecy)
{
	struct srv_opts o, before;
	char err[128], *buf;
	const char *text;
	size_t n = 5000;

	/* a line over 4096 bytes */
	ck_assert_ptr_nonnull(buf = malloc(n + 16));
	memcpy(buf, "ca = ", 5);
	memset(buf + 5, 'a', n);
	srv_opts_default(&o);
	before = o;
	ck_assert_r(srv_config_parse((uint8_t *)buf, n + 5, "t.conf", &o, err,
	    sizeof(err)), ML_ERR_TOO_LARGE);
	ck_assert_str_eq(err, "t.conf:1: line too long");
	ck_assert(memcmp(&o, &before, sizeof(o)) == 0);
	/* a value over its field: refused, not truncated */
	memcpy(buf, "listen = ", 9);
	memset(buf + 9, 'b', 200);
	ck_assert_r(srv_config_parse((uint8_t *)buf, 209, "t.conf", &o, err,
	    sizeof(err)), ML_ERR_TOO_LARGE);
	ck_assert_str_eq(err, "t.conf:1: listen: value too long");
	free(buf);
	/* the refused value is never echoed */
	text = "key pkcs11:token=a?pin-value=SECRET99\n";
	ck_assert_r(srv_config_parse((const uint8_t *)text, strlen(text),
	    "t.conf", &o, err, sizeof(err)), ML_ERR_FORMAT);
	ck_assert_ptr_null(strstr(err, "SECRET99"));
	text = "read-timeout = SECRET99\n";
	ck_assert_r(srv_config_parse((const uint8_t *)text, strlen(text),
	    "t.conf", &o, err, sizeof(err)), ML_ERR_ARG);
	ck_assert_ptr_null(strstr(err, "SECRET99"));
}
END_TEST

/* --print-config into a string. */
static char *
print_config(const struct srv_opts *o, size_t *ret_len)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f;

	ck_assert_ptr_nonnull(f = open_memstream(&text, &len));
	srv_config_print(o, f);
	ck_assert_int_eq(fclose(f), 0);
	*ret_len = len;
	return text;
}

/*
 * --print-config shows every key of the table once, with the effective
 * value; read back as a configuration file it gives the same options.
 */
START_TEST(conf_print_round_trip)
{
	static const char text[] =
	    "listen = 0.0.0.0:7443\n"
	    "registry = /var/lib/mintline/registry.db\n"
	    "registry-pool = 3\n"
	    "note-issuers = /etc/mintline/issuer.pem pkcs11:token=s;object=i\n"
	    "note-feature-key = /etc/mintline/feature.key\n"
	    "note-seal-key = pkcs11:token=s;object=seal?pin-source=file:/p\n"
	    "sam = emul:/etc/mintline/sam2.key\n"
	    "idread-deadline = 2500\n"
	    "idread-max-rounds = 3\n"
	    "log-format = kv\n";
	struct srv_opts o, back;
	char err[128], *out, *line;
	const char *k;
	size_t len, i;

	srv_opts_default(&o);
	ck_assert_r(srv_config_parse((const uint8_t *)text, sizeof(text) - 1,
	    "t.conf", &o, err, sizeof(err)), 0);
	ck_assert_int_eq(o.registry_pool, 3);
	ck_assert_str_eq(o.sam, "emul:/etc/mintline/sam2.key");
	ck_assert_int_eq(o.idread_deadline_ms, 2500);
	ck_assert_int_eq(o.idread_max_rounds, 3);
	out = print_config(&o, &len);
	for (i = 0; (k = srv_config_key(i)) != NULL; i++) {
		char want[96];

		snprintf(want, sizeof(want), "\n%s ", k);
		line = strstr(out, want + (i == 0));	/* the first: no \n */
		ck_assert_msg(line != NULL, "key %s not printed", k);
		ck_assert_msg(strstr(line + 1, want) == NULL,
		    "key %s printed twice", k);
	}
	ck_assert_ptr_nonnull(strstr(out, "note-issuers        = "
	    "/etc/mintline/issuer.pem pkcs11:token=s;object=i\n"));
	ck_assert_ptr_nonnull(strstr(out, "log-level           = warn\n"));
	srv_opts_default(&back);
	ck_assert_r(srv_config_parse((const uint8_t *)out, len, "printed",
	    &back, err, sizeof(err)), 0);
	back.log_level = o.log_level;	/* unset prints as its default */
	ck_assert(memcmp(&o, &back, sizeof(o)) == 0);
	free(out);
}
END_TEST

/* Secrets in values never reach --print-config. */
START_TEST(conf_print_elides_secrets)
{
	struct srv_opts o;
	char v[1100], *out;
	size_t len;

	srv_opts_default(&o);
	ck_assert_r(srv_config_set(&o, "key",
	    "pkcs11:token=a;object=b?pin-value=SECRET1&module-path=/m.so"), 0);
	ck_assert_r(srv_config_set(&o, "note-seal-key",
	    "pkcs11:token=a;object=s?pin-value=SECRET2"), 0);
	ck_assert_r(srv_config_set(&o, "registry",
	    "postgresql://ml:SECRET3@db.example/mintline?sslmode=require"), 0);
	ck_assert_r(srv_config_set(&o, "module",
	    "pg:host=/run/postgresql password=SECRET4 dbname=x"), 0);
	srv_config_value(&o, "key", v, sizeof(v));
	ck_assert_str_eq(v, "pkcs11:token=a;object=b?pin-value=(elided)"
	    "&module-path=/m.so");
	srv_config_value(&o, "registry", v, sizeof(v));
	ck_assert_str_eq(v, "postgresql://ml:(elided)@db.example/mintline"
	    "?sslmode=require");
	srv_config_value(&o, "module", v, sizeof(v));
	ck_assert_str_eq(v, "pg:host=/run/postgresql password=(elided) "
	    "dbname=x");
	/* a pin-source names where the PIN is: shown */
	ck_assert_r(srv_config_set(&o, "key",
	    "pkcs11:token=a?pin-source=file:/etc/mintline/pin"), 0);
	srv_config_value(&o, "key", v, sizeof(v));
	ck_assert_str_eq(v, "pkcs11:token=a?pin-source=file:/etc/mintline/pin");
	out = print_config(&o, &len);
	ck_assert_ptr_null(strstr(out, "SECRET"));
	ck_assert_ptr_nonnull(strstr(out, "pin-value=(elided)"));
	free(out);
}
END_TEST

/*
 * The six environment variables of older servers are configuration keys
 * now; set in the environment they change nothing.
 */
START_TEST(conf_env_not_read)
{
	static const char *const vars[] = {
		"MINTLINE_NOTE_DB", "MINTLINE_NOTE_ISSUERS",
		"MINTLINE_NOTE_FEATURE_KEY", "MINTLINE_NOTE_SEAL_KEY",
		"MINTLINE_SAM", "MINTLINE_REGISTRY_POOL",
		"MINTLINE_IDR_DEADLINE_MS", "MINTLINE_IDR_MAX_ROUNDS",
	};
	struct srv_opts a, b;
	size_t i;

	srv_opts_default(&a);
	for (i = 0; i < ML_NELEM(vars); i++) {
		ck_assert_int_eq(setenv(vars[i], "7", 1), 0);
	}
	srv_opts_default(&b);
	ck_assert(memcmp(&a, &b, sizeof(a)) == 0);
	ck_assert_str_eq(b.note_issuers, "");
	ck_assert_int_eq(b.registry_pool, 8);
	ck_assert_str_eq(b.sam, "emul:/etc/mintline/sam.key");
	ck_assert_r(srv_config_set(&b, "note-issuers", "/a.pem /b.pem"), 0);
	ck_assert_str_eq(b.note_issuers, "/a.pem /b.pem");
	for (i = 0; i < ML_NELEM(vars); i++) {
		unsetenv(vars[i]);
	}
}
END_TEST

/* SIGHUP takes the keys the table marks "reload" and names the others. */
START_TEST(conf_reload)
{
	struct srv_opts cur, next;
	char changed[256];

	srv_opts_default(&cur);
	ck_assert_r(srv_config_set(&cur, "listen", "0.0.0.0:7443"), 0);
	ck_assert_r(srv_config_set(&cur, "listen", "a:1"), 0);
	srv_opts_default(&next);
	ck_assert_r(srv_config_set(&next, "listen", "a:1"), 0);
	ck_assert_uint_eq(srv_config_reload(&cur, &next, changed,
	    sizeof(changed)), 0);			/* bytes after the NUL */
	ck_assert_str_eq(changed, "");
	ck_assert_r(srv_config_set(&next, "read-timeout", "777"), 0);
	ck_assert_r(srv_config_set(&next, "crl", "/new.crl"), 0);
	ck_assert_r(srv_config_set(&next, "note-issuers", "/other.pem"), 0);
	ck_assert_r(srv_config_set(&next, "note-seal-key", "pkcs11:object=s"), 0);
	ck_assert_r(srv_config_set(&next, "workers", "9"), 0);
	ck_assert_uint_eq(srv_config_reload(&cur, &next, changed,
	    sizeof(changed)), 2);
	ck_assert_str_eq(changed, "workers, note-seal-key");
	ck_assert_int_eq(cur.read_timeout_ms, 777);
	ck_assert_str_eq(cur.crl, "/new.crl");
	/* issuer keys reload (BN-4: retire and add without a restart) */
	ck_assert_str_eq(cur.note_issuers, "/other.pem");
	ck_assert_str_eq(cur.note_seal_key, "");	/* needs a restart */
	ck_assert_int_eq(cur.workers, 4);
}
END_TEST

static Suite *
conf_suite(void)
{
	Suite *s = suite_create("srv_config");
	TCase *tc = tcase_create("parse");

	tcase_add_loop_test(tc, conf_vectors, 0, ML_NELEM(conf_vecs));
	tcase_add_test(tc, conf_values);
	tcase_add_test(tc, conf_limits_and_secrecy);
	tcase_add_test(tc, conf_print_round_trip);
	tcase_add_test(tc, conf_print_elides_secrets);
	tcase_add_test(tc, conf_env_not_read);
	tcase_add_test(tc, conf_reload);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(conf_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
