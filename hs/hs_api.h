/*
 * The public face of hs/: what the station (as reader or issuing station)
 * and the server call.  The handshake internals (message tables, transcript,
 * per-message send/recv) live behind it in the hs_*.c files; docs/protocol.md is the
 * wire reference.
 *
 * Roles: the *client* is a reader (ID-2..ID-5) or a station (BN-3..BN-7:
 * stations authenticate exactly as readers do, with their own
 * certificates); the *server* is mintline-server.
 *
 * Keys never enter this library: every private-key operation goes through
 * struct key (keys/key.h), backed by the reader secure chip (our PKCS#11
 * module), the HSM (through libp11 in mintline-monitor; the server reaches
 * it through the monitor client), or software keys in unit tests and
 * benchmarks.
 *
 * Threading: a struct hs_chan is used by one thread at a time.  struct
 * hs_trust is immutable after creation except for its internal
 * verification cache, which is locked: share one among all threads.
 *
 * All int-returning functions return 0 or a negative ML_ERR_* (ml_err.h)
 * and leave their ret_ outputs untouched on failure.
 */
#ifndef HS_API_H
#define HS_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "key.h"
#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_wr.h"

/* ---------------------------------------------------------------- limits */

#define HS_VERSION		1
#define HS_MAX_CERT		2048	/* one DER certificate */
#define HS_MAX_CHAIN		3	/* leaf + up to 2 intermediates */
#define HS_MAX_SERIAL		32	/* reader/station serial: [A-Za-z0-9._-] */
#define HS_MAX_CERTNO		40	/* certificate number: X.509 serialNumber
					 * as upper-case hex, no leading zeros */
#define HS_R_LEN		32	/* R1, R2, client nonce */
#define HS_MAX_HS_MSG		8192	/* handshake message body */
#define HS_MAX_RECORD		(64 * 1024)	/* channel payload (plaintext) */
#define HS_REC_OVERHEAD		(1 + 8 + ML_GCM_TAG_LEN)  /* type seq tag */
#define HS_MAX_FRAME		(HS_MAX_RECORD + HS_REC_OVERHEAD)
#define HS_R1_LIFETIME_MS	10000	/* R1 older than this is refused (ID-5) */
#define HS_DEFAULT_TIMEOUT_MS	10000

enum hs_flow {
	HS_FLOW_NONE = 0,
	HS_FLOW_A = 1,		/* ID-2: server R1, client signs, server sends R3 */
	HS_FLOW_B = 2,		/* ID-4: server R1+cert, client sends R2 */
};

/* What the client claims to be; must match the registry entry (ID-3). */
enum hs_kind {
	HS_KIND_READER = 1,	/* ID-card reader (no SAM) */
	HS_KIND_STATION = 2,	/* issuance line / verification desk */
};

/* ---------------------------------------------------------------- trust */

/*
 * The CA root (and optional CRL) that certificates are verified against,
 * with a verification cache keyed by the SHA-256 of the presented chain.
 * Verification: chain to the root, validity at the current time, key usage
 * digitalSignature, P-256 key; CRL checked (X509_V_FLAG_CRL_CHECK) when one
 * is configured.  X.509 work runs in ml_ossl's private OSSL_LIB_CTX.
 */
struct hs_trust;

/* From PEM or DER files; crl_path may be NULL. */
ML_MUST_CHECK int hs_trust_load(const char *ca_path, const char *crl_path,
    struct hs_trust **ret_trust);
/* From DER bytes (tests); crl_der may be NULL. */
ML_MUST_CHECK int hs_trust_new_der(const uint8_t *ca_der, size_t ca_len,
    const uint8_t *crl_der, size_t crl_len, struct hs_trust **ret_trust);
void	hs_trust_free(struct hs_trust *t);		/* NULL-safe */
/*
 * Replace the CRL (e.g. on SIGHUP): verifications from now on use the new
 * one, and every cached verdict is dropped.  Safe while other threads
 * verify.  On failure the old CRL stays in force.
 */
ML_MUST_CHECK int hs_trust_reload_crl(struct hs_trust *t, const char *crl_path);

/* A DER blob (certificate), borrowed. */
struct hs_blob {
	const uint8_t	*p;
	size_t		 len;
};

/* One party's credentials: its key and its certificate chain
 * (chain[0] is the leaf, DER; at most HS_MAX_CHAIN). All borrowed. */
struct hs_cred {
	const struct key	*key;
	const struct hs_blob	*chain;
	size_t			 nchain;
	/* Optional: the leaf's public key (65 bytes) and certificate number
	 * (hex), so that each new handshake does not parse the leaf again
	 * (that costs ~200 us); NULL: parsed from chain[0]. */
	const uint8_t		*pub;
	const char		*certno;
};

/*
 * A certificate chain loaded from a PEM file (leaf first, then
 * intermediates), owning its DER copies.  hs_chain_free() is NULL-safe.
 */
struct hs_chain {
	uint8_t		*der[HS_MAX_CHAIN];
	struct hs_blob	 blob[HS_MAX_CHAIN];
	size_t		 n;
};
ML_MUST_CHECK int hs_chain_load(const char *pem_path, struct hs_chain *ret);
void	hs_chain_free(struct hs_chain *c);

/* ---------------------------------------------------------------- peer */

/*
 * The authenticated peer of a channel, as the server sees the client (and
 * as the client sees the server: kind 0, serial/certno of the server cert).
 * serial: the subject serialNumber attribute (2.5.4.5) of the leaf
 * certificate; certno: the leaf's X.509 serialNumber as upper-case hex.
 * Both were in the signed data and the message, and matched the
 * certificate and (server side) the registry mapping (ID-3).
 */
struct hs_peer {
	enum hs_flow	 flow;
	enum hs_kind	 kind;
	char		 serial[HS_MAX_SERIAL + 1];
	char		 certno[HS_MAX_CERTNO + 1];
	uint8_t		 pub[ML_P256_PUB_LEN];	/* leaf public key */
	const uint8_t	*cert_der;		/* leaf, owned by the channel */
	size_t		 cert_len;
};

/* ---------------------------------------------------------------- channel */

/*
 * Record types carried by the channel after the handshake.  Applications
 * (issuance, ID reading) define theirs from HS_REC_APP upwards (see
 * docs/protocol.md for the allocation table; add yours there).
 * ID reading (idread/idpkt.h) owns HS_REC_APP + 0x30 .. + 0x3F (0x40..0x4F).
 */
#define HS_REC_CLOSE	0x00	/* orderly end; payload empty */
#define HS_REC_ERROR	0x01	/* server: request failed; payload i32be ML_ERR_* */
#define HS_REC_PING	0x02	/* echo: the server replies HS_REC_PONG, same payload */
#define HS_REC_PONG	0x03
#define HS_REC_APP	0x10	/* first application type */
/* The diagnostic echo (server/apps.c, station `handshake`): the reply is
 * u8 flow, u8 kind, lv8 serial, lv8 certno of the authenticated peer. */
#define HS_REC_WHOAMI	(HS_REC_APP + 0x00)

struct hs_chan;		/* an established channel: keys, sequence numbers, fd */

/* Client side configuration. */
struct hs_client_cfg {
	enum hs_flow		 flow;		/* A or B */
	enum hs_kind		 kind;		/* reader or station */
	struct hs_cred		 cred;		/* our key + certificate chain */
	const struct hs_trust	*trust;		/* CA root the server must chain to */
	const char		*serial;	/* our serial (must match our cert) */
	int			 timeout_ms;	/* per read; 0 = HS_DEFAULT_TIMEOUT_MS */
};

/*
 * Connect to host:port (TCP), run the handshake named by cfg->flow and
 * return an established channel in *ret_chan (caller frees with
 * hs_chan_close()).  Certificate number is taken from our leaf.  On
 * failure: ML_ERR_CERT (server cert not from our root / revoked),
 * ML_ERR_AUTH (bad server signature or R3), ML_ERR_REJECTED (the server
 * sent an alert; *ret_alert, if not NULL, gets its HS_ALERT_* code),
 * ML_ERR_IO / ML_ERR_TIMEOUT, ML_ERR_FORMAT ...
 */
ML_MUST_CHECK int hs_connect(const char *host, const char *port,
    const struct hs_client_cfg *cfg, struct hs_chan **ret_chan,
    int *ret_alert);
/* The same over an already-connected stream socket; fd is owned by the
 * channel on success, untouched (not closed) on failure. */
ML_MUST_CHECK int hs_client_fd(int fd, const struct hs_client_cfg *cfg,
    struct hs_chan **ret_chan, int *ret_alert);

/*
 * Seal and send one record of `type` with len <= HS_MAX_RECORD bytes.
 * ML_ERR_TOO_LARGE over the limit; ML_ERR_IO when the peer is gone.
 */
ML_MUST_CHECK int hs_chan_send(struct hs_chan *c, uint8_t type,
    const void *payload, size_t len);
/*
 * Receive one record: waits up to timeout_ms (<0: the channel default).
 * Returns 0 with *ret_type and *ret_len (bytes in buf, cap >= needed), or
 * ML_ERR_TIMEOUT (channel still usable), ML_ERR_TOO_LARGE (cap too small;
 * the session ends), ML_ERR_AUTH (tampered, replayed, reordered record:
 * the session ends), ML_ERR_IO (peer closed), ML_ERR_REJECTED (the server
 * refused the handshake: flow B; see hs_chan_alert()).  A received
 * HS_REC_CLOSE is
 * returned as a record of that type.
 */
ML_MUST_CHECK int hs_chan_recv(struct hs_chan *c, uint8_t *ret_type,
    uint8_t *buf, size_t cap, size_t *ret_len, int timeout_ms);
/* Send then receive (the common request/reply case). */
ML_MUST_CHECK int hs_chan_call(struct hs_chan *c, uint8_t type,
    const void *req, size_t req_len, uint8_t *ret_type, uint8_t *buf,
    size_t cap, size_t *ret_len);
/* The HS_ALERT_* code after hs_chan_recv() returned ML_ERR_REJECTED (in
 * flow B the server's verdict on READER_KEYX arrives on the channel). */
int	hs_chan_alert(const struct hs_chan *c);
/* The authenticated peer (valid while the channel lives). */
const struct hs_peer *hs_chan_peer(const struct hs_chan *c);
/* Send HS_REC_CLOSE (best effort), close the fd, wipe keys, free.
 * NULL-safe. */
void	hs_chan_close(struct hs_chan *c);

/* ---------------------------------------------------------------- server */

/*
 * A record handler, run by mintline-server on a worker thread (never the
 * I/O thread), one record at a time per connection, after the handshake
 * has authenticated `peer`.  Handlers for different connections run
 * concurrently: app_ctx must be thread-safe.
 *
 * Write the reply payload into `reply` (a growable writer limited to
 * HS_MAX_RECORD) and set *reply_type; leave reply empty and *reply_type
 * untouched for "no reply" (the default *reply_type is HS_REC_APP - 1,
 * meaning none).  Return 0, or a negative ML_ERR_* to have the server
 * answer HS_REC_ERROR with that code (the channel stays up); return
 * ML_ERR_STATE or ML_ERR_AUTH to end the session.
 */
typedef int (*hs_handler_fn)(void *app_ctx, const struct hs_peer *peer,
    uint8_t type, const uint8_t *payload, size_t len,
    struct ml_wr *reply, uint8_t *reply_type);

struct hs_handler {
	uint8_t		 type;		/* >= HS_REC_APP */
	hs_handler_fn	 fn;
};

struct reg;		/* server/registry.h */
struct srv_opts;	/* server/srv.h */

/* What the server hands an application at start. */
struct hs_app_env {
	struct reg		*registry;	/* thread-safe; server/registry.h */
	/* The HSM key, through mintline-monitor (docs/protocol.md section
	 * 11): in a record handler only ecdh works (MON_DECRYPT_FEATURE);
	 * sign is refused (ML_ERR_STATE) outside a handshake. */
	const struct key	*server_key;
	/* What opens further keys (the note seal key) and reads public keys
	 * named by pkcs11: URIs: the server's is the monitor client. */
	const struct key_provider *keys;
	const uint8_t		*server_pub;	/* its public point, 65 bytes */
	const struct hs_trust	*trust;
	/* mintline-server's configuration (server/srv.h): every setting an
	 * application takes comes from here, none from the environment */
	const struct srv_opts	*opts;
};

/*
 * An application served over the channel: mintline-server lists them in
 * server/apps.c (`srv_apps[]`, one line per application).  init runs once
 * at start-up on the main thread (may be NULL); fini at shutdown; reload
 * on every SIGHUP.
 */
struct hs_app {
	const char		*name;
	int			(*init)(const struct hs_app_env *env,
				    void **ret_app_ctx);
	void			(*fini)(void *app_ctx);
	/* SIGHUP, on the I/O thread, after env->opts took the reloadable
	 * keys: apply them while the handlers keep running (may be NULL). */
	void			(*reload)(void *app_ctx,
				    const struct hs_app_env *env);
	const struct hs_handler	*handlers;
	size_t			 nhandlers;
};

/* ---------------------------------------------------------------- alerts */

/*
 * Why a handshake ended.  The server sends the code in an ALERT message
 * (docs/protocol.md) before it closes, logs the reason name and counts it
 * (one metric counter per code).
 */
#define HS_ALERTS(X)							\
	X(HS_ALERT_NONE,	 0, "none")				\
	X(HS_ALERT_FORMAT,	 1, "malformed or oversized message")	\
	X(HS_ALERT_VERSION,	 2, "unsupported version or flow")	\
	X(HS_ALERT_UNEXPECTED,	 3, "unexpected message")		\
	X(HS_ALERT_R1,		 4, "R1 not issued here, used or stale")\
	X(HS_ALERT_CERT,	 5, "certificate rejected")		\
	X(HS_ALERT_REVOKED,	 6, "certificate revoked")		\
	X(HS_ALERT_IDENTITY,	 7, "identity does not match")		\
	X(HS_ALERT_UNKNOWN,	 8, "reader not registered")		\
	X(HS_ALERT_RISK,	 9, "reader flagged by risk control")	\
	X(HS_ALERT_SIG,		10, "signature invalid")		\
	X(HS_ALERT_DECRYPT,	11, "key exchange did not decrypt")	\
	X(HS_ALERT_TIMEOUT,	12, "timed out")			\
	X(HS_ALERT_INTERNAL,	13, "internal error")			\
	X(HS_ALERT_BUSY,	14, "server busy")

enum hs_alert {
#define HS_ALERT_ENUM(name, value, text) name = (value),
	HS_ALERTS(HS_ALERT_ENUM)
#undef HS_ALERT_ENUM
	HS_ALERT_MAX
};

const char	*hs_alert_name(int alert);	/* "HS_ALERT_SIG" */
const char	*hs_alert_text(int alert);	/* "signature invalid" */

#endif
