/*
 * Unit tests for server/config.c: mintline-server's configuration file.
 *
 * A vector table of files with the exact error code and "line N: reason"
 * for each malformed one (and the options untouched); valid files with
 * the values they set; CLI-style overrides through srv_config_set(); and
 * the value of a refused line never appears in the message.
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
	{ "workers = 0\n", ML_ERR_ARG, "line 1: bad value" },
	{ "workers = 65\n", ML_ERR_ARG, "line 1: bad value" },
	{ "workers = +8\n", ML_ERR_ARG, "line 1: bad value" },
	{ "workers = 8x\n", ML_ERR_ARG, "line 1: bad value" },
	{ "workers =\n", ML_ERR_ARG, "line 1: bad value" },
	{ "\n\nworkers 8\n", ML_ERR_FORMAT, "line 3: expected" },
	{ "= 8\n", ML_ERR_FORMAT, "line 1: expected" },
	{ "Workers = 8\n", ML_ERR_FORMAT, "line 1: expected" },
	{ "workers = 8\nnope = 1\n", ML_ERR_NOT_FOUND, "line 2: unknown key" },
	{ "log-format = xml\n", ML_ERR_ARG, "line 1: bad value" },
	{ "log-level = verbose\n", ML_ERR_ARG, "line 1: bad value" },
	{ "listen = a\0b\n", ML_ERR_FORMAT, "line 1: NUL byte", 13 },
};

START_TEST(conf_vectors)
{
	const struct conf_vec *v = &conf_vecs[_i];
	struct srv_opts o, before;
	char err[128] = "";
	size_t len = v->len != 0 ? v->len : strlen(v->text);

	srv_opts_default(&o);
	before = o;
	ck_assert_r(srv_config_parse((const uint8_t *)v->text, len, &o, err,
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
	    &o, err, sizeof(err)), 0);
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
	ck_assert_r(srv_config_parse((uint8_t *)buf, n + 5, &o, err,
	    sizeof(err)), ML_ERR_TOO_LARGE);
	ck_assert_str_eq(err, "line 1: line too long");
	ck_assert(memcmp(&o, &before, sizeof(o)) == 0);
	/* a value over its field: refused, not truncated */
	memcpy(buf, "listen = ", 9);
	memset(buf + 9, 'b', 200);
	ck_assert_r(srv_config_parse((uint8_t *)buf, 209, &o, err,
	    sizeof(err)), ML_ERR_TOO_LARGE);
	ck_assert_str_eq(err, "line 1: value too long");
	free(buf);
	/* the refused value is never echoed */
	text = "key pkcs11:token=a?pin-value=SECRET99\n";
	ck_assert_r(srv_config_parse((const uint8_t *)text, strlen(text), &o,
	    err, sizeof(err)), ML_ERR_FORMAT);
	ck_assert_ptr_null(strstr(err, "SECRET99"));
	text = "read-timeout = SECRET99\n";
	ck_assert_r(srv_config_parse((const uint8_t *)text, strlen(text), &o,
	    err, sizeof(err)), ML_ERR_ARG);
	ck_assert_ptr_null(strstr(err, "SECRET99"));
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
