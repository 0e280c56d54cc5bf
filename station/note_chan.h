/*
 * The station's uplink to the registration server for the issuance
 * commands: the authenticated hs channel (handshake A or B with the
 * station's certificate, kind "station"), one channel per line position.
 *
 * The channel key, trust anchor and certificate chain are opened once per
 * command (note_chan_new) and shared by every channel, instead of once per
 * channel as st_link_open() does: libp11 finalises the PKCS#11 module for
 * the whole process when a key context is freed, so a failed reconnect
 * while the server restarts would otherwise pull the token from under the
 * issuer key and the other positions.
 */
#ifndef ST_NOTE_CHAN_H
#define ST_NOTE_CHAN_H

#include <pthread.h>
#include <stdbool.h>

#include "note_uplink.h"
#include "st.h"

struct note_chan;

/* Open the channel key, CA and chain.  *ret untouched on failure. */
ML_MUST_CHECK int note_chan_new(const struct st_conn *conn,
    struct note_chan **ret);
/* Free; call after every uplink of it is closed.  NULL-safe. */
void		 note_chan_free(struct note_chan *nc);

/* One connection (a handshake); one per worker thread. */
ML_MUST_CHECK int note_chan_open(struct note_chan *nc,
    struct note_uplink **ret);

/*
 * As note_chan_open(), without logging: on failure why (cap bytes) gets
 * the cause ("Connection refused", "handshake failed: alert ...").
 */
ML_MUST_CHECK int note_chan_connect(struct note_chan *nc,
    struct note_uplink **ret, char *why, size_t cap);

/*
 * A handshake in the background: started when a line position starts,
 * joined when its first request needs the channel, so that the handshake
 * runs while the chip works instead of before (OP-1: a desk or a line
 * ready sooner, BN-1 at scale: many positions starting at once).  Used
 * by one thread (the position's worker).
 */
struct note_chan_bg {
	pthread_t		 th;
	struct note_chan	*nc;
	struct note_uplink	*up;
	int			 r;
	char			 why[128];
	bool			 running;
};

/* Start it; when no thread can be made, nothing runs (join gives NULL). */
void		 note_chan_bg_start(struct note_chan *nc,
    struct note_chan_bg *bg);
/*
 * Wait for it: 0 with *ret its channel (*ret untouched when none was
 * started), or note_chan_connect()'s error with why (cap bytes).
 */
ML_MUST_CHECK int note_chan_bg_join(struct note_chan_bg *bg,
    struct note_uplink **ret, char *why, size_t cap);

/* The server's "host:port", for messages. */
const char	*note_chan_server(const struct note_chan *nc);

#endif
