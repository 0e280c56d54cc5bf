/*
 * Parsers for the short strings a user types: numbers and server addresses.
 * Each failure records an error context (ml_err.h) that quotes the input,
 * so these are for command lines and configuration, never for secrets.
 */
#ifndef ML_PARSE_H
#define ML_PARSE_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

/*
 * Parse a whole decimal string into *ret, which must lie in [min, max].
 * No sign, no leading space, no trailing characters, no empty string; a
 * value beyond 64 bits is out of range.  Returns 0, or ML_ERR_ARG with
 * *ret untouched.  `what` names the value in the error context
 * ("--workers: 'x' is not a whole number from 1 to 64").
 */
ML_MUST_CHECK int ml_parse_u64(const char *s, const char *what, uint64_t min,
	    uint64_t max, uint64_t *ret);
ML_MUST_CHECK int ml_parse_uint(const char *s, const char *what,
	    unsigned min, unsigned max, unsigned *ret);
ML_MUST_CHECK int ml_parse_size(const char *s, const char *what, size_t min,
	    size_t max, size_t *ret);
/* The same for a signed value; a leading '-' is allowed here. */
ML_MUST_CHECK int ml_parse_i64(const char *s, const char *what, int64_t min,
	    int64_t max, int64_t *ret);
ML_MUST_CHECK int ml_parse_int(const char *s, const char *what, int min,
	    int max, int *ret);

/* The value of one hexadecimal digit (0-9, a-f, A-F), or -1 for any other
 * character.  Records no error context (key files use it too). */
int	ml_hexdigit(char c);

/*
 * Split a server address "host:port" or "[v6-address]:port" into its host
 * (brackets removed) and its port, a number from 1 to 65535.  A bare IPv6
 * address with a port ("::1:7443") is refused as ambiguous.  Returns 0, or
 * ML_ERR_ARG (malformed) / ML_ERR_TOO_LARGE (host longer than hcap - 1)
 * with the outputs untouched.
 */
#define ML_PORT_STRLEN	6
ML_MUST_CHECK int ml_hostport_split(const char *s, char *ret_host,
	    size_t hcap, char ret_port[static ML_PORT_STRLEN]);
/* The same for an address to listen on, where port 0 (any free port) is
 * allowed too. */
ML_MUST_CHECK int ml_listen_split(const char *s, char *ret_host,
	    size_t hcap, char ret_port[static ML_PORT_STRLEN]);

#endif
