/*
 * The station's pages server (station/ui_http.c, OP-1): JSON strings made
 * from untrusted chip bytes, and the server's answers over a real socket —
 * the compiled-in files with their policy headers, the Host check, the
 * event stream (hello with the token, published events, a malformed
 * Last-Event-ID), the token-guarded POST, and the addresses it refuses.
 */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "ml_err.h"
#include "ui_http.h"

static const struct json_vec {
	const char	*in;
	size_t		 cap;
	const char	*want;
} json_vecs[] = {
	{ "NOTE0001", 64, "\"NOTE0001\"" },
	{ "a\"b\\c", 64, "\"a\\\"b\\\\c\"" },
	{ "x\ny\x01", 64, "\"x\\u000ay\\u0001\"" },
	{ "\xff\x80<", 64, "\"\\u00ff\\u0080<\"" },	/* not UTF-8: escaped */
	{ NULL, 64, "null" },
	{ "", 64, "\"\"" },
	{ "abcdefghij", 10, "\"ab\"" },		/* truncated, still closed */
	{ "\x01\x01\x01", 16, "\"\\u0001\\u0001\"" },	/* never half an escape */
	{ "abc", 4, "" },			/* no room for anything */
};

START_TEST(json_strings)
{
	const struct json_vec *v = &json_vecs[_i];
	char buf[64];

	ck_assert_str_eq(ui_json_str(v->in, buf, v->cap), v->want);
	ck_assert_uint_lt(strlen(buf), v->cap);
}
END_TEST

/* ---- the server over a socket ---- */

static int controls;
static char last_action[32];

static int
control(void *ctx, const char *action)
{
	(void)ctx;
	snprintf(last_action, sizeof(last_action), "%s", action);
	if (strcmp(action, "pause") != 0) {
		return ML_ERR_ARG;
	}
	controls++;
	return 0;
}

/* One request; the answer (up to cap - 1 bytes, or until the server
 * stops sending for 700 ms: an event stream never ends). */
static size_t
request(unsigned port, const char *req, char *out, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
	    .sin_port = htons((unsigned short)port) };
	struct timeval tv = { .tv_sec = 0, .tv_usec = 700 * 1000 };
	size_t n = 0;
	ssize_t k;
	int fd;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	while (n < cap - 1 && (k = read(fd, out + n, cap - 1 - n)) > 0) {
		n += (size_t)k;
	}
	out[n] = '\0';
	close(fd);
	return n;
}

static struct ui_http *
start(const char *page, int (*ctl)(void *, const char *))
{
	struct ui_http_cfg cfg = { .listen = "127.0.0.1:0", .page = page,
	    .control = ctl };
	struct ui_http *ui = NULL;

	ck_assert_int_eq(ui_http_start(&cfg, &ui), 0);
	ck_assert_ptr_nonnull(ui);
	ck_assert_uint_gt(ui_http_port(ui), 0);
	return ui;
}

START_TEST(serves_pages_with_policy)
{
	struct ui_http *ui = start("desk", NULL);
	char req[256], out[16384];
	unsigned port = ui_http_port(ui);

	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
	    "Connection: close\r\n\r\n", port);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%.40s", out);
	ck_assert_ptr_nonnull(strstr(out, "Content-Security-Policy: "
	    "default-src 'none'; script-src 'self'"));
	ck_assert_ptr_nonnull(strstr(out, "X-Content-Type-Options: nosniff"));
	ck_assert_ptr_nonnull(strstr(out, "<title>Verification desk"));
	ck_assert_ptr_null(strstr(out, "unsafe-inline"));

	snprintf(req, sizeof(req), "GET /desk.js HTTP/1.1\r\nHost: localhost:%u"
	    "\r\nConnection: close\r\n\r\n", port);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%.40s", out);
	ck_assert_ptr_nonnull(strstr(out, "Content-Type: text/javascript"));

	/* another Host (DNS rebinding), a file that is not there, a method */
	snprintf(req, sizeof(req), "GET / HTTP/1.1\r\nHost: evil.example:%u\r\n"
	    "Connection: close\r\n\r\n", port);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 421", 12) == 0, "%.40s", out);
	snprintf(req, sizeof(req), "GET /../../etc/passwd HTTP/1.1\r\nHost: "
	    "127.0.0.1:%u\r\nConnection: close\r\n\r\n", port);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 404", 12) == 0, "%.40s", out);
	snprintf(req, sizeof(req), "DELETE / HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
	    "Connection: close\r\n\r\n", port);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 405", 12) == 0, "%.40s", out);
	/* the desk has no action */
	snprintf(req, sizeof(req), "POST /api/pause HTTP/1.1\r\nHost: "
	    "127.0.0.1:%u\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	    port);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 404", 12) == 0, "%.40s", out);
	ui_http_stop(ui);
}
END_TEST

START_TEST(event_stream_and_token)
{
	struct ui_http *ui = start("line", control);
	char req[512], out[16384], tok[33] = "", *p;
	unsigned port = ui_http_port(ui);

	ui_http_publish(ui, "{\"type\":\"config\",\"n\":%d}", 1);
	ui_http_publish(ui, "{\"type\":\"x\",\"s\":%s}", "\"a\nb\"");	/* dropped */
	ui_http_publish(ui, "{\"type\":\"stats\",\"n\":%d}", 2);
	snprintf(req, sizeof(req), "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
	    "Last-Event-ID: 1x\r\n\r\n", port);	/* malformed: from the start */
	request(port, req, out, sizeof(out));
	ck_assert_ptr_nonnull(strstr(out, "Content-Type: text/event-stream"));
	ck_assert_ptr_nonnull(p = strstr(out, "\"token\":\""));
	memcpy(tok, p + 9, 32);
	ck_assert_uint_eq(strspn(tok, "0123456789abcdef"), 32);
	ck_assert_ptr_nonnull(strstr(out, "id: 1\ndata: {\"type\":\"config\",\"n\":1}"));
	ck_assert_ptr_nonnull(strstr(out, "id: 2\ndata: {\"type\":\"stats\",\"n\":2}"));
	ck_assert_ptr_null(strstr(out, "\"type\":\"x\""));
	/* a reconnecting page goes on after its last event */
	snprintf(req, sizeof(req), "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%u\r\n"
	    "Last-Event-ID: 1\r\n\r\n", port);
	request(port, req, out, sizeof(out));
	ck_assert_ptr_null(strstr(out, "\"type\":\"config\""));
	ck_assert_ptr_nonnull(strstr(out, "id: 2\ndata: {\"type\":\"stats\""));

	/* POST: no token, a wrong one, the right one, an unknown action */
	snprintf(req, sizeof(req), "POST /api/pause HTTP/1.1\r\nHost: "
	    "127.0.0.1:%u\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
	    port);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 403", 12) == 0, "%.40s", out);
	snprintf(req, sizeof(req), "POST /api/pause HTTP/1.1\r\nHost: "
	    "127.0.0.1:%u\r\nX-Mintline-Token: %032d\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n", port, 0);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 403", 12) == 0, "%.40s", out);
	ck_assert_int_eq(controls, 0);
	snprintf(req, sizeof(req), "POST /api/pause HTTP/1.1\r\nHost: "
	    "127.0.0.1:%u\r\nX-Mintline-Token: %s\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n", port, tok);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 200", 12) == 0, "%.40s", out);
	ck_assert_int_eq(controls, 1);
	snprintf(req, sizeof(req), "POST /api/explode HTTP/1.1\r\nHost: "
	    "127.0.0.1:%u\r\nX-Mintline-Token: %s\r\nContent-Length: 0\r\n"
	    "Connection: close\r\n\r\n", port, tok);
	request(port, req, out, sizeof(out));
	ck_assert_msg(strncmp(out, "HTTP/1.1 404", 12) == 0, "%.40s", out);
	ck_assert_str_eq(last_action, "explode");
	ck_assert_int_eq(controls, 1);
	ui_http_stop(ui);
}
END_TEST

START_TEST(refused_addresses)
{
	static const char *const bad[] = {
		"192.0.2.1:8080",	/* not loopback, no certificate */
		"localhost:8080",	/* not numeric */
		"127.0.0.1",		/* no port */
		"127.0.0.1:99999",
	};
	struct ui_http_cfg cfg = { .page = "desk" };
	struct ui_http *ui = NULL;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		cfg.listen = bad[i];
		ck_assert_msg(ui_http_start(&cfg, &ui) == ML_ERR_ARG, "%s", bad[i]);
		ck_assert_ptr_null(ui);
	}
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_ARG), "127.0.0.1:99999"));
	cfg.listen = "192.0.2.1:8080";
	ck_assert_int_eq(ui_http_start(&cfg, &ui), ML_ERR_ARG);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_ARG), "--ui-cert"));
	cfg.listen = "127.0.0.1:0";
	cfg.cert = "/nonexistent/cert.pem";
	cfg.key = "/nonexistent/key.pem";
	ck_assert_int_eq(ui_http_start(&cfg, &ui), ML_ERR_IO);
	ck_assert_ptr_nonnull(strstr(ml_errmsg(ML_ERR_IO),
	    "/nonexistent/cert.pem: No such file"));
	ck_assert_ptr_null(ui);
}
END_TEST

static Suite *
ui_suite(void)
{
	Suite *s = suite_create("ui_http");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_loop_test(tc, json_strings, 0,
	    sizeof(json_vecs) / sizeof(json_vecs[0]));
	tcase_add_test(tc, serves_pages_with_policy);
	tcase_add_test(tc, event_stream_and_token);
	tcase_add_test(tc, refused_addresses);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ui_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}
