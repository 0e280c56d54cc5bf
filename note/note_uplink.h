/*
 * How a station reaches the registration server with issuance records
 * (note_proto.h): one request record, one reply record (BN-6, BN-8).
 *
 * Transports: the station's authenticated hs channel
 * (station/note_chan.c, through note_uplink_custom()), or a request
 * handler in the same process (note_uplink_local(), a test seam compiled
 * only with ML_TEST_HOOKS: tests and the benchmark hand in the server's,
 * see server/reg_note.h reg_note_server()).
 *
 * A struct note_uplink is one connection: use one per thread.
 */
#ifndef NOTE_UPLINK_H
#define NOTE_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"
#include "ml_wr.h"

struct note_uplink;

/*
 * A request handler in process: handle appends the reply body of one
 * request record to reply (the contract of server/reg_note.h's
 * reg_note_handle()).
 */
struct note_server {
	int	(*handle)(void *ctx, unsigned type, const uint8_t *req,
		    size_t len, struct ml_wr *reply);
	void	*ctx;
};

/*
 * Any transport: call sends one request and returns the reply body; close
 * frees ctx.
 */
struct note_uplink_ops {
	int	(*call)(void *ctx, unsigned type, const uint8_t *req, size_t len,
		    uint8_t *resp, size_t cap, size_t *ret_len);
	void	(*close)(void *ctx);
};
ML_MUST_CHECK int note_uplink_custom(const struct note_uplink_ops *ops,
    void *ctx, struct note_uplink **ret);
#ifdef ML_TEST_HOOKS
/* srv is copied; srv->ctx is borrowed and must outlive the uplink. */
ML_MUST_CHECK int note_uplink_local(const struct note_server *srv,
    struct note_uplink **ret);
#endif
void		 note_uplink_close(struct note_uplink *u);	/* NULL-safe */

/*
 * Send one request record and wait for its reply body (at most cap
 * bytes).  ML_ERR_IO when the connection broke (the request may or may
 * not have been handled: every issuance request is idempotent, so the
 * caller reconnects and repeats it).
 */
ML_MUST_CHECK int note_uplink_call(struct note_uplink *u, unsigned type,
    const uint8_t *req, size_t len, uint8_t *resp, size_t cap,
    size_t *ret_len);

#endif
