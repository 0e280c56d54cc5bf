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
#include <stdio.h>

#include "hs.h"
#include "mon_client.h"
#include "registry.h"

#ifndef SRV_DEFAULT_MODULE
#define SRV_DEFAULT_MODULE	"/usr/lib/softhsm/libsofthsm2.so"
#endif
#define SRV_DEFAULT_CONFIG	"/etc/mintline/server.conf"
#define SRV_DEFAULT_SAM		"emul:/etc/mintline/sam.key"

/* Every option; config.c has the table of names (= long options). */
struct srv_opts {
	char	 listen[128];		/* host:port */
	char	 ca[512];
	char	 crl[512];
	char	 cert[512];		/* PEM chain, leaf first */
	char	 key[1024];		/* pkcs11: URI (pin-source only) */
	char	 module[512];		/* PKCS#11 module for key (monitor) */
	char	 registry[512];
	char	 monitor[512];		/* mintline-monitor executable */
	char	 user[64];		/* drop to this user (when root) */
	char	 chroot_dir[512];	/* optional, for the network process */
	char	 metrics[128];		/* host:port of /metrics; "" = off */
	int	 workers;
	int	 read_timeout_ms;	/* every read during the handshake */
	int	 idle_timeout_ms;	/* established channel, between records */
	int	 max_conns;
	int	 max_unauth;		/* connections not yet authenticated */
	int	 max_unauth_per_addr;	/* the same, per source address */
	int	 r1_lifetime_ms;
	int	 stats_interval_s;
	int	 drain_timeout_ms;	/* SIGTERM: how long in-flight work gets */
	int	 log_format;		/* enum ml_log_format */
	int	 log_level;		/* enum ml_log_level; -1: unset */
	int	 registry_pool;		/* PostgreSQL connections */
	/* the banknote application (BN-7, BN-8); off without note-issuers */
	char	 note_issuers[4096];	/* pkcs11: URIs / PEM files, blank
					 * separated */
	char	 note_feature_key[2048];	/* feature key files, blank
					 * separated, optional */
	char	 note_seal_key[1024];	/* pkcs11: URI; "" = the channel key */
	/* ID reading (ID-7, ID-10) */
	char	 sam[512];		/* SAM back-end: "emul:KEYFILE" */
	int	 idread_deadline_ms;	/* BEGIN .. RESULT */
	int	 idread_max_rounds;	/* END/RETX rounds */
};

/* config.c */
void	srv_opts_default(struct srv_opts *o);
/*
 * Parse configuration text named `name` (the file path, for messages)
 * into *o (which holds the defaults or earlier values); on failure *o is
 * untouched and err gets "NAME:LINE: KEY: reason" ("NAME:LINE: reason"
 * when the line has no key).  The value is never quoted.
 */
ML_MUST_CHECK int srv_config_parse(const uint8_t *buf, size_t len,
    const char *name, struct srv_opts *o, char *err, size_t errlen);
/* The same from a file; a missing file is fine unless must_exist. */
ML_MUST_CHECK int srv_config_load(const char *path, bool must_exist,
    struct srv_opts *o, char *err, size_t errlen);
/* One key (a long option name); ML_ERR_NOT_FOUND for an unknown key. */
ML_MUST_CHECK int srv_config_set(struct srv_opts *o, const char *key,
    const char *val);
bool	srv_config_reloadable(const char *key);
/*
 * SIGHUP: copy into *cur the keys that reload ("reload" in the table) and
 * differ in *next; the others stay.  Returns how many of those others
 * differ, their names, comma separated, in changed (they need a restart).
 */
size_t	srv_config_reload(struct srv_opts *cur, const struct srv_opts *next,
	    char *changed, size_t len);
/* The i-th key of the table (= long option name), NULL past the end. */
const char *srv_config_key(size_t i);
/*
 * The effective configuration as a configuration file: every key, in
 * table order, "key = value", secrets in values (pin-value=, password=,
 * a URI's password) replaced by "(elided)".
 */
void	srv_config_print(const struct srv_opts *o, FILE *f);
/* One key's value as --print-config shows it (elided); "" if unset. */
void	srv_config_value(const struct srv_opts *o, const char *key, char *buf,
	    size_t len);

/* audit_cmd.c: `mintline-server audit` (OP-5). */
/* Unix seconds, YYYY-MM-DD or YYYY-MM-DDTHH:MM:SSZ (UTC). */
ML_MUST_CHECK int srv_audit_time(const char *s, int64_t *ret);
/* The rows that match f to out (text, or one JSON object a line), or with
 * verify the chain check's verdict. */
ML_MUST_CHECK int srv_audit_run(struct reg *reg,
    const struct reg_audit_filter *f, bool json, bool verify, FILE *out);
/*
 * One audit row (action "revoke", subject kind "certificate", subject the
 * certificate number as handshakes name it, detail the CRL and the
 * revocation time) for each certificate of the CRL at crl_path that has
 * none yet; *ret_new says how many were written (OP-5, ID-5).
 */
ML_MUST_CHECK int srv_audit_crl(struct reg *reg, const char *crl_path,
    unsigned *ret_new);

/* Latency histogram: upper bounds in microseconds, plus +Inf. */
#define SRV_HIST_BUCKETS	12
struct srv_hist {
	atomic_ullong	 bucket[SRV_HIST_BUCKETS + 1];	/* not cumulative */
	atomic_ullong	 sum_us;
	atomic_ullong	 count;
};
void	srv_hist_observe(struct srv_hist *h, uint64_t us);

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
	/* counters for the metrics endpoint (srv_metrics.c) */
	atomic_ullong	 refused_unauth;	/* --max-unauth */
	atomic_ullong	 refused_per_addr;	/* --max-unauth-per-addr */
	atomic_ullong	 frames_oversize;	/* channel frame over the limit */
	atomic_ullong	 by_type[256];		/* records by type */
	atomic_ullong	 handler_errors[256];	/* HS_REC_ERROR replies */
	atomic_ullong	 note_status[3];	/* uploads: ok, again, reject */
	atomic_ullong	 note_enrol_status[3];
	atomic_ullong	 id_reads_ok;
	atomic_ullong	 id_reads_failed;
	atomic_ullong	 monitor_errors;
	atomic_int	 conns_open;
	atomic_int	 conns_unauth;
	struct srv_hist	 hs_latency;		/* accept .. established */
	struct srv_hist	 rec_latency;		/* one record, in the worker */
};

struct srv_app_slot {
	const struct hs_app	*app;
	void			*ctx;
};

/*
 * A server certificate taken on SIGHUP (a renewal for the same key,
 * OP-6): the handshakes begun under a generation keep using it, so every
 * generation stays until exit (a few KB each).
 */
struct srv_cred_gen {
	struct srv_cred_gen	*older;
	struct hs_chain		 chain;
	struct hs_server_cfg	 hscfg;
};

struct srv {
	struct srv_opts		 o;
	struct hs_trust		*trust;
	struct hs_chain		 chain;		/* the certificate at start-up */
	struct mon		*mon;		/* the monitor (HSM key) */
	struct key_provider	 keys;		/* the monitor client */
	struct key		*key;		/* the server key, through it */
	uint8_t			 pub[ML_P256_PUB_LEN];
	struct reg		*reg;
	struct hs_server_cfg	 hscfg;		/* with chain */
	/* what new handshakes use: hscfg, or the newest renewal's (set on
	 * the I/O thread, which also makes the sessions) */
	struct hs_server_cfg	*hscfg_cur;
	struct srv_cred_gen	*renewed;	/* newest first */
	struct srv_app_slot	 apps[16];
	size_t			 napps;
	const struct hs_handler	*handler_by_type[256];
	void			*handler_ctx[256];
	struct srv_metrics	 m;
	struct srv_pool		*pool;
	struct srv_events	*events;	/* risk records, batched */
	int			 listen_fd;
	int			 metrics_fd;	/* /metrics listener, or -1 */
	int			 done_efd;	/* eventfd: worker -> I/O */
	volatile int		 stop;
	int			 exit_code;	/* srv_run: 0, or 1 (monitor lost) */
	/* SIGHUP: re-read the configuration (main.c) into *ret; NULL: CRL
	 * only */
	int			(*reload)(struct srv_opts *ret);
};

/* apps.c: NULL-terminated list of applications. */
extern const struct hs_app *const srv_apps[];
/* apps.c: what the applications see of s (init and reload). */
void	srv_app_env(struct srv *s, struct hs_app_env *ret);
/* apps.c: SIGHUP: each application's reload hook (issuer keys, BN-4). */
void	srv_apps_reload(struct srv *s);

/* srv_net.c: accept and serve until SIGINT/SIGTERM. */
ML_MUST_CHECK int srv_run(struct srv *s);
void	srv_log_metrics(struct srv *s);
/* srv_metrics.c: the Prometheus text exposition of s->m into w. */
ML_MUST_CHECK int srv_metrics_render(struct srv *s, struct ml_wr *w);
/* Count a record's outcome (worker thread). */
void	srv_metrics_record(struct srv *s, uint8_t type, int r, uint8_t rtype,
	    const uint8_t *reply, size_t reply_len, uint64_t us);

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
	bool			 mon_auth_owed;	/* MON_SESS_AUTH not sent yet
						 * (mon_bind) */
	struct hs_rl		 rl;
	struct hs_peer		 peer;
	uint8_t			*peer_cert;
	size_t			 peer_cert_len;
	uint64_t		 cpu_ns;	/* worker CPU spent so far */
	uint64_t		 t_accept_us;	/* wall clock at accept */
	uint64_t		 t0;		/* thread CPU at job start */
	atomic_ullong		*cpu_acct;	/* the handshake ended in this
						 * job: its CPU goes here */
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
