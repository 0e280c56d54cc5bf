/*
 * bench_idread: ID-card reading (ID-6..ID-13).
 *
 *   1. first read vs second read latency (median, p99), in-process chips:
 *      the first read clears the reader secure chip's cache, reads the card
 *      (READ BINARY), uploads and caches the plaintext; the second is
 *      answered by the chip (ID-11).  Over the loopback link (server code
 *      in process), and with --server over TCP to a real mintline-server
 *      (handshake A with the key inside the reader chip, every read).
 *   2. reads/s the server's ID-reading code + SAM emulator sustain with
 *      T readers uploading at once (threads, distinct reader identities,
 *      one shared idr_srv + SAM), against the SAM decode alone as anchor.
 *   3. upload time and bytes with 0%, 1%, 10% packet loss: selective
 *      retransmission (ID-8) vs re-sending the whole upload.
 *
 *   bench_idread [--iters N] [--threads LIST]
 *       [--server HOST:PORT --ca ROOT.pem --cert READER.pem --line DIR
 *        --card IMG]
 *
 * --line DIR is an in-process line whose pos-00 is a reader chip with a
 * key (user PIN 1234) certified by --cert; --card an ID card image made
 * with the SAM key the server uses.  tests/bench/bench-idread.sh does all
 * of that.
 */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "key_soft.h"
#include "ml_secret.h"
#include "ml_wipe.h"
#include "../unit/idr_testkit.h"

static uint64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void
stats(uint64_t *v, size_t n, double *ret_med_us, double *ret_p99_us)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	*ret_med_us = (double)v[n / 2] / 1000.0;
	*ret_p99_us = (double)v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] /
	    1000.0;
}

#define DIE(what, r) do {						\
	fprintf(stderr, "bench_idread: %s: %s\n", what, ml_errname(r));\
	exit(1);							\
} while (0)

/* ---------------------------------------------------------------- 1 */

struct net {
	char			 host[256], port[16];
	struct hs_trust		*trust;
	struct hs_chain		 chain;
	struct key		 ko;
	struct hs_client_cfg	 cfg;
};

static int
net_connect(void *ctx, struct idr_link *ret)
{
	struct net *n = ctx;
	struct hs_chan *c = NULL;
	int alert = 0, r;

	if ((r = hs_connect(n->host, n->port, &n->cfg, &c, &alert)) != 0) {
		fprintf(stderr, "connect: %s alert %d\n", ml_errname(r), alert);
		return r;
	}
	idr_link_hs(c, ret);
	return 0;
}

static void
latency(struct idr_reader *ir, idr_connect_fn conn, void *cctx, int iters,
    const char *label)
{
	uint64_t *first = calloc((size_t)iters, sizeof(uint64_t));
	uint64_t *second = calloc((size_t)iters, sizeof(uint64_t));
	struct idc_info *ii = calloc(1, sizeof(*ii));
	struct idr_read_info ri;
	double m1, p1, m2, p2;
	uint64_t t0;
	int i, r;

	for (i = 0; i < iters; i++) {
		if ((r = idr_reader_forget(ir)) != 0) {
			DIE("forget", r);
		}
		t0 = now_ns();
		if ((r = idr_reader_read(ir, conn, cctx, NULL, ii, &ri)) != 0 ||
		    ri.from_cache) {
			DIE("first read", r);
		}
		first[i] = now_ns() - t0;
		t0 = now_ns();
		if ((r = idr_reader_read(ir, conn, cctx, NULL, ii, &ri)) != 0 ||
		    !ri.from_cache) {
			DIE("second read", r);
		}
		second[i] = now_ns() - t0;
	}
	stats(first, (size_t)iters, &m1, &p1);
	stats(second, (size_t)iters, &m2, &p2);
	printf("latency %-28s first  median %9.1f us  p99 %9.1f us\n", label,
	    m1, p1);
	printf("latency %-28s second median %9.1f us  p99 %9.1f us  "
	    "(%.0fx faster)\n", label, m2, p2, m1 / m2);
	idc_info_clear(ii);
	free(ii);
	free(first);
	free(second);
}

/* ---------------------------------------------------------------- 2 */

struct thr {
	struct tk		*t;
	const struct ml_wr	*cfg, *data;
	int			 n;
	int			 idx;
	int			 failed;
};

static void *
thr_run(void *arg)
{
	struct thr *th = arg;
	struct hs_peer peer = th->t->peer;
	struct idr_upload_req req;
	struct ml_wr info = ml_wr_dyn(8192);
	struct idr_link l;
	int i;

	snprintf(peer.serial, sizeof(peer.serial), "RDR-BENCH-%04d", th->idx);
	memset(&req, 0, sizeof(req));
	req.config = th->cfg->p;
	req.config_len = th->cfg->len;
	req.data = th->data->p;
	req.data_len = th->data->len;
	for (i = 0; i < th->n; i++) {
		if (idr_link_loop(idr_srv_handle, th->t->srv, &peer, &l) != 0) {
			th->failed++;
			continue;
		}
		ml_wr_clear(&info);
		if (idr_upload(&l, &req, &info, NULL) != 0) {
			th->failed++;
		}
		l.close(l.ctx);
	}
	ml_wr_free(&info);
	return NULL;
}

/* The card's configuration and encrypted data, as the reader uploads. */
static void
card_blobs(struct tk *t, struct ml_wr *cfg, struct ml_wr *data)
{
	struct idc_config c;
	struct idc_info *ii = calloc(1, sizeof(*ii));
	int r;

	memset(&c, 0, sizeof(c));
	memcpy(c.serial, "\x11\x22\x33\x44\x55\x66\x77\x88", 8);
	memcpy(c.proto, "ISO14443B", 10);
	c.bitrate_kbps = 106;
	c.max_frame = 256;
	tk_fill_info(5, ii);
	if ((r = idc_config_encode(&c, cfg)) != 0 ||
	    (r = idc_data_seal(t->sam_key, c.serial, ii, data)) != 0) {
		DIE("card blobs", r);
	}
	idc_info_clear(ii);
	free(ii);
}

static void
throughput(struct tk *t, const int *threads, size_t nthreads, int per)
{
	struct ml_wr cfg = ml_wr_dyn(256), data = ml_wr_dyn(8192);
	struct ml_wr info = ml_wr_dyn(8192);
	pthread_t tid[256];
	struct thr th[256];
	uint64_t t0, dt;
	size_t k;
	int i, n, r, fails;

	card_blobs(t, &cfg, &data);
	/* anchor: the SAM decode alone, one thread */
	t0 = now_ns();
	for (i = 0; i < 2000; i++) {
		ml_wr_clear(&info);
		if ((r = sam_decode(t->sam, cfg.p, cfg.len, data.p, data.len,
		    &info)) != 0) {
			DIE("sam", r);
		}
	}
	dt = now_ns() - t0;
	printf("throughput anchor: SAM emulator decode alone, 1 thread: "
	    "%.0f decodes/s\n", 2000.0 * 1e9 / (double)dt);
	for (k = 0; k < nthreads; k++) {
		n = threads[k];
		if (n < 1 || n > 256) {
			continue;
		}
		memset(th, 0, sizeof(th));
		t0 = now_ns();
		for (i = 0; i < n; i++) {
			th[i].t = t;
			th[i].cfg = &cfg;
			th[i].data = &data;
			th[i].n = per;
			th[i].idx = i;
			pthread_create(&tid[i], NULL, thr_run, &th[i]);
		}
		fails = 0;
		for (i = 0; i < n; i++) {
			pthread_join(tid[i], NULL);
			fails += th[i].failed;
		}
		dt = now_ns() - t0;
		printf("throughput %3d readers at once: %8.0f reads/s "
		    "(%d reads, %d failed)\n", n,
		    (double)n * per * 1e9 / (double)dt, n * per, fails);
	}
	ml_wr_free(&cfg);
	ml_wr_free(&data);
	ml_wr_free(&info);
}

/* ---------------------------------------------------------------- 3 */

static void
loss(struct tk *t, int iters)
{
	static const unsigned pms[] = { 0, 10, 100 };
	struct ml_wr cfg = ml_wr_dyn(256), data = ml_wr_dyn(8192);
	struct ml_wr info = ml_wr_dyn(8192);
	uint64_t *tm = calloc((size_t)iters, sizeof(uint64_t));
	struct idr_upload_stats st;
	struct idr_upload_req req;
	struct idr_faults f;
	struct idr_link l;
	uint64_t bytes, base = 0, t0;
	double med, p99;
	size_t k;
	int whole, i, r;

	card_blobs(t, &cfg, &data);
	memset(&req, 0, sizeof(req));
	req.config = cfg.p;
	req.config_len = cfg.len;
	req.data = data.p;
	req.data_len = data.len;
	req.faults = &f;
	for (k = 0; k < ML_NELEM(pms); k++) {
		for (whole = 0; whole <= 1; whole++) {
			bytes = 0;
			for (i = 0; i < iters; i++) {
				memset(&f, 0, sizeof(f));
				f.never = -1;
				f.seed = 1000 + (uint64_t)i;
				f.loss_pm = pms[k];
				f.whole_resend = whole;
				if ((r = idr_link_loop(idr_srv_handle, t->srv, &t->peer, &l)) != 0) {
					DIE("link", r);
				}
				ml_wr_clear(&info);
				t0 = now_ns();
				r = idr_upload(&l, &req, &info, &st);
				tm[i] = now_ns() - t0;
				l.close(l.ctx);
				if (r != 0) {
					DIE("upload", r);
				}
				bytes += st.bytes;
			}
			if (pms[k] == 0 && !whole) {
				base = bytes;
			}
			stats(tm, (size_t)iters, &med, &p99);
			printf("loss %4.1f%% %-9s upload median %7.1f us  p99 "
			    "%7.1f us  packet bytes/upload %7.0f  extra over "
			    "lossless %6.0f\n", pms[k] / 10.0,
			    whole ? "whole" : "selective", med, p99,
			    (double)bytes / iters,
			    ((double)bytes - (double)base) / iters);
		}
	}
	free(tm);
	ml_wr_free(&cfg);
	ml_wr_free(&data);
	ml_wr_free(&info);
}

/* ---------------------------------------------------------------- 2 (net) */

/*
 * --gen-readers N DIR: N software reader keys (tests of the server only:
 * real readers keep theirs in the chip), DIR/rNNNN.key (raw scalar) and
 * DIR/rNNNN.der (SPKI) for mintline-ca issue --pub.
 */
static int
gen_readers(int n, const char *dir)
{
	static const uint8_t spki[26] = {
		0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce,
		0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
		0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
	};
	uint8_t priv[ML_P256_PRIV_LEN], pub[ML_P256_PUB_LEN], der[91];
	char p[600];
	int i, r;

	for (i = 0; i < n; i++) {
		ML_TRY(ml_p256_keygen(priv, pub));
		snprintf(p, sizeof(p), "%s/r%04d.key", dir, i);
		ML_TRY(tk_write_file(p, priv, sizeof(priv)));
		memcpy(der, spki, sizeof(spki));
		memcpy(der + sizeof(spki), pub, sizeof(pub));
		snprintf(p, sizeof(p), "%s/r%04d.der", dir, i);
		ML_TRY(tk_write_file(p, der, sizeof(der)));
	}
	r = 0;
out:
	ml_wipe(priv, sizeof(priv));
	return r;
}

struct nthr {
	const struct net	*base;
	const char		*dir;
	const struct ml_wr	*cfg, *data;
	int			 idx, n;
	bool			 reuse;		/* one channel for all reads */
	uint8_t			 per_record;	/* 0 bursts, 1 PKT records */
	int			 failed;
};

static void *
nthr_run(void *arg)
{
	struct nthr *th = arg;
	struct ml_p256_key *key = NULL;
	struct key ko;
	struct hs_chain chain;
	struct hs_client_cfg cfg;
	struct idr_upload_req req;
	struct ml_wr info = ml_wr_dyn(8192);
	struct idr_link l = { 0 };
	struct hs_chan *c = NULL;
	uint8_t priv[ML_P256_PRIV_LEN];
	char p[600], serial[32];
	FILE *f;
	int i, alert, r;

	memset(&chain, 0, sizeof(chain));
	snprintf(p, sizeof(p), "%s/r%04d.key", th->dir, th->idx);
	if ((f = fopen(p, "rb")) == NULL ||
	    fread(priv, 1, sizeof(priv), f) != sizeof(priv)) {
		th->failed = th->n;
		if (f != NULL) {
			fclose(f);
		}
		return NULL;
	}
	fclose(f);
	snprintf(p, sizeof(p), "%s/r%04d.pem", th->dir, th->idx);
	snprintf(serial, sizeof(serial), "RDR-BENCH-%04d", th->idx);
	if (ml_p256_key_from_priv(priv, &key) != 0 ||
	    hs_chain_load(p, &chain) != 0) {
		th->failed = th->n;
		goto out;
	}
	key_soft_init(&ko, key);
	cfg = th->base->cfg;
	cfg.cred.key = &ko;
	cfg.cred.chain = chain.blob;
	cfg.cred.nchain = chain.n;
	cfg.serial = serial;
	memset(&req, 0, sizeof(req));
	req.config = th->cfg->p;
	req.config_len = th->cfg->len;
	req.data = th->data->p;
	req.data_len = th->data->len;
	req.per_record = th->per_record;
	for (i = 0; i < th->n; i++) {
		if (l.ctx == NULL) {
			if ((r = hs_connect(th->base->host, th->base->port, &cfg,
			    &c, &alert)) != 0) {
				th->failed++;
				continue;
			}
			idr_link_hs(c, &l);
		}
		ml_wr_clear(&info);
		if (idr_upload(&l, &req, &info, NULL) != 0) {
			th->failed++;
		}
		if (!th->reuse) {
			l.close(l.ctx);
			l.ctx = NULL;
		}
	}
out:
	if (l.ctx != NULL) {
		l.close(l.ctx);
	}
	hs_chain_free(&chain);
	ml_p256_key_free(key);
	ml_wipe(priv, sizeof(priv));
	ml_wr_free(&info);
	return NULL;
}

static void
net_throughput(const struct net *base, const char *dir, const char *sam_key,
    const char *card_seedless, const int *threads, size_t nthreads, int per)
{
	struct ml_wr cfg = ml_wr_dyn(256), data = ml_wr_dyn(8192);
	pthread_t tid[256];
	struct nthr th[256];
	struct tk t;
	uint64_t t0, dt;
	size_t k;
	int i, n, fails, reuse;

	memset(&t, 0, sizeof(t));
	if ((i = ml_keyfile_read(sam_key, t.sam_key, sizeof(t.sam_key))) != 0) {
		DIE("sam key", i);
	}
	card_blobs(&t, &cfg, &data);
	for (reuse = 0; reuse <= 2; reuse++) {
		for (k = 0; k < nthreads; k++) {
			n = threads[k];
			if (n < 1 || n > 256) {
				continue;
			}
			memset(th, 0, sizeof(th));
			t0 = now_ns();
			for (i = 0; i < n; i++) {
				th[i].base = base;
				th[i].dir = dir;
				th[i].cfg = &cfg;
				th[i].data = &data;
				th[i].idx = i;
				th[i].n = per;
				th[i].reuse = reuse != 0;
				th[i].per_record = reuse == 2 ? 1 : 0;
				pthread_create(&tid[i], NULL, nthr_run, &th[i]);
			}
			fails = 0;
			for (i = 0; i < n; i++) {
				pthread_join(tid[i], NULL);
				fails += th[i].failed;
			}
			dt = now_ns() - t0;
			printf("server %3d readers at once, %s: %7.0f reads/s "
			    "(%d reads, %d failed)\n", n, reuse == 2 ?
			    "one channel, PKT records " : reuse == 1 ?
			    "one channel per reader   " :
			    "handshake A + upload each", (double)n * per * 1e9 /
			    (double)dt, n * per, fails);
		}
	}
	ml_wr_free(&cfg);
	ml_wr_free(&data);
}

/* ---------------------------------------------------------------- main */

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "iters", required_argument, NULL, 'i' },
		{ "threads", required_argument, NULL, 't' },
		{ "server", required_argument, NULL, 's' },
		{ "ca", required_argument, NULL, 'a' },
		{ "cert", required_argument, NULL, 'c' },
		{ "line", required_argument, NULL, 'l' },
		{ "card", required_argument, NULL, 'd' },
		{ "gen-readers", required_argument, NULL, 'g' },
		{ "readers", required_argument, NULL, 'r' },
		{ "sam-key", required_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	int threads[32] = { 1, 4, 16, 64 }, nthreads = 4, iters = 300, c, r;
	const char *server = NULL, *ca = NULL, *cert = NULL, *line = NULL;
	const char *card = NULL, *readers = NULL, *sam_key = NULL;
	int gen = 0;
	char img[600], *tok, *save = NULL;
	struct tk t;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'i':
			iters = atoi(optarg) > 0 ? atoi(optarg) : iters;
			break;
		case 't':
			nthreads = 0;
			for (tok = strtok_r(optarg, ",", &save); tok != NULL &&
			    nthreads < 32; tok = strtok_r(NULL, ",", &save)) {
				threads[nthreads++] = atoi(tok);
			}
			break;
		case 's':
			server = optarg;
			break;
		case 'a':
			ca = optarg;
			break;
		case 'c':
			cert = optarg;
			break;
		case 'l':
			line = optarg;
			break;
		case 'd':
			card = optarg;
			break;
		case 'g':
			gen = atoi(optarg);
			break;
		case 'r':
			readers = optarg;
			break;
		case 'k':
			sam_key = optarg;
			break;
		default:
			return 2;
		}
	}

	if (gen > 0) {
		if (optind >= argc || (r = gen_readers(gen, argv[optind])) != 0) {
			fprintf(stderr, "--gen-readers N DIR\n");
			return 1;
		}
		return 0;
	}
	if (server != NULL) {
		struct idr_reader_cfg rc = { .reader_slot = 0, .card_slot = 1,
		    .pin = TK_USER_PIN };
		struct chiplink *l = NULL;
		struct idr_reader *ir = NULL;
		struct net n;
		char spec[600];
		const char *colon = strrchr(server, ':');

		if (ca == NULL || cert == NULL || line == NULL || card == NULL ||
		    colon == NULL) {
			fprintf(stderr, "--server needs --ca --cert --line "
			    "--card\n");
			return 2;
		}
		memset(&n, 0, sizeof(n));
		snprintf(n.host, sizeof(n.host), "%.*s", (int)(colon - server),
		    server);
		snprintf(n.port, sizeof(n.port), "%s", colon + 1);
		snprintf(spec, sizeof(spec), "inproc:%s", line);
		if ((r = chiplink_open(spec, &l)) != 0 ||
		    (r = chiplink_inproc_feed(l, 1, card)) != 0 ||
		    (r = idr_reader_open(l, &rc, &ir)) != 0 ||
		    (r = idr_reader_key(ir, &n.ko)) != 0 ||
		    (r = hs_trust_load(ca, NULL, &n.trust)) != 0 ||
		    (r = hs_chain_load(cert, &n.chain)) != 0) {
			DIE("set-up", r);
		}
		n.cfg.flow = HS_FLOW_A;
		n.cfg.kind = HS_KIND_READER;
		n.cfg.cred.key = &n.ko;
		n.cfg.cred.chain = n.chain.blob;
		n.cfg.cred.nchain = n.chain.n;
		n.cfg.trust = n.trust;
		n.cfg.serial = idr_reader_serial(ir);
		latency(ir, net_connect, &n, iters / 3 > 20 ? iters / 3 : 20,
		    "TCP mintline-server (hs A)");
		if (readers != NULL && sam_key != NULL) {
			net_throughput(&n, readers, sam_key, card, threads,
			    (size_t)nthreads, iters / 10 > 10 ? iters / 10 : 10);
		}
		idr_reader_close(ir);
		chiplink_close(l);
		hs_trust_free(n.trust);
		hs_chain_free(&n.chain);
		return 0;
	}

	if ((r = tk_init(&t, access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
	    "/tmp", CACHE_MODE_MULTI, 0, NULL, true)) != 0 ||
	    (r = tk_make_card(&t, "bench", 77, img, sizeof(img))) != 0 ||
	    (r = tk_feed(&t, img)) != 0) {
		DIE("fixture", r);
	}
	latency(t.rdr, tk_loop_connect, &t, iters, "in-process (loopback link)");
	throughput(&t, threads, (size_t)nthreads, iters);
	loss(&t, iters);
	tk_fini(&t);
	return 0;
}
