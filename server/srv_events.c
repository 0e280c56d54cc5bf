/*
 * Risk records written off the hot path (ID-3): workers post events into
 * a bounded queue; one thread writes them in batches, one transaction
 * (one fsync) per batch.  When the queue is full, events are dropped and
 * counted, so a flood of forged messages cannot turn into a flood of
 * synchronous disk writes.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ml_log.h"
#include "srv.h"

#define EV_QUEUE	4096
#define EV_BATCH	512
#define EV_PERIOD_MS	200

struct srv_events {
	struct reg		*reg;
	pthread_mutex_t		 mu;
	pthread_cond_t		 cv;
	pthread_t		 th;
	bool			 stop;
	size_t			 head, n;
	uint64_t		 dropped;
	uint64_t		 lost;		/* writes failing: since when */
	struct reg_event_rec	 q[EV_QUEUE];
	struct reg_event_rec	 batch[EV_BATCH];
};

static void *
writer(void *arg)
{
	struct srv_events *e = arg;
	struct timespec ts;
	size_t k, i;
	bool stop;
	int r;

	for (;;) {
		pthread_mutex_lock(&e->mu);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += EV_PERIOD_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		while (!e->stop && e->n < EV_BATCH / 2) {
			if (pthread_cond_timedwait(&e->cv, &e->mu, &ts) != 0) {
				break;
			}
		}
		k = e->n < EV_BATCH ? e->n : EV_BATCH;
		for (i = 0; i < k; i++) {
			e->batch[i] = e->q[(e->head + i) % EV_QUEUE];
		}
		e->head = (e->head + k) % EV_QUEUE;
		e->n -= k;
		stop = e->stop && e->n == 0;
		pthread_mutex_unlock(&e->mu);
		/*
		 * A registry that keeps failing (a full disk) is logged once
		 * when it starts and once when it ends, not per batch.
		 */
		if (k > 0 && (r = reg_event_add_many(e->reg, e->batch, k)) != 0) {
			if (e->lost == 0) {
				ml_warn("registry: risk records lost: %s; "
				    "counting until writes succeed again",
				    ml_strerror(r));
			}
			e->lost += k;
		} else if (k > 0 && e->lost != 0) {
			ml_log(ML_LOG_WARN, "registry: risk records written "
			    "again; %llu lost", (unsigned long long)e->lost);
			e->lost = 0;
		}
		if (stop) {
			return NULL;
		}
	}
}

int
srv_events_start(struct reg *reg, struct srv_events **ret)
{
	struct srv_events *e;

	if ((e = calloc(1, sizeof(*e))) == NULL) {
		return ML_ERR_NOMEM;
	}
	e->reg = reg;
	pthread_mutex_init(&e->mu, NULL);
	pthread_cond_init(&e->cv, NULL);
	if (pthread_create(&e->th, NULL, writer, e) != 0) {
		free(e);
		return ML_ERR_INTERNAL;
	}
	*ret = e;
	return 0;
}

void
srv_events_post(struct srv_events *e, const char *serial, enum reg_event ev,
    const char *detail)
{
	struct reg_event_rec *rec;

	if (e == NULL) {
		return;
	}
	pthread_mutex_lock(&e->mu);
	if (e->n == EV_QUEUE) {
		e->dropped++;
	} else {
		rec = &e->q[(e->head + e->n) % EV_QUEUE];
		snprintf(rec->serial, sizeof(rec->serial), "%s", serial);
		rec->ev = ev;
		snprintf(rec->detail, sizeof(rec->detail), "%s", detail);
		rec->at = (int64_t)time(NULL);
		e->n++;
		if (e->n >= EV_BATCH / 2) {
			pthread_cond_signal(&e->cv);
		}
	}
	pthread_mutex_unlock(&e->mu);
}

uint64_t
srv_events_dropped(struct srv_events *e)
{
	uint64_t d;

	if (e == NULL) {
		return 0;
	}
	pthread_mutex_lock(&e->mu);
	d = e->dropped;
	pthread_mutex_unlock(&e->mu);
	return d;
}

void
srv_events_stop(struct srv_events *e)
{
	if (e == NULL) {
		return;
	}
	pthread_mutex_lock(&e->mu);
	e->stop = true;
	pthread_cond_signal(&e->cv);
	pthread_mutex_unlock(&e->mu);
	pthread_join(e->th, NULL);
	if (e->dropped != 0) {
		ml_warn("registry: %llu risk records dropped (queue full)",
		    (unsigned long long)e->dropped);
	}
	pthread_mutex_destroy(&e->mu);
	pthread_cond_destroy(&e->cv);
	free(e);
}
