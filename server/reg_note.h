/*
 * Note registration (BN-7) and the online verification query (BN-8): the
 * server's record handlers for NOTE_REC_ENROL, NOTE_REC_UPLOAD and
 * NOTE_REC_QUERY (note/note_proto.h).
 *
 *= REQ BN-7
 *# The server decrypts with its private key (held in an HSM) and gets the
 *# feature information; the wrong key cannot decrypt.
 *
 * An upload is accepted only when, in this order (cheapest refusal
 * first): it parses; its chip is enrolled; the chip's signature over the
 * sealed blob verifies with the enrolled key; the blob opens with the
 * server key (ECDH in the HSM through keyops); the record inside names the
 * same chip; the station's authorisation signature over
 * (NOTE_AUTH_DOMAIN || challenge || chip serial || feature) verifies with
 * one of the authorised issuer keys; the feature information is well
 * formed, its check code right, its keyed code right (when the server has
 * the feature key) and its chip key fingerprint that of the enrolled key.
 * Then the registry insert decides: new (registered), the same note again
 * (NOTE_ST_AGAIN, the first registration id), or a duplicate serial / used
 * chip (refused; both chips flagged).  Every refusal is logged and counted
 * under its reason and registers nothing.
 *
 * Thread safety: reg_note_handle() may run on several worker threads.
 */
#ifndef REG_NOTE_H
#define REG_NOTE_H

#include <stddef.h>
#include <stdint.h>

#include "chip_proto.h"
#include "feature.h"
#include "hs_api.h"
#include "ml_err.h"
#include "ml_ossl.h"
#include "ml_wr.h"
#include "note_uplink.h"
#include "registry.h"

struct reg_note_cfg {
	struct reg		*reg;		/* borrowed: chips, notes */
	const struct key	*server_key;	/* ecdh with the seal key */
	uint8_t			 server_pub[ML_P256_PUB_LEN];
	uint8_t			 issuers[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	size_t			 nissuers;
	/* the feature keys whose keyed codes are accepted (none: keyed
	 * codes not checked); the first is the current one, the others
	 * are kept while stations move to it (OP-5) */
	uint8_t			 feature_keys[FEATURE_MAX_KEYS][FEATURE_KEY_LEN];
	size_t			 nfeature_keys;
};

struct reg_note_stats {
	uint64_t	 enrolled, registered, again, queries, checks;
	uint64_t	 rejected[32];		/* by NOTE_R_* */
};

struct reg_note;

ML_MUST_CHECK int reg_note_new(const struct reg_note_cfg *cfg,
    struct reg_note **ret);
void		 reg_note_free(struct reg_note *rn);	/* NULL-safe */

/*
 * Handle one request record of type `type`; the reply record body
 * (NOTE_REC_REPLY) is appended to reply.  Returns 0 whenever a reply was
 * written (including refusals), ML_ERR_UNSUPPORTED for a record type that
 * is not ours, or ML_ERR_* when no reply could be made.
 */
ML_MUST_CHECK int reg_note_handle(struct reg_note *rn, unsigned type,
    const uint8_t *req, size_t len, struct ml_wr *reply);
/*
 * The same, for a request from the authenticated station peer (or NULL):
 * the pre-check's serial promise is per station (see reg_note.c,
 * reserve()), and the audit rows (OP-5) name its certificate serial and
 * number ("local" without a peer).
 */
ML_MUST_CHECK int reg_note_handle_from(struct reg_note *rn,
    const struct hs_peer *peer, unsigned type, const uint8_t *req,
    size_t len, struct ml_wr *reply);

/*
 * Replace the authorised issuer keys (SIGHUP, BN-4): uploads signed by a
 * key no longer listed are refused from now on; notes registered under it
 * stay in the registry and verify as before (the registry keeps the
 * issuer key of each note).  On error the old set stays.
 */
ML_MUST_CHECK int reg_note_set_issuers(struct reg_note *rn,
    const uint8_t (*pubs)[ML_P256_PUB_LEN], size_t n);

/*
 * Replace the feature keys whose keyed identification codes uploads and
 * pre-checks must carry (SIGHUP, OP-5); n == 0 stops checking keyed codes.
 * A pre-check or upload being checked finishes under the old set.
 */
ML_MUST_CHECK int reg_note_set_feature_keys(struct reg_note *rn,
    const uint8_t (*keys)[FEATURE_KEY_LEN], size_t n);

void		 reg_note_get_stats(struct reg_note *rn,
    struct reg_note_stats *ret);

/* rn as an in-process request handler for note_uplink_local(). */
void		 reg_note_server(struct reg_note *rn, struct note_server *ret);

#endif
