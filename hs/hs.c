/*
 * The handshake driver: message order as data (hs_flow[][]), one send and
 * one recv per message (hs_steps[]), the transcript hash extended by every
 * message, and the key schedule.  docs/protocol.md is the reference.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hs_int.h"
#include "ml_log.h"
#include "ml_wipe.h"

/*
 *= REQ ID-2 (handshake A) and ID-4 (handshake B)
 *# Handshake A: KEYREQ, R1, reader signature + certificate, server
 *# ciphertext of R3 + signature + certificate.  Handshake B: R1 and the
 *# server certificate, then the reader's encrypted R2 + signature.
 * The flow is fixed by KEYREQ and never changes afterwards: the server
 * starts on the HS_FLOW_NONE row, whose only message is KEYREQ.
 */
static const enum hs_msg hs_flow[HS_FLOW_MAX][HS_MAX_STEPS] = {
	[HS_FLOW_NONE] = { HS_KEYREQ, HS_DONE },
	[HS_FLOW_A] = { HS_KEYREQ, HS_CHALLENGE, HS_READER_AUTH,
			HS_SERVER_AUTH, HS_DONE },		/* ID-2 */
	[HS_FLOW_B] = { HS_KEYREQ, HS_CHALLENGE_CERT, HS_READER_KEYX,
			HS_DONE },				/* ID-4 */
};

static const struct hs_step {
	char	  writer;	/* 'R' reader/station (client), 'S' server */
	int	(*send)(struct hs *, struct ml_wr *);
	int	(*recv)(struct hs *, const uint8_t *, size_t);
} hs_steps[HS_MSG_MAX] = {
	[HS_KEYREQ]	    = { 'R', hs_keyreq_send,	   hs_keyreq_recv },
	[HS_CHALLENGE]	    = { 'S', hs_challenge_send,	   hs_challenge_recv },
	[HS_CHALLENGE_CERT] = { 'S', hs_chcert_send,	   hs_chcert_recv },
	[HS_READER_AUTH]    = { 'R', hs_reader_auth_send,  hs_reader_auth_recv },
	[HS_SERVER_AUTH]    = { 'S', hs_server_auth_send,  hs_server_auth_recv },
	[HS_READER_KEYX]    = { 'R', hs_keyx_send,	   hs_keyx_recv },
};

static const char *const hs_alert_names[HS_ALERT_MAX] = {
#define HS_ALERT_NAME(name, value, text) [value] = #name,
	HS_ALERTS(HS_ALERT_NAME)
#undef HS_ALERT_NAME
};
static const char *const hs_alert_texts[HS_ALERT_MAX] = {
#define HS_ALERT_TEXT(name, value, text) [value] = text,
	HS_ALERTS(HS_ALERT_TEXT)
#undef HS_ALERT_TEXT
};

const char *
hs_alert_name(int alert)
{
	if (alert < 0 || alert >= HS_ALERT_MAX) {
		return "HS_ALERT_?";
	}
	return hs_alert_names[alert];
}

const char *
hs_alert_text(int alert)
{
	if (alert < 0 || alert >= HS_ALERT_MAX) {
		return "unknown alert";
	}
	return hs_alert_texts[alert];
}

uint64_t
hs_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---------------------------------------------------------------- life */

static int
hs_alloc(enum hs_role role, struct hs **ret_hs)
{
	struct hs *hs;

	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		return ML_ERR_NOMEM;
	}
	hs->role = role;
	if ((hs->th = ml_sha256_new()) == NULL) {
		free(hs);
		return ML_ERR_NOMEM;
	}
	*ret_hs = hs;
	return 0;
}

int
hs_client_new(const struct hs_client_cfg *cfg, struct hs **ret_hs)
{
	struct hs *hs = NULL;
	struct hs_certinfo ci;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(cfg != NULL && ret_hs != NULL && cfg->trust != NULL &&
	    cfg->cred.key != NULL && cfg->cred.nchain >= 1 &&
	    cfg->cred.nchain <= HS_MAX_CHAIN && cfg->serial != NULL,
	    ML_ERR_ARG);
	ML_ENSURE(cfg->flow == HS_FLOW_A || cfg->flow == HS_FLOW_B, ML_ERR_ARG);
	ML_ENSURE(cfg->kind == HS_KIND_READER || cfg->kind == HS_KIND_STATION,
	    ML_ERR_ARG);
	ML_ENSURE(strlen(cfg->serial) <= HS_MAX_SERIAL, ML_ERR_ARG);
	if (cfg->cred.pub != NULL && cfg->cred.certno != NULL) {
		memset(&ci, 0, sizeof(ci));
		memcpy(ci.pub, cfg->cred.pub, sizeof(ci.pub));
		ML_ENSURE(strlen(cfg->cred.certno) <= HS_MAX_CERTNO, ML_ERR_ARG);
		snprintf(ci.certno, sizeof(ci.certno), "%s", cfg->cred.certno);
	} else {
		ML_TRY(hs_cert_facts(cfg->cred.chain[0].p,
		    cfg->cred.chain[0].len, &ci));
	}
	ML_TRY(hs_alloc(HS_ROLE_CLIENT, &hs));
	hs->ccfg = cfg;
	hs->flow = cfg->flow;
	hs->kind = cfg->kind;
	snprintf(hs->serial, sizeof(hs->serial), "%s", cfg->serial);
	snprintf(hs->certno, sizeof(hs->certno), "%s", ci.certno);
	memcpy(hs->own_pub, ci.pub, sizeof(hs->own_pub));
	*ret_hs = hs;
	hs = NULL;
	r = 0;
out:
	hs_free(hs);
	return r;
}

int
hs_server_new(const struct hs_server_cfg *cfg, struct hs **ret_hs)
{
	struct hs *hs = NULL;
	struct hs_certinfo ci;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(cfg != NULL && ret_hs != NULL && cfg->trust != NULL &&
	    cfg->cred.key != NULL && cfg->cred.nchain >= 1 &&
	    cfg->cred.nchain <= HS_MAX_CHAIN, ML_ERR_ARG);
	if (cfg->cred.pub != NULL) {
		memcpy(ci.pub, cfg->cred.pub, sizeof(ci.pub));
	} else {
		ML_TRY(hs_cert_facts(cfg->cred.chain[0].p,
		    cfg->cred.chain[0].len, &ci));
	}
	ML_TRY(hs_alloc(HS_ROLE_SERVER, &hs));
	hs->scfg = cfg;
	hs->flow = HS_FLOW_NONE;
	memcpy(hs->own_pub, ci.pub, sizeof(hs->own_pub));
	*ret_hs = hs;
	hs = NULL;
	r = 0;
out:
	hs_free(hs);
	return r;
}

void
hs_free(struct hs *hs)
{
	if (hs == NULL) {
		return;
	}
	ml_sha256_free(hs->th);
	ml_freezero(hs->peer_cert, hs->peer_cert_len);
	ml_freezero(hs, sizeof(*hs));
}

bool
hs_is_done(const struct hs *hs)
{
	return hs->done;
}

int
hs_alert(const struct hs *hs)
{
	return hs->alert;
}

enum hs_flow
hs_get_flow(const struct hs *hs)
{
	return hs->flow;
}

const struct hs_peer *
hs_peer(const struct hs *hs)
{
	return &hs->peer;
}

const char *
hs_claimed_serial(const struct hs *hs)
{
	return hs->serial;
}

int
hs_peer_cert_copy(const struct hs *hs, uint8_t **ret_der, size_t *ret_len)
{
	uint8_t *p;

	if (hs->peer_cert == NULL) {
		return ML_ERR_STATE;
	}
	if ((p = malloc(hs->peer_cert_len)) == NULL) {
		return ML_ERR_NOMEM;
	}
	memcpy(p, hs->peer_cert, hs->peer_cert_len);
	*ret_der = p;
	*ret_len = hs->peer_cert_len;
	return 0;
}

int
hs_keys(const struct hs *hs, uint8_t ret_tx[static ML_AES256_KEY_LEN],
    uint8_t ret_rx[static ML_AES256_KEY_LEN])
{
	if (!hs->done) {
		return ML_ERR_STATE;
	}
	if (hs->role == HS_ROLE_CLIENT) {
		memcpy(ret_tx, hs->k_c2s, ML_AES256_KEY_LEN);
		memcpy(ret_rx, hs->k_s2c, ML_AES256_KEY_LEN);
	} else {
		memcpy(ret_tx, hs->k_s2c, ML_AES256_KEY_LEN);
		memcpy(ret_rx, hs->k_c2s, ML_AES256_KEY_LEN);
	}
	return 0;
}

/* ---------------------------------------------------------------- driver */

int
hs_fail(struct hs *hs, int alert, int r)
{
	if (hs->alert == HS_ALERT_NONE) {
		hs->alert = alert;
	}
	return r;
}

static int
alert_for(int r)
{
	switch (r) {
	case ML_ERR_SHORT:
	case ML_ERR_FORMAT:
	case ML_ERR_TRAILING:
	case ML_ERR_TOO_LARGE:
		return HS_ALERT_FORMAT;
	case ML_ERR_STATE:
		return HS_ALERT_UNEXPECTED;
	case ML_ERR_CERT:
		return HS_ALERT_CERT;
	case ML_ERR_AUTH:
		return HS_ALERT_SIG;
	case ML_ERR_TIMEOUT:
		return HS_ALERT_TIMEOUT;
	default:
		return HS_ALERT_INTERNAL;
	}
}

static int
th_snapshot(struct hs *hs)
{
	struct ml_sha256 *dup;
	int r;

	if ((dup = ml_sha256_dup(hs->th)) == NULL) {
		return ML_ERR_NOMEM;
	}
	r = ml_sha256_final(dup, hs->th_prev);
	ml_sha256_free(dup);
	return r;
}

#ifdef ML_TEST_HOOKS
#include <fcntl.h>
#include <unistd.h>
/*
 * TEST ONLY (secret hygiene, tests/integration/test-secrets.sh): with
 * MINTLINE_TEST_KEYLOG=PATH in the environment, append this session's
 * transport keys to PATH, like SSLKEYLOGFILE, so that a test can search a
 * snapshot of the process memory for them after the session ended.
 * Compiled in only with -Dtest_hooks=true (scripts/test.sh); the default
 * build has no trace of it (tests/check-layout.sh).  Read with
 * secure_getenv (not for set-id programs), and announced once per process
 * as a warning whenever it is active.  No stdio: its buffer would keep a
 * copy of the keys in freed memory.
 */
static void
hs_test_keylog(const struct hs *hs)
{
	static const char hex[] = "0123456789abcdef";
	static bool announced;
	const char *path = secure_getenv("MINTLINE_TEST_KEYLOG");
	char line[8 + 2 * 2 * ML_AES256_KEY_LEN + 16];
	size_t n = 0, i;
	int fd;

	if (path == NULL || *path == '\0') {
		return;
	}
	if (!__atomic_exchange_n(&announced, true, __ATOMIC_RELAXED)) {
		ml_warn("TEST BUILD (-Dtest_hooks=true): MINTLINE_TEST_KEYLOG "
		    "is set: the transport keys of every session are written "
		    "to %s", path);
	}
	memcpy(line + n, hs->role == HS_ROLE_SERVER ? "server " : "client ", 7);
	n += 7;
	for (i = 0; i < ML_AES256_KEY_LEN; i++) {
		line[n++] = hex[hs->k_c2s[i] >> 4];
		line[n++] = hex[hs->k_c2s[i] & 15];
	}
	line[n++] = ' ';
	for (i = 0; i < ML_AES256_KEY_LEN; i++) {
		line[n++] = hex[hs->k_s2c[i] >> 4];
		line[n++] = hex[hs->k_s2c[i] & 15];
	}
	line[n++] = '\n';
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)!write(fd, line, n);	/* one write: lines stay whole */
		close(fd);
	}
	ml_wipe(line, sizeof(line));
}
#endif

/*
 * Transport keys, one per direction (beyond the document: the document
 * allows one symmetric key; we bind both to the whole transcript).
 *	k_c2s = HKDF-SHA256(salt = H(transcript), ikm = R3 | R2, "... key c2s")
 *	k_s2c = HKDF-SHA256(salt = H(transcript), ikm = R3 | R2, "... key s2c")
 */
static int
hs_finish(struct hs *hs)
{
	uint8_t th[ML_SHA256_LEN];
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(hs->secret_len != 0, ML_ERR_STATE);
	ML_TRY(th_snapshot(hs));
	memcpy(th, hs->th_prev, sizeof(th));
	ML_TRY(ml_hkdf_sha256(th, sizeof(th), hs->secret, hs->secret_len,
	    HS_LABEL_KEY_C2S, strlen(HS_LABEL_KEY_C2S), hs->k_c2s,
	    sizeof(hs->k_c2s)));
	ML_TRY(ml_hkdf_sha256(th, sizeof(th), hs->secret, hs->secret_len,
	    HS_LABEL_KEY_S2C, strlen(HS_LABEL_KEY_S2C), hs->k_s2c,
	    sizeof(hs->k_s2c)));
	hs->peer.flow = hs->flow;
	hs->done = true;
#ifdef ML_TEST_HOOKS
	hs_test_keylog(hs);
#endif
	r = 0;
out:
	ml_wipe(hs->secret, sizeof(hs->secret));
	hs->secret_len = 0;
	return r;
}

static int
hs_recv_one(struct hs *hs, const uint8_t *msg, size_t len)
{
	enum hs_msg want = hs_flow[hs->flow][hs->n];
	uint8_t code;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(len >= 1, hs_fail(hs, HS_ALERT_FORMAT, ML_ERR_SHORT));
	ML_ENSURE(len <= HS_MAX_HS_MSG,
	    hs_fail(hs, HS_ALERT_FORMAT, ML_ERR_TOO_LARGE));
	if (msg[0] == HS_ALERT && hs->role == HS_ROLE_CLIENT) {
		ML_TRY(hs_parse_alert(msg, len, &code));
		hs->alert = code != HS_ALERT_NONE ? code : HS_ALERT_INTERNAL;
		r = ML_ERR_REJECTED;
		goto out;
	}
	ML_ENSURE(want != HS_DONE && hs_steps[want].writer != (char)hs->role,
	    hs_fail(hs, HS_ALERT_UNEXPECTED, ML_ERR_STATE));
	ML_ENSURE(msg[0] == want,
	    hs_fail(hs, HS_ALERT_UNEXPECTED, ML_ERR_STATE));
	ML_TRY(th_snapshot(hs));
	ML_TRY(hs_steps[want].recv(hs, msg, len));
	ML_TRY(ml_sha256_update(hs->th, msg, len));
	hs->n++;
	r = 0;
out:
	return r;
}

static int
hs_send_one(struct hs *hs, enum hs_msg m, struct ml_wr *out)
{
	struct ml_wr body = ml_wr_dyn(HS_MAX_HS_MSG);
	int r = ML_ERR_INTERNAL;

	ML_TRY(th_snapshot(hs));
	ML_TRY(hs_steps[m].send(hs, &body));
	ML_TRY(ml_sha256_update(hs->th, body.p, body.len));
	ML_TRY(hs_frame_put(out, body.p, body.len));
	hs->n++;
	r = 0;
out:
	ml_wr_free(&body);
	return r;
}

int
hs_advance(struct hs *hs, const uint8_t *msg, size_t len, struct ml_wr *out)
{
	enum hs_msg m;
	uint8_t alert[2];
	int r = ML_ERR_INTERNAL;

	if (hs == NULL || out == NULL) {
		return ML_ERR_ARG;
	}
	if (hs->done || hs->failed) {
		return ML_ERR_STATE;
	}
	if (msg != NULL) {
		ML_TRY(hs_recv_one(hs, msg, len));
	}
	for (;;) {
		m = hs_flow[hs->flow][hs->n];
		if (m == HS_DONE) {
			if (hs->flow != HS_FLOW_NONE) {
				ML_TRY(hs_finish(hs));
			}
			break;
		}
		if (hs_steps[m].writer != (char)hs->role) {
			break;
		}
		ML_TRY(hs_send_one(hs, m, out));
	}
	r = 0;
out:
	if (r != 0) {
		hs->failed = true;
		if (hs->alert == HS_ALERT_NONE) {
			hs->alert = alert_for(r);
		}
		ml_wipe(hs->secret, sizeof(hs->secret));
		hs->secret_len = 0;
		if (hs->role == HS_ROLE_SERVER) {
			alert[0] = HS_ALERT;
			alert[1] = (uint8_t)hs->alert;
			(void)!hs_frame_put(out, alert, sizeof(alert));
		}
	}
	return r;
}

/* ---------------------------------------------------------------- helpers */

int
hs_put_chain(struct ml_wr *w, const struct hs_cred *cred)
{
	size_t i;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(cred->nchain >= 1 && cred->nchain <= HS_MAX_CHAIN, ML_ERR_ARG);
	ML_TRY(ml_wr_u8(w, (uint8_t)cred->nchain));
	for (i = 0; i < cred->nchain; i++) {
		ML_ENSURE(cred->chain[i].len >= 1 &&
		    cred->chain[i].len <= HS_MAX_CERT, ML_ERR_TOO_LARGE);
		ML_TRY(ml_wr_lv16(w, cred->chain[i].p, cred->chain[i].len));
	}
	r = 0;
out:
	return r;
}

/* chain := u8 n (1..HS_MAX_CHAIN), n x lv16 DER (1..HS_MAX_CERT) */
int
hs_get_chain(struct ml_rd *rd, struct hs_ident_fields *f)
{
	struct ml_rd save = *rd, c;
	uint8_t n;
	size_t i;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(rd, &n));
	ML_ENSURE(n >= 1 && n <= HS_MAX_CHAIN, ML_ERR_FORMAT);
	for (i = 0; i < n; i++) {
		ML_TRY(ml_rd_lv16(rd, HS_MAX_CERT, &c));
		ML_ENSURE(ml_rd_left(&c) >= 1, ML_ERR_FORMAT);
		f->chain[i].p = ml_rd_ptr(&c);
		f->chain[i].len = ml_rd_left(&c);
	}
	f->nchain = n;
	r = 0;
out:
	if (r != 0) {
		*rd = save;
	}
	return r;
}

int
hs_put_str8(struct ml_wr *w, const char *s)
{
	return ml_wr_lv8(w, s, strlen(s));
}

/*
 * lv8 string, 1..max bytes.  Serials: [A-Za-z0-9._-]; certificate
 * numbers (hex): [0-9A-F].  Written NUL-terminated into ret (max + 1).
 */
int
hs_get_str8(struct ml_rd *rd, size_t max, bool hex, char *ret)
{
	struct ml_rd save = *rd, s;
	size_t i, n;
	uint8_t c;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_lv8(rd, max, &s));
	n = ml_rd_left(&s);
	ML_ENSURE(n >= 1, ML_ERR_FORMAT);
	for (i = 0; i < n; i++) {
		c = s.p[s.off + i];
		if (hex) {
			ML_ENSURE((c >= '0' && c <= '9') || (c >= 'A' && c <= 'F'),
			    ML_ERR_FORMAT);
		} else {
			ML_ENSURE((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
			    (c >= 'a' && c <= 'z') || c == '.' || c == '_' ||
			    c == '-', ML_ERR_FORMAT);
		}
	}
	memcpy(ret, ml_rd_ptr(&s), n);
	ret[n] = '\0';
	r = 0;
out:
	if (r != 0) {
		*rd = save;
	}
	return r;
}

/*
 * What is signed (beyond the document: transcript binding):
 *	SHA-256(label || H(every earlier message) || this body up to the sig)
 * The body holds R1 and the identity (ID-2, ID-3), the transcript holds
 * KEYREQ (flow, claim, client nonce) and the server's challenge.
 */
int
hs_sig_digest(const struct hs *hs, const char *label, const uint8_t *body,
    size_t len, uint8_t ret_md[ML_SHA256_LEN])
{
	struct ml_sha256 *h;
	int r = ML_ERR_INTERNAL;

	if ((h = ml_sha256_new()) == NULL) {
		return ML_ERR_NOMEM;
	}
	ML_TRY(ml_sha256_update(h, label, strlen(label)));
	ML_TRY(ml_sha256_update(h, hs->th_prev, sizeof(hs->th_prev)));
	ML_TRY(ml_sha256_update(h, body, len));
	ML_TRY(ml_sha256_final(h, ret_md));
	r = 0;
out:
	ml_sha256_free(h);
	return r;
}

/* Sign everything written to w so far and append the raw signature. */
int
hs_sign_append(struct hs *hs, const struct key *key, const char *label,
    struct ml_wr *w)
{
	uint8_t md[ML_SHA256_LEN], sig[ML_P256_SIG_LEN];
	int r = ML_ERR_INTERNAL;

	ML_TRY(hs_sig_digest(hs, label, w->p, w->len, md));
	ML_TRY(key_sign(key, md, sig));
	ML_TRY(ml_wr_bytes(w, sig, sizeof(sig)));
	r = 0;
out:
	return r;
}

/*
 * Loaded public keys, per thread (a server worker sees the same readers
 * again and again; importing a point costs ~15 us, a sixth of a
 * verification).  Direct-mapped by the point's first X byte; freed when
 * the thread exits.
 */
#define KEYCACHE_SLOTS	16
struct keycache {
	uint8_t			 pub[KEYCACHE_SLOTS][ML_P256_PUB_LEN];
	struct ml_p256_key	*key[KEYCACHE_SLOTS];
};
static pthread_key_t keycache_tls;
static pthread_once_t keycache_once = PTHREAD_ONCE_INIT;

static void
keycache_free(void *p)
{
	struct keycache *kc = p;
	size_t i;

	for (i = 0; i < KEYCACHE_SLOTS; i++) {
		ml_p256_key_free(kc->key[i]);
	}
	free(kc);
}

static void
keycache_init(void)
{
	(void)pthread_key_create(&keycache_tls, keycache_free);
}

/* A loaded key for pub: borrowed from the cache (*ret_owned = NULL) or
 * owned by the caller (*ret_owned = the key) when there is no cache. */
static int
pub_key(const uint8_t pub[ML_P256_PUB_LEN], struct ml_p256_key **ret_key,
    struct ml_p256_key **ret_owned)
{
	struct keycache *kc;
	size_t slot = pub[1] % KEYCACHE_SLOTS;
	struct ml_p256_key *k = NULL;
	int r;

	*ret_owned = NULL;
	pthread_once(&keycache_once, keycache_init);
	if ((kc = pthread_getspecific(keycache_tls)) == NULL &&
	    (kc = calloc(1, sizeof(*kc))) != NULL &&
	    pthread_setspecific(keycache_tls, kc) != 0) {
		free(kc);
		kc = NULL;
	}
	if (kc != NULL && kc->key[slot] != NULL &&
	    memcmp(kc->pub[slot], pub, ML_P256_PUB_LEN) == 0) {
		*ret_key = kc->key[slot];
		return 0;
	}
	if ((r = ml_p256_key_from_pub(pub, ML_P256_PUB_LEN, &k)) != 0) {
		return r;
	}
	if (kc != NULL) {
		ml_p256_key_free(kc->key[slot]);
		kc->key[slot] = k;
		memcpy(kc->pub[slot], pub, ML_P256_PUB_LEN);
	} else {
		*ret_owned = k;
	}
	*ret_key = k;
	return 0;
}

/* The signature is the last ML_P256_SIG_LEN bytes of body. */
int
hs_verify_sig(const struct hs *hs, const uint8_t pub[ML_P256_PUB_LEN],
    const char *label, const uint8_t *body, size_t len)
{
	struct ml_p256_key *k = NULL, *owned = NULL;
	uint8_t md[ML_SHA256_LEN];
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(len > ML_P256_SIG_LEN, ML_ERR_SHORT);
	ML_TRY(hs_sig_digest(hs, label, body, len - ML_P256_SIG_LEN, md));
	ML_TRY(pub_key(pub, &k, &owned));
	r = ml_p256_verify_digest(k, md, sizeof(md),
	    body + len - ML_P256_SIG_LEN, ML_P256_SIG_LEN);
	if (r != 0) {
		r = ML_ERR_AUTH;
	}
out:
	ml_p256_key_free(owned);
	return r;
}

int
hs_set_peer(struct hs *hs, const struct hs_certinfo *ci,
    const struct hs_blob *leaf)
{
	uint8_t *p;

	if ((p = malloc(leaf->len)) == NULL) {
		return ML_ERR_NOMEM;
	}
	memcpy(p, leaf->p, leaf->len);
	ml_freezero(hs->peer_cert, hs->peer_cert_len);
	hs->peer_cert = p;
	hs->peer_cert_len = leaf->len;
	hs->peer.cert_der = p;
	hs->peer.cert_len = leaf->len;
	hs->peer.kind = ci->kind == HS_CERT_KIND_SERVER ? 0 : ci->kind;
	snprintf(hs->peer.serial, sizeof(hs->peer.serial), "%s", ci->serial);
	snprintf(hs->peer.certno, sizeof(hs->peer.certno), "%s", ci->certno);
	memcpy(hs->peer.pub, ci->pub, sizeof(hs->peer.pub));
	return 0;
}

/*
 * The server's checks on the client's first authenticated message
 * (READER_AUTH in flow A, READER_KEYX in flow B), in the order ID-2 and
 * ID-4 prescribe; framing and limits were checked by the parser already.
 *
 *= REQ ID-5 (early rejection)
 *# the server decides whether the reader is legitimate at the reader's
 *# first message, and ends the connection at once if not
 */
int
hs_server_check_client(struct hs *hs, const uint8_t *msg, size_t len,
    const struct hs_ident_fields *f, const char *label)
{
	const struct hs_server_cfg *cfg = hs->scfg;
	uint32_t life = cfg->r1_lifetime_ms ? cfg->r1_lifetime_ms :
	    HS_R1_LIFETIME_MS;
	struct hs_certinfo ci;
	struct hs_peer tmp;
	bool r1_ok;
	int alert = HS_ALERT_CERT, r = ML_ERR_INTERNAL;

	/* 1. (framing done by the parser) 2. R1: issued on this connection, unused, younger than its
	 * lifetime; consumed whatever the outcome */
	r1_ok = ml_ct_eq(f->r1, hs->r1, HS_R_LEN) && !hs->r1_used &&
	    hs_now_ms() - hs->r1_issued_ms <= life;
	hs->r1_used = true;
	ML_ENSURE(r1_ok, hs_fail(hs, HS_ALERT_R1, ML_ERR_AUTH));
	/* the claim in this message is the claim of KEYREQ (splices) */
	ML_ENSURE(strcmp(f->serial, hs->serial) == 0 &&
	    strcmp(f->certno, hs->certno) == 0,
	    hs_fail(hs, HS_ALERT_IDENTITY, ML_ERR_AUTH));
	/* 3. certificate chain to the root (cached), 4a. CRL */
	if ((r = hs_trust_verify(cfg->trust, f->chain, f->nchain, &ci,
	    &alert)) != 0) {
		r = hs_fail(hs, alert, ML_ERR_CERT);
		goto out;
	}
	ML_ENSURE(ci.kind == (int)hs->kind,
	    hs_fail(hs, HS_ALERT_CERT, ML_ERR_CERT));
	/* ID-3: serial and certificate number are the certificate's */
	ML_ENSURE(strcmp(ci.serial, f->serial) == 0 &&
	    strcmp(ci.certno, f->certno) == 0,
	    hs_fail(hs, HS_ALERT_IDENTITY, ML_ERR_AUTH));
	/* 4b. registry mapping and risk status */
	if (cfg->check_peer != NULL) {
		memset(&tmp, 0, sizeof(tmp));
		tmp.flow = hs->flow;
		tmp.kind = hs->kind;
		memcpy(tmp.serial, ci.serial, sizeof(tmp.serial));
		memcpy(tmp.certno, ci.certno, sizeof(tmp.certno));
		memcpy(tmp.pub, ci.pub, sizeof(tmp.pub));
		tmp.cert_der = f->chain[0].p;
		tmp.cert_len = f->chain[0].len;
		alert = HS_ALERT_RISK;
		if ((r = cfg->check_peer(cfg->check_ctx, &tmp, &alert)) != 0) {
			r = hs_fail(hs, alert, ML_ERR_REJECTED);
			goto out;
		}
	}
	/* 5. signature over the transcript with the certificate's key */
	if ((r = hs_verify_sig(hs, ci.pub, label, msg, len)) != 0) {
		r = hs_fail(hs, HS_ALERT_SIG, ML_ERR_AUTH);
		goto out;
	}
	ML_TRY(hs_set_peer(hs, &ci, &f->chain[0]));
	hs->peer.kind = hs->kind;
	r = 0;
out:
	return r;
}

/* ---------------------------------------------------------------- framing */

int
hs_frame_put(struct ml_wr *w, const uint8_t *body, size_t len)
{
	size_t save = w->len;
	int r = ML_ERR_INTERNAL;

	ML_ENSURE(len <= HS_MAX_FRAME, ML_ERR_TOO_LARGE);
	ML_TRY(ml_wr_u32be(w, (uint32_t)len));
	if ((r = ml_wr_bytes(w, body, len)) != 0) {
		w->len = save;
		goto out;
	}
	r = 0;
out:
	return r;
}

int
hs_frame_next(struct ml_rd *rd, size_t max, struct ml_rd *ret_body)
{
	struct ml_rd save = *rd;
	uint32_t n;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u32be(rd, &n));
	if (n > max) {
		*rd = save;
		return ML_ERR_TOO_LARGE;
	}
	if ((r = ml_rd_sub(rd, n, ret_body)) != 0) {
		*rd = save;
		goto out;
	}
	r = 0;
out:
	return r;
}

/* Schema-only parse of any handshake body (fuzz target, diagnostics). */
int
hs_msg_parse_only(const uint8_t *msg, size_t len)
{
	struct hs_ident_fields f;
	uint8_t r1[HS_R_LEN], v, fl, k, code;
	char serial[HS_MAX_SERIAL + 1], certno[HS_MAX_CERTNO + 1];

	if (len < 1) {
		return ML_ERR_SHORT;
	}
	switch (msg[0]) {
	case HS_KEYREQ:
		return hs_parse_keyreq(msg, len, &v, &fl, &k, serial, certno, r1);
	case HS_CHALLENGE:
		return hs_parse_challenge(msg, len, r1);
	case HS_CHALLENGE_CERT:
		return hs_parse_chcert(msg, len, r1, &f);
	case HS_READER_AUTH:
		return hs_parse_reader_auth(msg, len, &f);
	case HS_SERVER_AUTH:
		return hs_parse_server_auth(msg, len, &f);
	case HS_READER_KEYX:
		return hs_parse_keyx(msg, len, &f);
	case HS_ALERT:
		return hs_parse_alert(msg, len, &code);
	default:
		return ML_ERR_FORMAT;
	}
}

int
hs_parse_alert(const uint8_t *m, size_t len, uint8_t *ret_code)
{
	struct ml_rd rd = ML_RD_INIT(m, len);
	uint8_t t, c;
	int r = ML_ERR_INTERNAL;

	ML_TRY(ml_rd_u8(&rd, &t));
	ML_ENSURE(t == HS_ALERT, ML_ERR_FORMAT);
	ML_TRY(ml_rd_u8(&rd, &c));
	ML_TRY(ml_rd_end(&rd));
	ML_ENSURE(c < HS_ALERT_MAX, ML_ERR_FORMAT);
	*ret_code = c;
	r = 0;
out:
	return r;
}
