/* A fixed worker pool: one queue, a mutex and a condition variable. */
#include <pthread.h>
#include <stdlib.h>

#include "srv.h"

struct srv_pool {
	pthread_mutex_t	 mu;
	pthread_cond_t	 cv;
	struct srv_job	*head, *tail;
	bool		 stop;
	int		 n;
	pthread_t	 th[64];
};

static void *
worker(void *arg)
{
	struct srv_pool *p = arg;
	struct srv_job *j;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (p->head == NULL && !p->stop) {
			pthread_cond_wait(&p->cv, &p->mu);
		}
		if (p->head == NULL) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		j = p->head;
		p->head = j->next;
		if (p->head == NULL) {
			p->tail = NULL;
		}
		pthread_mutex_unlock(&p->mu);
		j->next = NULL;
		j->fn(j);
	}
}

int
srv_pool_new(int nthreads, struct srv_pool **ret)
{
	struct srv_pool *p;
	int i;

	if (nthreads < 1 || nthreads > 64) {
		return ML_ERR_ARG;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		return ML_ERR_NOMEM;
	}
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	for (i = 0; i < nthreads; i++) {
		if (pthread_create(&p->th[i], NULL, worker, p) != 0) {
			break;
		}
		p->n++;
	}
	if (p->n == 0) {
		free(p);
		return ML_ERR_INTERNAL;
	}
	*ret = p;
	return 0;
}

void
srv_pool_submit(struct srv_pool *p, struct srv_job *job, srv_job_fn fn)
{
	job->fn = fn;
	job->next = NULL;
	pthread_mutex_lock(&p->mu);
	if (p->tail != NULL) {
		p->tail->next = job;
	} else {
		p->head = job;
	}
	p->tail = job;
	pthread_mutex_unlock(&p->mu);
	/*
	 * Signalled after the unlock: a worker woken while the submitter
	 * still held the mutex went straight back to sleep on it (two more
	 * futex calls per job, BN-2).  No wake-up is lost: a worker checks
	 * the queue under the mutex before it waits.
	 */
	pthread_cond_signal(&p->cv);
}

void
srv_pool_free(struct srv_pool *p)
{
	int i;

	if (p == NULL) {
		return;
	}
	pthread_mutex_lock(&p->mu);
	p->stop = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->n; i++) {
		pthread_join(p->th[i], NULL);
	}
	pthread_mutex_destroy(&p->mu);
	pthread_cond_destroy(&p->cv);
	free(p);
}
