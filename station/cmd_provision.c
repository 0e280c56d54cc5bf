/*
 * mintline-station provision: personalise blank banknote chips on the line.
 *
 * For each chip: INIT TOKEN (sets the SO PIN from --so-pin-source), the
 * chip authentication key generated inside the chip, the authorised
 * issuer public key(s) (pkcs11: URI of the station's issuer key, or a PEM
 * file), the server's seal public key, LOCK.  Then the chip's public key
 * is enrolled with the server (NOTE_REC_ENROL), which is how the server
 * later knows the key that signs the chip's sealed uploads: enrolment at
 * personalisation, over the station's authenticated channel, never trust
 * on first use.
 *
 * A chip already locked (personalised before, by pkcs11-tool or a run
 * without the server) is enrolled instead of skipped (OP-4), after it
 * proves its key; one the server knows with the same key is already done.
 *
 * Exit: 0 every chip personalised (or already done), 2 some chips failed
 * (reported), 1 error.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd_note.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_tlv.h"
#include "ml_secret.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "note_chan.h"
#include "note_chip.h"
#include "note_line.h"
#include "key_p11.h"
#include "note_proto.h"
#include "note_uplink.h"

struct prov_opts {
	const char	*line;
	const char	*chips;
	const char	*issuer[NOTE_MAX_ISSUERS];
	size_t		 nissuers;
	const char	*server_pub;
	const char	*so_pin_source;
	struct st_conn	 conn;		/* the channel to mintline-server */
	bool		 has_conn;
	size_t		 workers;
	bool		 json;
};

struct prov {
	struct prov_opts	 o;
	uint8_t			 issuers[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	uint8_t			 server_pub[ML_P256_PUB_LEN];
	char			 so_pin[PIN_MAX_LEN + 1];
	struct note_uplink	*up[NL_MAX_WORKERS];
	struct note_chan	*chan;		/* the channel key, CA, chain */
	pthread_mutex_t		 mu;
	size_t			 done, skipped, failed, enrolled;
};

static int
prov_start(void *ctx, size_t w)
{
	struct prov *p = ctx;

	if (!p->o.has_conn) {
		return 0;
	}
	return note_chan_open(p->chan, &p->up[w]);
}

static void
report(struct prov *p, const char *chip, const char *result, const char *why)
{
	char shown[CHIP_SERIAL_LEN + 1];

	chip = note_chip_shown(chip, shown);
	pthread_mutex_lock(&p->mu);
	if (p->o.json) {
		printf("{\"chip\":\"%s\",\"result\":\"%s\"%s%s%s}\n", chip, result,
		    why ? ",\"error\":\"" : "", why ? why : "", why ? "\"" : "");
	} else if (why != NULL) {
		printf("chip %s: %s: %s\n", chip, result, why);
	}
	pthread_mutex_unlock(&p->mu);
}

static int
enrol(struct prov *p, size_t w, struct chipcmd *cc, const char *chip,
    const uint8_t pub[static ML_P256_PUB_LEN], bool prove, bool *ret_again,
    const char **ret_why)
{
	struct note_reply rep;
	int r;

	if ((r = note_enrol_chip(cc, p->up[w], chip, pub, prove, &rep)) != 0) {
		return r;
	}
	if (rep.status == NOTE_ST_REJECT) {
		*ret_why = note_reason_str(rep.reason);
		return ML_ERR_REJECTED;
	}
	*ret_again = rep.status == NOTE_ST_AGAIN;
	return 0;
}

/*
 * OP-4: a chip personalised before (by pkcs11-tool, or a provision run
 * without the server) is enrolled now, after proving its key.
 */
static int
prov_enrol_locked(struct prov *p, size_t w, struct chipcmd *cc,
    const char *chip)
{
	uint8_t pub[ML_P256_PUB_LEN];
	const char *why = NULL;
	bool again = false;
	int r;

	if ((r = note_chip_pub(cc, pub)) != 0) {
		report(p, chip, "failed", "chip key unreadable (GET DATA 02)");
		return 1;
	}
	r = enrol(p, w, cc, chip, pub, true, &again, &why);
	if (r != 0) {
		report(p, chip, "not enrolled", why ? why : r == ML_ERR_AUTH ?
		    "the chip does not prove the key it reports" : ml_errmsg(r));
		return r == ML_ERR_IO ? r : 1;
	}
	pthread_mutex_lock(&p->mu);
	if (again) {
		p->skipped++;
	} else {
		p->enrolled++;
	}
	pthread_mutex_unlock(&p->mu);
	report(p, chip, again ? "skipped" : "enrolled", again ? (p->o.json ?
	    "already personalised and enrolled" : NULL) : p->o.json ? NULL :
	    "personalised before, key enrolled now");
	return 0;
}

static int
prov_job(void *ctx, size_t w, struct chipcmd *cc, const char *image)
{
	struct prov *p = ctx;
	struct chip_info ci;
	uint8_t pub[ML_P256_PUB_LEN];
	char label[LABEL_MAX_LEN + 1];
	const char *why = NULL;
	bool again = false;
	int r;

	if ((r = chipcmd_info(cc, &ci)) != 0 || ci.kind != CHIP_KIND_NOTE) {
		report(p, image ? image : "?", "failed", "not a note chip");
		goto failed;
	}
	/* A chip initialised (INIT TOKEN, e.g. by pkcs11-tool --init-token
	 * with the same SO PIN) but not locked is personalised again. */
	if ((ci.state & INFO_F_LOCKED) && p->up[w] != NULL) {
		if ((r = prov_enrol_locked(p, w, cc, ci.serial)) < 0) {
			return r;
		}
		if (r == 1) {
			goto failed;
		}
		return 0;
	}
	if (ci.state & INFO_F_LOCKED) {
		pthread_mutex_lock(&p->mu);
		p->skipped++;
		pthread_mutex_unlock(&p->mu);
		report(p, ci.serial, "skipped", p->o.json ?
		    "already personalised" : NULL);
		return 0;
	}
	snprintf(label, sizeof(label), "note %.16s", ci.serial);
	if ((r = note_chip_perso(cc, p->so_pin, label,
	    (const uint8_t (*)[ML_P256_PUB_LEN])p->issuers, p->o.nissuers,
	    p->server_pub, pub)) != 0) {
		report(p, ci.serial, "failed", ml_errmsg(r));
		goto failed;
	}
	if (p->up[w] != NULL && (r = enrol(p, w, cc, ci.serial, pub, false,
	    &again, &why)) != 0) {
		report(p, ci.serial, "not enrolled", why ? why : ml_errmsg(r));
		if (r == ML_ERR_IO) {
			return r;
		}
		goto failed;
	}
	pthread_mutex_lock(&p->mu);
	p->done++;
	pthread_mutex_unlock(&p->mu);
	if (p->o.json) {
		report(p, ci.serial, p->up[w] ? "personalised+enrolled" :
		    "personalised", NULL);
	}
	return 0;
failed:
	pthread_mutex_lock(&p->mu);
	p->failed++;
	pthread_mutex_unlock(&p->mu);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-station provision --line SPEC [--chips DIR|IMAGE]\n"
	    "           --issuer-pub SPEC [--issuer-pub SPEC ...] --server-pub SPEC\n"
	    "           --so-pin-source file:PATH [--workers N] [--json]\n"
	    "           [--server HOST:PORT --ca F --cert F --key URI ...]\n"
	    "\n"
	    "  --line SPEC        chip link: inproc:DIR or pcsc:[FILTER]\n"
	    "  --chips DIR|IMAGE  in-process line: the blank chip images to feed\n"
	    "  --issuer-pub SPEC  authorised station key: pkcs11: URI or PEM file\n"
	    "  --server-pub SPEC  the server's seal key: pkcs11: URI or PEM file\n"
	    "  --server ...       enrol each chip key with the server (chip\n"
	    "                     enrolment: how the server learns chip keys)\n"
	    ST_CONN_USAGE
	    "exit: 0 all personalised, 2 some chips failed, 1 error\n");
}

int
cmd_provision(const struct st_opts *so, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "line", required_argument, NULL, 'l' },
		{ "chips", required_argument, NULL, 'c' },
		{ "issuer-pub", required_argument, NULL, 'i' },
		{ "server-pub", required_argument, NULL, 'P' },
		{ "so-pin-source", required_argument, NULL, 'S' },
		ST_CONN_LONG_OPTS,
		{ "workers", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct prov *p;
	struct note_line_cfg lc = { 0 };
	struct key_provider prov;
	size_t i, chips = 0;
	int c, r, rc = ST_EXIT_ERROR;

	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return ST_EXIT_ERROR;
	}
	pthread_mutex_init(&p->mu, NULL);
	st_conn_default(&p->o.conn);
	p->o.conn.kind = HS_KIND_STATION;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:c:i:P:S:s:w:jh", lo, NULL)) != -1) {
		switch (c) {
		case 'l': p->o.line = optarg; break;
		case 'c': p->o.chips = optarg; break;
		case 'i':
			if (p->o.nissuers == NOTE_MAX_ISSUERS) {
				fprintf(stderr, "provision: at most %d issuer keys\n",
				    NOTE_MAX_ISSUERS);
				goto out;
			}
			p->o.issuer[p->o.nissuers++] = optarg;
			break;
		case 'P': p->o.server_pub = optarg; break;
		case 'S': p->o.so_pin_source = optarg; break;
		case 'w':
			if (ml_parse_size(optarg, "--workers", 0, NL_MAX_WORKERS,
			    &p->o.workers) != 0) {
				fprintf(stderr, "provision: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				goto out;
			}
			break;
		case 'j': p->o.json = true; break;
		case 'h': usage(stdout); rc = 0; goto out;
		default:
			if (c >= ST_CONN_OPT_BASE &&
			    st_conn_option(&p->o.conn, c, optarg) == 0) {
				p->o.has_conn = true;
				break;
			}
			usage(stderr);
			goto out;
		}
	}
	if (p->o.line == NULL || p->o.nissuers == 0 || p->o.server_pub == NULL ||
	    p->o.so_pin_source == NULL || p->o.workers > NL_MAX_WORKERS) {
		usage(stderr);
		goto out;
	}
	key_p11_provider(&prov, NULL);
	for (i = 0; i < p->o.nissuers; i++) {
		if ((r = key_pub_load(&prov, p->o.issuer[i], p->issuers[i])) != 0) {
			fprintf(stderr, "provision: issuer key %zu: %s\n", i + 1,
			    ml_errmsg(r));
			goto out;
		}
	}
	if ((r = key_pub_load(&prov, p->o.server_pub, p->server_pub)) != 0) {
		fprintf(stderr, "provision: server key: %s\n", ml_errmsg(r));
		goto out;
	}
	if ((r = ml_pin_read(p->o.so_pin_source, NULL, p->so_pin,
	    sizeof(p->so_pin))) != 0) {
		fprintf(stderr, "provision: SO PIN: %s\n", ml_errmsg(r));
		goto out;
	}
	if (p->o.has_conn && (r = note_chan_new(&p->o.conn, &p->chan)) != 0) {
		fprintf(stderr, "provision: channel: %s\n", ml_errmsg(r));
		goto out;
	}
	lc = (struct note_line_cfg){ .link_spec = p->o.line, .chips = p->o.chips,
	    .workers = p->o.workers ? p->o.workers : NL_MAX_WORKERS,
	    .job = prov_job, .start = prov_start, .ctx = p };
	r = note_line_run(&lc, &chips);
	/* Closed only now: closing an hs link finalises the PKCS#11 module
	 * for the whole process (libp11). */
	for (i = 0; i < NL_MAX_WORKERS; i++) {
		note_uplink_close(p->up[i]);
	}
	fprintf(stderr, "provision: %zu chip(s) seen: %zu personalised, %zu "
	    "personalised before and enrolled now, %zu already done, %zu "
	    "failed\n", chips, p->done, p->enrolled, p->skipped, p->failed);
	if (r != 0) {
		fprintf(stderr, "provision: %s\n", ml_errmsg(r));
		goto out;
	}
	rc = p->failed ? ST_EXIT_PARTIAL : ST_EXIT_OK;
out:
	ml_wipe(p->so_pin, sizeof(p->so_pin));
	note_chan_free(p->chan);
	pthread_mutex_destroy(&p->mu);
	free(p);
	(void)so;
	return rc;
}
