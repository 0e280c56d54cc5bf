/*
 * The worker's side of the monitor (mon_proto.h, monitor.c): start
 * mintline-monitor, and the worker's key provider (struct key_provider,
 * keys/key.h) whose keys forward every private-key operation to it.  The
 * worker never loads a PKCS#11 module and never reads the PIN: it links
 * keys/'s interface but not its libp11 implementation (privilege
 * separation, docs/architecture.md "Keys").
 *
 * Threading: any thread may call; each call borrows one of the channels
 * (a pool with a mutex and condition variable) for one request/reply.
 * The session a call is for is the calling thread's, set with mon_bind()
 * by whoever runs a connection's job on that thread.
 */
#ifndef MON_CLIENT_H
#define MON_CLIENT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "key.h"
#include "mon_proto.h"

struct mon;

/*
 * Start the monitor: `monitor` is the executable, nchan the number of
 * request channels (worker threads + 1 is right).  The monitor opens the
 * key itself; key must name its PIN by pin-source (a pin-value would put
 * the PIN in this process: ML_ERR_ARG).  seal ("" or NULL: none) is the
 * note seal key's URI, under the same rule.  Then MON_HELLO fetches the
 * public key(s).  Returns 0 and *ret, or ML_ERR_*.
 */
ML_MUST_CHECK int mon_start(const char *monitor, int nchan, const char *module,
    const char *key, const char *seal, int verbose, struct mon **ret);
/* Close the channels (the monitor exits) and reap it.  NULL-safe. */
void	mon_stop(struct mon *m);
pid_t	mon_pid(const struct mon *m);
/* The notify channel's fd: EPOLLHUP on it means the monitor is gone. */
int	mon_watch_fd(const struct mon *m);
bool	mon_alive(const struct mon *m);
/* The I/O thread saw the monitor go: later calls fail at once. */
void	mon_lost(struct mon *m);

/* Public keys from MON_HELLO. */
void	mon_pub(const struct mon *m, uint8_t ret_pub[ML_P256_PUB_LEN]);
bool	mon_has_seal(const struct mon *m);

/*
 * The worker's key provider, chosen at start-up instead of libp11's
 * (key_p11_provider): ret->open(uri) gives
 *   - for the server key's URI (`key` of mon_start): a key whose sign is
 *     MON_SIGN_TRANSCRIPT and whose ecdh is MON_DECRYPT_KEYX during a
 *     handshake and MON_DECRYPT_FEATURE after it;
 *   - for any other URI, when the monitor opened a seal key
 *     (the `seal` of mon_start, opened by the monitor itself): the seal key,
 *     ecdh only, MON_DECRYPT_FEATURE; else ML_ERR_NOT_FOUND.
 * ret->pub(uri) is MON_PUBKEY (start-up only).  m must outlive the keys.
 */
void	mon_key_provider(struct mon *m, struct key_provider *ret);

/*
 * The session and phase of work on the calling thread (0: none).  With
 * MON_PHASE_POSTAUTH, auth_owed (NULL: none) is the session's flag "the
 * monitor has not been told the handshake ended": the first POSTAUTH key
 * operation sends MON_SESS_AUTH first and clears it.  A session that never
 * decrypts a feature upload so costs one monitor round trip per handshake
 * (its signature or key exchange), not two.
 */
void	mon_bind(uint64_t sess, enum mon_phase phase, bool *auth_owed);
/* The handshake of sess is done (MON_SESS_AUTH). */
ML_MUST_CHECK int mon_sess_auth(struct mon *m, uint64_t sess);
/* The connection is gone: one-way note, never blocks; gathered with
 * others into one note of up to MON_CLOSE_MAX ids.  NULL-safe. */
void	mon_sess_close(struct mon *m, uint64_t sess);
/* Send the gathered close notes: now, or if the first has waited
 * MON_CLOSE_WAIT_MS (the I/O thread calls this once per loop).  NULL-safe. */
void	mon_close_flush(struct mon *m, bool now);

/* MON_PUBKEY (start-up only): a public key in the monitor's token. */
ML_MUST_CHECK int mon_pubkey(struct mon *m, const char *uri,
    uint8_t ret_pub[ML_P256_PUB_LEN]);

#endif
