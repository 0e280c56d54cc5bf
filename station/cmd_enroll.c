/*
 * mintline-station enroll: enrol personalised note chips whose key the
 * server does not know (OP-4), such as notes personalised with stock
 * pkcs11-tool (docs/admin.md), so that they can be issued.
 *
 *= REQ OP-4
 *# Any personalised chip can be enrolled, including one prepared with
 *# stock tools.
 *
 * For each locked note chip on the line: GET DATA 02 (the chip key), an
 * INTERNAL AUTHENTICATE over a fresh challenge proving the chip holds
 * that key (a key copied from elsewhere is not enrolled), then
 * NOTE_REC_ENROL over the station's authenticated channel: the station
 * vouches for the chip in front of it, never trust on first use by the
 * server.  A chip already enrolled with the same key is "already
 * enrolled"; one enrolled with another key is refused (enrol_conflict).
 *
 * Exit: 0 every note chip enrolled (or already), 2 some chips not
 * (reported), 1 error.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_note.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "note_chan.h"
#include "note_chip.h"
#include "note_line.h"
#include "note_proto.h"
#include "note_uplink.h"


int
note_enrol_chip(struct chipcmd *cc, struct note_uplink *up,
    const char *chip, const uint8_t pub[static ML_P256_PUB_LEN],
    bool prove, struct note_reply *ret)
{
	uint8_t req[128], resp[NOTE_REPLY_MAX];
	struct ml_wr rw = ML_WR_FIXED(req, sizeof(req));
	size_t n;
	int r;

	/* The chip holds the private half: a blank chip signs over an empty
	 * feature digest. */
	if (prove && (r = note_chip_prove(cc, pub, chip, NULL, 0)) != 0) {
		return r;
	}
	ML_TRY(ml_tlv_put(&rw, TAG_ENROL_SERIAL, chip, CHIP_SERIAL_LEN));
	ML_TRY(ml_tlv_put(&rw, TAG_ENROL_PUB, pub, ML_P256_PUB_LEN));
	ML_TRY(note_uplink_call(up, NOTE_REC_ENROL, rw.p, rw.len, resp,
	    sizeof(resp), &n));
	ML_TRY(note_reply_parse(resp, n, ret));
	r = 0;
out:
	return r;
}

struct enr {
	struct st_conn		 conn;
	const char		*line, *chips;
	size_t			 workers;
	bool			 json;
	struct note_chan	*chan;
	struct note_uplink	*up[NL_MAX_WORKERS];
	pthread_mutex_t		 mu;
	size_t			 enrolled, again, unlocked, failed;
};

static void
enr_report(struct enr *e, const char *chip, const char *result,
    const char *why, size_t *ctr)
{
	char shown[CHIP_SERIAL_LEN + 1];

	chip = note_chip_shown(chip, shown);
	pthread_mutex_lock(&e->mu);
	(*ctr)++;
	if (e->json) {
		printf("{\"chip\":\"%s\",\"result\":\"%s\"", chip, result);
		if (why != NULL) {
			printf(",\"reason\":\"%s\"", why);
		}
		printf("}\n");
	} else {
		printf("chip %s: %s%s%s\n", chip, result, why ? ": " : "",
		    why ? why : "");
	}
	fflush(stdout);
	pthread_mutex_unlock(&e->mu);
}

static int
enr_start(void *ctx, size_t w)
{
	struct enr *e = ctx;

	return note_chan_open(e->chan, &e->up[w]);
}

static int
enr_job(void *ctx, size_t w, struct chipcmd *cc, const char *image)
{
	struct enr *e = ctx;
	struct chip_info ci;
	struct note_reply rep;
	uint8_t pub[ML_P256_PUB_LEN];
	int r;

	if ((r = chipcmd_info(cc, &ci)) != 0 || ci.kind != CHIP_KIND_NOTE) {
		enr_report(e, image ? image : "?", "failed", "not a note chip",
		    &e->failed);
		return 0;
	}
	if ((ci.state & INFO_F_LOCKED) == 0) {
		enr_report(e, ci.serial, "not_personalised", "chip not locked: "
		    "personalise it first (provision, or pkcs11-tool per "
		    "docs/admin.md)", &e->unlocked);
		return 0;
	}
	if ((r = note_chip_pub(cc, pub)) != 0) {
		enr_report(e, ci.serial, "failed", "chip key unreadable (GET "
		    "DATA 02)", &e->failed);
		return 0;
	}
	r = note_enrol_chip(cc, e->up[w], ci.serial, pub, true, &rep);
	if (r == ML_ERR_AUTH) {
		enr_report(e, ci.serial, "failed", "the chip does not prove the "
		    "key it reports", &e->failed);
		return 0;
	}
	if (r != 0) {
		enr_report(e, ci.serial, "failed", ml_errmsg(r), &e->failed);
		return r == ML_ERR_IO ? r : 0;	/* server away: stop */
	}
	if (rep.status == NOTE_ST_REJECT) {
		enr_report(e, ci.serial, "refused", note_reason_str(rep.reason),
		    &e->failed);
	} else if (rep.status == NOTE_ST_AGAIN) {
		enr_report(e, ci.serial, "already_enrolled", NULL, &e->again);
	} else {
		enr_report(e, ci.serial, "enrolled", NULL, &e->enrolled);
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-station enroll --line SPEC [--chips DIR|IMAGE]\n"
	    "           --server HOST:PORT --ca F --cert F --key URI [...]\n"
	    "           [--workers N] [--json]\n"
	    "\n"
	    "Enrol the keys of personalised (locked) note chips with the server,\n"
	    "e.g. chips personalised with pkcs11-tool (docs/admin.md).  Each chip\n"
	    "proves its key first (INTERNAL AUTHENTICATE).\n"
	    "  --line SPEC        chip link: inproc:DIR or pcsc:[FILTER]\n"
	    "  --chips DIR|IMAGE  in-process line: the chip images to feed\n"
	    ST_CONN_USAGE
	    "exit: 0 all enrolled (or already), 2 some chips not, 1 error\n");
}

int
cmd_enroll(const struct st_opts *so, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "line", required_argument, NULL, 'l' },
		{ "chips", required_argument, NULL, 'c' },
		ST_CONN_LONG_OPTS,
		{ "workers", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct note_line_cfg lc;
	struct enr *e;
	bool has_conn = false;
	size_t i, chips = 0;
	int c, r, rc = ST_EXIT_ERROR;

	(void)so;
	if ((e = calloc(1, sizeof(*e))) == NULL) {
		return ST_EXIT_ERROR;
	}
	pthread_mutex_init(&e->mu, NULL);
	st_conn_default(&e->conn);
	e->conn.kind = HS_KIND_STATION;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:c:s:w:jh", lo, NULL)) != -1) {
		switch (c) {
		case 'l': e->line = optarg; break;
		case 'c': e->chips = optarg; break;
		case 'w':
			if (ml_parse_size(optarg, "--workers", 0, NL_MAX_WORKERS,
			    &e->workers) != 0) {
				fprintf(stderr, "enroll: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				goto out;
			}
			break;
		case 'j': e->json = true; break;
		case 'h': usage(stdout); rc = ST_EXIT_OK; goto out;
		default:
			if (c >= ST_CONN_OPT_BASE &&
			    st_conn_option(&e->conn, c, optarg) == 0) {
				has_conn = true;
				break;
			}
			usage(stderr);
			goto out;
		}
	}
	if (e->line == NULL || !has_conn || e->workers > NL_MAX_WORKERS) {
		usage(stderr);
		goto out;
	}
	if ((r = note_chan_new(&e->conn, &e->chan)) != 0) {
		fprintf(stderr, "enroll: channel: %s\n", ml_errmsg(r));
		goto out;
	}
	lc = (struct note_line_cfg){ .link_spec = e->line, .chips = e->chips,
	    .workers = e->workers ? e->workers : NL_MAX_WORKERS, .job = enr_job,
	    .start = enr_start, .ctx = e };
	r = note_line_run(&lc, &chips);
	/* Closed only now: closing an hs link finalises the PKCS#11 module
	 * for the whole process (libp11). */
	for (i = 0; i < NL_MAX_WORKERS; i++) {
		note_uplink_close(e->up[i]);
	}
	fprintf(stderr, "enroll: %zu chip(s) seen: %zu enrolled, %zu already "
	    "enrolled, %zu not personalised, %zu failed\n", chips, e->enrolled,
	    e->again, e->unlocked, e->failed);
	if (r != 0) {
		fprintf(stderr, "enroll: %s\n", ml_errmsg(r));
		goto out;
	}
	rc = e->failed || e->unlocked ? ST_EXIT_PARTIAL : ST_EXIT_OK;
out:
	note_chan_free(e->chan);
	pthread_mutex_destroy(&e->mu);
	free(e);
	return rc;
}
