/*
 * bench_pkcs11: mintline-pkcs11.so (in-process line) against SoftHSM2
 * and raw OpenSSL, on these operations:
 *
 *	C_Sign ECDSA P-256, C_Verify, C_DeriveKey ECDH, C_GenerateRandom,
 *	token object creation, find-by-label among 1,000 token objects,
 *	C_OpenSession+C_CloseSession, with 1 and 2 threads.
 *
 *	bench_pkcs11 [-s SECONDS] [-n OBJECTS] [-o OPS] MODULE.so [SOFTHSM.so]
 *	bench_pkcs11 -r [-g US] [-s SECONDS] SOFTHSM.so
 *
 * -r: SoftHSM2's raw C_Sign alone (C_SignInit + C_Sign, one thread, one
 * session): signatures/s and CPU microseconds per signature, the anchor
 * of bench-hs.sh's HSM monitor row.  -g US: a second row with US
 * microseconds of sleep before each signature, as the monitor sleeps
 * between the handshakes of one client.
 * OPS: digits of the rows to run (0 sign, 1 verify, 2 derive, 3 random,
 * 4 object creation, 5 find, 6 session open+close); all by default.
 * The OpenSSL column signs and verifies with one reused context, as
 * `openssl speed` does; with 0 or 1, `openssl speed ecdsap256` itself
 * runs too and C_Sign / C_Verify are set against it.
 * Everything lives in a temporary directory (chips, SoftHSM's token
 * directory through SOFTHSM2_CONF); nothing else is touched.  With two
 * threads, mintline uses two reader chips in two slots (one chip serves
 * one APDU at a time, as a real chip does); the "2 threads, one token"
 * row shows that case too.  Prints ops/s and the ratios of the goals.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include <p11-kit/pkcs11.h>

#include "chip.h"

#define SO_PIN	"87654321"
#define PIN	"123456"

static double opt_secs = 1.0;
static struct prov *bench_mine;	/* for speed_rows() */
static unsigned opt_objects = 1000;
static const char *opt_ops;	/* -o: comma-separated op numbers, or all */
static char dir[256];

static CK_BBOOL yes = CK_TRUE;
static CK_BYTE p256_oid[] = { 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
    0x03, 0x01, 0x07 };

struct prov {
	const char		*name;
	CK_FUNCTION_LIST	*f;
	CK_SLOT_ID		 slot[2];
	CK_OBJECT_HANDLE	 priv[2], pub[2];
	CK_BYTE			 point[2][67];	/* DER EC_POINT of pub */
	bool			 ok;
};

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void
die(const char *what, CK_RV rv)
{
	fprintf(stderr, "bench_pkcs11: %s: 0x%lx\n", what, (unsigned long)rv);
	exit(1);
}

#define P11(call) do {							\
	CK_RV rv_ = (call);						\
	if (rv_ != CKR_OK) {						\
		die(#call, rv_);					\
	}								\
} while (0)

static CK_FUNCTION_LIST *
load(const char *path)
{
	CK_C_GetFunctionList gfl;
	CK_FUNCTION_LIST *f;
	void *h;

	if ((h = dlopen(path, RTLD_NOW | RTLD_LOCAL)) == NULL) {
		fprintf(stderr, "dlopen %s: %s\n", path, dlerror());
		return NULL;
	}
	gfl = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
	if (gfl == NULL || gfl(&f) != CKR_OK) {
		return NULL;
	}
	{
		/* Threads ahead: ask for OS locking (SoftHSM2 needs it). */
		CK_C_INITIALIZE_ARGS ia;

		memset(&ia, 0, sizeof(ia));
		ia.flags = CKF_OS_LOCKING_OK;
		P11(f->C_Initialize(&ia));
	}
	return f;
}

static CK_SESSION_HANDLE
session(struct prov *p, int i)
{
	CK_SESSION_HANDLE s;

	P11(p->f->C_OpenSession(p->slot[i], CKF_SERIAL_SESSION |
	    CKF_RW_SESSION, NULL, NULL, &s));
	return s;
}

static void
init_token(CK_FUNCTION_LIST *f, CK_SLOT_ID slot, const char *label)
{
	CK_UTF8CHAR l[32];

	memset(l, ' ', sizeof(l));
	memcpy(l, label, strlen(label));
	P11(f->C_InitToken(slot, (CK_UTF8CHAR_PTR)SO_PIN, 8, l));
}

static void
init_pin(CK_FUNCTION_LIST *f, CK_SLOT_ID slot)
{
	CK_SESSION_HANDLE s;

	P11(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL,
	    NULL, &s));
	P11(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)SO_PIN, 8));
	P11(f->C_InitPIN(s, (CK_UTF8CHAR_PTR)PIN, 6));
	P11(f->C_Logout(s));
	P11(f->C_CloseSession(s));
}

static void
keygen(struct prov *p, int i)
{
	CK_MECHANISM m = { CKM_EC_KEY_PAIR_GEN, NULL, 0 };
	CK_ATTRIBUTE pt[] = {
		{ CKA_EC_PARAMS, p256_oid, sizeof(p256_oid) },
		{ CKA_TOKEN, &yes, 1 }, { CKA_VERIFY, &yes, 1 },
		{ CKA_LABEL, (char *)"bench", 5 },
	};
	CK_ATTRIBUTE kt[] = {
		{ CKA_TOKEN, &yes, 1 }, { CKA_SIGN, &yes, 1 },
		{ CKA_DERIVE, &yes, 1 }, { CKA_PRIVATE, &yes, 1 },
		{ CKA_SENSITIVE, &yes, 1 }, { CKA_LABEL, (char *)"bench", 5 },
	};
	CK_ATTRIBUTE g = { CKA_EC_POINT, p->point[i], sizeof(p->point[i]) };
	CK_SESSION_HANDLE s = session(p, i);

	{
		CK_RV rv = p->f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)PIN, 6);

		if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
			die("C_Login", rv);
		}
	}
	P11(p->f->C_GenerateKeyPair(s, &m, pt, 4, kt, 6, &p->pub[i],
	    &p->priv[i]));
	P11(p->f->C_GetAttributeValue(s, p->pub[i], &g, 1));
	/* The session stays open: the login lasts as long as one does. */
}

/* ---- the operations ---- */

enum op { OP_SIGN, OP_VERIFY, OP_DERIVE, OP_RANDOM, OP_CREATE, OP_FIND,
    OP_SESSION };
static const char *const op_names[] = {
	"C_Sign ECDSA P-256", "C_Verify ECDSA P-256", "C_DeriveKey ECDH",
	"C_GenerateRandom 32 B", "token object creation",
	"find-by-label, 1000 objects", "C_OpenSession+C_CloseSession",
};

struct job {
	struct prov	*p;
	int		 idx;		/* slot/key index */
	enum op		 op;
	double		 secs;
	unsigned long	 count;
	unsigned	 seq;
	pthread_barrier_t *bar;
	double		 cpu;		/* the thread's CPU seconds */
};

/* CPU seconds per operation of the last measure() with one thread. */
static double last_cpu_per_op;
/* -g: microseconds of sleep before each raw C_Sign (0: back to back) */
static long opt_gap_us;

static double
thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void *
run_job(void *arg)
{
	struct job *j = arg;
	CK_FUNCTION_LIST *f = j->p->f;
	CK_SESSION_HANDLE s = session(j->p, j->idx);
	CK_MECHANISM ecdsa = { CKM_ECDSA, NULL, 0 };
	CK_ECDH1_DERIVE_PARAMS dp = { CKD_NULL, 0, NULL,
	    65, j->p->point[j->idx] + 2 };
	CK_MECHANISM ecdh = { CKM_ECDH1_DERIVE, &dp, sizeof(dp) };
	CK_OBJECT_CLASS sk = CKO_SECRET_KEY, dc = CKO_DATA;
	CK_KEY_TYPE gk = CKK_GENERIC_SECRET;
	CK_ATTRIBUTE dt[] = { { CKA_CLASS, &sk, sizeof(sk) },
	    { CKA_KEY_TYPE, &gk, sizeof(gk) } };
	CK_BYTE md[32] = { 1, 2, 3 }, sig[64], rnd[32];
	char label[32];
	CK_ATTRIBUTE ct[] = { { CKA_CLASS, &dc, sizeof(dc) },
	    { CKA_TOKEN, &yes, 1 }, { CKA_LABEL, label, 0 } };
	CK_ATTRIBUTE ft[] = { { CKA_LABEL, label, 0 } };
	CK_OBJECT_HANDLE h, found[4];
	CK_ULONG n;
	double t0, end;

	n = sizeof(sig);
	P11(f->C_SignInit(s, &ecdsa, j->p->priv[j->idx]));
	P11(f->C_Sign(s, md, sizeof(md), sig, &n));
	pthread_barrier_wait(j->bar);
	t0 = now();
	j->cpu = thread_cpu();
	end = t0 + j->secs;
	while (now() < end) {
		unsigned k;

		for (k = 0; k < 16; k++) {
			switch (j->op) {
			case OP_SIGN:
				if (opt_gap_us > 0) {
					struct timespec g = { 0,
					    opt_gap_us * 1000 };

					(void)nanosleep(&g, NULL);
				}
				n = sizeof(sig);
				P11(f->C_SignInit(s, &ecdsa,
				    j->p->priv[j->idx]));
				P11(f->C_Sign(s, md, sizeof(md), sig, &n));
				break;
			case OP_VERIFY:
				P11(f->C_VerifyInit(s, &ecdsa,
				    j->p->pub[j->idx]));
				P11(f->C_Verify(s, md, sizeof(md), sig, 64));
				break;
			case OP_DERIVE:
				P11(f->C_DeriveKey(s, &ecdh,
				    j->p->priv[j->idx], dt, 2, &h));
				P11(f->C_DestroyObject(s, h));
				break;
			case OP_RANDOM:
				P11(f->C_GenerateRandom(s, rnd, sizeof(rnd)));
				break;
			case OP_CREATE:
				ct[2].ulValueLen = (CK_ULONG)snprintf(label,
				    sizeof(label), "new-%d-%u", j->idx,
				    j->seq++);
				P11(f->C_CreateObject(s, ct, 3, &h));
				P11(f->C_DestroyObject(s, h));
				k = 16;
				break;
			case OP_FIND:
				ft[0].ulValueLen = (CK_ULONG)snprintf(label,
				    sizeof(label), "obj-%04u",
				    (j->seq++ * 7919u) % opt_objects);
				P11(f->C_FindObjectsInit(s, ft, 1));
				P11(f->C_FindObjects(s, found, 4, &n));
				P11(f->C_FindObjectsFinal(s));
				if (n != 1) {
					die("find: not exactly one", n);
				}
				break;
			case OP_SESSION:
				P11(f->C_OpenSession(j->p->slot[j->idx],
				    CKF_SERIAL_SESSION, NULL, NULL, &h));
				P11(f->C_CloseSession(h));
				break;
			}
			j->count++;
		}
	}
	j->secs = now() - t0;
	j->cpu = thread_cpu() - j->cpu;
	P11(f->C_CloseSession(s));
	return NULL;
}

/* ops/s of op with nthreads; same_token: both threads on slot 0. */
static double
measure(struct prov *p, enum op op, int nthreads, bool same_token)
{
	pthread_t th[2];
	struct job j[2];
	pthread_barrier_t bar;
	double rate = 0;
	int i;

	if (p == NULL || !p->ok) {
		return 0;
	}
	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	for (i = 0; i < nthreads; i++) {
		/* The 1,000 objects are on the first token. */
		j[i] = (struct job){ p, same_token || op == OP_FIND ? 0 : i, op,
		    opt_secs, 0,
		    (unsigned)i * 100000u, &bar };
		pthread_create(&th[i], NULL, run_job, &j[i]);
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		rate += j[i].count / j[i].secs;
	}
	pthread_barrier_destroy(&bar);
	if (nthreads == 1 && j[0].count > 0) {
		last_cpu_per_op = j[0].cpu / j[0].count;
	}
	return rate;
}

/* ---- raw OpenSSL ---- */

struct ossl_job {
	enum op		 op;
	double		 secs;
	unsigned long	 count;
	EVP_PKEY	*key, *peer;
	pthread_barrier_t *bar;
};

static void *
run_ossl(void *arg)
{
	struct ossl_job *j = arg;
	unsigned char md[32] = { 1, 2, 3 }, sig[80], z[32], rnd[32];
	size_t sl = sizeof(sig), zl;
	EVP_PKEY_CTX *c;
	double t0, end;

	EVP_PKEY_CTX *sc = EVP_PKEY_CTX_new(j->key, NULL);
	EVP_PKEY_CTX *vc = EVP_PKEY_CTX_new(j->key, NULL);

	/* Sign and verify reuse one initialised context, as openssl speed
	 * does; derive builds one per operation (a new peer each time). */
	if (sc == NULL || vc == NULL || EVP_PKEY_sign_init(sc) != 1 ||
	    EVP_PKEY_verify_init(vc) != 1 ||
	    EVP_PKEY_sign(sc, sig, &sl, md, 32) != 1) {
		die("openssl setup", 0);
	}
	pthread_barrier_wait(j->bar);
	t0 = now();
	end = t0 + j->secs;
	while (now() < end) {
		unsigned k;

		for (k = 0; k < 16; k++) {
			switch (j->op) {
			case OP_SIGN:
				sl = sizeof(sig);
				if (EVP_PKEY_sign(sc, sig, &sl, md, 32) != 1) {
					die("openssl sign", 0);
				}
				break;
			case OP_VERIFY:
				if (EVP_PKEY_verify(vc, sig, sl, md, 32) != 1) {
					die("openssl verify", 0);
				}
				break;
			case OP_DERIVE:
				c = EVP_PKEY_CTX_new(j->key, NULL);
				zl = sizeof(z);
				if (EVP_PKEY_derive_init(c) != 1 ||
				    EVP_PKEY_derive_set_peer(c, j->peer) != 1 ||
				    EVP_PKEY_derive(c, z, &zl) != 1) {
					die("openssl derive", 0);
				}
				EVP_PKEY_CTX_free(c);
				break;
			case OP_RANDOM:
				if (RAND_bytes(rnd, sizeof(rnd)) != 1) {
					die("openssl rand", 0);
				}
				break;
			default:
				goto out;
			}
			j->count++;
		}
	}
out:
	j->secs = now() - t0;
	EVP_PKEY_CTX_free(sc);
	EVP_PKEY_CTX_free(vc);
	return NULL;
}

static double
measure_ossl(enum op op, int nthreads)
{
	struct ossl_job j[2];
	pthread_t th[2];
	pthread_barrier_t bar;
	double rate = 0;
	int i;

	if (op == OP_CREATE || op == OP_FIND || op == OP_SESSION) {
		return 0;
	}
	pthread_barrier_init(&bar, NULL, (unsigned)nthreads);
	for (i = 0; i < nthreads; i++) {
		j[i] = (struct ossl_job){ op, opt_secs, 0,
		    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"),
		    EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256"), &bar };
		pthread_create(&th[i], NULL, run_ossl, &j[i]);
	}
	for (i = 0; i < nthreads; i++) {
		pthread_join(th[i], NULL);
		rate += j[i].count / j[i].secs;
		EVP_PKEY_free(j[i].key);
		EVP_PKEY_free(j[i].peer);
	}
	pthread_barrier_destroy(&bar);
	return rate;
}

/*
 * `openssl speed -elapsed -seconds S ecdsap256`, in this invocation,
 * against C_Sign and C_Verify measured between its runs (1 thread, best
 * of three on each side):
 * the figures the module's speed goal is stated in (>= 85% of each).
 * -elapsed: wall-clock rates like ours (without it openssl divides by CPU
 * time, which on a shared machine is not comparable).
 */
/* One `openssl speed` run: sign/s and verify/s, or 0. */
static void
openssl_speed(double *ret_sign, double *ret_verify)
{
	char cmd[128], line[256];
	FILE *fp;

	*ret_sign = *ret_verify = 0;
	snprintf(cmd, sizeof(cmd), "openssl speed -elapsed -seconds %d "
	    "ecdsap256 2>/dev/null", opt_secs < 1 ? 1 : (int)opt_secs);
	if ((fp = popen(cmd, "r")) == NULL) {
		return;
	}
	while (fgets(line, sizeof(line), fp) != NULL) {
		double a, b;

		if (sscanf(line, " 256 bits ecdsa (nistp256) %lfs %lfs %lf %lf",
		    &a, &b, ret_sign, ret_verify) == 4) {
			break;
		}
	}
	pclose(fp);
}

static void
speed_rows(void)
{
	double ssign = 0, sverify = 0, msign = 0, mverify = 0, a, b;
	int i;

	if ((opt_ops != NULL && strchr(opt_ops, '0') == NULL &&
	    strchr(opt_ops, '1') == NULL)) {
		return;
	}
	/* Best of three, alternating, on both sides: the machine is
	 * shared and its load moves within seconds. */
	for (i = 0; i < 3; i++) {
		openssl_speed(&a, &b);
		ssign = a > ssign ? a : ssign;
		sverify = b > sverify ? b : sverify;
		a = measure(bench_mine, OP_SIGN, 1, false);
		b = measure(bench_mine, OP_VERIFY, 1, false);
		msign = a > msign ? a : msign;
		mverify = b > mverify ? b : mverify;
	}
	if (ssign <= 0) {
		fprintf(stderr, "openssl speed ecdsap256: no figures\n");
		return;
	}
	printf("| %-28s | 1 | %10.0f | %10s | %10.0f | %9s | %8.0f%% |\n",
	    "C_Sign vs openssl speed", msign, "-", ssign, "-",
	    100 * msign / ssign);
	printf("| %-28s | 1 | %10.0f | %10s | %10.0f | %9s | %8.0f%% |\n",
	    "C_Verify vs openssl speed", mverify, "-", sverify, "-",
	    100 * mverify / sverify);
}

/* ---- setup ---- */

static void
fill_objects(struct prov *p)
{
	CK_OBJECT_CLASS dc = CKO_DATA;
	char label[32];
	CK_ATTRIBUTE ct[] = { { CKA_CLASS, &dc, sizeof(dc) },
	    { CKA_TOKEN, &yes, 1 }, { CKA_LABEL, label, 0 } };
	CK_SESSION_HANDLE s = session(p, 0);
	CK_OBJECT_HANDLE h;
	double t0 = now();
	unsigned i;

	for (i = 0; i < opt_objects; i++) {
		ct[2].ulValueLen = (CK_ULONG)snprintf(label, sizeof(label),
		    "obj-%04u", i);
		P11(p->f->C_CreateObject(s, ct, 3, &h));
	}
	fprintf(stderr, "%s: %u token objects created in %.1f s\n", p->name,
	    opt_objects, now() - t0);
	P11(p->f->C_CloseSession(s));
}

static void
setup_mintline(struct prov *p, const char *module)
{
	char path[512], spec[512];
	int i;

	snprintf(path, sizeof(path), "%s/line", dir);
	mkdir(path, 0700);
	for (i = 0; i < 2; i++) {
		char img[512], link[512];

		snprintf(img, sizeof(img), "%s/reader%d.img", dir, i);
		snprintf(link, sizeof(link), "%s/line/pos-%02d", dir, i);
		snprintf(spec, sizeof(spec), "BENCH-RDR-%d", i);
		if (chip_manufacture(img, CHIP_KIND_READER, spec) != 0 ||
		    symlink(img, link) != 0) {
			die("chip_manufacture", 0);
		}
	}
	snprintf(spec, sizeof(spec), "inproc:%s/line", dir);
	setenv("MINTLINE_PKCS11_TRANSPORT", spec, 1);
	p->name = "mintline";
	if ((p->f = load(module)) == NULL) {
		die("load mintline module", 0);
	}
	for (i = 0; i < 2; i++) {
		p->slot[i] = (CK_SLOT_ID)i;
		init_token(p->f, p->slot[i], "bench");
		init_pin(p->f, p->slot[i]);
		keygen(p, i);
	}
	p->ok = true;
}

static void
setup_softhsm(struct prov *p, const char *module)
{
	char conf[512], tokens[512];
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16, i;
	CK_TOKEN_INFO ti;
	FILE *fp;

	snprintf(tokens, sizeof(tokens), "%s/softhsm-tokens", dir);
	mkdir(tokens, 0700);
	snprintf(conf, sizeof(conf), "%s/softhsm2.conf", dir);
	if ((fp = fopen(conf, "w")) == NULL) {
		return;
	}
	fprintf(fp, "directories.tokendir = %s\nobjectstore.backend = file\n"
	    "log.level = ERROR\n", tokens);
	fclose(fp);
	setenv("SOFTHSM2_CONF", conf, 1);
	p->name = "SoftHSM2";
	if (access(module, R_OK) != 0 || (p->f = load(module)) == NULL) {
		fprintf(stderr, "SoftHSM2 not available (%s)\n", module);
		return;
	}
	P11(p->f->C_GetSlotList(CK_FALSE, slots, &n));
	init_token(p->f, slots[0], "bench");
	n = 16;
	P11(p->f->C_GetSlotList(CK_TRUE, slots, &n));
	for (i = 0; i < n; i++) {
		P11(p->f->C_GetTokenInfo(slots[i], &ti));
		if (memcmp(ti.label, "bench ", 6) == 0) {
			p->slot[0] = p->slot[1] = slots[i];
		}
	}
	init_pin(p->f, p->slot[0]);
	keygen(p, 0);
	keygen(p, 1);
	p->ok = true;
}

static void
row(const char *name, int threads, double m, double s, double o)
{
	char rs[32] = "-", ro[32] = "-", ms[32] = "-", ss[32] = "-",
	    os[32] = "-";

	snprintf(ms, sizeof(ms), "%.0f", m);
	if (s > 0) {
		snprintf(ss, sizeof(ss), "%.0f", s);
		snprintf(rs, sizeof(rs), "%.2fx", m / s);
	}
	if (o > 0) {
		snprintf(os, sizeof(os), "%.0f", o);
		snprintf(ro, sizeof(ro), "%.0f%%", 100 * m / o);
	}
	printf("| %-28s | %d | %10s | %10s | %10s | %9s | %9s |\n", name,
	    threads, ms, ss, os, rs, ro);
}

/* -r: SoftHSM2's C_Sign alone; the temporary directory removed. */
static int
raw_sign(struct prov *hsm, const char *module)
{
	char cmd[600];
	double rate;

	long gap = opt_gap_us;

	setup_softhsm(hsm, module);
	if (!hsm->ok) {
		fprintf(stderr, "bench_pkcs11: no SoftHSM2 at %s\n", module);
		return 1;
	}
	opt_gap_us = 0;
	rate = measure(hsm, OP_SIGN, 1, false);
	printf("SoftHSM2 raw C_Sign ECDSA P-256, 1 thread: %.0f /s, %.1f us "
	    "of CPU per signature\n", rate, 1e6 * last_cpu_per_op);
	if ((opt_gap_us = gap) > 0) {
		/* the monitor's case: a signature after an idle gap, with
		 * the caches cooled by whatever ran meanwhile */
		rate = measure(hsm, OP_SIGN, 1, false);
		printf("SoftHSM2 raw C_Sign ECDSA P-256, 1 thread, idle %ld us "
		    "before each: %.0f /s, %.1f us of CPU per signature\n",
		    opt_gap_us, rate, 1e6 * last_cpu_per_op);
	}
	hsm->f->C_Finalize(NULL);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	return system(cmd) == 0 && rate > 0 ? 0 : 1;
}

int
main(int argc, char **argv)
{
	struct prov mine = { 0 }, hsm = { 0 };
	const char *softhsm = "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so";
	double sign1 = 0, sign2 = 0, ossl1 = 0, ossl2 = 0;
	int c, op, th;
	bool raw = false;

	while ((c = getopt(argc, argv, "rg:s:n:o:")) != -1) {
		switch (c) {
		case 'r':
			raw = true;
			break;
		case 'g':
			opt_gap_us = atol(optarg);
			if (opt_gap_us < 0 || opt_gap_us > 999999) {
				fprintf(stderr, "bench_pkcs11: -g: 0 to "
				    "999999 microseconds\n");
				return 2;
			}
			break;
		case 'o':
			opt_ops = optarg;
			break;
		case 's':
			opt_secs = atof(optarg);
			break;
		case 'n':
			opt_objects = (unsigned)atoi(optarg);
			break;
		default:
			fprintf(stderr, "usage: bench_pkcs11 [-s SECONDS] "
			    "[-n OBJECTS] [-o OPS] MODULE.so [SOFTHSM.so]\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: bench_pkcs11 [-s SECONDS] [-n OBJECTS] "
		    "MODULE.so [SOFTHSM.so]\n");
		return 2;
	}
	if (optind + 1 < argc) {
		softhsm = argv[optind + 1];
	}
	snprintf(dir, sizeof(dir), "%s/bench-p11-XXXXXX",
	    getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (mkdtemp(dir) == NULL) {
		perror("mkdtemp");
		return 1;
	}
	if (raw) {
		return raw_sign(&hsm, argv[optind]);
	}
	setup_mintline(&mine, argv[optind]);
	bench_mine = &mine;
	setup_softhsm(&hsm, softhsm);
	fill_objects(&mine);
	if (hsm.ok) {
		fill_objects(&hsm);
	}

	printf("| operation                    | T | mintline/s | SoftHSM2/s |  OpenSSL/s | vs SoftHSM | vs OpenSSL |\n");
	printf("|------------------------------|---|------------|------------|------------|-----------|-----------|\n");
	for (op = OP_SIGN; op <= OP_SESSION; op++) {
		char key[4];

		snprintf(key, sizeof(key), "%d", op);
		if (opt_ops != NULL && strstr(opt_ops, key) == NULL) {
			continue;
		}
		for (th = 1; th <= 2; th++) {
			double m = measure(&mine, (enum op)op, th, false);
			double s = measure(&hsm, (enum op)op, th, false);
			double o = measure_ossl((enum op)op, th);

			row(op_names[op], th, m, s, o);
			if (op == OP_SIGN) {
				if (th == 1) {
					sign1 = m;
					ossl1 = o;
				} else {
					sign2 = m;
					ossl2 = o;
				}
			}
		}
	}
	{
		double m = measure(&mine, OP_SIGN, 2, true);

		row("C_Sign, 2 threads, one token", 2, m, 0, 0);
	}
	speed_rows();
	printf("\nC_Sign scaling, 2 threads / 1 thread (two chips): %.2fx; "
	    "raw OpenSSL on this machine: %.2fx\n",
	    sign1 > 0 ? sign2 / sign1 : 0, ossl1 > 0 ? ossl2 / ossl1 : 0);
	mine.f->C_Finalize(NULL);
	if (hsm.ok) {
		hsm.f->C_Finalize(NULL);
	}
	{
		char cmd[600];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0) {
			fprintf(stderr, "could not remove %s\n", dir);
		}
	}
	return 0;
}
