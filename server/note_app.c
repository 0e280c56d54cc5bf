/*
 * The banknote application of mintline-server (BN-6..BN-8): chip enrolment,
 * sealed-upload registration (BN-7) and the online desk query (BN-8) as
 * hs record handlers on the worker threads.  The logic is reg_note.c;
 * this file binds it to the server.
 *
 * Configuration (server/config.c, keys of the configuration file and
 * options of the same name):
 *   note-issuers	authorised issuer keys, blank separated: pkcs11:
 *			URIs (public key objects) or PEM files; unset: the
 *			application refuses every record
 *   note-feature-key	optional: the feature key file, to check the keyed
 *			identification codes as well
 *   note-seal-key	optional: pkcs11: URI of a separate seal key in the
 *			HSM (the monitor opens it); without it the server's
 *			channel key (its certificate key) is the seal key too
 * Chips and notes live in the server's one registry (--registry).
 *
 * The chips are personalised with the seal key's public key; ECDH runs
 * inside the token.  Only peers whose certificate says "station" may send
 * these records.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feature.h"
#include "ml_log.h"
#include "ml_wipe.h"
#include "note_proto.h"
#include "reg_note.h"
#include "registry.h"
#include "srv.h"

struct note_app {
	struct reg	*registry;	/* the server's: chips, notes, risk records */
	struct reg_note	*rn;
	struct key	*seal;		/* note-seal-key, or NULL */
};

static int
note_app_init(const struct hs_app_env *env, void **ret_ctx)
{
	const char *iss = env->opts->note_issuers;
	const char *fk = env->opts->note_feature_key;
	const char *sk = env->opts->note_seal_key;
	struct reg_note_cfg cfg;
	struct note_app *a = NULL;
	uint8_t fkey[FEATURE_KEY_LEN];
	char *list = NULL, *tok, *save = NULL;
	int r;

	ML_ENSURE((a = calloc(1, sizeof(*a))) != NULL, ML_ERR_NOMEM);
	a->registry = env->registry;
	if (*iss == '\0' || env->registry == NULL ||
	    env->server_key == NULL || env->keys == NULL ||
	    env->server_pub == NULL) {
		ml_warn("note: note-issuers not set: banknote records will be "
		    "refused");
		*ret_ctx = a;
		a = NULL;
		r = 0;
		goto out;
	}
	memset(&cfg, 0, sizeof(cfg));
	ML_ENSURE((list = strdup(iss)) != NULL, ML_ERR_NOMEM);
	for (tok = strtok_r(list, " \t\n", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\n", &save)) {
		ML_ENSURE(cfg.nissuers < REG_NOTE_MAX_ISSUERS, ML_ERR_TOO_LARGE);
		if ((r = key_pub_load(env->keys, tok, cfg.issuers[cfg.nissuers])) != 0) {
			ml_err("note: issuer key %zu: %s", cfg.nissuers + 1,
			    ml_errmsg(r));
			goto out;
		}
		cfg.nissuers++;
	}
	if (*fk != '\0') {
		if ((r = feature_key_load(fk, fkey)) != 0) {
			ml_err("note: feature key: %s", ml_errmsg(r));
			goto out;
		}
		cfg.feature_key = fkey;
	}
	cfg.reg = env->registry;
	if (*sk != '\0') {
		/* through the server's provider: the monitor holds it */
		if ((r = key_open(env->keys, sk, &a->seal)) != 0) {
			ml_err("note: seal key: %s", ml_errmsg(r));
			goto out;
		}
		cfg.server_key = a->seal;
		ML_TRY(key_pub(a->seal, cfg.server_pub));
	} else {
		cfg.server_key = env->server_key;
		memcpy(cfg.server_pub, env->server_pub, ML_P256_PUB_LEN);
	}
	ML_TRY(reg_note_new(&cfg, &a->rn));
	ml_info("note: registry %s, %zu issuer key(s)%s, %s",
	    env->registry->ops->name, cfg.nissuers,
	    cfg.feature_key ? ", keyed codes checked" : "",
	    a->seal != NULL ? "separate seal key" : "seal key = channel key");
	*ret_ctx = a;
	a = NULL;
	r = 0;
out:
	if (a != NULL) {
		reg_note_free(a->rn);
		key_free(a->seal);
		free(a);
	}
	free(list);
	ml_wipe(fkey, sizeof(fkey));
	return r;
}

static void
note_app_fini(void *ctx)
{
	struct note_app *a = ctx;

	if (a == NULL) {
		return;
	}
	reg_note_free(a->rn);
	key_free(a->seal);
	free(a);
}

static int
note_app_handle(void *ctx, const struct hs_peer *peer, uint8_t type,
    const uint8_t *payload, size_t len, struct ml_wr *reply,
    uint8_t *reply_type)
{
	struct note_app *a = ctx;
	int r;

	if (a == NULL || a->rn == NULL) {
		return ML_ERR_UNSUPPORTED;
	}
	if (peer->kind != HS_KIND_STATION) {
		ml_warn("note: record from reader %s refused", peer->serial);
		return ML_ERR_PERM;	/* only stations issue or verify notes */
	}
	if ((r = reg_note_handle_from(a->rn, peer->serial, type, payload, len,
	    reply)) != 0) {
		return r;
	}
	*reply_type = NOTE_REC_REPLY;
	/*
	 * A refused enrolment or upload goes into the station's risk record
	 * (ID-3's error history, which stations share with readers).
	 */
	if (type != NOTE_REC_QUERY && type != NOTE_REC_CHECK &&
	    a->registry != NULL) {
		struct note_reply rep;
		char detail[96];

		if (note_reply_parse(reply->p, reply->len, &rep) == 0 &&
		    rep.status == NOTE_ST_REJECT) {
			snprintf(detail, sizeof(detail), "note %s refused: %s",
			    type == NOTE_REC_ENROL ? "enrolment" : "upload",
			    note_reason_name(rep.reason));
			if (reg_event_add(a->registry, peer->serial, REG_EV_ERROR,
			    detail) != 0) {
				ml_warn("note: risk record not written for %s",
				    peer->serial);
			}
		}
	}
	return 0;
}

static const struct hs_handler note_app_handlers[] = {
	{ NOTE_REC_ENROL,	note_app_handle },
	{ NOTE_REC_UPLOAD,	note_app_handle },
	{ NOTE_REC_QUERY,	note_app_handle },
	{ NOTE_REC_CHECK,	note_app_handle },
};

const struct hs_app srv_app_note = {
	.name = "note",
	.init = note_app_init,
	.fini = note_app_fini,
	.handlers = note_app_handlers,
	.nhandlers = ML_NELEM(note_app_handlers),
};
