#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "ml_log.h"

static int log_level = -1;
static const char *log_ident = "mintline";
static pthread_once_t log_once = PTHREAD_ONCE_INIT;

static void
log_init(void)
{
	const char *s = secure_getenv("ML_LOG_LEVEL");

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
ml_log(enum ml_log_level lvl, const char *fmt, ...)
{
	static const char *names[] = { "error", "warn", "info", "debug" };
	char line[1024];
	va_list ap;

	if (!ml_log_enabled(lvl)) {
		return;
	}
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s: %s: %s\n", log_ident, names[lvl], line);
}
