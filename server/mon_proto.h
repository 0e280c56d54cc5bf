/*
 * The monitor protocol: what the network-facing mintline-server (the
 * "worker") may ask of mintline-monitor, the process that holds the HSM
 * session.  See docs/protocol.md, "Privilege separation".
 *
 * Transport: SOCK_SEQPACKET socketpairs created by the worker before it
 * execs the monitor; one message per packet, so a short read is a protocol
 * error and not a partial message.
 *   - MON_CHANNELS request channels (fds MON_FD_BASE ..): strictly one
 *     request, one reply; the worker hands one channel to one thread at a
 *     time (mon_client.c keeps them in a pool), so calls from several
 *     worker threads run concurrently and never interleave on a channel.
 *   - one notify channel (fd MON_FD_BASE + nchannels): one-way session
 *     close notes from the worker's I/O thread, never answered; one note
 *     names up to MON_CLOSE_MAX closed sessions (the worker gathers them
 *     for at most MON_CLOSE_WAIT_MS, so the monitor is not woken once per
 *     connection).
 *
 * Request:	u8 type | u64be session | body (type-specific, fixed length)
 * Reply:	i32be result (0 or ML_ERR_*) | body (only when result is 0)
 *
 * Sessions: the worker names the connection each request is for.  Ids are
 * the worker's connection numbers and only ever grow; requests of
 * concurrent sessions arrive in any order.  The monitor keeps one slot
 * per id modulo MON_SESS_SLOTS: the first request naming an id above its
 * slot's last id opens that session; a request naming the slot's id must
 * find it live; an older id, or a closed one, is refused.  Requests flagged MON_ONCE
 * succeed at most once per session (whether or not the HSM call works),
 * so a replayed or re-tried handshake step has nothing to work with.
 */
#ifndef MON_PROTO_H
#define MON_PROTO_H

#include <stdint.h>

#include "ml_ossl.h"

#define MON_FD_BASE		3	/* first channel fd in the monitor */
#define MON_MAX_CHANNELS	130	/* workers (<= 64) + main thread + spare */
#define MON_MAX_MSG		2048	/* any request or reply (>= 9 + MON_MAX_URI) */
#define MON_MAX_URI		1024	/* MON_PUBKEY body */
#define MON_SESS_SLOTS		(1u << 18)	/* live-session table */
#define MON_CLOSE_MAX		32	/* session ids in one close note */
#define MON_CLOSE_WAIT_MS	100	/* the longest a closed id waits for
					 * its note (mon_close_flush) */
_Static_assert(MON_MAX_MSG >= 1 + 8 + MON_MAX_URI, "MON_PUBKEY must fit");
_Static_assert(MON_MAX_MSG >= 1 + 8 * MON_CLOSE_MAX, "a close note must fit");

enum mon_type {
	MON_HELLO		= 1,	/* -> pub(65) [seal_pub(65)]: start-up */
	MON_SIGN_TRANSCRIPT	= 2,	/* digest(32) -> sig(64); PREAUTH ONCE */
	MON_DECRYPT_KEYX	= 3,	/* peer(65) -> secret(32); PREAUTH ONCE */
	MON_SESS_AUTH		= 4,	/* () -> (): handshake done */
	MON_DECRYPT_FEATURE	= 5,	/* peer(65) -> secret(32); POSTAUTH */
	MON_PUBKEY		= 6,	/* uri -> pub(65): a public key in a token */
	MON_SESS_CLOSE		= 7,	/* u64be id x 1..MON_CLOSE_MAX (in
					 * place of the session) on the notify
					 * channel; no reply */
	MON_TYPE_MAX
};

/* MON_HELLO reply flags byte: a separate seal key is configured. */
#define MON_HELLO_SEAL		0x01

/* Session phases as the worker announces them (mon_client.c). */
enum mon_phase {
	MON_PHASE_NONE = 0,	/* not on a connection (start-up) */
	MON_PHASE_PREAUTH,	/* handshake running */
	MON_PHASE_POSTAUTH,	/* channel established */
};

#endif
