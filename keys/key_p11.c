/*
 * See key_p11.h.  libp11 0.4.12 exposes EC private keys as EVP_PKEYs whose
 * EC_KEY carries libp11's EC_KEY_METHOD; the only way to reach its C_Sign
 * and C_DeriveKey is the EC_KEY-level API (ECDSA_do_sign,
 * ECDH_compute_key), deprecated in OpenSSL 3 and with no EVP equivalent
 * that reaches libp11's method.  This file alone is built with those
 * deprecation warnings off.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <libp11.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdh.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <p11-kit/uri.h>

#include "key_p11.h"
#include "ml_log.h"
#include "ml_secret.h"
#include "ml_wipe.h"

#ifndef KEY_P11_DEFAULT_MODULE
#define KEY_P11_DEFAULT_MODULE	"p11-kit-proxy.so"
#endif
#define P11_MAX_PIN	(ML_PIN_MAX + 1)

/* One libp11 context with its slot list: a key's, or a look-up's. */
struct p11_mod {
	PKCS11_CTX	*ctx;
	PKCS11_SLOT	*slots;
	unsigned int	 nslots;
	char		*path;		/* module path, for p11_mod_users */
};

struct key_p11 {
	struct p11_mod	 mod;
	PKCS11_SLOT	*slot;
	EVP_PKEY	*pkey;		/* libp11 private key */
	EC_KEY		*ec;		/* borrowed from pkey */
	uint8_t		 pub[ML_P256_PUB_LEN];
	/* operations: read lock; re-opening the token: write lock */
	pthread_rwlock_t lock;
	uint64_t	 gen;		/* bumped by each reconnect */
	/* for a reconnect: what key_p11_open() was given, and the PIN in a
	 * locked, MADV_DONTDUMP page (p11_secpage) */
	char		*module;
	char		*uri;
	char		*pin;		/* P11_MAX_PIN bytes */
	char		*pinsrc;	/* where it came from, for messages */
	uint64_t	 reconnects;
};

static const struct key_class p11_class;

/* ------------------------------------------------------------ PIN page */

/*
 * One page for a long-lived secret: mlock()ed (never swapped),
 * MADV_DONTDUMP (never in a core file).  mlock may fail under
 * RLIMIT_MEMLOCK; the page is still used, with a warning.
 */
static void *
p11_secpage(void)
{
	long pg = sysconf(_SC_PAGESIZE);
	void *p;

	p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED) {
		return NULL;
	}
	if (mlock(p, (size_t)pg) != 0) {
		ml_warn("pkcs11: cannot mlock the PIN page; it may be swapped");
	}
	(void)madvise(p, (size_t)pg, MADV_DONTDUMP);
	return p;
}

static void
p11_secpage_free(void *p)
{
	long pg = sysconf(_SC_PAGESIZE);

	if (p != NULL) {
		ml_wipe(p, (size_t)pg);
		(void)munlock(p, (size_t)pg);
		(void)munmap(p, (size_t)pg);
	}
}

/*
 * Why libp11 failed, from the OpenSSL error queue where it leaves its
 * reason (the CKR name for a module call: "Pin incorrect", "Session
 * handle invalid", ...).
 */
static const char *
p11_cause(char *buf, size_t cap)
{
	unsigned long e = ERR_peek_last_error();
	const char *s;

	if (e == 0) {
		return "no detail from libp11";
	}
	if ((s = ERR_reason_error_string(e)) != NULL) {
		return s;
	}
	ERR_error_string_n(e, buf, cap);
	return buf;
}

/* ------------------------------------------------------------ modules */

/*
 * How many libp11 contexts of this process have each module loaded.
 * libp11's slot release calls C_CloseAllSessions and its unload calls
 * C_Finalize, both for the whole process: only the last context of a
 * module may do them, or a short look-up (a public key) would end the
 * server's HSM session.  A context that is not the last is kept (p11_kept)
 * and reclaimed by the OS at exit; LeakSanitizer and valgrind see it as
 * reachable, not as a leak.
 */
struct p11_user {
	char		*path;
	unsigned	 n;
	struct p11_user	*next;
};
static struct p11_user *p11_users;
static struct p11_mod_kept {
	struct p11_mod		 mod;
	struct p11_mod_kept	*next;
} *p11_kept;
static pthread_mutex_t p11_users_lock = PTHREAD_MUTEX_INITIALIZER;

/* n += delta for path; returns the count after. */
static unsigned
p11_users_add(const char *path, int delta)
{
	struct p11_user *u;
	unsigned n = 0;

	pthread_mutex_lock(&p11_users_lock);
	for (u = p11_users; u != NULL && strcmp(u->path, path) != 0;
	    u = u->next) {
	}
	if (u == NULL && delta > 0 && (u = calloc(1, sizeof(*u))) != NULL) {
		if ((u->path = strdup(path)) == NULL) {
			free(u);
			u = NULL;
		} else {
			u->next = p11_users;
			p11_users = u;
		}
	}
	if (u != NULL) {
		u->n = (unsigned)((int)u->n + delta);
		n = u->n;
	}
	pthread_mutex_unlock(&p11_users_lock);
	return n;
}

static int
p11_mod_load(struct p11_mod *m, const char *path)
{
	char why[256];
	int r = ML_ERR_INTERNAL;

	memset(m, 0, sizeof(*m));
	ML_ENSURE((m->path = strdup(path)) != NULL, ML_ERR_NOMEM);
	ML_ENSURE((m->ctx = PKCS11_CTX_new()) != NULL, ML_ERR_NOMEM);
	if (PKCS11_CTX_load(m->ctx, path) != 0) {
		r = ml_errf(ML_ERR_IO, "PKCS#11 module %s: cannot load it (%s)",
		    path, p11_cause(why, sizeof(why)));
		PKCS11_CTX_free(m->ctx);
		m->ctx = NULL;
		goto out;
	}
	(void)p11_users_add(path, 1);
	if (PKCS11_enumerate_slots(m->ctx, &m->slots, &m->nslots) != 0) {
		r = ml_errf(ML_ERR_IO, "PKCS#11 module %s: cannot list its "
		    "slots (%s)", path, p11_cause(why, sizeof(why)));
		goto out;
	}
	r = 0;
out:
	ERR_clear_error();
	return r;
}

/*
 * Release m: C_Finalize only when no other context of the process uses
 * the module (see p11_users).  keep: a public-key look-up's context is
 * always kept -- libp11 0.4.12 loses the key list it made for
 * PKCS11_enumerate_public_keys when its slots are released (a leak that
 * LeakSanitizer reports on every look-up), while a kept context stays
 * reachable and costs one slot list per look-up for the process's life.
 */
static void
p11_mod_close(struct p11_mod *m, bool keep)
{
	struct p11_mod_kept *e;

	if (m->ctx == NULL) {
		free(m->path);
		m->path = NULL;
		return;
	}
	if (p11_users_add(m->path, -1) > 0 || keep) {
		if ((e = calloc(1, sizeof(*e))) != NULL) {
			e->mod = *m;
			pthread_mutex_lock(&p11_users_lock);
			e->next = p11_kept;
			p11_kept = e;
			pthread_mutex_unlock(&p11_users_lock);
		}
		memset(m, 0, sizeof(*m));
		return;
	}
	if (m->slots != NULL) {
		PKCS11_release_all_slots(m->ctx, m->slots, m->nslots);
	}
	PKCS11_CTX_unload(m->ctx);
	PKCS11_CTX_free(m->ctx);
	free(m->path);
	memset(m, 0, sizeof(*m));
}

/* ------------------------------------------------------------ URI match */

/* Copy a libp11 string into a space-padded CK_UTF8CHAR field. */
static void
pad(CK_UTF8CHAR *dst, size_t cap, const char *s)
{
	size_t n = s != NULL ? strlen(s) : 0;

	memset(dst, ' ', cap);
	memcpy(dst, s, n < cap ? n : cap);
}

static bool
token_matches(P11KitUri *uri, const PKCS11_TOKEN *t)
{
	CK_TOKEN_INFO ti;

	memset(&ti, 0, sizeof(ti));
	pad(ti.label, sizeof(ti.label), t->label);
	pad(ti.manufacturerID, sizeof(ti.manufacturerID), t->manufacturer);
	pad(ti.model, sizeof(ti.model), t->model);
	pad(ti.serialNumber, sizeof(ti.serialNumber), t->serialnr);
	return p11_kit_uri_match_token_info(uri, &ti) == 1;
}

static bool
key_matches(P11KitUri *uri, const PKCS11_KEY *k)
{
	CK_ATTRIBUTE *a;

	if ((a = p11_kit_uri_get_attribute(uri, CKA_LABEL)) != NULL &&
	    (k->label == NULL || strlen(k->label) != a->ulValueLen ||
	    memcmp(k->label, a->pValue, a->ulValueLen) != 0)) {
		return false;
	}
	if ((a = p11_kit_uri_get_attribute(uri, CKA_ID)) != NULL &&
	    (k->id_len != a->ulValueLen ||
	    memcmp(k->id, a->pValue, a->ulValueLen) != 0)) {
		return false;
	}
	return true;
}

/* Parse uristr (p11-kit: RFC 7512); pin-value refused.  *ret_module: the
 * module to load (points into *ret_uri or is the default). */
static int
uri_parse(const char *uristr, const char *module, P11KitUri **ret_uri,
    const char **ret_module)
{
	P11KitUri *uri = NULL;
	int r = ML_ERR_INTERNAL, pr;

	ML_ENSURE(uristr != NULL, ML_ERR_ARG);
	ML_ENSURE((uri = p11_kit_uri_new()) != NULL, ML_ERR_NOMEM);
	if ((pr = p11_kit_uri_parse(uristr, P11_KIT_URI_FOR_ANY, uri)) !=
	    P11_KIT_URI_OK) {
		r = ml_errf(ML_ERR_ARG, "'%.128s' is not a pkcs11: URI (%s)",
		    uristr, p11_kit_uri_message(pr));
		goto out;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL) {
		r = ml_errf(ML_ERR_ARG, "pkcs11: URI: pin-value refused (visible "
		    "to every user of this machine); use pin-source=file:PATH");
		goto out;
	}
	if (module == NULL || module[0] == '\0') {
		module = p11_kit_uri_get_module_path(uri);
	}
	*ret_module = module != NULL && module[0] != '\0' ? module :
	    KEY_P11_DEFAULT_MODULE;
	*ret_uri = uri;
	uri = NULL;
	r = 0;
out:
	if (uri != NULL) {
		p11_kit_uri_free(uri);
	}
	return r;
}

/* The one initialised token of m that uri matches. */
static int
find_token(const struct p11_mod *m, P11KitUri *uri, const char *uristr,
    PKCS11_SLOT **ret)
{
	PKCS11_SLOT *found = NULL;
	unsigned int i;

	for (i = 0; i < m->nslots; i++) {
		PKCS11_TOKEN *t = m->slots[i].token;

		if (t == NULL || !t->initialized || !token_matches(uri, t)) {
			continue;
		}
		if (found != NULL) {
			return ml_errf(ML_ERR_EXISTS, "%s: matches more than one "
			    "token in %s (\"%.32s\", \"%.32s\")", uristr, m->path,
			    found->token->label, t->label);
		}
		found = &m->slots[i];
	}
	if (found == NULL) {
		return ml_errf(ML_ERR_NOT_FOUND, "%s: no such token in %s",
		    uristr, m->path);
	}
	*ret = found;
	return 0;
}

/* The one key of keys[] that uri matches. */
static int
find_key(PKCS11_KEY *keys, unsigned int nkeys, P11KitUri *uri,
    const char *uristr, const char *what, PKCS11_KEY **ret)
{
	PKCS11_KEY *found = NULL;
	unsigned int i;

	for (i = 0; i < nkeys; i++) {
		if (!key_matches(uri, &keys[i])) {
			continue;
		}
		if (found != NULL) {
			return ml_errf(ML_ERR_EXISTS, "%s: matches more than one "
			    "%s key", uristr, what);
		}
		found = &keys[i];
	}
	if (found == NULL) {
		return ml_errf(ML_ERR_NOT_FOUND, "%s: no such %s key",
		    uristr, what);
	}
	*ret = found;
	return 0;
}

static int
ec_pub_bytes(const EC_KEY *ec, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	const EC_GROUP *g = ec != NULL ? EC_KEY_get0_group(ec) : NULL;
	const EC_POINT *p = ec != NULL ? EC_KEY_get0_public_key(ec) : NULL;

	if (g == NULL || p == NULL ||
	    EC_GROUP_get_curve_name(g) != NID_X9_62_prime256v1) {
		return ML_ERR_UNSUPPORTED;
	}
	if (EC_POINT_point2oct(g, p, POINT_CONVERSION_UNCOMPRESSED, ret_pub,
	    ML_P256_PUB_LEN, NULL) != ML_P256_PUB_LEN) {
		return ML_ERR_CRYPTO;
	}
	return 0;
}

/* ------------------------------------------------------------ the key */

/* Drop the token session (not the saved URI and PIN). */
static void
p11_close(struct key_p11 *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
	k->ec = NULL;
	k->slot = NULL;
	p11_mod_close(&k->mod, false);
}

/*
 * Load the module, find the token, log in with k->pin, find the key.
 * On failure k is left closed (p11_close).
 */
static int
p11_connect(struct key_p11 *k)
{
	P11KitUri *uri = NULL;
	PKCS11_KEY *keys = NULL, *key = NULL;
	unsigned int nkeys = 0;
	const char *module = NULL;
	uint8_t pub[ML_P256_PUB_LEN];
	char why[256];
	int r = ML_ERR_INTERNAL;

	ML_TRY(uri_parse(k->uri, k->module, &uri, &module));
	ML_TRY(p11_mod_load(&k->mod, module));
	ML_TRY(find_token(&k->mod, uri, k->uri, &k->slot));
	if (k->pin[0] != '\0' && PKCS11_login(k->slot, 0, k->pin) != 0) {
		/* the PIN's source is named, never the PIN */
		r = ml_errf(ML_ERR_PIN, "%s: token \"%.32s\": login refused: %s "
		    "(PIN from %s)", k->uri, k->slot->token->label,
		    p11_cause(why, sizeof(why)), k->pinsrc);
		goto out;
	}
	if (PKCS11_enumerate_keys(k->slot->token, &keys, &nkeys) != 0) {
		r = ml_errf(ML_ERR_IO, "%s: cannot list the private keys (%s)",
		    k->uri, p11_cause(why, sizeof(why)));
		goto out;
	}
	ML_TRY(find_key(keys, nkeys, uri, k->uri, "private", &key));
	if ((k->pkey = PKCS11_get_private_key(key)) == NULL) {
		r = ml_errf(ML_ERR_IO, "%s: cannot read the private key (%s)",
		    k->uri, p11_cause(why, sizeof(why)));
		goto out;
	}
	k->ec = (EC_KEY *)EVP_PKEY_get0_EC_KEY(k->pkey);
	if ((r = ec_pub_bytes(k->ec, pub)) != 0) {
		r = ml_errf(r, "%s: not a P-256 key", k->uri);
		goto out;
	}
	if (k->reconnects > 0 && memcmp(pub, k->pub, sizeof(pub)) != 0) {
		r = ml_errf(ML_ERR_CERT, "%s: the key changed across a reconnect",
		    k->uri);
		goto out;
	}
	memcpy(k->pub, pub, sizeof(pub));
	r = 0;
out:
	if (uri != NULL) {
		p11_kit_uri_free(uri);
	}
	if (r != 0) {
		p11_close(k);
	}
	ERR_clear_error();
	return r;
}

static void
p11_free(void *ctx)
{
	struct key_p11 *k = ctx;

	if (k == NULL) {
		return;
	}
	p11_close(k);
	p11_secpage_free(k->pin);
	free(k->module);
	free(k->uri);
	free(k->pinsrc);
	pthread_rwlock_destroy(&k->lock);
	ml_freezero(k, sizeof(*k));
}

int
key_p11_open(const char *module, const char *uristr, struct key **ret)
{
	struct key_p11 *k = NULL;
	P11KitUri *uri = NULL;
	const char *mod = NULL, *pinsrc;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(uristr != NULL && ret != NULL, ML_ERR_ARG);
	ML_TRY(uri_parse(uristr, module, &uri, &mod));
	ML_ENSURE((k = calloc(1, sizeof(*k))) != NULL, ML_ERR_NOMEM);
	pthread_rwlock_init(&k->lock, NULL);
	ML_ENSURE((k->module = strdup(mod)) != NULL &&
	    (k->uri = strdup(uristr)) != NULL, ML_ERR_NOMEM);
	/* the PIN lives in a locked page until key_free(), for a re-login
	 * after the token session is lost (key_p11_reconnect) */
	ML_ENSURE((k->pin = p11_secpage()) != NULL, ML_ERR_NOMEM);
	if ((pinsrc = p11_kit_uri_get_pin_source(uri)) != NULL) {
		ML_ENSURE((k->pinsrc = strdup(pinsrc)) != NULL, ML_ERR_NOMEM);
		/* one line, read(2) into a wiped buffer (ml_secret.h) */
		ML_TRY(ml_pin_read(pinsrc, NULL, k->pin, P11_MAX_PIN));
	}
	ML_TRY(p11_connect(k));
	ML_TRY(key_new(&p11_class, k, k->pub, ret));
	k = NULL;
	r = 0;
out:
	if (uri != NULL) {
		p11_kit_uri_free(uri);
	}
	p11_free(k);
	return r;
}

/* The token session is gone (device error, CKR_SESSION_HANDLE_INVALID,
 * token removed, HSM restarted): load the module again, log in again with
 * the saved PIN, find the same key.  Write lock held. */
static int
p11_reconnect_locked(struct key_p11 *k)
{
	int r;

	p11_close(k);
	k->reconnects++;
	k->gen++;
	if ((r = p11_connect(k)) != 0) {
		ml_err("reconnect to the token failed: %s", ml_errmsg(r));
		return r;
	}
	ml_warn("%s: token session re-opened (reconnect %llu)", k->uri,
	    (unsigned long long)k->reconnects);
	return 0;
}

int
key_p11_reconnect(struct key *key)
{
	struct key_p11 *k;
	int r;

	if (key == NULL || key->cls != &p11_class) {
		return ML_ERR_ARG;
	}
	k = key->ctx;
	pthread_rwlock_wrlock(&k->lock);
	r = p11_reconnect_locked(k);
	pthread_rwlock_unlock(&k->lock);
	return r;
}

uint64_t
key_p11_reconnects(const struct key *key)
{
	const struct key_p11 *k;

	if (key == NULL || key->cls != &p11_class) {
		return 0;
	}
	k = key->ctx;
	return k->reconnects;
}

/*
 * Run op under the read lock (concurrently with other operations: libp11
 * takes a session of its per-slot pool for each); when it fails, re-open
 * the token under the write lock (unless another thread did since) and
 * run it once more.
 */
typedef int (*p11_op_fn)(struct key_p11 *k, const void *in, void *out);

static int
p11_run(struct key_p11 *k, p11_op_fn op, const void *in, void *out)
{
	uint64_t gen;
	int r;

	pthread_rwlock_rdlock(&k->lock);
	gen = k->gen;
	r = k->ec != NULL ? op(k, in, out) : ML_ERR_IO;
	pthread_rwlock_unlock(&k->lock);
	if (r == 0) {
		return 0;
	}
	pthread_rwlock_wrlock(&k->lock);
	if (k->gen == gen || k->ec == NULL) {
		r = p11_reconnect_locked(k);
	} else {
		r = 0;		/* another thread re-opened it meanwhile */
	}
	if (r == 0) {
		r = op(k, in, out);
	}
	pthread_rwlock_unlock(&k->lock);
	ERR_clear_error();
	return r;
}

static int
op_sign(struct key_p11 *k, const void *digest, void *ret_sig)
{
	ECDSA_SIG *s;
	const BIGNUM *br, *bs;
	int r = ML_ERR_CRYPTO;

	if ((s = ECDSA_do_sign(digest, ML_SHA256_LEN, k->ec)) == NULL) {
		return ML_ERR_CRYPTO;		/* C_Sign failed */
	}
	ECDSA_SIG_get0(s, &br, &bs);
	if (BN_bn2binpad(br, ret_sig, 32) == 32 &&
	    BN_bn2binpad(bs, (uint8_t *)ret_sig + 32, 32) == 32) {
		r = 0;
	}
	ECDSA_SIG_free(s);
	return r;
}

static int
op_ecdh(struct key_p11 *k, const void *pt, void *ret_secret)
{
	/* C_DeriveKey(CKM_ECDH1_DERIVE) through libp11's method */
	if (ECDH_compute_key(ret_secret, ML_P256_SECRET_LEN, pt, k->ec,
	    NULL) != ML_P256_SECRET_LEN) {
		return ML_ERR_CRYPTO;
	}
	return 0;
}

static int
p11_sign(void *ctx, const uint8_t digest[ML_SHA256_LEN],
    uint8_t ret_sig[ML_P256_SIG_LEN])
{
	uint8_t sig[ML_P256_SIG_LEN];
	int r;

	if ((r = p11_run(ctx, op_sign, digest, sig)) == 0) {
		memcpy(ret_sig, sig, sizeof(sig));
	}
	return r;
}

/*
 * One P-256 group for every peer point of the process, made once: building
 * it (curve parameters, Montgomery context) cost about a twentieth of a
 * registration's instructions when made per call (BN-7 throughput).  Only
 * read after it is made, so threads share it.
 */
static EC_GROUP *p256_group;
static pthread_once_t p256_group_once = PTHREAD_ONCE_INIT;

static void
p256_group_make(void)
{
	p256_group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
}

static int
p11_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	const EC_GROUP *g;
	EC_POINT *pt = NULL;
	uint8_t sec[ML_P256_SECRET_LEN];
	int r = ML_ERR_CRYPTO;

	/* our own group object: k->ec is replaced by a reconnect; a point
	 * off the curve fails here, before the token (no reconnect) */
	(void)pthread_once(&p256_group_once, p256_group_make);
	if ((g = p256_group) == NULL ||
	    (pt = EC_POINT_new(g)) == NULL ||
	    EC_POINT_oct2point(g, pt, peer, ML_P256_PUB_LEN, NULL) != 1) {
		goto out;
	}
	if ((r = p11_run(ctx, op_ecdh, pt, sec)) == 0) {
		memcpy(ret_secret, sec, sizeof(sec));
	}
out:
	ml_wipe(sec, sizeof(sec));
	EC_POINT_free(pt);
	ERR_clear_error();
	return r;
}

static int
p11_random(void *ctx, uint8_t *buf, size_t n)
{
	struct key_p11 *k = ctx;
	int rc;

	pthread_rwlock_rdlock(&k->lock);
	rc = k->slot != NULL ? PKCS11_generate_random(k->slot, buf,
	    (unsigned int)n) : -1;
	pthread_rwlock_unlock(&k->lock);
	return rc == 0 ? 0 : ML_ERR_CRYPTO;
}

static const struct key_class p11_class = {
	.name = "pkcs11",
	.sign = p11_sign,
	.ecdh = p11_ecdh,
	.random = p11_random,
	.free = p11_free,
};

/* ------------------------------------------------------------ public keys */

int
key_p11_pub(const char *module, const char *uristr,
    uint8_t ret_pub[ML_P256_PUB_LEN])
{
	struct p11_mod m = { 0 };
	P11KitUri *uri = NULL;
	PKCS11_SLOT *slot = NULL;
	PKCS11_KEY *keys = NULL, *found = NULL;
	EVP_PKEY *pk = NULL;
	struct key *k = NULL;
	unsigned int nkeys = 0;
	const char *mod = NULL;
	char why[256];
	int r = ML_ERR_INTERNAL;

	ML_TRY(uri_parse(uristr, module, &uri, &mod));
	if (p11_kit_uri_get_pin_source(uri) != NULL) {
		/* a private key named with its PIN: its own point */
		ML_TRY(key_p11_open(module, uristr, &k));
		ML_TRY(key_pub(k, ret_pub));
		goto out;
	}
	ML_TRY(p11_mod_load(&m, mod));
	ML_TRY(find_token(&m, uri, uristr, &slot));
	if (PKCS11_enumerate_public_keys(slot->token, &keys, &nkeys) != 0) {
		r = ml_errf(ML_ERR_IO, "%s: cannot list the public keys (%s)",
		    uristr, p11_cause(why, sizeof(why)));
		goto out;
	}
	ML_TRY(find_key(keys, nkeys, uri, uristr, "public", &found));
	if ((pk = PKCS11_get_public_key(found)) == NULL) {
		r = ml_errf(ML_ERR_IO, "%s: cannot read the public key (%s)",
		    uristr, p11_cause(why, sizeof(why)));
		goto out;
	}
	if ((r = ec_pub_bytes(EVP_PKEY_get0_EC_KEY(pk), ret_pub)) != 0) {
		r = ml_errf(r, "%s: not a P-256 key", uristr);
		goto out;
	}
	r = 0;
out:
	EVP_PKEY_free(pk);
	key_free(k);
	if (uri != NULL) {
		p11_kit_uri_free(uri);
	}
	p11_mod_close(&m, true);
	ERR_clear_error();
	return r;
}

static int
prov_open(void *ctx, const char *uri, struct key **ret)
{
	return key_p11_open(ctx, uri, ret);
}

static int
prov_pub(void *ctx, const char *uri, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	return key_p11_pub(ctx, uri, ret_pub);
}

void
key_p11_provider(struct key_provider *ret, const char *module)
{
	*ret = (struct key_provider){ .name = "pkcs11", .ctx = (void *)module,
	    .open = prov_open, .pub = prov_pub };
}
