/*
 * mintline-station rotate-issuer: add or retire issuer keys on the
 * personalised, unwritten note chips of a line (BN-4), so that blank
 * notes follow an issuer-key change without being personalised again.
 *
 *= REQ BN-4
 *# The chip checks it with the pre-installed *authorized* public key.
 *
 * For each note chip on the line: GET DATA 04 (the installed keys), then
 * CHANGE ISSUER for every --add key not installed yet and every --retire
 * key still installed, adds first (so that a key can authorise its own
 * successor and then retire itself).  Each change is authorised by the
 * current issuer key --issuer-key (a signature over a fresh chip
 * challenge) or by the SO PIN (--so-pin-source).  Running it again on
 * the same chips changes nothing ("unchanged"): a line interrupted half
 * way is finished by running it again.  A written note keeps the keys it
 * was written under ("written", never changed).
 *
 * Exit: 0 every unwritten chip rotated (or already), 2 some chips not
 * (reported), 1 error.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_note.h"
#include "key_p11.h"
#include "ml_parse.h"
#include "ml_secret.h"
#include "ml_wipe.h"
#include "note_chip.h"
#include "note_line.h"

struct rot {
	const char	*line, *chips, *key_uri, *so_pin_source;
	const char	*add_spec[NOTE_MAX_ISSUERS], *retire_spec[NOTE_MAX_ISSUERS];
	uint8_t		 add[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	uint8_t		 retire[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	size_t		 nadd, nretire, workers;
	bool		 json;
	struct key	*key;		/* --issuer-key, or NULL: the SO PIN */
	char		 so_pin[PIN_MAX_LEN + 1];
	pthread_mutex_t	 mu;
	size_t		 rotated, unchanged, written, refused, failed;
};

static void
rot_report(struct rot *o, const char *chip, const char *result,
    const char *why, size_t nadd, size_t nretire, size_t *ctr)
{
	pthread_mutex_lock(&o->mu);
	(*ctr)++;
	if (o->json) {
		printf("{\"chip\":\"%s\",\"result\":\"%s\",\"added\":%zu,"
		    "\"retired\":%zu", chip, result, nadd, nretire);
		if (why != NULL) {
			printf(",\"reason\":\"%s\"", why);
		}
		printf("}\n");
	} else {
		printf("chip %s: %s (%zu added, %zu retired)%s%s\n", chip,
		    result, nadd, nretire, why ? ": " : "", why ? why : "");
	}
	fflush(stdout);
	pthread_mutex_unlock(&o->mu);
}

static bool
has_key(const uint8_t (*set)[ML_P256_PUB_LEN], size_t n, const uint8_t *pub)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (memcmp(set[i], pub, ML_P256_PUB_LEN) == 0) {
			return true;
		}
	}
	return false;
}

/* What a refusal of CHANGE ISSUER means, for the report. */
static const char *
refusal(int r)
{
	switch (r) {
	case ML_ERR_AUTH:
	case ML_ERR_PERM:
		return "not authorised: the issuer key is not installed on "
		    "this chip (or the SO PIN is wrong)";
	case ML_ERR_PIN:
		return "SO PIN wrong";
	case ML_ERR_LOCKED:
		return "SO PIN blocked";
	case ML_ERR_FULL:
		return "issuer key table full (4 keys): retire one first";
	case ML_ERR_STATE:
		return "refused by the chip (the last key cannot be retired)";
	}
	return ml_errmsg(r);
}

static int
rot_job(void *ctx, size_t w, struct chipcmd *cc, const char *image)
{
	struct rot *o = ctx;
	uint8_t have[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	struct chip_info ci;
	size_t n, i, added = 0, retired = 0;
	int r;

	(void)w;
	if ((r = chipcmd_info(cc, &ci)) != 0 || ci.kind != CHIP_KIND_NOTE) {
		rot_report(o, image ? image : "?", "failed", "not a note chip",
		    0, 0, &o->failed);
		return 0;
	}
	if ((ci.state & INFO_F_LOCKED) == 0) {
		rot_report(o, ci.serial, "not_personalised", "chip not locked: "
		    "provision installs the issuer keys", 0, 0, &o->failed);
		return 0;
	}
	if ((ci.state & INFO_F_WRITTEN) != 0) {
		rot_report(o, ci.serial, "written", "a written note keeps its "
		    "keys", 0, 0, &o->written);
		return 0;
	}
	if ((r = note_chip_issuers(cc, have, &n)) != 0) {
		rot_report(o, ci.serial, "failed", "issuer keys unreadable "
		    "(GET DATA 04)", 0, 0, &o->failed);
		return 0;
	}
	for (i = 0; i < o->nadd && r == 0; i++) {
		if (!has_key((const uint8_t (*)[ML_P256_PUB_LEN])have, n,
		    o->add[i]) && (r = note_chip_change_issuer(cc, o->key,
		    o->so_pin, ci.serial, ISSUER_ADD, o->add[i])) == 0) {
			added++;
		}
	}
	for (i = 0; i < o->nretire && r == 0; i++) {
		if (has_key((const uint8_t (*)[ML_P256_PUB_LEN])have, n,
		    o->retire[i]) && (r = note_chip_change_issuer(cc, o->key,
		    o->so_pin, ci.serial, ISSUER_RETIRE, o->retire[i])) == 0) {
			retired++;
		}
	}
	if (r == ML_ERR_AUTH || r == ML_ERR_PERM) {
		rot_report(o, ci.serial, "refused", refusal(r), added, retired,
		    &o->refused);
	} else if (r != 0) {
		rot_report(o, ci.serial, "failed", refusal(r), added, retired,
		    &o->failed);
	} else if (added + retired == 0) {
		rot_report(o, ci.serial, "unchanged", NULL, 0, 0, &o->unchanged);
	} else {
		rot_report(o, ci.serial, "rotated", NULL, added, retired,
		    &o->rotated);
	}
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-station rotate-issuer --line SPEC [--chips DIR|IMAGE]\n"
	    "           [--add SPEC ...] [--retire SPEC ...]\n"
	    "           (--issuer-key URI | --so-pin-source file:PATH)\n"
	    "           [--workers N] [--json]\n"
	    "\n"
	    "Add or retire issuer keys on the personalised, unwritten note chips\n"
	    "of a line (CHANGE ISSUER, docs/apdu.md).  Adds run first, then\n"
	    "retirements; a chip that already has the wanted keys is unchanged,\n"
	    "a written note is never changed.\n"
	    "  --line SPEC          chip link: inproc:DIR or pcsc:[FILTER]\n"
	    "  --chips DIR|IMAGE    in-process line: the chip images to feed\n"
	    "  --add SPEC           issuer public key to install: pkcs11: URI or\n"
	    "                       PEM file (up to 4)\n"
	    "  --retire SPEC        issuer public key to remove (up to 4)\n"
	    "  --issuer-key URI     a current issuer key (private, pkcs11: URI)\n"
	    "                       authorises each change by a signature over a\n"
	    "                       chip challenge\n"
	    "  --so-pin-source SRC  or the chips' SO PIN (file:PATH) authorises\n"
	    "  --workers N          chips handled at once (default: every position)\n"
	    "  --json               one JSON object per chip\n"
	    "exit: 0 every unwritten chip rotated (or already), 2 some chips not,\n"
	    "1 error\n");
}

/* --add / --retire: a spec into the next slot of list. */
static int
add_spec(const char **list, size_t *n, const char *spec, const char *opt)
{
	if (*n == NOTE_MAX_ISSUERS) {
		fprintf(stderr, "rotate-issuer: at most %d %s keys\n",
		    NOTE_MAX_ISSUERS, opt);
		return -1;
	}
	list[(*n)++] = spec;
	return 0;
}

int
cmd_rotate_issuer(const struct st_opts *so, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "line", required_argument, NULL, 'l' },
		{ "chips", required_argument, NULL, 'c' },
		{ "add", required_argument, NULL, 'a' },
		{ "retire", required_argument, NULL, 'r' },
		{ "issuer-key", required_argument, NULL, 'k' },
		{ "so-pin-source", required_argument, NULL, 'S' },
		{ "workers", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	struct key_provider prov;
	struct note_line_cfg lc;
	struct rot *o;
	size_t i, chips = 0;
	int c, r, rc = ST_EXIT_ERROR;

	(void)so;
	if ((o = calloc(1, sizeof(*o))) == NULL) {
		return ST_EXIT_ERROR;
	}
	pthread_mutex_init(&o->mu, NULL);
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		switch (c) {
		case 'l': o->line = optarg; break;
		case 'c': o->chips = optarg; break;
		case 'a':
			if (add_spec(o->add_spec, &o->nadd, optarg, "--add")) {
				goto out;
			}
			break;
		case 'r':
			if (add_spec(o->retire_spec, &o->nretire, optarg,
			    "--retire")) {
				goto out;
			}
			break;
		case 'k': o->key_uri = optarg; break;
		case 'S': o->so_pin_source = optarg; break;
		case 'w':
			if (ml_parse_size(optarg, "--workers", 0, NL_MAX_WORKERS,
			    &o->workers) != 0) {
				fprintf(stderr, "rotate-issuer: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				goto out;
			}
			break;
		case 'j': o->json = true; break;
		case 'h': usage(stdout); rc = ST_EXIT_OK; goto out;
		default: usage(stderr); goto out;
		}
	}
	if (o->line == NULL || o->nadd + o->nretire == 0 ||
	    (o->key_uri == NULL) == (o->so_pin_source == NULL)) {
		usage(stderr);
		goto out;
	}
	key_p11_provider(&prov, NULL);
	for (i = 0; i < o->nadd + o->nretire; i++) {
		bool add = i < o->nadd;
		const char *spec = add ? o->add_spec[i] :
		    o->retire_spec[i - o->nadd];

		if ((r = key_pub_load(&prov, spec, add ? o->add[i] :
		    o->retire[i - o->nadd])) != 0) {
			fprintf(stderr, "rotate-issuer: %s key %s: %s\n",
			    add ? "--add" : "--retire", spec, ml_errmsg(r));
			goto out;
		}
	}
	for (i = 0; i < o->nadd; i++) {
		if (has_key((const uint8_t (*)[ML_P256_PUB_LEN])o->retire,
		    o->nretire, o->add[i])) {
			fprintf(stderr, "rotate-issuer: %s is both added and "
			    "retired\n", o->add_spec[i]);
			goto out;
		}
	}
	if (o->key_uri != NULL &&
	    (r = key_p11_open(NULL, o->key_uri, &o->key)) != 0) {
		fprintf(stderr, "rotate-issuer: issuer key: %s\n", ml_errmsg(r));
		goto out;
	}
	if (o->so_pin_source != NULL && (r = ml_pin_read(o->so_pin_source,
	    NULL, o->so_pin, sizeof(o->so_pin))) != 0) {
		fprintf(stderr, "rotate-issuer: SO PIN: %s\n", ml_errmsg(r));
		goto out;
	}
	lc = (struct note_line_cfg){ .link_spec = o->line, .chips = o->chips,
	    .workers = o->workers ? o->workers : NL_MAX_WORKERS,
	    .job = rot_job, .ctx = o };
	r = note_line_run(&lc, &chips);
	fprintf(stderr, "rotate-issuer: %zu chip(s) seen: %zu rotated, %zu "
	    "unchanged, %zu written (kept), %zu refused, %zu failed\n", chips,
	    o->rotated, o->unchanged, o->written, o->refused, o->failed);
	if (r != 0) {
		fprintf(stderr, "rotate-issuer: %s\n", ml_errmsg(r));
		goto out;
	}
	rc = o->refused || o->failed ? ST_EXIT_PARTIAL : ST_EXIT_OK;
out:
	key_free(o->key);
	ml_wipe(o->so_pin, sizeof(o->so_pin));
	pthread_mutex_destroy(&o->mu);
	free(o);
	return rc;
}
