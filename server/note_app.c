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
 *			application refuses every record.  Re-read on SIGHUP
 *			(BN-4): a key added writes at once, a key removed is
 *			retired (its notes stay registered and verify, its new
 *			uploads are refused); each change is an audit row
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
	/* the issuer keys in force (SIGHUP compares the new list with it) */
	uint8_t		 issuers[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	char		*specs[NOTE_MAX_ISSUERS];	/* their names */
	size_t		 nissuers;
};

/*
 * The note-issuers list: each pkcs11: URI or PEM file's public point, and
 * the names (ret_specs, strdup'd).  A name already in specs (the keys in
 * force) takes its known point: the monitor answers pkcs11: public keys at
 * start-up only, so on SIGHUP a key named by URI can stay or be retired,
 * and a new one is a PEM file (or a restart).
 */
static int
issuers_load(const struct key_provider *keys, const char *iss,
    char *const *specs, const uint8_t (*pubs)[ML_P256_PUB_LEN], size_t npubs,
    uint8_t (*ret)[ML_P256_PUB_LEN], char **ret_specs, size_t *ret_n)
{
	char *list = NULL, *tok, *save = NULL;
	size_t n = 0, i;
	int r;

	ML_ENSURE((list = strdup(iss)) != NULL, ML_ERR_NOMEM);
	for (tok = strtok_r(list, " \t\n", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\n", &save)) {
		if (n == NOTE_MAX_ISSUERS) {
			r = ml_errf(ML_ERR_TOO_LARGE, "note-issuers: more than "
			    "%d issuer keys", NOTE_MAX_ISSUERS);
			ml_err("note: %s", ml_errmsg(r));
			goto out;
		}
		for (i = 0; i < npubs; i++) {
			if (specs[i] != NULL && strcmp(specs[i], tok) == 0) {
				break;
			}
		}
		if (i < npubs) {
			memcpy(ret[n], pubs[i], ML_P256_PUB_LEN);
		} else if ((r = key_pub_load(keys, tok, ret[n])) != 0) {
			ml_err("note: issuer key %zu (%s): %s%s", n + 1, tok,
			    ml_errmsg(r), r == ML_ERR_STATE ? " (a pkcs11: "
			    "key new since start-up: name it by its PEM "
			    "file, or restart)" : "");
			goto out;
		}
		ML_ENSURE((ret_specs[n] = strdup(tok)) != NULL, ML_ERR_NOMEM);
		n++;
	}
	*ret_n = n;
	r = 0;
out:
	if (r != 0) {
		for (i = 0; i < n; i++) {
			free(ret_specs[i]);
			ret_specs[i] = NULL;
		}
	}
	free(list);
	return r;
}

static void
specs_free(char **specs)
{
	size_t i;

	for (i = 0; i < NOTE_MAX_ISSUERS; i++) {
		free(specs[i]);
		specs[i] = NULL;
	}
}

static bool
issuer_in(const uint8_t (*set)[ML_P256_PUB_LEN], size_t n,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (memcmp(set[i], pub, ML_P256_PUB_LEN) == 0) {
			return true;
		}
	}
	return false;
}

/*
 * One audit row per issuer key change (OP-5): action issuer-add or
 * issuer-retire, subject kind "issuer", subject the SHA-256 of the public
 * point in hex.  A registry that cannot take it is logged; the key change
 * stands.
 */
static void
issuer_audit(struct reg *reg, const char *action,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	static const char hx[] = "0123456789abcdef";
	uint8_t md[ML_SHA256_LEN];
	struct reg_audit a;
	size_t i;
	int r;

	memset(&a, 0, sizeof(a));
	snprintf(a.action, sizeof(a.action), "%s", action);
	snprintf(a.actor, sizeof(a.actor), "server");
	snprintf(a.subject_kind, sizeof(a.subject_kind), "issuer");
	snprintf(a.outcome, sizeof(a.outcome), "ok");
	snprintf(a.detail, sizeof(a.detail), "SIGHUP: note-issuers");
	if (ml_sha256(pub, ML_P256_PUB_LEN, md) != 0) {
		return;
	}
	for (i = 0; i < sizeof(md) && 2 * i + 1 < sizeof(a.subject); i++) {
		a.subject[2 * i] = hx[md[i] >> 4];
		a.subject[2 * i + 1] = hx[md[i] & 15];
	}
	ml_log(ML_LOG_WARN, "note: SIGHUP: issuer key %.16s... %s", a.subject,
	    strcmp(action, "issuer-add") == 0 ? "added" : "retired");
	if ((r = reg_audit_append(reg, &a)) != 0) {
		ml_err("note: audit row for issuer key %.16s...: %s",
		    a.subject, ml_errmsg(r));
	}
}

static int
note_app_init(const struct hs_app_env *env, void **ret_ctx)
{
	const char *iss = env->opts->note_issuers;
	const char *fk = env->opts->note_feature_key;
	const char *sk = env->opts->note_seal_key;
	struct reg_note_cfg cfg;
	struct note_app *a = NULL;
	uint8_t fkey[FEATURE_KEY_LEN];
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
	ML_TRY(issuers_load(env->keys, iss, NULL, NULL, 0, cfg.issuers,
	    a->specs, &cfg.nissuers));
	memcpy(a->issuers, cfg.issuers, sizeof(a->issuers));
	a->nissuers = cfg.nissuers;
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
		specs_free(a->specs);
		free(a);
	}
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
	specs_free(a->specs);
	free(a);
}

/*
 * SIGHUP (BN-4, OP-5): note-issuers again.  Keys added authorise writes at
 * once; keys gone are retired.  A list that does not load, or an empty
 * one, leaves the keys in force (retiring every key stops issuance: that
 * is a restart without note-issuers).
 */
static void
note_app_reload(void *ctx, const struct hs_app_env *env)
{
	struct note_app *a = ctx;
	uint8_t next[NOTE_MAX_ISSUERS][ML_P256_PUB_LEN];
	char *specs[NOTE_MAX_ISSUERS] = { NULL };
	size_t n = 0, i;
	int r;

	if (a == NULL) {
		return;
	}
	if (a->rn == NULL) {
		if (env->opts->note_issuers[0] != '\0') {
			ml_warn("note: SIGHUP: note-issuers set after a start "
			    "without it: needs a restart");
		}
		return;
	}
	if (issuers_load(env->keys, env->opts->note_issuers, a->specs,
	    (const uint8_t (*)[ML_P256_PUB_LEN])a->issuers, a->nissuers, next,
	    specs, &n) != 0 || n == 0) {
		ml_err("note: SIGHUP: note-issuers empty or not loaded; the "
		    "%zu issuer key(s) in force stay", a->nissuers);
		specs_free(specs);
		return;
	}
	if ((r = reg_note_set_issuers(a->rn,
	    (const uint8_t (*)[ML_P256_PUB_LEN])next, n)) != 0) {
		ml_err("note: SIGHUP: issuer keys not replaced: %s",
		    ml_errmsg(r));
		specs_free(specs);
		return;
	}
	for (i = 0; i < n; i++) {
		if (!issuer_in((const uint8_t (*)[ML_P256_PUB_LEN])a->issuers,
		    a->nissuers, next[i])) {
			issuer_audit(a->registry, "issuer-add", next[i]);
		}
	}
	for (i = 0; i < a->nissuers; i++) {
		if (!issuer_in((const uint8_t (*)[ML_P256_PUB_LEN])next, n,
		    a->issuers[i])) {
			issuer_audit(a->registry, "issuer-retire",
			    a->issuers[i]);
		}
	}
	memcpy(a->issuers, next, sizeof(a->issuers));
	specs_free(a->specs);
	memcpy(a->specs, specs, sizeof(a->specs));
	a->nissuers = n;
	ml_log(ML_LOG_WARN, "note: SIGHUP: %zu issuer key(s) in force", n);
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
	if ((r = reg_note_handle_from(a->rn, peer, type, payload, len,
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
	.reload = note_app_reload,
	.fini = note_app_fini,
	.handlers = note_app_handlers,
	.nhandlers = ML_NELEM(note_app_handlers),
};
