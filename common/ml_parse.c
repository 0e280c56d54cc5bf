#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ml_parse.h"

static int
bad_number(const char *s, const char *what, const char *range)
{
	return ml_errf(ML_ERR_ARG, "%s%s'%.64s' is not a whole number %s",
	    what != NULL ? what : "", what != NULL ? ": " : "", s, range);
}

int
ml_hexdigit(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int
ml_parse_u64(const char *s, const char *what, uint64_t min, uint64_t max,
    uint64_t *ret)
{
	char range[64];
	unsigned long long v;
	char *end;

	snprintf(range, sizeof(range), "from %" PRIu64 " to %" PRIu64, min,
	    max);
	/* strtoull itself accepts "  -1" (as ULLONG_MAX) and "+1" */
	if (s == NULL || s[0] < '0' || s[0] > '9') {
		return bad_number(s != NULL ? s : "", what, range);
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		return bad_number(s, what, range);
	}
	*ret = v;
	return 0;
}

int
ml_parse_i64(const char *s, const char *what, int64_t min, int64_t max,
    int64_t *ret)
{
	char range[64];
	long long v;
	char *end;
	const char *d;

	snprintf(range, sizeof(range), "from %" PRId64 " to %" PRId64, min,
	    max);
	d = (s != NULL && s[0] == '-') ? s + 1 : s;
	if (d == NULL || d[0] < '0' || d[0] > '9') {
		return bad_number(s != NULL ? s : "", what, range);
	}
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max) {
		return bad_number(s, what, range);
	}
	*ret = v;
	return 0;
}

int
ml_parse_uint(const char *s, const char *what, unsigned min, unsigned max,
    unsigned *ret)
{
	uint64_t v;
	int r;

	if ((r = ml_parse_u64(s, what, min, max, &v)) == 0) {
		*ret = (unsigned)v;
	}
	return r;
}

int
ml_parse_size(const char *s, const char *what, size_t min, size_t max,
    size_t *ret)
{
	uint64_t v;
	int r;

	if ((r = ml_parse_u64(s, what, min, max, &v)) == 0) {
		*ret = (size_t)v;
	}
	return r;
}

int
ml_parse_int(const char *s, const char *what, int min, int max, int *ret)
{
	int64_t v;
	int r;

	if ((r = ml_parse_i64(s, what, min, max, &v)) == 0) {
		*ret = (int)v;
	}
	return r;
}

static int
hostport_split(const char *s, const char *what, unsigned minport,
    char *ret_host, size_t hcap, char ret_port[static ML_PORT_STRLEN])
{
	const char *colon, *host;
	size_t hl;
	unsigned port;

	if (s == NULL || (colon = strrchr(s, ':')) == NULL || colon == s) {
		return ml_errf(ML_ERR_ARG, "%s '%.128s': want "
		    "host:port or [v6-address]:port", what, s != NULL ? s : "");
	}
	host = s;
	hl = (size_t)(colon - s);
	if (s[0] == '[') {
		if (hl < 3 || s[hl - 1] != ']') {
			return ml_errf(ML_ERR_ARG, "%s '%.128s': "
			    "want [v6-address]:port", what, s);
		}
		host = s + 1;
		hl -= 2;
	} else if (memchr(s, ':', hl) != NULL) {
		return ml_errf(ML_ERR_ARG, "%s '%.128s': put an "
		    "IPv6 address in brackets, [v6-address]:port", what, s);
	}
	if (memchr(host, '[', hl) != NULL || memchr(host, ']', hl) != NULL) {
		return ml_errf(ML_ERR_ARG, "%s '%.128s': stray "
		    "bracket", what, s);
	}
	if (ml_parse_uint(colon + 1, NULL, minport, 65535, &port) != 0) {
		return ml_errf(ML_ERR_ARG, "%s '%.128s': port must be a "
		    "number from %u to 65535", what, s, minport);
	}
	if (hl >= hcap) {
		return ml_errf(ML_ERR_TOO_LARGE, "%s '%.128s': "
		    "host name longer than %zu characters", what, s, hcap - 1);
	}
	memcpy(ret_host, host, hl);
	ret_host[hl] = '\0';
	snprintf(ret_port, ML_PORT_STRLEN, "%u", port);
	return 0;
}

int
ml_hostport_split(const char *s, char *ret_host, size_t hcap,
    char ret_port[static ML_PORT_STRLEN])
{
	return hostport_split(s, "server address", 1, ret_host, hcap,
	    ret_port);
}

int
ml_listen_split(const char *s, char *ret_host, size_t hcap,
    char ret_port[static ML_PORT_STRLEN])
{
	return hostport_split(s, "listen address", 0, ret_host, hcap,
	    ret_port);
}
