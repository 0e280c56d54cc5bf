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
 *   note-feature-key	optional: feature key files, blank separated (at
 *			most FEATURE_MAX_KEYS): the keyed identification codes
 *			of uploads and pre-checks must be made by one of them.
 *			Re-read on SIGHUP (OP-5): list the new key before the
 *			old one while the stations move to it, then drop the
 *			old one; each change is an audit row
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
	/* the feature keys in force (SIGHUP compares the new list with it) */
	uint8_t		 fkeys[FEATURE_MAX_KEYS][FEATURE_KEY_LEN];
	size_t		 nfkeys;
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
 * One audit row per key change (OP-5): action issuer-add, issuer-retire,
 * feature-key-add or feature-key-retire; subject kind "issuer" or
 * "feature-key"; subject the key's 32-byte id in hex (the SHA-256 of an
 * issuer's public point; for a feature key, which is secret, an HMAC of
 * a fixed text under it, which says nothing of the key).  A registry that
 * cannot take the row is logged; the key change stands.
 */
static void
key_audit(struct reg *reg, const char *action, const char *kind,
    const char *label, const char *what,
    const uint8_t id[static ML_SHA256_LEN])
{
	static const char hx[] = "0123456789abcdef";
	struct reg_audit a;
	size_t i;
	int r;

	memset(&a, 0, sizeof(a));
	snprintf(a.action, sizeof(a.action), "%s", action);
	snprintf(a.actor, sizeof(a.actor), "server");
	snprintf(a.subject_kind, sizeof(a.subject_kind), "%s", kind);
	snprintf(a.outcome, sizeof(a.outcome), "ok");
	snprintf(a.detail, sizeof(a.detail), "SIGHUP: %s", what);
	for (i = 0; i < ML_SHA256_LEN && 2 * i + 1 < sizeof(a.subject); i++) {
		a.subject[2 * i] = hx[id[i] >> 4];
		a.subject[2 * i + 1] = hx[id[i] & 15];
	}
	ml_log(ML_LOG_WARN, "note: SIGHUP: %s %.16s... %s", label, a.subject,
	    strstr(action, "-add") != NULL ? "added" : "retired");
	if ((r = reg_audit_append(reg, &a)) != 0) {
		ml_err("note: audit row for %s %.16s...: %s", label,
		    a.subject, ml_errmsg(r));
	}
}

static void
issuer_audit(struct reg *reg, const char *action,
    const uint8_t pub[static ML_P256_PUB_LEN])
{
	uint8_t md[ML_SHA256_LEN];

	if (ml_sha256(pub, ML_P256_PUB_LEN, md) == 0) {
		key_audit(reg, action, "issuer", "issuer key", "note-issuers",
		    md);
	}
}

static void
feature_key_audit(struct reg *reg, const char *action,
    const uint8_t key[static FEATURE_KEY_LEN])
{
	static const char label[] = "mintline feature key id";
	uint8_t md[ML_SHA256_LEN];

	if (ml_hmac_sha256(key, FEATURE_KEY_LEN, label, sizeof(label) - 1,
	    md) == 0) {
		key_audit(reg, action, "feature-key", "feature key",
		    "note-feature-key", md);
	}
}

/*
 * The note-feature-key list: each file's key (feature_key_load: 0600, 64
 * hex digits).  The error names the file.
 */
static int
feature_keys_load(const char *spec, uint8_t (*ret)[FEATURE_KEY_LEN],
    size_t *ret_n)
{
	char *list = NULL, *tok, *save = NULL;
	size_t n = 0;
	int r;

	ML_ENSURE((list = strdup(spec)) != NULL, ML_ERR_NOMEM);
	for (tok = strtok_r(list, " \t\n", &save); tok != NULL;
	    tok = strtok_r(NULL, " \t\n", &save)) {
		if (n == FEATURE_MAX_KEYS) {
			r = ml_errf(ML_ERR_TOO_LARGE, "note-feature-key: more "
			    "than %d feature keys", FEATURE_MAX_KEYS);
			goto out;
		}
		if ((r = feature_key_load(tok, ret[n])) != 0) {
			/* feature_key_load's message names the file */
			(void)ml_errpre(r, "note-feature-key %zu", n + 1);
			goto out;
		}
		n++;
	}
	*ret_n = n;
	r = 0;
out:
	if (r != 0) {
		ml_wipe(ret, FEATURE_MAX_KEYS * FEATURE_KEY_LEN);
	}
	free(list);
	return r;
}

static bool
feature_key_in(const uint8_t (*set)[FEATURE_KEY_LEN], size_t n,
    const uint8_t key[static FEATURE_KEY_LEN])
{
	size_t i;
	bool in = false;

	for (i = 0; i < n; i++) {
		in |= ml_ct_eq(set[i], key, FEATURE_KEY_LEN);
	}
	return in;
}

static int
note_app_init(const struct hs_app_env *env, void **ret_ctx)
{
	const char *iss = env->opts->note_issuers;
	const char *fk = env->opts->note_feature_key;
	const char *sk = env->opts->note_seal_key;
	struct reg_note_cfg cfg;
	struct note_app *a = NULL;
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
	if ((r = feature_keys_load(fk, cfg.feature_keys,
	    &cfg.nfeature_keys)) != 0) {
		ml_err("note: feature key: %s", ml_errmsg(r));
		goto out;
	}
	memcpy(a->fkeys, cfg.feature_keys, sizeof(a->fkeys));
	a->nfkeys = cfg.nfeature_keys;
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
	ml_info("note: registry %s, %zu issuer key(s), %zu feature key(s)%s, "
	    "%s", env->registry->ops->name, cfg.nissuers, cfg.nfeature_keys,
	    cfg.nfeature_keys > 0 ? " (keyed codes checked)" : "",
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
	ml_wipe(&cfg, sizeof(cfg));
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
	ml_freezero(a, sizeof(*a));
}

/*
 * SIGHUP (OP-5): note-feature-key again.  A key added is accepted at once
 * (stations may move to it); a key gone is refused from now on, at the
 * pre-check already, so a station still on it writes nothing.  A list
 * that does not load leaves the keys in force; so does an empty one when
 * keys are in force (to stop checking keyed codes, restart without it).
 */
static void
feature_keys_reload(struct note_app *a, const struct hs_app_env *env)
{
	uint8_t next[FEATURE_MAX_KEYS][FEATURE_KEY_LEN];
	size_t n = 0, i;
	int r;

	if ((r = feature_keys_load(env->opts->note_feature_key, next,
	    &n)) != 0) {
		ml_err("note: SIGHUP: %s; the %zu feature key(s) in force "
		    "stay", ml_errmsg(r), a->nfkeys);
		return;
	}
	if (n == 0) {
		if (a->nfkeys > 0) {
			ml_err("note: SIGHUP: note-feature-key unset; the %zu "
			    "feature key(s) in force stay (a restart without "
			    "it stops checking keyed codes)", a->nfkeys);
		}
		return;
	}
	if ((r = reg_note_set_feature_keys(a->rn,
	    (const uint8_t (*)[FEATURE_KEY_LEN])next, n)) != 0) {
		ml_err("note: SIGHUP: feature keys not replaced: %s",
		    ml_errmsg(r));
		ml_wipe(next, sizeof(next));
		return;
	}
	for (i = 0; i < n; i++) {
		if (!feature_key_in((const uint8_t (*)[FEATURE_KEY_LEN])a->fkeys,
		    a->nfkeys, next[i])) {
			feature_key_audit(a->registry, "feature-key-add",
			    next[i]);
		}
	}
	for (i = 0; i < a->nfkeys; i++) {
		if (!feature_key_in((const uint8_t (*)[FEATURE_KEY_LEN])next,
		    n, a->fkeys[i])) {
			feature_key_audit(a->registry, "feature-key-retire",
			    a->fkeys[i]);
		}
	}
	memcpy(a->fkeys, next, sizeof(a->fkeys));
	a->nfkeys = n;
	ml_wipe(next, sizeof(next));
	ml_log(ML_LOG_WARN, "note: SIGHUP: %zu feature key(s) in force", n);
}

/*
 * SIGHUP (BN-4, OP-5): note-feature-key (above), then note-issuers again.  Keys added authorise writes at
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
	feature_keys_reload(a, env);
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
