/*
 * The station's web pages (OP-1): the verification desk's page and the
 * line supervisor's page, served by libmicrohttpd from the station itself
 * (`verify --follow --ui ADDR`, `issue --follow --ui ADDR`).
 *
 * The pages (HTML, CSS, JavaScript in station/ui/) are compiled into the
 * program; the browser loads nothing from elsewhere.  The command
 * publishes events (one JSON object each); the page gets them by
 * Server-Sent Events on GET /events, every event of the run from the
 * start (the last UI_HTTP_EVENTS of them), so a page opened late or
 * reloaded shows the whole session.  The only request that changes
 * anything is POST /api/ACTION (the line's pause and resume) with the
 * per-start token the page gets in the stream's first event, in the
 * X-Mintline-Token header (a page of another origin can neither read the
 * token nor send that header without a CORS preflight, which is refused).
 *
 * Every answer carries a strict Content-Security-Policy (scripts, styles
 * and connections from the station only; no inline code), nosniff,
 * no-referrer and no-store.  The pages carry no secret: commands publish
 * serials, verdicts, counters and reasons, never a PIN, key or the
 * plaintext of an ID document.
 *
 * Address: loopback (127.0.0.0/8, ::1) is served over HTTP, and then only
 * to requests whose Host names the loopback address or localhost (no DNS
 * rebinding); any other address needs cert and key (PEM) and is served
 * over HTTPS (libmicrohttpd's TLS).
 */
#ifndef ST_UI_HTTP_H
#define ST_UI_HTTP_H

#include <stdarg.h>
#include <stddef.h>

#include "ml_err.h"

#define UI_HTTP_EVENTS	16384	/* events kept for late pages */
#define UI_HTTP_EVMAX	2048	/* bytes of one event (JSON) */

struct ui_http;

struct ui_http_cfg {
	const char	*listen;	/* "127.0.0.1:8080", "[::1]:0" */
	const char	*cert, *key;	/* PEM files, HTTPS; NULL: HTTP */
	const char	*page;		/* "desk" or "line": the page at "/" */
	/* POST /api/ACTION: 0 done, ML_ERR_ARG unknown action; NULL: none */
	int		(*control)(void *ctx, const char *action);
	void		*ctx;
};

/*
 * Start serving (own threads).  Prints "ui: http://ADDR:PORT/" on stderr.
 * Errors name the address and the cause (not loopback without a
 * certificate, address in use, cert file unreadable).
 */
ML_MUST_CHECK int ui_http_start(const struct ui_http_cfg *cfg,
    struct ui_http **ret);
/* The port served (the one picked for port 0). */
unsigned	 ui_http_port(const struct ui_http *ui);
/* Stop serving: open event streams end.  NULL-safe. */
void		 ui_http_stop(struct ui_http *ui);

/* Publish one event, a JSON object (printf format).  NULL-safe; the
 * caller escapes strings with ui_json_str(). */
void		 ui_http_publish(struct ui_http *ui, const char *fmt, ...)
		    __attribute__((format(printf, 2, 3)));

/*
 * s as a JSON string literal with its quotes ("null" for NULL), in buf
 * (cap bytes, truncated on a character boundary).  Bytes that are not
 * printable ASCII become \u00XX: strings from a chip are untrusted.
 */
const char	*ui_json_str(const char *s, char *buf, size_t cap);

/* Milliseconds since the epoch, for event times. */
long long	 ui_now_ms(void);

#endif
