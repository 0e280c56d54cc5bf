/*
 * hs/ internals: the handshake engine.  Transport-agnostic: hs_advance()
 * takes one received message body and appends the messages this side must
 * send (framed) to a writer, so the same engine runs over a socket
 * (hs_client.c, mintline-server) and over a memory pipe (tests, bench).
 */
#ifndef HS_H
#define HS_H

#include <stdbool.h>
#include <stdint.h>

#include "hs_api.h"
#include "ml_rd.h"
#include "ml_wr.h"

/* Handshake message types: the first byte of every handshake body. */
enum hs_msg {
	HS_DONE = 0,			/* table terminator, never on the wire */
	HS_KEYREQ = 0x01,		/* R->S: version, flow, identity claim */
	HS_CHALLENGE = 0x02,		/* S->R (A): R1 */
	HS_CHALLENGE_CERT = 0x03,	/* S->R (B): R1, server chain */
	HS_READER_AUTH = 0x04,		/* R->S (A): R1, id, chain, sig */
	HS_SERVER_AUTH = 0x05,		/* S->R (A): chain, seal(R3), sig */
	HS_READER_KEYX = 0x06,		/* R->S (B): R1, id, chain, seal(R2), sig */
	HS_MSG_MAX,
	HS_ALERT = 0x7f,		/* S->R: code, then close */
};

#define HS_MAX_STEPS	5
#define HS_FLOW_MAX	3

/* Roles are the writer letters of hs_steps[]. */
enum hs_role {
	HS_ROLE_CLIENT = 'R',
	HS_ROLE_SERVER = 'S',
};

/* The server's decision on an authenticated identity (registry, ID-3/5). */
typedef int (*hs_check_peer_fn)(void *ctx, const struct hs_peer *peer,
    int *ret_alert);

struct hs_server_cfg {
	struct hs_cred		 cred;		/* the HSM key + server chain */
	const struct hs_trust	*trust;
	hs_check_peer_fn	 check_peer;	/* NULL: accept any registered-by-CA peer */
	void			*check_ctx;
	uint32_t		 r1_lifetime_ms;	/* 0: HS_R1_LIFETIME_MS */
};

/* Certificate facts extracted by hs_trust_verify(). */
struct hs_certinfo {
	int		 kind;		/* subject OU: HS_KIND_*, or 3 = server */
	char		 serial[HS_MAX_SERIAL + 1];
	char		 certno[HS_MAX_CERTNO + 1];
	uint8_t		 pub[ML_P256_PUB_LEN];
};
#define HS_CERT_KIND_SERVER	3

/* Certificate facts of a DER leaf without verification (own cert,
 * enrolment). */
ML_MUST_CHECK int hs_cert_facts(const uint8_t *der, size_t len,
    struct hs_certinfo *ret);

/*
 * Verify a chain (chain[0] leaf) against t: cached by the SHA-256 of the
 * chain.  Returns 0 and fills *ret, or ML_ERR_CERT with *ret_alert =
 * HS_ALERT_CERT or HS_ALERT_REVOKED.
 */
ML_MUST_CHECK int hs_trust_verify(const struct hs_trust *t,
    const struct hs_blob *chain, size_t n, struct hs_certinfo *ret,
    int *ret_alert);
/* Cache statistics (hits, misses) for tests and metrics. */
void	hs_trust_stats(const struct hs_trust *t, uint64_t *ret_hits,
    uint64_t *ret_misses);

struct hs;

ML_MUST_CHECK int hs_client_new(const struct hs_client_cfg *cfg,
    struct hs **ret_hs);
ML_MUST_CHECK int hs_server_new(const struct hs_server_cfg *cfg,
    struct hs **ret_hs);
void	hs_free(struct hs *hs);				/* NULL-safe, wipes */

/*
 * Process one received message body (msg NULL to start: the client then
 * writes KEYREQ; the server writes nothing) and append the frames this side
 * sends next to out.  Returns 0, or ML_ERR_*: the handshake is over, and
 * hs_alert() tells why; a server has then appended an ALERT frame to out
 * (send it, then close).  A client that receives an ALERT returns
 * ML_ERR_REJECTED.
 */
ML_MUST_CHECK int hs_advance(struct hs *hs, const uint8_t *msg, size_t len,
    struct ml_wr *out);
bool	hs_is_done(const struct hs *hs);
int	hs_alert(const struct hs *hs);
enum hs_flow hs_get_flow(const struct hs *hs);
/* The authenticated peer; cert_der points into hs (valid while hs lives). */
const struct hs_peer *hs_peer(const struct hs *hs);
/* The serial claimed in KEYREQ ("" before), for logs. */
const char *hs_claimed_serial(const struct hs *hs);
/* Copy the peer cert out (channels outlive the engine). */
ML_MUST_CHECK int hs_peer_cert_copy(const struct hs *hs, uint8_t **ret_der,
    size_t *ret_len);
/* After hs_is_done(): our send and receive keys. */
ML_MUST_CHECK int hs_keys(const struct hs *hs,
    uint8_t ret_tx[static ML_AES256_KEY_LEN],
    uint8_t ret_rx[static ML_AES256_KEY_LEN]);

/* ---- framing: u32be length then body ---- */

/* Append one frame (u32be len || body). */
ML_MUST_CHECK int hs_frame_put(struct ml_wr *w, const uint8_t *body,
    size_t len);
/* Take the next complete frame from rd (max body length `max`): 0 with a
 * child reader over the body; ML_ERR_SHORT when incomplete (rd unchanged);
 * ML_ERR_TOO_LARGE over max. */
ML_MUST_CHECK int hs_frame_next(struct ml_rd *rd, size_t max,
    struct ml_rd *ret_body);

/* ---- the record layer (channel after the handshake) ---- */

struct hs_rl {
	uint8_t		 tx_key[ML_AES256_KEY_LEN];
	uint8_t		 rx_key[ML_AES256_KEY_LEN];
	uint64_t	 tx_seq;
	uint64_t	 rx_seq;
	bool		 dead;		/* a failed open ends the session */
};

/* Keys from a finished handshake. */
ML_MUST_CHECK int hs_rl_init(struct hs_rl *rl, const struct hs *hs);
void	hs_rl_wipe(struct hs_rl *rl);
/* Seal one record and append it as a frame to out. */
ML_MUST_CHECK int hs_rl_seal(struct hs_rl *rl, uint8_t type,
    const void *pt, size_t len, struct ml_wr *out);
/*
 * Open one record body (a frame's body).  Returns 0 with the type and
 * plaintext, or ML_ERR_AUTH (tag, sequence), ML_ERR_SHORT/FORMAT
 * (framing), ML_ERR_TOO_LARGE (cap); any failure marks rl dead.
 */
ML_MUST_CHECK int hs_rl_open(struct hs_rl *rl, const uint8_t *body,
    size_t len, uint8_t *ret_type, uint8_t *pt, size_t cap,
    size_t *ret_len);

/* ---- message parsers, exposed for the fuzz target ---- */

/* Parse (schema only, no crypto) any handshake body: 0 or ML_ERR_*. */
ML_MUST_CHECK int hs_msg_parse_only(const uint8_t *msg, size_t len);

/* ---- blocking frame I/O (client side) ---- */

ML_MUST_CHECK int hs_io_write_all(int fd, const uint8_t *p, size_t n,
    int timeout_ms);
/* Read one frame body into a malloc'd buffer (*ret_body, caller frees). */
ML_MUST_CHECK int hs_io_read_frame(int fd, size_t max, int timeout_ms,
    uint8_t **ret_body, size_t *ret_len);

/* Monotonic milliseconds. */
uint64_t hs_now_ms(void);

#endif
