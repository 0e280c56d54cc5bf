/*
 * Logging to stderr (or syslog-style structured key=value lines).  The level
 * comes from ML_LOG_LEVEL (error, warn, info, debug); default warn; the
 * format from ML_LOG_FORMAT (text, kv, json) or ml_log_set_format().
 * Never log secret-bearing input: log that a value was rejected, not what.
 */
#ifndef ML_LOG_H
#define ML_LOG_H

#include <stdio.h>

enum ml_log_level {
	ML_LOG_OFF = -1,	/* nothing (ml_log_set_level only) */
	ML_LOG_ERROR = 0,
	ML_LOG_WARN,
	ML_LOG_INFO,
	ML_LOG_DEBUG,
};

enum ml_log_format {
	ML_LOG_FMT_TEXT = 0,	/* "ident: level: message" (default) */
	ML_LOG_FMT_KV,		/* ts=... level=... prog=... msg="..." */
	ML_LOG_FMT_JSON,	/* {"ts":..,"level":..,"prog":..,"msg":..} */
};

void	 ml_log_set_level(enum ml_log_level lvl);
/* One line per message in the given format (stderr either way). */
void	 ml_log_set_format(enum ml_log_format fmt);
/* Write lines to f instead of stderr (NULL: stderr again; not closed). */
void	 ml_log_set_output(FILE *f);
/* Set the program name shown in each line (not copied; keep it static). */
void	 ml_log_set_ident(const char *ident);
int	 ml_log_enabled(enum ml_log_level lvl);
/*
 * src quoted for the inside of a JSON (or key=value) string: \" \\ and
 * control bytes escaped; cut short rather than overflow dst (cap >= 8).
 */
void	 ml_log_quote(char *dst, size_t cap, const char *src);
void	 ml_log(enum ml_log_level lvl, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#define ml_err(...)	ml_log(ML_LOG_ERROR, __VA_ARGS__)
#define ml_warn(...)	ml_log(ML_LOG_WARN, __VA_ARGS__)
#define ml_info(...)	ml_log(ML_LOG_INFO, __VA_ARGS__)
#define ml_debug(...)	do { if (ml_log_enabled(ML_LOG_DEBUG)) { \
	ml_log(ML_LOG_DEBUG, __VA_ARGS__); } } while (0)

#endif
