/*
 * bench-issue: banknote issuance figures (BN-1..BN-8), each next to its
 * anchor measured in the same run.
 *
 *   1. end to end: `issue` on the in-process line (durable chip stores,
 *      the station's issuer key in SoftHSM2, the resume journal, the
 *      registration with the server key in SoftHSM2 and the SQLite
 *      registry, WAL + synchronous=FULL), in-process server: notes/s;
 *   2. server registrations/s alone (HSM ECDH + chip and station
 *      signature checks + durable insert), T threads, against SoftHSM2's
 *      raw ECDH rate (C_DeriveKey through libp11) on the same T threads;
 *   3. verification desk: one verdict (chip proof on a fresh challenge,
 *      record and signature checks, registry query), median and p99.
 *
 * The channel (hs) is not in these figures: bench-issue.sh measures the
 * same `issue` through mintline-server for that row.
 *
 * Environment (set by bench-issue.sh): BENCH_DIR, BENCH_ISSUER_KEY,
 * BENCH_SERVER_KEY, BENCH_FEATURE_KEY, BENCH_NOTES, BENCH_THREADS.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chip.h"
#include "feature.h"
#include "ml_log.h"
#include "ml_tlv.h"
#include "ml_wr.h"
#include "note_chip.h"
#include "key_p11.h"
#include "registry.h"
#include "note_proto.h"
#include "reg_note.h"

int	 issue_run(int argc, char **argv, const struct note_server *local);

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static const char *
env(const char *n)
{
	const char *v = getenv(n);

	if (v == NULL) {
		fprintf(stderr, "bench-issue: %s not set (run bench-issue.sh)\n", n);
		exit(77);
	}
	return v;
}

static int
cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct par {
	struct key	*key;
	struct reg_note	*rn;
	uint8_t		**up;
	size_t		*uplen;
	size_t		 n, next;
	pthread_mutex_t	 mu;
	int		 fail;
	int		 mode;		/* 0 ECDH, 1 registration */
};

static void *
par_main(void *arg)
{
	struct par *p = arg;
	uint8_t peer_priv[32], peer[65], sec[32], buf[NOTE_REPLY_MAX];
	struct note_reply rep;
	size_t i;

	if (ml_p256_keygen(peer_priv, peer) != 0) {
		p->fail = 1;
		return NULL;
	}
	for (;;) {
		pthread_mutex_lock(&p->mu);
		i = p->next++;
		pthread_mutex_unlock(&p->mu);
		if (i >= p->n) {
			break;
		}
		if (p->mode == 0) {
			if (key_ecdh(p->key, peer, sec) != 0) {
				p->fail = 1;
			}
		} else {
			struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));

			if (reg_note_handle(p->rn, NOTE_REC_UPLOAD, p->up[i],
			    p->uplen[i], &w) != 0 ||
			    note_reply_parse(w.p, w.len, &rep) != 0 ||
			    rep.status != NOTE_ST_OK) {
				p->fail = 1;
			}
		}
	}
	return NULL;
}

static double
run_par(struct par *p, size_t threads)
{
	pthread_t th[64];
	double t0 = now();
	size_t i;

	p->next = 0;
	for (i = 0; i < threads; i++) {
		pthread_create(&th[i], NULL, par_main, p);
	}
	for (i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
	}
	return p->n / (now() - t0);
}

static struct reg_note *
new_reg(const char *dbpath, struct key *srv, const uint8_t *issuer_pub,
    const uint8_t *fkey, struct reg **ret_db)
{
	struct reg_note_cfg cfg = { 0 };
	struct reg_note *rn = NULL;

	if (reg_open(dbpath, NULL, ret_db) != 0) {
		exit(1);
	}
	cfg.reg = *ret_db;
	cfg.server_key = srv;
	if (key_pub(srv, cfg.server_pub) != 0) {
		exit(1);
	}
	memcpy(cfg.issuers[0], issuer_pub, 65);
	cfg.nissuers = 1;
	memcpy(cfg.feature_keys[0], fkey, FEATURE_KEY_LEN);
	cfg.nfeature_keys = 1;
	if (reg_note_new(&cfg, &rn) != 0) {
		exit(1);
	}
	return rn;
}

static void
enrol(struct reg_note *rn, const char *serial, const uint8_t pub[65])
{
	uint8_t req[128], buf[NOTE_REPLY_MAX];
	struct ml_wr w = ML_WR_FIXED(req, sizeof(req));
	struct ml_wr rw = ML_WR_FIXED(buf, sizeof(buf));

	if (ml_tlv_put(&w, TAG_ENROL_SERIAL, serial, CHIP_SERIAL_LEN) != 0 ||
	    ml_tlv_put(&w, TAG_ENROL_PUB, pub, 65) != 0 ||
	    reg_note_handle(rn, NOTE_REC_ENROL, w.p, w.len, &rw) != 0) {
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	const char *dir = env("BENCH_DIR");
	size_t notes = strtoul(env("BENCH_NOTES"), NULL, 10);
	size_t threads = strtoul(env("BENCH_THREADS"), NULL, 10);
	char path[4096], spec[4200], batch[4096], journal[4096], jdir[4096];
	uint8_t issuer_pub[65], fkey[FEATURE_KEY_LEN], pub[65];
	struct key *srv = NULL;
	struct key_provider prov;
	struct reg *db = NULL, *db2 = NULL;
	struct reg_note *rn, *rn2;
	struct note_server ns;
	struct chiplink *l = NULL;
	struct chipcmd cc;
	struct par p = { 0 };
	double t0, e2e, ecdh, reg, *lat;
	char serial[CHIP_SERIAL_LEN + 1];
	size_t i, n;
	FILE *f;
	int r;

	ml_log_set_ident("bench-issue");
	if (notes == 0 || threads == 0 || threads > 64) {
		return 1;
	}
	key_p11_provider(&prov, NULL);
	if (key_pub_load(&prov, env("BENCH_ISSUER_PUB"), issuer_pub) != 0 ||
	    feature_key_load(env("BENCH_FEATURE_KEY"), fkey) != 0 ||
	    key_open(&prov, env("BENCH_SERVER_KEY"), &srv) != 0) {
		fprintf(stderr, "bench-issue: keys\n");
		return 1;
	}
	snprintf(path, sizeof(path), "%s/bench-registry.db", dir);
	rn = new_reg(path, srv, issuer_pub, fkey, &db);

	/* Chips: manufactured, personalised and enrolled (not timed). */
	snprintf(spec, sizeof(spec), "inproc:%s/line", dir);
	if (chiplink_open(spec, &l) != 0) {
		return 1;
	}
	if (key_pub(srv, pub) != 0) {
		return 1;
	}
	for (i = 0; i < notes; i++) {
		uint8_t cpub[65];

		snprintf(serial, sizeof(serial), "BNCH%012u", (unsigned)(i % 1000000000u));
		snprintf(path, sizeof(path), "%s/chips/%s.chip", dir, serial);
		if (chip_manufacture(path, CHIP_KIND_NOTE, serial) != 0 ||
		    chiplink_inproc_feed(l, 0, path) != 0 ||
		    chipcmd_begin(&cc, l, 0) != 0 ||
		    note_chip_perso(&cc, "87654321", "bench",
		    (const uint8_t (*)[65])issuer_pub, 1, pub, cpub) != 0) {
			fprintf(stderr, "bench-issue: chip %zu\n", i);
			return 1;
		}
		enrol(rn, serial, cpub);
	}
	if (chiplink_inproc_feed(l, 0, NULL) != 0) {
		return 1;
	}
	snprintf(batch, sizeof(batch), "%s/bench-batch.csv", dir);
	if ((f = fopen(batch, "w")) == NULL) {
		return 1;
	}
	for (i = 0; i < notes; i++) {
		fprintf(f, "BN,%08zu\n", i);
	}
	fclose(f);

	/* 1. end to end */
	snprintf(journal, sizeof(journal), "%s/bench-journal.db", dir);
	snprintf(jdir, sizeof(jdir), "%s/chips", dir);
	{
#define S(x) strdup(x)
		char *av[] = { S("issue"), S("--line"), spec, S("--chips"), jdir,
		    S("--issuer-key"), S(env("BENCH_ISSUER_KEY")),
		    S("--feature-key"), S(env("BENCH_FEATURE_KEY")),
		    S("--journal"), journal, S("--batch"), batch,
		    S("--no-progress"), S("--server"), S("127.0.0.1:9"), NULL };	/* never dialled: in-process server */
#undef S

		reg_note_server(rn, &ns);
		t0 = now();
		r = issue_run((int)(sizeof(av) / sizeof(av[0])) - 1, av, &ns);
		e2e = notes / (now() - t0);
		if (r != 0) {
			fprintf(stderr, "bench-issue: issue exit %d\n", r);
			return 1;
		}
	}

	/* 2. registration alone vs raw ECDH: fresh seals of the same chips
	 * into a fresh registry. */
	snprintf(path, sizeof(path), "%s/bench-registry2.db", dir);
	rn2 = new_reg(path, srv, issuer_pub, fkey, &db2);
	p.up = calloc(notes, sizeof(*p.up));
	p.uplen = calloc(notes, sizeof(*p.uplen));
	for (i = 0; i < notes; i++) {
		uint8_t cpub[65];

		snprintf(serial, sizeof(serial), "BNCH%012u", (unsigned)(i % 1000000000u));
		snprintf(path, sizeof(path), "%s/chips/%s.chip", dir, serial);
		p.up[i] = malloc(NOTE_SEALED_MAX);
		if (chiplink_inproc_feed(l, 0, path) != 0 ||
		    chipcmd_begin(&cc, l, 0) != 0 ||
		    note_chip_pub(&cc, cpub) != 0 ||
		    note_chip_sealed(&cc, p.up[i], NOTE_SEALED_MAX, &p.uplen[i]) != 0) {
			return 1;
		}
		enrol(rn2, serial, cpub);
	}
	p.key = srv;
	p.rn = rn2;
	p.n = notes;
	pthread_mutex_init(&p.mu, NULL);
	p.mode = 0;
	ecdh = run_par(&p, threads);
	p.mode = 1;
	reg = run_par(&p, threads);
	if (p.fail) {
		fprintf(stderr, "bench-issue: a registration failed\n");
		return 1;
	}

	/* 3. desk verdicts (online, in-process registry) */
	lat = calloc(notes, sizeof(double));
	for (i = n = 0; i < notes; i++) {
		struct note_record rec;
		uint8_t cpub[65], req[2048], buf[NOTE_REPLY_MAX];
		struct ml_wr w = ML_WR_FIXED(req, sizeof(req));
		struct ml_wr rw = ML_WR_FIXED(buf, sizeof(buf));
		struct note_reply rep;
		struct note_id id;

		snprintf(serial, sizeof(serial), "BNCH%012u", (unsigned)(i % 1000000000u));
		snprintf(path, sizeof(path), "%s/chips/%s.chip", dir, serial);
		if (chiplink_inproc_feed(l, 0, path) != 0) {
			return 1;
		}
		t0 = now();
		if (chipcmd_begin(&cc, l, 0) != 0 ||
		    note_chip_record(&cc, &rec) != 0 ||
		    note_chip_pub(&cc, cpub) != 0 ||
		    note_chip_prove(&cc, cpub, rec.chip_serial, rec.feature,
		    rec.feature_len) != 0 ||
		    feature_parse(rec.feature, rec.feature_len, &id) != 0 ||
		    feature_check_chip(rec.feature, rec.feature_len, cpub) != 0 ||
		    ml_tlv_put(&w, TAG_FEAT_SERIAL, rec.chip_serial, 16) != 0 ||
		    ml_tlv_put(&w, TAG_FEAT_INFO, rec.feature, rec.feature_len) != 0 ||
		    ml_tlv_put(&w, TAG_ENROL_PUB, cpub, 65) != 0 ||
		    reg_note_handle(rn, NOTE_REC_QUERY, w.p, w.len, &rw) != 0 ||
		    note_reply_parse(rw.p, rw.len, &rep) != 0 ||
		    rep.status != NOTE_ST_OK) {
			fprintf(stderr, "bench-issue: verdict %zu\n", i);
			return 1;
		}
		lat[n++] = (now() - t0) * 1e3;
	}
	qsort(lat, n, sizeof(double), cmp_dbl);
	printf("bench-issue: %zu notes, %zu threads (registration, ECDH)\n",
	    notes, threads);
	printf("  end to end (in-process line + server, SoftHSM2, SQLite)  %8.0f notes/s\n", e2e);
	printf("  server registrations alone                               %8.0f /s\n", reg);
	printf("  SoftHSM2 raw ECDH (C_DeriveKey via libp11), anchor       %8.0f /s\n", ecdh);
	printf("  registrations / raw ECDH                                 %8.0f %%\n",
	    100.0 * reg / ecdh);
	printf("  desk verdict latency: median %.3f ms, p99 %.3f ms\n",
	    lat[n / 2], lat[(n * 99) / 100]);
	reg_note_free(rn);
	reg_note_free(rn2);
	reg_close(db);
	reg_close(db2);
	chiplink_close(l);
	key_free(srv);
	(void)argc;
	(void)argv;
	return 0;
}
