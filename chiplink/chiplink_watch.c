/*
 * Presence watching on a chip link (see chiplink_watch.h).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <time.h>

#include "chiplink_watch.h"
#include "ml_log.h"

struct chiplink_watch {
	struct chiplink	*link;
	pthread_t	 th;
	bool		 running;
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;		/* broadcast on every presence change */
	uint64_t	 changes;	/* under mu */
	atomic_bool	 stop;		/* the watcher thread ends */
	atomic_bool	 cancelled;	/* waits end */
};

static void *
watch_main(void *arg)
{
	struct chiplink_watch *w = arg;
	size_t slot;
	int r;

	while (!atomic_load(&w->stop)) {
		r = chiplink_wait(w->link, CHIPLINK_WATCH_RECHECK_MS, &slot);
		if (r == ML_ERR_TIMEOUT) {
			continue;
		}
		if (r != 0) {
			/* The service is away (pcscd restarting): waiters
			 * fall back to their periodic look. */
			struct timespec ts = { 0, CHIPLINK_WATCH_RECHECK_MS *
			    1000000L };

			nanosleep(&ts, NULL);
			continue;
		}
		pthread_mutex_lock(&w->mu);
		w->changes++;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
	}
	return NULL;
}

int
chiplink_watch_new(struct chiplink *l, struct chiplink_watch **ret)
{
	struct chiplink_watch *w;
	pthread_condattr_t ca;

	if (l == NULL || ret == NULL) {
		return ML_ERR_ARG;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		return ML_ERR_NOMEM;
	}
	w->link = l;
	pthread_mutex_init(&w->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&w->th, NULL, watch_main, w) != 0) {
		pthread_cond_destroy(&w->cv);
		pthread_mutex_destroy(&w->mu);
		free(w);
		return ML_ERR_NOMEM;
	}
	w->running = true;
	*ret = w;
	return 0;
}

void
chiplink_watch_free(struct chiplink_watch *w)
{
	if (w == NULL) {
		return;
	}
	atomic_store(&w->stop, true);
	if (w->running) {
		pthread_join(w->th, NULL);
	}
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void
chiplink_watch_cancel(struct chiplink_watch *w)
{
	if (w != NULL) {
		atomic_store(&w->cancelled, true);
	}
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Sleep until the next presence change or the recheck period. */
static void
watch_nap(struct chiplink_watch *w, uint64_t seen_changes)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_nsec += CHIPLINK_WATCH_RECHECK_MS * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&w->mu);
	while (w->changes == seen_changes && !atomic_load(&w->cancelled)) {
		if (pthread_cond_timedwait(&w->cv, &w->mu, &ts) != 0) {
			break;
		}
	}
	pthread_mutex_unlock(&w->mu);
}

/* want_arrival: a chip other than gen present; else: chip gen gone. */
static int
watch_for(struct chiplink_watch *w, size_t slot, uint64_t gen,
    bool want_arrival, int timeout_ms, struct chiplink_slot_info *ret)
{
	struct chiplink_slot_info si;
	int64_t deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : 0;
	uint64_t seen;
	int r;

	for (;;) {
		if (atomic_load(&w->cancelled)) {
			return ML_ERR_STATE;
		}
		pthread_mutex_lock(&w->mu);
		seen = w->changes;
		pthread_mutex_unlock(&w->mu);
		if ((r = chiplink_slot_info(w->link, slot, &si)) != 0) {
			return r;
		}
		if (want_arrival && si.present && si.generation != gen) {
			if (ret != NULL) {
				*ret = si;
			}
			return 0;
		}
		if (!want_arrival && (!si.present || si.generation != gen)) {
			return 0;
		}
		if (timeout_ms >= 0 && now_ms() >= deadline) {
			return ML_ERR_TIMEOUT;
		}
		watch_nap(w, seen);
	}
}

int
chiplink_watch_arrival(struct chiplink_watch *w, size_t slot, uint64_t seen,
    int timeout_ms, struct chiplink_slot_info *ret)
{
	if (w == NULL || ret == NULL) {
		return ML_ERR_ARG;
	}
	return watch_for(w, slot, seen, true, timeout_ms, ret);
}

int
chiplink_watch_removal(struct chiplink_watch *w, size_t slot, uint64_t gen,
    int timeout_ms)
{
	if (w == NULL) {
		return ML_ERR_ARG;
	}
	return watch_for(w, slot, gen, false, timeout_ms, NULL);
}
