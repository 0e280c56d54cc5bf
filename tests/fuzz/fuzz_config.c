/*
 * libFuzzer target: mintline-server's configuration parser
 * (server/config.c, srv_config_parse).
 *
 * Checks: on failure the options are exactly as before and the error
 * names a line ("line N: ..."); on success every string option is
 * NUL-terminated inside its field, every number is inside its documented
 * range, and parsing the same bytes again gives the same options.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "srv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)	do { if (!(cond)) { abort(); } } while (0)
#define TERMINATED(f)	CHECK(memchr((f), '\0', sizeof(f)) != NULL)

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct srv_opts dflt, o, o2;
	char err[256];
	int r;

	srv_opts_default(&dflt);
	o = dflt;
	r = srv_config_parse(data, size, "fuzz", &o, err, sizeof(err));
	if (r != 0) {
		CHECK(r < 0);
		CHECK(memcmp(&o, &dflt, sizeof(o)) == 0);
		/* FILE:LINE: KEY: reason, or the whole file over its limit */
		CHECK(strncmp(err, "fuzz:", 5) == 0 ||
		    strstr(err, "over") != NULL);
		return 0;
	}
	TERMINATED(o.listen);
	TERMINATED(o.ca);
	TERMINATED(o.crl);
	TERMINATED(o.cert);
	TERMINATED(o.key);
	TERMINATED(o.module);
	TERMINATED(o.registry);
	TERMINATED(o.monitor);
	TERMINATED(o.user);
	TERMINATED(o.chroot_dir);
	TERMINATED(o.metrics);
	CHECK(o.workers >= 1 && o.workers <= 64);
	CHECK(o.read_timeout_ms >= 10 && o.idle_timeout_ms >= 10);
	CHECK(o.max_conns >= 1 && o.max_unauth >= 1 &&
	    o.max_unauth_per_addr >= 1);
	CHECK(o.log_format >= 0 && o.log_format <= 2);
	CHECK(o.log_level >= -1 && o.log_level <= 3);
	o2 = dflt;
	CHECK(srv_config_parse(data, size, "fuzz", &o2, err, sizeof(err)) == 0);
	CHECK(memcmp(&o, &o2, sizeof(o)) == 0);
	return 0;
}
