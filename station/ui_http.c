/*
 * The station's web pages over libmicrohttpd (OP-1): the compiled-in
 * files of station/ui/, the event stream (Server-Sent Events) and the
 * token-guarded POST /api/ACTION.  ui_http.h has the contract.
 *
 * libmicrohttpd runs one thread per connection, so an event stream waits
 * for the next event on a condition variable inside its content reader;
 * the ring of events is the one shared state, under ui->mu.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_parse.h"
#include "ml_wipe.h"
#include "ui_assets.h"
#include "ui_http.h"

#define UI_TOKEN_LEN	16		/* random bytes; hex on the wire */
#define UI_KEEPALIVE_S	15		/* comment line on an idle stream */
#define UI_MAX_CONN	32
#define UI_PEM_MAX	(64 * 1024)

/* The policy of every answer: nothing but the station's own files. */
#define UI_CSP	"default-src 'none'; script-src 'self'; style-src 'self'; " \
		"img-src 'self'; connect-src 'self'; base-uri 'none'; " \
		"form-action 'none'; frame-ancestors 'none'"

struct ui_http {
	struct MHD_Daemon	*d;
	struct ui_http_cfg	 cfg;
	char			 page[16];
	char			 token[2 * UI_TOKEN_LEN + 1];
	bool			 loopback;
	char			 hosts[3][192];	/* Host values accepted */
	char			*pem_cert, *pem_key;
	size_t			 pem_key_len;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	char			*ev[UI_HTTP_EVENTS];
	unsigned long long	 nseq;		/* events published */
	bool			 closing;
	unsigned		 port;		/* bound */
};

/* One event stream (GET /events). */
struct sse {
	struct ui_http		*ui;
	unsigned long long	 next;		/* next event to send */
	bool			 hello;		/* first event sent */
};

long long
ui_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
ui_json_str(const char *s, char *buf, size_t cap)
{
	static const char hex[] = "0123456789abcdef";
	size_t n = 0;

	if (cap < 8) {
		if (cap > 0) {
			buf[0] = '\0';
		}
		return buf;
	}
	if (s == NULL) {
		snprintf(buf, cap, "null");
		return buf;
	}
	buf[n++] = '"';
	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;

		if (n + 7 >= cap) {	/* room for the longest escape + '"' */
			break;
		}
		if (c == '"' || c == '\\') {
			buf[n++] = '\\';
			buf[n++] = (char)c;
		} else if (c < 0x20 || c >= 0x7f) {
			buf[n++] = '\\';
			buf[n++] = 'u';
			buf[n++] = '0';
			buf[n++] = '0';
			buf[n++] = hex[c >> 4];
			buf[n++] = hex[c & 15];
		} else {
			buf[n++] = (char)c;
		}
	}
	buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

void
ui_http_publish(struct ui_http *ui, const char *fmt, ...)
{
	char buf[UI_HTTP_EVMAX], *e;
	va_list ap;
	int n;

	if (ui == NULL) {
		return;
	}
	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(buf) || memchr(buf, '\n', (size_t)n)) {
		ml_warn("ui: event dropped (%s)", n < 0 || (size_t)n >=
		    sizeof(buf) ? "too long" : "contains a newline");
		return;
	}
	if ((e = strdup(buf)) == NULL) {
		return;
	}
	pthread_mutex_lock(&ui->mu);
	free(ui->ev[ui->nseq % UI_HTTP_EVENTS]);
	ui->ev[ui->nseq % UI_HTTP_EVENTS] = e;
	ui->nseq++;
	pthread_cond_broadcast(&ui->cv);
	pthread_mutex_unlock(&ui->mu);
}

/* The headers every answer carries. */
static void
secure_headers(struct MHD_Response *resp, const char *type)
{
	(void)MHD_add_response_header(resp, "Content-Type", type);
	(void)MHD_add_response_header(resp, "Content-Security-Policy", UI_CSP);
	(void)MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
	(void)MHD_add_response_header(resp, "X-Frame-Options", "DENY");
	(void)MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
	(void)MHD_add_response_header(resp, "Cache-Control", "no-store");
	(void)MHD_add_response_header(resp, "Cross-Origin-Resource-Policy",
	    "same-origin");
}

static enum MHD_Result
answer(struct MHD_Connection *c, unsigned status, const char *type,
    const void *data, size_t len, bool copy)
{
	struct MHD_Response *resp;
	enum MHD_Result ret;

	resp = MHD_create_response_from_buffer(len, (void *)(uintptr_t)data,
	    copy ? MHD_RESPMEM_MUST_COPY : MHD_RESPMEM_PERSISTENT);
	if (resp == NULL) {
		return MHD_NO;
	}
	secure_headers(resp, type);
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
answer_text(struct MHD_Connection *c, unsigned status, const char *msg)
{
	return answer(c, status, "text/plain; charset=utf-8", msg, strlen(msg),
	    false);
}

/* The event stream's content: the hello, then every event, waiting for
 * the next one (keepalive comments while none comes). */
static ssize_t
sse_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct sse *s = cls;
	struct ui_http *ui = s->ui;
	struct timespec until;
	unsigned long long oldest;
	size_t n = 0;
	int w;

	(void)pos;
	if (!s->hello) {
		s->hello = true;
		w = snprintf(buf, max, "retry: 1000\ndata: {\"type\":\"hello\","
		    "\"page\":\"%s\",\"token\":\"%s\",\"t\":%lld}\n\n", ui->page,
		    ui->cfg.control != NULL ? ui->token : "", ui_now_ms());
		return w > 0 && (size_t)w < max ? w : MHD_CONTENT_READER_END_WITH_ERROR;
	}
	pthread_mutex_lock(&ui->mu);
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += UI_KEEPALIVE_S;
	while (!ui->closing && s->next >= ui->nseq) {
		if (pthread_cond_timedwait(&ui->cv, &ui->mu, &until) == ETIMEDOUT) {
			break;
		}
	}
	if (ui->closing) {
		pthread_mutex_unlock(&ui->mu);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	oldest = ui->nseq > UI_HTTP_EVENTS ? ui->nseq - UI_HTTP_EVENTS : 0;
	if (s->next < oldest) {
		s->next = oldest;
	}
	while (s->next < ui->nseq) {
		const char *e = ui->ev[s->next % UI_HTTP_EVENTS];

		w = snprintf(buf + n, max - n, "id: %llu\ndata: %s\n\n",
		    s->next + 1, e);
		if (w < 0 || (size_t)w >= max - n) {
			break;		/* the rest goes in the next block */
		}
		n += (size_t)w;
		s->next++;
	}
	pthread_mutex_unlock(&ui->mu);
	if (n == 0) {
		w = snprintf(buf, max, ": keepalive\n\n");
		n = w > 0 ? (size_t)w : 0;
	}
	return (ssize_t)n;
}

static enum MHD_Result
events(struct ui_http *ui, struct MHD_Connection *c)
{
	struct MHD_Response *resp;
	struct sse *s;
	const char *last;
	uint64_t id;
	enum MHD_Result ret;

	if ((s = calloc(1, sizeof(*s))) == NULL) {
		return MHD_NO;
	}
	s->ui = ui;
	/* a reconnecting page goes on after the last event it has */
	last = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Last-Event-ID");
	if (last != NULL && ml_parse_u64(last, "Last-Event-ID", 0, UINT64_MAX,
	    &id) == 0) {
		s->next = id;	/* malformed: the whole session again */
	}
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024,
	    sse_read, s, free);
	if (resp == NULL) {
		free(s);
		return MHD_NO;
	}
	secure_headers(resp, "text/event-stream; charset=utf-8");
	ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return ret;
}

/* Host must name the loopback address we serve (no DNS rebinding). */
static bool
host_ok(const struct ui_http *ui, struct MHD_Connection *c)
{
	const char *h;
	size_t i;

	if (!ui->loopback) {
		return true;
	}
	h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host");
	if (h == NULL) {
		return false;
	}
	for (i = 0; i < ML_NELEM(ui->hosts); i++) {
		if (ui->hosts[i][0] != '\0' && strcasecmp(h, ui->hosts[i]) == 0) {
			return true;
		}
	}
	return false;
}

static enum MHD_Result
control(struct ui_http *ui, struct MHD_Connection *c, const char *action)
{
	const char *tok;

	if (ui->cfg.control == NULL) {
		return answer_text(c, MHD_HTTP_NOT_FOUND, "no such action\n");
	}
	tok = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Mintline-Token");
	if (tok == NULL || strlen(tok) != strlen(ui->token) ||
	    !ml_ct_eq(tok, ui->token, strlen(ui->token))) {
		return answer_text(c, MHD_HTTP_FORBIDDEN, "missing or wrong "
		    "token (reload the page)\n");
	}
	if (ui->cfg.control(ui->cfg.ctx, action) != 0) {
		return answer_text(c, MHD_HTTP_NOT_FOUND, "no such action\n");
	}
	return answer(c, MHD_HTTP_OK, "application/json", "{\"ok\":true}\n",
	    12, false);
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload,
    size_t *upload_size, void **req)
{
	static int first;
	struct ui_http *ui = cls;
	const struct ui_asset *a;
	char name[64];

	(void)version;
	(void)upload;
	if (*req == NULL) {		/* headers only: wait for the body */
		*req = &first;
		return MHD_YES;
	}
	if (*upload_size != 0) {	/* no request body is used */
		*upload_size = 0;
		return MHD_YES;
	}
	if (!host_ok(ui, c)) {
		return answer_text(c, MHD_HTTP_MISDIRECTED_REQUEST, "wrong Host "
		    "for this station page\n");
	}
	if (strcmp(method, "POST") == 0) {
		if (strncmp(url, "/api/", 5) != 0 || strlen(url + 5) == 0 ||
		    strlen(url + 5) >= 32) {
			return answer_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
		}
		return control(ui, c, url + 5);
	}
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		return answer_text(c, MHD_HTTP_METHOD_NOT_ALLOWED,
		    "method not allowed\n");
	}
	if (strcmp(url, "/events") == 0) {
		return events(ui, c);
	}
	if (strcmp(url, "/") == 0) {
		snprintf(name, sizeof(name), "/%s.html", ui->page);
		url = name;
	}
	if ((a = ui_asset_find(url)) == NULL) {
		return answer_text(c, MHD_HTTP_NOT_FOUND, "not found\n");
	}
	return answer(c, MHD_HTTP_OK, a->type, a->data, a->len, false);
}

/* A whole PEM file into memory (the key is wiped at stop). */
static int
read_pem(const char *path, char **ret, size_t *ret_len)
{
	FILE *f;
	char *buf;
	size_t n;
	int r = 0;

	if ((f = fopen(path, "re")) == NULL) {
		return ml_errf_sys(ML_ERR_IO, "%s", path);
	}
	if ((buf = calloc(1, UI_PEM_MAX + 1)) == NULL) {
		fclose(f);
		return ML_ERR_NOMEM;
	}
	n = fread(buf, 1, UI_PEM_MAX + 1, f);
	if (ferror(f)) {
		r = ml_errf_sys(ML_ERR_IO, "%s", path);
	} else if (n > UI_PEM_MAX) {
		r = ml_errf(ML_ERR_TOO_LARGE, "%s: larger than %d bytes", path,
		    UI_PEM_MAX);
	} else if (strstr(buf, "-----BEGIN ") == NULL) {
		r = ml_errf(ML_ERR_FORMAT, "%s: not a PEM file", path);
	}
	fclose(f);
	if (r != 0) {
		ml_wipe(buf, UI_PEM_MAX + 1);
		free(buf);
		return r;
	}
	buf[n] = '\0';
	*ret = buf;
	*ret_len = n;
	return 0;
}

static void
ui_free(struct ui_http *ui)
{
	size_t i;

	for (i = 0; i < UI_HTTP_EVENTS; i++) {
		free(ui->ev[i]);
	}
	free(ui->pem_cert);
	if (ui->pem_key != NULL) {
		ml_wipe(ui->pem_key, ui->pem_key_len);
		free(ui->pem_key);
	}
	pthread_cond_destroy(&ui->cv);
	pthread_mutex_destroy(&ui->mu);
	free(ui);
}

int
ui_http_start(const struct ui_http_cfg *cfg, struct ui_http **ret)
{
	struct ui_http *ui;
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	const union MHD_DaemonInfo *info;
	char host[128], port[ML_PORT_STRLEN], show[160];
	unsigned flags = MHD_USE_THREAD_PER_CONNECTION |
	    MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG;
	unsigned short bound;
	unsigned pnum;
	bool v6, tls = cfg->cert != NULL || cfg->key != NULL;
	uint8_t tok[UI_TOKEN_LEN];
	size_t i, clen = 0;
	int r;

	/* port 0: any free port (printed) */
	if (ml_listen_split(cfg->listen, host, sizeof(host), port) != 0 ||
	    ml_parse_uint(port, NULL, 0, 65535, &pnum) != 0) {
		return ml_errf(ML_ERR_ARG, "--ui %s: give ADDRESS:PORT "
		    "(127.0.0.1:8080, [::1]:8080)", cfg->listen);
	}
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		v6 = false;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)pnum);
	} else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		v6 = true;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)pnum);
		flags |= MHD_USE_IPv6;
	} else {
		return ml_errf(ML_ERR_ARG, "--ui %s: %s is not a numeric IPv4 or "
		    "IPv6 address", cfg->listen, host);
	}
	if ((tls && (cfg->cert == NULL || cfg->key == NULL))) {
		return ml_errf(ML_ERR_ARG, "--ui %s: give both --ui-cert and "
		    "--ui-key", cfg->listen);
	}
	if ((ui = calloc(1, sizeof(*ui))) == NULL) {
		return ML_ERR_NOMEM;
	}
	pthread_mutex_init(&ui->mu, NULL);
	pthread_cond_init(&ui->cv, NULL);
	ui->cfg = *cfg;
	snprintf(ui->page, sizeof(ui->page), "%s", cfg->page);
	ui->loopback = v6 ? IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) :
	    (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
	if (!ui->loopback && !tls) {
		r = ml_errf(ML_ERR_ARG, "--ui %s: not a loopback address: the "
		    "page is served to the network only over HTTPS (give "
		    "--ui-cert FILE --ui-key FILE)", cfg->listen);
		goto fail;
	}
	if (tls && MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
		r = ml_errf(ML_ERR_UNSUPPORTED, "--ui %s: this libmicrohttpd "
		    "has no TLS: serve on a loopback address instead",
		    cfg->listen);
		goto fail;
	}
	if (tls) {
		if ((r = read_pem(cfg->cert, &ui->pem_cert, &clen)) != 0 ||
		    (r = read_pem(cfg->key, &ui->pem_key, &ui->pem_key_len)) != 0) {
			goto fail;
		}
		flags |= MHD_USE_TLS;
	}
	if ((r = ml_rand(tok, sizeof(tok))) != 0) {
		goto fail;
	}
	for (i = 0; i < sizeof(tok); i++) {
		snprintf(ui->token + 2 * i, 3, "%02x", tok[i]);
	}
	ml_wipe(tok, sizeof(tok));
	{
		struct MHD_OptionItem opt[] = {
			{ MHD_OPTION_SOCK_ADDR, 0, &ss },
			{ MHD_OPTION_CONNECTION_LIMIT, UI_MAX_CONN, NULL },
			{ MHD_OPTION_CONNECTION_TIMEOUT, 4 * UI_KEEPALIVE_S, NULL },
			{ MHD_OPTION_HTTPS_MEM_CERT, 0, ui->pem_cert },
			{ MHD_OPTION_HTTPS_MEM_KEY, 0, ui->pem_key },
			{ MHD_OPTION_END, 0, NULL },
		};

		if (!tls) {	/* HTTP: the list ends before the TLS options */
			opt[3].option = MHD_OPTION_END;
		}
		ui->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, ui,
		    MHD_OPTION_ARRAY, opt, MHD_OPTION_END);
	}
	if (ui->d == NULL) {
		r = ml_errf(ML_ERR_IO, "--ui %s: cannot serve there (address in "
		    "use or not on this host%s; libmicrohttpd's message above)",
		    cfg->listen, tls ? ", or certificate and key do not match" :
		    "");
		goto fail;
	}
	info = MHD_get_daemon_info(ui->d, MHD_DAEMON_INFO_BIND_PORT);
	bound = info != NULL ? info->port : (unsigned short)pnum;
	ui->port = bound;
	snprintf(show, sizeof(show), v6 ? "[%s]:%u" : "%s:%u", host, bound);
	snprintf(ui->hosts[0], sizeof(ui->hosts[0]), "%s", show);
	snprintf(ui->hosts[1], sizeof(ui->hosts[1]), "localhost:%u", bound);
	if (bound == 80 && !tls) {
		snprintf(ui->hosts[2], sizeof(ui->hosts[2]), v6 ? "[%s]" : "%s",
		    host);
	}
	fprintf(stderr, "ui: %s page at %s://%s/\n", ui->page, tls ? "https" :
	    "http", show);
	*ret = ui;
	return 0;
fail:
	ui_free(ui);
	return r;
}

unsigned
ui_http_port(const struct ui_http *ui)
{
	return ui->port;
}

void
ui_http_stop(struct ui_http *ui)
{
	if (ui == NULL) {
		return;
	}
	pthread_mutex_lock(&ui->mu);
	ui->closing = true;
	pthread_cond_broadcast(&ui->cv);
	pthread_mutex_unlock(&ui->mu);
	MHD_stop_daemon(ui->d);
	ui_free(ui);
}
