/*
 * mintline-station handshake: run handshake A or B against the server,
 * prove the channel with PING records, print what the server saw.
 *
 * Exit: 0 ok, 1 error, 4 refused by the server (alert printed),
 * 5 server certificate or signature refused by us.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hs.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_rd.h"
#include "st.h"

#define ST_EXIT_REFUSED		4
#define ST_EXIT_BAD_SERVER	5

static void
usage(FILE *f)
{
	fprintf(f, "usage: mintline-station handshake [options]\n"
	    ST_CONN_USAGE
	    "  --count N            PING records to exchange (1)\n"
	    "  --hold MS            keep the channel open this long (0)\n"
	    "  --then-count N       PING records to exchange after the hold (0):\n"
	    "                       an established channel still serves\n");
}

static int
exit_for(int r, int alert)
{
	if (r == ML_ERR_REJECTED) {
		return ST_EXIT_REFUSED;
	}
	if (r == ML_ERR_CERT || r == ML_ERR_AUTH) {
		return ST_EXIT_BAD_SERVER;
	}
	return 1;
}

/* n PING records from number `from` on; 0, or the failure (reported). */
static int
pings(struct st_link *l, int64_t from, int64_t n)
{
	uint8_t buf[256], type;
	size_t len;
	int64_t i;
	int r;

	for (i = from; i < from + n; i++) {
		snprintf((char *)buf, sizeof(buf), "ping %" PRId64, i);
		r = hs_chan_call(l->chan, HS_REC_PING, buf, strlen((char *)buf),
		    &type, buf, sizeof(buf), &len);
		if (r != 0 || type != HS_REC_PONG) {
			if (r == ML_ERR_REJECTED) {
				fprintf(stderr, "mintline-station: refused: %s "
				    "(%s)\n", hs_alert_text(hs_chan_alert(l->chan)),
				    hs_alert_name(hs_chan_alert(l->chan)));
			} else {
				fprintf(stderr, "mintline-station: ping failed: "
				    "%s\n", ml_errmsg(r));
			}
			return r != 0 ? r : ML_ERR_FORMAT;
		}
	}
	return 0;
}

int
cmd_handshake(const struct st_opts *so, int argc, char **argv)
{
	static const struct option lo[] = {
		ST_CONN_LONG_OPTS,
		{ "count", required_argument, NULL, 'n' },
		{ "hold", required_argument, NULL, 'H' },
		{ "then-count", required_argument, NULL, 'T' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct st_conn c;
	struct st_link *l = NULL;
	struct timespec t0, t1;
	uint8_t buf[256], type;
	size_t n;
	int64_t count = 1, hold = 0, then = 0;
	int opt, r;

	st_conn_default(&c);
	optind = 1;
	while ((opt = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		if (opt == 'h') {
			usage(stdout);
			return 0;
		} else if (opt == 'n' || opt == 'H' || opt == 'T') {
			if (ml_parse_i64(optarg, opt == 'n' ? "--count" :
			    opt == 'H' ? "--hold" : "--then-count",
			    opt == 'n' ? 1 : 0, 86400000, opt == 'n' ? &count :
			    opt == 'H' ? &hold : &then) != 0) {
				fprintf(stderr, "handshake: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				return 1;
			}
		} else if (opt < ST_CONN_OPT_BASE ||
		    st_conn_option(&c, opt, optarg) != 0) {
			usage(stderr);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	if ((r = st_link_open(&c, &l)) != 0) {
		return exit_for(r, 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("handshake %c ok in %.1f ms: server %s certno %s\n",
	    c.flow == HS_FLOW_A ? 'A' : 'B',
	    (double)(t1.tv_sec - t0.tv_sec) * 1e3 +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
	    hs_chan_peer(l->chan)->serial, hs_chan_peer(l->chan)->certno);
	if ((r = pings(l, 0, count)) != 0) {
		st_link_close(l);
		return exit_for(r, 0);
	}
	/* what the server authenticated (ID-3) */
	r = hs_chan_call(l->chan, HS_REC_WHOAMI, NULL, 0, &type, buf,
	    sizeof(buf), &n);
	if (r == 0 && type == HS_REC_WHOAMI) {
		struct ml_rd rd = ML_RD_INIT(buf, n), s1, s2;
		uint8_t flow, kind;

		if (ml_rd_u8(&rd, &flow) == 0 && ml_rd_u8(&rd, &kind) == 0 &&
		    ml_rd_lv8(&rd, HS_MAX_SERIAL, &s1) == 0 &&
		    ml_rd_lv8(&rd, HS_MAX_CERTNO, &s2) == 0 &&
		    ml_rd_end(&rd) == 0) {
			printf("server sees: flow %c %s %.*s certno %.*s\n",
			    flow == HS_FLOW_A ? 'A' : 'B',
			    kind == HS_KIND_STATION ? "station" : "reader",
			    (int)ml_rd_left(&s1), (const char *)ml_rd_ptr(&s1),
			    (int)ml_rd_left(&s2), (const char *)ml_rd_ptr(&s2));
		}
	}
	printf("channel ok: %" PRId64 " ping(s)\n", count);
	/* out now, not at exit: a script waits for it to act (revoke, SIGHUP)
	 * while the channel is held open (ID-5) */
	fflush(stdout);
	if (hold > 0) {
		struct timespec ts = { hold / 1000, (hold % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
	/* after the hold: the channel outlives a SIGHUP reload (ID-5) */
	if (then > 0) {
		if ((r = pings(l, count, then)) != 0) {
			st_link_close(l);
			return exit_for(r, 0);
		}
		printf("channel ok after hold: %" PRId64 " ping(s)\n", then);
	}
	st_link_close(l);
	(void)so;
	return 0;
}
