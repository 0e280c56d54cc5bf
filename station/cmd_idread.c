/*
 * mintline-station id-read: read the ID card in the field once (ID-1),
 * and the option handling and set-up it shares with `reader`
 * (cmd_idread.h).
 *
 *	mintline-station id-read --link SPEC --pin-source SRC
 *	    --server HOST:PORT --ca ROOT.pem --cert READER.pem [--json]
 *	    [--photo FILE] [--wait MS]
 *
 * Test builds only (-Dtest_hooks=true): --server loopback:SAMSPEC runs
 * the server's ID-reading code and a SAM back-end in this process instead
 * of connecting (no handshake then), and --inject-* damage the upload.
 * A default build has neither, nor the server code they need.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ml_err.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_secret.h"
#include "ml_wipe.h"

#include "chip_proto.h"
#include "chiplink.h"
#include "hs_api.h"
#include "key_p11.h"
#include "idpkt.h"
#ifdef ML_TEST_HOOKS	/* server/: the loopback seam only */
#include "idr_srv.h"
#include "sam.h"
#endif

#include "cmd_idread.h"
#include "st.h"

#define PIN_MAX		64

struct st_idr {
	struct st_idr_opts	 o;
	struct chiplink		*link;
	struct idr_reader	*ir;
	/* loopback */
	struct sam		*sam;
	struct idr_srv		*srv;
	struct hs_peer		 peer;
	/* network */
	char			 host[256];
	char			 port[ML_PORT_STRLEN];
	struct hs_trust		*trust;
	struct hs_chain		 chain;
	bool			 have_chain;
	struct key		 chip_key;	/* in the reader chip */
	struct key		*p11;		/* or through PKCS#11 */
	struct hs_client_cfg	 hcfg;
	char			 serial[HS_MAX_SERIAL + 1];
};

enum {
	OPT_READER_SLOT = 256, OPT_CARD_SLOT, OPT_PIN_SOURCE, OPT_SO_PIN_SOURCE,
	OPT_CA, OPT_CERT, OPT_SERIAL, OPT_FLOW, OPT_JSON, OPT_PHOTO, OPT_WAIT,
	OPT_CACHE_MODE, OPT_IDLE, OPT_PKT_SIZE, OPT_PER_RECORD, OPT_TIMEOUT, OPT_SOCKET,
	OPT_INJ_LOSS, OPT_INJ_CORRUPT, OPT_INJ_DUP, OPT_INJ_REORDER,
	OPT_INJ_NEVER, OPT_INJ_SEED, OPT_INJ_REMOVE, OPT_INJ_WHOLE,
	OPT_KEY, OPT_MODULE,
};

static const struct option idr_long_opts[] = {
	{ "link",		required_argument, NULL, 'l' },
	{ "reader-slot",	required_argument, NULL, OPT_READER_SLOT },
	{ "card-slot",		required_argument, NULL, OPT_CARD_SLOT },
	{ "pin-source",		required_argument, NULL, OPT_PIN_SOURCE },
	{ "so-pin-source",	required_argument, NULL, OPT_SO_PIN_SOURCE },
	{ "server",		required_argument, NULL, 's' },
	{ "ca",			required_argument, NULL, OPT_CA },
	{ "cert",		required_argument, NULL, OPT_CERT },
	{ "serial",		required_argument, NULL, OPT_SERIAL },
	{ "key",		required_argument, NULL, OPT_KEY },
	{ "module",		required_argument, NULL, OPT_MODULE },
	{ "flow",		required_argument, NULL, OPT_FLOW },
	{ "json",		no_argument,	   NULL, OPT_JSON },
	{ "photo",		required_argument, NULL, OPT_PHOTO },
	{ "wait",		required_argument, NULL, OPT_WAIT },
	{ "cache-mode",		required_argument, NULL, OPT_CACHE_MODE },
	{ "idle-timeout",	required_argument, NULL, OPT_IDLE },
	{ "pkt-size",		required_argument, NULL, OPT_PKT_SIZE },
	{ "pkts-per-record",	required_argument, NULL, OPT_PER_RECORD },
	{ "timeout",		required_argument, NULL, OPT_TIMEOUT },
	{ "socket",		required_argument, NULL, OPT_SOCKET },
#ifdef ML_TEST_HOOKS
	{ "inject-loss",	required_argument, NULL, OPT_INJ_LOSS },
	{ "inject-corrupt",	required_argument, NULL, OPT_INJ_CORRUPT },
	{ "inject-dup",		required_argument, NULL, OPT_INJ_DUP },
	{ "inject-reorder",	no_argument,	   NULL, OPT_INJ_REORDER },
	{ "inject-never",	required_argument, NULL, OPT_INJ_NEVER },
	{ "inject-seed",	required_argument, NULL, OPT_INJ_SEED },
	{ "inject-remove-after", required_argument, NULL, OPT_INJ_REMOVE },
	{ "inject-whole-resend", no_argument,	   NULL, OPT_INJ_WHOLE },
#endif
	{ "verbose",		no_argument,	   NULL, 'v' },
	{ "help",		no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

#ifdef ML_TEST_HOOKS
#define IDR_USAGE_TEST \
	"  test only: --server loopback:SAMSPEC (the server's code in process),\n" \
	"      --inject-loss|--inject-corrupt|--inject-dup PERMILLE,\n" \
	"      --inject-reorder, --inject-never IDX, --inject-seed N,\n" \
	"      --inject-remove-after BLOCKS, --inject-whole-resend\n"
#else
#define IDR_USAGE_TEST	""
#endif

static void
idr_usage(const char *cmd, FILE *f)
{
	fprintf(f,
	    "usage: mintline-station %s --link SPEC --server HOST:PORT\n"
	    "           [--pin-source SRC] [--ca ROOT.pem --cert READER.pem] [OPTIONS]\n"
	    "\n"
	    "  -l, --link SPEC          chip link: inproc:DIR or pcsc:[FILTER]\n"
	    "      --reader-slot N      reader secure chip position (default 0)\n"
	    "      --card-slot N        the RF field (default 1)\n"
	    "      --pin-source SRC     reader chip user PIN: file:PATH or PATH\n"
	    "                           (default: prompt)\n"
	    "      --so-pin-source SRC  SO PIN, needed to change --cache-mode\n"
	    "  -s, --server HOST:PORT   the server\n"
	    "      --ca FILE            CA root the server must chain to\n"
	    "      --cert FILE          this reader's certificate chain (PEM)\n"
	    "      --serial S           reader serial (default: the chip's)\n"
	    "      --key URI --module SO  the reader key through PKCS#11 (e.g.\n"
	    "                           mintline-pkcs11.so on pcsc:); default:\n"
	    "                           SIGN/ECDH commands on the reader chip\n"
	    "      --flow a|b           handshake A (ID-2, default) or B (ID-4)\n"
	    "      --json               print JSON instead of text\n"
	    "      --photo FILE         write the photo there\n"
	    "      --wait MS            id-read: wait that long for a card (0)\n"
	    "      --cache-mode multi|single   (ID-13; needs --so-pin-source)\n"
	    "      --idle-timeout MS    no card this long clears the cache (30000)\n"
	    "      --pkt-size N         upload packet size (%d)\n"
	    "      --pkts-per-record N  packets per channel record, 1..32 (%d)\n"
	    "      --timeout MS         per server reply (%d)\n"
	    "      --socket PATH        reader: answer commands on a UNIX socket\n"
	    "  -v, --verbose\n"
	    IDR_USAGE_TEST
	    "\n"
	    "exit: 0 read, 1 error, 2 usage, 3 no card / card removed,\n"
	    "      4 the SAM cannot decrypt the card, 5 upload failed\n",
	    cmd, IDR_PKT_DEFAULT, IDR_BURST_DEFAULT, IDR_DEADLINE_MS);
}

/* --server loopback:SAMSPEC: the server's code in process (test builds). */
static bool
idr_loopback(const struct st_idr_opts *o)
{
#ifdef ML_TEST_HOOKS
	return strncmp(o->server, "loopback:", 9) == 0;
#else
	(void)o;
	return false;
#endif
}

int
st_idr_parse(const char *cmd, int argc, char **argv, struct st_idr_opts *o)
{
	uint64_t v;
	int c;

	memset(o, 0, sizeof(*o));
	o->rc.reader_slot = 0;
	o->rc.card_slot = 1;
	o->flow = HS_FLOW_A;
	o->faults.never = -1;
	o->remove_after = -1;
	optind = 1;
	while ((c = getopt_long(argc, argv, "l:s:vh", idr_long_opts,
	    NULL)) != -1) {
		switch (c) {
		case 'l':
			o->link = optarg;
			break;
		case 's':
			o->server = optarg;
			break;
		case 'v':
			o->verbose = true;
			break;
		case 'h':
			idr_usage(cmd, stdout);
			return -1;
		case OPT_READER_SLOT:
		case OPT_CARD_SLOT:
			if (ml_parse_u64(optarg, NULL, 0, 255, &v) != 0) {
				goto bad;
			}
			if (c == OPT_READER_SLOT) {
				o->rc.reader_slot = v;
			} else {
				o->rc.card_slot = v;
			}
			break;
		case OPT_PIN_SOURCE:
			o->pin_source = optarg;
			break;
		case OPT_SO_PIN_SOURCE:
			o->so_pin_source = optarg;
			break;
		case OPT_CA:
			o->ca = optarg;
			break;
		case OPT_CERT:
			o->cert = optarg;
			break;
		case OPT_SERIAL:
			o->serial = optarg;
			break;
		case OPT_KEY:
			o->key = optarg;
			break;
		case OPT_MODULE:
			o->module = optarg;
			break;
		case OPT_FLOW:
			if (strcmp(optarg, "a") == 0 || strcmp(optarg, "A") == 0) {
				o->flow = HS_FLOW_A;
			} else if (strcmp(optarg, "b") == 0 ||
			    strcmp(optarg, "B") == 0) {
				o->flow = HS_FLOW_B;
			} else {
				goto bad;
			}
			break;
		case OPT_JSON:
			o->json = true;
			break;
		case OPT_PHOTO:
			o->photo = optarg;
			break;
		case OPT_WAIT:
			if (ml_parse_u64(optarg, NULL, 0, 86400000, &v) != 0) {
				goto bad;
			}
			o->wait_ms = (int)v;
			break;
		case OPT_CACHE_MODE:
			if (strcmp(optarg, "multi") == 0) {
				o->rc.cache_mode = CACHE_MODE_MULTI;
			} else if (strcmp(optarg, "single") == 0) {
				o->rc.cache_mode = CACHE_MODE_SINGLE;
			} else {
				goto bad;
			}
			break;
		case OPT_IDLE:
			if (ml_parse_u64(optarg, NULL, 0, 86400000, &v) != 0 || v == 0) {
				goto bad;
			}
			o->rc.idle_ms = (uint32_t)v;
			break;
		case OPT_PKT_SIZE:
			if (ml_parse_u64(optarg, NULL, 0, IDR_PKT_MAX, &v) != 0 ||
			    v < IDR_PKT_MIN) {
				goto bad;
			}
			o->rc.pkt_size = (uint16_t)v;
			break;
		case OPT_PER_RECORD:
			if (ml_parse_u64(optarg, NULL, 0, IDR_BURST_MAX, &v) != 0 || v == 0) {
				goto bad;
			}
			o->rc.per_record = (uint8_t)v;
			break;
		case OPT_TIMEOUT:
			if (ml_parse_u64(optarg, NULL, 0, 600000, &v) != 0 || v == 0) {
				goto bad;
			}
			o->rc.timeout_ms = (int)v;
			break;
		case OPT_SOCKET:
			o->socket = optarg;
			break;
#ifdef ML_TEST_HOOKS
		case OPT_INJ_LOSS:
		case OPT_INJ_CORRUPT:
		case OPT_INJ_DUP:
			if (ml_parse_u64(optarg, NULL, 0, 1000, &v) != 0) {
				goto bad;
			}
			if (c == OPT_INJ_LOSS) {
				o->faults.loss_pm = (unsigned)v;
			} else if (c == OPT_INJ_CORRUPT) {
				o->faults.corrupt_pm = (unsigned)v;
			} else {
				o->faults.dup_pm = (unsigned)v;
			}
			break;
		case OPT_INJ_REORDER:
			o->faults.reorder = true;
			break;
		case OPT_INJ_NEVER:
			if (ml_parse_u64(optarg, NULL, 0, IDR_MAX_PKTS, &v) != 0) {
				goto bad;
			}
			o->faults.never = (int)v;
			break;
		case OPT_INJ_SEED:
			if (ml_parse_u64(optarg, NULL, 0, ~0ul, &v) != 0) {
				goto bad;
			}
			o->faults.seed = v;
			break;
		case OPT_INJ_REMOVE:
			if (ml_parse_u64(optarg, NULL, 0, 1000, &v) != 0) {
				goto bad;
			}
			o->remove_after = (int)v;
			break;
		case OPT_INJ_WHOLE:
			o->faults.whole_resend = true;
			break;
#endif
		default:
			idr_usage(cmd, stderr);
			return IDR_EXIT_USAGE;
		}
	}
	if (optind != argc || o->link == NULL || o->server == NULL) {
		fprintf(stderr, "mintline-station %s: --link and --server are "
		    "required\n", cmd);
		return IDR_EXIT_USAGE;
	}
	if (!idr_loopback(o) && (o->ca == NULL || o->cert == NULL)) {
		fprintf(stderr, "mintline-station %s: --ca and --cert are "
		    "required with a network server\n", cmd);
		return IDR_EXIT_USAGE;
	}
	return 0;
bad:
	fprintf(stderr, "mintline-station %s: bad value for --%s: %s\n", cmd,
	    argv[optind - 1][0] == '-' ? argv[optind - 1] + 2 : "?", optarg);
	return IDR_EXIT_USAGE;
}

int
st_idr_open(const struct st_idr_opts *o, struct st_idr **ret)
{
	struct st_idr *s = NULL;
	char pin[PIN_MAX], so_pin[PIN_MAX];
	int r;

	memset(pin, 0, sizeof(pin));
	memset(so_pin, 0, sizeof(so_pin));
	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	s->o = *o;
	ML_TRY(ml_pin_read(o->pin_source, "reader chip PIN", pin, sizeof(pin)));
	s->o.rc.pin = pin;
	if (o->so_pin_source != NULL) {
		ML_TRY(ml_pin_read(o->so_pin_source, "reader chip SO PIN",
		    so_pin, sizeof(so_pin)));
		s->o.rc.so_pin = so_pin;
	}
	ML_TRY(chiplink_open(o->link, &s->link));
	if ((r = idr_reader_open(s->link, &s->o.rc, &s->ir)) != 0) {
		ml_err("reader secure chip at position %zu: %s",
		    o->rc.reader_slot, ml_errmsg(r));
		goto out;
	}
	s->o.rc.pin = NULL;
	s->o.rc.so_pin = NULL;
	/* ID-9: the idle clock lives in this process.  A reader chip that
	 * outlived a crashed host (PC/SC: its own power) may still hold a
	 * card's data for which no one counted the time away: start empty,
	 * as an orderly exit leaves it (ID-12).  Found by
	 * tests/fault/pcsc-reader-cache.sh. */
	if ((r = idr_reader_forget(s->ir)) != 0) {
		ml_err("reader secure chip: cannot clear the ID cache: %s",
		    ml_errmsg(r));
		goto out;
	}
#ifdef ML_TEST_HOOKS
	if (o->remove_after >= 0) {
		idr_reader_test_remove_after(s->ir, o->remove_after);
	}
#endif
	snprintf(s->serial, sizeof(s->serial), "%s", o->serial != NULL ?
	    o->serial : idr_reader_serial(s->ir));

#ifdef ML_TEST_HOOKS
	if (idr_loopback(o)) {
		/* the server's code in process: no network, no handshake */
		ML_TRY(sam_open(o->server + 9, &s->sam));
		ML_TRY(idr_srv_new(NULL, s->sam, &s->srv));
		s->peer.flow = (enum hs_flow)o->flow;
		s->peer.kind = HS_KIND_READER;
		snprintf(s->peer.serial, sizeof(s->peer.serial), "%s",
		    s->serial);
		snprintf(s->peer.certno, sizeof(s->peer.certno), "LOOPBACK");
	} else
#endif
	{
		ML_TRY(ml_hostport_split(o->server, s->host, sizeof(s->host),
		    s->port));
		ML_TRY(hs_trust_load(o->ca, NULL, &s->trust));
		ML_TRY(hs_chain_load(o->cert, &s->chain));
		s->have_chain = true;
		/*= REQ ID-14 (secure chip): the reader key stays inside */
		if (o->key != NULL) {
			/* through PKCS#11 (C_Sign, C_DeriveKey, ...) */
			if ((r = key_p11_open(o->module, o->key, &s->p11)) != 0) {
				ml_err("reader key: %s", ml_errmsg(r));
				goto out;
			}
		} else if ((r = idr_reader_key(s->ir, &s->chip_key)) != 0) {
			ml_err("no signing key in the reader secure chip: %s",
			    ml_errmsg(r));
			goto out;
		}
		s->hcfg.flow = (enum hs_flow)o->flow;
		s->hcfg.kind = HS_KIND_READER;
		s->hcfg.cred.key = s->p11 != NULL ? s->p11 : &s->chip_key;
		s->hcfg.cred.chain = s->chain.blob;
		s->hcfg.cred.nchain = s->chain.n;
		s->hcfg.trust = s->trust;
		s->hcfg.serial = s->serial;
		s->hcfg.timeout_ms = o->rc.timeout_ms;
	}
	*ret = s;
	s = NULL;
	r = 0;
out:
	ml_wipe(pin, sizeof(pin));
	ml_wipe(so_pin, sizeof(so_pin));
	st_idr_close(s);
	return r;
}

void
st_idr_close(struct st_idr *s)
{
	if (s == NULL) {
		return;
	}
	idr_reader_close(s->ir);	/* ID-12: CACHE CLEAR 0 */
	chiplink_close(s->link);
#ifdef ML_TEST_HOOKS
	idr_srv_free(s->srv);
	sam_close(s->sam);
#endif
	hs_trust_free(s->trust);
	key_free(s->p11);
	if (s->have_chain) {
		hs_chain_free(&s->chain);
	}
	ml_freezero(s, sizeof(*s));
}

struct idr_reader *
st_idr_reader(struct st_idr *s)
{
	return s->ir;
}

struct chiplink *
st_idr_link(struct st_idr *s)
{
	return s->link;
}

const struct st_idr_opts *
st_idr_options(const struct st_idr *s)
{
	return &s->o;
}

/*
 *= REQ ID-1 (no SAM)
 *# A read command ... makes the reader ask the server for a transport key.
 */
static int
st_connect(void *ctx, struct idr_link *ret)
{
	struct st_idr *s = ctx;
	struct hs_chan *c = NULL;
	int alert = 0;
	int r;

#ifdef ML_TEST_HOOKS
	if (s->srv != NULL) {
		return idr_link_loop(idr_srv_handle, s->srv, &s->peer, ret);
	}
#endif
	if ((r = st_server_connect(s->o.server, &s->hcfg, &c,
	    &alert)) != 0) {
		ml_err("%s", ml_errmsg(r));
		/* the server failing to authenticate (bad signature, R3 that
		 * does not open: a damaged or forged server message) is not
		 * the SAM's verdict on the card (exit 4); found by
		 * tests/fault */
		return r == ML_ERR_AUTH ? ml_errrecode(r, ML_ERR_IO) : r;
	}
	idr_link_hs(c, ret);
	return 0;
}

int
st_idr_read(struct st_idr *s, FILE *out, struct idr_read_info *ret_ri)
{
	struct idc_info *ii = NULL;
	struct idr_read_info ri;
	int r;

	memset(&ri, 0, sizeof(ri));
	ML_ENSURE((ii = calloc(1, sizeof(*ii))) != NULL, ML_ERR_NOMEM);
	r = idr_reader_read(s->ir, st_connect, s, &s->o.faults, ii, &ri);
	if (s->o.verbose) {
		fprintf(stderr, "read: %s%s; upload %u packets (%llu bytes), "
		    "%u retransmission rounds, %u re-sent\n",
		    ri.from_cache ? "from the secure chip (no server)" :
		    "through the server",
		    ri.data_cached ? ", encrypted data from the chip cache" :
		    "", ri.up.pkts, (unsigned long long)ri.up.bytes,
		    ri.up.rounds, ri.up.resent);
	}
	ML_TRY(r);
	ML_TRY(idr_print_info(out, ii, s->o.json, s->o.photo));
	if (ret_ri != NULL) {
		*ret_ri = ri;
	}
	r = 0;
out:
	if (ii != NULL) {
		idc_info_clear(ii);
		free(ii);
	}
	return r;
}

int
st_idr_exit_code(int r)
{
	switch (r) {
	case 0:
		return IDR_EXIT_OK;
	case ML_ERR_REMOVED:
		return IDR_EXIT_NO_CARD;
	case ML_ERR_AUTH:
		return IDR_EXIT_UNREADABLE;
	case ML_ERR_TIMEOUT:
	case ML_ERR_TOO_LARGE:
	case ML_ERR_FULL:
		return IDR_EXIT_UPLOAD;
	}
	return IDR_EXIT_ERROR;
}

const char *
st_idr_explain(int r)
{
	switch (r) {
	case ML_ERR_REMOVED:
		return "no card in the field, or the card left during the read";
	case ML_ERR_AUTH:
		return "the SAM cannot decrypt this card (unknown or damaged "
		    "card)";
	case ML_ERR_TIMEOUT:
		return "the upload did not complete (a packet never arrived, "
		    "or the server deadline passed)";
	case ML_ERR_TOO_LARGE:
		return "the upload broke the server's packet limit";
	case ML_ERR_FULL:
		return "the server has too many uploads in progress";
	case ML_ERR_REJECTED:
		return "the server refused this reader";
	case ML_ERR_FORMAT:
		return "the card or the server answered something malformed";
	}
	return ml_errmsg(r);
}

/* Wait up to ms for a card in the field (0: look once). */
static int
wait_card(struct st_idr *s, int ms)
{
	uint64_t end = idr_now_ms() + (uint64_t)ms;
	struct chiplink_slot_info si;
	size_t slot;
	int r;

	for (;;) {
		ML_TRY(chiplink_slot_info(s->link, s->o.rc.card_slot, &si));
		if (si.present) {
			r = 0;
			goto out;
		}
		if (idr_now_ms() >= end) {
			r = ML_ERR_REMOVED;
			goto out;
		}
		r = chiplink_wait(s->link, (int)(end - idr_now_ms()), &slot);
		ML_ENSURE(r == 0 || r == ML_ERR_TIMEOUT, r);
	}
out:
	return r;
}

int
cmd_idread(const struct st_opts *so, int argc, char **argv)
{
	struct st_idr_opts o;
	struct st_idr *s = NULL;
	int pr, r;

	if ((pr = st_idr_parse("id-read", argc, argv, &o)) != 0) {
		return pr < 0 ? IDR_EXIT_OK : pr;
	}
	if (o.verbose) {
		ml_log_set_level(ML_LOG_INFO);
	}
	if ((r = st_idr_open(&o, &s)) != 0) {
		fprintf(stderr, "mintline-station id-read: %s\n",
		    ml_errmsg(r));
		return IDR_EXIT_ERROR;
	}
	if ((r = wait_card(s, o.wait_ms)) == 0) {
		r = idr_reader_tick(st_idr_reader(s));	/* ID-6 pre-read */
	}
	if (r == 0) {
		r = st_idr_read(s, stdout, NULL);
	}
	if (r != 0) {
		fprintf(stderr, "mintline-station id-read: %s (%s)\n",
		    st_idr_explain(r), ml_errname(r));
	}
	st_idr_close(s);
	return st_idr_exit_code(r);
}
