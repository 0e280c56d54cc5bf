/*
 * See hs_p11.h.  libp11 0.4.12 exposes EC private keys as EVP_PKEYs whose
 * EC_KEY carries libp11's EC_KEY_METHOD; the only way to reach its C_Sign
 * and C_DeriveKey is the EC_KEY-level API (ECDSA_do_sign,
 * ECDH_compute_key), deprecated in OpenSSL 3.  This file alone is built
 * with those deprecation warnings off.
 */
#define OPENSSL_SUPPRESS_DEPRECATED 1

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libp11.h>
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "hs_p11.h"
#include "ml_log.h"
#include "ml_secret.h"
#include "ml_wipe.h"
#include <unistd.h>

#define P11_MAX_ATTR	128
#define P11_MAX_PIN	64

struct hs_p11 {
	PKCS11_CTX	*ctx;
	PKCS11_SLOT	*slots;
	unsigned int	 nslots;
	PKCS11_SLOT	*slot;
	EVP_PKEY	*pkey;		/* libp11 private key */
	EC_KEY		*ec;		/* borrowed from pkey */
	uint8_t		 pub[ML_P256_PUB_LEN];
	pthread_mutex_t	 mu;
	bool		 loaded;
	/* for hs_p11_reconnect(): what hs_p11_open() was given, and the PIN
	 * in a locked, MADV_DONTDUMP page (p11_secpage) */
	char		*module;
	char		*uri;
	char		*pin;		/* P11_MAX_PIN bytes, or NULL */
	uint64_t	 reconnects;
};

/*
 * One page for a long-lived secret: page-aligned, mlock()ed (never
 * swapped), MADV_DONTDUMP (never in a core file).  mlock may fail under
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
		ml_warn("p11: cannot mlock the PIN page; it may be swapped");
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

struct p11_uri {
	char	 token[P11_MAX_ATTR];
	char	 object[P11_MAX_ATTR];
	uint8_t	 id[P11_MAX_ATTR];
	size_t	 id_len;
	char	 pin_source[256];
	char	 pin_value[P11_MAX_PIN];
	char	 module[256];
};

/* Percent-decode [s, s+n) into out (cap bytes, NUL-terminated). */
static int
pct_decode(const char *s, size_t n, uint8_t *out, size_t cap, size_t *ret_len)
{
	size_t i, o = 0;
	unsigned v;

	for (i = 0; i < n; i++) {
		if (o + 1 >= cap) {
			return ML_ERR_TOO_LARGE;
		}
		if (s[i] == '%') {
			if (i + 2 >= n || !isxdigit((unsigned char)s[i + 1]) ||
			    !isxdigit((unsigned char)s[i + 2]) ||
			    sscanf(s + i + 1, "%2x", &v) != 1) {
				return ML_ERR_FORMAT;
			}
			out[o++] = (uint8_t)v;
			i += 2;
		} else {
			out[o++] = (uint8_t)s[i];
		}
	}
	out[o] = 0;
	*ret_len = o;
	return 0;
}

static int
uri_parse(const char *uri, struct p11_uri *u)
{
	const char *p, *end, *eq;
	size_t n, len;
	bool query = false;
	int r;

	memset(u, 0, sizeof(*u));
	if (strncmp(uri, "pkcs11:", 7) != 0) {
		return ML_ERR_FORMAT;
	}
	p = uri + 7;
	while (*p != '\0') {
		end = p + strcspn(p, query ? "&" : ";?");
		if ((eq = memchr(p, '=', (size_t)(end - p))) != NULL) {
			n = (size_t)(eq - p);
			len = (size_t)(end - eq - 1);
#define ATTR(name, field) \
	(n == strlen(name) && strncmp(p, name, n) == 0) { \
		if ((r = pct_decode(eq + 1, len, (uint8_t *)(field), \
		    sizeof(field), &len)) != 0) { return r; } }
			if ATTR("token", u->token)
			else if ATTR("object", u->object)
			else if ATTR("pin-source", u->pin_source)
			else if ATTR("pin-value", u->pin_value)
			else if ATTR("module-path", u->module)
			else if (n == 2 && strncmp(p, "id", 2) == 0) {
				if ((r = pct_decode(eq + 1, len, u->id,
				    sizeof(u->id), &u->id_len)) != 0) {
					return r;
				}
			}
#undef ATTR
		}
		if (*end == '?') {
			query = true;
		}
		p = *end != '\0' ? end + 1 : end;
	}
	return 0;
}

static int
read_pin(const struct p11_uri *u, char pin[P11_MAX_PIN])
{
	const char *path = u->pin_source;

	if (u->pin_value[0] != '\0') {
		ml_warn("p11: pin-value in a key URI is visible to other users "
		    "of this machine; prefer pin-source=file:...");
		snprintf(pin, P11_MAX_PIN, "%s", u->pin_value);
		return 0;
	}
	if (path[0] == '\0') {
		pin[0] = '\0';
		return 0;
	}
	return ml_pin_read(path, NULL, pin, P11_MAX_PIN);
}

/* Drop the module session (not the saved URI and PIN). */
static void
p11_close(struct hs_p11 *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
	k->ec = NULL;
	if (k->slots != NULL) {
		PKCS11_release_all_slots(k->ctx, k->slots, k->nslots);
		k->slots = NULL;
		k->nslots = 0;
	}
	k->slot = NULL;
	if (k->ctx != NULL) {
		if (k->loaded) {
			PKCS11_CTX_unload(k->ctx);
		}
		PKCS11_CTX_free(k->ctx);
		k->ctx = NULL;
	}
	k->loaded = false;
}

/*
 * Load the module, find the token, log in with k->pin, find the key.
 * On failure k is left closed (p11_close).
 */
static int
p11_connect(struct hs_p11 *k)
{
	struct p11_uri u;
	PKCS11_KEY *keys = NULL, *key = NULL;
	unsigned int nkeys = 0, i;
	const char *module = k->module;
	const EC_GROUP *g;
	const EC_POINT *pt;
	uint8_t pub[ML_P256_PUB_LEN];
	int r = ML_ERR_INTERNAL;

	ML_TRY(uri_parse(k->uri, &u));
	ML_ENSURE((k->ctx = PKCS11_CTX_new()) != NULL, ML_ERR_NOMEM);
	if (PKCS11_CTX_load(k->ctx, module) != 0) {
		ml_err("p11: cannot load module %s", module);
		r = ML_ERR_IO;
		goto out;
	}
	k->loaded = true;
	ML_ENSURE(PKCS11_enumerate_slots(k->ctx, &k->slots, &k->nslots) == 0,
	    ML_ERR_IO);
	for (i = 0; i < k->nslots; i++) {
		PKCS11_SLOT *s = &k->slots[i];

		if (s->token == NULL || !s->token->initialized) {
			continue;
		}
		if (u.token[0] == '\0' || strcmp(s->token->label, u.token) == 0) {
			k->slot = s;
			break;
		}
	}
	if (k->slot == NULL) {
		ml_err("p11: no token \"%s\"", u.token);
		r = ML_ERR_NOT_FOUND;
		goto out;
	}
	if (k->pin != NULL && k->pin[0] != '\0' &&
	    PKCS11_login(k->slot, 0, k->pin) != 0) {
		ml_err("p11: login failed");
		r = ML_ERR_PIN;
		goto out;
	}
	ML_ENSURE(PKCS11_enumerate_keys(k->slot->token, &keys, &nkeys) == 0,
	    ML_ERR_IO);
	for (i = 0; i < nkeys; i++) {
		if (u.object[0] != '\0' && (keys[i].label == NULL ||
		    strcmp(keys[i].label, u.object) != 0)) {
			continue;
		}
		if (u.id_len != 0 && (keys[i].id_len != u.id_len ||
		    memcmp(keys[i].id, u.id, u.id_len) != 0)) {
			continue;
		}
		key = &keys[i];
		break;
	}
	if (key == NULL) {
		ml_err("p11: no private key \"%s\"", u.object);
		r = ML_ERR_NOT_FOUND;
		goto out;
	}
	ML_ENSURE((k->pkey = PKCS11_get_private_key(key)) != NULL, ML_ERR_IO);
	ML_ENSURE((k->ec = (EC_KEY *)EVP_PKEY_get0_EC_KEY(k->pkey)) != NULL,
	    ML_ERR_UNSUPPORTED);
	g = EC_KEY_get0_group(k->ec);
	pt = EC_KEY_get0_public_key(k->ec);
	ML_ENSURE(g != NULL && pt != NULL &&
	    EC_GROUP_get_curve_name(g) == NID_X9_62_prime256v1, ML_ERR_UNSUPPORTED);
	ML_ENSURE(EC_POINT_point2oct(g, pt, POINT_CONVERSION_UNCOMPRESSED,
	    pub, sizeof(pub), NULL) == sizeof(pub), ML_ERR_CRYPTO);
	if (k->reconnects > 0 && memcmp(pub, k->pub, sizeof(pub)) != 0) {
		ml_err("p11: the key changed across a reconnect");
		r = ML_ERR_CERT;
		goto out;
	}
	memcpy(k->pub, pub, sizeof(pub));
	r = 0;
out:
	ml_wipe(&u, sizeof(u));
	if (r != 0) {
		p11_close(k);
	}
	ERR_clear_error();
	return r;
}

int
hs_p11_open(const char *module, const char *uri, struct hs_p11 **ret_key)
{
	struct hs_p11 *k = NULL;
	struct p11_uri u;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(uri != NULL && ret_key != NULL, ML_ERR_ARG);
	ML_TRY(uri_parse(uri, &u));
	if (module == NULL || module[0] == '\0') {
		module = u.module;
	}
	ML_ENSURE(module[0] != '\0', ML_ERR_ARG);
	ML_ENSURE((k = calloc(1, sizeof(*k))) != NULL, ML_ERR_NOMEM);
	pthread_mutex_init(&k->mu, NULL);
	ML_ENSURE((k->module = strdup(module)) != NULL &&
	    (k->uri = strdup(uri)) != NULL, ML_ERR_NOMEM);
	/* the PIN lives in a locked page until hs_p11_free(), for re-login
	 * after the token session is lost (hs_p11_reconnect) */
	ML_ENSURE((k->pin = p11_secpage()) != NULL, ML_ERR_NOMEM);
	ML_TRY(read_pin(&u, k->pin));
	ML_TRY(p11_connect(k));
	*ret_key = k;
	k = NULL;
	r = 0;
out:
	ml_wipe(&u, sizeof(u));
	hs_p11_free(k);
	return r;
}

/*
 * The token session is gone (device error, CKR_SESSION_HANDLE_INVALID,
 * token removed, HSM restarted): unload the module, load it again, log in
 * again with the saved PIN.  Called with k->mu held.
 */
static int
p11_reconnect_locked(struct hs_p11 *k)
{
	int r;

	p11_close(k);
	k->reconnects++;
	if ((r = p11_connect(k)) != 0) {
		ml_err("p11: reconnect to the token failed: %s", ml_errname(r));
		return r;
	}
	ml_log(ML_LOG_WARN, "p11: token session re-opened (reconnect %llu)",
	    (unsigned long long)k->reconnects);
	return 0;
}

int
hs_p11_reconnect(struct hs_p11 *k)
{
	int r;

	pthread_mutex_lock(&k->mu);
	r = p11_reconnect_locked(k);
	pthread_mutex_unlock(&k->mu);
	return r;
}

uint64_t
hs_p11_reconnects(const struct hs_p11 *k)
{
	return k->reconnects;
}

void
hs_p11_free(struct hs_p11 *k)
{
	if (k == NULL) {
		return;
	}
	p11_close(k);
	p11_secpage_free(k->pin);
	free(k->module);
	free(k->uri);
	pthread_mutex_destroy(&k->mu);
	ml_freezero(k, sizeof(*k));
}

int
hs_p11_pub(const struct hs_p11 *k, uint8_t ret_pub[ML_P256_PUB_LEN])
{
	memcpy(ret_pub, k->pub, ML_P256_PUB_LEN);
	return 0;
}

static int
p11_sign(void *ctx, const uint8_t digest[ML_SHA256_LEN],
    uint8_t ret_sig[ML_P256_SIG_LEN])
{
	struct hs_p11 *k = ctx;
	ECDSA_SIG *s;
	const BIGNUM *br, *bs;
	int r = ML_ERR_CRYPTO;

	pthread_mutex_lock(&k->mu);
	s = k->ec != NULL ? ECDSA_do_sign(digest, ML_SHA256_LEN, k->ec) : NULL;
	if (s == NULL && p11_reconnect_locked(k) == 0) {
		/* C_Sign failed: the session may be gone; once more */
		s = ECDSA_do_sign(digest, ML_SHA256_LEN, k->ec);
	}
	pthread_mutex_unlock(&k->mu);
	if (s == NULL) {
		ERR_clear_error();
		return ML_ERR_CRYPTO;
	}
	ECDSA_SIG_get0(s, &br, &bs);
	if (BN_bn2binpad(br, ret_sig, 32) == 32 &&
	    BN_bn2binpad(bs, ret_sig + 32, 32) == 32) {
		r = 0;
	}
	ECDSA_SIG_free(s);
	return r;
}

static int
p11_ecdh(void *ctx, const uint8_t peer[ML_P256_PUB_LEN],
    uint8_t ret_secret[ML_P256_SECRET_LEN])
{
	struct hs_p11 *k = ctx;
	EC_GROUP *g = NULL;
	EC_POINT *pt = NULL;
	uint8_t sec[ML_P256_SECRET_LEN];
	int n, r = ML_ERR_CRYPTO;

	/* our own group object: k->ec is replaced by a reconnect */
	if ((g = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL ||
	    (pt = EC_POINT_new(g)) == NULL ||
	    EC_POINT_oct2point(g, pt, peer, ML_P256_PUB_LEN, NULL) != 1) {
		goto out;
	}
	pthread_mutex_lock(&k->mu);
	n = k->ec != NULL ? ECDH_compute_key(sec, sizeof(sec), pt, k->ec,
	    NULL) : -1;				/* C_DeriveKey */
	if (n != (int)sizeof(sec) && p11_reconnect_locked(k) == 0) {
		n = ECDH_compute_key(sec, sizeof(sec), pt, k->ec, NULL);
	}
	pthread_mutex_unlock(&k->mu);
	if (n != (int)sizeof(sec)) {
		goto out;
	}
	memcpy(ret_secret, sec, sizeof(sec));
	r = 0;
out:
	ml_wipe(sec, sizeof(sec));
	EC_POINT_free(pt);
	EC_GROUP_free(g);
	ERR_clear_error();
	return r;
}

static int
p11_random(void *ctx, uint8_t *buf, size_t n)
{
	struct hs_p11 *k = ctx;
	int rc;

	pthread_mutex_lock(&k->mu);
	rc = k->slot != NULL ? PKCS11_generate_random(k->slot, buf,
	    (unsigned int)n) : -1;
	pthread_mutex_unlock(&k->mu);
	return rc == 0 ? 0 : ML_ERR_CRYPTO;
}

void
hs_p11_keyops(struct hs_p11 *k, struct hs_keyops *ret)
{
	ret->ctx = k;
	ret->sign = p11_sign;
	ret->ecdh = p11_ecdh;
	ret->random = p11_random;
}
