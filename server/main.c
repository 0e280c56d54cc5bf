/*
 * mintline-server: handshakes A and B with readers and stations, the
 * channel, the registry.  See man/mintline-server.8.
 *
 *	mintline-server [run] [options]      serve (default)
 *	mintline-server enroll --registry DB [--factory TEXT] CERT.pem...
 *	mintline-server flag   --registry DB [--clear] SERIAL
 *	mintline-server show   --registry DB SERIAL
 *	mintline-server import-notes --registry DB OLD-NOTES.db
 *	mintline-server audit  --registry DB [filters] [--json] | --verify
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "idpkt.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_wipe.h"
#include "srv.h"

#ifndef ML_MONITOR_PATH
#define ML_MONITOR_PATH	"/usr/libexec/mintline/mintline-monitor"
#endif

enum {
	OPT_CONF = 256,		/* a configuration key: srv_config_set() */
	OPT_FACTORY, OPT_CLEAR, OPT_CONFIG, OPT_CHECK, OPT_PRINT,
	OPT_NOTE, OPT_CHIP, OPT_ACTOR, OPT_SINCE, OPT_UNTIL, OPT_JSON,
	OPT_VERIFY,
};

/* Options that are not configuration keys. */
static const struct option cmd_opts[] = {
	{ "config",		required_argument, NULL, OPT_CONFIG },
	{ "check-config",	no_argument,	   NULL, OPT_CHECK },
	{ "print-config",	no_argument,	   NULL, OPT_PRINT },
	{ "factory",		required_argument, NULL, OPT_FACTORY },
	{ "clear",		no_argument,	   NULL, OPT_CLEAR },
	{ "note",		required_argument, NULL, OPT_NOTE },
	{ "chip",		required_argument, NULL, OPT_CHIP },
	{ "station",		required_argument, NULL, OPT_ACTOR },
	{ "reader",		required_argument, NULL, OPT_ACTOR },
	{ "since",		required_argument, NULL, OPT_SINCE },
	{ "until",		required_argument, NULL, OPT_UNTIL },
	{ "json",		no_argument,	   NULL, OPT_JSON },
	{ "verify",		no_argument,	   NULL, OPT_VERIFY },
	{ "verbose",		no_argument,	   NULL, 'v' },
	{ "help",		no_argument,	   NULL, 'h' },
};

/*
 * Every configuration key (config.c) is a long option of the same name,
 * taken from the one table; then cmd_opts; then the terminator.
 */
static struct option long_opts[64 + ML_NELEM(cmd_opts) + 1];

static void
long_opts_build(void)
{
	const char *k;
	size_t i, n = 0;

	for (i = 0; (k = srv_config_key(i)) != NULL && n < 64; i++) {
		long_opts[n++] = (struct option){ k, required_argument, NULL,
		    OPT_CONF };
	}
	for (i = 0; i < ML_NELEM(cmd_opts); i++) {
		long_opts[n++] = cmd_opts[i];
	}
	long_opts[n] = (struct option){ NULL, 0, NULL, 0 };
}

struct cli {
	struct srv_opts	 o;
	char		 config[PATH_MAX];	/* "" = the default, if there */
	char		 factory[REG_MAX_FACTORY + 1];
	bool		 clear;
	bool		 check;
	bool		 print;
	int		 verbose;
	/* audit */
	char		 subject_kind[REG_AUDIT_KIND_MAX + 1];
	char		 subject[REG_AUDIT_SUBJECT_MAX + 1];
	char		 actor[HS_MAX_SERIAL + 1];
	int64_t		 since, until;
	bool		 json, verify;
};

/* The command line, kept for SIGHUP (file first, then these over it). */
static int	  g_argc;
static char	**g_argv;

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mintline-server [run] [options]\n"
"       mintline-server enroll --registry DB [--factory TEXT] CERT.pem...\n"
"       mintline-server flag --registry DB [--clear] SERIAL\n"
"       mintline-server show --registry DB SERIAL\n"
"       mintline-server import-notes --registry DB OLD-NOTES.db\n"
"       mintline-server audit --registry DB [--note ID | --chip SERIAL |\n"
"           --station SERIAL | --reader SERIAL] [--since T] [--until T]\n"
"           [--json] | --verify\n"
"\n"
"Options override the configuration file (%s, or --config FILE);\n"
"each has a key of the same name there (man mintline-server).\n"
"  --listen HOST:PORT     address to listen on (127.0.0.1:7443; [V6]:PORT,\n"
"                         :PORT for every address)\n"
"  --ca FILE              CA root certificate (PEM or DER)\n"
"  --crl FILE             CRL of that root (enables revocation checks)\n"
"  --cert FILE            server certificate chain (PEM, leaf first)\n"
"  --key URI              server key: pkcs11:token=..;object=..?pin-source=file:..\n"
"  --module PATH          PKCS#11 module for --key (%s)\n"
"  --registry PATH        the registry: readers, chips, notes\n"
"                         (sqlite:PATH, PATH or postgresql:...)\n"
"  --registry-pool N      PostgreSQL connections (%d)\n"
"  --workers N            worker threads for crypto/HSM/registry (4)\n"
"  --read-timeout MS      every read during a handshake (5000)\n"
"  --idle-timeout MS      established channel between records (300000)\n"
"  --max-conns N          concurrent connections (4096)\n"
"  --max-unauth N         of them not yet authenticated (1024)\n"
"  --max-unauth-per-addr N  the same from one source address (64)\n"
"  --r1-lifetime MS       R1 older than this is refused (%d)\n"
"  --drain-timeout MS     SIGTERM: time for in-flight sessions (10000)\n"
"  --stats-interval S     log the counters every S seconds (0: on SIGUSR1)\n"
"  --metrics-listen H:P   Prometheus /metrics on this (loopback) address\n"
"  --monitor PATH         the HSM monitor program (%s)\n"
"  --user NAME            when started as root, run as NAME after start-up\n"
"  --chroot DIR           and chroot the network process to DIR\n"
"  --log-format F         text, kv (key=value) or json\n"
"  --log-level L          error, warn, info, debug (warn)\n"
"  --note-issuers LIST    authorised issuer keys (pkcs11: URIs or PEM\n"
"                         files, blank separated); unset: notes refused\n"
"  --note-feature-key F   the issuer's feature key files, blank separated:\n"
"                         keyed codes must be made by one of them\n"
"  --note-seal-key URI    separate seal key (default: the --key key)\n"
"  --sam SPEC             SAM back-end for ID reads (%s)\n"
"  --idread-deadline MS   ID upload, BEGIN to RESULT (%d)\n"
"  --idread-max-rounds N  ID upload retransmission rounds (%d)\n"
"  --config FILE          configuration file (must exist)\n"
"  --check-config         parse the configuration and exit\n"
"  --print-config         print the effective configuration and exit\n"
"  -v, --verbose          log every handshake (twice: debug)\n"
"  -h, --help\n", SRV_DEFAULT_CONFIG, SRV_DEFAULT_MODULE, REG_PG_POOL_DEFAULT,
	    HS_R1_LIFETIME_MS, ML_MONITOR_PATH, SRV_DEFAULT_SAM,
	    IDR_DEADLINE_MS, IDR_MAX_ROUNDS);
}

static const char *
short_name(int c)
{
	switch (c) {
	case 'l': return "listen";
	case 'a': return "ca";
	case 'r': return "crl";
	case 'c': return "cert";
	case 'k': return "key";
	case 'm': return "module";
	case 'g': return "registry";
	case 'w': return "workers";
	default: return NULL;
	}
}

/*
 * Options: defaults, then the configuration file, then the command line
 * over it.  The file is --config (must exist) or SRV_DEFAULT_CONFIG (if
 * it exists, for "run").  Returns 0, or 2 after a message (usage error)
 * or 1 (configuration file error).
 */
static int
cli_parse(int argc, char **argv, bool run, struct cli *cl)
{
	char err[PATH_MAX + 128];
	const char *name;
	int c, li, i, r;

	memset(cl, 0, sizeof(*cl));
	srv_opts_default(&cl->o);
	for (i = 1; i < argc; i++) {		/* --config first */
		if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
			snprintf(cl->config, sizeof(cl->config), "%s",
			    argv[i + 1]);
		} else if (strncmp(argv[i], "--config=", 9) == 0) {
			snprintf(cl->config, sizeof(cl->config), "%s",
			    argv[i] + 9);
		}
	}
	if (cl->config[0] != '\0' || run) {
		if ((r = srv_config_load(cl->config[0] ? cl->config :
		    SRV_DEFAULT_CONFIG, cl->config[0] != '\0', &cl->o, err,
		    sizeof(err))) != 0) {
			ml_err("configuration: %s", err);
			return 1;
		}
	}
	optind = 0;			/* a full scan, also on SIGHUP */
	while ((c = getopt_long(argc, argv, "l:a:r:c:k:m:g:w:vh", long_opts,
	    &li)) != -1) {
		name = c == OPT_CONF ? long_opts[li].name : short_name(c);
		r = 0;
		if (name != NULL) {
			r = srv_config_set(&cl->o, name, optarg);
		} else if (c == OPT_CONFIG) {
			continue;
		} else if (c == OPT_CHECK) {
			cl->check = true;
		} else if (c == OPT_PRINT) {
			cl->print = true;
		} else if (c == OPT_FACTORY) {
			snprintf(cl->factory, sizeof(cl->factory), "%s", optarg);
		} else if (c == OPT_CLEAR) {
			cl->clear = true;
		} else if (c == OPT_NOTE || c == OPT_CHIP) {
			snprintf(cl->subject_kind, sizeof(cl->subject_kind),
			    "%s", c == OPT_NOTE ? "note" : "chip");
			snprintf(cl->subject, sizeof(cl->subject), "%s",
			    optarg);
		} else if (c == OPT_ACTOR) {
			snprintf(cl->actor, sizeof(cl->actor), "%s", optarg);
		} else if (c == OPT_SINCE || c == OPT_UNTIL) {
			if ((r = srv_audit_time(optarg, c == OPT_SINCE ?
			    &cl->since : &cl->until)) != 0) {
				fprintf(stderr, "mintline-server: %s\n",
				    ml_errmsg(r));
				return 2;
			}
		} else if (c == OPT_JSON) {
			cl->json = true;
		} else if (c == OPT_VERIFY) {
			cl->verify = true;
		} else if (c == 'v') {
			cl->verbose++;
		} else if (c == 'h') {
			usage(stdout);
			exit(0);
		} else {
			usage(stderr);
			return 2;
		}
		if (r != 0) {
			fprintf(stderr, "mintline-server: bad value for --%s\n",
			    name);
			usage(stderr);
			return 2;
		}
	}
	if (cl->verbose > 0) {
		cl->o.log_level = cl->verbose > 1 ? ML_LOG_DEBUG : ML_LOG_INFO;
	}
	return 0;
}

/* SIGHUP (srv_net.c): the same options again. */
static int
reload_opts(struct srv_opts *ret)
{
	struct cli *cl;
	int r;

	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		return ML_ERR_NOMEM;
	}
	if ((r = cli_parse(g_argc, g_argv, true, cl)) == 0) {
		*ret = cl->o;
	}
	free(cl);
	return r == 0 ? 0 : ML_ERR_ARG;
}

/* The monitor executable: --monitor, else next to this one, else the
 * installed path. */
static void
monitor_path(const struct srv_opts *o, char *buf, size_t len)
{
	char self[PATH_MAX], *slash;
	ssize_t k;

	if (o->monitor[0] != '\0') {
		snprintf(buf, len, "%s", o->monitor);
		return;
	}
	k = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (k > 0) {
		self[k] = '\0';
		if ((slash = strrchr(self, '/')) != NULL) {
			*slash = '\0';
			if (snprintf(buf, len, "%s/mintline-monitor", self) <
			    (int)len && access(buf, X_OK) == 0) {
				return;
			}
		}
	}
	snprintf(buf, len, "%s", ML_MONITOR_PATH);
}

/*
 * Whether this process stays non-dumpable with no core file, as it must:
 * session keys live here (BN-7, ID-12).  TEST ONLY: a -Dtest_hooks=true
 * build started with MINTLINE_TEST_CORE=1 keeps its core (so that a crash
 * in an integration test leaves one for a backtrace,
 * tests/integration/test-server-flood.sh), and says so.  The default
 * build has no trace of it (tests/check-layout.sh).
 */
static bool
no_core(void)
{
#ifdef ML_TEST_HOOKS
	const char *v = secure_getenv("MINTLINE_TEST_CORE");

	if (v != NULL && strcmp(v, "1") == 0) {
		static bool said;

		if (!said) {
			said = true;
			ml_warn("TEST BUILD (-Dtest_hooks=true): "
			    "MINTLINE_TEST_CORE=1: this process stays dumpable "
			    "and may leave a core with its session keys");
		}
		return false;
	}
#endif
	return true;
}

/*
 * After start-up (sockets bound, files open, monitor running): become
 * the configured user (when root), optionally inside a chroot, and never
 * gain privileges again.
 */
static int
drop_privileges(const struct srv_opts *o)
{
	struct passwd *pw = NULL;
	int r = ML_ERR_INTERNAL;

	if (o->user[0] != '\0' && (pw = getpwnam(o->user)) == NULL) {
		ml_err("user %s: no such user", o->user);
		return ML_ERR_ARG;
	}
	if (geteuid() != 0) {
		ML_ENSURE(o->chroot_dir[0] == '\0', ML_ERR_PERM);
		if (pw != NULL && pw->pw_uid != geteuid()) {
			ml_warn("not started as root: staying uid %u, not %s",
			    (unsigned)geteuid(), o->user);
		}
	} else if (pw == NULL) {
		ml_info("running as root: set \"user = ...\" in the "
		    "configuration to drop privileges");
		ML_ENSURE(o->chroot_dir[0] == '\0', ML_ERR_ARG);
	} else {
		if (o->chroot_dir[0] != '\0') {
			ML_ENSURE(chroot(o->chroot_dir) == 0 && chdir("/") == 0,
			    ML_ERR_PERM);
		}
		ML_ENSURE(setgroups(1, &pw->pw_gid) == 0 &&
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == 0 &&
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == 0,
		    ML_ERR_PERM);
		ML_ENSURE(setuid(0) != 0, ML_ERR_PERM);	/* really gone */
		ml_info("privileges dropped to %s (uid %u)%s%s", o->user,
		    (unsigned)pw->pw_uid, o->chroot_dir[0] ? ", chroot " : "",
		    o->chroot_dir);
	}
	ML_ENSURE(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0, ML_ERR_PERM);
	/* a uid change resets it to fs.suid_dumpable */
	ML_ENSURE(!no_core() || prctl(PR_SET_DUMPABLE, 0) == 0, ML_ERR_PERM);
	r = 0;
out:
	if (r != 0) {
		ml_err("cannot drop privileges: %s", strerror(errno));
	}
	return r;
}

static int
listen_on(const char *hostport, int *ret_fd)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_PASSIVE }, *res = NULL;
	char host[256], port[ML_PORT_STRLEN];
	unsigned pnum;
	int fd = -1, one = 1, gai, r;

	/* HOST:PORT, [V6]:PORT, or :PORT for every address */
	if (hostport[0] == ':' && hostport[1] != ':') {
		host[0] = '\0';
		if ((r = ml_parse_uint(hostport + 1, "listen port", 1, 65535,
		    &pnum)) == 0) {
			snprintf(port, sizeof(port), "%u", pnum);
		}
	} else {
		r = ml_hostport_split(hostport, host, sizeof(host), port);
	}
	if (r != 0) {
		return r;
	}
	if ((gai = getaddrinfo(host[0] ? host : NULL, port, &hints,
	    &res)) != 0) {
		return ml_errf(ML_ERR_ARG, "cannot listen on %s: %s", hostport,
		    gai_strerror(gai));
	}
	fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) != 0 || bind(fd, res->ai_addr, res->ai_addrlen) != 0 ||
	    listen(fd, 1024) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "cannot listen on %s", hostport);
		ml_err("%s", ml_errmsg(r));
		if (fd >= 0) {
			close(fd);
		}
		freeaddrinfo(res);
		return r;
	}
	freeaddrinfo(res);
	*ret_fd = fd;
	return 0;
}

static int
apps_init(struct srv *s)
{
	struct hs_app_env env;
	const struct hs_app *const *ap;
	size_t i;
	int r;

	srv_app_env(s, &env);
	for (ap = srv_apps; *ap != NULL; ap++) {
		const struct hs_app *a = *ap;
		void *ctx = NULL;

		if (s->napps == ML_NELEM(s->apps)) {
			return ML_ERR_FULL;
		}
		if (a->init != NULL && (r = a->init(&env, &ctx)) != 0) {
			ml_err("app %s: init failed: %s", a->name, ml_errmsg(r));
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

/* The registry named by the configuration, with its back-end settings. */
static int
open_registry(const struct srv_opts *o, struct reg **ret)
{
	struct reg_cfg rc = { .pg_pool = o->registry_pool };
	char shown[sizeof(o->registry)];
	int r;

	if ((r = reg_open(o->registry, &rc, ret)) != 0) {
		/* the target as --print-config shows it: no password */
		srv_config_value(o, "registry", shown, sizeof(shown));
		if (!ml_errctx_has(r)) {
			(void)ml_errpre(r, "%s", shown);
		}
		(void)ml_errpre(r, "registry");	/* printed at the top */
	}
	return r;
}

static int
cmd_run(struct cli *cl)
{
	struct srv *s = NULL;
	struct hs_certinfo ci;
	char monitor[PATH_MAX];
	sigset_t mask;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(cl->o.ca[0] && cl->o.cert[0] && cl->o.key[0] &&
	    cl->o.registry[0], ML_ERR_ARG);
	ML_ENSURE((s = calloc(1, sizeof(*s))) != NULL, ML_ERR_NOMEM);
	s->o = cl->o;
	s->listen_fd = -1;
	s->metrics_fd = -1;
	s->done_efd = -1;
	s->reload = reload_opts;
	/* workers inherit this mask: signals reach the I/O thread's signalfd */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);

	/*
	 * Privilege separation: the monitor loads the PKCS#11 module, reads
	 * the PIN and holds the key; it starts before this process reads
	 * anything from the network, and this process never loads the
	 * module (docs/protocol.md, "Privilege separation").
	 */
	monitor_path(&s->o, monitor, sizeof(monitor));
	if (s->o.log_format != ML_LOG_FMT_TEXT) {	/* the monitor's lines too */
		(void)setenv("ML_LOG_FORMAT", s->o.log_format == ML_LOG_FMT_KV ?
		    "kv" : "json", 1);
	}
	if ((r = mon_start(monitor, s->o.workers + 2, s->o.module, s->o.key,
	    s->o.note_seal_key, cl->verbose, &s->mon)) != 0) {
		ml_err("cannot start the HSM monitor: %s", ml_errmsg(r));
		goto out;
	}
	/* the worker's keys are the monitor's: no libp11 in this process */
	mon_key_provider(s->mon, &s->keys);
	if ((r = key_open(&s->keys, s->o.key, &s->key)) != 0) {
		ml_err("server key: %s", ml_errmsg(r));
		goto out;
	}
	ML_TRY(key_pub(s->key, s->pub));

	ML_TRY(hs_trust_load(s->o.ca, s->o.crl[0] ? s->o.crl : NULL, &s->trust));
	if ((r = hs_chain_load(s->o.cert, &s->chain)) != 0) {
		ml_err("server certificate chain: %s", ml_errmsg(r));
		goto out;
	}
	ML_TRY(hs_cert_facts(s->chain.blob[0].p, s->chain.blob[0].len, &ci));
	if (memcmp(ci.pub, s->pub, sizeof(s->pub)) != 0 ||
	    ci.kind != HS_CERT_KIND_SERVER) {
		ml_err("server certificate does not match the key, or is not "
		    "a server certificate (OU=server)");
		r = ML_ERR_CERT;
		goto out;
	}
	if ((r = open_registry(&s->o, &s->reg)) != 0) {
		goto out;
	}
	s->hscfg.cred.key = s->key;
	s->hscfg.cred.chain = s->chain.blob;
	s->hscfg.cred.nchain = s->chain.n;
	s->hscfg.cred.pub = s->pub;		/* checked against the leaf above */
	s->hscfg.trust = s->trust;
	s->hscfg.check_peer = srv_check_peer;
	s->hscfg.check_ctx = s;
	s->hscfg.r1_lifetime_ms = (uint32_t)s->o.r1_lifetime_ms;
	s->hscfg_cur = &s->hscfg;
	ML_TRY(srv_events_start(s->reg, &s->events));
	ML_TRY(apps_init(s));
	ML_TRY(listen_on(s->o.listen, &s->listen_fd));
	if (s->o.metrics[0] != '\0') {
		ML_TRY(listen_on(s->o.metrics, &s->metrics_fd));
	}
	if ((s->done_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "eventfd for finished jobs");
		goto out;
	}
	ML_TRY(drop_privileges(&s->o));
	ML_TRY(srv_pool_new(s->o.workers, &s->pool));
	ml_log(ML_LOG_WARN, "listening on %s (%d workers, monitor pid %d)%s%s",
	    s->o.listen, s->o.workers, (int)mon_pid(s->mon),
	    s->o.metrics[0] ? ", metrics on " : "", s->o.metrics);
	r = srv_run(s);
	srv_log_metrics(s);
out:
	if (s != NULL) {
		srv_pool_free(s->pool);
		apps_fini(s);
		srv_events_stop(s->events);	/* flushes the risk records */
		if (s->listen_fd >= 0) {
			close(s->listen_fd);
		}
		if (s->metrics_fd >= 0) {
			close(s->metrics_fd);
		}
		if (s->done_efd >= 0) {
			close(s->done_efd);
		}
		reg_close(s->reg);
		key_free(s->key);
		mon_stop(s->mon);
		hs_chain_free(&s->chain);
		while (s->renewed != NULL) {
			struct srv_cred_gen *g = s->renewed;

			s->renewed = g->older;
			hs_chain_free(&g->chain);
			free(g);
		}
		hs_trust_free(s->trust);
		if (r == 0 && s->exit_code != 0) {
			r = ml_errf(ML_ERR_IO, "the monitor (HSM key) "
			    "exited: drained and stopped");
		}
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
	ML_TRY(open_registry(&cl->o, &reg));
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
	ML_TRY(open_registry(&cl->o, &reg));
	if ((r = reg_reader_flag(reg, argv[0], !cl->clear)) ==
	    ML_ERR_NOT_FOUND) {
		/* not the registry's name: a URL may carry a password */
		r = ml_errf(r, "%s: no reader or station of that serial in "
		    "the registry", argv[0]);
	}
	ML_TRY(r);
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
	ML_TRY(open_registry(&cl->o, &reg));
	if ((r = reg_reader_get(reg, argv[0], &rd)) == ML_ERR_NOT_FOUND) {
		/* not the registry's name: a URL may carry a password */
		r = ml_errf(r, "%s: no reader or station of that serial in "
		    "the registry", argv[0]);
	}
	ML_TRY(r);
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

/*
 * One-shot upgrade of a deployment that kept notes in a separate SQLite
 * file (docs/operations.md, "Upgrading: one registry"): copy its chips,
 * notes, flags and refusal counts into the registry.
 */
static int
cmd_import_notes(struct cli *cl, int argc, char **argv)
{
	struct reg *reg = NULL;
	struct reg_import_counts c;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(cl->o.registry[0] && argc == 1, ML_ERR_ARG);
	ML_TRY(open_registry(&cl->o, &reg));
	if ((r = reg_notes_import(reg, argv[0], &c)) != 0) {
		fprintf(stderr, "mintline-server: import-notes %s: %s "
		    "(nothing imported)\n", argv[0], ml_errmsg(r));
		r = 1;
		goto out;
	}
	printf("imported from %s: %llu chip(s), %llu note(s), %llu flag(s), "
	    "%llu refusal reason(s)\n", argv[0], (unsigned long long)c.chips,
	    (unsigned long long)c.notes, (unsigned long long)c.flags,
	    (unsigned long long)c.rejects);
out:
	reg_close(reg);
	return r;
}

/* The audit trail (OP-5): a history, or the hash chain's check. */
static int
cmd_audit(struct cli *cl, int argc, char **argv)
{
	struct reg *reg = NULL;
	struct reg_audit_filter f = {
		.subject_kind = cl->subject_kind, .subject = cl->subject,
		.actor = cl->actor, .since = cl->since, .until = cl->until,
	};
	int r = ML_ERR_INTERNAL;

	(void)argv;
	ML_ENSURE(cl->o.registry[0] && argc == 0, ML_ERR_ARG);
	ML_TRY(open_registry(&cl->o, &reg));
	r = srv_audit_run(reg, &f, cl->json, cl->verify, stdout);
out:
	reg_close(reg);
	return r;
}

int
main(int argc, char **argv)
{
	struct cli *cl;
	const char *cmd = "run";
	int r;

	/* no core files and no same-uid ptrace: session keys live here */
	if (no_core()) {
		(void)prctl(PR_SET_DUMPABLE, 0);
		(void)setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	}
	ml_log_set_ident("mintline-server");
	long_opts_build();
	if (argc > 1 && argv[1][0] != '-') {
		cmd = argv[1];
		argc--;
		argv++;
	}
	g_argc = argc;
	g_argv = argv;
	if ((cl = calloc(1, sizeof(*cl))) == NULL) {
		return 1;
	}
	if ((r = cli_parse(argc, argv, strcmp(cmd, "run") == 0, cl)) != 0) {
		free(cl);
		return r;
	}
	ml_log_set_format((enum ml_log_format)cl->o.log_format);
	if (cl->o.log_level >= 0) {
		ml_log_set_level((enum ml_log_level)cl->o.log_level);
	}
	if (cl->print) {
		srv_config_print(&cl->o, stdout);
		free(cl);
		return 0;
	}
	if (cl->check) {
		printf("configuration ok\n");
		free(cl);
		return 0;
	}
	if (strcmp(cmd, "run") == 0) {
		r = cmd_run(cl);
	} else if (strcmp(cmd, "enroll") == 0) {
		r = cmd_enroll(cl, argc - optind, argv + optind);
	} else if (strcmp(cmd, "flag") == 0) {
		r = cmd_flag(cl, argc - optind, argv + optind);
	} else if (strcmp(cmd, "show") == 0) {
		r = cmd_show(cl, argc - optind, argv + optind);
	} else if (strcmp(cmd, "audit") == 0) {
		r = cmd_audit(cl, argc - optind, argv + optind);
	} else if (strcmp(cmd, "import-notes") == 0) {
		r = cmd_import_notes(cl, argc - optind, argv + optind);
		if (r == 1) {
			free(cl);
			return 1;
		}
	} else {
		usage(stderr);
		free(cl);
		return 2;
	}
	free(cl);
	if (r == ML_ERR_ARG) {
		if (ml_errctx_has(r)) {
			fprintf(stderr, "mintline-server: %s\n", ml_errmsg(r));
		}
		usage(stderr);
		return 2;
	}
	if (r != 0) {
		fprintf(stderr, "mintline-server: %s\n", ml_errmsg(r));
		return 1;
	}
	return 0;
}
