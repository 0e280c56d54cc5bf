/*
 * bench-chip: how fast the card OS answers, each figure next to its anchor
 * measured in the same run (docs/benchmarks.md, "Chip applet").
 *
 * This is a benchmark, not a test: nothing is compared with a time limit.
 * tests/bench/meson.build builds it and registers bench-chip.sh (which adds
 * the PC/SC rows) as a meson benchmark; docs/benchmarks.md keeps the
 * figures and the command that produced them.
 *
 * Rows (every figure in operations per second):
 *
 *   APDU round trips, GET DATA 01 (chip info, about 50 bytes back):
 *     chip_transmit()	straight into an opened chip, no link
 *     inproc link	chiplink "inproc:", which looks at the position's
 *			symlink (lstat + readlink) before every APDU
 *     pcsc link	chiplink "pcsc:" through pcscd + vpcd + mintline-chip
 *			(--pcsc, set up by bench-chip.sh)
 *   each with 1 thread, and 2 threads on 2 chips in 2 positions.  The link
 *   rows take the direct chip_transmit() figure as their anchor.
 *
 *   Chip-side operations against plain OpenSSL 3 (default library context,
 *   keys and contexts made once and reused: the best a host could do) on
 *   the same operation and sizes:
 *     sign	SIGN (80 2A) over a 32-byte digest
 *		vs EVP_PKEY_sign
 *     verify	GET CHALLENGE + AUTHORIZE WRITE on a locked blank note: the
 *		chip checks the station's ECDSA signature over challenge ||
 *		serial || feature.  Only the two APDUs are timed, not the
 *		station's signing between them.
 *		vs SHA-256 + EVP_PKEY_verify of the same message
 *     seal	GET SEALED on a written note: ephemeral P-256 key, ECDH,
 *		HKDF-SHA256, AES-256-GCM, chip ECDSA signature
 *		vs EVP_PKEY_generate + EVP_PKEY_derive + EVP_KDF (HKDF) +
 *		AES-256-GCM + SHA-256/EVP_PKEY_sign, same plaintext size
 *     ecdh	ECDH (80 86) with a 65-byte peer point
 *		vs EVP_PKEY_derive (peer decoded once)
 *   Durable store:
 *     commit	CREATE OBJECT + DELETE OBJECT, two tear-safe commits (one
 *		pwrite + fdatasync each) on the --dir file system
 *		vs pwrite + fdatasync of the same byte counts, same slots
 *		layout, same file system
 *
 * The chip-side rows call chip_transmit() directly so that they measure
 * the chip, not the link (the APDU rows measure that).  Each figure and its
 * anchor run in alternating rounds (BENCH_ROUNDS of --seconds/BENCH_ROUNDS
 * each), so that load from other jobs on a shared machine hits both alike
 * and the ratio stays meaningful even when the absolute figures move.
 * --only runs some rows, for profiling one operation under perf or
 * valgrind --tool=callgrind.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>

#include "apdu.h"
#include "chip.h"
#include "chip_proto.h"
#include "chiplink.h"
#include "ml_err.h"
#include "ml_log.h"
#include "ml_ossl.h"
#include "ml_rd.h"
#include "ml_tlv.h"
#include "ml_wipe.h"
#include "ml_wr.h"
#include "note_msg.h"
#include "store.h"
#include "sw.h"

#define SO_PIN			"87654321"
#define USER_PIN		"123456"
#define FEATURE			"prefix=MX;serial=MX00000001;code=9E3779B1"
#define BENCH_OBJ_ATTRS		64	/* attribute blob of the commit row */
#define BENCH_WARMUP_S		0.1
#define BENCH_ROUNDS		4	/* ours/anchor alternations per row */
#define BENCH_MAX_ROWS		32
#define BENCH_PCSC_WAIT_MS	15000

/* Row groups, for --only (profiling one operation at a time). */
#define SEL_APDU		0x01
#define SEL_PCSC		0x02
#define SEL_SIGN		0x04
#define SEL_ECDH		0x08
#define SEL_VERIFY		0x10
#define SEL_SEAL		0x20
#define SEL_COMMIT		0x40
#define SEL_ALL			0x7F

static const struct {
	const char	*name;
	unsigned	 bit;
} sel_names[] = {
	{ "apdu", SEL_APDU }, { "pcsc", SEL_PCSC }, { "sign", SEL_SIGN },
	{ "ecdh", SEL_ECDH }, { "verify", SEL_VERIFY }, { "seal", SEL_SEAL },
	{ "commit", SEL_COMMIT },
};

/* ---- options, results ------------------------------------------------- */

struct row {
	char		 op[96];
	double		 ours;		/* ops/s; < 0: not measured */
	double		 raw;		/* ops/s; < 0: no anchor */
	const char	*note;		/* printed instead of figures */
};

struct bench {
	double		 seconds;
	const char	*parent;	/* --dir, or NULL */
	const char	*pcsc;		/* --pcsc SPEC */
	const char	*pcsc_skip;	/* --pcsc-skipped REASON */
	bool		 keep;
	unsigned	 only;		/* SEL_* */
	char		 dir[PATH_MAX];	/* our fresh work directory */
	struct row	 rows[BENCH_MAX_ROWS];
	size_t		 nrows;
	int		 failures;
};

static double
now_s(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct row *
add_row(struct bench *b, const char *op)
{
	struct row *rw;

	if (b->nrows >= BENCH_MAX_ROWS) {
		abort();	/* a programming error: raise BENCH_MAX_ROWS */
	}
	rw = &b->rows[b->nrows++];
	(void)snprintf(rw->op, sizeof(rw->op), "%s", op);
	rw->ours = rw->raw = -1;
	rw->note = NULL;
	return rw;
}

static void
fail(struct bench *b, const char *what, int r)
{
	fprintf(stderr, "bench-chip: %s: %s\n", what, ml_strerror(r));
	b->failures++;
}

/* ---- the timing loop ---------------------------------------------------- */

/*
 * One operation: returns how many operations it did (>= 1) or ML_ERR_*.
 * Time it spent on something that is not the measured operation (the
 * station signing between two chip APDUs) goes into *excluded, seconds.
 */
typedef int (*op_fn)(void *arg, double *excluded);

struct job {
	op_fn			 op;
	void			*arg;
	double			 seconds;
	bool			 warm;		/* warm up first */
	pthread_barrier_t	*start;
	uint64_t		 ops;
	double			 elapsed;	/* timed, exclusions out */
	int			 r;
};

static void *
job_run(void *p)
{
	struct job *j = p;
	double t0, t, excl = 0;
	int n;

	/* Warm caches, allocator and branch predictors first. */
	t0 = now_s();
	while (j->warm && now_s() - t0 < BENCH_WARMUP_S) {
		if ((n = j->op(j->arg, &excl)) < 0) {
			j->r = n;
			break;
		}
	}
	if (j->start != NULL) {
		(void)pthread_barrier_wait(j->start);
	}
	if (j->r != 0) {
		return NULL;
	}
	excl = 0;
	t0 = now_s();
	for (;;) {
		if ((n = j->op(j->arg, &excl)) < 0) {
			j->r = n;
			return NULL;
		}
		j->ops += (uint64_t)n;
		if ((t = now_s()) - t0 >= j->seconds) {
			break;
		}
	}
	j->elapsed = t - t0 - excl;
	return NULL;
}

/*
 * Run op for `seconds` on each arg, one thread per arg, all started
 * together; the rate is the sum of the per-thread rates.  0 or the first
 * ML_ERR_*.
 */
static int
measure(double seconds, bool warm, op_fn op, void **args, size_t n,
    double *ret_rate)
{
	struct job jobs[4];
	pthread_t th[4];
	pthread_barrier_t start;
	double rate = 0;
	size_t i;
	int r = 0;

	if (n == 0 || n > 4) {
		return ML_ERR_ARG;
	}
	memset(jobs, 0, sizeof(jobs));
	if (n == 1) {
		jobs[0] = (struct job){ .op = op, .arg = args[0],
		    .seconds = seconds, .warm = warm };
		(void)job_run(&jobs[0]);
	} else {
		if (pthread_barrier_init(&start, NULL, (unsigned)n) != 0) {
			return ML_ERR_INTERNAL;
		}
		for (i = 0; i < n; i++) {
			jobs[i] = (struct job){ .op = op, .arg = args[i],
			    .seconds = seconds, .warm = warm, .start = &start };
			if (pthread_create(&th[i], NULL, job_run,
			    &jobs[i]) != 0) {
				abort();	/* the barrier never opens */
			}
		}
		for (i = 0; i < n; i++) {
			(void)pthread_join(th[i], NULL);
		}
		(void)pthread_barrier_destroy(&start);
	}
	for (i = 0; i < n; i++) {
		if (jobs[i].r != 0 && r == 0) {
			r = jobs[i].r;
		}
		if (jobs[i].elapsed > 0) {
			rate += (double)jobs[i].ops / jobs[i].elapsed;
		}
	}
	if (r == 0) {
		*ret_rate = rate;
	}
	return r;
}

/*
 * Ours (a) and its anchor (z) in alternating rounds, a z a z ..., so that
 * a change in machine load during the run (other jobs on a shared box)
 * hits both alike; each gets b->seconds in all.  The rates are the means
 * over the rounds.  0 or the first ML_ERR_*; a failed side is < 0.
 */
static int
measure_pair(const struct bench *b, op_fn a, void **a_args, op_fn z,
    void **z_args, size_t n, double *ret_a, double *ret_z)
{
	double ra, rz, sa = 0, sz = 0, slice = b->seconds / BENCH_ROUNDS;
	int k, r;

	*ret_a = *ret_z = -1;
	for (k = 0; k < BENCH_ROUNDS; k++) {
		if ((r = measure(slice, k == 0, a, a_args, n, &ra)) != 0) {
			return r;
		}
		sa += ra;
		if (z != NULL) {
			if ((r = measure(slice, k == 0, z, z_args, n,
			    &rz)) != 0) {
				*ret_a = sa / (k + 1);
				return r;
			}
			sz += rz;
		}
	}
	*ret_a = sa / BENCH_ROUNDS;
	if (z != NULL) {
		*ret_z = sz / BENCH_ROUNDS;
	}
	return 0;
}

/* ---- talking to a chip, directly or through a link -------------------- */

struct target {
	struct chip	*chip;		/* chip_transmit() straight in, or */
	struct chiplink	*link;		/* through a chip link */
	size_t		 slot;
	uint64_t	 gen;
	uint8_t		*resp;		/* CHIP_MAX_RESP bytes */
	size_t		 resp_len;	/* data bytes of the last answer */
	uint16_t	 sw;
};

/* One raw exchange; the answer's data in t->resp, its SW in t->sw. */
static int
tx(struct target *t, const uint8_t *cmd, size_t cmd_len)
{
	size_t n = 0;
	int r;

	if (t->chip != NULL) {
		r = chip_transmit(t->chip, cmd, cmd_len, t->resp, CHIP_MAX_RESP,
		    &n);
	} else {
		r = chiplink_transmit(t->link, t->slot, t->gen, cmd, cmd_len,
		    t->resp, CHIP_MAX_RESP, &n);
	}
	if (r != 0) {
		return r;
	}
	if (n < 2) {
		return ML_ERR_FORMAT;
	}
	t->sw = (uint16_t)((t->resp[n - 2] << 8) | t->resp[n - 1]);
	t->resp_len = n - 2;
	return 0;
}

/* As tx(), and any status word but 9000 is ML_ERR_REJECTED. */
static int
tx_ok(struct target *t, const uint8_t *cmd, size_t cmd_len)
{
	int r;

	if ((r = tx(t, cmd, cmd_len)) != 0) {
		return r;
	}
	if (t->sw != SW_OK) {
		fprintf(stderr, "bench-chip: INS %02X answered %04X\n",
		    cmd_len > 1 ? cmd[1] : 0, t->sw);
		return ML_ERR_REJECTED;
	}
	return 0;
}

/* Build one command (apdu_build picks short or extended) and send it. */
static int
send_cmd(struct target *t, uint8_t cla, uint8_t ins, uint8_t p1, uint8_t p2,
    const void *data, size_t len, uint32_t ne)
{
	uint8_t buf[2048];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	int r;

	ML_TRY(apdu_build(&w, cla, ins, p1, p2, data, len, ne));
	ML_TRY(tx_ok(t, w.p, w.len));
	r = 0;
out:
	return r;
}

static int
target_init(struct target *t)
{
	memset(t, 0, sizeof(*t));
	if ((t->resp = malloc(CHIP_MAX_RESP)) == NULL) {
		return ML_ERR_NOMEM;
	}
	return 0;
}

static void
target_fini(struct target *t)
{
	chip_close(t->chip);
	t->chip = NULL;
	free(t->resp);
	t->resp = NULL;
}

static int
select_applet(struct target *t)
{
	static const uint8_t aid[] = CHIP_AID_PREFIX;

	return send_cmd(t, CLA_ISO, INS_SELECT, 0x04, 0x0C, aid, sizeof(aid),
	    0);
}

/* INIT TOKEN, VERIFY SO, set the user PIN: the demo's personalisation. */
static int
perso_pins(struct target *t, const char *label)
{
	uint8_t buf[80];
	struct ml_wr w = ML_WR_FIXED(buf, sizeof(buf));
	int r;

	ML_TRY(ml_wr_lv8(&w, SO_PIN, strlen(SO_PIN)));
	ML_TRY(ml_wr_lv8(&w, label, strlen(label)));
	ML_TRY(send_cmd(t, CLA_PROP, INS_INIT_TOKEN, 0, 0, w.p, w.len, 0));
	ML_TRY(send_cmd(t, CLA_ISO, INS_VERIFY, 0, PIN_SO, SO_PIN,
	    strlen(SO_PIN), 0));
	ML_TRY(send_cmd(t, CLA_ISO, INS_RESET_RETRY, 0, PIN_USER, USER_PIN,
	    strlen(USER_PIN), 0));
	r = 0;
out:
	return r;
}

/* Manufacture a chip image under the work directory and power it on. */
static int
make_chip(struct bench *b, enum chip_kind kind, const char *serial,
    struct target *t, char ret_path[PATH_MAX])
{
	char path[PATH_MAX];
	int r;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s.chip", b->dir,
	    serial) >= sizeof(path)) {
		return ML_ERR_TOO_LARGE;
	}
	ML_TRY(chip_manufacture(path, kind, serial));
	if (t != NULL) {
		ML_TRY(chip_open(path, &t->chip));
		ML_TRY(select_applet(t));
	}
	if (ret_path != NULL) {
		memcpy(ret_path, path, sizeof(path));
	}
	r = 0;
out:
	return r;
}

/* ---- APDU round trips ---------------------------------------------------- */

static const uint8_t cmd_get_info[] = { CLA_ISO, INS_GET_DATA, GD_CHIP_INFO,
    0x00, 0x00 };

static int
op_get_info(void *arg, double *excluded)
{
	struct target *t = arg;
	int r;

	if ((r = tx_ok(arg, cmd_get_info, sizeof(cmd_get_info))) != 0) {
		return r;
	}
	return t->resp_len > 0 ? 1 : ML_ERR_FORMAT;
}

/*
 * chip_transmit() on two chips opened here, and the "inproc:" link on two
 * other chips in two positions, measured in alternating rounds; 1 thread
 * (chip 0 / position 0), then 2 threads (one per chip).  The direct rates
 * go to ret_direct[] as the anchor of the PC/SC rows.
 */
static int
bench_apdu_local(struct bench *b, double ret_direct[2])
{
	char img[4][PATH_MAX], line[PATH_MAX + 8], spec[PATH_MAX + 32];
	static const char *const serial[4] = { "BENCH-APDU-D0", "BENCH-APDU-D1",
	    "BENCH-APDU-L0", "BENCH-APDU-L1" };
	struct chiplink *l = NULL;
	struct chiplink_slot_info si;
	struct target t[4];
	void *direct[2] = { &t[0], &t[1] }, *linked[2] = { &t[2], &t[3] };
	struct row *rd, *rl;
	char op[96];
	FILE *f;
	int i, k, r;

	for (i = 0; i < 4; i++) {
		(void)target_init(&t[i]);
	}
	for (i = 0; i < 4; i++) {
		ML_ENSURE(t[i].resp != NULL, ML_ERR_NOMEM);
		ML_TRY(make_chip(b, CHIP_KIND_READER, serial[i],
		    i < 2 ? &t[i] : NULL, img[i]));
	}
	(void)snprintf(line, sizeof(line), "%s/line", b->dir);
	ML_ENSURE(mkdir(line, 0700) == 0, ML_ERR_IO);
	(void)snprintf(spec, sizeof(spec), "%s/positions", line);
	ML_ENSURE((f = fopen(spec, "w")) != NULL, ML_ERR_IO);
	fputs("2\n", f);
	ML_ENSURE(fclose(f) == 0, ML_ERR_IO);
	(void)snprintf(spec, sizeof(spec), "inproc:%s", line);
	ML_TRY(chiplink_open(spec, &l));
	for (i = 0; i < 2; i++) {
		ML_TRY(chiplink_inproc_feed(l, (size_t)i, img[2 + i]));
		ML_TRY(chiplink_slot_info(l, (size_t)i, &si));
		ML_ENSURE(si.present, ML_ERR_REMOVED);
		t[2 + i].link = l;
		t[2 + i].slot = (size_t)i;
		t[2 + i].gen = si.generation;
		ML_TRY(select_applet(&t[2 + i]));
	}
	for (k = 1; k <= 2; k++) {
		(void)snprintf(op, sizeof(op),
		    "APDU GET DATA, chip_transmit, %d thread%s", k,
		    k > 1 ? "s" : "");
		rd = add_row(b, op);
		(void)snprintf(op, sizeof(op), "APDU GET DATA, inproc link, "
		    "%d thread%s (raw: chip_transmit)", k, k > 1 ? "s" : "");
		rl = add_row(b, op);
		r = measure_pair(b, op_get_info, direct, op_get_info, linked,
		    (size_t)k, &rd->ours, &rl->ours);
		rl->raw = rd->ours;
		ret_direct[k - 1] = rd->ours;
		if (r != 0) {
			rd->note = rl->note = "failed";
			goto out;
		}
	}
	r = 0;
out:
	for (i = 0; i < 4; i++) {
		target_fini(&t[i]);
	}
	chiplink_close(l);
	if (r != 0) {
		fail(b, "APDU rows", r);
	}
	return r;
}

/* The same GET DATA through "pcsc:" (pcscd + vpcd + mintline-chip). */
static int
bench_apdu_pcsc(struct bench *b, const double direct[2])
{
	void *args[2];
	struct chiplink *l = NULL;
	struct chiplink_slot_info si;
	struct target t[2];
	struct row *rw;
	char op[96];
	double t0, unused;
	int i, k, r;

	if (b->pcsc == NULL) {
		for (k = 1; k <= 2; k++) {
			(void)snprintf(op, sizeof(op),
			    "APDU GET DATA, pcsc link, %d thread%s", k,
			    k > 1 ? "s" : "");
			rw = add_row(b, op);
			rw->note = b->pcsc_skip != NULL ? "skipped" :
			    "skipped (no --pcsc; bench-chip.sh sets it up)";
		}
		if (b->pcsc_skip != NULL) {
			printf("# PC/SC rows skipped: %s\n", b->pcsc_skip);
		}
		return 0;
	}
	for (i = 0; i < 2; i++) {
		(void)target_init(&t[i]);
		args[i] = &t[i];
	}
	ML_TRY(chiplink_open(b->pcsc, &l));
	ML_ENSURE(chiplink_nslots(l) >= 2, ML_ERR_NOT_FOUND);
	for (i = 0; i < 2; i++) {
		ML_ENSURE(t[i].resp != NULL, ML_ERR_NOMEM);
		t0 = now_s();
		for (;;) {
			ML_TRY(chiplink_slot_info(l, (size_t)i, &si));
			if (si.present) {
				break;
			}
			ML_ENSURE(now_s() - t0 < BENCH_PCSC_WAIT_MS / 1000.0,
			    ML_ERR_TIMEOUT);
			(void)usleep(50000);
		}
		printf("# pcsc slot %d: %s\n", i, si.name);
		t[i].link = l;
		t[i].slot = (size_t)i;
		t[i].gen = si.generation;
		ML_TRY(select_applet(&t[i]));
	}
	for (k = 1; k <= 2; k++) {
		(void)snprintf(op, sizeof(op), "APDU GET DATA, pcsc link, "
		    "%d thread%s (raw: chip_transmit)", k, k > 1 ? "s" : "");
		rw = add_row(b, op);
		rw->raw = direct[k - 1];
		if ((r = measure_pair(b, op_get_info, args, NULL, NULL,
		    (size_t)k, &rw->ours, &unused)) != 0) {
			rw->note = "failed";
			goto out;
		}
	}
	r = 0;
out:
	for (i = 0; i < 2; i++) {
		target_fini(&t[i]);
	}
	chiplink_close(l);
	if (r != 0) {
		fail(b, "PC/SC rows", r);
	}
	return r;
}

/* ---- chip-side operations ------------------------------------------------ */

struct opcmd {
	struct target	*t;
	uint8_t		 cmd[256];
	size_t		 cmd_len;
	size_t		 want_len;	/* 0: any */
};

static int
op_cmd(void *arg, double *excluded)
{
	struct opcmd *o = arg;
	int r;

	if ((r = tx_ok(o->t, o->cmd, o->cmd_len)) != 0) {
		return r;
	}
	if (o->want_len != 0 && o->t->resp_len != o->want_len) {
		return ML_ERR_FORMAT;
	}
	return 1;
}

static int
opcmd_build(struct opcmd *o, struct target *t, uint8_t cla, uint8_t ins,
    uint8_t p1, uint8_t p2, const uint8_t *data, size_t len, uint32_t ne,
    size_t want_len)
{
	struct ml_wr w = ML_WR_FIXED(o->cmd, sizeof(o->cmd));
	int r;

	o->t = t;
	o->want_len = want_len;
	ML_TRY(apdu_build(&w, cla, ins, p1, p2, data, len, ne));
	o->cmd_len = w.len;
	r = 0;
out:
	return r;
}

/* AUTHORIZE WRITE: GET CHALLENGE, the station signs, AUTHORIZE. */
struct op_auth {
	struct target		*t;
	struct ml_p256_key	*station;
	const char		*serial;	/* CHIP_SERIAL_LEN, padded */
};

static int
op_authorize(void *arg, double *excluded)
{
	static const uint8_t getchal[] = { CLA_ISO, INS_GET_CHALLENGE, 0, 0,
	    NOTE_CHALLENGE_LEN };
	struct op_auth *o = arg;
	uint8_t chal[NOTE_CHALLENGE_LEN], sig[ML_P256_SIG_LEN];
	uint8_t msg[256], body[256], cmd[300];
	struct ml_wr m = ML_WR_FIXED(msg, sizeof(msg));
	struct ml_wr d = ML_WR_FIXED(body, sizeof(body));
	struct ml_wr c = ML_WR_FIXED(cmd, sizeof(cmd));
	double t0;
	int r;

	ML_TRY(tx_ok(o->t, getchal, sizeof(getchal)));
	ML_ENSURE(o->t->resp_len == NOTE_CHALLENGE_LEN, ML_ERR_FORMAT);
	t0 = now_s();
	/* The station's part: not the chip's work, not counted. */
	memcpy(chal, o->t->resp, sizeof(chal));
	ML_TRY(note_msg_auth(&m, chal, o->serial, (const uint8_t *)FEATURE,
	    strlen(FEATURE)));
	ML_TRY(ml_p256_sign(o->station, m.p, m.len, sig));
	ML_TRY(ml_wr_lv16(&d, FEATURE, strlen(FEATURE)));
	ML_TRY(ml_wr_bytes(&d, sig, sizeof(sig)));
	ML_TRY(apdu_build(&c, CLA_PROP, INS_AUTHORIZE_WRITE, 0, 0, d.p, d.len,
	    256));
	*excluded += now_s() - t0;
	ML_TRY(tx_ok(o->t, c.p, c.len));
	/* confirm-write: 01 9000 */
	ML_ENSURE(o->t->resp_len == 1 && o->t->resp[0] == 0x01,
	    ML_ERR_REJECTED);
	r = 1;
out:
	return r;
}

/* Store commits: CREATE OBJECT then DELETE OBJECT. */
struct op_commit {
	struct target	*t;
	uint8_t		 create[16 + BENCH_OBJ_ATTRS];
	size_t		 create_len;
};

static int
op_commit(void *arg, double *excluded)
{
	struct op_commit *o = arg;
	uint8_t del[4] = { CLA_PROP, INS_DELETE_OBJECT, 0, 0 };
	int r;

	ML_TRY(tx_ok(o->t, o->create, o->create_len));
	ML_ENSURE(o->t->resp_len == 2, ML_ERR_FORMAT);
	del[2] = o->t->resp[0];
	del[3] = o->t->resp[1];
	ML_TRY(tx_ok(o->t, del, sizeof(del)));
	r = 2;
out:
	return r;
}

/* ---- raw OpenSSL anchors ----------------------------------------------- */

struct raw {
	EVP_PKEY	*key;		/* P-256 key pair */
	EVP_PKEY	*pub;		/* its public half only */
	EVP_PKEY	*peer;		/* another public key (ECDH, seal) */
	EVP_PKEY_CTX	*sign;		/* sign_init done */
	EVP_PKEY_CTX	*verify;	/* verify_init done, on pub */
	EVP_PKEY_CTX	*derive;	/* derive_init + peer done */
	EVP_PKEY_CTX	*keygen;	/* keygen_init + P-256 */
	EVP_KDF_CTX	*hkdf;
	EVP_CIPHER	*gcm;
	EVP_CIPHER_CTX	*cctx;
	EVP_MD		*sha256;
	uint8_t		 peer_pub[ML_P256_PUB_LEN];
	/* verify */
	uint8_t		 vmsg[256];
	size_t		 vmsg_len;
	uint8_t		 vsig[80];	/* DER */
	size_t		 vsig_len;
	/* seal */
	uint8_t		 pt[2048];
	size_t		 pt_len;
	uint8_t		 serial[CHIP_SERIAL_LEN];
};

/* A public-only EVP_PKEY from an encoded point, plain default context. */
static EVP_PKEY *
raw_pub_from(const uint8_t *pub, size_t len)
{
	OSSL_PARAM params[3];
	EVP_PKEY_CTX *pctx;
	EVP_PKEY *pkey = NULL;

	params[0] = OSSL_PARAM_construct_utf8_string(
	    OSSL_PKEY_PARAM_GROUP_NAME, (char *)"P-256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY,
	    (void *)pub, len);
	params[2] = OSSL_PARAM_construct_end();
	if ((pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) != NULL &&
	    EVP_PKEY_fromdata_init(pctx) == 1) {
		(void)EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY,
		    params);
	}
	EVP_PKEY_CTX_free(pctx);
	return pkey;
}

static void
raw_free(struct raw *x)
{
	EVP_PKEY_CTX_free(x->sign);
	EVP_PKEY_CTX_free(x->verify);
	EVP_PKEY_CTX_free(x->derive);
	EVP_PKEY_CTX_free(x->keygen);
	EVP_KDF_CTX_free(x->hkdf);
	EVP_CIPHER_CTX_free(x->cctx);
	EVP_CIPHER_free(x->gcm);
	EVP_MD_free(x->sha256);
	EVP_PKEY_free(x->key);
	EVP_PKEY_free(x->pub);
	EVP_PKEY_free(x->peer);
	memset(x, 0, sizeof(*x));
}

static int
raw_init(struct raw *x)
{
	EVP_PKEY *peer_key = NULL;
	EVP_KDF *kdf = NULL;
	uint8_t pub[ML_P256_PUB_LEN];
	size_t len = 0;
	int r = ML_ERR_CRYPTO;

	memset(x, 0, sizeof(*x));
	ML_ENSURE((x->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256")) != NULL, ML_ERR_CRYPTO);
	ML_ENSURE(EVP_PKEY_get_octet_string_param(x->key,
	    OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len) == 1 &&
	    len == sizeof(pub), ML_ERR_CRYPTO);
	ML_ENSURE((x->pub = raw_pub_from(pub, sizeof(pub))) != NULL,
	    ML_ERR_CRYPTO);
	ML_ENSURE((peer_key = EVP_PKEY_Q_keygen(NULL, NULL, "EC",
	    "P-256")) != NULL, ML_ERR_CRYPTO);
	ML_ENSURE(EVP_PKEY_get_octet_string_param(peer_key,
	    OSSL_PKEY_PARAM_PUB_KEY, x->peer_pub, sizeof(x->peer_pub),
	    &len) == 1 && len == sizeof(x->peer_pub), ML_ERR_CRYPTO);
	ML_ENSURE((x->peer = raw_pub_from(x->peer_pub, sizeof(x->peer_pub))) !=
	    NULL, ML_ERR_CRYPTO);

	ML_ENSURE((x->sign = EVP_PKEY_CTX_new_from_pkey(NULL, x->key,
	    NULL)) != NULL && EVP_PKEY_sign_init(x->sign) == 1, ML_ERR_CRYPTO);
	ML_ENSURE((x->verify = EVP_PKEY_CTX_new_from_pkey(NULL, x->pub,
	    NULL)) != NULL && EVP_PKEY_verify_init(x->verify) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE((x->derive = EVP_PKEY_CTX_new_from_pkey(NULL, x->key,
	    NULL)) != NULL && EVP_PKEY_derive_init(x->derive) == 1 &&
	    EVP_PKEY_derive_set_peer_ex(x->derive, x->peer, 0) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE((x->keygen = EVP_PKEY_CTX_new_from_name(NULL, "EC",
	    NULL)) != NULL && EVP_PKEY_keygen_init(x->keygen) == 1 &&
	    EVP_PKEY_CTX_set_group_name(x->keygen, "P-256") == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE((kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) != NULL &&
	    (x->hkdf = EVP_KDF_CTX_new(kdf)) != NULL, ML_ERR_CRYPTO);
	ML_ENSURE((x->gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM",
	    NULL)) != NULL && (x->cctx = EVP_CIPHER_CTX_new()) != NULL,
	    ML_ERR_CRYPTO);
	ML_ENSURE((x->sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL)) != NULL,
	    ML_ERR_CRYPTO);
	r = 0;
out:
	EVP_KDF_free(kdf);
	EVP_PKEY_free(peer_key);
	return r;
}

static int
op_raw_sign(void *arg, double *excluded)
{
	static const uint8_t digest[ML_SHA256_LEN] = { 0x5a };
	struct raw *x = arg;
	uint8_t der[80];
	size_t len = sizeof(der);

	return EVP_PKEY_sign(x->sign, der, &len, digest, sizeof(digest)) == 1 ?
	    1 : ML_ERR_CRYPTO;
}

static int
op_raw_verify(void *arg, double *excluded)
{
	struct raw *x = arg;
	uint8_t md[ML_SHA256_LEN];
	unsigned int mdlen = 0;

	if (EVP_Digest(x->vmsg, x->vmsg_len, md, &mdlen, x->sha256,
	    NULL) != 1 ||
	    EVP_PKEY_verify(x->verify, x->vsig, x->vsig_len, md, mdlen) != 1) {
		return ML_ERR_CRYPTO;
	}
	return 1;
}

static int
op_raw_ecdh(void *arg, double *excluded)
{
	struct raw *x = arg;
	uint8_t secret[ML_P256_SECRET_LEN];
	size_t len = sizeof(secret);

	return EVP_PKEY_derive(x->derive, secret, &len) == 1 ? 1 :
	    ML_ERR_CRYPTO;
}

/*
 * What GET SEALED does, in plain OpenSSL: ephemeral key pair, its encoded
 * point, ECDH with the (decoded once) recipient key, HKDF-SHA256 with the
 * same salt and info sizes, a fresh IV, AES-256-GCM over the same number
 * of plaintext bytes with the serial as AAD, then SHA-256 and ECDSA over
 * domain || serial || blob.
 */
static int
op_raw_seal(void *arg, double *excluded)
{
	static const char info[] = "mintline seal v1";
	static const char dom[] = NOTE_SEAL_DOMAIN;
	struct raw *x = arg;
	EVP_PKEY *eph = NULL;
	EVP_PKEY_CTX *dctx = NULL;
	OSSL_PARAM params[5];
	uint8_t blob[2048 + ML_SEAL_OVERHEAD], msg[2300], salt[130];
	uint8_t secret[ML_P256_SECRET_LEN], key[ML_AES256_KEY_LEN];
	uint8_t md[ML_SHA256_LEN], der[80];
	uint8_t *iv, *ct, *tag;
	size_t len, mlen;
	unsigned int mdlen = 0;
	int outl = 0, r = ML_ERR_CRYPTO;

	iv = blob + ML_P256_PUB_LEN;
	ct = iv + ML_GCM_IV_LEN;
	tag = ct + x->pt_len;
	ML_ENSURE(EVP_PKEY_generate(x->keygen, &eph) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_PUB_KEY,
	    blob, ML_P256_PUB_LEN, &len) == 1 && len == ML_P256_PUB_LEN,
	    ML_ERR_CRYPTO);
	len = sizeof(secret);
	ML_ENSURE((dctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph,
	    NULL)) != NULL &&
	    EVP_PKEY_derive_init(dctx) == 1 &&
	    EVP_PKEY_derive_set_peer_ex(dctx, x->peer, 0) == 1 &&
	    EVP_PKEY_derive(dctx, secret, &len) == 1, ML_ERR_CRYPTO);
	memcpy(salt, blob, ML_P256_PUB_LEN);
	memcpy(salt + ML_P256_PUB_LEN, x->peer_pub, ML_P256_PUB_LEN);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
	    (char *)"SHA2-256", 0);
	params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY,
	    secret, sizeof(secret));
	params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT,
	    salt, 2 * ML_P256_PUB_LEN);
	params[3] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
	    (void *)info, sizeof(info) - 1);
	params[4] = OSSL_PARAM_construct_end();
	ML_ENSURE(EVP_KDF_derive(x->hkdf, key, sizeof(key), params) == 1,
	    ML_ERR_CRYPTO);
	ML_ENSURE(RAND_bytes(iv, ML_GCM_IV_LEN) == 1, ML_ERR_CRYPTO);
	ML_ENSURE(EVP_EncryptInit_ex2(x->cctx, x->gcm, key, iv, NULL) == 1 &&
	    EVP_EncryptUpdate(x->cctx, NULL, &outl, x->serial,
	    sizeof(x->serial)) == 1 &&
	    EVP_EncryptUpdate(x->cctx, ct, &outl, x->pt, (int)x->pt_len) == 1 &&
	    EVP_EncryptFinal_ex(x->cctx, ct + outl, &outl) == 1 &&
	    EVP_CIPHER_CTX_ctrl(x->cctx, EVP_CTRL_AEAD_GET_TAG, ML_GCM_TAG_LEN,
	    tag) == 1, ML_ERR_CRYPTO);
	mlen = 0;
	memcpy(msg, dom, sizeof(dom) - 1);
	mlen += sizeof(dom) - 1;
	memcpy(msg + mlen, x->serial, sizeof(x->serial));
	mlen += sizeof(x->serial);
	memcpy(msg + mlen, blob, x->pt_len + ML_SEAL_OVERHEAD);
	mlen += x->pt_len + ML_SEAL_OVERHEAD;
	len = sizeof(der);
	ML_ENSURE(EVP_Digest(msg, mlen, md, &mdlen, x->sha256, NULL) == 1 &&
	    EVP_PKEY_sign(x->sign, der, &len, md, mdlen) == 1, ML_ERR_CRYPTO);
	r = 1;
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	OPENSSL_cleanse(key, sizeof(key));
	EVP_PKEY_CTX_free(dctx);
	EVP_PKEY_free(eph);
	return r;
}

/* pwrite + fdatasync, alternating between the two slot offsets. */
struct raw_io {
	int		 fd;
	size_t		 len[2];	/* bytes per write, as the chip wrote */
	uint8_t		*buf;
	unsigned	 next;
};

static int
op_raw_commit(void *arg, double *excluded)
{
	struct raw_io *io = arg;
	unsigned k;
	int i;

	for (i = 0; i < 2; i++) {
		k = io->next++ & 1;
		io->buf[4] = (uint8_t)io->next;	/* not the same bytes twice */
		if (pwrite(io->fd, io->buf, io->len[k],
		    (off_t)k * STORE_SLOT_SIZE) != (ssize_t)io->len[k] ||
		    fdatasync(io->fd) != 0) {
			return ML_ERR_IO;
		}
	}
	return 2;
}

/* The byte count of each slot of a chip image: header + payload. */
static int
image_slot_lens(const char *path, size_t ret_len[2])
{
	uint8_t hdr[12];
	uint32_t magic, len;
	int fd, i, r = ML_ERR_IO;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		return ML_ERR_IO;
	}
	for (i = 0; i < 2; i++) {
		ML_ENSURE(pread(fd, hdr, sizeof(hdr),
		    (off_t)i * STORE_SLOT_SIZE) == (ssize_t)sizeof(hdr),
		    ML_ERR_IO);
		magic = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
		    (uint32_t)hdr[2] << 8 | hdr[3];
		len = (uint32_t)hdr[8] << 24 | (uint32_t)hdr[9] << 16 |
		    (uint32_t)hdr[10] << 8 | hdr[11];
		ML_ENSURE(magic == STORE_MAGIC && len <= STORE_MAX_PAYLOAD,
		    ML_ERR_FORMAT);
		ret_len[i] = STORE_HDR_LEN + len;
	}
	r = 0;
out:
	close(fd);
	return r;
}

/* ---- the chip-side section --------------------------------------------- */

static void
pair_row(struct bench *b, const char *op, op_fn ours, void *ours_arg,
    op_fn raw, void *raw_arg)
{
	struct row *rw = add_row(b, op);
	int r;

	if ((r = measure_pair(b, ours, &ours_arg, raw, &raw_arg, 1, &rw->ours,
	    &rw->raw)) != 0) {
		rw->note = "failed";
		fail(b, op, r);
	}
}

/* Reader chip: personalised, user logged in, one generated key pair. */
static int
setup_reader(struct bench *b, struct target *t, uint16_t *ret_key,
    char ret_path[PATH_MAX])
{
	uint8_t attrs[4] = { 0, 0, 0, 0 };
	int r;

	ML_TRY(make_chip(b, CHIP_KIND_READER, "BENCH-READER-01", t, ret_path));
	ML_TRY(perso_pins(t, "bench reader"));
	ML_TRY(send_cmd(t, CLA_ISO, INS_VERIFY, 0, PIN_USER, USER_PIN,
	    strlen(USER_PIN), 0));
	ML_TRY(send_cmd(t, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_NORMAL, 0, attrs,
	    sizeof(attrs), 256));
	ML_ENSURE(t->resp_len == 4 + ML_P256_PUB_LEN, ML_ERR_FORMAT);
	*ret_key = (uint16_t)((t->resp[0] << 8) | t->resp[1]);
	r = 0;
out:
	return r;
}

/* Note chip: personalised and locked (BLANK -> IDLE), nothing written. */
static int
setup_note(struct bench *b, struct target *t, const char *serial,
    const uint8_t station_pub[ML_P256_PUB_LEN],
    const uint8_t server_pub[ML_P256_PUB_LEN])
{
	uint8_t attrs[4] = { 0, 0, 0, 0 };
	int r;

	ML_TRY(make_chip(b, CHIP_KIND_NOTE, serial, t, NULL));
	ML_TRY(perso_pins(t, serial));
	ML_TRY(send_cmd(t, CLA_PROP, INS_GEN_KEYPAIR, GENKEY_CHIPKEY, 0, attrs,
	    sizeof(attrs), 256));
	ML_TRY(send_cmd(t, CLA_PROP, INS_INSTALL_ISSUER, 0, 0, station_pub,
	    ML_P256_PUB_LEN, 0));
	ML_TRY(send_cmd(t, CLA_PROP, INS_INSTALL_SERVER, 0, 0, server_pub,
	    ML_P256_PUB_LEN, 0));
	ML_TRY(send_cmd(t, CLA_PROP, INS_LOCK, 0, 0, NULL, 0, 0));
	r = 0;
out:
	return r;
}

static const char *
fs_name(long type)
{
	switch ((unsigned long)type) {
	case 0xEF53:		return "ext2/3/4";
	case 0x58465342:	return "xfs";
	case 0x9123683E:	return "btrfs";
	case 0x01021994:	return "tmpfs";
	case 0x794C7630:	return "overlayfs";
	case 0x2FC12FC1:	return "zfs";
	case 0xF2F52010:	return "f2fs";
	case 0x6969:		return "nfs";
	case 0x65735546:	return "fuse";
	default:		return "unknown";
	}
}

static int
bench_chip_ops(struct bench *b)
{
	struct target rd, na, ns;	/* reader, note to authorize, to seal */
	struct op_auth oa = { 0 };
	struct op_commit oc = { 0 };
	struct opcmd sign, ecdh, seal;
	struct raw x;
	struct raw_io io = { .fd = -1 };
	struct ml_p256_key *station = NULL, *server = NULL;
	uint8_t station_pub[ML_P256_PUB_LEN], server_pub[ML_P256_PUB_LEN];
	uint8_t priv[ML_P256_PRIV_LEN], body[128];
	uint8_t md[ML_SHA256_LEN] = { 0x5a };
	char reader_img[PATH_MAX], path[PATH_MAX + 16], op[96];
	struct ml_wr w;
	struct ml_rd rdr, blob;
	struct statfs sfs;
	uint16_t key_id;
	size_t i, n;
	int r;

	(void)target_init(&rd);
	(void)target_init(&na);
	(void)target_init(&ns);
	ML_ENSURE(rd.resp != NULL && na.resp != NULL && ns.resp != NULL,
	    ML_ERR_NOMEM);
	ML_TRY(raw_init(&x));

	/* sign and ECDH on a reader chip */
	ML_TRY(setup_reader(b, &rd, &key_id, reader_img));
	w = ML_WR_FIXED(body, sizeof(body));
	ML_TRY(ml_wr_u16be(&w, key_id));
	ML_TRY(ml_wr_bytes(&w, md, sizeof(md)));
	ML_TRY(opcmd_build(&sign, &rd, CLA_PROP, INS_SIGN, 0x9E, 0x9A, w.p,
	    w.len, 256, ML_P256_SIG_LEN));
	if (b->only & SEL_SIGN) {
		pair_row(b, "sign: SIGN P-256 (raw: EVP_PKEY_sign)", op_cmd,
		    &sign, op_raw_sign, &x);
	}
	ML_TRY(opcmd_build(&ecdh, &rd, CLA_PROP, INS_ECDH,
	    (uint8_t)(key_id >> 8), (uint8_t)key_id, x.peer_pub,
	    sizeof(x.peer_pub), 256, ML_P256_SECRET_LEN));
	if (b->only & SEL_ECDH) {
		pair_row(b, "ecdh: ECDH P-256 (raw: EVP_PKEY_derive)", op_cmd,
		    &ecdh, op_raw_ecdh, &x);
	}

	/* verify: AUTHORIZE WRITE on a locked, blank note */
	ML_TRY(ml_p256_keygen(priv, station_pub));
	ML_TRY(ml_p256_key_from_priv(priv, &station));
	ML_TRY(ml_p256_keygen(priv, server_pub));
	ML_TRY(ml_p256_key_from_priv(priv, &server));
	ml_wipe(priv, sizeof(priv));
	ML_TRY(setup_note(b, &na, "BENCH-NOTE-AUTH", station_pub, server_pub));
	oa = (struct op_auth){ .t = &na, .station = station,
	    .serial = chip_serial(na.chip) };
	ML_ENSURE(strlen(oa.serial) == CHIP_SERIAL_LEN, ML_ERR_FORMAT);
	/* the raw anchor verifies a message of the same length */
	{
		uint8_t chal[NOTE_CHALLENGE_LEN] = { 1 };
		struct ml_wr m = ML_WR_FIXED(x.vmsg, sizeof(x.vmsg));
		size_t dl = sizeof(x.vsig);

		ML_TRY(note_msg_auth(&m, chal, oa.serial,
		    (const uint8_t *)FEATURE, strlen(FEATURE)));
		x.vmsg_len = m.len;
		ML_ENSURE(EVP_Digest(x.vmsg, x.vmsg_len, md, NULL, x.sha256,
		    NULL) == 1 && EVP_PKEY_sign(x.sign, x.vsig, &dl, md,
		    sizeof(md)) == 1, ML_ERR_CRYPTO);
		x.vsig_len = dl;
	}
	if (b->only & SEL_VERIFY) {
		pair_row(b, "verify: GET CHALLENGE + AUTHORIZE WRITE "
		    "(raw: SHA-256 + EVP_PKEY_verify)", op_authorize, &oa,
		    op_raw_verify, &x);
	}

	/* seal: GET SEALED on a written note */
	ML_TRY(setup_note(b, &ns, "BENCH-NOTE-SEAL", station_pub, server_pub));
	oa.t = &ns;
	oa.serial = chip_serial(ns.chip);
	{
		double excl = 0;

		ML_ENSURE(op_authorize(&oa, &excl) == 1, ML_ERR_REJECTED);
	}
	ML_TRY(send_cmd(&ns, CLA_PROP, INS_WRITE_FEATURE, 0, 0, FEATURE,
	    strlen(FEATURE), 0));
	ML_TRY(opcmd_build(&seal, &ns, CLA_PROP, INS_GET_SEALED, 0, 0, NULL, 0,
	    65536, 0));
	ML_TRY(tx_ok(&ns, seal.cmd, seal.cmd_len));
	rdr = ML_RD_INIT(ns.resp, ns.resp_len);
	ML_TRY(ml_tlv_find(&rdr, TAG_SEAL_BLOB, &blob));
	ML_ENSURE(ml_rd_left(&blob) > ML_SEAL_OVERHEAD &&
	    ml_rd_left(&blob) - ML_SEAL_OVERHEAD <= sizeof(x.pt),
	    ML_ERR_FORMAT);
	x.pt_len = ml_rd_left(&blob) - ML_SEAL_OVERHEAD;
	ML_ENSURE(RAND_bytes(x.pt, (int)x.pt_len) == 1, ML_ERR_CRYPTO);
	memcpy(x.serial, oa.serial, sizeof(x.serial));
	printf("# seal: %zu plaintext bytes, %zu-byte blob, %zu-byte answer\n",
	    x.pt_len, ml_rd_left(&blob), ns.resp_len);
	if (b->only & SEL_SEAL) {
		pair_row(b, "seal: GET SEALED (raw: keygen+ECDH+HKDF+GCM+sign)",
		    op_cmd, &seal, op_raw_seal, &x);
	}
	if ((b->only & SEL_COMMIT) == 0) {
		r = 0;
		goto out;
	}

	/* durable store: commits on the reader chip, still logged in */
	w = ML_WR_FIXED(body, sizeof(body));
	ML_TRY(ml_wr_u8(&w, OBJ_CLASS_DATA));
	ML_TRY(ml_wr_u8(&w, 0));
	for (i = 0; i < BENCH_OBJ_ATTRS; i++) {
		ML_TRY(ml_wr_u8(&w, (uint8_t)i));
	}
	{
		struct ml_wr c = ML_WR_FIXED(oc.create, sizeof(oc.create));

		ML_TRY(apdu_build(&c, CLA_PROP, INS_CREATE_OBJECT, 0, 0, w.p,
		    w.len, 256));
		oc.create_len = c.len;
	}
	oc.t = &rd;
	{
		struct row *rw;

		ML_ENSURE(statfs(b->dir, &sfs) == 0, ML_ERR_IO);
		(void)snprintf(op, sizeof(op),
		    "commit: CREATE+DELETE OBJECT, %s (raw: pwrite+fdatasync)",
		    fs_name(sfs.f_type));
		rw = add_row(b, op);
		/* One round first: then one slot holds the state with the
		 * object and the other without, the two sizes written. */
		{
			double excl = 0;

			ML_ENSURE(op_commit(&oc, &excl) == 2, ML_ERR_IO);
		}
		ML_TRY(image_slot_lens(reader_img, io.len));
		printf("# commit: %zu and %zu bytes per slot write, store on "
		    "%s (statfs type 0x%lX) at %s\n", io.len[0], io.len[1],
		    fs_name(sfs.f_type), (unsigned long)sfs.f_type, b->dir);
		(void)snprintf(path, sizeof(path), "%s/raw-commit.img", b->dir);
		ML_ENSURE((io.fd = open(path, O_RDWR | O_CREAT | O_TRUNC |
		    O_CLOEXEC, 0600)) >= 0, ML_ERR_IO);
		n = io.len[0] > io.len[1] ? io.len[0] : io.len[1];
		ML_ENSURE((io.buf = calloc(1, n)) != NULL, ML_ERR_NOMEM);
		ML_ENSURE(RAND_bytes(io.buf, (int)n) == 1, ML_ERR_CRYPTO);
		/* lay out both slots once, as the chip image already is */
		for (i = 0; i < 2; i++) {
			ML_ENSURE(pwrite(io.fd, io.buf, n,
			    (off_t)i * STORE_SLOT_SIZE) == (ssize_t)n,
			    ML_ERR_IO);
		}
		ML_ENSURE(fsync(io.fd) == 0, ML_ERR_IO);
		if ((r = measure_pair(b, op_commit, (void *[]){ &oc },
		    op_raw_commit, (void *[]){ &io }, 1, &rw->ours,
		    &rw->raw)) != 0) {
			rw->note = "failed";
			fail(b, op, r);
		}
	}
	r = 0;
out:
	if (io.fd >= 0) {
		close(io.fd);
	}
	free(io.buf);
	target_fini(&rd);
	target_fini(&na);
	target_fini(&ns);
	ml_p256_key_free(station);
	ml_p256_key_free(server);
	raw_free(&x);
	if (r != 0) {
		fail(b, "chip-side rows", r);
	}
	return r;
}

/* ---- report ------------------------------------------------------------- */

static void
fmt_rate(char *buf, size_t cap, double v)
{
	if (v < 0) {
		(void)snprintf(buf, cap, "—");
	} else if (v >= 100) {
		(void)snprintf(buf, cap, "%.0f", v);
	} else {
		(void)snprintf(buf, cap, "%.1f", v);
	}
}

static void
print_table(const struct bench *b)
{
	char ours[32], raw[32], ratio[32];
	size_t i;

	printf("\n| operation | ops/s ours | ops/s raw | ours/raw |\n");
	printf("| --- | ---: | ---: | ---: |\n");
	for (i = 0; i < b->nrows; i++) {
		const struct row *rw = &b->rows[i];

		if (rw->note != NULL && rw->ours < 0) {
			printf("| %s | %s | | |\n", rw->op, rw->note);
			continue;
		}
		fmt_rate(ours, sizeof(ours), rw->ours);
		fmt_rate(raw, sizeof(raw), rw->raw);
		if (rw->ours > 0 && rw->raw > 0) {
			(void)snprintf(ratio, sizeof(ratio),
			    rw->ours / rw->raw < 0.1 ? "%.2g" : "%.2f",
			    rw->ours / rw->raw);
		} else {
			(void)snprintf(ratio, sizeof(ratio), "—");
		}
		printf("| %s | %s | %s | %s |\n", rw->op, ours, raw, ratio);
	}
	printf("\nraw: plain OpenSSL %s, default library context, key and "
	    "context reused;\nfor the link rows, the chip_transmit() figure "
	    "with the same thread count;\nfor commit, pwrite + fdatasync of "
	    "the same byte counts.  %g s per figure.\n",
	    OpenSSL_version(OPENSSL_VERSION_STRING), b->seconds);
}

static void
print_machine(const struct bench *b)
{
	char line[256], model[256] = "unknown", date[64], load[64] = "?";
	struct utsname u;
	time_t now = time(NULL);
	FILE *f;
	char *p;

	if ((f = fopen("/proc/cpuinfo", "re")) != NULL) {
		while (fgets(line, sizeof(line), f) != NULL) {
			if (strncmp(line, "model name", 10) == 0 &&
			    (p = strchr(line, ':')) != NULL) {
				p += strspn(p + 1, " \t") + 1;
				p[strcspn(p, "\n")] = '\0';
				(void)snprintf(model, sizeof(model), "%s", p);
				break;
			}
		}
		fclose(f);
	}
	if ((f = fopen("/proc/loadavg", "re")) != NULL) {
		if (fgets(load, sizeof(load), f) != NULL) {
			load[strcspn(load, " ")] = '\0';
		}
		fclose(f);
	}
	(void)strftime(date, sizeof(date), "%Y-%m-%d %H:%M UTC", gmtime(&now));
	(void)uname(&u);
	printf("# bench-chip %s: %ld CPUs (nproc), %s; Linux %s; %s\n", date,
	    sysconf(_SC_NPROCESSORS_ONLN), model, u.release,
	    OpenSSL_version(OPENSSL_VERSION));
	/* Other jobs on the machine move the absolute figures: say so. */
	printf("# load average (1 min) at start: %s\n", load);
	printf("# chip images under %s\n", b->dir);
}

/* ---- work directory ------------------------------------------------------ */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path) == 0 ? 0 : -1;
}

/*
 * A fresh bench-chip.XXXXXX under --dir, or by default next to this
 * executable (in the build tree), so that the store commits hit the file
 * system the build lives on.
 */
static int
make_workdir(struct bench *b)
{
	char exe[PATH_MAX], parent[PATH_MAX];
	ssize_t n;
	char *slash;

	if (b->parent != NULL) {
		if (mkdir(b->parent, 0700) != 0 && errno != EEXIST) {
			return ML_ERR_IO;
		}
		(void)snprintf(parent, sizeof(parent), "%s", b->parent);
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n <= 0) {
			return ML_ERR_IO;
		}
		exe[n] = '\0';
		if ((slash = strrchr(exe, '/')) != NULL) {
			*slash = '\0';
		}
		(void)snprintf(parent, sizeof(parent), "%s", exe);
	}
	if ((size_t)snprintf(b->dir, sizeof(b->dir), "%s/bench-chip.XXXXXX",
	    parent) >= sizeof(b->dir) - 64 || mkdtemp(b->dir) == NULL) {
		return ML_ERR_IO;
	}
	return 0;
}

/* "sign,seal" -> SEL_SIGN | SEL_SEAL. */
static int
parse_only(const char *arg, unsigned *ret)
{
	char buf[128], *tok, *save = NULL;
	unsigned sel = 0;
	size_t i;

	if ((size_t)snprintf(buf, sizeof(buf), "%s", arg) >= sizeof(buf)) {
		return ML_ERR_TOO_LARGE;
	}
	for (tok = strtok_r(buf, ",", &save); tok != NULL;
	    tok = strtok_r(NULL, ",", &save)) {
		for (i = 0; i < sizeof(sel_names) / sizeof(sel_names[0]); i++) {
			if (strcmp(tok, sel_names[i].name) == 0) {
				sel |= sel_names[i].bit;
				break;
			}
		}
		if (i == sizeof(sel_names) / sizeof(sel_names[0])) {
			return ML_ERR_ARG;
		}
	}
	if (sel == 0) {
		return ML_ERR_ARG;
	}
	*ret = sel;
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: bench-chip [--seconds N] [--dir DIR] [--pcsc SPEC]\n"
	    "                  [--only LIST] [--keep]\n"
	    "\n"
	    "Benchmark the card OS: APDU round trips in-process\n"
	    "(chip_transmit and the \"inproc:\" chip link) and over\n"
	    "PC/SC; chip-side sign, verify, seal and ECDH against plain\n"
	    "OpenSSL; durable store commits against pwrite + fdatasync;\n"
	    "all in one run.  Prints a table: operation, ops/s ours,\n"
	    "ops/s raw, ours/raw.  bench-chip.sh sets up pcscd + vpcd +\n"
	    "mintline-chip and passes --pcsc.\n"
	    "\n"
	    "  -s, --seconds N        timed seconds per figure (default 2)\n"
	    "  -d, --dir DIR          put the chip images in a fresh\n"
	    "                         DIR/bench-chip.XXXXXX (default: next to\n"
	    "                         this executable, in the build tree)\n"
	    "  -p, --pcsc SPEC        chip link for the PC/SC rows, e.g.\n"
	    "                         pcsc:mintline-vpcd (two chips present)\n"
	    "      --pcsc-skipped WHY print the PC/SC rows as skipped\n"
	    "  -o, --only LIST        only these rows, comma separated: apdu,\n"
	    "                         pcsc, sign, ecdh, verify, seal, commit\n"
	    "                         (for profiling one operation)\n"
	    "  -k, --keep             keep the work directory\n"
	    "  -h, --help             this text\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "seconds", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "pcsc", required_argument, NULL, 'p' },
		{ "pcsc-skipped", required_argument, NULL, 'P' },
		{ "keep", no_argument, NULL, 'k' },
		{ "only", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	static struct bench b = { .seconds = 2, .only = SEL_ALL };
	char *end;
	double direct[2] = { -1, -1 };
	int c, r;

	ml_log_set_ident("bench-chip");
	while ((c = getopt_long(argc, argv, "s:d:p:o:kh", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			b.seconds = strtod(optarg, &end);
			if (end == optarg || *end != '\0' ||
			    !(b.seconds >= 0.05) || b.seconds > 60) {
				fprintf(stderr,
				    "bench-chip: --seconds: 0.05..60\n");
				return 2;
			}
			break;
		case 'd':
			b.parent = optarg;
			break;
		case 'p':
			b.pcsc = optarg;
			break;
		case 'P':
			b.pcsc_skip = optarg;
			break;
		case 'k':
			b.keep = true;
			break;
		case 'o':
			if (parse_only(optarg, &b.only) != 0) {
				fprintf(stderr, "bench-chip: --only: "
				    "unknown row group in %s\n", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}
	if ((r = ml_ossl_init()) != 0 || (r = make_workdir(&b)) != 0) {
		fprintf(stderr, "bench-chip: setup: %s\n", ml_strerror(r));
		return 1;
	}
	print_machine(&b);
	setvbuf(stdout, NULL, _IOLBF, 0);

	if (b.only & SEL_APDU) {
		(void)bench_apdu_local(&b, direct);
	}
	if (b.only & SEL_PCSC) {
		(void)bench_apdu_pcsc(&b, direct);
	}
	if (b.only & (SEL_ALL & ~(SEL_APDU | SEL_PCSC))) {
		(void)bench_chip_ops(&b);
	}

	print_table(&b);
	if (!b.keep) {
		(void)nftw(b.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	} else {
		printf("work directory kept: %s\n", b.dir);
	}
	return b.failures ? 1 : 0;
}
