/*
 * mintline-load: a load generator for mintline-server (ID-5, capacity).  Many
 * simulated readers (software P-256 keys, certificates from a mintline-ca
 * directory) against a server on loopback, bounded in count and in time,
 * reporting throughput and latency percentiles.
 *
 *   mintline-load setup --ca-dir D --registry TARGET --readers N
 *		--out BUNDLE [--prefix LOAD-] [--certno-base 100000]
 *	make N reader keys and certificates, enrol them (reader mapping) in
 *	the registry (SQLite path or PostgreSQL URL), write them to BUNDLE
 *	(one line per reader: serial certno key-hex cert-hex; mode 0600).
 *   mintline-load hs --server H:P --ca ROOT --bundle BUNDLE
 *		[--threads T] [--count N] [--seconds S] [--flow A|B]
 *	handshakes only: connect, authenticate, close; readers round robin.
 *   mintline-load idle --server H:P --ca ROOT --bundle BUNDLE --conns N
 *		[--threads T] [--hold S] [--server-pid PID] [--seconds S]
 *	open N authenticated channels and hold them; report the server's RSS
 *	(from /proc/PID/status) before and with them, then PING every one.
 *   mintline-load ping --server H:P --ca ROOT --bundle BUNDLE --conns N
 *		[--threads T] [--count N] [--seconds S]
 *	records over established channels: the threads share N channels and
 *	send PING records round robin (one in flight per thread).
 *   mintline-load burst --server H:P --ca ROOT --bundle BUNDLE
 *		[--threads T] [--count N] [--seconds S]
 *	a reader that does not read: per connection, authenticate, send
 *	40 to 64 PING records of 64 KiB back to back without reading a PONG
 *	(a small receive buffer: the server's replies pile up), then reset
 *	the connection (RST) up to 84 ms later, while the server still
 *	answers them.  Counts the connections that sent at least one
 *	record.
 *   mintline-load reg --registry TARGET [--threads T] [--count N]
 *		[--seconds S] [--first K]
 *	[--registry-pool P]
 *	note registrations through the registry back-end the server uses
 *	(SQLite: registry_sqlite.c with its group commit; PostgreSQL:
 *	registry_pg.c with P connections), chips enrolled first (not timed).
 *   --server2 H:P (hs, idle): alternate connections between two servers.
 *
 * Bounds: every mode stops at --count operations or --seconds (default
 * 1000 and 60), whichever comes first.  RLIMIT_NOFILE is raised to the
 * hard limit.  Output: one "result:" line per run with the figures, for
 * scripts (tests/bench/bench-server.sh).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hs.h"
#include "hs_api.h"
#include "hs_ca.h"
#include "key_soft.h"
#include "ml_log.h"
#include "ml_parse.h"
#include "ml_wipe.h"
#include "note_proto.h"
#include "registry.h"

#define LOAD_MAX_THREADS	256

struct opts {
	const char	*cmd;
	const char	*server, *server2, *ca, *bundle, *registry, *ca_dir;
	const char	*out, *prefix;
	unsigned	 readers, threads, conns, first, pool;
	unsigned long	 count;
	double		 seconds, hold;
	unsigned long long certno_base;
	enum hs_flow	 flow;
	long		 server_pid;
};

static struct opts o = {
	.threads = 8, .count = 1000, .seconds = 60, .hold = 2,
	.flow = HS_FLOW_A, .prefix = "LOAD-", .certno_base = 100000,
	.first = 0,
};

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
raise_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* ---------------------------------------------------------------- latencies */

struct lat {
	uint32_t	*us;
	size_t		 n, cap;
};

static void
lat_add(struct lat *l, double s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 4096;
		uint32_t *p = realloc(l->us, cap * sizeof(*p));

		if (p == NULL) {
			return;
		}
		l->us = p;
		l->cap = cap;
	}
	l->us[l->n++] = (uint32_t)(s * 1e6);
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static void
lat_merge(struct lat *dst, const struct lat *src)
{
	size_t i;

	for (i = 0; i < src->n; i++) {
		lat_add(dst, src->us[i] / 1e6);
	}
}

static double
pct(const struct lat *l, double p)
{
	size_t i;

	if (l->n == 0) {
		return 0;
	}
	i = (size_t)(p / 100.0 * (double)(l->n - 1) + 0.5);
	return l->us[i] / 1000.0;
}

static void
report(const char *what, unsigned long ok, unsigned long errs, double secs,
    struct lat *l)
{
	if (l->n > 1) {		/* l->us is NULL when nothing was timed */
		qsort(l->us, l->n, sizeof(*l->us), cmp_u32);
	}
	printf("result: %s ok=%lu errors=%lu seconds=%.2f rate=%.1f/s "
	    "p50=%.2fms p90=%.2fms p99=%.2fms max=%.2fms\n", what, ok, errs,
	    secs, secs > 0 ? (double)ok / secs : 0.0, pct(l, 50), pct(l, 90),
	    pct(l, 99), l->n ? l->us[l->n - 1] / 1000.0 : 0.0);
}

/* ---------------------------------------------------------------- readers */

struct reader {
	char			 serial[HS_MAX_SERIAL + 1];
	char			 certno[HS_MAX_CERTNO + 1];
	struct ml_p256_key	*key;
	struct key		 ko;
	uint8_t			 pub[ML_P256_PUB_LEN];
	uint8_t			*cert;
	size_t			 cert_len;
	struct hs_blob		 chain[1];
	struct hs_client_cfg	 cfg;
};

static struct reader *readers;
static size_t nreaders;
static struct hs_trust *trust;

static void
hex_put(FILE *f, const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		fprintf(f, "%02x", p[i]);
	}
}

static int
hex_get(const char *s, uint8_t *out, size_t cap, size_t *ret_n)
{
	size_t n = strlen(s) / 2, i;
	unsigned v;

	if (n > cap) {
		return ML_ERR_TOO_LARGE;
	}
	for (i = 0; i < n; i++) {
		if (sscanf(s + 2 * i, "%2x", &v) != 1) {
			return ML_ERR_FORMAT;
		}
		out[i] = (uint8_t)v;
	}
	*ret_n = n;
	return 0;
}

static int
cmd_setup(void)
{
	struct hs_ca *ca = NULL;
	struct reg *reg = NULL;
	char kp[1024], cp[1024];
	FILE *f = NULL;
	unsigned i;
	int r = ML_ERR_INTERNAL;
	double t0 = now_s();

	ML_ENSURE(o.ca_dir && o.registry && o.out && o.readers > 0, ML_ERR_ARG);
	snprintf(kp, sizeof(kp), "%s/root.key", o.ca_dir);
	snprintf(cp, sizeof(cp), "%s/root.pem", o.ca_dir);
	ML_TRY(hs_ca_load(kp, cp, &ca));
	ML_TRY(reg_open(o.registry, NULL, &reg));
	umask(077);
	if ((f = fopen(o.out, "w")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", o.out);
		goto out;
	}
	for (i = 0; i < o.readers; i++) {
		uint8_t priv[ML_P256_PRIV_LEN], pub[ML_P256_PUB_LEN], *der = NULL;
		size_t len;
		char serial[HS_MAX_SERIAL + 1];
		struct hs_certinfo ci;
		struct reg_reader rd;
		struct hs_ca_req req = { .pub = pub, .role = "reader",
		    .serial = serial, .certno = o.certno_base + i,
		    .backdate_s = 3600, .valid_s = 30L * 86400 };

		snprintf(serial, sizeof(serial), "%s%06u", o.prefix, i);
		if ((r = ml_p256_keygen(priv, pub)) != 0 ||
		    (r = hs_ca_issue(ca, &req, &der, &len)) != 0 ||
		    (r = hs_cert_facts(der, len, &ci)) != 0) {
			free(der);
			ml_wipe(priv, sizeof(priv));
			goto out;
		}
		memset(&rd, 0, sizeof(rd));
		memcpy(rd.serial, ci.serial, sizeof(rd.serial));
		memcpy(rd.certno, ci.certno, sizeof(rd.certno));
		rd.kind = HS_KIND_READER;
		snprintf(rd.factory, sizeof(rd.factory), "mintline-load");
		if ((r = reg_reader_put(reg, &rd)) != 0) {
			fprintf(stderr, "mintline-load: enrol %s: %s\n", serial,
			    ml_errmsg(r));
			free(der);
			ml_wipe(priv, sizeof(priv));
			goto out;
		}
		fprintf(f, "%s %s ", ci.serial, ci.certno);
		hex_put(f, priv, sizeof(priv));
		fputc(' ', f);
		hex_put(f, der, len);
		fputc('\n', f);
		ml_wipe(priv, sizeof(priv));
		free(der);
	}
	if (fclose(f) != 0) {
		f = NULL;
		r = ml_errf_sys(ML_ERR_IO, "%s", o.out);
		goto out;
	}
	f = NULL;
	printf("setup: %u readers made and enrolled in %.1f s\n", o.readers,
	    now_s() - t0);
	r = 0;
out:
	if (f != NULL) {
		fclose(f);
	}
	reg_close(reg);
	hs_ca_free(ca);
	return r;
}

static int
load_bundle(void)
{
	FILE *f;
	char *line = NULL;
	size_t cap = 0, cnt = 0, n;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(o.bundle && o.ca, ML_ERR_ARG);
	ML_TRY(hs_trust_load(o.ca, NULL, &trust));
	if ((f = fopen(o.bundle, "r")) == NULL) {
		r = ml_errf_sys(ML_ERR_IO, "%s", o.bundle);
		goto out;
	}
	while (getline(&line, &cap, f) > 0) {
		cnt++;
	}
	rewind(f);
	ML_ENSURE((readers = calloc(cnt ? cnt : 1, sizeof(*readers))) != NULL,
	    ML_ERR_NOMEM);
	while (getline(&line, &cap, f) > 0 && nreaders < cnt) {
		struct reader *rd = &readers[nreaders];
		char *save = NULL, *ser, *cno, *kh, *ch;
		uint8_t priv[ML_P256_PRIV_LEN];

		ser = strtok_r(line, " \n", &save);
		cno = strtok_r(NULL, " \n", &save);
		kh = strtok_r(NULL, " \n", &save);
		ch = strtok_r(NULL, " \n", &save);
		if (ser == NULL || cno == NULL || kh == NULL || ch == NULL) {
			continue;
		}
		snprintf(rd->serial, sizeof(rd->serial), "%s", ser);
		snprintf(rd->certno, sizeof(rd->certno), "%s", cno);
		ML_ENSURE((rd->cert = malloc(strlen(ch) / 2 + 1)) != NULL,
		    ML_ERR_NOMEM);
		if (hex_get(kh, priv, sizeof(priv), &n) != 0 ||
		    n != sizeof(priv) ||
		    hex_get(ch, rd->cert, strlen(ch) / 2, &rd->cert_len) != 0 ||
		    ml_p256_key_from_priv(priv, &rd->key) != 0 ||
		    ml_p256_key_pub(rd->key, rd->pub) != 0) {
			ml_wipe(priv, sizeof(priv));
			fclose(f);
			r = ML_ERR_FORMAT;
			goto out;
		}
		ml_wipe(priv, sizeof(priv));
		key_soft_init(&rd->ko, rd->key);
		rd->chain[0].p = rd->cert;
		rd->chain[0].len = rd->cert_len;
		rd->cfg.flow = o.flow;
		rd->cfg.kind = HS_KIND_READER;
		rd->cfg.cred.key = &rd->ko;
		rd->cfg.cred.chain = rd->chain;
		rd->cfg.cred.nchain = 1;
		rd->cfg.cred.pub = rd->pub;
		rd->cfg.cred.certno = rd->certno;
		rd->cfg.trust = trust;
		rd->cfg.serial = rd->serial;
		rd->cfg.timeout_ms = 15000;
		nreaders++;
	}
	fclose(f);
	ML_ENSURE(nreaders > 0, ML_ERR_NOT_FOUND);
	r = 0;
out:
	free(line);
	return r;
}

/* Connect reader i to server k (0, or 1 = --server2). */
static int
connect_one(size_t i, int k, struct hs_chan **ret)
{
	char host[256], port[ML_PORT_STRLEN];
	int alert = 0, r;

	if ((r = ml_hostport_split(k == 1 && o.server2 ? o.server2 : o.server,
	    host, sizeof(host), port)) != 0) {
		return r;
	}
	r = hs_connect(host, port, &readers[i % nreaders].cfg, ret, &alert);
	if (r != 0 && alert != 0) {
		static atomic_int said;

		if (atomic_fetch_add(&said, 1) < 5) {
			fprintf(stderr, "mintline-load: %s refused: %s\n",
			    readers[i % nreaders].serial, hs_alert_text(alert));
		}
	}
	return r;
}

/* ---------------------------------------------------------------- hs */

static atomic_ulong next_op, ops_ok, ops_err;
static double deadline;
static double phase_t0;		/* > 0: timed phase started here (ping) */
static double phase_secs;
static pthread_barrier_t phase_barrier;

struct worker {
	pthread_t	 th;
	struct lat	 lat;
	unsigned	 id;
};

static void *
hs_worker(void *p)
{
	struct worker *w = p;
	unsigned long i;

	while ((i = atomic_fetch_add(&next_op, 1)) < o.count &&
	    now_s() < deadline) {
		struct hs_chan *c = NULL;
		double t0 = now_s();

		if (connect_one(i, (int)(i & 1), &c) == 0) {
			lat_add(&w->lat, now_s() - t0);
			atomic_fetch_add(&ops_ok, 1);
			hs_chan_close(c);
		} else {
			atomic_fetch_add(&ops_err, 1);
		}
	}
	return NULL;
}

static int
run_workers(void *(*fn)(void *), const char *what)
{
	struct worker *w;
	struct lat all = { 0 };
	unsigned t;
	double t0;

	if (o.threads < 1 || o.threads > LOAD_MAX_THREADS) {
		return ML_ERR_ARG;
	}
	w = calloc(o.threads, sizeof(*w));
	if (w == NULL) {
		return ML_ERR_NOMEM;
	}
	t0 = now_s();
	deadline = t0 + o.seconds;
	for (t = 0; t < o.threads; t++) {
		w[t].id = t;
		pthread_create(&w[t].th, NULL, fn, &w[t]);
	}
	for (t = 0; t < o.threads; t++) {
		pthread_join(w[t].th, NULL);
		lat_merge(&all, &w[t].lat);
		free(w[t].lat.us);
	}
	report(what, atomic_load(&ops_ok), atomic_load(&ops_err), now_s() -
	    (phase_t0 > 0 ? phase_t0 : t0), &all);
	free(all.us);
	free(w);
	if (atomic_load(&ops_ok) == 0) {
		return ml_errf(ML_ERR_IO, "%s: not one operation succeeded "
		    "(%lu failed)", what, (unsigned long)atomic_load(&ops_err));
	}
	return 0;
}

static int
cmd_hs(void)
{
	char what[64];
	int r;

	if ((r = load_bundle()) != 0) {
		return r;
	}
	snprintf(what, sizeof(what), "handshakes flow=%c readers=%zu threads=%u",
	    o.flow == HS_FLOW_A ? 'A' : 'B', nreaders, o.threads);
	return run_workers(hs_worker, what);
}

/* ---------------------------------------------------------------- idle */

static struct hs_chan **chans;

static long
rss_kib(long pid)
{
	char path[64], line[256];
	FILE *f;
	long kib = -1;

	snprintf(path, sizeof(path), "/proc/%ld/status", pid);
	if ((f = fopen(path, "r")) == NULL) {
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "VmRSS: %ld", &kib) == 1) {
			break;
		}
	}
	fclose(f);
	return kib;
}

/*
 * Operations i = 0, 1, ... shared by the threads until `limit` or the
 * deadline; op returns 0 for a success, whose latency w records.
 */
static void
timed_ops(struct worker *w, unsigned long limit, int (*op)(unsigned long))
{
	unsigned long i;

	while ((i = atomic_fetch_add(&next_op, 1)) < limit &&
	    now_s() < deadline) {
		double t0 = now_s();

		if (op(i) == 0) {
			lat_add(&w->lat, now_s() - t0);
			atomic_fetch_add(&ops_ok, 1);
		} else {
			atomic_fetch_add(&ops_err, 1);
		}
	}
}

static int
idle_one(unsigned long i)
{
	int r;

	if ((r = connect_one(i, (int)(i & 1), &chans[i])) != 0) {
		chans[i] = NULL;
	}
	return r;
}

static void *
idle_worker(void *p)
{
	timed_ops(p, o.conns, idle_one);
	return NULL;
}

static int
cmd_idle(void)
{
	long before = -1, with = -1, after_ping = -1;
	unsigned long i, alive = 0;
	char what[96];
	uint8_t buf[64], type;
	size_t n;
	int r;

	if (o.conns == 0 || (r = load_bundle()) != 0) {
		return o.conns == 0 ? ML_ERR_ARG : r;
	}
	if ((chans = calloc(o.conns, sizeof(*chans))) == NULL) {
		return ML_ERR_NOMEM;
	}
	if (o.server_pid > 0) {
		before = rss_kib(o.server_pid);
	}
	snprintf(what, sizeof(what), "idle-open conns=%u threads=%u", o.conns,
	    o.threads);
	r = run_workers(idle_worker, what);
	sleep((unsigned)(o.hold > 0 ? o.hold : 0));
	if (o.server_pid > 0) {
		with = rss_kib(o.server_pid);
	}
	/* Still authenticated and served: one PING on each channel. */
	for (i = 0; i < o.conns; i++) {
		if (chans[i] != NULL && hs_chan_call(chans[i], HS_REC_PING, "p", 1,
		    &type, buf, sizeof(buf), &n) == 0 && type == HS_REC_PONG) {
			alive++;
		}
	}
	if (o.server_pid > 0) {
		after_ping = rss_kib(o.server_pid);
	}
	printf("result: idle held=%lu alive_after_hold=%lu server_rss_before="
	    "%ldKiB server_rss_held=%ldKiB server_rss_after_ping=%ldKiB "
	    "per_conn=%.1fKiB client_rss=%ldKiB\n",
	    atomic_load(&ops_ok), alive, before, with, after_ping,
	    atomic_load(&ops_ok) && with > 0 && before > 0 ?
	    (double)(with - before) / (double)atomic_load(&ops_ok) : 0.0,
	    rss_kib((long)getpid()));
	for (i = 0; i < o.conns; i++) {
		hs_chan_close(chans[i]);
	}
	free(chans);
	if (r == 0 && alive != atomic_load(&ops_ok)) {
		r = ml_errf(ML_ERR_IO, "idle: %lu of %lu channels still alive "
		    "after the hold", alive, (unsigned long)atomic_load(&ops_ok));
	}
	return r;
}

/* ---------------------------------------------------------------- ping */

/*
 * Records over established channels: each thread opens its share of the
 * --conns channels, then sends PING records round robin over them until
 * --count records or --seconds; one record in flight per thread.
 */
static void *
ping_worker(void *p)
{
	struct worker *w = p;
	struct hs_chan **mine;
	unsigned n = 0, k, per = (o.conns + o.threads - 1) / o.threads;
	unsigned long i;
	uint8_t buf[64], type;
	size_t len;

	if ((mine = calloc(per ? per : 1, sizeof(*mine))) == NULL) {
		return NULL;
	}
	for (k = 0; k < per && w->id * per + k < o.conns; k++) {
		if (connect_one(w->id * per + k, (int)(k & 1), &mine[n]) == 0) {
			n++;
		}
	}
	/* every channel open before the timed phase starts */
	if (pthread_barrier_wait(&phase_barrier) ==
	    PTHREAD_BARRIER_SERIAL_THREAD) {
		phase_t0 = now_s();
		deadline = phase_t0 + phase_secs;
	}
	pthread_barrier_wait(&phase_barrier);
	for (k = 0; n > 0 && (i = atomic_fetch_add(&next_op, 1)) < o.count &&
	    now_s() < deadline; k = (k + 1) % n) {
		double t0 = now_s();

		if (hs_chan_call(mine[k], HS_REC_PING, "ping", 4, &type, buf,
		    sizeof(buf), &len) == 0 && type == HS_REC_PONG) {
			lat_add(&w->lat, now_s() - t0);
			atomic_fetch_add(&ops_ok, 1);
		} else {
			atomic_fetch_add(&ops_err, 1);
		}
	}
	for (k = 0; k < n; k++) {
		hs_chan_close(mine[k]);
	}
	free(mine);
	return NULL;
}

static int
cmd_ping(void)
{
	char what[96];
	int r;

	if (o.conns == 0 || (r = load_bundle()) != 0) {
		return o.conns == 0 ? ML_ERR_ARG : r;
	}
	snprintf(what, sizeof(what), "records (PING) conns=%u threads=%u",
	    o.conns, o.threads);
	if (o.threads < 1 || o.threads > LOAD_MAX_THREADS) {
		return ML_ERR_ARG;
	}
	pthread_barrier_init(&phase_barrier, NULL, o.threads);
	phase_secs = o.seconds;
	o.seconds += 600;	/* opening the channels is not timed */
	r = run_workers(ping_worker, what);
	pthread_barrier_destroy(&phase_barrier);
	return r;
}

/* ---------------------------------------------------------------- burst */

/*
 * Records per connection: BURST_MIN .. BURST_MAX of 64 KiB, more than the
 * server's socket takes (a loopback send buffer grows to about 2.5 MiB),
 * so that its replies queue up in the server; the reset comes 0 to
 * BURST_WAIT_MS later, when the server is somewhere in that queue.
 */
#define BURST_MIN	40
#define BURST_MAX	64
#define BURST_WAIT_MS	84

/*
 * One connection of a reader that does not read (ID-5): i picks the
 * reader, how many records (BURST_MIN .. BURST_MAX) and how long before
 * the reset, so that it lands at different points of the server's work
 * on them.  Returns 0 when at least one record went out before the reset.
 */
static int
burst_one(unsigned long i)
{
	static const uint8_t payload[HS_MAX_RECORD];
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *res = NULL;
	struct hs_client_cfg cfg = readers[i % nreaders].cfg;
	struct linger rst = { .l_onoff = 1, .l_linger = 0 };
	char host[256], port[ML_PORT_STRLEN];
	struct hs_chan *c = NULL;
	int fd = -1, small = 4096, null, r;
	unsigned k, want = BURST_MIN +
	    (unsigned)(i % (BURST_MAX - BURST_MIN + 1));

	ML_TRY(ml_hostport_split(o.server, host, sizeof(host), port));
	if ((r = getaddrinfo(host, port, &hints, &res)) != 0) {
		r = ml_errf(ML_ERR_IO, "%s: %s", o.server, gai_strerror(r));
		goto out;
	}
	if ((fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s: socket", o.server);
		goto out;
	}
	/* before connect: the window the server sees stays small */
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
		r = ml_errf_sys(ML_ERR_IO, "%s: connect", o.server);
		goto out;
	}
	cfg.timeout_ms = 5000;
	ML_TRY(hs_client_fd(fd, &cfg, &c, NULL));
	for (k = 0; k < want; k++) {
		if (hs_chan_send(c, HS_REC_PING, payload, sizeof(payload)) != 0) {
			break;
		}
	}
	usleep((useconds_t)(i % 13) * (BURST_WAIT_MS / 12) * 1000);
	/* the reset: linger 0, and the socket's last reference dropped by
	 * putting /dev/null in its place (the channel's own close then sends
	 * its CLOSE record nowhere) */
	(void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &rst, sizeof(rst));
	if ((null = open("/dev/null", O_WRONLY | O_CLOEXEC)) >= 0) {
		(void)dup2(null, fd);
		close(null);
	}
	r = k > 0 ? 0 : ml_errf(ML_ERR_IO, "%s: no PING record went out",
	    o.server);
out:
	if (c != NULL) {
		hs_chan_close(c);	/* closes fd */
	} else if (fd >= 0) {
		close(fd);
	}
	if (res != NULL) {
		freeaddrinfo(res);
	}
	return r;
}

static void *
burst_worker(void *p)
{
	timed_ops(p, o.count, burst_one);
	return NULL;
}

static int
cmd_burst(void)
{
	char what[96];
	int r;

	if ((r = load_bundle()) != 0) {
		return r;
	}
	snprintf(what, sizeof(what), "burst-reset records<=%d readers=%zu "
	    "threads=%u", BURST_MAX, nreaders, o.threads);
	return run_workers(burst_worker, what);
}

/* ---------------------------------------------------------------- reg */

static struct reg *lreg;

struct fake_note {
	struct note_reg	 nr;
	uint8_t		 feature[96];
};

static void
note_of(unsigned long i, struct fake_note *fn)
{
	size_t k;

	memset(fn, 0, sizeof(*fn));
	snprintf(fn->nr.note_id, sizeof(fn->nr.note_id), "LD%012lu", i);
	snprintf(fn->nr.chip_serial, sizeof(fn->nr.chip_serial), "L%015lu", i);
	for (k = 0; k < sizeof(fn->feature); k++) {
		fn->feature[k] = (uint8_t)(i + k);
	}
	fn->nr.feature = fn->feature;
	fn->nr.feature_len = sizeof(fn->feature);
	memset(fn->nr.challenge, (int)(i & 0xff), sizeof(fn->nr.challenge));
	memset(fn->nr.station_sig, 0x5a, sizeof(fn->nr.station_sig));
	memset(fn->nr.issuer_pub, 0x04, sizeof(fn->nr.issuer_pub));
}

static void *
enrol_worker(void *p)
{
	struct worker *w = p;
	unsigned long i;

	while ((i = atomic_fetch_add(&next_op, 1)) < o.count) {
		struct fake_note fn;
		uint8_t pub[ML_P256_PUB_LEN];
		int r;

		note_of(o.first + i, &fn);
		memset(pub, (int)(i & 0xff), sizeof(pub));
		pub[0] = 0x04;
		r = reg_notes_enrol(lreg, fn.nr.chip_serial, pub);
		atomic_fetch_add(r >= 0 ? &ops_ok : &ops_err, 1);
	}
	(void)w;
	return NULL;
}

static void *
reg_worker(void *p)
{
	struct worker *w = p;
	unsigned long i;

	while ((i = atomic_fetch_add(&next_op, 1)) < o.count &&
	    now_s() < deadline) {
		struct fake_note fn;
		uint64_t id;
		double t0;
		int r;

		note_of(o.first + i, &fn);
		t0 = now_s();
		r = reg_notes_register(lreg, &fn.nr, &id);
		if (r == REG_NOTE_NEW || r == REG_NOTE_AGAIN) {
			lat_add(&w->lat, now_s() - t0);
			atomic_fetch_add(&ops_ok, 1);
		} else {
			atomic_fetch_add(&ops_err, 1);
		}
	}
	return NULL;
}

static int
cmd_reg(void)
{
	char what[128];
	double secs = o.seconds;
	int r;

	if (o.registry == NULL) {
		return ML_ERR_ARG;
	}
	if ((r = reg_open(o.registry, &(struct reg_cfg){ .pg_pool =
	    (int)o.pool }, &lreg)) != 0) {
		fprintf(stderr, "mintline-load: registry %s: %s\n", o.registry,
		    ml_errmsg(r));
		return r;
	}
	o.seconds = 3600;
	if ((r = run_workers(enrol_worker, "enrol (untimed setup)")) != 0) {
		goto out;
	}
	o.seconds = secs;
	atomic_store(&next_op, 0);
	atomic_store(&ops_ok, 0);
	atomic_store(&ops_err, 0);
	snprintf(what, sizeof(what), "registrations backend=%s threads=%u",
	    lreg->ops->name, o.threads);
	r = run_workers(reg_worker, what);
out:
	reg_close(lreg);
	return r;
}

/* ---------------------------------------------------------------- main */

static void
usage(FILE *f)
{
	fprintf(f,
"usage: mintline-load setup --ca-dir D --registry TARGET --readers N --out BUNDLE\n"
"                           [--prefix LOAD-] [--certno-base N]\n"
"       mintline-load hs    --server H:P --ca ROOT --bundle BUNDLE [--flow A|B]\n"
"       mintline-load idle  --server H:P --ca ROOT --bundle BUNDLE --conns N\n"
"                           [--hold S] [--server-pid PID]\n"
"       mintline-load ping  --server H:P --ca ROOT --bundle BUNDLE --conns N\n"
"       mintline-load burst --server H:P --ca ROOT --bundle BUNDLE\n"
"       mintline-load reg   --registry TARGET [--first K] [--registry-pool P]\n"
"  common: --threads T (8) --count N (1000) --seconds S (60) [--server2 H:P]\n");
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "server", required_argument, NULL, 's' },
		{ "server2", required_argument, NULL, 'S' },
		{ "ca", required_argument, NULL, 'a' },
		{ "ca-dir", required_argument, NULL, 'D' },
		{ "bundle", required_argument, NULL, 'b' },
		{ "registry", required_argument, NULL, 'g' },
		{ "readers", required_argument, NULL, 'R' },
		{ "out", required_argument, NULL, 'o' },
		{ "prefix", required_argument, NULL, 'P' },
		{ "certno-base", required_argument, NULL, 'C' },
		{ "threads", required_argument, NULL, 't' },
		{ "count", required_argument, NULL, 'n' },
		{ "seconds", required_argument, NULL, 'T' },
		{ "conns", required_argument, NULL, 'c' },
		{ "hold", required_argument, NULL, 'H' },
		{ "server-pid", required_argument, NULL, 'p' },
		{ "flow", required_argument, NULL, 'f' },
		{ "first", required_argument, NULL, 'F' },
		{ "registry-pool", required_argument, NULL, 'G' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	uint64_t u64;
	int64_t i64;
	int c, r;

	if (argc < 2 || argv[1][0] == '-') {
		usage(stderr);
		return 2;
	}
	o.cmd = argv[1];
	argc--;
	argv++;
	while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
		r = 0;
		switch (c) {
		case 's': o.server = optarg; break;
		case 'S': o.server2 = optarg; break;
		case 'a': o.ca = optarg; break;
		case 'D': o.ca_dir = optarg; break;
		case 'b': o.bundle = optarg; break;
		case 'g': o.registry = optarg; break;
		case 'R': r = ml_parse_uint(optarg, "--readers", 1, UINT_MAX,
		    &o.readers); break;
		case 'o': o.out = optarg; break;
		case 'P': o.prefix = optarg; break;
		case 'C': r = ml_parse_u64(optarg, "--certno-base", 0,
		    UINT64_MAX / 2, &u64); o.certno_base = u64; break;
		case 't': r = ml_parse_uint(optarg, "--threads", 1, LOAD_MAX_THREADS,
		    &o.threads); break;
		case 'n': r = ml_parse_u64(optarg, "--count", 0, ULONG_MAX,
		    &u64); o.count = (unsigned long)u64; break;
		case 'T': o.seconds = strtod(optarg, NULL); break;
		case 'c': r = ml_parse_uint(optarg, "--conns", 1, UINT_MAX,
		    &o.conns); break;
		case 'H': o.hold = strtod(optarg, NULL); break;
		case 'p': r = ml_parse_i64(optarg, "--server-pid", 1, INT_MAX,
		    &i64); o.server_pid = (long)i64; break;
		case 'F': r = ml_parse_uint(optarg, "--first", 0, UINT_MAX,
		    &o.first); break;
		case 'G': r = ml_parse_uint(optarg, "--registry-pool", 1,
		    REG_PG_POOL_MAX, &o.pool); break;
		case 'f':
			o.flow = optarg[0] == 'B' || optarg[0] == 'b' ?
			    HS_FLOW_B : HS_FLOW_A;
			break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
		if (r != 0) {
			fprintf(stderr, "mintline-load: %s\n", ml_errmsg(r));
			return 2;
		}
	}
	ml_log_set_ident("mintline-load");
	raise_nofile();
	if (strcmp(o.cmd, "setup") == 0) {
		r = cmd_setup();
	} else if (strcmp(o.cmd, "hs") == 0) {
		r = o.server ? cmd_hs() : ML_ERR_ARG;
	} else if (strcmp(o.cmd, "idle") == 0) {
		r = o.server ? cmd_idle() : ML_ERR_ARG;
	} else if (strcmp(o.cmd, "ping") == 0) {	/* ct-ok: a command name */
		r = o.server ? cmd_ping() : ML_ERR_ARG;
	} else if (strcmp(o.cmd, "burst") == 0) {
		r = o.server ? cmd_burst() : ML_ERR_ARG;
	} else if (strcmp(o.cmd, "reg") == 0) {
		r = cmd_reg();
	} else {
		usage(stderr);
		return 2;
	}
	if (r == ML_ERR_ARG) {
		usage(stderr);
		return 2;
	}
	if (r != 0) {
		fprintf(stderr, "mintline-load: %s\n", ml_errmsg(r));
		return 1;
	}
	return 0;
}
