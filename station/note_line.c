/*
 * A mint line (see note_line.h).
 */
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "chiplink_watch.h"
#include "ml_log.h"
#include "note_line.h"

#define FOLLOW_NAP_MS	200	/* follow mode: look for new images this often */
/* Follow mode on PC/SC: readers plugged in while the line runs. */
#define FOLLOW_MAX_ADDED	32
#define FOLLOW_RESCAN_MS	1000

static volatile sig_atomic_t nl_stop, nl_sig;

void
note_line_stop(void)
{
	nl_stop = 1;
}

bool
note_line_stopping(void)
{
	return nl_stop != 0;
}

static void
on_signal(int sig)
{
	nl_sig = sig;
	nl_stop = 1;
}

int
note_line_stop_signal(void)
{
	return nl_sig;
}

void
note_line_stop_on_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigemptyset(&sa.sa_mask);
	(void)sigaction(SIGINT, &sa, NULL);
	(void)sigaction(SIGTERM, &sa, NULL);
}

const char *
note_line_state_name(enum note_line_state st)
{
	switch (st) {
	case NL_WAITING: return "waiting";
	case NL_WORKING: return "working";
	case NL_DONE: return "done";
	case NL_RESULT: return "result";
	case NL_GONE: return "gone";
	}
	return "?";
}

struct line {
	const struct note_line_cfg *cfg;
	struct chiplink		*link;
	bool			 inproc;
	struct chiplink_watch	*watch;		/* follow mode */
	struct chiplink		*xlink[FOLLOW_MAX_ADDED];	/* readers added */
	struct chiplink_watch	*xwatch[FOLLOW_MAX_ADDED];
	size_t			 nx;
	const char		*dir;		/* follow + inproc: images */
	char			**images;
	char			**seen;		/* follow: names fed, sorted */
	size_t			 nimages, next, fed, nseen, seencap, cap;
	struct timespec		 listed;	/* follow: the last listing */
	pthread_mutex_t		 mu;
	int			 err;
	/* err's context from the worker that met it (thread-local there) */
	char			 errctx[ML_ERRCTX_MAX];
	bool			 stop;
};

struct worker {
	struct line		*ln;
	size_t			 idx;	/* the position: the job's worker index */
	struct chiplink		*link;	/* the link and slot of the position */
	struct chiplink_watch	*watch;
	size_t			 slot;
	char			 name[CHIPLINK_NAME_MAX];
};


static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool
seen_has(struct line *ln, const char *name)
{
	return ln->nseen > 0 && bsearch(&name, ln->seen, ln->nseen,
	    sizeof(char *), cmp_str) != NULL;
}

/* Follow mode: remember the names of the images listed since ln->next. */
static int
seen_add(struct line *ln)
{
	size_t i;
	const char *base;

	for (i = ln->next; i < ln->nimages; i++) {
		if (ln->nseen == ln->seencap) {
			char **ns;

			ln->seencap = ln->seencap ? ln->seencap * 2 : 256;
			if ((ns = reallocarray(ln->seen, ln->seencap,
			    sizeof(*ns))) == NULL) {
				return ML_ERR_NOMEM;
			}
			ln->seen = ns;
		}
		base = strrchr(ln->images[i], '/');
		if ((ln->seen[ln->nseen] = strdup(base ? base + 1 :
		    ln->images[i])) == NULL) {
			return ML_ERR_NOMEM;
		}
		ln->nseen++;
	}
	qsort(ln->seen, ln->nseen, sizeof(char *), cmp_str);
	return 0;
}

static int
list_images(struct line *ln, const char *path)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	size_t n;

	if (stat(path, &st) != 0) {
		return ml_errf_sys(ML_ERR_IO, "chips %s", path);
	}
	if (!S_ISDIR(st.st_mode)) {
		if ((ln->images = calloc(1, sizeof(char *))) == NULL ||
		    (ln->images[0] = strdup(path)) == NULL) {
			return ML_ERR_NOMEM;
		}
		ln->nimages = 1;
		return 0;
	}
	if ((d = opendir(path)) == NULL) {
		return ml_errf_sys(ML_ERR_IO, "chips %s", path);
	}
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (n < 6 || strcmp(de->d_name + n - 5, ".chip") != 0) {
			continue;
		}
		if (ln->dir != NULL && seen_has(ln, de->d_name)) {
			continue;	/* follow: fed before */
		}
		if (ln->nimages == ln->cap) {
			char **ni;

			ln->cap = ln->cap ? ln->cap * 2 : 256;
			if ((ni = reallocarray(ln->images, ln->cap,
			    sizeof(*ni))) == NULL) {
				closedir(d);
				return ML_ERR_NOMEM;
			}
			ln->images = ni;
		}
		if (asprintf(&ln->images[ln->nimages], "%s/%s", path,
		    de->d_name) < 0) {
			closedir(d);
			return ML_ERR_NOMEM;
		}
		ln->nimages++;
	}
	closedir(d);
	qsort(ln->images + ln->next, ln->nimages - ln->next, sizeof(char *),
	    cmp_str);
	return ln->dir != NULL ? seen_add(ln) : 0;
}

/*
 * The feeder: the next image for a free position, or NULL.  In follow
 * mode it waits for new images in the directory until the line stops.
 */
static const char *
feed_next(struct line *ln)
{
	const struct timespec nap = { 0, FOLLOW_NAP_MS * 1000000L };
	const char *img = NULL;
	int r;

	for (;;) {
		struct timespec now;

		pthread_mutex_lock(&ln->mu);
		if (ln->stop || nl_stop) {
			pthread_mutex_unlock(&ln->mu);
			return NULL;
		}
		/* Out of images: look at the directory again, once per nap
		 * for the whole line, not once per waiting position (256
		 * idle positions listed it 1,280 times a second, on the CPU
		 * the working ones needed). */
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (ln->next == ln->nimages && ln->dir != NULL &&
		    (now.tv_sec - ln->listed.tv_sec) * 1000 +
		    (now.tv_nsec - ln->listed.tv_nsec) / 1000000 >=
		    FOLLOW_NAP_MS) {
			ln->listed = now;
			if ((r = list_images(ln, ln->dir)) != 0) {
				ml_warn("%s: %s", ln->dir, ml_errmsg(r));
			}
		}
		if (ln->next < ln->nimages) {
			img = ln->images[ln->next++];
			ln->fed++;
		}
		pthread_mutex_unlock(&ln->mu);
		if (img != NULL || ln->dir == NULL) {
			return img;
		}
		nanosleep(&nap, NULL);
	}
}

static void
emit(struct line *ln, size_t pos, enum note_line_state st, const char *name)
{
	struct note_line_event ev = { .position = pos, .name = name,
	    .state = st };

	if (ln->cfg->event != NULL) {
		ln->cfg->event(ln->cfg->ctx, &ev);
	}
}

/*
 * Follow mode on a position (any transport): wait for a chip, run the job
 * on it once, wait for it to be taken off, again, until the line stops.
 */
static int
follow_position(struct line *ln, const struct worker *w)
{
	const struct note_line_cfg *cfg = ln->cfg;
	size_t idx = w->idx;
	struct chiplink_slot_info si;
	struct chipcmd cc;
	uint64_t last = 0;
	bool waiting = false, gone = false;
	int r;

	while (!nl_stop && !ln->stop) {
		r = chiplink_watch_arrival(w->watch, w->slot, last,
		    CHIPLINK_WATCH_RECHECK_MS, &si);
		if (r == ML_ERR_TIMEOUT) {
			if (!waiting) {
				emit(ln, idx, NL_WAITING,
				    chiplink_slot_info(w->link, w->slot, &si) == 0 ?
				    si.name : NULL);
				waiting = true;
			}
			continue;
		}
		if (r != 0) {
			/* The reader went away: report once, keep looking. */
			if (!gone) {
				emit(ln, idx, NL_GONE, NULL);
				gone = true;
			}
			usleep(CHIPLINK_WATCH_RECHECK_MS * 1000);
			continue;
		}
		gone = waiting = false;
		last = si.generation;
		emit(ln, idx, NL_WORKING, si.name);
		pthread_mutex_lock(&ln->mu);
		ln->fed++;
		pthread_mutex_unlock(&ln->mu);
		if ((r = chipcmd_begin(&cc, w->link, w->slot)) == 0) {
			r = cfg->job(cfg->ctx, idx, &cc, NULL);
		} else if (r != ML_ERR_REMOVED) {
			ml_warn("%s: no answer from the chip (%s)", si.name,
			    ml_errmsg(r));
		}
		if (r < 0 && r != ML_ERR_REMOVED && r != ML_ERR_NOT_FOUND &&
		    r != ML_ERR_IO) {
			return r;
		}
		emit(ln, idx, NL_DONE, si.name);
		while (!nl_stop && !ln->stop &&
		    chiplink_watch_removal(w->watch, w->slot, last,
		    CHIPLINK_WATCH_RECHECK_MS) == ML_ERR_TIMEOUT) {
		}
	}
	return 0;
}

static void
fail(struct line *ln, int r)
{
	pthread_mutex_lock(&ln->mu);
	if (ln->err == 0) {
		ln->err = r;
		if (ml_errctx_has(r)) {
			snprintf(ln->errctx, sizeof(ln->errctx), "%s",
			    ml_errmsg(r));
		}
	}
	ln->stop = true;
	pthread_mutex_unlock(&ln->mu);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct line *ln = w->ln;
	const struct note_line_cfg *cfg = ln->cfg;
	struct chipcmd cc;
	const char *img;
	int r;

	if (cfg->start != NULL && (r = cfg->start(cfg->ctx, w->idx)) != 0) {
		fail(ln, r);
		return NULL;
	}
	if (w->watch != NULL) {
		if ((r = follow_position(ln, w)) != 0) {
			fail(ln, r);
		}
		goto out;
	}
	if (!ln->inproc) {
		if ((r = chipcmd_begin(&cc, ln->link, w->idx)) == 0) {
			pthread_mutex_lock(&ln->mu);
			ln->fed++;	/* a chip the job ran on */
			pthread_mutex_unlock(&ln->mu);
			r = cfg->job(cfg->ctx, w->idx, &cc, NULL);
		}
		if (r < 0 && r != ML_ERR_REMOVED) {
			fail(ln, r);
		}
		goto out;
	}
	while ((img = feed_next(ln)) != NULL) {
		emit(ln, w->idx, NL_WORKING, img);
		if ((r = chiplink_inproc_feed(ln->link, w->idx, img)) != 0) {
			fail(ln, r);
			break;
		}
		r = chipcmd_begin(&cc, ln->link, w->idx);
		if (r == 0) {
			r = cfg->job(cfg->ctx, w->idx, &cc, img);
		} else {
			ml_warn("%s: no answer from the chip (%s)", img,
			    ml_errmsg(r));
			r = 0;
		}
		if (chiplink_inproc_feed(ln->link, w->idx, NULL) != 0) {
			ml_warn("position %zu: chip not taken out", w->idx);
		}
		emit(ln, w->idx, NL_DONE, img);
		if (r == 1 && cfg->follow) {
			continue;	/* nothing for this chip; the line goes on */
		}
		if (r == 1) {
			break;
		}
		if (r < 0) {
			fail(ln, r);
			break;
		}
	}
out:
	if (cfg->stop != NULL) {
		(void)cfg->stop(cfg->ctx, w->idx);
	}
	return NULL;
}

int
note_line_positions(const char *spec, size_t *ret_n)
{
	struct chiplink *l = NULL;
	int r;

	if ((r = chiplink_open(spec, &l)) != 0) {
		return r;
	}
	*ret_n = chiplink_nslots(l);
	chiplink_close(l);
	return 0;
}

/* A position name already has a worker (plugged in before, or gone). */
static bool
known_reader(const struct worker *ws, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(ws[i].name, name) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * Follow mode on PC/SC: look for readers plugged in since the line
 * started and give each its own link (one reader), watch and worker.  A
 * reader unplugged keeps its worker, which reports it gone and picks it
 * up again when it comes back under the same name.
 */
static void
add_readers(struct line *ln, struct worker *ws, pthread_t *th, size_t *n,
    size_t cap)
{
	struct chiplink_slot_info si;
	struct chiplink *all = NULL, *one = NULL;
	struct chiplink_watch *wa = NULL;
	char spec[CHIPLINK_NAME_MAX + 8];
	size_t j, k;

	if (chiplink_open(ln->cfg->link_spec, &all) != 0) {
		return;		/* no reader at all right now */
	}
	for (j = 0; j < chiplink_nslots(all) && *n < cap &&
	    ln->nx < FOLLOW_MAX_ADDED; j++) {
		if (chiplink_slot_info(all, j, &si) != 0 ||
		    known_reader(ws, *n, si.name)) {
			continue;
		}
		snprintf(spec, sizeof(spec), "pcsc:%s", si.name);
		if (chiplink_open(spec, &one) != 0) {
			continue;
		}
		for (k = 0; k < chiplink_nslots(one); k++) {
			struct chiplink_slot_info s2;

			if (chiplink_slot_info(one, k, &s2) == 0 &&
			    strcmp(s2.name, si.name) == 0) {
				break;
			}
		}
		if (k == chiplink_nslots(one) ||
		    chiplink_watch_new(one, &wa) != 0) {
			chiplink_close(one);
			continue;
		}
		ws[*n] = (struct worker){ .ln = ln, .idx = *n, .link = one,
		    .watch = wa, .slot = k };
		snprintf(ws[*n].name, sizeof(ws[*n].name), "%s", si.name);
		ml_info("reader plugged in: %s (position %zu)", si.name, *n);
		if (pthread_create(&th[*n], NULL, worker_main, &ws[*n]) != 0) {
			chiplink_watch_free(wa);
			chiplink_close(one);
			break;
		}
		ln->xlink[ln->nx] = one;
		ln->xwatch[ln->nx++] = wa;
		(*n)++;
	}
	chiplink_close(all);
}

int
note_line_run(const struct note_line_cfg *cfg, size_t *ret_chips)
{
	struct line ln = { .cfg = cfg };
	struct worker *ws = NULL;
	pthread_t *th = NULL;
	size_t i, n, cap, started = 0;
	bool hotplug;
	int r;

	pthread_mutex_init(&ln.mu, NULL);
	if ((r = chiplink_open(cfg->link_spec, &ln.link)) != 0) {
		ml_err("%s", ml_errmsg(r));
		goto out;
	}
	ln.inproc = strncmp(cfg->link_spec, "inproc:", 7) == 0;
	n = chiplink_nslots(ln.link);
	if (cfg->workers != 0 && cfg->workers < n) {
		n = cfg->workers;
	}
	ML_ENSURE(n > 0, ML_ERR_ARG);
	if (ln.inproc && cfg->chips != NULL) {
		struct stat st;

		if (cfg->follow && stat(cfg->chips, &st) == 0 &&
		    S_ISDIR(st.st_mode)) {
			ln.dir = cfg->chips;	/* watched for new images */
		}
		ML_TRY(list_images(&ln, cfg->chips));
	} else if (ln.inproc && !cfg->follow) {
		ml_err("%s: --chips is needed without --follow", cfg->link_spec);
		r = ML_ERR_ARG;
		goto out;
	}
	if (cfg->follow && (!ln.inproc || cfg->chips == NULL)) {
		/* chips come and go at the positions by themselves */
		ln.inproc = false;
		ML_TRY(chiplink_watch_new(ln.link, &ln.watch));
	}
	hotplug = cfg->follow && !ln.inproc;
	cap = hotplug ? (cfg->workers != 0 ? cfg->workers : n) : n;
	if (cap < n) {
		cap = n;
	}
	ML_ENSURE((ws = calloc(cap, sizeof(*ws))) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((th = calloc(cap, sizeof(*th))) != NULL, ML_ERR_NOMEM);
	for (i = 0; i < n; i++) {
		struct chiplink_slot_info si;

		ws[i] = (struct worker){ .ln = &ln, .idx = i, .link = ln.link,
		    .watch = ln.watch, .slot = i };
		if (chiplink_slot_info(ln.link, i, &si) == 0) {
			snprintf(ws[i].name, sizeof(ws[i].name), "%s", si.name);
		}
		if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
			fail(&ln, ML_ERR_NOMEM);
			break;
		}
		started++;
	}
	/* PC/SC follow mode: the main thread looks for new readers. */
	while (hotplug && started == n && !nl_stop && !ln.stop) {
		const struct timespec nap = { 0, 100 * 1000000L };

		for (i = 0; i < FOLLOW_RESCAN_MS / 100 && !nl_stop && !ln.stop;
		    i++) {
			nanosleep(&nap, NULL);
		}
		if (!nl_stop && !ln.stop) {
			add_readers(&ln, ws, th, &started, cap);
			n = started;
		}
	}
	for (i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
	}
	r = ln.err;
	if (r != 0 && ln.errctx[0] != '\0') {
		(void)ml_errf(r, "%s", ln.errctx);	/* to this thread */
	}
	if (ret_chips != NULL) {
		*ret_chips = ln.fed;
	}
out:
	chiplink_watch_free(ln.watch);
	for (i = 0; i < ln.nx; i++) {
		chiplink_watch_free(ln.xwatch[i]);
		chiplink_close(ln.xlink[i]);
	}
	for (i = 0; i < ln.nimages; i++) {
		free(ln.images[i]);
	}
	free(ln.images);
	for (i = 0; i < ln.nseen; i++) {
		free(ln.seen[i]);
	}
	free(ln.seen);
	free(ws);
	free(th);
	chiplink_close(ln.link);
	pthread_mutex_destroy(&ln.mu);
	return r;
}
