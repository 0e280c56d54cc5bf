/*
 * How a station reaches the registration server with issuance records
 * (server/note_proto.h): one request record, one reply record.
 *
 * Transports: the station's authenticated hs channel
 * (station/note_chan.c, through note_uplink_custom()), or an in-process
 * struct reg_note (note_uplink_local(): tests and the benchmark).
 *
 * A struct note_uplink is one connection: use one per thread.
 */
#ifndef NOTE_UPLINK_H
#define NOTE_UPLINK_H

#include <stddef.h>
#include <stdint.h>

#include "ml_err.h"

struct reg_note;
struct note_uplink;

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
ML_MUST_CHECK int note_uplink_local(struct reg_note *rn,
    struct note_uplink **ret);
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
