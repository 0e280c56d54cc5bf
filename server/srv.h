/*
 * mintline-server internals: options, the I/O thread (srv_net.c), the
 * worker pool (srv_pool.c), per-connection work (srv_session.c) and the
 * applications served over the channel (apps.c).
 */
#ifndef SRV_H
#define SRV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "hs.h"
#include "hs_p11.h"
#include "registry.h"

struct srv_opts {
	char	 listen[128];		/* host:port */
	char	 ca[512];
	char	 crl[512];
	char	 cert[512];		/* PEM chain, leaf first */
	char	 key[1024];		/* pkcs11: URI */
	char	 module[512];		/* PKCS#11 module for key */
	char	 registry[512];
	int	 workers;
	int	 read_timeout_ms;	/* every read during the handshake */
	int	 idle_timeout_ms;	/* established channel, between records */
	int	 max_conns;
	int	 r1_lifetime_ms;
	int	 stats_interval_s;
};

/* Counters (one per alert code, plus totals), logged on SIGUSR1/exit. */
struct srv_metrics {
	atomic_ullong	 accepted;
	atomic_ullong	 refused_busy;
	atomic_ullong	 hs_ok[3];		/* by flow */
	atomic_ullong	 rejected[HS_ALERT_MAX];
	atomic_ullong	 cpu_ns_ok;		/* worker CPU, whole handshakes */
	atomic_ullong	 cpu_ns_rejected;	/* worker CPU, refused ones */
	atomic_ullong	 records;
	atomic_ullong	 record_errors;
};

struct srv_app_slot {
	const struct hs_app	*app;
	void			*ctx;
};

struct srv {
	struct srv_opts		 o;
	struct hs_trust		*trust;
	struct hs_chain		 chain;
	struct hs_p11		*p11;
	struct hs_keyops	 keyops;
	uint8_t			 pub[ML_P256_PUB_LEN];
	struct reg		*reg;
	struct hs_server_cfg	 hscfg;
	struct srv_app_slot	 apps[16];
	size_t			 napps;
	const struct hs_handler	*handler_by_type[256];
	void			*handler_ctx[256];
	struct srv_metrics	 m;
	struct srv_pool		*pool;
	struct srv_events	*events;	/* risk records, batched */
	int			 listen_fd;
	int			 done_efd;	/* eventfd: worker -> I/O */
	volatile int		 stop;
};

/* apps.c: NULL-terminated list of applications. */
extern const struct hs_app *const srv_apps[];

/* srv_net.c: accept and serve until SIGINT/SIGTERM. */
ML_MUST_CHECK int srv_run(struct srv *s);
void	srv_log_metrics(struct srv *s);

/* srv_events.c: risk records (ID-3) written in batches off the hot path. */
struct srv_events;
ML_MUST_CHECK int srv_events_start(struct reg *reg, struct srv_events **ret);
/* Never blocks on the disk; drops (and counts) when the queue is full. */
void	srv_events_post(struct srv_events *e, const char *serial,
	    enum reg_event ev, const char *detail);
uint64_t srv_events_dropped(struct srv_events *e);
void	srv_events_stop(struct srv_events *e);	/* flushes; NULL-safe */

/* srv_pool.c */
struct srv_job;
typedef void (*srv_job_fn)(struct srv_job *job);
struct srv_pool;
ML_MUST_CHECK int srv_pool_new(int nthreads, struct srv_pool **ret);
/* Queue a job; fn runs on a worker.  Never blocks. */
void	srv_pool_submit(struct srv_pool *p, struct srv_job *job, srv_job_fn fn);
void	srv_pool_free(struct srv_pool *p);	/* stops and joins */

/* Every job starts with this header. */
struct srv_job {
	struct srv_job	*next;
	srv_job_fn	 fn;
};

/* srv_session.c: a connection's protocol state, worked on by one worker
 * at a time. */
struct srv_sess {
	struct srv		*srv;
	uint64_t		 id;
	char			 addr[64];
	struct hs		*hs;		/* during the handshake */
	bool			 established;
	struct hs_rl		 rl;
	struct hs_peer		 peer;
	uint8_t			*peer_cert;
	size_t			 peer_cert_len;
	uint64_t		 cpu_ns;	/* worker CPU spent so far */
	uint64_t		 t0;		/* thread CPU at job start */
};

ML_MUST_CHECK int srv_sess_new(struct srv *s, uint64_t id, const char *addr,
    struct srv_sess **ret);
void	srv_sess_free(struct srv_sess *ss);
/*
 * Process one frame body (handshake message or record) and append what to
 * send to out.  Returns 0 to keep the connection, or nonzero to close it
 * after out is flushed.  Runs on a worker thread.
 */
int	srv_sess_input(struct srv_sess *ss, const uint8_t *body, size_t len,
	    struct ml_wr *out);
/* The largest frame the session accepts now. */
size_t	srv_sess_max_frame(const struct srv_sess *ss);
bool	srv_sess_established(const struct srv_sess *ss);
/* A timeout, seen by the I/O thread (the session is idle). */
void	srv_sess_timeout(struct srv_sess *ss, struct ml_wr *out);
/* registry check used as hs_server_cfg.check_peer */
int	srv_check_peer(void *ctx, const struct hs_peer *peer, int *ret_alert);

#endif
