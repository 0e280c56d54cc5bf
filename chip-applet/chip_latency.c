/*
 * Chip latency model (chip_latency.h): per-APDU and per-INS times that an
 * emulated chip waits out, so that a line's throughput (BN-1..BN-8) can be
 * measured as a mint with real contactless chips would see it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chip_latency.h"
#include "ml_parse.h"

struct lat_entry {
	uint32_t	 fixed_us;
	uint32_t	 per_byte_ns;
};

struct chip_latency {
	struct lat_entry apdu;		/* every exchange */
	struct lat_entry ins[256];	/* by INS, any CLA */
	_Atomic uint64_t n_apdus;
	_Atomic uint64_t n_ns;
};

/*
 * A contactless P-256 secure element.  Where each figure comes from:
 * docs/benchmarks.md, "Chip latency model".  Store writes: 5 ms plus
 * 19.5 us a byte, 10 ms for 256 bytes.
 */
static const char lat_default_text[] =
    "# contactless P-256 secure element (docs/benchmarks.md)\n"
    "apdu 5000 19000	# round trip; ISO/IEC 14443 at 424 kbit/s\n"
    "2A 60000		# SIGN: ECDSA P-256\n"
    "88 60000		# INTERNAL AUTHENTICATE: ECDSA P-256\n"
    "86 60000		# ECDH P-256\n"
    "78 80000		# AUTHORIZE WRITE: ECDSA P-256 verification\n"
    "46 85000		# GENERATE KEY PAIR: key pair + store write\n"
    "7E 195000		# GET SEALED: key pair + ECDH + ECDSA\n"
    "20 5000		# VERIFY: try counter write\n"
    "24 5000 19500	# CHANGE REFERENCE DATA: store write\n"
    "50 5000 19500	# INIT TOKEN: store write\n"
    "64 5000 19500	# CREATE OBJECT: store write\n"
    "66 5000 19500	# UPDATE OBJECT: store write\n"
    "68 5000 19500	# DELETE OBJECT: store write\n"
    "70 5000 19500	# INSTALL ISSUER: store write\n"
    "72 5000 19500	# INSTALL SERVER: store write\n"
    "74 5000 19500	# LOCK: store write\n"
    "7A 5000 19500	# WRITE FEATURE: store write\n"
    "92 5000 19500	# CACHE PUT CONFIG: store write\n"
    "94 5000 19500	# CACHE PUT DATA: store write\n"
    "98 5000 19500	# CACHE PUT PLAIN: store write\n"
    "9C 5000 19500	# CACHE CLEAR: store write\n"
    "D6 5000 19500	# UPDATE BINARY: store write\n"
    "DA 5000 19500	# PUT DATA: store write\n";

const char *
chip_latency_default_text(void)
{
	return lat_default_text;
}

/* One line's words (comment already cut): KEY FIXED_US [PER_BYTE_NS]. */
static int
lat_line(struct chip_latency *lat, char *line, const char *what,
    unsigned lineno)
{
	char *save = NULL, *key, *fixed, *per, *extra;
	struct lat_entry *e;
	unsigned f = 0, p = 0;
	int hi, lo, r;

	if ((key = strtok_r(line, " \t\r", &save)) == NULL) {
		return 0;	/* blank */
	}
	fixed = strtok_r(NULL, " \t\r", &save);
	per = strtok_r(NULL, " \t\r", &save);
	extra = strtok_r(NULL, " \t\r", &save);
	if (strcmp(key, "default") == 0 && fixed == NULL) {
		/* the built-in entries; later lines override them */
		struct chip_latency *d = NULL;

		if ((r = chip_latency_parse(lat_default_text, "default",
		    &d)) != 0) {
			return r;
		}
		lat->apdu = d->apdu;
		memcpy(lat->ins, d->ins, sizeof(lat->ins));
		chip_latency_free(d);
		return 0;
	}
	if (strcmp(key, "apdu") == 0) {
		e = &lat->apdu;
	} else if (strlen(key) == 2 && (hi = ml_hexdigit(key[0])) >= 0 &&
	    (lo = ml_hexdigit(key[1])) >= 0) {
		e = &lat->ins[hi << 4 | lo];
	} else {
		return ml_errf(ML_ERR_ARG, "%s line %u: '%s' is neither "
		    "'default', 'apdu' nor an INS in two hex digits", what,
		    lineno, key);
	}
	if (fixed == NULL || extra != NULL) {
		return ml_errf(ML_ERR_ARG, "%s line %u: want %s FIXED_US "
		    "[PER_BYTE_NS]", what, lineno, key);
	}
	if ((r = ml_parse_uint(fixed, "fixed time (us)", 0,
	    CHIP_LATENCY_MAX_FIXED_US, &f)) != 0 ||
	    (per != NULL && (r = ml_parse_uint(per, "time per byte (ns)", 0,
	    CHIP_LATENCY_MAX_PER_BYTE_NS, &p)) != 0)) {
		return ml_errpre(r, "%s line %u", what, lineno);
	}
	e->fixed_us = f;
	e->per_byte_ns = p;
	return 0;
}

int
chip_latency_parse(const char *text, const char *what,
    struct chip_latency **ret)
{
	struct chip_latency *lat;
	const char *p = text, *nl;
	char line[256], *hash;
	unsigned lineno = 0;
	size_t n;
	int r = 0;

	if ((lat = calloc(1, sizeof(*lat))) == NULL) {
		return ML_ERR_NOMEM;
	}
	while (*p != '\0') {
		lineno++;
		nl = strchr(p, '\n');
		n = nl != NULL ? (size_t)(nl - p) : strlen(p);
		if (n >= sizeof(line)) {
			r = ml_errf(ML_ERR_ARG, "%s line %u: longer than %zu "
			    "characters", what, lineno, sizeof(line) - 1);
			goto out;
		}
		memcpy(line, p, n);
		line[n] = '\0';
		if ((hash = strchr(line, '#')) != NULL) {
			*hash = '\0';
		}
		if ((r = lat_line(lat, line, what, lineno)) != 0) {
			goto out;
		}
		p += n + (nl != NULL);
	}
out:
	if (r != 0) {
		chip_latency_free(lat);
		return r;
	}
	*ret = lat;
	return 0;
}

int
chip_latency_load(const char *spec, struct chip_latency **ret)
{
	char *text = NULL;
	size_t len = 0, cap = 0;
	size_t n;
	FILE *f;
	int r;

	if (strcmp(spec, "default") == 0) {
		return chip_latency_parse(lat_default_text, "default", ret);
	}
	if ((f = fopen(spec, "re")) == NULL) {
		return ml_errf_sys(ML_ERR_IO, "latency profile %s", spec);
	}
	do {
		if (len + 4096 + 1 > cap) {
			char *t;

			cap = cap ? cap * 2 : 8192;
			if (cap > 1u << 20 || (t = realloc(text, cap)) == NULL) {
				free(text);
				fclose(f);
				return cap > 1u << 20 ? ml_errf(ML_ERR_TOO_LARGE,
				    "latency profile %s: over 1 MiB", spec) :
				    ML_ERR_NOMEM;
			}
			text = t;
		}
		n = fread(text + len, 1, 4096, f);
		len += n;
	} while (n > 0);
	if (ferror(f)) {
		free(text);
		fclose(f);
		return ml_errf_sys(ML_ERR_IO, "latency profile %s", spec);
	}
	fclose(f);
	text[len] = '\0';
	if (memchr(text, '\0', len) != NULL) {
		r = ml_errf(ML_ERR_ARG, "latency profile %s: not text", spec);
	} else {
		r = chip_latency_parse(text, spec, ret);
	}
	free(text);
	return r;
}

void
chip_latency_free(struct chip_latency *lat)
{
	free(lat);
}

uint64_t
chip_latency_ns(const struct chip_latency *lat, const uint8_t *cmd,
    size_t cmd_len, size_t resp_len)
{
	uint64_t bytes = (uint64_t)cmd_len + resp_len, ns;
	const struct lat_entry *e;

	if (lat == NULL) {
		return 0;
	}
	ns = (uint64_t)lat->apdu.fixed_us * 1000u +
	    (uint64_t)lat->apdu.per_byte_ns * bytes;
	if (cmd_len >= 2) {
		e = &lat->ins[cmd[1]];
		ns += (uint64_t)e->fixed_us * 1000u +
		    (uint64_t)e->per_byte_ns * bytes;
	}
	return ns;
}

void
chip_latency_start(struct timespec *t0)
{
	(void)clock_gettime(CLOCK_MONOTONIC, t0);
}

void
chip_latency_wait(struct chip_latency *lat, const struct timespec *t0,
    const uint8_t *cmd, size_t cmd_len, size_t resp_len)
{
	uint64_t ns = chip_latency_ns(lat, cmd, cmd_len, resp_len);
	struct timespec until;

	if (lat == NULL) {
		return;
	}
	atomic_fetch_add(&lat->n_apdus, 1);
	atomic_fetch_add(&lat->n_ns, ns);
	until.tv_sec = t0->tv_sec + (time_t)(ns / 1000000000u);
	until.tv_nsec = t0->tv_nsec + (long)(ns % 1000000000u);
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	/* Absolute deadline: a signal only restarts the same wait. */
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until,
	    NULL) == EINTR) {
	}
}

void
chip_latency_totals(const struct chip_latency *lat, uint64_t *ret_apdus,
    uint64_t *ret_ns)
{
	*ret_apdus = lat != NULL ? atomic_load(&lat->n_apdus) : 0;
	*ret_ns = lat != NULL ? atomic_load(&lat->n_ns) : 0;
}
