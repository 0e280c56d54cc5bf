/*
 * mintline-station verify: the verification desk (BN-8).
 *
 *= REQ BN-8
 *# Notes are checked by comparing feature information: a verification
 *# desk reads a note and gets a verdict.
 *
 * For each note chip: READ FEATURE (blank chip: COUNTERFEIT), the chip
 * key (GET DATA 02) proven by INTERNAL AUTHENTICATE over a fresh random
 * challenge bound to the record (a clone without the key fails), the
 * record's chip key fingerprint against that key (a record copied onto
 * another chip fails), the station's write authorisation against the
 * authorised issuer keys, and — online — the registry's answer (unregistered
 * serial, feature mismatch, chip key mismatch; the server flags a serial
 * presented by two chips, both of them).  Offline (--offline) the station
 * signature kept on the chip and the chip proof decide.
 *
 * Output: one line per note,
 *	GENUINE <note> chip <chip serial>
 *	COUNTERFEIT <note|-> chip <chip serial>: <reason>
 *	BLANK - chip <chip serial>: blank chip	(nothing written: no note)
 * or JSON lines with --json.  Exit: 0 every note genuine, 3 at least one
 * counterfeit, 2 some chips blank (none counterfeit), 1 error (no verdict
 * could be given).
 *
 * --follow: a desk clerk presents one note after another (note_line.h
 * follow mode); each verdict is also an NL_RESULT event.  --ui ADDR serves
 * the desk's page (ui_http.h, OP-1): every verdict with the note's public
 * feature fields (prefix, serial, check code, chip key fingerprint — never
 * the keyed code), the positions, and the server connection, probed every
 * second.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd_note.h"
#include "feature.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "note_chan.h"
#include "note_chip.h"
#include "note_line.h"
#include "key_p11.h"
#include "note_proto.h"
#include "note_uplink.h"
#include "ui_http.h"

struct verify_opts {
	const char	*line;
	const char	*chips;
	const char	*issuer[NOTE_MAX_ISSUERS];
	size_t		 nissuers;
	struct st_conn	 conn;		/* the channel to mintline-server */
	bool		 has_conn;
	bool		 offline;
	bool		 json;
	bool		 follow;	/* a desk: one note after another */
	bool		 beep;		/* terminal bell on COUNTERFEIT */
	size_t		 workers;
	const char	*ui, *ui_cert, *ui_key;	/* --ui: the desk's page */
};

struct ver {
	struct verify_opts	 o;
	struct ml_p256_key	*issuer[NOTE_MAX_ISSUERS];
	struct note_uplink	*up[NL_MAX_WORKERS];
	struct note_uplink	*dead[NL_MAX_WORKERS][8]; /* --follow: broken */
	size_t			 ndead[NL_MAX_WORKERS];
	/* each desk's handshake, run while its first chip is read */
	struct note_chan_bg	 bg[NL_MAX_WORKERS];
	const struct note_server *local;
	struct note_chan	*chan;		/* the channel key, CA, chain */
	pthread_mutex_t		 mu;
	size_t			 genuine, counterfeit, blank, errors;
	double			*lat;
	size_t			 nlat, latcap;
	struct ui_http		*ui;		/* --ui */
	pthread_t		 probe;		/* --ui online: server watch */
	bool			 probing;
	int			 server_up;	/* -1 unknown, 0 lost, 1 up */
	struct timespec		 t0, tlast;	/* line start, last verdict */
};

enum verdict_reason {
	V_GENUINE = 0,
	V_BLANK,
	V_CLONE,
	V_UNAUTHORIZED,
	V_UNREGISTERED,
	V_FEATURE,
	V_NOT_NOTE,
};

static const char *const vreason[] = {
	[V_GENUINE] = "",
	[V_BLANK] = "blank chip",
	[V_CLONE] = "chip key mismatch or clone",
	[V_UNAUTHORIZED] = "unauthorized writer",
	[V_UNREGISTERED] = "unregistered serial",
	[V_FEATURE] = "feature mismatch",
	[V_NOT_NOTE] = "not a note chip",
};

/*
 * Desk events (note_line.h): position states and verdicts.  With
 * --follow --json they are JSON lines; a web page subscribes here.
 */
static void
ver_event(void *ctx, const struct note_line_event *ev)
{
	struct ver *v = ctx;
	char name[160];

	if (v->ui != NULL && ev->state != NL_RESULT) {
		ui_http_publish(v->ui, "{\"type\":\"position\",\"t\":%lld,"
		    "\"position\":%zu,\"name\":%s,\"state\":\"%s\"}",
		    ui_now_ms(), ev->position, ui_json_str(ev->name, name,
		    sizeof(name)), note_line_state_name(ev->state));
	}
	if (!v->o.follow || ev->state == NL_RESULT) {
		return;		/* verdicts are printed by print_verdict() */
	}
	pthread_mutex_lock(&v->mu);
	if (v->o.json) {
		printf("{\"event\":\"%s\",\"position\":%zu}\n",
		    note_line_state_name(ev->state), ev->position);
	} else if (ev->state == NL_WAITING && isatty(STDOUT_FILENO)) {
		printf("position %zu: waiting for a note\n", ev->position);
	} else if (ev->state == NL_GONE) {
		printf("position %zu: reader not answering\n", ev->position);
	}
	fflush(stdout);
	pthread_mutex_unlock(&v->mu);
}

/* The page's server connection state, published when it changes. */
static void
server_state(struct ver *v, bool up, const char *why)
{
	char j[256];
	bool changed;

	pthread_mutex_lock(&v->mu);
	changed = v->server_up != (int)up;
	v->server_up = up;
	pthread_mutex_unlock(&v->mu);
	if (changed) {
		ui_http_publish(v->ui, "{\"type\":\"server\",\"t\":%lld,"
		    "\"state\":\"%s\",\"why\":%s}", ui_now_ms(),
		    up ? "connected" : "lost", ui_json_str(why, j, sizeof(j)));
	}
}

/* --ui online: is the server there?  Probed every second, so that the
 * page shows a lost connection before the next note. */
static void *
probe_main(void *arg)
{
	struct ver *v = arg;
	char why[128];
	int i;

	while (!note_line_stopping()) {
		bool up = st_server_reachable(note_chan_server(v->chan), 900,
		    why, sizeof(why)) == 0;

		server_state(v, up, up ? NULL : why);
		for (i = 0; i < 10 && !note_line_stopping(); i++) {
			usleep(100 * 1000);
		}
	}
	return NULL;
}

/* A note that got no verdict: the page says so, with what to do. */
static void
no_verdict(struct ver *v, size_t w, const char *chip, const char *why)
{
	char c[96], y[256], shown[CHIP_SERIAL_LEN + 1];

	if (v->ui == NULL) {
		return;
	}
	chip = note_chip_shown(chip, shown);
	server_state(v, false, why);
	ui_http_publish(v->ui, "{\"type\":\"check\",\"t\":%lld,"
	    "\"position\":%zu,\"chip\":%s,\"verdict\":\"ERROR\","
	    "\"reason\":\"server unreachable\",\"detail\":%s,"
	    "\"online\":true}", ui_now_ms(), w, ui_json_str(chip, c, sizeof(c)),
	    ui_json_str(why, y, sizeof(y)));
}

static int
ver_start(void *ctx, size_t w)
{
	struct ver *v = ctx;
	int r;

#ifdef ML_TEST_HOOKS
	if (v->local != NULL) {
		return note_uplink_local(v->local, &v->up[w]);
	}
#endif
	if (v->o.offline || !v->o.has_conn) {
		return 0;
	}
	/* joined before the first registry query (desk_uplink); a desk
	 * whose handshake fails reconnects per note */
	note_chan_bg_start(v->chan, &v->bg[w]);
	if (!v->bg[w].running &&
	    (r = note_chan_open(v->chan, &v->up[w])) != 0) {
		return v->o.follow ? 0 : r;
	}
	return 0;
}

/* The desk's channel from its background handshake: 0 when there is one
 * (logged why not otherwise). */
static int
desk_uplink(struct ver *v, size_t w)
{
	char why[128];
	int r;

	if ((r = note_chan_bg_join(&v->bg[w], &v->up[w], why,
	    sizeof(why))) != 0) {
		ml_err("%s", why);
		return r;
	}
	if (v->up[w] == NULL) {	/* the open that failed logged its cause */
		return ml_errf(ML_ERR_IO, "server %s: no channel",
		    note_chan_server(v->chan));
	}
	return 0;
}

/* The station signature kept on the chip, against the authorised keys. */
static bool
writer_ok(struct ver *v, const struct note_record *rec)
{
	uint8_t msg[64 + CHIP_SERIAL_LEN + NOTE_CHALLENGE_LEN + NOTE_MAX_FEATURE];
	size_t n, i;

	if (note_auth_msg(rec->challenge, rec->chip_serial, rec->feature,
	    rec->feature_len, msg, sizeof(msg), &n) != 0) {
		return false;
	}
	for (i = 0; i < v->o.nissuers; i++) {
		if (ml_p256_verify(v->issuer[i], msg, n, rec->station_sig,
		    sizeof(rec->station_sig)) == 0) {
			return true;
		}
	}
	return false;
}

/* Ask the registry (online).  0 with *ret filled, or ML_ERR_*. */
static int
query(struct ver *v, size_t w, const struct note_record *rec,
    const uint8_t pub[static ML_P256_PUB_LEN], struct note_reply *ret)
{
	uint8_t req[NOTE_MAX_FEATURE + 128], resp[NOTE_REPLY_MAX];
	struct ml_wr rw = ML_WR_FIXED(req, sizeof(req));
	size_t n;
	int r;

	ML_TRY(ml_tlv_put(&rw, TAG_FEAT_SERIAL, rec->chip_serial,
	    CHIP_SERIAL_LEN));
	ML_TRY(ml_tlv_put(&rw, TAG_FEAT_INFO, rec->feature, rec->feature_len));
	ML_TRY(ml_tlv_put(&rw, TAG_ENROL_PUB, pub, ML_P256_PUB_LEN));
	ML_TRY(note_uplink_call(v->up[w], NOTE_REC_QUERY, rw.p, rw.len, resp,
	    sizeof(resp), &n));
	ML_TRY(note_reply_parse(resp, n, ret));
	r = 0;
out:
	return r;
}

/* The verdict word: a blank chip carries no note at all (no forgery). */
static const char *
verdict_name(int reason)
{
	return reason == V_GENUINE ? "GENUINE" : reason == V_BLANK ? "BLANK" :
	    "COUNTERFEIT";
}

/*
 * One verdict: the terminal line or JSON line, the counters, and the
 * line's event subscriber (NL_RESULT) for anything watching the desk.
 */
/*
 * The verdict on the page: the note's public feature fields a clerk can
 * compare with the printed note ("ML1|prefix|serial|chk|mac|kfp": all but
 * the keyed mac).
 */
static void
publish_verdict(struct ver *v, size_t w, const char *chip, int reason,
    const char *detail, unsigned flags, double ms, const char *feat)
{
	char f[6][FEATURE_MAX_LEN + 1], e[7][96], dj[160];
	char shown[CHIP_SERIAL_LEN + 1];
	const char *p = feat;
	size_t i, n;

	if (v->ui == NULL) {
		return;
	}
	chip = note_chip_shown(chip, shown);
	memset(f, 0, sizeof(f));
	for (i = 0; p != NULL && *p != '\0' && i < 6; i++) {
		n = strcspn(p, "|");
		snprintf(f[i], sizeof(f[i]), "%.*s", (int)n, p);
		p += n;
		p += *p == '|';
	}
	if (strcmp(f[0], "ML1") != 0) {
		memset(f, 0, sizeof(f));
	}
	ui_http_publish(v->ui, "{\"type\":\"check\",\"t\":%lld,"
	    "\"position\":%zu,\"chip\":%s,\"verdict\":\"%s\",\"reason\":%s,"
	    "\"detail\":%s,\"prefix\":%s,\"serial\":%s,\"chk\":%s,"
	    "\"kfp\":%s,\"two_chips\":%s,\"online\":%s,\"ms\":%.1f}",
	    ui_now_ms(), w, ui_json_str(chip, e[0], sizeof(e[0])),
	    verdict_name(reason), ui_json_str(reason == V_GENUINE ? NULL :
	    vreason[reason], e[1], sizeof(e[1])), ui_json_str(detail, dj,
	    sizeof(dj)), ui_json_str(f[1][0] ? f[1] : NULL, e[2], sizeof(e[2])),
	    ui_json_str(f[2][0] ? f[2] : NULL, e[3], sizeof(e[3])),
	    ui_json_str(f[3][0] ? f[3] : NULL, e[4], sizeof(e[4])),
	    ui_json_str(f[5][0] ? f[5] : NULL, e[5], sizeof(e[5])),
	    (flags & NOTE_F_TWO_CHIPS) ? "true" : "false",
	    v->chan != NULL || v->local != NULL ? "true" : "false", ms);
}

static void
print_verdict(struct ver *v, size_t w, const char *note, const char *chip,
    int reason, const char *detail, unsigned flags, double ms)
{
	char shown[CHIP_SERIAL_LEN + 1];
	const char *c = note_chip_shown(chip, shown);
	struct note_line_event ev = { .position = w, .state = NL_RESULT,
	    .chip = c, .result = verdict_name(reason),
	    .detail = reason == V_GENUINE ? NULL : vreason[reason] };

	pthread_mutex_lock(&v->mu);
	if (reason == V_GENUINE) {
		v->genuine++;
	} else if (reason == V_BLANK) {
		v->blank++;
	} else {
		v->counterfeit++;
	}
	if (v->nlat == v->latcap) {
		size_t nc = v->latcap ? v->latcap * 2 : 1024;
		double *nl = realloc(v->lat, nc * sizeof(*nl));

		if (nl != NULL) {
			v->lat = nl;
			v->latcap = nc;
		}
	}
	if (v->nlat < v->latcap) {
		v->lat[v->nlat++] = ms;
	}
	clock_gettime(CLOCK_MONOTONIC, &v->tlast);
	if (v->o.json) {
		printf("{\"chip\":\"%s\",\"note\":\"%s\",\"verdict\":\"%s\"",
		    c, note, verdict_name(reason));
		if (v->o.follow) {
			printf(",\"position\":%zu", w);
		}
		if (reason != V_GENUINE) {
			printf(",\"reason\":\"%s\"", vreason[reason]);
		}
		if (detail != NULL) {
			printf(",\"detail\":\"%s\"", detail);
		}
		if (flags & NOTE_F_TWO_CHIPS) {
			printf(",\"flag\":\"serial presented by two chips\"");
		}
		printf(",\"ms\":%.3f}\n", ms);
	} else if (reason == V_GENUINE) {
		printf("GENUINE %s chip %s%s\n", note, c,
		    (flags & NOTE_F_TWO_CHIPS) ? " (flagged: serial also presented "
		    "by another chip)" : "");
	} else {
		printf("%s %s chip %s: %s%s%s%s\n", verdict_name(reason),
		    note[0] ? note : "-", c, vreason[reason], detail ? " (" : "",
		    detail ? detail : "", detail ? ")" : "");
	}
	if (v->o.beep && reason != V_GENUINE && reason != V_BLANK) {
		fputc('\a', stderr);
		fflush(stderr);
	}
	fflush(stdout);
	pthread_mutex_unlock(&v->mu);
	ver_event(v, &ev);
}

/* No verdict: the desk's channel could not be opened (chip NULL: before
 * the chip was read). */
static int
unreachable(struct ver *v, size_t w, const char *chip)
{
	int r;

	pthread_mutex_lock(&v->mu);
	v->errors++;
	pthread_mutex_unlock(&v->mu);
	if (chip != NULL) {
		r = ml_errf(ML_ERR_IO, "chip %s: no verdict: the registry "
		    "server %s cannot be reached", chip, v->o.conn.server);
	} else {
		r = ml_errf(ML_ERR_IO, "position %zu: no verdict: the "
		    "registry server %s cannot be reached", w,
		    v->o.conn.server);
	}
	ml_err("%s", ml_errmsg(r));
	no_verdict(v, w, chip, "the registry server cannot be reached");
	return v->o.follow ? 0 : r;
}

static int
ver_job(void *ctx, size_t w, struct chipcmd *cc, const char *image)
{
	struct ver *v = ctx;
	struct timespec t0, t1;
	struct chip_info ci;
	struct note_record rec;
	struct note_reply rep = { .status = NOTE_ST_OK };
	struct note_id id;
	uint8_t pub[ML_P256_PUB_LEN];
	char note[NOTE_ID_MAX + 1] = "", feat[NOTE_MAX_FEATURE + 1] = "";
	const char *detail = NULL;
	int reason = V_GENUINE, r;
	bool online, parsed, writer;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (v->o.follow && v->up[w] == NULL && !v->bg[w].running &&
	    v->chan != NULL && v->ndead[w] < ML_NELEM(v->dead[w]) &&
	    note_chan_open(v->chan, &v->up[w]) != 0) {
		v->up[w] = NULL;	/* the server is away: said above */
	}
	online = v->up[w] != NULL || v->bg[w].running;
	if (!online && v->chan != NULL) {
		return unreachable(v, w, NULL);
	}
	if ((r = chipcmd_info(cc, &ci)) != 0 || ci.kind != CHIP_KIND_NOTE) {
		reason = V_NOT_NOTE;
		snprintf(ci.serial, sizeof(ci.serial), "?");
		goto verdict;
	}
	r = note_chip_record(cc, &rec);
	if (r == ML_ERR_NOT_FOUND) {
		reason = V_BLANK;
		goto verdict;
	}
	if (r != 0) {
		reason = V_FEATURE;
		detail = "unreadable record";
		goto verdict;
	}
	parsed = feature_parse(rec.feature, rec.feature_len, &id) == 0;
	if (parsed) {
		note_id_str(&id, note);
		snprintf(feat, sizeof(feat), "%.*s", (int)rec.feature_len,
		    (const char *)rec.feature);
	}
	/* The chip proves the key it reports, over a fresh challenge. */
	if (note_chip_pub(cc, pub) != 0 ||
	    note_chip_prove(cc, pub, ci.serial, rec.feature,
	    rec.feature_len) != 0) {
		reason = V_CLONE;
		detail = "no proof of the chip key";
		goto verdict;
	}
	if (memcmp(rec.chip_serial, ci.serial, CHIP_SERIAL_LEN) != 0) {
		reason = V_CLONE;
		detail = "record names another chip";
		goto verdict;
	}
	/* Online: the registry's answer (the server also flags conflicts),
	 * over the channel opened while the chip was read. */
	if (online && v->up[w] == NULL && desk_uplink(v, w) != 0) {
		return unreachable(v, w, ci.serial);
	}
	if (online && parsed && (r = query(v, w, &rec, pub, &rep)) != 0) {
		pthread_mutex_lock(&v->mu);
		v->errors++;
		pthread_mutex_unlock(&v->mu);
		ml_err("chip %s: no verdict: registry query: %s", ci.serial,
		    ml_errmsg(r));
		no_verdict(v, w, ci.serial, r == ML_ERR_IO ? "the connection "
		    "to the registry server was lost" : ml_errmsg(r));
		if (v->o.follow && r == ML_ERR_IO) {
			/* reconnect for the next note; closed at the end
			 * (libp11: see below) */
			pthread_mutex_lock(&v->mu);
			v->dead[w][v->ndead[w]++] = v->up[w];
			v->up[w] = NULL;
			pthread_mutex_unlock(&v->mu);
			return 0;
		}
		return r == ML_ERR_IO ? r : 0;
	}
	if (!parsed) {
		reason = V_FEATURE;
		detail = "record altered (check code)";
		goto verdict;
	}
	if (feature_check_chip(rec.feature, rec.feature_len, pub) != 0) {
		reason = V_CLONE;
		detail = "record made for another chip key";
		goto verdict;
	}
	writer = v->o.nissuers == 0 || writer_ok(v, &rec);
	if (online && rep.status == NOTE_ST_REJECT) {
		switch (rep.reason) {
		case NOTE_R_UNREGISTERED:
			reason = writer ? V_UNREGISTERED : V_UNAUTHORIZED;
			break;
		case NOTE_R_FEATURE_MISMATCH:
			reason = V_FEATURE;
			break;
		case NOTE_R_CHIP_MISMATCH:
			reason = V_CLONE;
			break;
		default:
			reason = V_FEATURE;
			detail = note_reason_str(rep.reason);
			break;
		}
		goto verdict;
	}
	if (!writer) {
		reason = V_UNAUTHORIZED;
		detail = "station signature does not verify";
	}
verdict:
	/* online, a verdict only with the registry reachable (BN-8) */
	if (online && v->up[w] == NULL && desk_uplink(v, w) != 0) {
		return unreachable(v, w, ci.serial);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	print_verdict(v, w, note, ci.serial, reason, detail, rep.flags,
	    ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e6);
	publish_verdict(v, w, ci.serial, reason, detail, rep.flags,
	    ((t1.tv_sec - t0.tv_sec) * 1e9 + (t1.tv_nsec - t0.tv_nsec)) / 1e6,
	    feat);
	(void)image;
	return 0;
}

static int
cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: mintline-station verify --line SPEC [--chips DIR|IMAGE]\n"
	    "           [--issuer-pub SPEC ...] [--workers N] [--json]\n"
	    "           [--follow [--beep] [--ui ADDR [--ui-cert F --ui-key F]]]\n"
	    "           (--offline | --server HOST:PORT --ca F --cert F --key URI ...)\n"
	    "\n"
	    "  --issuer-pub SPEC  authorised issuer key (pkcs11: URI or PEM); needed\n"
	    "                     offline, checked online too when given\n"
	    "  --server ...       compare with the registry (online)\n"
	    "  --offline          decide from the chip alone: station signature and\n"
	    "                     chip key proof\n"
	    "  --follow           a desk: wait for a note, print its verdict, wait\n"
	    "                     for its removal, the next ... until SIGINT/SIGTERM\n"
	    "  --beep             terminal bell on COUNTERFEIT\n"
	    "  --ui ADDR          with --follow: serve the desk's page at ADDR\n"
	    "                     (127.0.0.1:8080; loopback only, unless...)\n"
	    "  --ui-cert FILE     ... a certificate and\n"
	    "  --ui-key FILE      key (PEM) are given: HTTPS on any address\n"
	    ST_CONN_USAGE
	    "verdicts: GENUINE, COUNTERFEIT (with the reason), BLANK (a chip with\n"
	    "no note written)\n"
	    "exit: 0 every note GENUINE, 3 at least one COUNTERFEIT, 2 some chips\n"
	    "BLANK (none counterfeit), 1 error\n");
}

int	 verify_run(int argc, char **argv, const struct note_server *local);

/* verify_run's options into v->o: 0, 1 (usage printed) or 2 (--help). */
static int
verify_opts(struct ver *v, int argc, char **argv)
{
	static const struct option lo[] = {
		{ "line", required_argument, NULL, 'l' },
		{ "chips", required_argument, NULL, 'c' },
		{ "issuer-pub", required_argument, NULL, 'i' },
		ST_CONN_LONG_OPTS,
		{ "offline", no_argument, NULL, 'o' },
		{ "workers", required_argument, NULL, 'w' },
		{ "json", no_argument, NULL, 'j' },
		{ "follow", no_argument, NULL, 'F' },
		{ "beep", no_argument, NULL, 'B' },
		{ "ui", required_argument, NULL, 'U' },
		{ "ui-cert", required_argument, NULL, 'C' },
		{ "ui-key", required_argument, NULL, 'K' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int c;

	st_conn_default(&v->o.conn);
	v->o.conn.kind = HS_KIND_STATION;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:c:i:s:ow:jFBh", lo, NULL)) != -1) {
		switch (c) {
		case 'l': v->o.line = optarg; break;
		case 'c': v->o.chips = optarg; break;
		case 'i':
			if (v->o.nissuers == NOTE_MAX_ISSUERS) {
				fprintf(stderr, "verify: at most %d issuer keys "
				    "(--issuer-pub)\n", NOTE_MAX_ISSUERS);
				return 1;
			}
			v->o.issuer[v->o.nissuers++] = optarg;
			break;
		case 'o': v->o.offline = true; break;
		case 'w':
			if (ml_parse_size(optarg, "--workers", 0, NL_MAX_WORKERS,
			    &v->o.workers) != 0) {
				fprintf(stderr, "verify: %s\n",
				    ml_errmsg(ML_ERR_ARG));
				return 1;
			}
			break;
		case 'j': v->o.json = true; break;
		case 'F': v->o.follow = true; break;
		case 'B': v->o.beep = true; break;
		case 'U': v->o.ui = optarg; break;
		case 'C': v->o.ui_cert = optarg; break;
		case 'K': v->o.ui_key = optarg; break;
		case 'h': usage(stdout); return 2;
		default:
			if (c >= ST_CONN_OPT_BASE &&
			    st_conn_option(&v->o.conn, c, optarg) == 0) {
				v->o.has_conn = true;
				break;
			}
			usage(stderr);
			return 1;
		}
	}
	if (v->o.line == NULL || v->o.workers > NL_MAX_WORKERS ||
	    (v->o.offline && v->o.nissuers == 0) ||
	    (!v->o.offline && !v->o.has_conn &&
	    v->local == NULL)) {
		usage(stderr);
		return 1;
	}
	if ((v->o.ui != NULL || v->o.ui_cert != NULL || v->o.ui_key != NULL) &&
	    (!v->o.follow || v->o.ui == NULL)) {
		fprintf(stderr, "verify: --ui ADDR is for a desk (--follow); "
		    "--ui-cert and --ui-key go with --ui\n");
		return 1;
	}
	return 0;
}

/*
 * verify_run's set-up: the issuer public keys (offline verdicts), the
 * channel to the server (online), signals for a running desk and the desk
 * page with its server probe.  Returns false after printing why.
 */
static bool
verify_setup(struct ver *v)
{
	uint8_t pub[ML_P256_PUB_LEN];
	struct key_provider prov;
	size_t i;
	int r;

	key_p11_provider(&prov, NULL);
	for (i = 0; i < v->o.nissuers; i++) {
		if ((r = key_pub_load(&prov, v->o.issuer[i], pub)) != 0 ||
		    (r = ml_p256_key_from_pub(pub, sizeof(pub), &v->issuer[i])) != 0) {
			fprintf(stderr, "verify: issuer key %zu: %s\n", i + 1,
			    ml_errmsg(r));
			return false;
		}
	}
	if (!v->o.offline && v->o.has_conn && v->local == NULL &&
	    (r = note_chan_new(&v->o.conn, &v->chan)) != 0) {
		fprintf(stderr, "verify: channel: %s\n", ml_errmsg(r));
		return false;
	}
	if (v->o.follow) {
		note_line_stop_on_signals();
	}
	v->server_up = -1;
	if (v->o.ui != NULL) {
		struct ui_http_cfg uc = { .listen = v->o.ui, .cert = v->o.ui_cert,
		    .key = v->o.ui_key, .page = "desk" };
		char a[160], srv[160];
		size_t np = 0;

		if ((r = ui_http_start(&uc, &v->ui)) != 0) {
			fprintf(stderr, "verify: %s\n", ml_errmsg(r));
			return false;
		}
		if (note_line_positions(v->o.line, &np) != 0) {
			np = 0;
		}
		ui_http_publish(v->ui, "{\"type\":\"config\",\"t\":%lld,"
		    "\"mode\":\"%s\",\"server\":%s,\"line\":%s,"
		    "\"positions\":%zu,\"issuers\":%zu}", ui_now_ms(),
		    v->o.offline ? "offline" : "online",
		    ui_json_str(v->chan != NULL ? note_chan_server(v->chan) :
		    v->o.offline ? NULL : "in-process", srv, sizeof(srv)),
		    ui_json_str(v->o.line, a, sizeof(a)), np, v->o.nissuers);
		if (v->chan != NULL && pthread_create(&v->probe, NULL, probe_main,
		    v) == 0) {
			v->probing = true;
		}
	}
	return true;
}

/* verify_run's loop: the line runs ver_job on every chip until it is
 * empty (with --follow, until a signal); then the probe, the page and the
 * uplinks stop. */
static int
verify_loop(struct ver *v, size_t *chips)
{
	struct note_line_cfg lc;
	size_t i;
	int r;

	lc = (struct note_line_cfg){ .link_spec = v->o.line, .chips = v->o.chips,
	    .workers = v->o.workers ? v->o.workers : NL_MAX_WORKERS,
	    .job = ver_job, .start = ver_start, .ctx = v,
	    .follow = v->o.follow, .event = ver_event };
	clock_gettime(CLOCK_MONOTONIC, &v->t0);
	r = note_line_run(&lc, chips);
	if (v->probing) {
		note_line_stop();	/* the line is over: so is the probe */
		pthread_join(v->probe, NULL);
	}
	ui_http_stop(v->ui);
	v->ui = NULL;
	/* Closed only now: closing an hs link finalises the PKCS#11 module
	 * for the whole process (libp11). */
	for (i = 0; i < NL_MAX_WORKERS; i++) {
		struct note_uplink *up = NULL;
		char why[128];
		size_t k;

		/* a desk that never needed its channel */
		if (note_chan_bg_join(&v->bg[i], &up, why, sizeof(why)) == 0) {
			note_uplink_close(up);
		}
		note_uplink_close(v->up[i]);
		for (k = 0; k < v->ndead[i]; k++) {
			note_uplink_close(v->dead[i][k]);
		}
	}
	return r;
}

/* verify_run's report: the verdict counts and latency; the exit status. */
static int
verify_report(struct ver *v, int r)
{
	if (v->nlat > 0) {
		/* the line's own time: from its start (the positions' first
		 * handshakes) to the last verdict, start-up and a desk's
		 * idle wait after it not counted */
		double secs = (v->tlast.tv_sec - v->t0.tv_sec) +
		    (v->tlast.tv_nsec - v->t0.tv_nsec) / 1e9;

		qsort(v->lat, v->nlat, sizeof(double), cmp_dbl);
		fprintf(stderr, "verify: %zu chip(s): %zu GENUINE, %zu COUNTERFEIT, "
		    "%zu BLANK, %zu error(s); verdict latency median %.2f ms, p99 "
		    "%.2f ms; %.2f s to the last verdict, %.0f verdicts/s\n",
		    v->genuine + v->counterfeit + v->blank,
		    v->genuine, v->counterfeit, v->blank, v->errors,
		    v->lat[v->nlat / 2], v->lat[(v->nlat * 99) / 100], secs,
		    secs > 0 ? (double)v->nlat / secs : 0.0);
	}
	if (r != 0) {
		fprintf(stderr, "verify: %s\n", ml_errmsg(r));
		return ST_EXIT_ERROR;
	}
	if (v->errors != 0) {
		fprintf(stderr, "verify: %zu chip(s) without a verdict (the "
		    "causes are above)\n", v->errors);
		return ST_EXIT_ERROR;
	}
	return v->counterfeit ? ST_EXIT_COUNTERFEIT : v->blank ?
	    ST_EXIT_PARTIAL : ST_EXIT_OK;
}

int
verify_run(int argc, char **argv, const struct note_server *local)
{
	struct ver *v;
	size_t i, chips = 0;
	int r, rc = ST_EXIT_ERROR;

	if ((v = calloc(1, sizeof(*v))) == NULL) {
		return ST_EXIT_ERROR;
	}
	pthread_mutex_init(&v->mu, NULL);
	v->local = local;
	if ((r = verify_opts(v, argc, argv)) != 0) {
		rc = r == 2 ? ST_EXIT_OK : ST_EXIT_ERROR;
	} else if (verify_setup(v)) {
		r = verify_loop(v, &chips);
		rc = verify_report(v, r);
	}
	for (i = 0; i < NOTE_MAX_ISSUERS; i++) {
		ml_p256_key_free(v->issuer[i]);
	}
	free(v->lat);
	note_chan_free(v->chan);
	pthread_mutex_destroy(&v->mu);
	free(v);
	return rc;
}

int
cmd_verify(const struct st_opts *so, int argc, char **argv)
{
	(void)so;
	return verify_run(argc, argv, NULL);
}
