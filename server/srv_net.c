/*
 * The I/O thread: one epoll loop over the listening socket, every
 * connection (non-blocking), an eventfd on which workers report finished
 * jobs, and a signalfd (SIGINT/SIGTERM stop, SIGUSR1 logs the counters).
 *
 * A connection has at most one job in flight: when a whole frame has
 * arrived, the I/O thread stops reading it, hands the frame to a worker
 * (crypto, HSM and registry calls never run here), and resumes when the
 * worker's output comes back.  Every wait for input has a deadline
 * (--read-timeout during the handshake, --idle-timeout after it).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ml_log.h"
#include "ml_parse.h"
#include "ml_wipe.h"
#include "srv.h"

#define TAG_LISTEN	((void *)1)
#define TAG_EVENT	((void *)2)
#define TAG_SIGNAL	((void *)3)
#define TAG_METRICS	((void *)4)
#define TAG_MONITOR	((void *)5)
#define TICK_MS		100

#define ADDR_BUCKETS		4096	/* per-address unauthenticated counts */
#define METRICS_MAX_CONNS	8	/* concurrent scrapes */
#define METRICS_MAX_REQ		1024	/* request line + headers */
#define METRICS_TIMEOUT_MS	3000
#define DRAIN_IDLE_MS		1000	/* SIGTERM: an idle channel is closed
					 * after this long without a record */
#define BUSY_LOG_MS		10000	/* at most one BUSY summary line per */
#define BUSY_NREASONS		3	/* max-conns, max-unauth, per address */

/* Source address key: family byte + up to 16 address bytes. */
#define AKEY_LEN	17
struct addr_ent {
	struct addr_ent	*next;
	uint8_t		 key[AKEY_LEN];
	int		 n;		/* unauthenticated connections */
};

/* A /metrics scrape (plain HTTP/1.0, one request per connection). */
struct mconn {
	int		 fd;		/* -1: free slot */
	size_t		 len;
	uint64_t	 deadline_ms;
	char		 req[METRICS_MAX_REQ];
	struct ml_wr	 out;
	size_t		 off;
};

struct conn {
	struct conn	*prev, *next;
	int		 fd;
	uint64_t	 id;
	uint64_t	 deadline_ms;
	uint8_t		*rbuf;
	size_t		 rlen, rcap;
	struct ml_wr	 wbuf;
	size_t		 woff;
	bool		 busy;		/* a job is in flight */
	bool		 closing;	/* close once wbuf is flushed */
	bool		 draining;	/* FIN sent; discard input until EOF */
	bool		 unauth;	/* counted in the unauthenticated limits */
	uint8_t		 akey[AKEY_LEN];
	uint64_t	 last_ms;	/* last input or output (SIGTERM drain) */
	uint32_t	 events;	/* epoll interest wanted */
	uint32_t	 armed;		/* interest armed in the kernel: 0 once
					 * an event was reported (EPOLLONESHOT) */
	bool		 dead;		/* closed during an epoll batch: freed
					 * after it (conn_free) */
	struct conn	*dead_next;
	struct srv_sess	*ss;
};

struct net;

struct conn_job {
	struct srv_job	 hdr;
	struct srv	*srv;
	struct net	*net;		/* where to post the result */
	struct conn	*c;
	uint8_t		*body;
	size_t		 len;
	struct ml_wr	 out;
	int		 close;
	struct conn_job	*done_next;
};

struct net {
#ifdef ML_TEST_HOOKS
	unsigned	 test_wake_delay_us;	/* see worker_run */
#endif
	struct conn	*dead;		/* closed in this epoll batch */
	bool		 batching;	/* inside an epoll batch */
	struct srv	*srv;
	int		 ep;
	struct conn	*conns;
	int		 nconns;
	uint64_t	 next_id;
	pthread_mutex_t	 done_mu;
	struct conn_job	*done;
	struct addr_ent	*addr_tab[ADDR_BUCKETS];
	int		 nunauth;
	struct mconn	 mc[METRICS_MAX_CONNS];
	bool		 shutting;	/* SIGTERM or monitor lost: draining */
	uint64_t	 drain_deadline_ms;
	/* BUSY refusals not yet logged (busy_log), by limit */
	unsigned long long busy_pending[BUSY_NREASONS];
	uint64_t	 busy_next_log_ms;
	struct sockaddr_storage busy_last;	/* the latest one's source */
	socklen_t	 busy_last_len;
};

static uint32_t
akey_hash(const uint8_t key[AKEY_LEN])
{
	uint32_t h = 2166136261u;
	size_t i;

	for (i = 0; i < AKEY_LEN; i++) {
		h = (h ^ key[i]) * 16777619u;
	}
	return h % ADDR_BUCKETS;
}

static struct addr_ent **
addr_slot(struct net *n, const uint8_t key[AKEY_LEN])
{
	struct addr_ent **pp = &n->addr_tab[akey_hash(key)];

	while (*pp != NULL && memcmp((*pp)->key, key, AKEY_LEN) != 0) {
		pp = &(*pp)->next;
	}
	return pp;
}

static int
addr_count(struct net *n, const uint8_t key[AKEY_LEN])
{
	struct addr_ent **pp = addr_slot(n, key);

	return *pp != NULL ? (*pp)->n : 0;
}

/* Count c as unauthenticated (its address and in total). */
static bool
unauth_take(struct net *n, struct conn *c)
{
	struct addr_ent **pp = addr_slot(n, c->akey), *e = *pp;

	if (e == NULL) {
		if ((e = calloc(1, sizeof(*e))) == NULL) {
			return false;
		}
		memcpy(e->key, c->akey, AKEY_LEN);
		*pp = e;
	}
	e->n++;
	c->unauth = true;
	n->nunauth++;
	atomic_store(&n->srv->m.conns_unauth, n->nunauth);
	return true;
}

/* c authenticated or closed: release its unauthenticated slot. */
static void
unauth_release(struct net *n, struct conn *c)
{
	struct addr_ent **pp, *e;

	if (!c->unauth) {
		return;
	}
	c->unauth = false;
	n->nunauth--;
	atomic_store(&n->srv->m.conns_unauth, n->nunauth);
	pp = addr_slot(n, c->akey);
	if ((e = *pp) != NULL && --e->n <= 0) {
		*pp = e->next;
		free(e);
	}
}

static void
sockaddr_key(const struct sockaddr_storage *sa, uint8_t key[AKEY_LEN])
{
	memset(key, 0, AKEY_LEN);
	key[0] = (uint8_t)sa->ss_family;
	if (sa->ss_family == AF_INET) {
		memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
	} else if (sa->ss_family == AF_INET6) {
		const struct in6_addr *a =
		    &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {	/* same host, same count */
			key[0] = AF_INET;
			memcpy(key + 1, a->s6_addr + 12, 4);
		} else {
			memcpy(key + 1, a->s6_addr, 16);
		}
	}
}

/*
 * A connection is registered EPOLLONESHOT: an event reported for it
 * disarms it (c->armed = 0), so the usual round of a request, "stop
 * reading while a job holds c" and "read again once it is back", costs
 * one epoll_ctl (the re-arm) instead of two (BN-2: host work per
 * handshake).  c->events is what the code wants; set_interest arms it
 * when it differs from what is armed, and run_loop re-arms what is
 * wanted after each event, so a path that leaves the interest as it was
 * finds it as it was.  A wanted 0 stays registered as EPOLLONESHOT alone:
 * a hang-up while a job holds c is then reported once, not in a loop.
 */
static void
set_interest(struct net *n, struct conn *c, uint32_t ev)
{
	struct epoll_event e = { .events = ev | EPOLLONESHOT, .data.ptr = c };

	c->events = ev;
	if (ev != c->armed) {
		(void)epoll_ctl(n->ep, EPOLL_CTL_MOD, c->fd, &e);
		c->armed = ev;
	}
}

static void
conn_destroy(struct conn *c)
{
	srv_sess_free(c->ss);
	ml_freezero(c->rbuf, c->rcap);
	ml_wr_free(&c->wbuf);
	free(c);
}

/*
 * Close c.  Inside an epoll batch the memory stays until the batch ends
 * (conn_reap): a later event of the same batch may name c (a job that
 * finished closes a connection whose input is also in the batch), and
 * must find it marked dead, not freed.
 */
static void
conn_free(struct net *n, struct conn *c)
{
	(void)epoll_ctl(n->ep, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	c->fd = -1;
	if (c->prev != NULL) {
		c->prev->next = c->next;
	} else {
		n->conns = c->next;
	}
	if (c->next != NULL) {
		c->next->prev = c->prev;
	}
	n->nconns--;
	atomic_store(&n->srv->m.conns_open, n->nconns);
	unauth_release(n, c);
	if (n->batching) {
		c->dead = true;
		c->dead_next = n->dead;
		n->dead = c;
		return;
	}
	conn_destroy(c);
}

/* The end of an epoll batch: free the connections closed during it. */
static void
conn_reap(struct net *n)
{
	struct conn *c;

	n->batching = false;
	while ((c = n->dead) != NULL) {
		n->dead = c->dead_next;
		conn_destroy(c);
	}
}

/*
 * A worker runs the job, then hands it back: once j is on n->done it
 * belongs to the I/O thread, which may take it (woken by another worker's
 * job) and free it before this thread has written to the eventfd.  So
 * everything the hand-back needs is read before, and j is not touched
 * after the unlock (ID-5: a flood must not crash the server).
 *
 * Only the worker that finds n->done empty wakes the I/O thread: one
 * eventfd write per batch of finished jobs, not one per job (BN-2).  The
 * others' jobs join a list whose wake-up is already owed: jobs_done reads
 * the eventfd before it takes the list, so a job pushed after the list
 * was taken finds it empty again and writes its own wake-up.
 */
static void
worker_run(struct srv_job *job)
{
	struct conn_job *j = (struct conn_job *)job;
	struct net *n = j->net;
	int efd = j->srv->done_efd;
	uint64_t one = 1;
	bool wake;

	j->close = srv_sess_input(j->c->ss, j->body, j->len, &j->out);
	pthread_mutex_lock(&n->done_mu);
	wake = n->done == NULL;
	j->done_next = n->done;
	n->done = j;
	pthread_mutex_unlock(&n->done_mu);
	if (!wake) {
		return;
	}
#ifdef ML_TEST_HOOKS
	if (n->test_wake_delay_us > 0) {
		usleep(n->test_wake_delay_us);
	}
#endif
	(void)!write(efd, &one, sizeof(one));
}

/* Flush as much of wbuf as the socket takes; false if the peer is gone. */
static bool
conn_flush(struct conn *c)
{
	ssize_t k;

	while (c->woff < c->wbuf.len) {
		k = send(c->fd, c->wbuf.p + c->woff, c->wbuf.len - c->woff,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k < 0 && errno == EINTR) {
			continue;
		}
		if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			return true;
		}
		if (k <= 0) {
			return false;
		}
		c->woff += (size_t)k;
	}
	ml_wr_clear(&c->wbuf);
	c->woff = 0;
	return true;
}

/*
 * After the last frame (an ALERT, a CLOSE) has been flushed: send FIN and
 * discard what the peer still sends for up to a second, so that closing
 * with unread input (a pipelined record) does not turn into a RST that
 * destroys the ALERT in the peer's receive queue.
 */
static void
conn_drain(struct net *n, struct conn *c)
{
	(void)shutdown(c->fd, SHUT_WR);
	c->draining = true;
	c->deadline_ms = hs_now_ms() + 1000;
	set_interest(n, c, EPOLLIN);
}

static uint64_t
wait_deadline(const struct srv *s, const struct conn *c)
{
	return hs_now_ms() + (uint64_t)(srv_sess_established(c->ss) ?
	    s->o.idle_timeout_ms : s->o.read_timeout_ms);
}

/*
 * If a whole frame is buffered, hand it to a worker.  Returns false when
 * the connection must be closed (oversized frame).
 */
static bool
conn_dispatch(struct net *n, struct conn *c)
{
	struct ml_rd rd = ML_RD_INIT(c->rbuf, c->rlen), body;
	struct conn_job *j;
	uint8_t alert[2] = { HS_ALERT, HS_ALERT_FORMAT };
	int r;

	if (c->busy || c->closing) {
		return true;
	}
	r = hs_frame_next(&rd, srv_sess_max_frame(c->ss), &body);
	if (r == ML_ERR_SHORT) {
		return true;
	}
	if (r != 0) {
		/*
		 * A frame header over the limit ends the connection at once
		 * (ID-5), during the handshake and on an established channel
		 * alike: ALERT, FIN, then the rest of the input is discarded
		 * for at most a second (conn_update -> conn_drain).
		 */
		if (!srv_sess_established(c->ss)) {
			ml_warn("conn %llu %s: handshake refused: %s (%s) "
			    "[%s] frame header over %u bytes",
			    (unsigned long long)c->id, c->ss->addr,
			    hs_alert_name(HS_ALERT_FORMAT),
			    hs_alert_text(HS_ALERT_FORMAT), ml_errname(r),
			    (unsigned)srv_sess_max_frame(c->ss));
			atomic_fetch_add(&n->srv->m.rejected[HS_ALERT_FORMAT], 1);
		} else {
			ml_warn("conn %llu %s: channel closed: %s (%s) [%s] "
			    "record frame header over %u bytes (%s)",
			    (unsigned long long)c->id, c->ss->addr,
			    hs_alert_name(HS_ALERT_FORMAT),
			    hs_alert_text(HS_ALERT_FORMAT), ml_errname(r),
			    (unsigned)srv_sess_max_frame(c->ss),
			    c->ss->peer.serial);
			atomic_fetch_add(&n->srv->m.frames_oversize, 1);
		}
		(void)!hs_frame_put(&c->wbuf, alert, sizeof(alert));
		c->closing = true;
		return true;
	}
	if ((j = calloc(1, sizeof(*j))) == NULL ||
	    (j->body = malloc(ml_rd_left(&body) + 1)) == NULL) {
		free(j);
		return false;
	}
	j->srv = n->srv;
	j->net = n;
	j->c = c;
	j->len = ml_rd_left(&body);
	memcpy(j->body, ml_rd_ptr(&body), j->len);
	j->out = ml_wr_dyn(HS_MAX_FRAME + 64);
	memmove(c->rbuf, c->rbuf + rd.off, c->rlen - rd.off);
	c->rlen -= rd.off;
	c->busy = true;
	srv_pool_submit(n->srv->pool, &j->hdr, worker_run);
	return true;
}

static void
conn_update(struct net *n, struct conn *c)
{
	uint32_t ev = 0;

	if (c->closing && !c->busy && !c->draining && c->wbuf.len <= c->woff) {
		conn_drain(n, c);	/* nothing left to say: FIN now */
		return;
	}
	if (c->wbuf.len > c->woff) {
		ev |= EPOLLOUT;
	}
	if (!c->busy && !c->closing) {
		ev |= EPOLLIN;
	}
	set_interest(n, c, ev);
}

static void
conn_readable(struct net *n, struct conn *c)
{
	size_t want = srv_sess_max_frame(c->ss) + 4;
	uint8_t scratch[4096];
	ssize_t k;

	if (c->draining) {
		do {
			k = recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		} while (k > 0);
		if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
			conn_free(n, c);
		}
		return;
	}
	if (c->rcap < want) {
		uint8_t *p = realloc(c->rbuf, want);

		if (p == NULL) {
			conn_free(n, c);
			return;
		}
		c->rbuf = p;
		c->rcap = want;
	}
	if (c->rlen == c->rcap) {
		/* a full buffer without a complete frame cannot happen: the
		 * frame header would have been over the limit */
		conn_free(n, c);
		return;
	}
	k = recv(c->fd, c->rbuf + c->rlen, c->rcap - c->rlen, MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (k <= 0) {
		if (!srv_sess_established(c->ss) && c->ss->hs != NULL &&
		    c->rlen == 0) {
			ml_info("conn %llu %s: peer closed during handshake",
			    (unsigned long long)c->id, c->ss->addr);
		}
		conn_free(n, c);
		return;
	}
	c->rlen += (size_t)k;
	c->last_ms = hs_now_ms();
	if (!conn_dispatch(n, c) || (c->closing && !conn_flush(c))) {
		conn_free(n, c);
		return;
	}
	conn_update(n, c);
}

/*
 * c's socket takes output (EPOLLOUT): flush.  Returns false when the event
 * is done with c (closed, draining, or left to its job), true when its
 * input may be looked at too.
 */
static bool
conn_writable(struct net *n, struct conn *c)
{
	if (!conn_flush(c)) {
		if (c->busy) {
			/*
			 * The peer is gone (a reset) while a job holds c: the
			 * job's return closes it (jobs_done, whose flush fails
			 * too).  Freeing c here would leave the worker and
			 * jobs_done with freed memory (ID-5).
			 */
			c->closing = true;
			set_interest(n, c, 0);
			return false;
		}
		conn_free(n, c);
		return false;
	}
	c->last_ms = hs_now_ms();
	if (c->closing && c->wbuf.len == 0 && !c->busy) {
		conn_drain(n, c);
		return false;
	}
	conn_update(n, c);
	return true;
}

static void
sa_text(const struct sockaddr_storage *sa, socklen_t sl, char *buf,
    size_t len)
{
	char host[48], port[8];

	if (getnameinfo((const struct sockaddr *)sa, sl, host, sizeof(host),
	    port, sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		snprintf(host, sizeof(host), "?");
		snprintf(port, sizeof(port), "?");
	}
	snprintf(buf, len, "%s:%s", host, port);
}

/*
 * BUSY refusals are logged rate-limited (ID-5): a flood must not turn
 * into a flood of log lines.  The first refusal after a quiet period is
 * logged at once; the ones after it are summed into one line per
 * BUSY_LOG_MS, written when the period ends (or at exit, force).
 */
static void
busy_log(struct net *n, bool force)
{
	unsigned long long *p = n->busy_pending, tot = p[0] + p[1] + p[2];
	uint64_t now = hs_now_ms();
	char from[64];

	if (tot == 0 || (!force && now < n->busy_next_log_ms)) {
		return;
	}
	sa_text(&n->busy_last, n->busy_last_len, from, sizeof(from));
	ml_warn("refused %llu connection(s) with %s (%s): max-conns %llu, "
	    "max-unauth %llu, max-unauth-per-addr %llu; the latest from %s",
	    tot, hs_alert_name(HS_ALERT_BUSY), hs_alert_text(HS_ALERT_BUSY),
	    p[0], p[1], p[2], from);
	memset(n->busy_pending, 0, sizeof(n->busy_pending));
	n->busy_next_log_ms = now + BUSY_LOG_MS;
}

static void
busy_refused(struct net *n, int reason, const struct sockaddr_storage *sa,
    socklen_t sl)
{
	struct srv_metrics *m = &n->srv->m;
	atomic_ullong *ctr[BUSY_NREASONS] = { &m->refused_busy,
	    &m->refused_unauth, &m->refused_per_addr };

	atomic_fetch_add(ctr[reason], 1);
	n->busy_pending[reason]++;
	memcpy(&n->busy_last, sa, sizeof(*sa));
	n->busy_last_len = sl;
	busy_log(n, false);
}

static void
accept_all(struct net *n)
{
	struct srv *s = n->srv;
	struct sockaddr_storage sa;
	socklen_t sl;
	struct conn *c;
	struct epoll_event e;
	char addr[64];
	uint8_t akey[AKEY_LEN];
	int fd, one = 1, refused;

	for (;;) {
		sl = sizeof(sa);
		fd = accept4(s->listen_fd, (struct sockaddr *)&sa, &sl,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			return;
		}
		atomic_fetch_add(&s->m.accepted, 1);
		sockaddr_key(&sa, akey);
		/*
		 * Limits before any allocation: in total, unauthenticated in
		 * total, unauthenticated from this address (a flood from one
		 * address cannot take the slots of the others).
		 */
		refused = -1;
		if (n->nconns >= s->o.max_conns) {
			refused = 0;
		} else if (n->nunauth >= s->o.max_unauth) {
			refused = 1;
		} else if (addr_count(n, akey) >= s->o.max_unauth_per_addr) {
			refused = 2;
		}
		if (refused >= 0) {
			static const uint8_t busy[6] = { 0, 0, 0, 2, HS_ALERT,
			    HS_ALERT_BUSY };

			(void)!send(fd, busy, sizeof(busy),
			    MSG_NOSIGNAL | MSG_DONTWAIT);
			close(fd);
			busy_refused(n, refused, &sa, sl);
			continue;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		sa_text(&sa, sl, addr, sizeof(addr));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->fd = fd;
		c->id = ++n->next_id;
		memcpy(c->akey, akey, AKEY_LEN);
		c->last_ms = hs_now_ms();
		c->wbuf = ml_wr_dyn(8 * HS_MAX_FRAME);
		if (srv_sess_new(s, c->id, addr, &c->ss) != 0) {
			close(fd);
			free(c);
			continue;
		}
		c->deadline_ms = wait_deadline(s, c);
		c->events = c->armed = EPOLLIN;
		e.events = EPOLLIN | EPOLLONESHOT;	/* see set_interest */
		e.data.ptr = c;
		if (epoll_ctl(n->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
			srv_sess_free(c->ss);
			close(fd);
			free(c);
			continue;
		}
		c->next = n->conns;
		if (n->conns != NULL) {
			n->conns->prev = c;
		}
		n->conns = c;
		n->nconns++;
		atomic_store(&s->m.conns_open, n->nconns);
		if (!unauth_take(n, c)) {
			conn_free(n, c);
		}
	}
}

static void
jobs_done(struct net *n)
{
	struct conn_job *list, *j;
	struct conn *c;
	uint64_t v;

	(void)!read(n->srv->done_efd, &v, sizeof(v));
	pthread_mutex_lock(&n->done_mu);
	list = n->done;
	n->done = NULL;
	pthread_mutex_unlock(&n->done_mu);
	while ((j = list) != NULL) {
		list = j->done_next;
		c = j->c;
		c->busy = false;
		if (j->out.len > 0 &&
		    ml_wr_bytes(&c->wbuf, j->out.p, j->out.len) != 0) {
			j->close = 1;
		}
		if (j->close) {
			c->closing = true;
		}
		ml_wr_free(&j->out);
		ml_freezero(j->body, j->len);
		free(j);
		c->deadline_ms = wait_deadline(n->srv, c);
		c->last_ms = hs_now_ms();
		if (c->unauth && srv_sess_established(c->ss)) {
			unauth_release(n, c);
		}
		if (!conn_flush(c)) {
			conn_free(n, c);
			continue;
		}
		if (c->closing && c->wbuf.len == 0) {
			conn_drain(n, c);
			continue;
		}
		if (!conn_dispatch(n, c)) {	/* a pipelined frame */
			conn_free(n, c);
			continue;
		}
		conn_update(n, c);
	}
}

static void
sweep_timeouts(struct net *n)
{
	struct conn *c, *next;
	uint64_t now = hs_now_ms();

	for (c = n->conns; c != NULL; c = next) {
		next = c->next;
		if (c->busy || c->deadline_ms > now) {
			continue;
		}
		if (c->closing || c->draining) {
			conn_free(n, c);	/* could not flush/drain in time */
			continue;
		}
		srv_sess_timeout(c->ss, &c->wbuf);
		c->closing = true;
		if (!conn_flush(c)) {
			conn_free(n, c);
			continue;
		}
		if (c->wbuf.len == 0) {
			conn_drain(n, c);
			continue;
		}
		c->deadline_ms = now + 1000;
		conn_update(n, c);
	}
}

/* SIGHUP: a new CRL (revocations take effect at once: the certificate
 * cache is dropped).  Runs on the I/O thread; a CRL is small. */
static void
srv_reload_crl(struct srv *s)
{
	unsigned n = 0;
	int r;

	if (s->o.crl[0] == '\0') {
		ml_warn("SIGHUP: no --crl configured, nothing to reload");
		return;
	}
	if ((r = hs_trust_reload_crl(s->trust, s->o.crl)) != 0) {
		ml_err("SIGHUP: CRL not reloaded (%s); the old one stays",
		    ml_errmsg(r));
		return;
	}
	/* OP-5: each revocation seen for the first time is an audit row,
	 * written before the reload is logged as done */
	if (s->reg != NULL && (r = srv_audit_crl(s->reg, s->o.crl, &n)) != 0) {
		ml_err("SIGHUP: revocations of CRL %s not in the audit trail: "
		    "%s", s->o.crl, ml_errmsg(r));
	} else if (n > 0) {
		ml_log(ML_LOG_WARN, "SIGHUP: %u revoked certificate(s) new in "
		    "the audit trail", n);
	}
	ml_log(ML_LOG_WARN, "SIGHUP: CRL %s reloaded", s->o.crl);
}

/* One audit row for a server certificate taken on SIGHUP (OP-5). */
static void
cert_audit(struct srv *s, const struct hs_certinfo *ci, const char *path)
{
	struct reg_audit a;
	int r;

	if (s->reg == NULL) {
		return;
	}
	memset(&a, 0, sizeof(a));
	snprintf(a.action, sizeof(a.action), "server-cert");
	snprintf(a.actor, sizeof(a.actor), "server");
	snprintf(a.subject_kind, sizeof(a.subject_kind), "certificate");
	snprintf(a.subject, sizeof(a.subject), "%s", ci->certno);
	snprintf(a.outcome, sizeof(a.outcome), "ok");
	snprintf(a.detail, sizeof(a.detail), "SIGHUP: cert %.200s", path);
	if ((r = reg_audit_append(s->reg, &a)) != 0) {
		ml_err("SIGHUP: audit row for server certificate %s: %s",
		    ci->certno, ml_errmsg(r));
	}
}

/* Is chain c the n certificates of blobs, byte for byte? */
static bool
chain_same(const struct hs_chain *c, const struct hs_blob *blobs, size_t n)
{
	size_t i;

	if (c->n != n) {
		return false;
	}
	for (i = 0; i < n; i++) {
		if (c->blob[i].len != blobs[i].len ||
		    memcmp(c->blob[i].p, blobs[i].p, blobs[i].len) != 0) {
			return false;
		}
	}
	return true;
}

/*
 * SIGHUP: the server certificate chain (--cert) again, so that a renewed
 * certificate for the same key is taken without a restart (OP-6).  The
 * new chain must verify against --ca (and the CRL), be a server
 * certificate (OU=server) and carry the server key's public point; else
 * the old chain stays.  New handshakes use it; those begun before finish
 * with the old one, which is kept (srv_cred_gen).  A new key needs a
 * restart: the monitor opens the key at start-up only.
 */
static void
srv_reload_cert(struct srv *s)
{
	const struct hs_server_cfg *cur = s->hscfg_cur;
	struct srv_cred_gen *g;
	struct hs_certinfo ci;
	int r, alert = 0;

	if (cur == NULL || (g = calloc(1, sizeof(*g))) == NULL) {
		return;
	}
	if ((r = hs_chain_load(s->o.cert, &g->chain)) != 0) {
		if (s->o.chroot_dir[0] != '\0') {
			/* the network process sees the chroot only */
			ml_warn("SIGHUP: server certificate chain not re-read "
			    "(%s): under chroot %s, a renewed certificate is "
			    "read inside it (or taken at a restart); the "
			    "running one stays", ml_errmsg(r),
			    s->o.chroot_dir);
		} else {
			ml_err("SIGHUP: server certificate chain not reloaded "
			    "(%s); the old one stays", ml_errmsg(r));
		}
		free(g);
		return;
	}
	if (chain_same(&g->chain, cur->cred.chain, cur->cred.nchain)) {
		hs_chain_free(&g->chain);	/* unchanged */
		free(g);
		return;
	}
	if ((r = hs_trust_verify(s->trust, g->chain.blob, g->chain.n, &ci,
	    &alert)) != 0 || ci.kind != HS_CERT_KIND_SERVER ||
	    memcmp(ci.pub, s->pub, sizeof(ci.pub)) != 0) {
		ml_err("SIGHUP: server certificate chain %s not taken: %s; the "
		    "old one stays", s->o.cert, r != 0 ? (alert ==
		    HS_ALERT_REVOKED ? "revoked" : "it does not verify against "
		    "--ca (issuer, validity)") : ci.kind != HS_CERT_KIND_SERVER ?
		    "not a server certificate (OU=server)" : "it is for another "
		    "key than the server's (a new key needs a restart)");
		hs_chain_free(&g->chain);
		free(g);
		return;
	}
	g->hscfg = *cur;
	g->hscfg.cred.chain = g->chain.blob;
	g->hscfg.cred.nchain = g->chain.n;
	g->older = s->renewed;
	s->renewed = g;
	s->hscfg_cur = &g->hscfg;
	ml_log(ML_LOG_WARN, "SIGHUP: server certificate chain %s reloaded "
	    "(certificate %s; new handshakes use it)", s->o.cert, ci.certno);
	cert_audit(s, &ci, s->o.cert);
}

/*
 * SIGHUP: the configuration file again (then the command line over it).
 * The keys marked "reload" in server/config.c (timeouts, limits, log
 * settings, the CRL path, the issuer and feature keys, the certificate
 * chain of the same key) apply at once, the
 * applications' through their reload hook; any other changed key needs a
 * restart and is only reported, by name.  Established channels stay.
 */
static void
srv_reload(struct srv *s)
{
	struct srv_opts no;

	if (s->reload != NULL) {
		if (s->reload(&no) != 0) {
			ml_err("SIGHUP: configuration not reloaded; the old one "
			    "stays");
		} else {
			char changed[512];

			/* the table says which keys reload (server/config.c) */
			if (srv_config_reload(&s->o, &no, changed,
			    sizeof(changed)) > 0) {
				ml_warn("SIGHUP: %s changed: these need a "
				    "restart; the running values stay",
				    changed);
			}
			if (s->hscfg_cur != NULL) {
				s->hscfg_cur->r1_lifetime_ms =
				    (uint32_t)s->o.r1_lifetime_ms;
			}
			ml_log_set_format((enum ml_log_format)s->o.log_format);
			if (s->o.log_level >= 0) {
				ml_log_set_level(
				    (enum ml_log_level)s->o.log_level);
			}
			srv_apps_reload(s);
			ml_log(ML_LOG_WARN, "SIGHUP: configuration reloaded");
		}
	}
	srv_reload_crl(s);
	srv_reload_cert(s);	/* after the CRL: a revoked chain is refused */
}

/* ---------------------------------------------------------------- metrics */

static bool
is_mconn(struct net *n, void *tag)
{
	return (char *)tag >= (char *)n->mc &&
	    (char *)tag < (char *)(n->mc + METRICS_MAX_CONNS);
}

static void
mconn_free(struct net *n, struct mconn *mc)
{
	(void)epoll_ctl(n->ep, EPOLL_CTL_DEL, mc->fd, NULL);
	close(mc->fd);
	ml_wr_free(&mc->out);
	mc->fd = -1;
	mc->len = 0;
	mc->off = 0;
}

static void
metrics_accept(struct net *n)
{
	struct epoll_event e;
	struct mconn *mc;
	int fd, i;

	while ((fd = accept4(n->srv->metrics_fd, NULL, NULL,
	    SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		for (i = 0; i < METRICS_MAX_CONNS && n->mc[i].fd >= 0; i++) {
		}
		if (i == METRICS_MAX_CONNS) {
			close(fd);		/* scrapers retry */
			continue;
		}
		mc = &n->mc[i];
		mc->fd = fd;
		mc->len = 0;
		mc->off = 0;
		mc->out = ml_wr_dyn(1024 * 1024);
		mc->deadline_ms = hs_now_ms() + METRICS_TIMEOUT_MS;
		e.events = EPOLLIN;
		e.data.ptr = mc;
		if (epoll_ctl(n->ep, EPOLL_CTL_ADD, fd, &e) != 0) {
			mconn_free(n, mc);
		}
	}
}

static void
mconn_reply(struct net *n, struct mconn *mc, const char *status,
    const struct ml_wr *body)
{
	struct epoll_event e = { .events = EPOLLOUT, .data.ptr = mc };
	char hdr[256];
	int k;

	k = snprintf(hdr, sizeof(hdr), "HTTP/1.0 %s\r\nContent-Type: "
	    "text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: %zu"
	    "\r\nConnection: close\r\n\r\n", status,
	    body != NULL ? body->len : strlen(status) + 1);
	ml_wr_clear(&mc->out);
	if (ml_wr_bytes(&mc->out, hdr, (size_t)k) != 0 ||
	    (body != NULL ? ml_wr_bytes(&mc->out, body->p, body->len) :
	    (ml_wr_bytes(&mc->out, status, strlen(status)) != 0 ?
	    ML_ERR_FULL : ml_wr_u8(&mc->out, '\n'))) != 0) {
		mconn_free(n, mc);
		return;
	}
	(void)epoll_ctl(n->ep, EPOLL_CTL_MOD, mc->fd, &e);
}

/* Read the request; on its blank line answer GET /metrics. */
static void
mconn_event(struct net *n, struct mconn *mc, uint32_t ev)
{
	struct ml_wr body;
	ssize_t k;

	if (mc->out.len > 0) {
		k = send(mc->fd, mc->out.p + mc->off, mc->out.len - mc->off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (k > 0) {
			mc->off += (size_t)k;
		}
		if ((k < 0 && errno != EAGAIN && errno != EINTR) ||
		    mc->off == mc->out.len) {
			mconn_free(n, mc);
		}
		return;
	}
	if ((ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) == 0) {
		return;
	}
	k = recv(mc->fd, mc->req + mc->len, sizeof(mc->req) - 1 - mc->len,
	    MSG_DONTWAIT);
	if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
		return;
	}
	if (k <= 0) {
		mconn_free(n, mc);
		return;
	}
	mc->len += (size_t)k;
	mc->req[mc->len] = '\0';
	if (strstr(mc->req, "\r\n\r\n") == NULL &&
	    strstr(mc->req, "\n\n") == NULL) {
		if (mc->len == sizeof(mc->req) - 1) {
			mconn_reply(n, mc, "431 Request Header Fields Too Large",
			    NULL);
		}
		return;
	}
	if (strncmp(mc->req, "GET ", 4) != 0) {
		mconn_reply(n, mc, "405 Method Not Allowed", NULL);
		return;
	}
	if (strncmp(mc->req + 4, "/metrics", 8) != 0 ||
	    (mc->req[12] != ' ' && mc->req[12] != '?' && mc->req[12] != '\r' &&
	    mc->req[12] != '\n')) {
		mconn_reply(n, mc, "404 Not Found", NULL);
		return;
	}
	body = ml_wr_dyn(1024 * 1024 - 512);
	if (srv_metrics_render(n->srv, &body) != 0) {
		mconn_reply(n, mc, "500 Internal Server Error", NULL);
	} else {
		mconn_reply(n, mc, "200 OK", &body);
	}
	ml_wr_free(&body);
}

/* ---------------------------------------------------------------- drain */

/* SIGTERM, SIGINT or a lost monitor: no new connections; in-flight work
 * gets until drain-timeout. */
static void
drain_begin(struct net *n, const char *why)
{
	struct srv *s = n->srv;

	if (n->shutting) {
		return;
	}
	n->shutting = true;
	n->drain_deadline_ms = hs_now_ms() + (uint64_t)s->o.drain_timeout_ms;
	if (s->listen_fd >= 0) {
		(void)epoll_ctl(n->ep, EPOLL_CTL_DEL, s->listen_fd, NULL);
		close(s->listen_fd);	/* new connections: refused by TCP */
		s->listen_fd = -1;
	}
	ml_log(ML_LOG_WARN, "%s: draining %d connection(s) (up to %d ms)", why,
	    n->nconns, s->o.drain_timeout_ms);
}

/*
 * While draining: a connection with nothing in flight (no job, nothing
 * buffered either way) that is established and has been quiet for
 * DRAIN_IDLE_MS is closed (FIN); handshakes run to their end.  Returns
 * true when nothing is left or the deadline passed.
 */
static bool
drain_step(struct net *n)
{
	struct conn *c, *next;
	uint64_t now = hs_now_ms();

	for (c = n->conns; c != NULL; c = next) {
		next = c->next;
		if (c->busy || c->closing || c->draining || c->rlen != 0 ||
		    c->wbuf.len > c->woff || !srv_sess_established(c->ss) ||
		    now - c->last_ms < DRAIN_IDLE_MS) {
			continue;
		}
		c->closing = true;
		conn_drain(n, c);
	}
	return n->nconns == 0 || now >= n->drain_deadline_ms;
}

void
srv_log_metrics(struct srv *s)
{
	char buf[1024];
	size_t o = 0;
	unsigned long long ok = atomic_load(&s->m.hs_ok[1]) +
	    atomic_load(&s->m.hs_ok[2]), rej = 0;
	int i;

	for (i = 1; i < HS_ALERT_MAX; i++) {
		unsigned long long v = atomic_load(&s->m.rejected[i]);

		rej += v;
		if (v != 0 && o < sizeof(buf) - 64) {
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, " %s=%llu",
			    hs_alert_name(i), v);
		}
	}
	buf[o] = '\0';
	/* busy: every HS_ALERT_BUSY sent at accept, whichever limit */
	ml_log(ML_LOG_WARN, "stats: accepted=%llu busy=%llu busy_conns=%llu "
	    "busy_unauth=%llu busy_per_addr=%llu hs_ok_a=%llu "
	    "hs_ok_b=%llu rejected=%llu cpu_us_per_ok=%.1f "
	    "cpu_us_per_rejected=%.1f records=%llu record_errors=%llu "
	    "oversize=%llu%s",
	    (unsigned long long)atomic_load(&s->m.accepted),
	    (unsigned long long)(atomic_load(&s->m.refused_busy) +
	    atomic_load(&s->m.refused_unauth) +
	    atomic_load(&s->m.refused_per_addr)),
	    (unsigned long long)atomic_load(&s->m.refused_busy),
	    (unsigned long long)atomic_load(&s->m.refused_unauth),
	    (unsigned long long)atomic_load(&s->m.refused_per_addr),
	    (unsigned long long)atomic_load(&s->m.hs_ok[1]),
	    (unsigned long long)atomic_load(&s->m.hs_ok[2]), rej,
	    ok ? atomic_load(&s->m.cpu_ns_ok) / 1000.0 / ok : 0.0,
	    rej ? atomic_load(&s->m.cpu_ns_rejected) / 1000.0 / rej : 0.0,
	    (unsigned long long)atomic_load(&s->m.records),
	    (unsigned long long)atomic_load(&s->m.record_errors),
	    (unsigned long long)atomic_load(&s->m.frames_oversize), buf);
}

#ifdef ML_TEST_HOOKS
/*
 * TEST ONLY (tests/integration/test-server-flood.sh): with
 * MINTLINE_TEST_WAKE_DELAY_US=N in the environment, a worker sleeps N
 * microseconds between handing a finished job to the I/O thread and
 * waking it (worker_run), as a worker preempted there on a loaded machine
 * does: the I/O thread, woken by another worker meanwhile, takes and frees
 * the job first.  Compiled in only with -Dtest_hooks=true; announced as a
 * warning when active.
 */
static void
test_hooks_setup(struct net *n)
{
	const char *v = secure_getenv("MINTLINE_TEST_WAKE_DELAY_US");

	if (v == NULL || *v == '\0') {
		return;
	}
	if (ml_parse_uint(v, "MINTLINE_TEST_WAKE_DELAY_US", 0, 1000000,
	    &n->test_wake_delay_us) != 0) {
		ml_warn("%s: ignored", ml_errmsg(ML_ERR_ARG));
		return;
	}
	ml_warn("TEST BUILD (-Dtest_hooks=true): MINTLINE_TEST_WAKE_DELAY_US "
	    "is set: workers wait %u us before waking the I/O thread",
	    n->test_wake_delay_us);
}
#endif

/* Add fd to the epoll set; a failure names what it is. */
static int
net_watch(struct net *n, int fd, struct epoll_event *e, const char *what)
{
	if (epoll_ctl(n->ep, EPOLL_CTL_ADD, fd, e) != 0) {
		return ml_errf_sys(ML_ERR_IO, "epoll_ctl: %s", what);
	}
	return 0;
}

/*
 * srv_run's set-up: the signals it handles come through a signalfd
 * (blocked in this thread; workers were started with them blocked), and
 * one epoll set watches the listener, the job-done eventfd, the signalfd,
 * the metrics listener and the monitor.  n is zeroed first so that
 * run_free can undo a set-up that stopped half way.
 */
static int
run_setup(struct srv *s, struct net *n, int *sfdp)
{
	struct epoll_event e;
	sigset_t mask;
	int i, r = 0;

	memset(n, 0, sizeof(*n));
	n->srv = s;
	n->ep = -1;
#ifdef ML_TEST_HOOKS
	test_hooks_setup(n);
#endif
	for (i = 0; i < METRICS_MAX_CONNS; i++) {
		n->mc[i].fd = -1;
	}
	pthread_mutex_init(&n->done_mu, NULL);
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGUSR1);
	sigaddset(&mask, SIGHUP);
	/* block in this thread; workers were started with these blocked */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	if ((*sfdp = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC)) < 0) {
		return ml_errf_sys(ML_ERR_IO, "signalfd");
	}
	if ((n->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		return ml_errf_sys(ML_ERR_IO, "epoll_create1");
	}
	e.events = EPOLLIN;
	e.data.ptr = TAG_LISTEN;
	ML_TRY(net_watch(n, s->listen_fd, &e, "the listening socket"));
	e.data.ptr = TAG_EVENT;
	ML_TRY(net_watch(n, s->done_efd, &e, "the job eventfd"));
	e.data.ptr = TAG_SIGNAL;
	ML_TRY(net_watch(n, *sfdp, &e, "the signalfd"));
	if (s->metrics_fd >= 0) {
		e.data.ptr = TAG_METRICS;
		ML_TRY(net_watch(n, s->metrics_fd, &e, "the metrics socket"));
	}
	if (s->mon != NULL) {
		/* no input ever comes this way: EPOLLHUP = monitor gone */
		e.events = 0;
		e.data.ptr = TAG_MONITOR;
		ML_TRY(net_watch(n, mon_watch_fd(s->mon), &e,
		    "the monitor channel"));
	}
out:
	return r;
}

/*
 * The connections named in an epoll batch were disarmed by the kernel
 * when it reported them (EPOLLONESHOT, see set_interest): say so before
 * any of the batch is handled, since a finished job (jobs_done) may come
 * first in the batch and must re-arm its connection with an epoll_ctl.
 */
static void
conns_disarmed(struct net *n, const struct epoll_event *ev, int k)
{
	int i;

	for (i = 0; i < k; i++) {
		void *tag = ev[i].data.ptr;

		if (tag != TAG_LISTEN && tag != TAG_EVENT &&
		    tag != TAG_SIGNAL && tag != TAG_METRICS &&
		    tag != TAG_MONITOR && !is_mconn(n, tag)) {
			((struct conn *)tag)->armed = 0;
		}
	}
}

/* An epoll event on connection c (events: what was reported). */
static void
conn_event(struct net *n, struct conn *c, uint32_t events)
{
	if (c->draining) {
		conn_readable(n, c);
		return;
	}
	if ((events & EPOLLOUT) && !conn_writable(n, c)) {
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
		if (c->busy || c->closing) {
			if (events & (EPOLLHUP | EPOLLERR)) {
				set_interest(n, c, 0);
			}
			return;
		}
		conn_readable(n, c);
	}
}

/*
 * srv_run's loop: one epoll round per TICK_MS, then timeouts, the BUSY log,
 * metrics connections past their deadline and the periodic stats line.
 * Returns 0 once a drain (stop, SIGTERM/SIGINT, monitor lost) has finished,
 * ML_ERR_IO if epoll_wait fails.
 */
static int
run_loop(struct net *n, int sfd)
{
	struct srv *s = n->srv;
	struct epoll_event ev[64];
	struct signalfd_siginfo si;
	uint64_t last_stats = hs_now_ms();
	int i, k;

	for (;;) {
		if (s->stop) {
			drain_begin(n, "stop");
		}
		if (n->shutting && drain_step(n)) {
			break;
		}
		k = epoll_wait(n->ep, ev, (int)ML_NELEM(ev), TICK_MS);
		if (k < 0 && errno != EINTR) {
			return ml_errf_sys(ML_ERR_IO, "epoll_wait");
		}
		n->batching = true;
		conns_disarmed(n, ev, k);
		for (i = 0; i < k; i++) {
			void *tag = ev[i].data.ptr;

			if (tag == TAG_LISTEN) {
				if (!n->shutting) {
					accept_all(n);
				}
			} else if (tag == TAG_EVENT) {
				jobs_done(n);
			} else if (tag == TAG_METRICS) {
				metrics_accept(n);
			} else if (tag == TAG_MONITOR) {
				(void)epoll_ctl(n->ep, EPOLL_CTL_DEL,
				    mon_watch_fd(s->mon), NULL);
				mon_lost(s->mon);
				ml_err("the monitor (HSM key) exited: no new "
				    "handshakes; draining, then exit status 1");
				s->exit_code = 1;
				drain_begin(n, "monitor lost");
			} else if (tag == TAG_SIGNAL) {
				while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
					if (si.ssi_signo == SIGUSR1) {
						srv_log_metrics(s);
					} else if (si.ssi_signo == SIGHUP) {
						srv_reload(s);
					} else {
						drain_begin(n, si.ssi_signo ==
						    SIGTERM ? "SIGTERM" :
						    "SIGINT");
					}
				}
			} else if (is_mconn(n, tag)) {
				mconn_event(n, tag, ev[i].events);
			} else {
				struct conn *c = tag;

				if (c->dead) {
					continue;	/* closed earlier in this batch */
				}
				conn_event(n, c, ev[i].events);
				if (!c->dead) {	/* re-arm (EPOLLONESHOT) */
					set_interest(n, c, c->events);
				}
			}
		}
		conn_reap(n);
		sweep_timeouts(n);
		busy_log(n, false);
		mon_close_flush(s->mon, false);	/* closed sessions, gathered */
		for (i = 0; i < METRICS_MAX_CONNS; i++) {
			if (n->mc[i].fd >= 0 &&
			    n->mc[i].deadline_ms <= hs_now_ms()) {
				mconn_free(n, &n->mc[i]);
			}
		}
		if (s->o.stats_interval_s > 0 && hs_now_ms() - last_stats >=
		    (uint64_t)s->o.stats_interval_s * 1000u) {
			srv_log_metrics(s);
			last_stats = hs_now_ms();
		}
	}
	return 0;
}

/* srv_run's report once the drain ended: BUSY refusals not yet logged, and
 * whether every connection finished before the deadline. */
static void
run_report(struct net *n)
{
	busy_log(n, true);
	if (n->nconns > 0) {
		ml_warn("drain: %d connection(s) still open at the deadline: "
		    "closed", n->nconns);
	} else {
		ml_log(ML_LOG_WARN, "drain: all connections finished");
	}
}

/* Frees what run_setup and run_loop left, after the worker pool has let
 * its in-flight jobs finish (they still point at their connections). */
static void
run_free(struct net *n, int sfd)
{
	struct srv *s = n->srv;
	int i;

	/* let in-flight jobs finish before freeing their connections */
	srv_pool_free(s->pool);
	s->pool = NULL;
	{
		struct conn_job *j;

		while ((j = n->done) != NULL) {
			n->done = j->done_next;
			ml_wr_free(&j->out);
			ml_freezero(j->body, j->len);
			free(j);
		}
	}
	conn_reap(n);		/* batching off: the frees below are at once */
	while (n->conns != NULL) {
		conn_free(n, n->conns);
	}
	for (i = 0; i < METRICS_MAX_CONNS; i++) {
		if (n->mc[i].fd >= 0) {
			mconn_free(n, &n->mc[i]);
		}
	}
	for (i = 0; i < ADDR_BUCKETS; i++) {
		struct addr_ent *a;

		while ((a = n->addr_tab[i]) != NULL) {
			n->addr_tab[i] = a->next;
			free(a);
		}
	}
	if (sfd >= 0) {
		close(sfd);
	}
	if (n->ep >= 0) {
		close(n->ep);
	}
	pthread_mutex_destroy(&n->done_mu);
}

int
srv_run(struct srv *s)
{
	struct net n;
	int sfd = -1, r;

	if ((r = run_setup(s, &n, &sfd)) == 0 && (r = run_loop(&n, sfd)) == 0) {
		run_report(&n);
	}
	run_free(&n, sfd);
	return r;
}
