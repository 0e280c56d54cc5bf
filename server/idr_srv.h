/*
 * Server side of ID reading (ID-7, ID-8, ID-10): upload sessions,
 * reassembly with retransmission instructions, the SAM call and the
 * RESULT under the upload key.  Transport-agnostic: idr_srv_handle() has
 * the shape of an hs/ record handler (hs_handler_fn), so mintline-server
 * serves it on its worker threads (server/idread_app.c) and the tests and
 * the benchmark call it directly through the loopback link
 * (idr_link_loop(), idr_client.h).
 *
 * Sessions are keyed by the upload id the server made, and bound to the
 * authenticated peer that began them (serial and certificate number).
 * Limits per session: a deadline from BEGIN, a number of END/RETX rounds
 * and a number of PKT records; the server-wide number of live sessions and
 * the number per peer are bounded too.  An upload that breaks a limit ends
 * with a RESULT carrying the error, and its state is freed at once.
 *
 * Thread-safe: one struct idr_srv serves every connection.
 */
#ifndef IDR_SRV_H
#define IDR_SRV_H

#include <stdint.h>

#include "hs_api.h"
#include "ml_wr.h"

struct sam;

/* What the server records per reader (ID-3); ev is REG_EV_READ (1) or
 * REG_EV_ERROR (2) of server/registry.h. */
typedef void (*idr_record_fn)(void *ctx, const struct hs_peer *peer,
    int ev, const char *detail);

struct idr_srv_cfg {
	uint32_t	 deadline_ms;	/* 0: IDR_DEADLINE_MS */
	uint8_t		 max_rounds;	/* 0: IDR_MAX_ROUNDS */
	uint32_t	 max_sessions;	/* 0: 4096 */
	uint32_t	 max_per_peer;	/* 0: 4 */
	idr_record_fn	 record;	/* may be NULL */
	void		*record_ctx;
};

struct idr_srv;

/* sam is borrowed (shared, thread-safe); keep it open while srv lives. */
ML_MUST_CHECK int idr_srv_new(const struct idr_srv_cfg *cfg, struct sam *sam,
    struct idr_srv **ret_srv);
void		 idr_srv_free(struct idr_srv *s);	/* NULL-safe, wipes */
/*
 * SIGHUP: new deadline and retransmission rounds (0: the defaults) for the
 * reads that begin from now on; a read in progress keeps the limits its
 * READY told the reader (ID-7).
 */
void		 idr_srv_set_limits(struct idr_srv *s, uint32_t deadline_ms,
    uint8_t max_rounds);

/*
 * The record handler (hs_handler_fn): BEGIN -> READY; PKT, BURST -> nothing;
 * END -> RETX or RESULT; ABORT -> nothing.  Returns a negative ML_ERR_*
 * for a malformed BEGIN/END/ABORT (the server then answers HS_REC_ERROR),
 * 0 otherwise (a bad PKT is counted, never answered).
 */
int		 idr_srv_handle(void *ctx, const struct hs_peer *peer,
    uint8_t type, const uint8_t *payload, size_t len, struct ml_wr *reply,
    uint8_t *reply_type);

/* Drop sessions past their deadline (idr_srv_handle does it on BEGIN). */
void		 idr_srv_reap(struct idr_srv *s);

struct idr_srv_stats {
	uint64_t	 uploads;	/* BEGIN accepted */
	uint64_t	 ok;		/* RESULT with ID information */
	uint64_t	 failed;	/* RESULT with an error, or aborted */
	uint64_t	 expired;	/* reaped past the deadline */
	uint64_t	 pkts;		/* PKT records taken */
	uint64_t	 pkts_bad;
	uint64_t	 pkts_dup;
	uint64_t	 retx_rounds;
	uint32_t	 live;		/* sessions now */
};
void		 idr_srv_get_stats(struct idr_srv *s, struct idr_srv_stats *ret);

#endif
