/*
 * How a station reaches the registration server with issuance records
 * (server/note_proto.h): one request record, one reply record.
 *
 * Transports, by spec:
 *   "unix:PATH"	the stand-in local transport of mintline-note-server
 *			(a Unix socket in a 0700 directory; the server
 *			accepts only peers of its own uid, SO_PEERCRED).
 *			Frame: type(1) length(4, BE) body.  It exists until
 *			hs/'s authenticated channel (hs_api.h: client
 *			connect -> struct hs_chan, hs_chan_send/recv) is
 *			published; then "hs:HOST:PORT" replaces it with the
 *			same calls.
 *   an in-process struct reg_note (note_uplink_local()): tests and the
 *			benchmark.
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

ML_MUST_CHECK int note_uplink_open(const char *spec, struct note_uplink **ret);
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

/* Frame I/O shared with the stand-in server. */
ML_MUST_CHECK int note_frame_write(int fd, unsigned type, const uint8_t *p,
    size_t n);
/* ML_ERR_REMOVED at a clean end of stream before a frame starts. */
ML_MUST_CHECK int note_frame_read(int fd, unsigned *ret_type, uint8_t *p,
    size_t cap, size_t *ret_len);

#endif
