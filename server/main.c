/*
 * mintline-server: handshakes A and B with readers and stations, the
 * channel, the registry.  See man/mintline-server.8.
 *
 *	mintline-server [run] [options]      serve (default)
 *	mintline-server enroll --registry DB [--factory TEXT] CERT.pem...
 *	mintline-server flag   --registry DB [--clear] SERIAL
 *	mintline-server show   --registry DB SERIAL
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_wipe.h"
#include "srv.h"

#define DEFAULT_MODULE	"/usr/lib/softhsm/libsofthsm2.so"

enum {
	OPT_READ_TIMEOUT = 256, OPT_IDLE_TIMEOUT, OPT_MAX_CONNS, OPT_R1_LIFE,
	OPT_STATS, OPT_FACTORY, OPT_CLEAR, OPT_CONFIG,
};

static const struct option long_opts[] = {
	{ "listen",		required_argument, NULL, 'l' },
	{ "ca",			required_argument, NULL, 'a' },
	{ "crl",		required_argument, NULL, 'r' },
	{ "cert",		required_argument, NULL, 'c' },
	{ "key",		required_argument, NULL, 'k' },
	{ "module",		required_argument, NULL, 'm' },
	{ "registry",		required_argument, NULL, 'g' },
	{ "workers",		required_argument, NULL, 'w' },
	{ "read-timeout",	required_argument, NULL, OPT_READ_TIMEOUT },
	{ "idle-timeout",	required_argument, NULL, OPT_IDLE_TIMEOUT },
	{ "max-conns",		required_argument, NULL, OPT_MAX_CONNS },
	{ "r1-lifetime",	required_argument, NULL, OPT_R1_LIFE },
	{ "stats-interval",	required_argument, NULL, OPT_STATS },
	{ "config",		required_argument, NULL, OPT_CONFIG },
	{ "factory",		required_argument, NULL, OPT_FACTORY },
	{ "clear",		no_argument,	   NULL, OPT_CLEAR },
	{ "verbose",		no_argument,	   NULL, 'v' },
	{ "help",		no_argument,	   NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct cli {
	struct srv_opts	 o;
	char		 factory[REG_MAX_FACTORY + 1];
	bool		 clear;
	int		 verbose;
};

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mintline-server [run] [options]\n"
"       mintline-server enroll --registry DB [--factory TEXT] CERT.pem...\n"
"       mintline-server flag --registry DB [--clear] SERIAL\n"
"       mintline-server show --registry DB SERIAL\n"
"\n"
"  --listen HOST:PORT     address to listen on (127.0.0.1:7443)\n"
"  --ca FILE              CA root certificate (PEM or DER)\n"
"  --crl FILE             CRL of that root (enables revocation checks)\n"
"  --cert FILE            server certificate chain (PEM, leaf first)\n"
"  --key URI              server key: pkcs11:token=..;object=..?pin-source=file:..\n"
"  --module PATH          PKCS#11 module for --key (%s)\n"
"  --registry PATH        SQLite registry (sqlite:PATH or PATH)\n"
"  --workers N            worker threads for crypto/HSM/registry (4)\n"
"  --read-timeout MS      every read during a handshake (5000)\n"
"  --idle-timeout MS      established channel between records (300000)\n"
"  --max-conns N          concurrent connections (4096)\n"
"  --r1-lifetime MS       R1 older than this is refused (%d)\n"
"  --stats-interval S     log the counters every S seconds (0: on SIGUSR1)\n"
"  --config FILE          read \"option = value\" lines (same names)\n"
"  -v, --verbose          log every handshake (twice: debug)\n"
"  -h, --help\n", DEFAULT_MODULE, HS_R1_LIFETIME_MS);
}

static void
opts_default(struct srv_opts *o)
{
	memset(o, 0, sizeof(*o));
	snprintf(o->listen, sizeof(o->listen), "127.0.0.1:7443");
	snprintf(o->module, sizeof(o->module), "%s", DEFAULT_MODULE);
	o->workers = 4;
	o->read_timeout_ms = 5000;
	o->idle_timeout_ms = 300000;
	o->max_conns = 4096;
	o->r1_lifetime_ms = HS_R1_LIFETIME_MS;
}

static int
parse_int(const char *s, int min, int max, int *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || v < min || v > max) {
		return ML_ERR_ARG;
	}
	*ret = (int)v;
	return 0;
}

static int config_file(struct cli *cl, const char *path);

/* Apply one option; used by getopt and by the config file. */
static int
apply(struct cli *cl, int c, const char *arg)
{
	struct srv_opts *o = &cl->o;

#define STR(field) (snprintf(o->field, sizeof(o->field), "%s", arg) < \
	(int)sizeof(o->field) ? 0 : ML_ERR_TOO_LARGE)
	switch (c) {
	case 'l': return STR(listen);
	case 'a': return STR(ca);
	case 'r': return STR(crl);
	case 'c': return STR(cert);
	case 'k': return STR(key);
	case 'm': return STR(module);
	case 'g': return STR(registry);
	case 'w': return parse_int(arg, 1, 64, &o->workers);
	case OPT_READ_TIMEOUT:
		return parse_int(arg, 10, 600000, &o->read_timeout_ms);
	case OPT_IDLE_TIMEOUT:
		return parse_int(arg, 10, 86400000, &o->idle_timeout_ms);
	case OPT_MAX_CONNS: return parse_int(arg, 1, 1000000, &o->max_conns);
	case OPT_R1_LIFE: return parse_int(arg, 1, 600000, &o->r1_lifetime_ms);
	case OPT_STATS: return parse_int(arg, 0, 86400, &o->stats_interval_s);
	case OPT_CONFIG: return config_file(cl, arg);
	case OPT_FACTORY:
		snprintf(cl->factory, sizeof(cl->factory), "%s", arg);
		return 0;
	case OPT_CLEAR: cl->clear = true; return 0;
	case 'v': cl->verbose++; return 0;
	default: return ML_ERR_ARG;
	}
#undef STR
}

/* "name = value" lines, '#' comments; names are the long options. */
static int
config_file(struct cli *cl, const char *path)
{
	FILE *f;
	char line[2048], *k, *v, *e;
	const struct option *lo;
	int lineno = 0, r = 0;

	if ((f = fopen(path, "re")) == NULL) {
		fprintf(stderr, "mintline-server: cannot open %s\n", path);
		return ML_ERR_IO;
	}
	while (r == 0 && fgets(line, sizeof(line), f) != NULL) {
		lineno++;
		k = line + strspn(line, " \t");
		if (*k == '#' || *k == '\n' || *k == '\0') {
			continue;
		}
		e = k + strcspn(k, " \t=");
		v = e + strspn(e, " \t");
		if (*v != '=') {
			r = ML_ERR_FORMAT;
			break;
		}
		*e = '\0';
		v++;
		v += strspn(v, " \t");
		v[strcspn(v, "\r\n")] = '\0';
		for (e = v + strlen(v); e > v && (e[-1] == ' ' || e[-1] == '\t');) {
			*--e = '\0';
		}
		for (lo = long_opts; lo->name != NULL; lo++) {
			if (strcmp(lo->name, k) == 0 && lo->val != OPT_CONFIG) {
				break;
			}
		}
		if (lo->name == NULL) {
			r = ML_ERR_ARG;
			break;
		}
		r = apply(cl, lo->val, v);
	}
	fclose(f);
	if (r != 0) {
		fprintf(stderr, "mintline-server: %s:%d: bad line\n", path, lineno);
	}
	return r;
}

static int
listen_on(const char *hostport, int *ret_fd)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE }, *res = NULL;
	char host[128], *colon;
	int fd = -1, one = 1;

	snprintf(host, sizeof(host), "%s", hostport);
	if ((colon = strrchr(host, ':')) == NULL) {
		return ML_ERR_ARG;
	}
	*colon = '\0';
	if (getaddrinfo(host[0] ? host : NULL, colon + 1, &hints, &res) != 0) {
		return ML_ERR_ARG;
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(fd, 1024) != 0) {
		ml_err("cannot listen on %s: %s", hostport, strerror(errno));
		if (fd >= 0) {
			close(fd);
		}
		freeaddrinfo(res);
		return ML_ERR_IO;
	}
	freeaddrinfo(res);
	*ret_fd = fd;
	return 0;
}

static int
apps_init(struct srv *s)
{
	struct hs_app_env env = {
		.registry = s->reg, .server_keyops = &s->keyops,
		.server_pub = s->pub, .trust = s->trust,
	};
	const struct hs_app *const *ap;
	size_t i;
	int r;

	for (ap = srv_apps; *ap != NULL; ap++) {
		const struct hs_app *a = *ap;
		void *ctx = NULL;

		if (s->napps == ML_NELEM(s->apps)) {
			return ML_ERR_FULL;
		}
		if (a->init != NULL && (r = a->init(&env, &ctx)) != 0) {
			ml_err("app %s: init failed: %s", a->name, ml_errname(r));
			return r;
		}
		s->apps[s->napps].app = a;
		s->apps[s->napps].ctx = ctx;
		s->napps++;
		for (i = 0; i < a->nhandlers; i++) {
			uint8_t t = a->handlers[i].type;

			if (t < HS_REC_APP || s->handler_by_type[t] != NULL) {
				ml_err("app %s: record type 0x%02x reserved or "
				    "taken", a->name, t);
				return ML_ERR_EXISTS;
			}
			s->handler_by_type[t] = &a->handlers[i];
			s->handler_ctx[t] = ctx;
		}
	}
	return 0;
}

static void
apps_fini(struct srv *s)
{
	size_t i;

	for (i = 0; i < s->napps; i++) {
		if (s->apps[i].app->fini != NULL) {
			s->apps[i].app->fini(s->apps[i].ctx);
		}
	}
}

static int
cmd_run(struct cli *cl)
{
	struct srv *s = NULL;
	struct hs_certinfo ci;
	sigset_t mask;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(cl->o.ca[0] && cl->o.cert[0] && cl->o.key[0] &&
	    cl->o.registry[0], ML_ERR_ARG);
	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	s->o = cl->o;
	s->listen_fd = -1;
	s->done_efd = -1;
	/* workers inherit this mask: signals reach the I/O thread's signalfd */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	ML_TRY(hs_trust_load(s->o.ca, s->o.crl[0] ? s->o.crl : NULL, &s->trust));
	if ((r = hs_chain_load(s->o.cert, &s->chain)) != 0) {
		ml_err("cannot load server certificate chain %s", s->o.cert);
		goto out;
	}
	if ((r = hs_p11_open(s->o.module, s->o.key, &s->p11)) != 0) {
		ml_err("cannot open server key: %s", ml_errname(r));
		goto out;
	}
	hs_p11_keyops(s->p11, &s->keyops);
	ML_TRY(hs_p11_pub(s->p11, s->pub));
	ML_TRY(hs_cert_facts(s->chain.blob[0].p, s->chain.blob[0].len, &ci));
	if (memcmp(ci.pub, s->pub, sizeof(s->pub)) != 0 ||
	    ci.kind != HS_CERT_KIND_SERVER) {
		ml_err("server certificate does not match the key, or is not "
		    "a server certificate (OU=server)");
		r = ML_ERR_CERT;
		goto out;
	}
	if ((r = reg_open(s->o.registry, &s->reg)) != 0) {
		ml_err("cannot open registry %s", s->o.registry);
		goto out;
	}
	s->hscfg.cred.keyops = &s->keyops;
	s->hscfg.cred.chain = s->chain.blob;
	s->hscfg.cred.nchain = s->chain.n;
	s->hscfg.cred.pub = s->pub;		/* checked against the leaf above */
	s->hscfg.trust = s->trust;
	s->hscfg.check_peer = srv_check_peer;
	s->hscfg.check_ctx = s;
	s->hscfg.r1_lifetime_ms = (uint32_t)s->o.r1_lifetime_ms;
	ML_TRY(srv_events_start(s->reg, &s->events));
	ML_TRY(apps_init(s));
	ML_TRY(listen_on(s->o.listen, &s->listen_fd));
	ML_ENSURE((s->done_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) >= 0,
	    ML_ERR_IO);
	ML_TRY(srv_pool_new(s->o.workers, &s->pool));
	ml_log(ML_LOG_WARN, "listening on %s (%d workers)", s->o.listen,
	    s->o.workers);
	r = srv_run(s);
	srv_log_metrics(s);
out:
	if (s != NULL) {
		srv_pool_free(s->pool);
		apps_fini(s);
		srv_events_stop(s->events);
		if (s->listen_fd >= 0) {
			close(s->listen_fd);
		}
		if (s->done_efd >= 0) {
			close(s->done_efd);
		}
		reg_close(s->reg);
		hs_p11_free(s->p11);
		hs_chain_free(&s->chain);
		hs_trust_free(s->trust);
		ml_freezero(s, sizeof(*s));
	}
	return r;
}

static int
cmd_enroll(struct cli *cl, int argc, char **argv)
{
	struct reg *reg = NULL;
	struct hs_chain ch;
	struct hs_certinfo ci;
	struct reg_reader rd;
	int i, r = ML_ERR_INTERNAL;

	ML_ENSURE(cl->o.registry[0] && argc > 0, ML_ERR_ARG);
	ML_TRY(reg_open(cl->o.registry, &reg));
	for (i = 0; i < argc; i++) {
		if ((r = hs_chain_load(argv[i], &ch)) != 0) {
			fprintf(stderr, "mintline-server: %s: not a certificate\n",
			    argv[i]);
			goto out;
		}
		r = hs_cert_facts(ch.blob[0].p, ch.blob[0].len, &ci);
		hs_chain_free(&ch);
		if (r != 0 || (ci.kind != HS_KIND_READER &&
		    ci.kind != HS_KIND_STATION)) {
			fprintf(stderr, "mintline-server: %s: not a reader or "
			    "station certificate\n", argv[i]);
			r = ML_ERR_CERT;
			goto out;
		}
		memset(&rd, 0, sizeof(rd));
		memcpy(rd.serial, ci.serial, sizeof(rd.serial));
		memcpy(rd.certno, ci.certno, sizeof(rd.certno));
		rd.kind = (enum hs_kind)ci.kind;
		snprintf(rd.factory, sizeof(rd.factory), "%s", cl->factory);
		ML_TRY(reg_reader_put(reg, &rd));
		printf("enrolled %s %s certno %s\n",
		    ci.kind == HS_KIND_READER ? "reader" : "station", ci.serial,
		    ci.certno);
	}
	r = 0;
out:
	reg_close(reg);
	return r;
}

static int
cmd_flag(struct cli *cl, int argc, char **argv)
{
	struct reg *reg = NULL;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(cl->o.registry[0] && argc == 1, ML_ERR_ARG);
	ML_TRY(reg_open(cl->o.registry, &reg));
	ML_TRY(reg_reader_flag(reg, argv[0], !cl->clear));
	ML_TRY(reg_event_add(reg, argv[0], REG_EV_REPORT,
	    cl->clear ? "flag cleared" : "flagged by risk control"));
	printf("%s %s\n", argv[0], cl->clear ? "cleared" : "flagged");
out:
	reg_close(reg);
	return r;
}

static int
cmd_show(struct cli *cl, int argc, char **argv)
{
	struct reg *reg = NULL;
	struct reg_reader rd;
	uint64_t n[7] = { 0 };
	int i, r = ML_ERR_INTERNAL;

	ML_ENSURE(cl->o.registry[0] && argc == 1, ML_ERR_ARG);
	ML_TRY(reg_open(cl->o.registry, &reg));
	ML_TRY(reg_reader_get(reg, argv[0], &rd));
	for (i = 1; i <= 6; i++) {
		ML_TRY(reg_event_count(reg, argv[0], (enum reg_event)i, &n[i]));
	}
	printf("serial %s\ncertno %s\nkind %s\nflagged %s\nfactory %s\n"
	    "reads %llu\nerrors %llu\nreports %llu\ntransactions %llu\n"
	    "handshakes %llu\nrefused %llu\n",
	    rd.serial, rd.certno, rd.kind == HS_KIND_READER ? "reader" :
	    "station", rd.flagged ? "yes" : "no", rd.factory,
	    (unsigned long long)n[1], (unsigned long long)n[2],
	    (unsigned long long)n[3], (unsigned long long)n[4],
	    (unsigned long long)n[5], (unsigned long long)n[6]);
out:
	reg_close(reg);
	return r;
}

int
main(int argc, char **argv)
{
	struct cli cl;
	const char *cmd = "run";
	int c, r;

	prctl(PR_SET_DUMPABLE, 0);
	ml_log_set_ident("mintline-server");
	memset(&cl, 0, sizeof(cl));
	opts_default(&cl.o);
	if (argc > 1 && argv[1][0] != '-') {
		cmd = argv[1];
		argc--;
		argv++;
	}
	while ((c = getopt_long(argc, argv, "l:a:r:c:k:m:g:w:vh", long_opts,
	    NULL)) != -1) {
		if (c == 'h') {
			usage(stdout);
			return 0;
		}
		if (c == '?' || apply(&cl, c, optarg) != 0) {
			if (c != '?') {
				fprintf(stderr, "mintline-server: bad value for "
				    "an option\n");
			}
			usage(stderr);
			return 2;
		}
	}
	if (cl.verbose > 0) {
		ml_log_set_level(cl.verbose > 1 ? ML_LOG_DEBUG : ML_LOG_INFO);
	}
	if (strcmp(cmd, "run") == 0) {
		r = cmd_run(&cl);
	} else if (strcmp(cmd, "enroll") == 0) {
		r = cmd_enroll(&cl, argc - optind, argv + optind);
	} else if (strcmp(cmd, "flag") == 0) {
		r = cmd_flag(&cl, argc - optind, argv + optind);
	} else if (strcmp(cmd, "show") == 0) {
		r = cmd_show(&cl, argc - optind, argv + optind);
	} else {
		usage(stderr);
		return 2;
	}
	if (r == ML_ERR_ARG) {
		usage(stderr);
		return 2;
	}
	if (r != 0) {
		fprintf(stderr, "mintline-server: %s\n", ml_strerror(r));
		return 1;
	}
	return 0;
}
