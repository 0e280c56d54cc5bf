/*
 * Unit tests for the small common/ helpers every program uses: the error
 * context (ml_err.c), the number and server-address parsers (ml_parse.c),
 * the PIN reader and the fixed-size key-file reader (ml_secret.c).
 *
 * Each failure is checked for its exact code and for a context that names
 * the object (path, value) and the cause (errno text).
 */
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include <check.h>

#include "ml_err.h"
#include "ml_parse.h"
#include "ml_secret.h"
#include "mltest.h"

static char tmpdir[64];

static void
mk_tmp(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/ml-common-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void
rm_tmp(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Write `text` to tmpdir/name with `mode`; returns the path (static). */
static const char *
put_file(const char *name, const char *text, mode_t mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	(void)unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	ck_assert_int_eq(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

#define ck_ctx(r, needle) do {						\
	ck_assert_msg(ml_errctx_has(r), "no context for %s", ml_errname(r)); \
	ck_assert_msg(strstr(ml_errmsg(r), (needle)) != NULL,		\
	    "context \"%s\" lacks \"%s\"", ml_errmsg(r), (needle));	\
} while (0)

/* --- error context ------------------------------------------------ */

START_TEST(errctx_set_match_clear)
{
	errno = ENOENT;
	ck_assert_int_eq(ml_errf_sys(ML_ERR_IO, "%s", "/x/y.key"), ML_ERR_IO);
	ck_assert_str_eq(ml_errmsg(ML_ERR_IO),
	    "/x/y.key: No such file or directory");
	ck_assert_int_eq(errno, ENOENT);
	/* another code never gets this context */
	ck_assert_str_eq(ml_errmsg(ML_ERR_FORMAT), "malformed message");
	ck_assert_int_eq(ml_errpre(ML_ERR_IO, "issuer key %d", 1), ML_ERR_IO);
	ck_assert_str_eq(ml_errmsg(ML_ERR_IO),
	    "issuer key 1: /x/y.key: No such file or directory");
	ml_errclear();
	ck_assert_str_eq(ml_errmsg(ML_ERR_IO), "I/O error");
	/* a prefix with nothing recorded starts from the plain text */
	ck_assert_int_eq(ml_errpre(ML_ERR_PIN, "reader %s", "R0"), ML_ERR_PIN);
	ck_assert_str_eq(ml_errmsg(ML_ERR_PIN), "reader R0: PIN incorrect");
	ck_assert_int_eq(ml_errf(0, "ignored"), 0);
	ck_assert_str_eq(ml_errmsg(ML_ERR_PIN), "reader R0: PIN incorrect");
	ml_errclear();
}
END_TEST

START_TEST(errctx_mark)
{
	unsigned m;

	(void)ml_errf(ML_ERR_IO, "old");
	m = ml_errctx_mark();
	ck_assert(!ml_errctx_since(m, ML_ERR_IO));	/* left over */
	(void)ml_errf(ML_ERR_IO, "new");
	ck_assert(ml_errctx_since(m, ML_ERR_IO));
	ck_assert(!ml_errctx_since(m, ML_ERR_FORMAT));
	m = ml_errctx_mark();
	(void)ml_errpre(ML_ERR_IO, "pre");
	ck_assert(ml_errctx_since(m, ML_ERR_IO));
	ml_errclear();
	ck_assert(!ml_errctx_since(m, ML_ERR_IO));
}
END_TEST

START_TEST(errctx_recode)
{
	(void)ml_errf(ML_ERR_TIMEOUT, "server 10.0.0.1:7443: no answer");
	ck_assert_int_eq(ml_errrecode(ML_ERR_TIMEOUT, ML_ERR_IO), ML_ERR_IO);
	ck_assert_str_eq(ml_errmsg(ML_ERR_IO), "server 10.0.0.1:7443: no answer");
	ck_assert(!ml_errctx_has(ML_ERR_TIMEOUT));
	ml_errclear();
	ck_assert_int_eq(ml_errrecode(ML_ERR_AUTH, ML_ERR_IO), ML_ERR_IO);
	ck_assert_str_eq(ml_errmsg(ML_ERR_IO), "authentication failed");
	ml_errclear();
}
END_TEST

static void *
other_thread(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)ml_errctx_has(ML_ERR_IO);
}

START_TEST(errctx_per_thread)
{
	pthread_t t;
	void *res;

	(void)ml_errf(ML_ERR_IO, "here");
	ck_assert_int_eq(pthread_create(&t, NULL, other_thread, NULL), 0);
	ck_assert_int_eq(pthread_join(t, &res), 0);
	ck_assert_int_eq((intptr_t)res, 0);
	ck_assert(ml_errctx_has(ML_ERR_IO));
	ml_errclear();
}
END_TEST

START_TEST(errctx_long_truncates)
{
	char big[2 * ML_ERRCTX_MAX];

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	(void)ml_errf(ML_ERR_IO, "%s", big);
	ck_assert_uint_eq(strlen(ml_errmsg(ML_ERR_IO)), ML_ERRCTX_MAX - 1);
	(void)ml_errpre(ML_ERR_IO, "%s", big);
	ck_assert_uint_eq(strlen(ml_errmsg(ML_ERR_IO)), ML_ERRCTX_MAX - 1);
	ml_errclear();
}
END_TEST

/* --- numbers -------------------------------------------------------- */

static const struct num_vec {
	const char	*s;
	uint64_t	 min, max;
	int		 want_r;
	uint64_t	 want;
} num_vecs[] = {
	{ "0", 0, 10, 0, 0 },
	{ "10", 0, 10, 0, 10 },
	{ "11", 0, 10, ML_ERR_ARG, 0 },
	{ "0", 1, 10, ML_ERR_ARG, 0 },
	{ "", 0, 10, ML_ERR_ARG, 0 },
	{ " 1", 0, 10, ML_ERR_ARG, 0 },
	{ "+1", 0, 10, ML_ERR_ARG, 0 },
	{ "-1", 0, UINT64_MAX, ML_ERR_ARG, 0 },	/* strtoull says ULLONG_MAX */
	{ "1x", 0, 10, ML_ERR_ARG, 0 },
	{ "1 ", 0, 10, ML_ERR_ARG, 0 },
	{ "0x10", 0, 100, ML_ERR_ARG, 0 },
	{ "007", 0, 10, 0, 7 },
	{ "18446744073709551615", 0, UINT64_MAX, 0, UINT64_MAX },
	{ "18446744073709551616", 0, UINT64_MAX, ML_ERR_ARG, 0 },
	{ "99999999999999999999999", 0, UINT64_MAX, ML_ERR_ARG, 0 },
};

START_TEST(num_vectors)
{
	const struct num_vec *v = &num_vecs[_i];
	uint64_t got = 12345;

	ml_errclear();
	ck_assert_msg(ml_parse_u64(v->s, "--n", v->min, v->max, &got) ==
	    v->want_r, "'%s'", v->s);
	if (v->want_r == 0) {
		ck_assert_uint_eq(got, v->want);
	} else {
		ck_assert_uint_eq(got, 12345);		/* untouched */
		ck_ctx(v->want_r, "--n: '");
		ck_ctx(v->want_r, "is not a whole number from");
	}
}
END_TEST

START_TEST(num_narrow_and_signed)
{
	unsigned u = 9;
	size_t z = 9;
	int i = 9;
	int64_t l = 9;

	ck_assert_r(ml_parse_uint("4294967295", "x", 0, UINT_MAX, &u), 0);
	ck_assert_uint_eq(u, UINT_MAX);
	ck_assert_r(ml_parse_uint("4294967296", "x", 0, UINT_MAX, &u),
	    ML_ERR_ARG);
	ck_assert_uint_eq(u, UINT_MAX);
	ck_assert_r(ml_parse_size("64", "--workers", 1, 64, &z), 0);
	ck_assert_uint_eq(z, 64);
	ck_assert_r(ml_parse_size("65", "--workers", 1, 64, &z), ML_ERR_ARG);
	ck_ctx(ML_ERR_ARG, "--workers: '65' is not a whole number from 1 to 64");
	ck_assert_r(ml_parse_int("-30", "--days", -365, 365, &i), 0);
	ck_assert_int_eq(i, -30);
	ck_assert_r(ml_parse_int("-", "--days", -365, 365, &i), ML_ERR_ARG);
	ck_assert_r(ml_parse_int("--1", "--days", -365, 365, &i), ML_ERR_ARG);
	ck_assert_r(ml_parse_int("366", "--days", -365, 365, &i), ML_ERR_ARG);
	ck_assert_int_eq(i, -30);
	ck_assert_r(ml_parse_i64("-9223372036854775808", "x", INT64_MIN,
	    INT64_MAX, &l), 0);
	ck_assert(l == INT64_MIN);
	ck_assert_r(ml_parse_i64("9223372036854775808", "x", INT64_MIN,
	    INT64_MAX, &l), ML_ERR_ARG);
	ml_errclear();
}
END_TEST

/* --- server addresses ------------------------------------------------ */

static const struct hp_vec {
	const char	*s;
	int		 want_r;
	const char	*host, *port;
} hp_vecs[] = {
	{ "127.0.0.1:7443", 0, "127.0.0.1", "7443" },
	{ "localhost:1", 0, "localhost", "1" },
	{ "[::1]:7443", 0, "::1", "7443" },
	{ "[fe80::1%lo]:65535", 0, "fe80::1%lo", "65535" },
	{ "mint.example:007", 0, "mint.example", "7" },
	{ "::1:7443", ML_ERR_ARG, NULL, NULL },
	{ "[::1]7443", ML_ERR_ARG, NULL, NULL },
	{ "[::1:7443", ML_ERR_ARG, NULL, NULL },
	{ "[]:7443", ML_ERR_ARG, NULL, NULL },
	{ "a]:7443", ML_ERR_ARG, NULL, NULL },
	{ "host", ML_ERR_ARG, NULL, NULL },
	{ ":7443", ML_ERR_ARG, NULL, NULL },
	{ "host:", ML_ERR_ARG, NULL, NULL },
	{ "host:0", ML_ERR_ARG, NULL, NULL },
	{ "host:65536", ML_ERR_ARG, NULL, NULL },
	{ "host:http", ML_ERR_ARG, NULL, NULL },
	{ "averyveryverylonghostname.example:1", ML_ERR_TOO_LARGE, NULL, NULL },
};

START_TEST(hostport_vectors)
{
	const struct hp_vec *v = &hp_vecs[_i];
	char host[32] = "unset", port[ML_PORT_STRLEN] = "unset";

	ml_errclear();
	ck_assert_msg(ml_hostport_split(v->s, host, sizeof(host), port) ==
	    v->want_r, "'%s'", v->s);
	if (v->want_r == 0) {
		ck_assert_str_eq(host, v->host);
		ck_assert_str_eq(port, v->port);
	} else {
		ck_assert_str_eq(host, "unset");
		ck_assert_str_eq(port, "unset");
		ck_ctx(v->want_r, v->s);
	}
}
END_TEST

/* A listen address may ask for any free port (0); the rest as above. */
START_TEST(listen_split)
{
	char host[32], port[ML_PORT_STRLEN];

	ck_assert_r(ml_listen_split("127.0.0.1:0", host, sizeof(host), port),
	    0);
	ck_assert_str_eq(host, "127.0.0.1");
	ck_assert_str_eq(port, "0");
	ck_assert_r(ml_listen_split("[::1]:8080", host, sizeof(host), port),
	    0);
	ck_assert_str_eq(host, "::1");
	ck_assert_str_eq(port, "8080");
	ml_errclear();
	ck_assert_r(ml_listen_split("::1:0", host, sizeof(host), port),
	    ML_ERR_ARG);
	ck_ctx(ML_ERR_ARG, "listen address '::1:0'");
	ck_assert_r(ml_listen_split("host:65536", host, sizeof(host), port),
	    ML_ERR_ARG);
	ck_assert_r(ml_hostport_split("host:0", host, sizeof(host), port),
	    ML_ERR_ARG);
}
END_TEST

/* Every byte value: digits and both letter cases give their value, the
 * characters next to them in ASCII ('/', ':', '@', 'G', '`', 'g') -1. */
START_TEST(hexdigit_all_bytes)
{
	int c, want;

	for (c = -128; c < 128; c++) {
		want = c >= '0' && c <= '9' ? c - '0' :
		    c >= 'a' && c <= 'f' ? c - 'a' + 10 :
		    c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
		ck_assert_int_eq(ml_hexdigit((char)c), want);
	}
	ck_assert_int_eq(ml_hexdigit('F'), 15);
	ck_assert_int_eq(ml_hexdigit('g'), -1);
	ck_assert_int_eq(ml_hexdigit(':'), -1);
}
END_TEST

/* --- PIN reader ------------------------------------------------------ */

START_TEST(pin_sources)
{
	char pin[16];
	const char *p;
	char src[160];

	mk_tmp();
	p = put_file("pin", "123456\nsecond line\n", 0600);
	ck_assert_r(ml_pin_read(p, NULL, pin, sizeof(pin)), 0);
	ck_assert_str_eq(pin, "123456");
	snprintf(src, sizeof(src), "file:%s", p);
	ck_assert_r(ml_pin_read(src, NULL, pin, sizeof(pin)), 0);
	ck_assert_str_eq(pin, "123456");

	p = put_file("crlf", "4321\r\n", 0600);
	ck_assert_r(ml_pin_read(p, NULL, pin, sizeof(pin)), 0);
	ck_assert_str_eq(pin, "4321");
	p = put_file("nonl", "987", 0600);
	ck_assert_r(ml_pin_read(p, NULL, pin, sizeof(pin)), 0);
	ck_assert_str_eq(pin, "987");

	ck_assert_int_eq(setenv("ML_TEST_PIN", "2468", 1), 0);
	ck_assert_r(ml_pin_read("env:ML_TEST_PIN", NULL, pin, sizeof(pin)), 0);
	ck_assert_str_eq(pin, "2468");
	rm_tmp();
}
END_TEST

START_TEST(pin_failures)
{
	char pin[8];
	const char *p;

	mk_tmp();
	ck_assert_r(ml_pin_read("file:/nonexistent/pin", NULL, pin,
	    sizeof(pin)), ML_ERR_IO);
	ck_ctx(ML_ERR_IO, "pin-source /nonexistent/pin: No such file or "
	    "directory");
	ck_assert_r(ml_pin_read(tmpdir, NULL, pin, sizeof(pin)), ML_ERR_IO);
	ck_ctx(ML_ERR_IO, "Is a directory");

	p = put_file("empty", "", 0600);
	ck_assert_r(ml_pin_read(p, NULL, pin, sizeof(pin)), ML_ERR_FORMAT);
	ck_ctx(ML_ERR_FORMAT, "no PIN in the first line");
	p = put_file("blank", "\nsecret\n", 0600);
	ck_assert_r(ml_pin_read(p, NULL, pin, sizeof(pin)), ML_ERR_FORMAT);

	/* 8 characters do not fit in 8 bytes with the NUL; nor does a
	 * first line longer than any buffer */
	p = put_file("long", "12345678\n", 0600);
	memset(pin, 'x', sizeof(pin));
	ck_assert_r(ml_pin_read(p, NULL, pin, sizeof(pin)), ML_ERR_TOO_LARGE);
	ck_ctx(ML_ERR_TOO_LARGE, "longer than 7");
	ck_assert_msg(memchr(pin, 'x', sizeof(pin)) == NULL &&
	    memchr(pin, '1', sizeof(pin)) == NULL, "output not wiped");
	ck_assert_msg(strstr(ml_errmsg(ML_ERR_TOO_LARGE), "1234") == NULL,
	    "context echoes the PIN");

	ck_assert_int_eq(unsetenv("ML_TEST_NOPIN"), 0);
	ck_assert_r(ml_pin_read("env:ML_TEST_NOPIN", NULL, pin, sizeof(pin)),
	    ML_ERR_FORMAT);
	ck_ctx(ML_ERR_FORMAT, "env:ML_TEST_NOPIN");
	ck_assert_r(ml_pin_read(NULL, NULL, pin, sizeof(pin)), ML_ERR_ARG);
	ck_assert_r(ml_pin_read(p, NULL, pin, 1), ML_ERR_ARG);
	rm_tmp();
}
END_TEST

/* --- key files ------------------------------------------------------- */

#define HEX32 "000102030405060708090a0b0c0d0e0f" \
	      "101112131415161718191A1B1C1D1E1F"

START_TEST(keyfile_read_ok)
{
	uint8_t key[32];
	const char *p;
	size_t i;

	mk_tmp();
	p = put_file("k", HEX32 "\n", 0600);
	ck_assert_r(ml_keyfile_read(p, key, sizeof(key)), 0);
	for (i = 0; i < sizeof(key); i++) {
		ck_assert_uint_eq(key[i], i);
	}
	p = put_file("k2", HEX32 " \r\n\t", 0400);
	ck_assert_r(ml_keyfile_read(p, key, sizeof(key)), 0);
	rm_tmp();
}
END_TEST

START_TEST(keyfile_read_failures)
{
	uint8_t key[32], zero[32] = { 0 };
	const char *p;

	mk_tmp();
	memset(key, 0, sizeof(key));
	ck_assert_r(ml_keyfile_read("/nope.key", key, sizeof(key)), ML_ERR_IO);
	ck_ctx(ML_ERR_IO, "/nope.key: No such file or directory");
	p = put_file("open", HEX32 "\n", 0640);
	ck_assert_r(ml_keyfile_read(p, key, sizeof(key)), ML_ERR_PERM);
	ck_ctx(ML_ERR_PERM, "mode 0640");
	p = put_file("short", "0001\n", 0600);
	ck_assert_r(ml_keyfile_read(p, key, sizeof(key)), ML_ERR_FORMAT);
	ck_ctx(ML_ERR_FORMAT, "want 64 hex digits");
	p = put_file("long", HEX32 "00\n", 0600);
	ck_assert_r(ml_keyfile_read(p, key, sizeof(key)), ML_ERR_FORMAT);
	p = put_file("nothex", "g" HEX32 "\n", 0600);
	ck_assert_r(ml_keyfile_read(p, key, sizeof(key)), ML_ERR_FORMAT);
	p = put_file("huge", HEX32 HEX32 HEX32 "\n", 0600);
	ck_assert_r(ml_keyfile_read(p, key, sizeof(key)), ML_ERR_FORMAT);
	ck_assert_r(ml_keyfile_read(tmpdir, key, sizeof(key)), ML_ERR_FORMAT);
	ck_assert_mem_eq(key, zero, sizeof(key));	/* untouched */
	ck_assert_r(ml_keyfile_read(p, key, ML_KEYFILE_MAX + 1), ML_ERR_ARG);
	rm_tmp();
}
END_TEST

START_TEST(keyfile_create_roundtrip)
{
	uint8_t a[32], b[32];
	char path[128];
	struct stat st;

	mk_tmp();
	snprintf(path, sizeof(path), "%s/new.key", tmpdir);
	ck_assert_r(ml_keyfile_create(path, 32), 0);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_uint_eq(st.st_size, 65);
	ck_assert_r(ml_keyfile_read(path, a, sizeof(a)), 0);
	ck_assert_r(ml_keyfile_create(path, 32), ML_ERR_EXISTS);
	ck_ctx(ML_ERR_EXISTS, "File exists");
	ck_assert_r(ml_keyfile_read(path, b, sizeof(b)), 0);
	ck_assert_mem_eq(a, b, sizeof(a));		/* not replaced */
	snprintf(path, sizeof(path), "%s/no/such/dir.key", tmpdir);
	ck_assert_r(ml_keyfile_create(path, 32), ML_ERR_IO);
	ck_ctx(ML_ERR_IO, "No such file or directory");
	rm_tmp();
}
END_TEST

static Suite *
common_suite(void)
{
	Suite *s = suite_create("ml_common");
	TCase *tc;

	tc = tcase_create("errctx");
	tcase_add_test(tc, errctx_set_match_clear);
	tcase_add_test(tc, errctx_mark);
	tcase_add_test(tc, errctx_recode);
	tcase_add_test(tc, errctx_per_thread);
	tcase_add_test(tc, errctx_long_truncates);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_loop_test(tc, num_vectors, 0, ML_NELEM(num_vecs));
	tcase_add_test(tc, num_narrow_and_signed);
	tcase_add_loop_test(tc, hostport_vectors, 0, ML_NELEM(hp_vecs));
	tcase_add_test(tc, listen_split);
	tcase_add_test(tc, hexdigit_all_bytes);
	suite_add_tcase(s, tc);

	tc = tcase_create("secret");
	tcase_add_test(tc, pin_sources);
	tcase_add_test(tc, pin_failures);
	tcase_add_test(tc, keyfile_read_ok);
	tcase_add_test(tc, keyfile_read_failures);
	tcase_add_test(tc, keyfile_create_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(common_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
