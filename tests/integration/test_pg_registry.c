/*
 * Drives the registry interface (server/registry.h) against a real
 * PostgreSQL started by test-pg-registry.sh: several processes, each with
 * its own connections, stand in for several mintline-server instances.
 *
 *   test_pg_registry migrate URL NPROC
 *	NPROC processes open (and migrate) the same database at once; the
 *	schema_version table must list every migration exactly once.
 *   test_pg_registry race URL NOTES
 *	two processes x 4 threads register the same NOTES notes at once (and
 *	one enrols a second chip per tenth note and tries the same serial on
 *	it): every note registered exactly once, the same reg_id answered to
 *	everyone, each duplicate refused with both chips flagged.
 *   test_pg_registry load URL ACKFILE FIRST COUNT [THREADS]
 *	register notes FIRST..FIRST+COUNT-1, appending "note_id reg_id" to
 *	ACKFILE after each acknowledgement; on a refusal (database down) wait
 *	and retry the same note, logging the error; ends when all are acked.
 *   test_pg_registry verify URL ACKFILE...
 *	every acknowledged (note_id, reg_id) is in the database, once.
 *   test_pg_registry readers URL
 *	reader mapping, flags and risk records through the PostgreSQL
 *	back-end (same answers as the SQLite unit tests expect).
 *   test_pg_registry audit URL N
 *	two processes x 4 threads append N audit rows each at once: one hash
 *	chain without a gap (reg_audit_verify), the filters, and the schema
 *	refusing UPDATE, DELETE and TRUNCATE of audit rows.
 *
 * Exit 0 on success, 1 on a failed check (lines "FAIL ..." on stderr).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "ml_log.h"
#include "registry.h"

static int failures;

#define CHECK(cond, ...) do {						\
	if (!(cond)) {							\
		fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);	\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		failures++;						\
	}								\
} while (0)

static void
chip_of(unsigned i, char out[NOTE_CHIP_SERIAL_LEN + 1], unsigned variant)
{
	snprintf(out, NOTE_CHIP_SERIAL_LEN + 1, "C%u%014u", variant % 10, i);
}

static void
pub_of(const char *chip, uint8_t pub[ML_P256_PUB_LEN])
{
	size_t i;

	pub[0] = 0x04;
	for (i = 1; i < ML_P256_PUB_LEN; i++) {
		pub[i] = (uint8_t)(chip[i % NOTE_CHIP_SERIAL_LEN] * 31 + i);
	}
}

/* A deterministic registration for note i on chip variant v. */
struct fake_note {
	struct note_reg	 nr;
	uint8_t		 feature[64];
};

static void
note_of(unsigned i, unsigned v, struct fake_note *fn)
{
	size_t k;

	memset(fn, 0, sizeof(*fn));
	snprintf(fn->nr.note_id, sizeof(fn->nr.note_id), "ML%010u", i);
	chip_of(i, fn->nr.chip_serial, v);
	for (k = 0; k < sizeof(fn->feature); k++) {
		fn->feature[k] = (uint8_t)(i * 7 + k + v);
	}
	fn->nr.feature = fn->feature;
	fn->nr.feature_len = sizeof(fn->feature);
	memset(fn->nr.challenge, (int)(i & 0xff), sizeof(fn->nr.challenge));
	memset(fn->nr.station_sig, 0x5a, sizeof(fn->nr.station_sig));
	memset(fn->nr.issuer_pub, 0x04, sizeof(fn->nr.issuer_pub));
}

static int
enrol(struct reg *reg, unsigned i, unsigned v)
{
	char chip[NOTE_CHIP_SERIAL_LEN + 1];
	uint8_t pub[ML_P256_PUB_LEN];
	int r;

	chip_of(i, chip, v);
	pub_of(chip, pub);
	r = reg_notes_enrol(reg, chip, pub);
	return r == 0 || r == 1 ? 0 : r;
}

static struct reg *
open_or_die(const char *url)
{
	struct reg *reg = NULL;
	int r;

	if ((r = reg_open(url, NULL, &reg)) != 0) {
		fprintf(stderr, "FAIL: reg_open: %s\n", ml_strerror(r));
		exit(1);
	}
	return reg;
}

/* ---------------------------------------------------------------- migrate */

static int
cmd_migrate(const char *url, int nproc)
{
	pid_t pids[64];
	struct reg *reg;
	int i, st, bad = 0;

	for (i = 0; i < nproc && i < 64; i++) {
		if ((pids[i] = fork()) == 0) {
			struct reg *r2 = open_or_die(url);

			reg_close(r2);
			_exit(0);
		}
	}
	for (i = 0; i < nproc && i < 64; i++) {
		waitpid(pids[i], &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
			bad++;
		}
	}
	CHECK(bad == 0, "%d of %d concurrent opens failed", bad, nproc);
	reg = open_or_die(url);		/* and once more: nothing to do */
	reg_close(reg);
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- race */

struct race_arg {
	const char	*url;
	struct reg	*reg;
	unsigned	 notes;
	unsigned	 tid, nthreads;
	int		 proc;
	FILE		*out;
	pthread_mutex_t	*mu;
};

static void *
race_thread(void *p)
{
	struct race_arg *a = p;
	struct fake_note fn;
	uint64_t id;
	unsigned i;
	int r;

	for (i = a->tid; i < a->notes; i += a->nthreads) {
		note_of(i, 0, &fn);
		r = reg_notes_register(a->reg, &fn.nr, &id);
		pthread_mutex_lock(a->mu);
		fprintf(a->out, "%s %d %llu\n", fn.nr.note_id, r,
		    r == 0 || r == 1 ? (unsigned long long)id : 0ULL);
		pthread_mutex_unlock(a->mu);
		if (a->proc == 1 && i % 10 == 0) {
			/* The same serial from another chip. */
			note_of(i, 1, &fn);
			r = reg_notes_register(a->reg, &fn.nr, &id);
			pthread_mutex_lock(a->mu);
			fprintf(a->out, "DUP %s %d\n", fn.nr.note_id, r);
			pthread_mutex_unlock(a->mu);
		}
	}
	return NULL;
}

static void
race_child(const char *url, unsigned notes, int proc, const char *path)
{
	pthread_t th[4];
	struct race_arg a[4];
	pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
	struct reg *reg = open_or_die(url);
	FILE *out = fopen(path, "w");
	unsigned t;

	if (out == NULL) {
		_exit(1);
	}
	for (t = 0; t < 4; t++) {
		a[t] = (struct race_arg){ .url = url, .reg = reg, .notes = notes,
		    .tid = t, .nthreads = 4, .proc = proc, .out = out, .mu = &mu };
		pthread_create(&th[t], NULL, race_thread, &a[t]);
	}
	for (t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
	}
	fclose(out);
	reg_close(reg);
	_exit(0);
}

static int
cmd_race(const char *url, unsigned notes)
{
	struct reg *reg = open_or_die(url);
	unsigned long long *ids[2];
	unsigned i, n_new = 0, n_again = 0, n_dup = 0, n_other = 0;
	pid_t pid[2];
	char path[2][64], line[256], nid[64];
	uint64_t count = 0;
	int p, st, r;

	/* Enrol every chip, and a second chip for each tenth serial. */
	for (i = 0; i < notes; i++) {
		CHECK(enrol(reg, i, 0) == 0, "enrol %u", i);
		if (i % 10 == 0) {
			CHECK(enrol(reg, i, 1) == 0, "enrol %u'", i);
		}
	}
	for (p = 0; p < 2; p++) {
		ids[p] = calloc(notes, sizeof(**ids));
		snprintf(path[p], sizeof(path[p]), "race.%d.out", p);
		if ((pid[p] = fork()) == 0) {
			race_child(url, notes, p, path[p]);
		}
	}
	for (p = 0; p < 2; p++) {
		waitpid(pid[p], &st, 0);
		CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child %d", p);
	}
	for (p = 0; p < 2; p++) {
		FILE *f = fopen(path[p], "r");
		unsigned long long id;
		unsigned k;

		CHECK(f != NULL, "%s", path[p]);
		while (f != NULL && fgets(line, sizeof(line), f) != NULL) {
			if (sscanf(line, "DUP %63s %d", nid, &r) == 2) {
				CHECK(r == REG_NOTE_DUP_SERIAL,
				    "second chip for %s: %d", nid, r);
				n_dup++;
				CHECK(reg_notes_flagged(reg, nid) == 1,
				    "%s not flagged", nid);
				continue;
			}
			if (sscanf(line, "ML%u %d %llu", &k, &r, &id) != 3 ||
			    k >= notes) {
				CHECK(0, "bad line %s", line);
				continue;
			}
			if (r == 0) {
				n_new++;
			} else if (r == 1) {
				n_again++;
			} else {
				n_other++;
			}
			ids[p][k] = id;
		}
		if (f != NULL) {
			fclose(f);
		}
	}
	CHECK(n_new == notes, "%u new registrations, want %u", n_new, notes);
	CHECK(n_again == notes, "%u repeats, want %u", n_again, notes);
	CHECK(n_other == 0, "%u errors", n_other);
	for (i = 0; i < notes; i++) {
		struct note_row row;
		struct fake_note fn;

		note_of(i, 0, &fn);
		CHECK(ids[0][i] != 0 && ids[0][i] == ids[1][i],
		    "note %u: reg ids %llu / %llu", i, ids[0][i], ids[1][i]);
		r = reg_notes_lookup(reg, fn.nr.note_id, &row);
		CHECK(r == 0 && row.reg_id == ids[0][i] &&
		    strcmp(row.chip_serial, fn.nr.chip_serial) == 0,
		    "note %u in the registry", i);
	}
	CHECK(reg_notes_count(reg, &count) == 0 && count == notes,
	    "%llu notes in the registry, want %u", (unsigned long long)count,
	    notes);
	/* The first chip may not take a second note. */
	{
		struct fake_note fn;
		uint64_t id;

		note_of(notes + 5, 0, &fn);
		chip_of(0, fn.nr.chip_serial, 0);
		r = reg_notes_register(reg, &fn.nr, &id);
		CHECK(r == REG_NOTE_CHIP_USED, "used chip: %d", r);
		note_of(notes + 6, 7, &fn);	/* never enrolled */
		r = reg_notes_register(reg, &fn.nr, &id);
		CHECK(r == REG_NOTE_UNKNOWN_CHIP, "unknown chip: %d", r);
	}
	printf("race: %u notes, 2 processes x 4 threads: %u new, %u repeats "
	    "(same reg_id), %u duplicate serials refused and flagged\n",
	    notes, n_new, n_again, n_dup);
	free(ids[0]);
	free(ids[1]);
	reg_close(reg);
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- load */

struct load_arg {
	struct reg	*reg;
	unsigned	 first, count, tid, nthreads;
	int		 fd;
	atomic_uint	*errors;
};

static void *
load_thread(void *p)
{
	struct load_arg *a = p;
	struct fake_note fn;
	char line[96];
	uint64_t id;
	unsigned i;
	int r, n;

	for (i = a->first + a->tid; i < a->first + a->count; i += a->nthreads) {
		note_of(i, 0, &fn);
		for (;;) {
			if ((r = enrol(a->reg, i, 0)) == 0) {
				r = reg_notes_register(a->reg, &fn.nr, &id);
			}
			if (r == 0 || r == 1) {
				break;
			}
			if (atomic_fetch_add(a->errors, 1) % 50 == 0) {
				fprintf(stderr, "load: note %s refused: %s; "
				    "retrying\n", fn.nr.note_id, r < 0 ?
				    ml_strerror(r) : "refusal");
			}
			usleep(50000);
		}
		/* Acknowledged: record it (one write(); survives kill -9). */
		n = snprintf(line, sizeof(line), "%s %llu\n", fn.nr.note_id,
		    (unsigned long long)id);
		if (write(a->fd, line, (size_t)n) != n) {
			fprintf(stderr, "load: ack file: %s\n", strerror(errno));
			exit(1);
		}
	}
	return NULL;
}

static int
cmd_load(const char *url, const char *ackfile, unsigned first, unsigned count,
    unsigned nthreads)
{
	pthread_t th[16];
	struct load_arg a[16];
	atomic_uint errors = 0;
	struct reg *reg = open_or_die(url);
	struct timespec t0, t1;
	unsigned t;
	int fd;

	if (nthreads == 0 || nthreads > 16) {
		nthreads = 4;
	}
	if ((fd = open(ackfile, O_WRONLY | O_CREAT | O_APPEND, 0644)) < 0) {
		perror(ackfile);
		return 1;
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (t = 0; t < nthreads; t++) {
		a[t] = (struct load_arg){ .reg = reg, .first = first,
		    .count = count, .tid = t, .nthreads = nthreads, .fd = fd,
		    .errors = &errors };
		pthread_create(&th[t], NULL, load_thread, &a[t]);
	}
	for (t = 0; t < nthreads; t++) {
		pthread_join(th[t], NULL);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(fd);
	printf("load: %u notes acknowledged in %.2f s (%u refusals retried)\n",
	    count, (double)(t1.tv_sec - t0.tv_sec) +
	    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9, (unsigned)errors);
	reg_close(reg);
	return 0;
}

/* ---------------------------------------------------------------- verify */

static int
cmd_verify(const char *url, int nfiles, char **files)
{
	struct reg *reg = open_or_die(url);
	char line[256], nid[64];
	unsigned long long id;
	unsigned acked = 0;
	int i;

	for (i = 0; i < nfiles; i++) {
		FILE *f = fopen(files[i], "r");

		if (f == NULL) {
			continue;
		}
		while (fgets(line, sizeof(line), f) != NULL) {
			struct note_row row;
			int r;

			if (sscanf(line, "%63s %llu", nid, &id) != 2) {
				continue;	/* a torn last line */
			}
			acked++;
			r = reg_notes_lookup(reg, nid, &row);
			CHECK(r == 0, "acknowledged note %s missing (%s)", nid,
			    ml_strerror(r));
			CHECK(r != 0 || row.reg_id == id,
			    "note %s: acked reg %llu, registry %llu", nid, id,
			    (unsigned long long)row.reg_id);
		}
		fclose(f);
	}
	printf("verify: %u acknowledgements checked, %d missing or wrong\n",
	    acked, failures);
	reg_close(reg);
	return failures ? 1 : 0;
}

/* ---------------------------------------------------------------- readers */

static int
cmd_readers(const char *url)
{
	struct reg *reg = open_or_die(url);
	struct reg_reader rd, got;
	struct reg_event_rec evs[3];
	uint64_t n = 0;
	int r, i;

	memset(&rd, 0, sizeof(rd));
	snprintf(rd.serial, sizeof(rd.serial), "RDR-PG-1");
	snprintf(rd.certno, sizeof(rd.certno), "1A2B");
	rd.kind = HS_KIND_READER;
	snprintf(rd.factory, sizeof(rd.factory), "line 3, lot 9");
	CHECK(reg_reader_put(reg, &rd) == 0, "reader_put");
	CHECK(reg_reader_get(reg, "RDR-PG-1", &got) == 0 &&
	    strcmp(got.certno, "1A2B") == 0 && got.kind == HS_KIND_READER &&
	    !got.flagged && strcmp(got.factory, rd.factory) == 0 &&
	    got.created > 0, "reader_get");
	CHECK(reg_reader_get(reg, "RDR-NONE", &got) == ML_ERR_NOT_FOUND,
	    "missing reader");
	CHECK(reg_reader_flag(reg, "RDR-PG-1", true) == 0, "flag");
	CHECK(reg_reader_get(reg, "RDR-PG-1", &got) == 0 && got.flagged,
	    "flagged");
	CHECK(reg_reader_flag(reg, "RDR-NONE", true) == ML_ERR_NOT_FOUND,
	    "flag missing");
	snprintf(rd.serial, sizeof(rd.serial), "RDR-PG-2");
	r = reg_reader_put(reg, &rd);
	CHECK(r == ML_ERR_EXISTS, "certno of another serial: %d", r);
	CHECK(reg_event_add(reg, "RDR-PG-1", REG_EV_READ, "card 1") == 0,
	    "event_add");
	memset(evs, 0, sizeof(evs));
	for (i = 0; i < 3; i++) {
		snprintf(evs[i].serial, sizeof(evs[i].serial), "RDR-PG-1");
		evs[i].ev = i == 2 ? REG_EV_ERROR : REG_EV_READ;
	}
	CHECK(reg_event_add_many(reg, evs, 3) == 0, "event_add_many");
	CHECK(reg_event_count(reg, "RDR-PG-1", REG_EV_READ, &n) == 0 && n == 3,
	    "reads: %llu", (unsigned long long)n);
	CHECK(reg_event_count(reg, "RDR-PG-1", 0, &n) == 0 && n == 4,
	    "all events: %llu", (unsigned long long)n);
	printf("readers: mapping, flags and risk records ok\n");
	reg_close(reg);
	return failures ? 1 : 0;
}

struct audit_writer {
	struct reg	*reg;
	unsigned	 n;
	char		 actor[24];
	int		 errors;
};

static void *
audit_writer(void *p)
{
	struct audit_writer *w = p;
	struct reg_audit a;
	unsigned i;

	for (i = 0; i < w->n; i++) {
		memset(&a, 0, sizeof(a));
		snprintf(a.action, sizeof(a.action), "register");
		snprintf(a.actor, sizeof(a.actor), "%s", w->actor);
		snprintf(a.subject_kind, sizeof(a.subject_kind), "note");
		snprintf(a.subject, sizeof(a.subject), "AU%08u", i);
		snprintf(a.outcome, sizeof(a.outcome), "ok");
		if (reg_audit_append(w->reg, &a) != 0) {
			w->errors++;
		}
	}
	return NULL;
}

static int
count_row(void *ctx, const struct reg_audit *row)
{
	(void)row;
	(*(uint64_t *)ctx)++;
	return 0;
}

static int
cmd_audit(const char *url, unsigned n)
{
	struct audit_writer w[4];
	struct reg_audit_filter f;
	pthread_t t[4];
	struct reg *reg;
	uint64_t rows = 0, k = 0;
	int64_t bad = 0;
	pid_t pid;
	int i, st, r, child = 0;

	if ((pid = fork()) == 0) {
		child = 1;
	}
	reg = open_or_die(url);
	for (i = 0; i < 4; i++) {
		w[i].reg = reg;
		w[i].n = n;
		w[i].errors = 0;
		snprintf(w[i].actor, sizeof(w[i].actor), "STN-%d-%d", child, i);
		pthread_create(&t[i], NULL, audit_writer, &w[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		CHECK(w[i].errors == 0, "%s: %d appends failed", w[i].actor,
		    w[i].errors);
	}
	if (child) {
		reg_close(reg);
		_exit(failures ? 1 : 0);
	}
	CHECK(waitpid(pid, &st, 0) == pid && WIFEXITED(st) &&
	    WEXITSTATUS(st) == 0, "the other process failed");
	r = reg_audit_verify(reg, &rows, &bad);
	CHECK(r == 0 && rows == 8ULL * n, "verify: %s, %llu rows (want %u), "
	    "bad row %lld", ml_errmsg(r), (unsigned long long)rows, 8 * n,
	    (long long)bad);
	memset(&f, 0, sizeof(f));
	f.actor = "STN-1-2";
	CHECK(reg_audit_list(reg, &f, count_row, &k) == 0 && k == n,
	    "filter by actor: %llu", (unsigned long long)k);
	k = 0;
	memset(&f, 0, sizeof(f));
	f.subject_kind = "note";
	f.subject = "AU00000000";
	CHECK(reg_audit_list(reg, &f, count_row, &k) == 0 && k == 8,
	    "filter by note: %llu", (unsigned long long)k);
	printf("audit: 2 processes x 4 threads appended %llu rows, one chain, "
	    "verified\n", (unsigned long long)rows);
	reg_close(reg);
	return failures ? 1 : 0;
}

int
main(int argc, char **argv)
{
	if (argc >= 4 && strcmp(argv[1], "migrate") == 0) {
		return cmd_migrate(argv[2], atoi(argv[3]));
	}
	if (argc >= 4 && strcmp(argv[1], "race") == 0) {
		return cmd_race(argv[2], (unsigned)atoi(argv[3]));
	}
	if (argc >= 6 && strcmp(argv[1], "load") == 0) {
		return cmd_load(argv[2], argv[3], (unsigned)atoi(argv[4]),
		    (unsigned)atoi(argv[5]), argc > 6 ? (unsigned)atoi(argv[6]) :
		    4);
	}
	if (argc >= 4 && strcmp(argv[1], "verify") == 0) {
		return cmd_verify(argv[2], argc - 3, argv + 3);
	}
	if (argc >= 3 && strcmp(argv[1], "readers") == 0) {
		return cmd_readers(argv[2]);
	}
	if (argc >= 4 && strcmp(argv[1], "audit") == 0) {
		return cmd_audit(argv[2], (unsigned)atoi(argv[3]));
	}
	fprintf(stderr, "usage: test_pg_registry migrate|race|load|verify|"
	    "readers|audit URL ...\n");
	return 2;
}
