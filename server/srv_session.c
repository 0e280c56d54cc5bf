/*
 * One connection's protocol work, run on a worker thread: the handshake
 * engine until it is done, then the record layer and the applications'
 * handlers.  The I/O thread never calls in here while a job is running.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ml_log.h"
#include "ml_wipe.h"
#include "srv.h"

static uint64_t
wall_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * This worker's thread CPU clock at the end of its last job (0: no job
 * yet).  A job's CPU is the clock at its end minus this mark, so each job
 * reads the clock once, not at its start and its end: CLOCK_THREAD_CPUTIME
 * is a system call, not a vDSO read (BN-2: host work per handshake).  What
 * the worker spends between two jobs (taking the next one off the queue)
 * counts for the next one.
 */
static __thread uint64_t worker_cpu_mark;

static uint64_t
thread_cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Registry step of early rejection (ID-3, ID-5): the serial must be
 * registered with this certificate number and kind, and not flagged.
 */
int
srv_check_peer(void *ctx, const struct hs_peer *peer, int *ret_alert)
{
	struct srv *s = ctx;
	struct reg_reader rd;
	int r;

	if ((r = reg_reader_get(s->reg, peer->serial, &rd)) != 0) {
		*ret_alert = r == ML_ERR_NOT_FOUND ? HS_ALERT_UNKNOWN :
		    HS_ALERT_INTERNAL;
		return ML_ERR_REJECTED;
	}
	if (strcmp(rd.certno, peer->certno) != 0 || rd.kind != peer->kind) {
		*ret_alert = HS_ALERT_IDENTITY;
		return ML_ERR_REJECTED;
	}
	if (rd.flagged) {
		*ret_alert = HS_ALERT_RISK;
		return ML_ERR_REJECTED;
	}
	return 0;
}

int
srv_sess_new(struct srv *s, uint64_t id, const char *addr,
    struct srv_sess **ret)
{
	struct srv_sess *ss;
	int r;

	if ((ss = calloc(1, sizeof(*ss))) == NULL) {
		return ML_ERR_NOMEM;
	}
	ss->srv = s;
	ss->id = id;
	ss->t_accept_us = wall_us();
	snprintf(ss->addr, sizeof(ss->addr), "%s", addr);
	if ((r = hs_server_new(s->hscfg_cur != NULL ? s->hscfg_cur :
	    &s->hscfg, &ss->hs)) != 0) {
		free(ss);
		return r;
	}
	*ret = ss;
	return 0;
}

void
srv_sess_free(struct srv_sess *ss)
{
	if (ss == NULL) {
		return;
	}
	mon_sess_close(ss->srv->mon, ss->id);	/* the monitor forgets it */
	hs_free(ss->hs);
	hs_rl_wipe(&ss->rl);
	ml_freezero(ss->peer_cert, ss->peer_cert_len);
	ml_freezero(ss, sizeof(*ss));
}

size_t
srv_sess_max_frame(const struct srv_sess *ss)
{
	return ss->established ? HS_MAX_FRAME : HS_MAX_HS_MSG;
}

bool
srv_sess_established(const struct srv_sess *ss)
{
	return ss->established;
}

/* The handshake is refused; its worker CPU is accounted by the caller
 * (cpu_ns_rejected). */
static void
reject(struct srv_sess *ss, int alert, int r)
{
	struct srv *s = ss->srv;

	if (alert < 0 || alert >= HS_ALERT_MAX) {
		alert = HS_ALERT_INTERNAL;
	}
	atomic_fetch_add(&s->m.rejected[alert], 1);
	/*
	 * Error history of a registered reader (ID-3): only refusals that
	 * come after its certificate and registry entry were checked, so the
	 * serial is the certificate's, not a free-form claim.
	 */
	if ((alert == HS_ALERT_SIG || alert == HS_ALERT_DECRYPT ||
	    alert == HS_ALERT_RISK) && ss->hs != NULL) {
		srv_events_post(s->events, hs_claimed_serial(ss->hs),
		    REG_EV_REJECT, hs_alert_name(alert));
	}
	ml_warn("conn %llu %s: handshake refused: %s (%s) [%s] claim=%s",
	    (unsigned long long)ss->id, ss->addr, hs_alert_name(alert),
	    hs_alert_text(alert), ml_errname(r),
	    ss->hs != NULL && hs_claimed_serial(ss->hs)[0] != '\0' ?
	    hs_claimed_serial(ss->hs) : "-");
}

void
srv_sess_timeout(struct srv_sess *ss, struct ml_wr *out)
{
	uint8_t a[2] = { HS_ALERT, HS_ALERT_TIMEOUT };

	if (!ss->established) {
		reject(ss, HS_ALERT_TIMEOUT, ML_ERR_TIMEOUT);
		atomic_fetch_add(&ss->srv->m.cpu_ns_rejected, ss->cpu_ns);
		(void)!hs_frame_put(out, a, sizeof(a));
	} else {
		ml_info("conn %llu %s: idle timeout (%s)",
		    (unsigned long long)ss->id, ss->addr, ss->peer.serial);
	}
}

static int
handshake_input(struct srv_sess *ss, const uint8_t *body, size_t len,
    struct ml_wr *out)
{
	struct srv *s = ss->srv;
	int r;

	if ((r = hs_advance(ss->hs, body, len, out)) != 0) {
		reject(ss, hs_alert(ss->hs), r);
		ss->cpu_acct = &s->m.cpu_ns_rejected;
		return 1;
	}
	if (!hs_is_done(ss->hs)) {
		return 0;
	}
	/*
	 * The monitor moves the session to POSTAUTH (sealed-upload
	 * decryption allowed) when it is told the handshake ended: before
	 * the session's first POSTAUTH key operation (mon_bind), not here,
	 * so that a channel that never decrypts costs the monitor one round
	 * trip per handshake, not two (BN-2).
	 */
	ss->mon_auth_owed = s->mon != NULL;
	if ((r = hs_rl_init(&ss->rl, ss->hs)) != 0 ||
	    (r = hs_peer_cert_copy(ss->hs, &ss->peer_cert,
	    &ss->peer_cert_len)) != 0) {
		reject(ss, HS_ALERT_INTERNAL, r);
		ss->cpu_acct = &s->m.cpu_ns_rejected;
		return 1;
	}
	ss->peer = *hs_peer(ss->hs);
	ss->peer.cert_der = ss->peer_cert;
	ss->peer.cert_len = ss->peer_cert_len;
	ss->established = true;
	hs_free(ss->hs);		/* wipes R3/R2 and the transcript */
	ss->hs = NULL;
	atomic_fetch_add(&s->m.hs_ok[ss->peer.flow], 1);
	srv_hist_observe(&s->m.hs_latency, wall_us() - ss->t_accept_us);
	srv_events_post(s->events, ss->peer.serial, REG_EV_HANDSHAKE,
	    ss->peer.flow == HS_FLOW_A ? "flow A" : "flow B");
	ss->cpu_acct = &s->m.cpu_ns_ok;
	ml_info("conn %llu %s: handshake %c ok: %s %s certno %s",
	    (unsigned long long)ss->id, ss->addr,
	    ss->peer.flow == HS_FLOW_A ? 'A' : 'B',
	    ss->peer.kind == HS_KIND_STATION ? "station" : "reader",
	    ss->peer.serial, ss->peer.certno);
	return 0;
}

static int
record_input(struct srv_sess *ss, const uint8_t *body, size_t len,
    struct ml_wr *out)
{
	struct srv *s = ss->srv;
	struct ml_wr reply = ml_wr_dyn(HS_MAX_RECORD);
	const struct hs_handler *h;
	uint8_t *pt = NULL, type = 0, rtype = HS_REC_APP - 1;
	uint8_t code[4];
	size_t n = 0;
	uint64_t t0 = wall_us();
	int r, ret = 1;

	if ((pt = malloc(HS_MAX_RECORD)) == NULL) {
		goto out;
	}
	if ((r = hs_rl_open(&ss->rl, body, len, &type, pt, HS_MAX_RECORD,
	    &n)) != 0) {
		atomic_fetch_add(&s->m.record_errors, 1);
		ml_warn("conn %llu %s: record refused (%s): session ends",
		    (unsigned long long)ss->id, ss->addr, ml_errname(r));
		goto out;
	}
	atomic_fetch_add(&s->m.records, 1);
	switch (type) {
	case HS_REC_CLOSE:
		goto out;
	case HS_REC_PING:
		r = hs_rl_seal(&ss->rl, HS_REC_PONG, pt, n, out);
		ret = r != 0;
		goto out;
	default:
		break;
	}
	if ((h = s->handler_by_type[type]) == NULL) {
		r = ML_ERR_UNSUPPORTED;
	} else {
		r = h->fn(s->handler_ctx[type], &ss->peer, type, pt, n, &reply,
		    &rtype);
	}
	srv_metrics_record(s, type, r, rtype, reply.p, reply.len,
	    wall_us() - t0);
	if (r == ML_ERR_AUTH || r == ML_ERR_STATE) {
		ml_warn("conn %llu %s: handler for 0x%02x ends the session: %s",
		    (unsigned long long)ss->id, ss->addr, type, ml_errname(r));
		goto out;
	}
	if (r != 0) {
		code[0] = (uint8_t)((uint32_t)r >> 24);
		code[1] = (uint8_t)((uint32_t)r >> 16);
		code[2] = (uint8_t)((uint32_t)r >> 8);
		code[3] = (uint8_t)r;
		ret = hs_rl_seal(&ss->rl, HS_REC_ERROR, code, 4, out) != 0;
		goto out;
	}
	if (rtype >= HS_REC_APP || reply.len > 0) {
		ret = hs_rl_seal(&ss->rl, rtype, reply.p, reply.len, out) != 0;
	} else {
		ret = 0;
	}
out:
	ml_freezero(pt, HS_MAX_RECORD);
	ml_wr_free(&reply);
	return ret;
}

int
srv_sess_input(struct srv_sess *ss, const uint8_t *body, size_t len,
    struct ml_wr *out)
{
	uint64_t now;
	int ret;

	if (worker_cpu_mark == 0) {
		worker_cpu_mark = thread_cpu_ns();	/* this worker's first job */
	}
	ss->t0 = worker_cpu_mark;
	/* key operations on this thread are for this session (monitor) */
	mon_bind(ss->id, ss->established ? MON_PHASE_POSTAUTH :
	    MON_PHASE_PREAUTH, &ss->mon_auth_owed);
	if (!ss->established) {
		/* worker CPU per handshake is accounted when it ends (ok or
		 * refused), including this message */
		ret = handshake_input(ss, body, len, out);
	} else {
		ret = record_input(ss, body, len, out);
	}
	mon_bind(0, MON_PHASE_NONE, NULL);
	now = thread_cpu_ns();
	ss->cpu_ns += now - ss->t0;
	worker_cpu_mark = now;
	if (ss->cpu_acct != NULL) {	/* the handshake ended: ok or refused */
		atomic_fetch_add(ss->cpu_acct, ss->cpu_ns);
		ss->cpu_acct = NULL;
	}
	return ret;
}
