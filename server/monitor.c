/*
 * mintline-monitor: the only process of mintline-server that loads the
 * PKCS#11 module, knows the HSM PIN and holds the server's private key
 * (and the note seal key, --seal-key).  mintline-server (the
 * network-facing "worker") execs it at start-up, before it reads anything
 * from the network, with the monitor channels on fds MON_FD_BASE ..; the
 * monitor answers the short, fixed list of requests in mon_reqs[] below
 * and nothing else (mon_proto.h has the wire format).
 *
 *	mintline-monitor --channels N --module SO --key URI [-v]
 *
 * What a compromised worker can still do (docs/protocol.md, "Privilege
 * separation"): get one ECDSA signature over a 32-byte digest of its
 * choice and one ECDH with a point of its choice per session id it
 * announces, and as many ECDH results with the seal key as it likes for a
 * session it declared authenticated after one of those; i.e. it can
 * impersonate the server while it runs and decrypt sealed uploads it
 * sees.  What it cannot do: read the key or the PIN, use the key after it
 * is stopped, make the monitor load another module, or replay a session
 * id to get a second signature within one session.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <limits.h>

#include "key_p11.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_rd.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "mon_proto.h"

#define MON_PREAUTH	(1u << 0)	/* session still in its handshake */
#define MON_POSTAUTH	(1u << 1)	/* session declared authenticated */
#define MON_ONCE	(1u << 2)	/* at most once per session */
#define MON_STARTUP	(1u << 3)	/* only before the first session */
#define MON_NOSESS	(1u << 4)	/* session id must be 0 */
#define MON_KEYOP	(1u << 5)	/* the HSM call runs outside m->mu */

#define MON_THREADS	16		/* request threads (HSM calls at once) */

enum sess_state { SESS_FREE = 0, SESS_PREAUTH, SESS_POSTAUTH };

struct mon_sess {
	uint64_t	 id;
	uint8_t		 state;
	uint8_t		 once;		/* bit per MON_ONCE type tried */
	uint8_t		 used;		/* bit per MON_ONCE type answered */
};

struct mon {
	struct key	*key;		/* the server key */
	struct key	*seal;		/* --seal-key, or NULL */
	const char	*module;
	struct key_provider prov;	/* libp11 with module: MON_PUBKEY */
	struct mon_sess	*sess;		/* MON_SESS_SLOTS */
	uint64_t	 max_id;	/* highest session id seen */
	bool		 hello_done;
	uint64_t	 n_ok[MON_TYPE_MAX];
	uint64_t	 n_refused[MON_TYPE_MAX];
	/* the session table, max_id, hello_done and the counters; never held
	 * across an HSM call (MON_KEYOP) */
	pthread_mutex_t	 mu;
	atomic_bool	 stop;		/* the worker is gone: threads end */
};

static int mon_answer_hello(struct mon *, struct mon_sess *, struct ml_rd *,
    struct ml_wr *);
static int mon_answer_sign(struct mon *, struct mon_sess *, struct ml_rd *,
    struct ml_wr *);
static int mon_answer_keyx(struct mon *, struct mon_sess *, struct ml_rd *,
    struct ml_wr *);
static int mon_answer_auth(struct mon *, struct mon_sess *, struct ml_rd *,
    struct ml_wr *);
static int mon_answer_feature(struct mon *, struct mon_sess *, struct ml_rd *,
    struct ml_wr *);
static int mon_answer_pubkey(struct mon *, struct mon_sess *, struct ml_rd *,
    struct ml_wr *);

/*
 * The whole of what the worker may ask.  flags are checked before the
 * handler runs; the handler parses its body with ml_rd and ends with
 * ml_rd_end().
 */
static const struct mon_req {
	uint8_t		 type;
	unsigned	 flags;
	const char	*name;
	int		(*answer)(struct mon *, struct mon_sess *, struct ml_rd *,
			    struct ml_wr *);
} mon_reqs[] = {
	{ MON_HELLO,		MON_NOSESS | MON_STARTUP, "hello",
	    mon_answer_hello },
	{ MON_PUBKEY,		MON_NOSESS | MON_STARTUP, "pubkey",
	    mon_answer_pubkey },
	{ MON_SIGN_TRANSCRIPT,	MON_PREAUTH | MON_ONCE | MON_KEYOP, "sign_transcript",
	    mon_answer_sign },				/* ID-2 server auth */
	{ MON_DECRYPT_KEYX,	MON_PREAUTH | MON_ONCE | MON_KEYOP, "decrypt_keyx",
	    mon_answer_keyx },				/* ID-4 R2 */
	{ MON_SESS_AUTH,	MON_PREAUTH,		"sess_auth",
	    mon_answer_auth },
	{ MON_DECRYPT_FEATURE,	MON_POSTAUTH | MON_KEYOP, "decrypt_feature",
	    mon_answer_feature },			/* BN-7 */
	{ 0, 0, NULL, NULL },
};

static const struct mon_req *
req_find(uint8_t type)
{
	const struct mon_req *q;

	for (q = mon_reqs; q->answer != NULL; q++) {
		if (q->type == type) {
			return q;
		}
	}
	return NULL;
}

/*
 * The session a request names.  Requests of concurrent sessions arrive in
 * any order, so the rule is per slot (id % MON_SESS_SLOTS): an id above
 * the slot's last id has never been seen and opens a session (an older
 * live session in the slot is forgotten and can no longer use the key);
 * the slot's own id must be live; an id below it is too old.  A closed
 * id keeps its slot, so it is never opened again.
 */
static struct mon_sess *
sess_get(struct mon *m, uint64_t id)
{
	struct mon_sess *s = &m->sess[id % MON_SESS_SLOTS];

	if (id == 0) {
		return NULL;
	}
	if (id > s->id) {
		if (s->state != SESS_FREE) {
			ml_info("monitor: session %llu forgotten for %llu",
			    (unsigned long long)s->id, (unsigned long long)id);
		}
		*s = (struct mon_sess){ .id = id, .state = SESS_PREAUTH };
		if (id > m->max_id) {
			m->max_id = id;
		}
		return s;
	}
	return (s->id == id && s->state != SESS_FREE) ? s : NULL;
}

static int
mon_answer_hello(struct mon *m, struct mon_sess *s, struct ml_rd *rd,
    struct ml_wr *w)
{
	uint8_t pub[ML_P256_PUB_LEN];
	int r = ML_ERR_INTERNAL;

	(void)s;
	ML_TRY(ml_rd_end(rd));
	ML_ENSURE(!m->hello_done, ML_ERR_STATE);
	m->hello_done = true;
	ML_TRY(key_pub(m->key, pub));
	ML_TRY(ml_wr_u8(w, m->seal != NULL ? MON_HELLO_SEAL : 0));
	ML_TRY(ml_wr_bytes(w, pub, sizeof(pub)));
	if (m->seal != NULL) {
		ML_TRY(key_pub(m->seal, pub));
		ML_TRY(ml_wr_bytes(w, pub, sizeof(pub)));
	}
	r = 0;
out:
	return r;
}

static int
mon_answer_sign(struct mon *m, struct mon_sess *s, struct ml_rd *rd,
    struct ml_wr *w)
{
	uint8_t md[ML_SHA256_LEN], sig[ML_P256_SIG_LEN];
	int r = ML_ERR_INTERNAL;

	(void)s;
	ML_TRY(ml_rd_copy(rd, md, sizeof(md)));
	ML_TRY(ml_rd_end(rd));
	ML_TRY(key_sign(m->key, md, sig));
	ML_TRY(ml_wr_bytes(w, sig, sizeof(sig)));
	r = 0;
out:
	return r;
}

static int
ecdh_with(const struct key *k, struct ml_rd *rd, struct ml_wr *w)
{
	uint8_t peer[ML_P256_PUB_LEN], sec[ML_P256_SECRET_LEN];
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_copy(rd, peer, sizeof(peer)));
	ML_TRY(ml_rd_end(rd));
	ML_TRY(ml_p256_check_pub(peer, sizeof(peer)));
	ML_TRY(key_ecdh(k, peer, sec));
	ML_TRY(ml_wr_bytes(w, sec, sizeof(sec)));
	r = 0;
out:
	ml_wipe(sec, sizeof(sec));
	return r;
}

static int
mon_answer_keyx(struct mon *m, struct mon_sess *s, struct ml_rd *rd,
    struct ml_wr *w)
{
	(void)s;
	return ecdh_with(m->key, rd, w);
}

/* The handshake ended well (worker's word): only after the session used
 * the key once, so a session cannot skip straight to POSTAUTH (a refused
 * try, such as a peer point off the curve, is not a use). */
static int
mon_answer_auth(struct mon *m, struct mon_sess *s, struct ml_rd *rd,
    struct ml_wr *w)
{
	int r = ML_ERR_INTERNAL;

	(void)m;
	(void)w;
	ML_TRY(ml_rd_end(rd));
	ML_ENSURE(s->used & ((1u << MON_SIGN_TRANSCRIPT) |
	    (1u << MON_DECRYPT_KEYX)), ML_ERR_STATE);
	s->state = SESS_POSTAUTH;
	r = 0;
out:
	return r;
}

static int
mon_answer_feature(struct mon *m, struct mon_sess *s, struct ml_rd *rd,
    struct ml_wr *w)
{
	(void)s;
	return ecdh_with(m->seal != NULL ? m->seal : m->key, rd, w);
}

/* module-path of a URI, if any, is the configured module (allowlist:
 * ssh-agent's allowed_providers). */
static bool
module_allowed(const struct mon *m, const char *uri)
{
	char want[PATH_MAX], got[PATH_MAX], path[PATH_MAX];
	const char *p = strstr(uri, "module-path=");
	size_t n;

	if (p == NULL) {
		return true;
	}
	p += strlen("module-path=");
	n = strcspn(p, "&;");
	if (n >= sizeof(path)) {
		return false;
	}
	memcpy(path, p, n);
	path[n] = '\0';
	return realpath(path, got) != NULL &&
	    realpath(m->module, want) != NULL && strcmp(got, want) == 0 &&
	    strstr(p + n, "module-path=") == NULL;
}

/*
 * A public key in a token (issuer keys named by pkcs11: URIs, read by the
 * note application at start-up, key_pub_load() through the worker's
 * provider, mon_client.c).  Only
 * the configured module: a URI naming another module-path is refused.
 */
static int
mon_answer_pubkey(struct mon *m, struct mon_sess *s, struct ml_rd *rd,
    struct ml_wr *w)
{
	char uri[MON_MAX_URI + 1];
	uint8_t pub[ML_P256_PUB_LEN];
	size_t n;
	int r = ML_ERR_INTERNAL;

	(void)s;
	n = ml_rd_left(rd);
	ML_ENSURE(n > 7 && n <= MON_MAX_URI, ML_ERR_TOO_LARGE);
	ML_TRY(ml_rd_copy(rd, uri, n));
	uri[n] = '\0';
	ML_ENSURE(memchr(uri, '\0', n) == NULL &&
	    strncmp(uri, "pkcs11:", 7) == 0, ML_ERR_FORMAT);
	ML_ENSURE(module_allowed(m, uri), ML_ERR_PERM);
	ML_TRY(key_pub_load(&m->prov, uri, pub));
	ML_TRY(ml_wr_bytes(w, pub, sizeof(pub)));
	r = 0;
out:
	return r;
}

/*
 * One request packet in, one reply packet out.  Every check and every
 * change of the session table runs under m->mu; a MON_KEYOP request's HSM
 * call runs outside it (its handler touches only the immutable keys), so
 * requests of other sessions go on meanwhile.  MON_ONCE is spent before
 * the call, so a concurrent duplicate of the same request is refused.
 */
static void
mon_dispatch(struct mon *m, const uint8_t *p, size_t n, struct ml_wr *w)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	const struct mon_req *q = NULL;
	struct mon_sess *s = NULL;
	uint8_t type = 0, *rc;
	uint64_t id = 0;
	int r = ML_ERR_INTERNAL;

	pthread_mutex_lock(&m->mu);
	ML_TRY(ml_wr_reserve(w, 4, &rc));
	ML_TRY(ml_rd_u8(&rd, &type));
	ML_TRY(ml_rd_u64be(&rd, &id));
	ML_ENSURE((q = req_find(type)) != NULL, ML_ERR_UNSUPPORTED);
	if (q->flags & MON_NOSESS) {
		ML_ENSURE(id == 0, ML_ERR_FORMAT);
	} else {
		ML_ENSURE((s = sess_get(m, id)) != NULL, ML_ERR_STATE);
	}
	if (q->flags & MON_STARTUP) {
		ML_ENSURE(m->max_id == 0, ML_ERR_STATE);
	}
	if (q->flags & (MON_PREAUTH | MON_POSTAUTH)) {
		ML_ENSURE(((q->flags & MON_PREAUTH) &&
		    s->state == SESS_PREAUTH) || ((q->flags & MON_POSTAUTH) &&
		    s->state == SESS_POSTAUTH), ML_ERR_STATE);
	}
	if (q->flags & MON_ONCE) {
		/* spent before the HSM call: a failed try is not retried */
		ML_ENSURE((s->once & (1u << type)) == 0, ML_ERR_STATE);
		s->once |= (uint8_t)(1u << type);
	}
	if (q->flags & MON_KEYOP) {
		pthread_mutex_unlock(&m->mu);
		r = q->answer(m, s, &rd, w);
		pthread_mutex_lock(&m->mu);
	} else {
		r = q->answer(m, s, &rd, w);
	}
	/* the slot may hold a newer session by now: mark only our own */
	if (r == 0 && (q->flags & MON_ONCE) && s->id == id) {
		s->used |= (uint8_t)(1u << type);
	}
out:
	if (q != NULL && type < MON_TYPE_MAX) {
		if (r == 0) {
			m->n_ok[type]++;
		} else {
			m->n_refused[type]++;
		}
	}
	pthread_mutex_unlock(&m->mu);
	if (r != 0) {
		ml_warn("monitor: %s for session %llu refused: %s",
		    q != NULL ? q->name : "unknown request",
		    (unsigned long long)id, ml_errname(r));
		w->len = 0;
		(void)!ml_wr_u32be(w, (uint32_t)r);
		return;
	}
	w->p[0] = 0;
	w->p[1] = 0;
	w->p[2] = 0;
	w->p[3] = 0;
}

/* A close note: u8 MON_SESS_CLOSE | u64be id x 1..MON_CLOSE_MAX.  Each id
 * that is its slot's session ends it; id 0 and other ids are ignored. */
static void
mon_close_note(struct mon *m, const uint8_t *p, size_t n)
{
	struct ml_rd rd = ML_RD_INIT(p, n);
	struct mon_sess *s;
	uint8_t type;
	uint64_t id;

	if (ml_rd_u8(&rd, &type) != 0 || type != MON_SESS_CLOSE ||
	    ml_rd_left(&rd) == 0 || ml_rd_left(&rd) % 8 != 0 ||
	    ml_rd_left(&rd) > 8 * MON_CLOSE_MAX) {
		return;
	}
	pthread_mutex_lock(&m->mu);
	while (ml_rd_u64be(&rd, &id) == 0) {
		s = &m->sess[id % MON_SESS_SLOTS];
		if (id != 0 && id <= m->max_id && s->id == id) {
			s->state = SESS_FREE;
		}
	}
	pthread_mutex_unlock(&m->mu);
}

static void
mon_log_counts(const struct mon *m)
{
	const struct mon_req *q;

	for (q = mon_reqs; q->answer != NULL; q++) {
		ml_info("monitor: %s: %llu answered, %llu refused", q->name,
		    (unsigned long long)m->n_ok[q->type],
		    (unsigned long long)m->n_refused[q->type]);
	}
	ml_info("monitor: HSM reconnects: %llu",
	    (unsigned long long)key_p11_reconnects(m->key));
}

/* One monitor thread: the request channels first, first + step, ... and,
 * for thread 0, the notify channel. */
struct mon_thread {
	struct mon	*m;
	int		 nchan;
	int		 first;
	int		 step;
	pthread_t	 th;
};

static void *
mon_serve(void *arg)
{
	struct mon_thread *t = arg;
	struct mon *m = t->m;
	struct pollfd pfd[MON_MAX_CHANNELS + 1];
	uint8_t in[MON_MAX_MSG], out[MON_MAX_MSG];
	struct ml_wr w;
	nfds_t npfd = 0;
	ssize_t k;
	int c, n;
	nfds_t i;

	for (c = t->first; c < t->nchan; c += t->step) {
		pfd[npfd++] = (struct pollfd){ .fd = MON_FD_BASE + c,
		    .events = POLLIN };
	}
	if (t->first == 0) {
		pfd[npfd++] = (struct pollfd){ .fd = MON_FD_BASE + t->nchan,
		    .events = POLLIN };
	}
	while (!atomic_load(&m->stop)) {
		/* a bounded wait: a sibling's EOF (the worker is gone) ends
		 * this thread too */
		n = poll(pfd, npfd, 250);
		if (n < 0 && errno == EINTR) {
			continue;
		}
		if (n < 0) {
			break;
		}
		for (i = 0; i < npfd && n > 0; i++) {
			if (pfd[i].revents == 0) {
				continue;
			}
			k = recv(pfd[i].fd, in, sizeof(in), MSG_TRUNC);
			if (k < 0 && (errno == EINTR || errno == EAGAIN)) {
				continue;
			}
			if (k <= 0) {
				/* the worker is gone (exit, crash, kill) */
				atomic_store(&m->stop, true);
				break;
			}
			if (pfd[i].fd == MON_FD_BASE + t->nchan) {
				if ((size_t)k <= sizeof(in)) {
					mon_close_note(m, in, (size_t)k);
				}
				continue;
			}
			w = ML_WR_FIXED(out, sizeof(out));
			if ((size_t)k > sizeof(in)) {
				(void)!ml_wr_u32be(&w, (uint32_t)ML_ERR_TOO_LARGE);
			} else {
				mon_dispatch(m, in, (size_t)k, &w);
			}
			ml_wipe(in, sizeof(in));
			if (send(pfd[i].fd, w.p, w.len, MSG_NOSIGNAL) < 0) {
				atomic_store(&m->stop, true);
			}
			ml_wipe(out, sizeof(out));
		}
	}
	ml_wipe(in, sizeof(in));
	ml_wipe(out, sizeof(out));
	return NULL;
}

/*
 * Serve the channels with min(nchan, MON_THREADS) threads, channel c on
 * thread c % nthreads: requests on different channels (different worker
 * threads) reach the HSM at the same time, each on a session of libp11's
 * per-slot pool (keys/key_p11.c), instead of one after the other.
 */
static int
mon_loop(struct mon *m, int nchan)
{
	struct mon_thread t[MON_THREADS];
	int i, nth = nchan < MON_THREADS ? nchan : MON_THREADS, started = 0;

	for (i = 0; i < nth; i++) {
		t[i] = (struct mon_thread){ .m = m, .nchan = nchan, .first = i,
		    .step = nth };
		if (i > 0 && pthread_create(&t[i].th, NULL, mon_serve,
		    &t[i]) != 0) {
			ml_warn("monitor: %d threads, not %d", started + 1, nth);
			break;
		}
		started += i > 0;
	}
	if (started + 1 < nth) {
		/* fewer threads than planned: thread 0 takes every channel */
		atomic_store(&m->stop, true);
		for (i = 1; i <= started; i++) {
			pthread_join(t[i].th, NULL);
		}
		atomic_store(&m->stop, false);
		started = 0;
		t[0].step = 1;
	}
	mon_serve(&t[0]);
	for (i = 1; i <= started; i++) {
		pthread_join(t[i].th, NULL);
	}
	ml_info("monitor: worker closed the channels");
	return 0;
}

static const struct option long_opts[] = {
	{ "channels",	required_argument, NULL, 'n' },
	{ "module",	required_argument, NULL, 'm' },
	{ "key",	required_argument, NULL, 'k' },
	{ "seal-key",	required_argument, NULL, 's' },
	{ "verbose",	no_argument,	   NULL, 'v' },
	{ NULL, 0, NULL, 0 },
};

int
main(int argc, char **argv)
{
	struct mon m;
	const char *key = NULL, *seal = NULL;
	int c, nchan = 0, verbose = 0, r;

	/* first: no core file, no ptrace by the same uid, no setuid gain */
	(void)prctl(PR_SET_DUMPABLE, 0);
	(void)prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	(void)setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	/*
	 * Signals are for the worker: systemd (KillMode=control-group) and a
	 * terminal's ^C reach us too, but the worker must keep the key while
	 * it drains.  We end when it closes the channels, which its exit or
	 * death does by itself.
	 */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGUSR1, SIG_IGN);
	ml_log_set_ident("mintline-monitor");
	memset(&m, 0, sizeof(m));
	pthread_mutex_init(&m.mu, NULL);
	while ((c = getopt_long(argc, argv, "n:m:k:s:v", long_opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			if (ml_parse_int(optarg, "--channels", 1,
			    MON_MAX_CHANNELS, &nchan) != 0) {
				ml_err("%s", ml_errmsg(ML_ERR_ARG));
				return 2;
			}
			break;
		case 'm':
			m.module = optarg;
			break;
		case 'k':
			key = optarg;
			break;
		case 's':
			seal = optarg;
			break;
		case 'v':
			verbose++;
			break;
		default:
			return 2;
		}
	}
	if (verbose > 0) {
		ml_log_set_level(verbose > 1 ? ML_LOG_DEBUG : ML_LOG_INFO);
	}
	if (nchan < 1 || nchan > MON_MAX_CHANNELS || key == NULL ||
	    m.module == NULL || getppid() == 1) {
		fprintf(stderr, "mintline-monitor: started by mintline-server "
		    "only\n");
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	if ((m.sess = calloc(MON_SESS_SLOTS, sizeof(*m.sess))) == NULL) {
		return 1;
	}
	key_p11_provider(&m.prov, m.module);
	if ((r = key_open(&m.prov, key, &m.key)) != 0) {
		ml_err("cannot open server key: %s", ml_errmsg(r));
		return 1;
	}
	if (seal != NULL && *seal != '\0' &&
	    (r = key_open(&m.prov, seal, &m.seal)) != 0) {
		ml_err("cannot open the note seal key: %s", ml_errmsg(r));
		key_free(m.key);
		return 1;
	}
	ml_info("monitor: key open, serving %d channels", nchan);
	r = mon_loop(&m, nchan);
	mon_log_counts(&m);
	key_free(m.seal);
	key_free(m.key);
	free(m.sess);
	pthread_mutex_destroy(&m.mu);
	return r == 0 ? 0 : 1;
}
