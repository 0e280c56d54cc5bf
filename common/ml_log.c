#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/time.h>
#include <time.h>

#include "ml_log.h"

static int log_level = -1;
static const char *log_ident = "mintline";
static enum ml_log_format log_format = ML_LOG_FMT_TEXT;
static FILE *log_out;		/* NULL: stderr */
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void
log_init(void)
{
	const char *s = secure_getenv("ML_LOG_LEVEL");
	const char *f = secure_getenv("ML_LOG_FORMAT");

	if (f != NULL && strcmp(f, "kv") == 0) {
		log_format = ML_LOG_FMT_KV;
	} else if (f != NULL && strcmp(f, "json") == 0) {
		log_format = ML_LOG_FMT_JSON;
	}
	if (log_level >= 0) {
		return;
	}
	log_level = ML_LOG_WARN;
	if (s == NULL) {
		return;
	}
	if (strcmp(s, "error") == 0) {
		log_level = ML_LOG_ERROR;
	} else if (strcmp(s, "info") == 0) {
		log_level = ML_LOG_INFO;
	} else if (strcmp(s, "debug") == 0) {
		log_level = ML_LOG_DEBUG;
	}
}

void
ml_log_set_level(enum ml_log_level lvl)
{
	pthread_once(&log_once, log_init);
	log_level = lvl;
}

void
ml_log_set_output(FILE *f)
{
	log_out = f;
}

void
ml_log_set_ident(const char *ident)
{
	log_ident = ident;
}

int
ml_log_enabled(enum ml_log_level lvl)
{
	pthread_once(&log_once, log_init);
	return (int)lvl <= log_level;
}

void
ml_log_set_format(enum ml_log_format fmt)
{
	pthread_once(&log_once, log_init);
	log_format = fmt;
}

void
ml_log_quote(char *dst, size_t cap, const char *src)
{
	size_t o = 0;

	for (; *src != '\0' && o + 7 < cap; src++) {
		unsigned char ch = (unsigned char)*src;

		if (ch == '"' || ch == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)ch;
		} else if (ch < 0x20 || ch == 0x7f) {
			o += (size_t)snprintf(dst + o, cap - o, "\\u%04x", ch);
		} else {
			dst[o++] = (char)ch;
		}
	}
	dst[o] = '\0';
}

void
ml_log(enum ml_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char line[1024], q[2048], ts[80];
	FILE *out = log_out != NULL ? log_out : stderr;
	struct timeval tv;
	struct tm tm;
	va_list ap;

	if (!ml_log_enabled(lvl)) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (log_format == ML_LOG_FMT_TEXT) {
		fprintf(out, "%s: %s: %s\n", log_ident, names[lvl], line);
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000) % 1000);
	ml_log_quote(q, sizeof(q), line);
	if (log_format == ML_LOG_FMT_JSON) {
		fprintf(out, "{\"ts\":\"%s\",\"level\":\"%s\",\"prog\":"
		    "\"%s\",\"msg\":\"%s\"}\n", ts, names[lvl], log_ident, q);
	} else {
		fprintf(out, "ts=%s level=%s prog=%s msg=\"%s\"\n", ts,
		    names[lvl], log_ident, q);
	}
}
