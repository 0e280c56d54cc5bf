#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ml_err.h"
#include "ml_log.h"

/* One slot per thread: the code it was recorded for, and the text. */
static __thread struct {
	int		 code;
	unsigned	 seq;		/* bumped by each recording */
	char		 msg[ML_ERRCTX_MAX];
} errctx;

const char *
ml_strerror(int r)
{
	switch (r) {
#define ML_ERR_CASE(name, value, text) case (value): return (text);
	ML_ERRORS(ML_ERR_CASE)
#undef ML_ERR_CASE
	}
	return "unknown error";
}

const char *
ml_errname(int r)
{
	switch (r) {
#define ML_ERR_CASE(name, value, text) case (value): return #name;
	ML_ERRORS(ML_ERR_CASE)
#undef ML_ERR_CASE
	}
	return "ML_ERR_?";
}

static void	errctx_set(const char *fn, int r, const char *suffix,
		    const char *fmt, va_list ap)
		    __attribute__((format(printf, 4, 0)));

static void
errctx_set(const char *fn, int r, const char *suffix, const char *fmt,
    va_list ap)
{
	size_t n;

	if (r == 0) {
		return;
	}
	(void)vsnprintf(errctx.msg, sizeof(errctx.msg), fmt, ap);
	n = strlen(errctx.msg);
	if (suffix != NULL && n < sizeof(errctx.msg)) {
		(void)snprintf(errctx.msg + n, sizeof(errctx.msg) - n, ": %s",
		    suffix);
	}
	errctx.code = r;
	errctx.seq++;
	ml_debug("%s: %s (%s)", fn, errctx.msg, ml_errname(r));
}

int
ml_errf_at(const char *fn, int r, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	errctx_set(fn, r, NULL, fmt, ap);
	va_end(ap);
	return r;
}

int
ml_errf_sys_at(const char *fn, int r, const char *fmt, ...)
{
	int saved = errno;
	char cause[128];
	const char *c;
	va_list ap;

	/* GNU strerror_r: returns a pointer, into cause or to a static text */
	c = strerror_r(saved, cause, sizeof(cause));
	va_start(ap, fmt);
	errctx_set(fn, r, c, fmt, ap);
	va_end(ap);
	errno = saved;
	return r;
}

int
ml_errpre(int r, const char *fmt, ...)
{
	char old[ML_ERRCTX_MAX];
	size_t n;
	va_list ap;

	if (r == 0) {
		return r;
	}
	(void)snprintf(old, sizeof(old), "%s", ml_errmsg(r));
	va_start(ap, fmt);
	(void)vsnprintf(errctx.msg, sizeof(errctx.msg), fmt, ap);
	va_end(ap);
	n = strlen(errctx.msg);
	if (n + 2 < sizeof(errctx.msg)) {
		memcpy(errctx.msg + n, ": ", 2);
		n += 2;
		/* when too long, the end of the old text is cut, not the prefix */
		old[sizeof(errctx.msg) - 1 - n] = '\0';
		memcpy(errctx.msg + n, old, strlen(old) + 1);
	}
	errctx.code = r;
	errctx.seq++;
	return r;
}

int
ml_errrecode(int r, int to)
{
	if (r == to || to == 0) {
		return to;
	}
	if (!ml_errctx_has(r)) {
		(void)snprintf(errctx.msg, sizeof(errctx.msg), "%s",
		    ml_strerror(r));
	}
	errctx.code = to;
	errctx.seq++;
	return to;
}

int
ml_errctx_has(int r)
{
	return r != 0 && errctx.code == r && errctx.msg[0] != '\0';
}

const char *
ml_errmsg(int r)
{
	return ml_errctx_has(r) ? errctx.msg : ml_strerror(r);
}

void
ml_errclear(void)
{
	errctx.code = 0;
	errctx.msg[0] = '\0';
}

unsigned
ml_errctx_mark(void)
{
	return errctx.seq;
}

int
ml_errctx_since(unsigned mark, int r)
{
	return ml_errctx_has(r) && errctx.seq != mark;
}
